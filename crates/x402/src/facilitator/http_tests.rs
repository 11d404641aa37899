//! [`HttpFacilitator`] against a hand-rolled HTTP/1.1 responder on a loopback port.

use std::time::Duration;

use reqwest::Url;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::wire::{FacilitatorRequest, PaymentPayload};

/// What the fake facilitator answers for one path.
#[derive(Clone)]
struct Reply {
    delay: Duration,
    status: u16,
    body: &'static str,
}

fn reply(status: u16, body: &'static str) -> Reply {
    Reply {
        delay: Duration::ZERO,
        status,
        body,
    }
}

/// A request as the fake facilitator saw it.
#[derive(Debug)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

/// Serves `route(path)` on a fresh loopback port; every request is reported on the channel.
async fn serve(route: fn(&str) -> Reply) -> (Url, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Bounded: each test makes only a handful of calls.
        for _ in 0..32 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let Some(seen) = read_request(&mut socket).await else {
                    return;
                };
                let path = seen.head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let _ = tx.send(seen);
                let r = route(&path);
                tokio::time::sleep(r.delay).await;
                let head = format!(
                    "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    r.status,
                    r.body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(r.body.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (
        Url::parse(&format!("http://{addr}/facilitator/")).unwrap(),
        rx,
    )
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = socket.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        head,
        body: buf[head_end..head_end + len].to_vec(),
    })
}

fn request() -> FacilitatorRequest {
    let json = include_str!("../../tests/fixtures/v2_payment_signature.json");
    let PaymentPayload::V2(payload) = serde_json::from_str::<PaymentPayload>(json).unwrap() else {
        panic!("fixture is v2")
    };
    let requirements = payload.accepted.clone();
    FacilitatorRequest::V2 {
        payload,
        requirements,
    }
}

fn client(base: Url, verify_ms: u64, settle_ms: u64) -> HttpFacilitator {
    let mut config = HttpFacilitatorConfig::new(base);
    config.verify_timeout = Duration::from_millis(verify_ms);
    config.settle_timeout = Duration::from_millis(settle_ms);
    config.supported_timeout = Duration::from_millis(settle_ms);
    HttpFacilitator::new(config).unwrap()
}

const VALID: &str = r#"{"isValid":true,"payer":"0x857b06519E91e3A54538791bDbb0E22373e36b66"}"#;
const SETTLED: &str = r#"{"success":true,"transaction":"0x1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef","network":"eip155:84532","payer":"0x857b06519E91e3A54538791bDbb0E22373e36b66"}"#;

#[tokio::test]
async fn success_posts_the_payload_as_a_json_object() {
    let (base, mut seen) = serve(|path| match path {
        "/facilitator/verify" => reply(200, VALID),
        "/facilitator/settle" => reply(200, SETTLED),
        "/facilitator/supported" => reply(200, r#"{"kinds":[{"x402Version":2,"scheme":"exact","network":"eip155:84532"}],"extensions":[],"signers":{"eip155:*":["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"]}}"#),
        _ => reply(404, "not found"),
    })
    .await;
    let f: std::sync::Arc<dyn Facilitator> = std::sync::Arc::new(client(base, 2_000, 2_000));
    let verified = f.verify(&request()).await.unwrap();
    assert!(verified.payer_address().is_some());
    let settled = f.settle(&request()).await.unwrap();
    assert!(settled.transaction().is_some());
    assert!(f.supported().await.unwrap().supports(
        crate::wire::X402Version::V2,
        "exact",
        "eip155:84532"
    ));

    let verify = seen.recv().await.unwrap();
    assert!(
        verify.head.starts_with("POST /facilitator/verify HTTP/1.1"),
        "{}",
        verify.head
    );
    assert!(
        verify
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    let body: serde_json::Value = serde_json::from_slice(&verify.body).unwrap();
    assert_eq!(body["x402Version"], 2);
    assert!(
        body["paymentPayload"].is_object(),
        "payload must be an object, not base64"
    );
    assert_eq!(
        body["paymentRequirements"],
        body["paymentPayload"]["accepted"]
    );
    assert_eq!(
        serde_json::from_value::<FacilitatorRequest>(body).unwrap(),
        request()
    );
    assert!(
        seen.recv()
            .await
            .unwrap()
            .head
            .starts_with("POST /facilitator/settle ")
    );
    assert!(
        seen.recv()
            .await
            .unwrap()
            .head
            .starts_with("GET /facilitator/supported ")
    );
}

#[tokio::test]
async fn answers_are_classified_by_body() {
    let (base, _seen) = serve(|path| match path {
        "/facilitator/verify" => reply(200, r#"{"isValid":false,"invalidReason":"invalid_exact_evm_insufficient_balance","payer":"0x857b06519E91e3A54538791bDbb0E22373e36b66"}"#),
        "/facilitator/settle" => reply(400, r#"{"success":false,"network":"","transaction":"","errorReason":"invalid_signature","errorMessage":"x","payer":""}"#),
        _ => reply(500, "<html>Internal Server Error</html>"),
    })
    .await;
    let f = client(base, 2_000, 2_000);
    let err = f.verify(&request()).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.reason()),
        (
            FailureKind::Rejected,
            Some("invalid_exact_evm_insufficient_balance")
        )
    );
    let err = f.settle(&request()).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.reason()),
        (FailureKind::Rejected, Some("invalid_signature"))
    );
    assert!(matches!(
        err,
        FacilitatorError::Rejected { status: 400, .. }
    ));
    let err = f.supported().await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Malformed);
}

#[tokio::test]
async fn x402_rs_status_codes_and_non_json_errors() {
    let (base, _seen) = serve(|path| match path {
        "/facilitator/verify" => reply(412, r#"{"isValid":false,"invalidReason":"permit2_allowance_required","invalidReasonDetails":"x","payer":""}"#),
        _ => reply(500, "Internal Server Error"),
    })
    .await;
    let f = client(base, 2_000, 2_000);
    let err = f.verify(&request()).await.unwrap_err();
    assert!(
        matches!(err, FacilitatorError::Rejected { status: 412, .. }),
        "{err}"
    );
    let err = f.settle(&request()).await.unwrap_err();
    assert!(
        matches!(err, FacilitatorError::Malformed { status: 500, .. }),
        "{err}"
    );
    assert_eq!(err.endpoint(), Endpoint::Settle);
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let f = client(Url::parse(&format!("http://{addr}")).unwrap(), 2_000, 2_000);
    let err = f.verify(&request()).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.metric_label()),
        (FailureKind::Unreachable, "unreachable"),
        "{err}"
    );
    assert_eq!(
        f.supported().await.unwrap_err().kind(),
        FailureKind::Unreachable
    );
}

#[tokio::test]
async fn verify_and_settle_have_separate_budgets() {
    // Both endpoints answer after 400 ms: past the verify budget, within the settle budget.
    let (base, _seen) = serve(|path| {
        let body = if path.ends_with("/verify") {
            VALID
        } else {
            SETTLED
        };
        Reply {
            delay: Duration::from_millis(400),
            status: 200,
            body,
        }
    })
    .await;
    let f = client(base, 100, 5_000);
    let err = f.verify(&request()).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.metric_label()),
        (FailureKind::Unreachable, "timeout"),
        "{err}"
    );
    assert!(f.settle(&request()).await.is_ok());
}

#[test]
fn base_url_rules() {
    let ok = |u: &str| HttpFacilitatorConfig::new(Url::parse(u).unwrap());
    for good in [
        "https://x402.example/facilitator",
        "http://127.0.0.1:8080/",
        "http://localhost",
    ] {
        assert!(HttpFacilitator::new(ok(good)).is_ok(), "{good}");
    }
    for bad in [
        "ftp://x402.example",
        "https://x402.example/?a=1",
        "https://x402.example/#f",
        "mailto:a@b",
    ] {
        assert!(HttpFacilitator::new(ok(bad)).is_err(), "{bad}");
    }
}
