//! The chain edge against scripted JSON-RPC conversations (alloy `Asserter`): each reply is
//! consumed in order, so a test also fails when the client makes a different call.

use alloy::primitives::{LogData, address};
use alloy::providers::ProviderBuilder;
use alloy::rpc::json_rpc::ErrorPayload;
use alloy::sol_types::SolEvent;
use alloy::transports::mock::Asserter;
use serde_json::json;

use super::*;

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

#[tokio::test]
async fn recovers_the_agent_from_the_stored_receipt() {
    let a = Asserter::new();
    let tx = B256::repeat_byte(0xab);
    a.push_success(&"0x14a34"); // eth_chainId
    a.push_success(&receipt_json(tx, "0x1", vec![registered_log(0, tx)]));
    let got = client(&a)
        .recover(REGISTRY, URI, 1, Some(tx))
        .await
        .unwrap();
    assert_eq!(
        got,
        Recovery::Found {
            agent_id: 0,
            tx_hash: Some(tx)
        }
    );
    assert!(a.read_q().is_empty());
}

#[tokio::test]
async fn a_reverted_receipt_is_permanent() {
    let a = Asserter::new();
    let tx = B256::repeat_byte(0xab);
    a.push_success(&"0x14a34");
    a.push_success(&receipt_json(tx, "0x0", vec![]));
    let err = client(&a)
        .recover(REGISTRY, URI, 1, Some(tx))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");
}

#[tokio::test]
async fn a_pending_stored_transaction_is_in_flight() {
    let a = Asserter::new();
    let tx = B256::repeat_byte(0xab);
    a.push_success(&"0x14a34");
    a.push_success(&serde_json::Value::Null); // no receipt yet
    a.push_success(&json!({
        "hash": tx, "nonce": "0x0", "blockHash": null, "blockNumber": null,
        "transactionIndex": null, "from": SIGNER, "to": REGISTRY, "value": "0x0",
        "gas": "0x5208", "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x1",
        "input": "0x", "chainId": "0x14a34", "type": "0x2", "accessList": [],
        "v": "0x0", "r": "0x1", "s": "0x1", "yParity": "0x0"
    }));
    let got = client(&a)
        .recover(REGISTRY, URI, 1, Some(tx))
        .await
        .unwrap();
    assert_eq!(got, Recovery::InFlight);
}

#[tokio::test]
async fn without_a_hash_the_signers_logs_are_searched() {
    let a = Asserter::new();
    let tx = B256::repeat_byte(0xcd);
    a.push_success(&"0x14a34");
    a.push_success(&"0x9"); // eth_blockNumber
    a.push_success(&json!([registered_log(4, tx)])); // eth_getLogs 3..=9
    let got = client(&a).recover(REGISTRY, URI, 3, None).await.unwrap();
    assert_eq!(
        got,
        Recovery::Found {
            agent_id: 4,
            tx_hash: Some(tx)
        }
    );
}

#[tokio::test]
async fn nothing_found_but_a_pending_nonce_is_in_flight() {
    for (pending, latest, want) in [
        ("0x3", "0x2", Recovery::InFlight),
        ("0x2", "0x2", Recovery::Absent),
    ] {
        let a = Asserter::new();
        a.push_success(&"0x14a34");
        a.push_success(&"0x9");
        a.push_success(&json!([]));
        a.push_success(&pending);
        a.push_success(&latest);
        let got = client(&a).recover(REGISTRY, URI, 3, None).await.unwrap();
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn wide_ranges_are_searched_in_windows() {
    let a = Asserter::new();
    a.push_success(&"0x14a34");
    a.push_success(&format!("{:#x}", LOG_WINDOW * 2 + 5));
    for _ in 0..3 {
        a.push_success(&json!([]));
    }
    a.push_success(&"0x0");
    a.push_success(&"0x0");
    let got = client(&a).recover(REGISTRY, URI, 0, None).await.unwrap();
    assert_eq!(got, Recovery::Absent);
    assert!(a.read_q().is_empty(), "three getLogs windows");
}

#[tokio::test]
async fn a_wrong_chain_is_refused_before_anything_else() {
    let a = Asserter::new();
    a.push_success(&"0x1");
    let err = client(&a).block_number().await.unwrap_err();
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
    let err = client(&a).block_number().await.unwrap_err();
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
    use crate::contracts::IdentityRegistry::getMetadataCall;
    use alloy::sol_types::SolCall as _;
    let a = Asserter::new();
    a.push_success(&"0x14a34");
    // Both keys already hold the desired values: two reads, no transaction.
    for value in [b"A100".to_vec(), vec![1u8]] {
        let encoded = getMetadataCall::abi_encode_returns(&Bytes::from(value));
        a.push_success(&Bytes::from(encoded));
    }
    let meta = [("gpu".to_owned(), "A100".to_owned())].into();
    let desired = desired_metadata(&meta, true);
    let written = client(&a)
        .sync_metadata(REGISTRY, 0, &desired)
        .await
        .unwrap();
    assert_eq!(written, 0);
    assert!(a.read_q().is_empty(), "exactly two eth_call");
}

#[tokio::test]
async fn registries_of_another_version_are_refused_before_sending() {
    use crate::contracts::IdentityRegistry::getVersionCall;
    use alloy::sol_types::SolCall as _;
    let a = Asserter::new();
    a.push_success(&"0x14a34");
    a.push_success(&"0x9"); // eth_blockNumber
    a.push_success(&json!([])); // eth_getLogs
    a.push_success(&"0x0"); // pending nonce
    a.push_success(&"0x0"); // latest nonce
    a.push_success(&"0x6080"); // eth_getCode
    let v1 = getVersionCall::abi_encode_returns(&"1.0.0".to_owned());
    a.push_success(&Bytes::from(v1));
    let err = client(&a)
        .submit(REGISTRY, URI, 3, None, true)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChainError::UnsupportedRegistry { .. }),
        "{err:?}"
    );
    assert!(err.is_permanent());
    assert!(a.read_q().is_empty(), "nothing sent");
}
