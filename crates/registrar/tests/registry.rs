//! The committed test contracts behave like the contracts they stand in for, on a real anvil:
//! the IdentityRegistry's ids, events and access rules (`erc8004.md` §3–§5), and TestUSDC's
//! EIP-3009 domain, signatures and replay protection.

mod support;

use alloy::primitives::{Address, B256, Bytes, U256, address};
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi as _;
use alloy::sol_types::SolEvent;
use obol_registrar::contracts::IdentityRegistry::{
    self, MetadataSet, MetadataUpdate, Registered, Transfer, URIUpdated,
};
use obol_registrar::contracts::TestUSDC;
use obol_registrar::receipt;
use support::anvil::{Anvil, DEV_KEY_0, DEV_KEY_1};

const DEV_0: Address = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

#[tokio::test]
async fn identity_registry_numbers_from_zero_and_emits_the_standard_events() {
    let Some(anvil) = Anvil::start(&[]).await else {
        return;
    };
    let registry = anvil.deploy_registry().await;
    let p = anvil.provider(Some(DEV_KEY_0));
    let r = IdentityRegistry::new(registry, &p);
    assert_eq!(r.getVersion().call().await.unwrap(), "2.0.0");

    let receipt = r
        .register_2("ipfs://first".into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    let topics: Vec<B256> = receipt
        .inner
        .logs()
        .iter()
        .map(|l| l.inner.topics()[0])
        .collect();
    assert_eq!(
        topics,
        [
            Transfer::SIGNATURE_HASH,
            MetadataUpdate::SIGNATURE_HASH,
            Registered::SIGNATURE_HASH,
            MetadataSet::SIGNATURE_HASH
        ]
    );
    let ev =
        receipt::registered_in_receipt(receipt.inner.logs().iter().map(|l| &l.inner), registry)
            .unwrap();
    assert_eq!((ev.agent_id, ev.owner), (U256::ZERO, DEV_0));
    assert_eq!(ev.agent_uri, "ipfs://first");

    let second = r
        .register_2("ipfs://second".into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let ev2 =
        receipt::registered_in_receipt(second.inner.logs().iter().map(|l| &l.inner), registry)
            .unwrap();
    assert_eq!(ev2.agent_id, U256::from(1));

    // setAgentURI: MetadataUpdate then URIUpdated; tokenURI follows.
    let set = r
        .setAgentURI(U256::ZERO, "ipfs://moved".into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let last = set.inner.logs().last().unwrap();
    assert_eq!(last.inner.topics()[0], URIUpdated::SIGNATURE_HASH);
    assert_eq!(r.tokenURI(U256::ZERO).call().await.unwrap(), "ipfs://moved");
    assert_eq!(r.getAgentWallet(U256::ZERO).call().await.unwrap(), DEV_0);

    // Metadata: public reads, owner writes, `agentWallet` reserved.
    r.setMetadata(U256::ZERO, "x402.supported".into(), Bytes::from(vec![1u8]))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert_eq!(
        r.getMetadata(U256::ZERO, "x402.supported".into())
            .call()
            .await
            .unwrap(),
        Bytes::from(vec![1u8])
    );
    let reserved = r
        .setMetadata(U256::ZERO, "agentWallet".into(), Bytes::new())
        .send()
        .await
        .unwrap_err();
    assert!(reserved.to_string().contains("reserved key"), "{reserved}");

    // Others may not move the URI; unknown ids revert.
    let stranger = anvil.provider(Some(DEV_KEY_1));
    let denied = IdentityRegistry::new(registry, &stranger)
        .setAgentURI(U256::ZERO, "ipfs://hijack".into())
        .send()
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("Not authorized"), "{denied}");
    assert!(r.tokenURI(U256::from(99)).call().await.is_err());
}

#[tokio::test]
async fn test_usdc_verifies_eip3009_for_its_own_domain_even_when_copied() {
    let Some(anvil) = Anvil::start(&[]).await else {
        return;
    };
    let p = anvil.provider(Some(DEV_KEY_1));
    let token = TestUSDC::deploy(&p, "USDC".into(), "2".into())
        .await
        .unwrap();
    let domain = obol_x402::TokenDomain::new("USDC", "2", 84532, *token.address());
    assert_eq!(
        token.DOMAIN_SEPARATOR().call().await.unwrap(),
        domain.separator()
    );
    assert_eq!(token.decimals().call().await.unwrap(), 6);

    // Copy the code to the canonical Base Sepolia USDC address: the separator follows it.
    let canonical = address!("0x036CbD53842c5426634e7929541eC2318f3dCF7e");
    let code = p.get_code_at(*token.address()).await.unwrap();
    p.anvil_set_code(canonical, code).await.unwrap();
    let copy = TestUSDC::new(canonical, &p);
    copy.initialize("USDC".into(), "2".into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let canonical_domain = obol_x402::TokenDomain::new("USDC", "2", 84532, canonical);
    assert_eq!(
        copy.DOMAIN_SEPARATOR().call().await.unwrap(),
        canonical_domain.separator()
    );

    // A signed authorization moves funds once; the replay reverts.
    let payer: obol_x402::PrivateKey = DEV_KEY_0.parse().unwrap();
    copy.mint(payer.address(), U256::from(5_000u64))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let pay_to = address!("0x209693Bc6afc0C5328bA36FaF03C514EF312287C");
    let msg = obol_x402::eip3009::TransferWithAuthorization {
        from: payer.address(),
        to: pay_to,
        value: U256::from(1_000u64),
        validAfter: U256::ZERO,
        validBefore: U256::from(u64::MAX),
        nonce: B256::repeat_byte(7),
    };
    let sig = obol_x402::eip3009::sign(&payer, &canonical_domain, &msg).unwrap();
    let call = || {
        copy.transferWithAuthorization_0(
            msg.from,
            msg.to,
            msg.value,
            msg.validAfter,
            msg.validBefore,
            msg.nonce,
            sig.clone(),
        )
    };
    let ok = call().send().await.unwrap().get_receipt().await.unwrap();
    assert!(ok.status());
    assert_eq!(
        copy.balanceOf(pay_to).call().await.unwrap(),
        U256::from(1_000u64)
    );
    assert!(
        copy.authorizationState(msg.from, msg.nonce)
            .call()
            .await
            .unwrap()
    );
    let replay = call().send().await.unwrap_err();
    assert!(
        replay.to_string().contains("authorization is used"),
        "{replay}"
    );
}
