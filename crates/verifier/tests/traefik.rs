//! The verifier behind a real Traefik (ForwardAuth, file provider): what a client sees for
//! URLs of every length. The 402 echoes a bounded resource URL (path kept, a long query cut),
//! and a URL too long to price gets a deliberate 414 with its reason, never whatever the gateway
//! makes of an oversized auth answer (before, a URL over ~64 KB came back as an empty 401).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use std::time::Duration;

use obol_testenv::eventually;
use obol_testenv::traefik::FileTraefik;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that answers 200 "upstream" to anything.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                let _ = sock.read(&mut buf).await;
                let reply =
                    "HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream";
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

/// A GET written by hand on its own connection: (status, body).
async fn raw_get(port: u16, path: &str) -> (u16, String) {
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer within 10 s");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

struct Traefik {
    _proc: FileTraefik,
    dir: std::path::PathBuf,
    web: u16,
}

impl Drop for Traefik {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Traefik in front of the verifier's route `demo/demo`; ready once `probe` answers 402.
async fn start_traefik(verifier: u16, upstream: u16, probe: &str) -> Traefik {
    let dir = obol_testenv::scratch_dir("verifier-traefik");
    let proc = FileTraefik::start(
        &dir,
        &format!(
            "http:
  routers:
    demo:
      rule: \"PathPrefix(`/services/demo`)\"
      entryPoints: [web]
      middlewares: [x402]
      service: demo
  middlewares:
    x402:
      forwardAuth:
        address: \"http://127.0.0.1:{verifier}/verify/demo/demo\"
  services:
    demo:
      loadBalancer:
        servers:
          - url: \"http://127.0.0.1:{upstream}\"
"
        ),
    );
    let web = proc.web;
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(30), || async {
        http.get(format!("http://127.0.0.1:{web}{probe}"))
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 402)
    })
    .await;
    Traefik {
        _proc: proc,
        dir,
        web,
    }
}

/// The verifier of `h` served on loopback behind [`start_traefik`], and an HTTP client with a
/// 10 s timeout.
async fn behind_traefik(h: &Harness, probe: &str) -> (Traefik, reqwest::Client) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let verifier = listener.local_addr().unwrap().port();
    let app = obol_verifier::app(h.state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let traefik = start_traefik(verifier, upstream().await, probe).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    (traefik, http)
}

#[tokio::test]
async fn urls_of_every_length_through_traefik() {
    let h = Harness::demo();
    let (traefik, http) = behind_traefik(&h, "/services/demo/x").await;
    let url = |path_and_query: &str| format!("http://127.0.0.1:{}{path_and_query}", traefik.web);

    // A long query: the 402 keeps the path and cuts the query.
    let long_query = format!("/services/demo/chat?q={}", "x".repeat(4000));
    let r = http.get(url(&long_query)).send().await.unwrap();
    assert_eq!(r.status(), 402);
    let body: serde_json::Value = r.json().await.unwrap();
    let resource = body["accepts"][0]["resource"].as_str().unwrap().to_owned();
    assert!(resource.ends_with("/services/demo/chat"), "{resource}");
    assert!(resource.len() < 100, "{resource}");

    // Past the verifier's limit, and far past it (no HTTP client library sends a URI over
    // 64 KiB, so the request is written by hand): a deliberate 414 with its reason.
    for len in [9 * 1024, 70 * 1024, 200 * 1024] {
        let path = format!("/services/demo/{}", "a".repeat(len));
        let (status, text) = raw_get(traefik.web, &path).await;
        assert_eq!(status, 414, "{len} bytes: {status} {:.200}", text);
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["reason"], "uri_too_long", "{len} bytes");
        assert!(text.len() < 1024, "nothing of the URL is echoed");
    }
    assert_eq!(h.facilitator.calls(), (0, 0));
}

/// A route table behind the real Traefik ForwardAuth: Traefik sends the client's method in
/// X-Forwarded-Method, so a POST-only route prices POSTs; a free route reaches the upstream
/// unpaid; an unlisted path is 404 and a path listed for other methods 405.
#[tokio::test]
async fn a_route_table_through_traefik() {
    use obol_api::routes::{Gate, RouteRule};
    let rule = |pattern: &str, gate, price: Option<&str>, methods: &[&str]| RouteRule {
        pattern: pattern.into(),
        gate,
        price: price.map(str::to_owned),
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        summary: None,
        input_schema: None,
        output_schema: None,
    };
    let mut table = spec("/services/demo/*", "1000");
    table.routes = vec![
        rule("/services/demo/v1/*", Gate::Paid, None, &[]),
        rule("/services/demo/health", Gate::Free, None, &[]),
        rule(
            "/services/demo/v1/chat/completions",
            Gate::Paid,
            Some("5000"),
            &["POST"],
        ),
        rule("/services/demo/admin", Gate::Paid, None, &["DELETE"]),
    ];
    let h = Harness::new(vec![entry("demo", "demo", &table)]);
    let (traefik, http) = behind_traefik(&h, "/services/demo/v1/x").await;
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", traefik.web);
    let amount = |body: &serde_json::Value| body["accepts"][0]["maxAmountRequired"].clone();

    let r = http.get(url("/services/demo/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "upstream");
    let r = http
        .post(url("/services/demo/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    assert_eq!(
        r.headers().get("link").unwrap(),
        obol_api::routes::CATALOG_LINK
    );
    assert_eq!(amount(&r.json().await.unwrap()), "5000");
    let r = http
        .get(url("/services/demo/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        amount(&r.json().await.unwrap()),
        "1000",
        "GET falls to /v1/*"
    );
    let r = http.get(url("/services/demo/other")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "route_not_listed");
    let r = http.get(url("/services/demo/admin")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(h.facilitator.calls(), (0, 0));
}

/// ForwardAuth carries the HTML paywall: on a non-2xx Traefik hands the auth server's status,
/// headers and body to the client, so a browser gets the page (with its policy) through the
/// gateway, and an x402 client the JSON 402.
#[tokio::test]
async fn a_browser_gets_the_html_paywall_through_traefik_forward_auth() {
    let h = Harness::demo();
    let (traefik, http) = behind_traefik(&h, "/services/demo/x").await;
    let url = format!("http://127.0.0.1:{}/services/demo/chat", traefik.web);
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let r = http
        .get(&url)
        .header("accept", browser)
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    let header = |name: &str| r.headers().get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert!(
        header("content-security-policy").starts_with("default-src 'none'; script-src 'sha256-")
    );
    assert_eq!(header("cache-control"), "no-store");
    assert!(r.headers().get("payment-required").is_some());
    let page = r.text().await.unwrap();
    assert!(page.contains("Pay with wallet"), "{page:.300}");
    assert!(page.contains("id=\"x402-offer\""));
    for accept in ["*/*", "application/json"] {
        let r = http
            .get(&url)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 402);
        assert_eq!(r.headers()["content-type"], "application/json", "{accept}");
    }
    assert_eq!(h.facilitator.calls(), (0, 0));
}
