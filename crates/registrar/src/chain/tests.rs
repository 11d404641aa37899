//! The chain edge against scripted JSON-RPC conversations (alloy `Asserter`): each reply is
//! consumed in order, so a test also fails when the client makes a different call.

use alloy::primitives::{LogData, address};
use alloy::providers::ProviderBuilder;
use alloy::rpc::json_rpc::ErrorPayload;
use alloy::sol_types::SolEvent;
use alloy::transports::mock::Asserter;
use serde_json::json;

use super::*;
use crate::abi::IIdentityRegistry::Registered;

const REGISTRY: Address = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");
const SIGNER: Address = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
const URI: &str = "data:application/json;base64,e30=";

fn client(asserter: &Asserter) -> ChainClient {
    let provider = ProviderBuilder::new()
        .connect_mocked_client(asserter.clone())
        .erased();
    ChainClient::new(
        84532,
        provider,
        SIGNER,
        Duration::from_millis(1),
        Duration::from_millis(50),
    )
}

fn registered_log(id: u64, tx: B256) -> serde_json::Value {
    let data = Registered {
        agentId: U256::from(id),
        agentURI: URI.into(),
        owner: SIGNER,
    }
    .encode_log_data();
    log_json(&data, tx)
}

fn log_json(data: &LogData, tx: B256) -> serde_json::Value {
    json!({
        "address": REGISTRY,
        "topics": data.topics(),
        "data": data.data,
        "blockHash": B256::repeat_byte(1),
        "blockNumber": "0x5",
        "transactionHash": tx,
        "transactionIndex": "0x0",
        "logIndex": "0x2",
        "removed": false,
    })
}

fn receipt_json(tx: B256, status: &str, logs: Vec<serde_json::Value>) -> serde_json::Value {
    json!({
        "transactionHash": tx,
        "transactionIndex": "0x0",
        "blockHash": B256::repeat_byte(1),
        "blockNumber": "0x5",
        "from": SIGNER,
        "to": REGISTRY,
        "cumulativeGasUsed": "0x1",
        "gasUsed": "0x1",
        "contractAddress": null,
        "logs": logs,
        "logsBloom": format!("0x{}", "0".repeat(512)),
        "status": status,
        "effectiveGasPrice": "0x1",
        "type": "0x2",
    })
}

fn tx_json(tx: B256, nonce: u64) -> serde_json::Value {
    json!({
        "hash": tx, "nonce": format!("{nonce:#x}"), "blockHash": B256::repeat_byte(1),
        "blockNumber": "0x5", "transactionIndex": "0x0", "from": SIGNER, "to": REGISTRY,
        "value": "0x0", "gas": "0x5208", "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x1",
        "input": "0x", "chainId": "0x14a34", "type": "0x2", "accessList": [],
        "v": "0x0", "r": "0x1", "s": "0x1", "yParity": "0x0"
    })
}

fn reserved_fence(from_block: u64, nonce: u64) -> Fence {
    Fence {
        uri: URI.into(),
        from_block,
        reservation: Some(Reservation {
            signer: SIGNER,
            nonce,
        }),
    }
}

#[tokio::test]
async fn the_agent_is_found_only_from_the_transaction_with_the_reserved_nonce() {
    let tx = B256::repeat_byte(0xcd);
    for (nonce_of_log_tx, want) in [(7, Some((4, tx))), (6, None)] {
        let a = Asserter::new();
        a.push_success(&"0x14a34"); // eth_chainId
        a.push_success(&"0x9"); // eth_blockNumber: the pinned block
        a.push_success(&"0x8"); // eth_getTransactionCount at the pinned block
        a.push_success(&json!([registered_log(4, tx)])); // eth_getLogs 3..=9
        a.push_success(&tx_json(tx, nonce_of_log_tx)); // eth_getTransactionByHash
        a.push_success(&"0x8"); // eth_getTransactionCount pending
        let got = client(&a)
            .observe(REGISTRY, &reserved_fence(3, 7), None)
            .await
            .unwrap();
        assert_eq!(got.minted, want, "log from nonce {nonce_of_log_tx}");
        assert_eq!((got.mined_nonce, got.pending_nonce), (8, 8));
        assert!(got.own_key);
        assert!(a.read_q().is_empty());
    }
}

#[tokio::test]
async fn the_stored_transaction_counts_as_mined_only_up_to_the_pinned_block() {
    let tx = B256::repeat_byte(0xab);
    for (receipt_block, status, want) in [
        ("0x5", "0x1", StoredTx::Succeeded),
        ("0x5", "0x0", StoredTx::Reverted),
        ("0xa", "0x1", StoredTx::Pending),
    ] {
        let a = Asserter::new();
        a.push_success(&"0x14a34");
        a.push_success(&"0x9");
        a.push_success(&"0x7");
        a.push_success(&json!([]));
        let mut receipt = receipt_json(tx, status, vec![]);
        receipt["blockNumber"] = json!(receipt_block);
        a.push_success(&receipt);
        a.push_success(&"0x7");
        let got = client(&a)
            .observe(REGISTRY, &reserved_fence(3, 7), Some(tx))
            .await
            .unwrap();
        assert_eq!(got.stored, want, "receipt in block {receipt_block}");
    }
    // Unknown to the node: dropped, or never arrived.
    let a = Asserter::new();
    a.push_success(&"0x14a34");
    a.push_success(&"0x9");
    a.push_success(&"0x7");
    a.push_success(&json!([]));
    a.push_success(&serde_json::Value::Null); // no receipt
    a.push_success(&serde_json::Value::Null); // not in the pool
    a.push_success(&"0x7");
    let got = client(&a)
        .observe(REGISTRY, &reserved_fence(3, 7), Some(tx))
        .await
        .unwrap();
    assert_eq!(got.stored, StoredTx::Unknown);
}

#[tokio::test]
async fn wide_ranges_are_searched_in_windows() {
    let a = Asserter::new();
    a.push_success(&"0x14a34");
    a.push_success(&format!("{:#x}", LOG_WINDOW * 2 + 5));
    a.push_success(&"0x0");
    for _ in 0..3 {
        a.push_success(&json!([]));
    }
    a.push_success(&"0x0");
    let got = client(&a)
        .observe(REGISTRY, &reserved_fence(0, 0), None)
        .await
        .unwrap();
    assert_eq!(got.minted, None);
    assert!(a.read_q().is_empty(), "three getLogs windows");
}

#[tokio::test]
async fn a_wrong_chain_is_refused_before_anything_else() {
    let a = Asserter::new();
    a.push_success(&"0x1");
    let err = client(&a).reserve(REGISTRY).await.unwrap_err();
    assert_eq!(
        err,
        ChainError::WrongChain {
            wanted: 84532,
            actual: 1
        }
    );
}

#[tokio::test]
async fn node_errors_are_classified() {
    let a = Asserter::new();
    a.push_success(&"0x14a34");
    a.push_failure(ErrorPayload {
        code: -32000,
        message: "header not found".into(),
        data: None,
    });
    let err = client(&a).reserve(REGISTRY).await.unwrap_err();
    assert!(matches!(err, ChainError::Rpc { .. }), "{err:?}");
    assert!(!err.is_permanent());
}

#[test]
fn metadata_is_the_agreed_key_set() {
    let meta: BTreeMap<String, String> = [("gpu", "A100"), (" ", "x"), ("empty", "")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let live = desired_metadata(&meta, true);
    assert_eq!(live.len(), 2);
    assert_eq!(live["x402.supported"], Bytes::from(vec![1u8]));
    assert_eq!(live["metadata.gpu"], Bytes::from(b"A100".to_vec()));
    let dead = desired_metadata(&meta, false);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead["x402.supported"], Bytes::from(vec![0u8]));
}

#[tokio::test]
async fn metadata_is_read_before_it_is_written() {
    use crate::abi::IIdentityRegistry::{getAgentWalletCall, getMetadataCall, ownerOfCall};
    use alloy::sol_types::SolCall as _;
    let a = Asserter::new();
    a.push_success(&"0x14a34");
    a.push_success(&Bytes::from(ownerOfCall::abi_encode_returns(&SIGNER)));
    // Both keys already hold the desired values and the wallet is unset: reads only.
    for value in [b"A100".to_vec(), vec![1u8]] {
        let encoded = getMetadataCall::abi_encode_returns(&Bytes::from(value));
        a.push_success(&Bytes::from(encoded));
    }
    a.push_success(&Bytes::from(getAgentWalletCall::abi_encode_returns(
        &Address::ZERO,
    )));
    let meta = [("gpu".to_owned(), "A100".to_owned())].into();
    let desired = desired_metadata(&meta, true);
    let written = client(&a)
        .sync_metadata(REGISTRY, 0, &desired)
        .await
        .unwrap();
    assert_eq!(written, 0);
    assert!(a.read_q().is_empty(), "exactly four eth_call");
}

#[tokio::test]
async fn an_agent_of_another_owner_is_refused_before_any_write() {
    use crate::abi::IIdentityRegistry::ownerOfCall;
    use alloy::sol_types::SolCall as _;
    let other = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    let a = Asserter::new();
    a.push_success(&"0x14a34");
    a.push_success(&Bytes::from(ownerOfCall::abi_encode_returns(&other)));
    let err = client(&a)
        .set_agent_uri(REGISTRY, 3, URI)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChainError::NotOwner { agent_id: 3, .. }),
        "{err:?}"
    );
    assert!(err.is_permanent());
    assert!(a.read_q().is_empty(), "nothing sent");
}

#[tokio::test]
async fn registries_of_another_version_are_refused_before_fencing() {
    use crate::abi::IIdentityRegistry::getVersionCall;
    use alloy::sol_types::SolCall as _;
    let a = Asserter::new();
    a.push_success(&"0x14a34");
    a.push_success(&"0x6080"); // eth_getCode
    let v1 = getVersionCall::abi_encode_returns(&"1.0.0".to_owned());
    a.push_success(&Bytes::from(v1));
    let err = client(&a).reserve(REGISTRY).await.unwrap_err();
    assert!(
        matches!(err, ChainError::UnsupportedRegistry { .. }),
        "{err:?}"
    );
    assert!(err.is_permanent());
    assert!(a.read_q().is_empty(), "nothing reserved");
}

#[tokio::test]
async fn the_implementation_behind_the_proxy_is_refused_with_a_clear_message() {
    use crate::abi::IIdentityRegistry::{getVersionCall, nameCall};
    use alloy::sol_types::SolCall as _;
    let a = Asserter::new();
    a.push_success(&"0x14a34");
    a.push_success(&"0x6080");
    a.push_success(&Bytes::from(getVersionCall::abi_encode_returns(
        &"2.0.0".to_owned(),
    )));
    // Initializers disabled: the implementation's own storage has no name.
    a.push_success(&Bytes::from(nameCall::abi_encode_returns(&String::new())));
    let err = client(&a).reserve(REGISTRY).await.unwrap_err();
    assert!(matches!(err, ChainError::NotTheProxy { .. }), "{err:?}");
    assert!(err.is_permanent());
    let message = err.to_string();
    assert!(
        message.contains("implementation") && message.contains("proxy"),
        "{message}"
    );
    assert!(
        message.contains("0x8004A818BFB912233c491871b3d84c89A494BD9e"),
        "names the official registry of the chain: {message}"
    );
}
