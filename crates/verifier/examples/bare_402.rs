//! A bare hyper server answering every request with the same fixed 402: the baseline that
//! `scripts/bench-verifier-402.sh` compares the verifier's unpaid path against. Given a body
//! file and a `PAYMENT-REQUIRED` value file (the script captures both from the verifier), it
//! sends exactly the verifier's bytes, so the comparison measures the deciding, not the size.
//!
//! `cargo run --release -p obol-verifier --example bare-402 -- 127.0.0.1:18090 [BODY [HEADER]]`

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// About the size of the verifier's 402 body.
const BODY: &str = r#"{"x402Version":1,"error":"Payment required for this resource","accepts":[{"scheme":"exact","network":"base-sepolia","maxAmountRequired":"1000","resource":"http://127.0.0.1/services/demo","description":"Payment required for /services/demo","mimeType":"application/json","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":60,"asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","extra":{"name":"USDC","version":"2"}}]}"#;

struct Fixed {
    body: Bytes,
    payment_required: Option<hyper::header::HeaderValue>,
}

async fn answer(
    fixed: Arc<Fixed>,
    _: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(fixed.body.clone()));
    *response.status_mut() = StatusCode::PAYMENT_REQUIRED;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(v) = &fixed.payment_required {
        headers.insert("payment-required", v.clone());
    }
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let body = match std::env::args().nth(2) {
        Some(path) => Bytes::from(std::fs::read(path)?),
        None => Bytes::from_static(BODY.as_bytes()),
    };
    let payment_required = match std::env::args().nth(3) {
        Some(path) => Some(
            hyper::header::HeaderValue::from_str(std::fs::read_to_string(path)?.trim())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
        ),
        None => None,
    };
    let fixed = Arc::new(Fixed {
        body,
        payment_required,
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let fixed = fixed.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(fixed.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
