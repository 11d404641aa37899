//! Golden vectors of x402.md §10, all computed offline from their definitions.

use alloy::primitives::{address, b256, bytes, keccak256};

use super::*;
use crate::chain::Network;

const SPEC_SIGNATURE: Bytes = bytes!(
    "0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c"
);
const SPEC_FROM: Address = address!("0x857b06519E91e3A54538791bDbb0E22373e36b66");
const PAY_TO: Address = address!("0x209693Bc6afc0C5328bA36FaF03C514EF312287C");
const BASE_SEPOLIA_USDC: Address = address!("0x036CbD53842c5426634e7929541eC2318f3dCF7e");
const BASE_USDC: Address = address!("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913");

fn spec_message() -> TransferWithAuthorization {
    TransferWithAuthorization {
        from: SPEC_FROM,
        to: PAY_TO,
        value: U256::from(10_000u64),
        validAfter: U256::from(1_740_672_089u64),
        validBefore: U256::from(1_740_672_154u64),
        nonce: b256!("0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"),
    }
}

fn base_sepolia() -> TokenDomain {
    Network::resolve("eip155:84532")
        .unwrap()
        .usdc_domain()
        .unwrap()
}

#[test]
fn typehashes() {
    assert_eq!(
        spec_message().eip712_type_hash(),
        TRANSFER_WITH_AUTHORIZATION_TYPEHASH
    );
    assert_eq!(base_sepolia().eip712().type_hash(), DOMAIN_TYPEHASH);
}

#[test]
fn base_sepolia_domain_separator() {
    let want = b256!("0x71f17a3b2ff373b803d70a5a07c046c1a2bc8e89c09ef722fcb047abe94c9818");
    assert_eq!(base_sepolia().separator(), want);
    let by_hand = TokenDomain::new("USDC", "2", 84_532, BASE_SEPOLIA_USDC);
    assert_eq!(by_hand, base_sepolia());
}

#[test]
fn spec_example_hashes_and_recovers_to_from() {
    let message = spec_message();
    assert_eq!(
        struct_hash(&message),
        b256!("0x49ad644555c7bdf3ea4fc022a4940ae5589b230b1dde0065c5504fa19bbe39a4")
    );
    assert_eq!(
        signing_hash(&base_sepolia(), &message),
        b256!("0xf256992871671abcb27ff92885a7afa46218724e5fc0bac35d050115aa1d22e6")
    );
    assert_eq!(SPEC_SIGNATURE[64], 28);
    assert_eq!(
        recover_signer(&base_sepolia(), &message, &SPEC_SIGNATURE),
        Ok(SPEC_FROM)
    );
}

#[test]
fn wrong_domains_recover_someone_else() {
    let cases = [
        (
            "name USD Coin",
            TokenDomain::new("USD Coin", "2", 84_532, BASE_SEPOLIA_USDC),
            b256!("0x2f5ab5eec6c6d261a8ad2b303ae4ef05c8509de2250e072c3a2df0ad7f9f068b"),
            address!("0xed07b31fa76779c7a25ba712fb1bfbecefa2ad7e"),
        ),
        (
            "base mainnet USDC",
            Network::resolve("base").unwrap().usdc_domain().unwrap(),
            b256!("0x02fa7265e7c5d81118673727957699e4d68f74cd74b7db77da710fe8a2c7834f"),
            address!("0x34ae57701723c302054fe521ac33679a9a94fe42"),
        ),
        (
            "chain id 8453",
            TokenDomain::new("USDC", "2", 8453, BASE_SEPOLIA_USDC),
            b256!("0xfa238c9966b9fb47bb6cc3f915b541622ae7406c2c45a2510b835f46e2214895"),
            address!("0x46e5af7a18131f1bc0947cf44151ee84b58c92a9"),
        ),
        (
            "version 1",
            TokenDomain::new("USDC", "1", 84_532, BASE_SEPOLIA_USDC),
            b256!("0x9b1f6b9293a1e717bb96666aa586ec1a6907d8508c44ebe6e8c359667e4f3a54"),
            address!("0x1c0d2ce69d459942c27b38a2af242a3d0ba69e22"),
        ),
    ];
    for (name, domain, separator, recovered) in cases {
        assert_eq!(domain.separator(), separator, "{name}");
        let got = recover_signer(&domain, &spec_message(), &SPEC_SIGNATURE).unwrap();
        assert_eq!(got, recovered, "{name}");
        assert_ne!(got, SPEC_FROM, "{name}");
    }
    assert_eq!(
        Network::resolve("base")
            .unwrap()
            .usdc
            .as_ref()
            .unwrap()
            .address,
        BASE_USDC
    );
}

#[test]
fn deterministic_signing_vector() {
    let key: PrivateKey = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
        .parse()
        .unwrap();
    let nonce = keccak256("x402-golden-vector-1");
    assert_eq!(
        nonce,
        b256!("0x372f5c1af8f2f348ef288d41b039840ddee3f2dac56e2bf258b1dc3ed9b6136b")
    );
    let message = TransferWithAuthorization {
        from: key.address(),
        to: PAY_TO,
        value: U256::from(10_000u64),
        validAfter: U256::from(1_700_000_000u64),
        validBefore: U256::from(4_102_444_800u64),
        nonce,
    };
    assert_eq!(
        key.address(),
        address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    );
    assert_eq!(
        struct_hash(&message),
        b256!("0x67f124da42cebfdf917ae053a546b61ab5db07f26ec3af7999ce33fe80ee9bbe")
    );
    assert_eq!(
        signing_hash(&base_sepolia(), &message),
        b256!("0xe20e7820d64dd9095a80a547cedf1a1ebea4abaf28b4dc7f6d335873f4e3aad6")
    );
    let signature = sign(&key, &base_sepolia(), &message).unwrap();
    assert_eq!(
        signature,
        bytes!(
            "0x2e47014f242aa1058385ebaa8d82747b2e43f3d6c4ae7e998031b17ff3f8d1ed5aeb02f83fd0fb2bed92933deeea1a97797c72946e36a5f3c1ec4033163ba3f91b"
        )
    );
    assert_eq!(
        recover_signer(&base_sepolia(), &message, &signature),
        Ok(key.address())
    );
    let usd_coin = TokenDomain::new("USD Coin", "2", 84_532, BASE_SEPOLIA_USDC);
    assert_eq!(
        recover_signer(&usd_coin, &message, &signature),
        Ok(address!("0x51ff53f8b50b5c857071ef391500e4825253416b"))
    );
}

#[test]
fn malformed_signatures_table() {
    let mut v0 = SPEC_SIGNATURE.to_vec();
    v0[64] = 1;
    // The same point with s' = n - s and the parity flipped: valid for ecrecover in general,
    // refused by FiatToken (and here) as malleable.
    let sig = Signature::from_raw(&SPEC_SIGNATURE).unwrap();
    let n = U256::from_be_bytes(
        b256!("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141").0,
    );
    let high_s = Signature::new(sig.r(), n - sig.s(), !sig.v())
        .as_bytes()
        .to_vec();
    let mut long = SPEC_SIGNATURE.to_vec();
    long.extend_from_slice(&[0u8; 32]);
    let cases: Vec<(&str, Vec<u8>, SignatureError)> = vec![
        ("v = 1", v0, SignatureError::InvalidV(1)),
        ("high s", high_s, SignatureError::HighS),
        ("erc-1271 length", long, SignatureError::NotEoa(97)),
        ("empty", vec![], SignatureError::NotEoa(0)),
    ];
    for (name, signature, want) in cases {
        assert_eq!(
            recover_signer(&base_sepolia(), &spec_message(), &signature),
            Err(want),
            "{name}"
        );
    }
}

#[test]
fn sign_payload_round_trips_through_the_wire_type() {
    let key: PrivateKey = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        .parse()
        .unwrap();
    let authorization = Authorization {
        from: key.address(),
        to: PAY_TO,
        value: U256::from(1000u64),
        valid_after: 0,
        valid_before: 4_294_967_295,
        nonce: B256::repeat_byte(7),
    };
    let payload = sign_payload(&key, &base_sepolia(), authorization).unwrap();
    let message = TransferWithAuthorization::from(&payload.authorization);
    assert_eq!(
        recover_signer(&base_sepolia(), &message, &payload.signature),
        Ok(key.address())
    );
}
