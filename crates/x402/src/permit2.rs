//! Permit2 signature transfers as the x402 `upto` scheme uses them: the canonical addresses,
//! the EIP-712 witness message the payer signs, signing and local recovery.
//!
//! The payer signs Permit2's `PermitWitnessTransferFrom` with the domain `{name: "Permit2",
//! chainId, verifyingContract: Permit2}` (no `version`). The spender is the
//! `x402UptoPermit2Proxy`; the witness `Witness(address to,address facilitator,uint256
//! validAfter)` binds the recipient and the one facilitator allowed to settle, which may move
//! any amount up to `permitted.amount`. Nonces are Permit2's unordered 256-bit nonces (a bit in
//! a per-owner bitmap), so any number of authorizations can be outstanding at once.

use alloy::primitives::{Address, B256, Bytes, U256, address};
use alloy::sol_types::{Eip712Domain, SolStruct};

use crate::eip3009::SignatureError;
use crate::key::PrivateKey;
use crate::wire::{Permit2Authorization, UptoEvmPayload};

/// Uniswap's Permit2, at the same address on every EVM chain.
pub const PERMIT2_ADDRESS: Address = address!("0x000000000022D473030F116dDEE9F6B43aC78BA3");

/// x402's `x402UptoPermit2Proxy`: the spender of every `upto` authorization (same address on
/// every chain, the one `@x402/evm` signs for).
pub const UPTO_PROXY_ADDRESS: Address = address!("0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002");

/// Permit2's EIP-712 domain `name`.
pub const DOMAIN_NAME: &str = "Permit2";

alloy::sol! {
    /// The token and the most that may be transferred.
    #[derive(Debug, PartialEq, Eq)]
    struct TokenPermissions {
        address token;
        uint256 amount;
    }

    /// The `upto` witness: who receives, who may settle, and from when.
    #[derive(Debug, PartialEq, Eq)]
    struct Witness {
        address to;
        address facilitator;
        uint256 validAfter;
    }

    /// The message the payer signs (Permit2's witness transfer with the `upto` witness).
    #[derive(Debug, PartialEq, Eq)]
    struct PermitWitnessTransferFrom {
        TokenPermissions permitted;
        address spender;
        uint256 nonce;
        uint256 deadline;
        Witness witness;
    }
}

impl From<&Permit2Authorization> for PermitWitnessTransferFrom {
    fn from(a: &Permit2Authorization) -> Self {
        Self {
            permitted: TokenPermissions {
                token: a.permitted.token,
                amount: a.permitted.amount,
            },
            spender: a.spender,
            nonce: a.nonce,
            deadline: U256::from(a.deadline),
            witness: Witness {
                to: a.witness.to,
                facilitator: a.witness.facilitator,
                validAfter: U256::from(a.witness.valid_after),
            },
        }
    }
}

/// Permit2's EIP-712 domain on `chain_id`.
pub fn domain(chain_id: u64) -> Eip712Domain {
    Eip712Domain::new(
        Some(DOMAIN_NAME.into()),
        None,
        Some(U256::from(chain_id)),
        Some(PERMIT2_ADDRESS),
        None,
    )
}

/// The digest the payer signs and Permit2 recovers from.
pub fn signing_hash(chain_id: u64, authorization: &Permit2Authorization) -> B256 {
    PermitWitnessTransferFrom::from(authorization).eip712_signing_hash(&domain(chain_id))
}

/// Signs an authorization: 65 bytes `r‖s‖v`, `v ∈ {27, 28}`, low `s`, deterministic (RFC 6979),
/// as `eth_signTypedData_v4` would produce.
pub fn sign_payload(
    key: &PrivateKey,
    chain_id: u64,
    authorization: Permit2Authorization,
) -> Result<UptoEvmPayload, SignatureError> {
    let signature = key.sign_hash(&signing_hash(chain_id, &authorization))?;
    Ok(UptoEvmPayload {
        signature: Bytes::copy_from_slice(&signature.as_bytes()),
        permit2_authorization: authorization,
    })
}

/// Recovers the signer of an authorization from a 65-byte EOA signature (`v ∈ {27, 28}`, low
/// `s`); the caller compares it with `authorization.from`. A contract wallet's signature
/// ([`SignatureError::NotEoa`]) only the chain can check.
pub fn recover_signer(
    chain_id: u64,
    authorization: &Permit2Authorization,
    signature: &[u8],
) -> Result<Address, SignatureError> {
    crate::eip3009::recover_prehash(&signing_hash(chain_id, authorization), signature)
}

#[cfg(test)]
#[path = "permit2_tests.rs"]
mod tests;
