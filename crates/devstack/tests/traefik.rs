//! The dev adapter with a real Traefik and the real control plane: a route is served only with
//! its ForwardAuth gate, the gate's 402 reaches the client, a paid request reaches the upstream
//! with the prefix stripped and the auth headers copied, and losing the gate stops serving; the
//! Gateway it plays is marked Accepted and Programmed.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use obol_api::gateway::{Gateway, HttpRoute};
use obol_api::traefik::Middleware;
use obol_devstack::traefik::adapter::{AdapterConfig, run};
use obol_devstack::traefik::render::GatewayRef;
use obol_testenv::traefik::FileTraefik;
use obol_testenv::{TestEnv, eventually};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback HTTP/1.1 server: `answer(request head)` gives (status line, headers, body).
async fn server(answer: fn(&str) -> (String, String, String)) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let (status, headers, body) = answer(&head);
                let reply = format!(
                    "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Stand-in for the verifier: 402 without `X-Test-Paid`, else 200 with upstream credentials.
fn auth(head: &str) -> (String, String, String) {
    if header(head, "x-test-paid").is_some() {
        let uri = header(head, "x-forwarded-uri").unwrap_or("-").to_owned();
        (
            "200 OK".into(),
            format!(
                "authorization: Bearer upstream-key\r\nx-payment-tx: 0xabc\r\nx-seen-uri: {uri}\r\n"
            ),
            String::new(),
        )
    } else {
        (
            "402 Payment Required".into(),
            "content-type: application/json\r\n".into(),
            r#"{"x402Version":1,"error":"pay"}"#.into(),
        )
    }
}

/// The upstream: echoes the path and the Authorization it received.
fn upstream(head: &str) -> (String, String, String) {
    let path = head.split_whitespace().nth(1).unwrap_or("?").to_owned();
    let auth = header(head, "authorization").unwrap_or("none").to_owned();
    (
        "200 OK".into(),
        "content-type: text/plain\r\n".into(),
        format!("path={path} auth={auth}"),
    )
}

#[tokio::test]
async fn routes_are_served_only_through_their_gate() {
    let env = TestEnv::get().await;
    let ns = env.namespace("traefik").await;
    let n = ns.name().to_owned();
    let (auth_port, up_port) = (server(auth).await, server(upstream).await);
    let dir = obol_testenv::scratch_dir("traefik");
    let traefik = FileTraefik::start(&dir, "{}\n");
    let (web, file) = (traefik.web, traefik.config.clone());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    eventually(Duration::from_secs(30), || async {
        http.get(traefik.ping_url())
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;

    // The adapter plays a gateway of this test only, so other tests' routes stay untouched.
    let gateway = GatewayRef {
        name: format!("gw-{n}"),
        namespace: n.clone(),
        entry_point: "web".into(),
    };
    let adapter = tokio::spawn(run(
        env.client(),
        AdapterConfig {
            gateway: gateway.clone(),
            file: file.clone(),
        },
    ));

    // The Gateway it plays is taken, as Traefik takes one: Accepted and Programmed.
    let played = obol_devstack::traefik::adapter::gateway_objects(&gateway, web)
        .into_iter()
        .find(|o| o.kind() == "Gateway")
        .unwrap();
    let gateways: Api<Gateway> = Api::namespaced(env.client(), &n);
    gateways
        .create(
            &PostParams::default(),
            &serde_json::from_value(played.0).unwrap(),
        )
        .await
        .unwrap();
    eventually(Duration::from_secs(30), || async {
        let gw = gateways.get(&gateway.name).await.ok()?;
        gw.not_taken().is_empty().then_some(())
    })
    .await;

    let svc: Service = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "demo"}, "spec": {"type": "ExternalName", "externalName": "localhost"}})).unwrap();
    Api::<Service>::namespaced(env.client(), &n)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let mw: Middleware = serde_json::from_value(json!({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
        "metadata": {"name": "x402-demo"},
        "spec": {"forwardAuth": {"address": format!("http://127.0.0.1:{auth_port}/verify/{n}/x402-demo"),
                 "authResponseHeaders": ["Authorization", "X-Payment-Tx"]}}})).unwrap();
    let middlewares: Api<Middleware> = Api::namespaced(env.client(), &n);
    middlewares
        .create(&PostParams::default(), &mw)
        .await
        .unwrap();
    let route: HttpRoute = serde_json::from_value(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "so-demo"},
        "spec": {"parentRefs": [{"name": gateway.name, "namespace": n, "sectionName": "web"}],
          "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/services/demo"}}],
            "filters": [{"type": "ExtensionRef", "extensionRef": {"group": "traefik.io", "kind": "Middleware", "name": "x402-demo"}},
                        {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
            "backendRefs": [{"name": "demo", "port": up_port}]}]}})).unwrap();
    let routes: Api<HttpRoute> = Api::namespaced(env.client(), &n);
    routes.create(&PostParams::default(), &route).await.unwrap();

    eventually(Duration::from_secs(20), || async {
        routes
            .get("so-demo")
            .await
            .ok()
            .filter(|r| r.accepted_by(&gateway.name, &n))
    })
    .await;
    let url = format!("http://127.0.0.1:{web}/services/demo/v1/hello?x=1");
    // Traefik reloads the file on its own schedule: wait until the route answers.
    let unpaid = eventually(Duration::from_secs(20), || async {
        http.get(&url)
            .send()
            .await
            .ok()
            .filter(|r| r.status() != 404)
    })
    .await;
    assert_eq!(unpaid.status(), 402);
    assert_eq!(
        unpaid.text().await.unwrap(),
        r#"{"x402Version":1,"error":"pay"}"#
    );

    let paid = http
        .get(&url)
        .header("x-test-paid", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    assert_eq!(
        paid.text().await.unwrap(),
        "path=/v1/hello?x=1 auth=Bearer upstream-key"
    );
    let other = http
        .get(format!("http://127.0.0.1:{web}/services/demox"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        404,
        "a path prefix matches whole segments only"
    );

    // The gate disappears: the route is withdrawn, never served unpaid.
    middlewares
        .delete("x402-demo", &DeleteParams::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(20), || async {
        let r = routes.get("so-demo").await.ok()?;
        let parent = r.status.as_ref()?.parents.first()?.clone();
        parent
            .conditions
            .iter()
            .find(|c| c.type_ == "Accepted" && !c.is_true() && c.reason == "UnresolvedMiddleware")
            .map(|_| ())
    })
    .await;
    let gone = eventually(Duration::from_secs(20), || async {
        http.get(&url)
            .header("x-test-paid", "1")
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 404)
    })
    .await;
    assert_eq!(gone.status(), 404);
    adapter.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
