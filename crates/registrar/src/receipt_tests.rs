use super::*;
use alloy::primitives::{LogData, address, b256};
use alloy::sol_types::SolEvent;

use crate::contracts::IdentityRegistry::{MetadataSet, Transfer, URIUpdated};

const REGISTRY: Address = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");
const OWNER: Address = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

fn registered(registry: Address, id: u64, uri: &str, owner: Address) -> Log {
    let ev = Registered {
        agentId: U256::from(id),
        agentURI: uri.into(),
        owner,
    };
    Log {
        address: registry,
        data: ev.encode_log_data(),
    }
}

#[test]
fn topics_match_the_spec() {
    // erc8004.md §5.
    assert_eq!(
        Registered::SIGNATURE_HASH,
        b256!("0xca52e62c367d81bb2e328eb795f7c7ba24afb478408a26c0e201d155c449bc4a")
    );
    assert_eq!(
        URIUpdated::SIGNATURE_HASH,
        b256!("0x3a2c7fffc2cba7582c690e3b82c453ea02a308326a98a3ad7576c606336409fb")
    );
    assert_eq!(
        MetadataSet::SIGNATURE_HASH,
        b256!("0x2c149ed548c6d2993cd73efe187df6eccabe4538091b33adbd25fafdb8a1468b")
    );
}

#[test]
fn selectors_match_the_spec() {
    use crate::contracts::IdentityRegistry as R;
    use alloy::sol_types::SolCall;
    // erc8004.md §4: register(), register(string, entries), register(string), setAgentURI, getMetadata, setMetadata, getVersion.
    assert_eq!(R::register_0Call::SELECTOR, [0x1a, 0xa3, 0xa0, 0x08]);
    assert_eq!(R::register_1Call::SELECTOR, [0x8e, 0xa4, 0x22, 0x86]);
    assert_eq!(R::register_2Call::SELECTOR, [0xf2, 0xc2, 0x98, 0xbe]);
    assert_eq!(R::setAgentURICall::SELECTOR, [0x0a, 0xf2, 0x8b, 0xd3]);
    assert_eq!(R::getMetadataCall::SELECTOR, [0xcb, 0x47, 0x99, 0xf2]);
    assert_eq!(R::setMetadataCall::SELECTOR, [0x46, 0x66, 0x48, 0xda]);
    assert_eq!(R::getVersionCall::SELECTOR, [0x0d, 0x8e, 0x6e, 0x2c]);
}

#[test]
fn decodes_agent_id_uri_and_owner_from_a_receipt() {
    // Log order of register(uri): Transfer, MetadataUpdate, Registered, MetadataSet.
    let transfer = Log {
        address: REGISTRY,
        data: Transfer {
            from: Address::ZERO,
            to: OWNER,
            tokenId: U256::ZERO,
        }
        .encode_log_data(),
    };
    let logs = [
        transfer,
        registered(REGISTRY, 0, "data:application/json;base64,e30=", OWNER),
    ];
    let ev = registered_in_receipt(&logs, REGISTRY).unwrap();
    assert_eq!(ev.agent_id, U256::ZERO, "agentId 0 is a real agent");
    assert_eq!(ev.agent_uri, "data:application/json;base64,e30=");
    assert_eq!(ev.owner, OWNER);
    assert_eq!(agent_id_u64(ev.agent_id), Some(0));
}

#[test]
fn ignores_other_contracts_and_malformed_logs() {
    let other = address!("0x0000000000000000000000000000000000000001");
    assert_eq!(
        registered_in_receipt(&[registered(other, 1, "u", OWNER)], REGISTRY),
        None
    );
    // Right topic0, truncated data.
    let mut bad = registered(REGISTRY, 1, "u", OWNER);
    bad.data = LogData::new_unchecked(bad.data.topics().to_vec(), vec![0u8; 3].into());
    assert_eq!(registered_in_receipt(&[bad], REGISTRY), None);
    // Too few topics.
    let short = Log {
        address: REGISTRY,
        data: LogData::new_unchecked(vec![Registered::SIGNATURE_HASH], Default::default()),
    };
    assert_eq!(registered_in_receipt(&[short], REGISTRY), None);
}

#[test]
fn recovery_matches_the_owner_and_the_uri() {
    let stranger = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    let ours = registered(REGISTRY, 3, " uri-a\n", OWNER);
    let ev = matching_registration(&ours, REGISTRY, OWNER, "uri-a").unwrap();
    assert_eq!(ev.agent_id, U256::from(3));
    for other in [
        registered(REGISTRY, 2, "uri-b", OWNER),
        registered(REGISTRY, 4, "uri-a", stranger),
        registered(stranger, 5, "uri-a", OWNER),
    ] {
        assert_eq!(
            matching_registration(&other, REGISTRY, OWNER, "uri-a"),
            None
        );
    }
    assert_eq!(agent_id_u64(U256::MAX), None);
}
