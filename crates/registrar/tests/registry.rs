//! The committed test contracts behave like the contracts they stand in for, on a real anvil:
//! the IdentityRegistry's ids, events and access rules (`erc8004.md` §3–§5); the upgradeable
//! registry's proxy, initializers, agent wallet and custom errors like the official deployment's
//! (§3, §7, §11); and TestUSDC's EIP-3009 domain, signatures and replay protection.

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
    let anvil = Anvil::start(&[]).await;
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

/// The agent-wallet message of the official registry (`erc8004.md` §7).
mod wallet_message {
    alloy::sol! {
        struct AgentWalletSet {
            uint256 agentId;
            address newWallet;
            address owner;
            uint256 deadline;
        }
    }
}

fn reason(e: &alloy::contract::Error) -> String {
    e.as_revert_data()
        .and_then(|d| obol_registrar::abi::revert_reason(&d))
        .unwrap_or_else(|| e.to_string())
}

#[tokio::test]
async fn the_upgradeable_registry_behaves_like_the_official_deployment() {
    use alloy::signers::SignerSync as _;
    use alloy::signers::local::PrivateKeySigner;
    use alloy::sol_types::SolStruct as _;
    use obol_registrar::contracts::{
        UpgradeableIdentityRegistry as Upgradeable, deploy_upgradeable_registry,
    };

    let anvil = Anvil::start(&[]).await;
    let deployer = anvil.provider(Some(DEV_KEY_1));
    let d = deploy_upgradeable_registry(&deployer).await.unwrap();
    let p = anvil.provider(Some(DEV_KEY_0));
    let proxy = Upgradeable::new(d.proxy, &p);
    let implementation = Upgradeable::new(d.implementation, &p);

    // The proxy is the registry; the implementation answers the pure version but has no name.
    assert_eq!(proxy.getVersion().call().await.unwrap(), "2.0.0");
    assert_eq!(proxy.name().call().await.unwrap(), "AgentIdentity");
    assert_eq!(proxy.symbol().call().await.unwrap(), "AGENT");
    assert_eq!(proxy.owner().call().await.unwrap(), support::anvil::DEV_1);
    assert_eq!(implementation.getVersion().call().await.unwrap(), "2.0.0");
    assert_eq!(implementation.name().call().await.unwrap(), "");
    let slot = p
        .get_storage_at(
            d.proxy,
            obol_registrar::contracts::IMPLEMENTATION_SLOT.into(),
        )
        .await
        .unwrap();
    assert_eq!(Address::from_word(slot.into()), d.implementation);
    let domain = proxy.eip712Domain().call().await.unwrap();
    assert_eq!(
        (
            domain.domainName.as_str(),
            domain.domainVersion.as_str(),
            domain.verifyingContract
        ),
        ("ERC8004IdentityRegistry", "1", d.proxy)
    );

    // Initializers run once; upgrades are the owner's.
    let again = implementation.initialize().send().await.unwrap_err();
    assert_eq!(reason(&again), "InvalidInitialization()");
    let again = proxy.initialize().send().await.unwrap_err();
    assert_eq!(reason(&again), "InvalidInitialization()");
    let hijack = proxy
        .upgradeToAndCall(d.placeholder, Bytes::new())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        reason(&hijack),
        format!("OwnableUnauthorizedAccount(account: {DEV_0})")
    );

    // register: the standard's logs in order; the sender becomes the agent's wallet.
    let receipt = proxy
        .register_2("ipfs://first".into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
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
    let ev = receipt::registered_in_receipt(receipt.inner.logs().iter().map(|l| &l.inner), d.proxy)
        .unwrap();
    assert_eq!((ev.agent_id, ev.owner), (U256::ZERO, DEV_0));
    assert_eq!(
        proxy.getAgentWallet(U256::ZERO).call().await.unwrap(),
        DEV_0
    );
    let reserved = proxy
        .setMetadata(U256::ZERO, "agentWallet".into(), Bytes::new())
        .send()
        .await
        .unwrap_err();
    assert_eq!(reason(&reserved), "reserved key");

    // setAgentWallet needs the new wallet's EIP-712 signature, within five minutes.
    let wallet: PrivateKeySigner = DEV_KEY_1.parse().unwrap();
    let now = p
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap()
        .header
        .timestamp;
    let deadline = U256::from(now + 60);
    let eip712 = alloy::sol_types::eip712_domain! {
        name: "ERC8004IdentityRegistry",
        version: "1",
        chain_id: support::anvil::CHAIN_ID,
        verifying_contract: d.proxy,
    };
    let sign = |signer: &PrivateKeySigner, deadline: U256| {
        let msg = wallet_message::AgentWalletSet {
            agentId: U256::ZERO,
            newWallet: wallet.address(),
            owner: DEV_0,
            deadline,
        };
        let sig = signer
            .sign_hash_sync(&msg.eip712_signing_hash(&eip712))
            .unwrap();
        Bytes::from(sig.as_bytes().to_vec())
    };
    let stranger: PrivateKeySigner = DEV_KEY_0.parse().unwrap();
    let forged = proxy
        .setAgentWallet(
            U256::ZERO,
            wallet.address(),
            deadline,
            sign(&stranger, deadline),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(reason(&forged), "invalid wallet sig");
    let far = U256::from(now + 3600);
    let too_far = proxy
        .setAgentWallet(U256::ZERO, wallet.address(), far, sign(&wallet, far))
        .send()
        .await
        .unwrap_err();
    assert_eq!(reason(&too_far), "deadline too far");
    proxy
        .setAgentWallet(
            U256::ZERO,
            wallet.address(),
            deadline,
            sign(&wallet, deadline),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert_eq!(
        proxy.getAgentWallet(U256::ZERO).call().await.unwrap(),
        wallet.address()
    );
    proxy
        .unsetAgentWallet(U256::ZERO)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert_eq!(
        proxy.getAgentWallet(U256::ZERO).call().await.unwrap(),
        Address::ZERO
    );

    // A transfer clears the wallet; only the owner may move the agent; errors carry names.
    proxy
        .register_2("ipfs://second".into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let stolen = Upgradeable::new(d.proxy, &deployer)
        .transferFrom(DEV_0, support::anvil::DEV_1, U256::from(1))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        reason(&stolen),
        format!(
            "ERC721InsufficientApproval(operator: {}, tokenId: 1)",
            support::anvil::DEV_1
        )
    );
    proxy
        .transferFrom(DEV_0, support::anvil::DEV_1, U256::from(1))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert_eq!(
        proxy.getAgentWallet(U256::from(1)).call().await.unwrap(),
        Address::ZERO
    );
    let missing = proxy.tokenURI(U256::from(99)).call().await.unwrap_err();
    assert_eq!(reason(&missing), "ERC721NonexistentToken(tokenId: 99)");
}

#[tokio::test]
async fn the_upgradeable_registry_installs_at_the_official_address_of_a_dev_chain() {
    use obol_registrar::contracts::{
        UpgradeableIdentityRegistry as Upgradeable, install_upgradeable_registry_at,
    };
    let anvil = Anvil::start(&[]).await;
    let base_sepolia = address!("0x8004A818BFB912233c491871b3d84c89A494BD9e");
    let deployer = anvil.provider(Some(DEV_KEY_1));
    let d = install_upgradeable_registry_at(&deployer, base_sepolia)
        .await
        .unwrap();
    assert_eq!(d.proxy, base_sepolia);
    let p = anvil.provider(Some(DEV_KEY_0));
    let r = Upgradeable::new(base_sepolia, &p);
    assert_eq!(r.name().call().await.unwrap(), "AgentIdentity");
    assert_eq!(r.owner().call().await.unwrap(), support::anvil::DEV_1);
    let receipt = r
        .register_2("ipfs://at-home".into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let ev =
        receipt::registered_in_receipt(receipt.inner.logs().iter().map(|l| &l.inner), base_sepolia)
            .unwrap();
    assert_eq!((ev.agent_id, ev.owner), (U256::ZERO, DEV_0));
    assert_eq!(
        Upgradeable::new(d.implementation, &p)
            .name()
            .call()
            .await
            .unwrap(),
        ""
    );
}

#[tokio::test]
async fn test_usdc_verifies_eip3009_for_its_own_domain_even_when_copied() {
    let anvil = Anvil::start(&[]).await;
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
