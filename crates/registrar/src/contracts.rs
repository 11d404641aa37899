//! `sol!` bindings from the committed artifacts in `contracts/out` (ABI and bytecode; see
//! `contracts/compile.js`). The registry binding is what the registrar calls; the test
//! contracts are bound too, so integration tests can deploy them.

#![allow(missing_docs, clippy::too_many_arguments)]

use alloy::sol;

sol!(
    #[sol(rpc)]
    IdentityRegistry,
    "../../contracts/out/IdentityRegistry.json"
);

sol!(
    #[sol(rpc)]
    RevertingIdentityRegistry,
    "../../contracts/out/RevertingIdentityRegistry.json"
);

sol!(
    #[sol(rpc)]
    TestUSDC,
    "../../contracts/out/TestUSDC.json"
);
