//! The upstream health probe: `GET <healthPath>` on the Service's ready endpoint addresses.
//!
//! Addresses come from core/v1 Endpoints, not from the Service's DNS name: that works inside a
//! cluster and from outside it. An `ExternalName` Service is probed at its host name: that is
//! how the one-machine stack points at processes on loopback, which Endpoints may not name
//! (API validation refuses 127.0.0.0/8). Every probe has a deadline.

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::Api;
use obol_api::service_offer::Upstream;

use crate::error::{Error, Result};
use crate::plan::status::Probe;

/// Most addresses tried per probe.
const MAX_TARGETS: usize = 3;

/// Probes the upstream of an offer in `namespace` (the upstream's namespace). With the answer
/// comes, for an `ExternalName` Service, the host and port it was probed at.
pub async fn probe(
    client: &kube::Client,
    namespace: &str,
    upstream: &Upstream,
    timeout: Duration,
) -> Result<(Probe, Option<(String, i32)>)> {
    let mut external = None;
    let probe = probe_at(client, namespace, upstream, timeout, &mut external).await?;
    Ok((probe, external))
}

async fn probe_at(
    client: &kube::Client,
    namespace: &str,
    upstream: &Upstream,
    timeout: Duration,
    external: &mut Option<(String, i32)>,
) -> Result<Probe> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let Some(service) = services
        .get_opt(&upstream.service)
        .await
        .map_err(Error::kube("get upstream Service"))?
    else {
        return Ok(Probe::MissingService);
    };
    if let Some((host, port)) = obol_api::upstream::external_target(&service, upstream.port) {
        *external = Some((host.clone(), port));
        let Ok(port) = u16::try_from(port) else {
            return Ok(Probe::Unhealthy {
                message: format!("invalid upstream port {port}"),
            });
        };
        return Ok(
            match get(&host, port, &upstream.health_path, timeout).await {
                Ok(code) if code < 400 => Probe::Healthy { code },
                Ok(code) => Probe::Unhealthy {
                    message: format!("HTTP {code} from upstream"),
                },
                Err(message) => Probe::Unhealthy { message },
            },
        );
    }
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), namespace);
    let Some(eps) = endpoints
        .get_opt(&upstream.service)
        .await
        .map_err(Error::kube("get upstream Endpoints"))?
    else {
        return Ok(Probe::NoEndpoints);
    };
    let targets = obol_api::upstream::targets(&service, &eps, upstream.port);
    if targets.is_empty() {
        return Ok(Probe::NoEndpoints);
    }
    let mut first_failure = None;
    for (ip, port) in targets.into_iter().take(MAX_TARGETS) {
        match get(&ip, port, &upstream.health_path, timeout).await {
            Ok(code) if code < 400 => return Ok(Probe::Healthy { code }),
            Ok(code) => {
                first_failure.get_or_insert(format!("HTTP {code} from upstream"));
            }
            Err(e) => {
                first_failure.get_or_insert(e);
            }
        }
    }
    Ok(Probe::Unhealthy {
        message: first_failure.unwrap_or_else(|| "no answer".into()),
    })
}

/// One `GET http://ip:port/path`, returning the status code, within `timeout`.
async fn get(ip: &str, port: u16, path: &str, timeout: Duration) -> Result<u16, String> {
    let host = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(&host)
            .await
            .map_err(|e| format!("connect {host}: {e}"))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("handshake with {host}: {e}"))?;
        let driver = tokio::spawn(conn);
        let request = http::Request::get(path)
            .header(http::header::HOST, &host)
            .header(http::header::USER_AGENT, "serviceoffer-controller")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("GET {path} on {host}: {e}"));
        driver.abort();
        response.map(|r| r.status().as_u16())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("GET {path} on {host}: no answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn get_answers_with_the_status_or_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                if req.starts_with("GET /slow") {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                let code = if req.starts_with("GET /health ") {
                    "204 No Content"
                } else {
                    "503 Unavailable"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {code}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let t = Duration::from_millis(300);
        assert_eq!(get("127.0.0.1", port, "/health", t).await, Ok(204));
        assert_eq!(get("127.0.0.1", port, "/other", t).await, Ok(503));
        let slow = get("127.0.0.1", port, "/slow", t).await.unwrap_err();
        assert!(slow.contains("no answer within"), "{slow}");
        let closed = get("127.0.0.1", 1, "/health", t).await.unwrap_err();
        assert!(closed.contains("connect"), "{closed}");
    }
}
