//! Shared fixtures of the router tests: a scripted facilitator, signed payments, a harness
//! around `app(state)` driven with `oneshot`.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt as _;
use obol_api::PaymentRouteSpec;
use obol_verifier::clock::FixedClock;
use obol_verifier::facilitators::Facilitators;
use obol_verifier::{AppState, RouteEntry, RouteKey, RouteTable, app};
use obol_x402::facilitator::{Answer, Endpoint, FacilitatorError, async_trait};
use obol_x402::wire::{
    Authorization, FacilitatorRequest, PaymentPayloadV1, PaymentPayloadV2, SettleResponse,
    SupportedResponse, VerifyResponse,
};
use obol_x402::{B256, Facilitator, PrivateKey, Requirement};
use parking_lot::Mutex;
use tower::ServiceExt as _;

pub const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
pub const NOW: u64 = 1_750_000_000;
pub const TX: &str = "0x5e1f00000000000000000000000000000000000000000000000000000000abcd";

/// What a scripted facilitator call answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Yes,
    /// A rejection; a failed settle names [`TX`].
    No(&'static str),
    /// A rejection that names no transaction (refused before sending).
    NoTx(&'static str),
    Unreachable,
    Malformed,
}

/// A facilitator that answers from a script and counts calls.
#[derive(Debug)]
pub struct FakeFacilitator {
    pub verify: Mutex<Script>,
    pub settle: Mutex<Script>,
    pub verify_calls: AtomicUsize,
    pub settle_calls: AtomicUsize,
    pub last_request: Mutex<Option<serde_json::Value>>,
}

impl FakeFacilitator {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            verify: Mutex::new(Script::Yes),
            settle: Mutex::new(Script::Yes),
            verify_calls: AtomicUsize::new(0),
            settle_calls: AtomicUsize::new(0),
            last_request: Mutex::new(None),
        })
    }

    pub fn calls(&self) -> (usize, usize) {
        (
            self.verify_calls.load(Ordering::SeqCst),
            self.settle_calls.load(Ordering::SeqCst),
        )
    }

    fn outcome(endpoint: Endpoint, script: Script) -> Result<(), FacilitatorError> {
        let tx = if matches!(script, Script::NoTx(_)) {
            ""
        } else {
            TX
        };
        let answer = |reason: &str| match endpoint {
            Endpoint::Settle => Answer::Settle(SettleResponse {
                success: false,
                error_reason: Some(reason.into()),
                error_message: None,
                transaction: tx.into(),
                network: "eip155:84532".into(),
                payer: None,
                amount: None,
                extensions: None,
            }),
            _ => Answer::Verify(VerifyResponse {
                is_valid: false,
                invalid_reason: Some(reason.into()),
                invalid_message: None,
                invalid_reason_details: None,
                payer: None,
                extensions: None,
            }),
        };
        match script {
            Script::Yes => Ok(()),
            Script::No(reason) | Script::NoTx(reason) => Err(FacilitatorError::Rejected {
                endpoint,
                status: 200,
                answer: Box::new(answer(reason)),
            }),
            Script::Unreachable => Err(FacilitatorError::Unreachable {
                endpoint,
                timed_out: true,
                source: "scripted timeout".into(),
            }),
            Script::Malformed => Err(FacilitatorError::Malformed {
                endpoint,
                status: 502,
                detail: "scripted".into(),
            }),
        }
    }
}

#[async_trait]
impl Facilitator for FakeFacilitator {
    async fn verify(
        &self,
        request: &FacilitatorRequest,
    ) -> Result<VerifyResponse, FacilitatorError> {
        self.verify_calls.fetch_add(1, Ordering::SeqCst);
        *self.last_request.lock() = serde_json::to_value(request).ok();
        let script = *self.verify.lock();
        Self::outcome(Endpoint::Verify, script)?;
        Ok(VerifyResponse {
            is_valid: true,
            invalid_reason: None,
            invalid_message: None,
            invalid_reason_details: None,
            payer: None,
            extensions: None,
        })
    }

    async fn settle(&self, _: &FacilitatorRequest) -> Result<SettleResponse, FacilitatorError> {
        self.settle_calls.fetch_add(1, Ordering::SeqCst);
        let script = *self.settle.lock();
        Self::outcome(Endpoint::Settle, script)?;
        Ok(SettleResponse {
            success: true,
            error_reason: None,
            error_message: None,
            transaction: TX.into(),
            network: "eip155:84532".into(),
            payer: None,
            amount: None,
            extensions: None,
        })
    }

    async fn supported(&self) -> Result<SupportedResponse, FacilitatorError> {
        Ok(SupportedResponse {
            kinds: vec![],
            extensions: vec![],
            signers: Default::default(),
        })
    }
}

/// Refusal codes only the gateway (proxy) listener gives: `gateway.rs`'s
/// `every_gateway_only_reason_code_is_produced_through_the_listener` produces each one there,
/// `http.rs`'s `every_reason_code_is_produced_through_the_router` every other code of the
/// table through the ForwardAuth router, except those of [`NEVER_ANSWERED`].
pub const GATEWAY_ONLY: &[obol_x402::Reason] = &[
    obol_x402::Reason::UpstreamFailed,
    obol_x402::Reason::NoRoute,
    obol_x402::Reason::NotProxied,
    obol_x402::Reason::InvalidRouteHeader,
    obol_x402::Reason::WebsocketRefused,
    obol_x402::Reason::RequestTooLarge,
];

/// Codes of the table that no answer carries, each with why. Neither router test may produce
/// them (they check it): when one starts to be produced, it moves out of this list.
pub const NEVER_ANSWERED: &[(obol_x402::Reason, &str)] = &[
    (
        obol_x402::Reason::ClientDisconnected,
        "it applies when the client is gone: a stream it dropped is released uncharged and \
         logged, and nobody is left to read an answer",
    ),
    (
        obol_x402::Reason::UpstreamDown,
        "the controller withdraws the PaymentRoute of an offer whose upstream probe fails \
         (RoutePublished=False, reason Upstream), so the verifier answers unknown_route 503 \
         before any payment; no code path emits upstream_down",
    ),
];

pub fn spec(pattern: &str, price: &str) -> PaymentRouteSpec {
    PaymentRouteSpec::new(pattern, price, PAY_TO, "base-sepolia")
}

/// `demo/demo`: `/services/demo/*` at 1000 atomic units.
pub fn demo_entry() -> RouteEntry {
    entry("demo", "demo", &spec("/services/demo/*", "1000"))
}

/// A table holding `routes`, synced.
pub fn table(routes: Vec<RouteEntry>) -> Arc<RouteTable> {
    let table = Arc::new(RouteTable::new());
    table.reset(routes);
    table
}

/// Chain evidence that answers from a script and counts its calls.
#[derive(Debug, Default)]
pub struct FakeEvidence {
    /// `Ok(Some(tx))`: settled; `Ok(None)`: not; `Err`: the RPC failed.
    pub answer: Mutex<Option<Result<Option<String>, String>>>,
    pub calls: AtomicUsize,
}

#[async_trait]
impl obol_verifier::evidence::Evidence for FakeEvidence {
    async fn settled(
        &self,
        _: obol_verifier::evidence::Settlement<'_>,
        _: u64,
    ) -> Result<Option<String>, obol_verifier::evidence::EvidenceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.answer.lock().clone() {
            Some(Ok(found)) => Ok(found),
            Some(Err(e)) => Err(obol_verifier::evidence::EvidenceError::Rpc(e)),
            None => Ok(None),
        }
    }
}

/// A reservation store that is down.
#[derive(Debug)]
pub struct DownStore;

#[async_trait]
impl obol_verifier::reservations::Store for DownStore {
    async fn insert(
        &self,
        _: &obol_verifier::reservations::Key,
        _: &str,
        _: std::time::Duration,
    ) -> Result<Option<String>, obol_verifier::reservations::StoreError> {
        Err(obol_verifier::reservations::StoreError::Unavailable(
            "scripted".into(),
        ))
    }
    async fn swap(
        &self,
        _: &obol_verifier::reservations::Key,
        _: &str,
        _: &str,
    ) -> Result<bool, obol_verifier::reservations::StoreError> {
        Err(obol_verifier::reservations::StoreError::Unavailable(
            "scripted".into(),
        ))
    }
    async fn remove(
        &self,
        _: &obol_verifier::reservations::Key,
        _: &str,
    ) -> Result<bool, obol_verifier::reservations::StoreError> {
        Err(obol_verifier::reservations::StoreError::Unavailable(
            "scripted".into(),
        ))
    }
}

pub fn entry(namespace: &str, name: &str, spec: &PaymentRouteSpec) -> RouteEntry {
    RouteEntry::load(RouteKey::new(namespace, name), Some(1), spec, None).expect("test fixture")
}

pub fn key() -> PrivateKey {
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
        .parse()
        .expect("test fixture")
}

pub fn other_key() -> PrivateKey {
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
        .parse()
        .expect("test fixture")
}

pub fn auth(req: &Requirement, nonce: u8) -> Authorization {
    Authorization {
        from: key().address(),
        to: req.pay_to,
        value: req.amount,
        valid_after: NOW - 600,
        valid_before: NOW + 60,
        nonce: B256::repeat_byte(nonce),
    }
}

/// The JSON of a payment of `version` for `auth`, signed by `signer` for `req`'s domain.
pub fn payload_json(
    req: &Requirement,
    auth: Authorization,
    version: u8,
    signer: &PrivateKey,
) -> serde_json::Value {
    let payload =
        obol_x402::eip3009::sign_payload(signer, &req.domain(), auth).expect("test fixture");
    if version == 1 {
        serde_json::to_value(PaymentPayloadV1 {
            x402_version: Default::default(),
            scheme: "exact".into(),
            network: req.network.v1_name().expect("test fixture"),
            payload,
        })
    } else {
        serde_json::to_value(PaymentPayloadV2 {
            x402_version: Default::default(),
            resource: None,
            accepted: req.to_v2(),
            payload,
            extensions: None,
        })
    }
    .expect("test fixture")
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn encode(json: &serde_json::Value) -> String {
    b64(&serde_json::to_vec(json).expect("test fixture"))
}

pub fn header(req: &Requirement, nonce: u8, version: u8) -> String {
    encode(&payload_json(req, auth(req, nonce), version, &key()))
}

/// The app around a table of routes and a fake facilitator, at [`NOW`].
pub struct Harness {
    pub app: Router,
    pub state: AppState,
    pub facilitator: Arc<FakeFacilitator>,
    pub clock: Arc<FixedClock>,
}

impl Harness {
    pub fn new(routes: Vec<RouteEntry>) -> Self {
        let table = Arc::new(RouteTable::new());
        table.reset(routes);
        Self::with_table(table)
    }

    pub fn with_table(table: Arc<RouteTable>) -> Self {
        Self::custom(table, |s| s)
    }

    /// The app around `table`, its state changed by `f` (another store, chain evidence).
    pub fn custom(table: Arc<RouteTable>, f: impl FnOnce(AppState) -> AppState) -> Self {
        let facilitator = FakeFacilitator::new();
        let clock = Arc::new(FixedClock::new(NOW));
        let state = f(
            AppState::new(table, Facilitators::single(facilitator.clone()))
                .with_clock(clock.clone()),
        );
        Self {
            app: app(state.clone()),
            state,
            facilitator,
            clock,
        }
    }

    /// One `demo/demo` route `/services/demo/*` at 1000 atomic units.
    pub fn demo() -> Self {
        Self::new(vec![demo_entry()])
    }

    pub fn requirement(&self, namespace: &str, name: &str) -> Requirement {
        let route = self.state.table.get(namespace, name).expect("test fixture");
        route.requirement.clone().expect("test fixture")
    }

    pub async fn call(&self, request: Request<Body>) -> Reply {
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("test fixture");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("test fixture")
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// The metric label of the only denial counted so far (the finer cause behind a body's
    /// `reason`), if exactly one was.
    pub async fn denial_label(&self) -> Option<String> {
        let text = self.get("/metrics", &[]).await.text();
        let labels: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("obol_x402_verifier_denials_total{reason=\""))
            .filter(|l| l.ends_with(" 1"))
            .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
            .collect();
        match labels.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    pub async fn get(&self, uri: &str, headers: &[(&str, &str)]) -> Reply {
        let mut b = Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.call(b.body(Body::empty()).expect("test fixture"))
            .await
    }
}

/// A response, collected.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The stable `reason` of a refusal (both shapes have it at the top).
    pub fn reason(&self) -> Option<String> {
        self.json()
            .get("reason")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }

    /// The refusal's `detail`.
    pub fn detail(&self) -> String {
        let j = self.json();
        let d = j
            .get("detail")
            .or_else(|| j.pointer("/extensions/paymentFailure/detail"));
        d.and_then(|v| v.as_str()).unwrap_or_default().to_owned()
    }

    /// A refusal in one of the two documented shapes, with a reason from the table and its
    /// status: a 402 with `extensions.paymentFailure`, anything else
    /// `{error, reason, detail, hint, retriable}`.
    pub fn assert_refusal_shape(&self, name: &str) {
        let j = self.json();
        let code = j["reason"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no reason: {j}"));
        let reason = obol_x402::Reason::from_code(code)
            .unwrap_or_else(|| panic!("{name}: {code} is not in the table"));
        if self.status == StatusCode::PAYMENT_REQUIRED {
            let failure = &j["extensions"]["paymentFailure"];
            assert_eq!(failure["reason"], code, "{name}: {j}");
            assert!(
                failure["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{name}: {j}"
            );
            assert!(
                failure["hint"].as_str().is_some_and(|h| !h.is_empty()),
                "{name}: {j}"
            );
            assert!(
                self.header("payment-required").is_some(),
                "{name}: fresh 402"
            );
        } else {
            for key in ["error", "detail", "hint"] {
                assert!(
                    j[key].as_str().is_some_and(|v| !v.is_empty()),
                    "{name}: {key}: {j}"
                );
            }
            assert!(j["retriable"].is_boolean(), "{name}: {j}");
            if self.status == StatusCode::SERVICE_UNAVAILABLE {
                assert!(self.header("retry-after").is_some(), "{name}: Retry-After");
            }
        }
        let status = self.status.as_u16();
        assert!(
            status == reason.status()
                || (reason == obol_x402::Reason::SettlementFailed && status == 503),
            "{name}: {code} answered {status}"
        );
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
