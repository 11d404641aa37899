//! The client that forwards paid requests to upstreams: pooled connections with HTTP/1.1
//! keep-alive, or HTTP/2 without TLS (h2c, prior knowledge) when the setting says so; a time
//! budget for the connection and one for the answer's head; request bodies streamed through
//! with a size limit.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Response};
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A boxed error of a body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of an upstream-bound request.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Settings of the upstream side (verifier flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Budget to connect.
    pub connect_timeout: Duration,
    /// Budget from sending the request to the answer's head.
    pub head_timeout: Duration,
    /// Longest silence inside an answer's body.
    pub idle_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per upstream.
    pub pool_max_idle: usize,
    /// Speak HTTP/2 (h2c, prior knowledge) to upstreams instead of HTTP/1.1.
    pub http2: bool,
    /// Largest request body forwarded.
    pub max_request_bytes: u64,
    /// Largest answer read whole before settling (larger ones are streamed).
    pub max_buffer_bytes: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            head_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(300),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle: 64,
            http2: false,
            max_request_bytes: 10 << 20,
            max_buffer_bytes: 16 << 20,
        }
    }
}

/// Why an upstream gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The head did not arrive within its budget.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed or broke off.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The client's request body went over the limit.
    #[error("request body over the limit")]
    RequestTooLarge,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpConnector, ProxyBody>,
    /// The settings.
    pub config: UpstreamConfig,
}

impl Upstream {
    /// A client with `config`.
    pub fn new(config: UpstreamConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle)
            .pool_timer(TokioTimer::new())
            .http2_only(config.http2);
        Self {
            client: builder.build(connector),
            config,
        }
    }

    /// Sends `request` and waits for the answer's head.
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let budget = self.config.head_timeout;
        match tokio::time::timeout(budget, self.client.request(request)).await {
            Err(_) => Err(UpstreamError::Timeout(budget)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => {
                if chain_has::<http_body_util::LengthLimitError>(&error) {
                    Err(UpstreamError::RequestTooLarge)
                } else {
                    Err(UpstreamError::Unreachable(error_chain(&error)))
                }
            }
        }
    }
}

/// A request body limited to `max` bytes.
pub fn limited<B>(body: B, max: u64) -> ProxyBody
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    http_body_util::Limited::new(body, max).boxed_unsync()
}

fn chain_has<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(error);
    while let Some(e) = cur {
        if e.is::<E>() {
            return true;
        }
        cur = e.source();
    }
    false
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cur = error.source();
    while let Some(e) = cur {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cur = e.source();
    }
    text
}
