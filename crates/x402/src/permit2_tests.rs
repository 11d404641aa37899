use alloy::primitives::{Address, U256, keccak256};
use alloy::sol_types::SolStruct;

use super::*;
use crate::wire::{Permitted, UptoWitness};

// Public Anvil/Hardhat dev key #1 (test-only).
const DEV_KEY_1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

fn authorization(from: Address) -> Permit2Authorization {
    Permit2Authorization {
        from,
        permitted: Permitted {
            token: address!("0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
            amount: U256::from(50_000u64),
        },
        spender: UPTO_PROXY_ADDRESS,
        nonce: U256::from(0xA11CEu64),
        deadline: 1_740_672_154,
        witness: UptoWitness {
            to: address!("0x209693Bc6afc0C5328bA36FaF03C514EF312287C"),
            facilitator: address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
            valid_after: 0,
        },
    }
}

#[test]
fn type_string_is_permit2_stub_plus_the_proxy_witness_string() {
    // What Permit2 hashes: its stub, then the proxy's WITNESS_TYPE_STRING (contracts/src).
    let stub = "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,";
    let witness = "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";
    let message = PermitWitnessTransferFrom::from(&authorization(Address::ZERO));
    assert_eq!(
        PermitWitnessTransferFrom::eip712_encode_type(),
        format!("{stub}{witness}")
    );
    assert_eq!(
        message.eip712_type_hash(),
        keccak256(format!("{stub}{witness}"))
    );
}

#[test]
fn domain_has_no_version() {
    let d = domain(84_532);
    assert_eq!(
        d.encode_type(),
        "EIP712Domain(string name,uint256 chainId,address verifyingContract)"
    );
    assert_eq!(d.verifying_contract, Some(PERMIT2_ADDRESS));
}

#[test]
fn signs_and_recovers_and_any_changed_field_recovers_someone_else() {
    let key: PrivateKey = DEV_KEY_1.parse().unwrap();
    let signed = sign_payload(&key, 84_532, authorization(key.address())).unwrap();
    let auth = &signed.permit2_authorization;
    assert_eq!(signed.signature.len(), 65);
    assert_eq!(
        recover_signer(84_532, auth, &signed.signature).unwrap(),
        key.address()
    );
    type Mutation = fn(&mut Permit2Authorization);
    let mutations: [(&str, Mutation); 8] = [
        ("token", |a| a.permitted.token = Address::repeat_byte(1)),
        ("amount", |a| a.permitted.amount += U256::from(1)),
        ("spender", |a| a.spender = Address::repeat_byte(2)),
        ("nonce", |a| a.nonce += U256::from(1)),
        ("deadline", |a| a.deadline += 1),
        ("to", |a| a.witness.to = Address::repeat_byte(3)),
        ("facilitator", |a| {
            a.witness.facilitator = Address::repeat_byte(4)
        }),
        ("validAfter", |a| a.witness.valid_after = 1),
    ];
    for (name, mutate) in mutations {
        let mut changed = auth.clone();
        mutate(&mut changed);
        let recovered = recover_signer(84_532, &changed, &signed.signature);
        assert_ne!(recovered, Ok(key.address()), "{name}");
    }
    // Another chain id is another domain.
    assert_ne!(
        recover_signer(8_453, auth, &signed.signature),
        Ok(key.address())
    );
    assert_eq!(
        recover_signer(84_532, auth, &signed.signature[..64]),
        Err(SignatureError::NotEoa(64))
    );
}
