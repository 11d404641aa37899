//! [`Facilitator`] over HTTP with reqwest (rustls, aws-lc-rs provider).

use std::time::Duration;

use reqwest::{Client, Method, Url};

use super::{Endpoint, Facilitator, FacilitatorError, MAX_ANSWER_LEN, async_trait};
use super::{decide_settle_answer, decide_supported_answer, decide_verify_answer};
use crate::wire::{FacilitatorRequest, SettleResponse, SupportedResponse, VerifyResponse};

/// Settings of an [`HttpFacilitator`]. Each endpoint has its own time budget, covering
/// connect, request and the whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFacilitatorConfig {
    /// Base URL; `/verify`, `/settle` and `/supported` are appended (a trailing `/` is ignored).
    pub base_url: Url,
    /// Budget of `POST /verify`.
    pub verify_timeout: Duration,
    /// Budget of `POST /settle` (it waits for a receipt, so it is much longer).
    pub settle_timeout: Duration,
    /// Budget of `GET /supported`.
    pub supported_timeout: Duration,
}

impl HttpFacilitatorConfig {
    /// Default budget of `POST /verify`.
    pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default budget of `POST /settle`.
    pub const DEFAULT_SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default budget of `GET /supported`.
    pub const DEFAULT_SUPPORTED_TIMEOUT: Duration = Duration::from_secs(10);

    /// A config with the default budgets (verify 5 s, settle 60 s, supported 10 s).
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            verify_timeout: Self::DEFAULT_VERIFY_TIMEOUT,
            settle_timeout: Self::DEFAULT_SETTLE_TIMEOUT,
            supported_timeout: Self::DEFAULT_SUPPORTED_TIMEOUT,
        }
    }
}

/// An [`HttpFacilitator`] that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum FacilitatorConfigError {
    /// The base URL is not `http(s)`, or carries a query or fragment.
    #[error("facilitator URL must be http(s) without query or fragment: {0}")]
    InvalidUrl(String),
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the facilitator HTTP client")]
    Client(#[source] reqwest::Error),
}

/// The facilitator API over HTTP.
///
/// Requests are `application/json` bodies `{x402Version, paymentPayload, paymentRequirements}`
/// with the payload as a JSON object. Redirects are not followed (a redirected POST would lose
/// its body or leak it elsewhere); a 3xx is a malformed answer.
#[derive(Debug, Clone)]
pub struct HttpFacilitator {
    client: Client,
    config: HttpFacilitatorConfig,
    verify_url: Url,
    settle_url: Url,
    supported_url: Url,
}

impl HttpFacilitator {
    /// Builds the client and the endpoint URLs.
    pub fn new(config: HttpFacilitatorConfig) -> Result<Self, FacilitatorConfigError> {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(FacilitatorConfigError::Client)?;
        Self::with_client(client, config)
    }

    /// Uses a caller-built client (its own timeouts still apply on top of the budgets).
    pub fn with_client(
        client: Client,
        config: HttpFacilitatorConfig,
    ) -> Result<Self, FacilitatorConfigError> {
        let base = &config.base_url;
        let invalid = || FacilitatorConfigError::InvalidUrl(base.to_string());
        if !matches!(base.scheme(), "http" | "https") || base.query().is_some() {
            return Err(invalid());
        }
        if base.fragment().is_some() || base.cannot_be_a_base() {
            return Err(invalid());
        }
        let root = base.as_str().trim_end_matches('/');
        let join = |path: &str| Url::parse(&format!("{root}/{path}")).map_err(|_| invalid());
        Ok(Self {
            verify_url: join("verify")?,
            settle_url: join("settle")?,
            supported_url: join("supported")?,
            client,
            config,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &HttpFacilitatorConfig {
        &self.config
    }

    /// Sends one request within `timeout`; returns the status and at most
    /// [`MAX_ANSWER_LEN`] bytes of body.
    async fn call(
        &self,
        endpoint: Endpoint,
        url: &Url,
        timeout: Duration,
        body: Option<&FacilitatorRequest>,
    ) -> Result<(u16, Vec<u8>), FacilitatorError> {
        let method = if body.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let mut request = self
            .client
            .request(method, url.clone())
            .timeout(timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| FacilitatorError::Unreachable {
            endpoint,
            timed_out: e.is_timeout(),
            source: Box::new(e.without_url()),
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > MAX_ANSWER_LEN {
                let detail = format!("answer larger than {MAX_ANSWER_LEN} bytes");
                return Err(FacilitatorError::Malformed {
                    endpoint,
                    status,
                    detail,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    }
}

#[async_trait]
impl Facilitator for HttpFacilitator {
    async fn verify(
        &self,
        request: &FacilitatorRequest,
    ) -> Result<VerifyResponse, FacilitatorError> {
        let timeout = self.config.verify_timeout;
        let (status, body) = self
            .call(Endpoint::Verify, &self.verify_url, timeout, Some(request))
            .await?;
        decide_verify_answer(status, &body)
    }

    async fn settle(
        &self,
        request: &FacilitatorRequest,
    ) -> Result<SettleResponse, FacilitatorError> {
        let timeout = self.config.settle_timeout;
        let (status, body) = self
            .call(Endpoint::Settle, &self.settle_url, timeout, Some(request))
            .await?;
        decide_settle_answer(status, &body)
    }

    async fn supported(&self) -> Result<SupportedResponse, FacilitatorError> {
        let timeout = self.config.supported_timeout;
        let (status, body) = self
            .call(Endpoint::Supported, &self.supported_url, timeout, None)
            .await?;
        decide_supported_answer(status, &body)
    }
}
