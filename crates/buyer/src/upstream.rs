//! Upstream configuration parsed at the edge, the consume key, and model-name normalisation.

use obol_x402::{Address, Network, U256, wire::scalar};
use serde_json::{Value, json};

use crate::config::{PreSignedAuth, UpstreamConfig};

/// A validated upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The name (file stem / map key).
    pub name: String,
    /// Seller base URL without a trailing slash.
    pub url: String,
    /// `remoteModel` as configured.
    pub remote_model: Option<String>,
    /// The network as configured (reported by `/status`).
    pub network_label: String,
    /// EIP-155 chain id when the network is known; otherwise networks compare as text.
    pub chain_id: Option<u64>,
    /// The seller's address.
    pub pay_to: Address,
    /// The token.
    pub asset: Address,
    /// Exact price in atomic units.
    pub price: U256,
    /// The wallet every authorization must come from, when configured.
    pub payer: Option<Address>,
}

/// Why an upstream config was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid upstream {name}: {field} {problem}")]
pub struct InvalidUpstream {
    name: String,
    field: &'static str,
    problem: String,
}

impl Upstream {
    /// Validates a config entry.
    pub fn parse(name: &str, c: &UpstreamConfig) -> Result<Self, InvalidUpstream> {
        let bad = |field, problem: String| InvalidUpstream {
            name: name.to_owned(),
            field,
            problem,
        };
        let url = c.url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad("url", "must be http(s)".into()));
        }
        Ok(Self {
            name: name.to_owned(),
            url,
            remote_model: c.remote_model.clone().filter(|m| !m.trim().is_empty()),
            network_label: c.network.clone(),
            chain_id: Network::resolve(&c.network).ok().map(|n| n.chain_id),
            pay_to: scalar::parse_address(&c.pay_to).map_err(|e| bad("payTo", e.to_string()))?,
            asset: scalar::parse_address(&c.asset).map_err(|e| bad("asset", e.to_string()))?,
            price: scalar::parse_decimal_u256(&c.price).map_err(|e| bad("price", e.to_string()))?,
            payer: c
                .payer
                .as_deref()
                .map(scalar::parse_address)
                .transpose()
                .map_err(|e| bad("payer", e.to_string()))?,
        })
    }

    /// Whether `auth` was signed for this upstream's terms: paying `payTo` exactly the price,
    /// from the configured payer. Fields a legacy authorization does not state are not checked.
    /// The buyer never sends an authorization to a seller it was not signed for.
    pub fn signed_for(&self, auth: &Auth) -> Result<(), String> {
        if auth.to.is_some_and(|to| to != self.pay_to) {
            return Err("signed for another payTo".into());
        }
        if auth.value.is_some_and(|v| v != self.price) {
            return Err("signed for another amount than the price".into());
        }
        if let Some(payer) = self.payer
            && auth.from != Some(payer)
        {
            return Err("not signed by the purchase's payer".into());
        }
        Ok(())
    }

    /// The model clients ask for after normalisation (falls back to the upstream name).
    pub fn routed_model(&self) -> String {
        normalize_model(self.remote_model.as_deref().unwrap_or(&self.name))
    }

    /// `paid/<remoteModel>` as LiteLLM names it.
    pub fn public_model(&self) -> Option<String> {
        self.remote_model.as_ref().map(|m| format!("paid/{m}"))
    }

    /// Whether a 402's network names this upstream's chain.
    pub fn same_network(&self, network: &str) -> bool {
        match (self.chain_id, Network::resolve(network).ok()) {
            (Some(id), Some(n)) => id == n.chain_id,
            _ => self.network_label.eq_ignore_ascii_case(network),
        }
    }
}

/// Strips `paid/` and `openai/` prefixes repeatedly, then trims whitespace.
pub fn normalize_model(model: &str) -> String {
    let mut m = model.trim();
    loop {
        if let Some(rest) = m
            .strip_prefix("paid/")
            .or_else(|| m.strip_prefix("openai/"))
        {
            m = rest.trim_start();
        } else {
            return m.trim().to_owned();
        }
    }
}

/// An authorization ready to spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// The consume key recorded in the journal.
    pub key: String,
    /// The exact-scheme `payload` object: `{signature, authorization}`.
    pub payload: Value,
    /// `authorization.validAfter`, when readable.
    pub valid_after: Option<u64>,
    /// `authorization.validBefore`, when readable.
    pub valid_before: Option<u64>,
    /// `authorization.from`, when readable.
    pub from: Option<Address>,
    /// `authorization.to`, when readable.
    pub to: Option<Address>,
    /// `authorization.value`, when readable.
    pub value: Option<U256>,
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

/// The Go buyer's consume key: the first non-empty of `id`, `nonce`,
/// `payment.payload.authorization.nonce`, `payment.payload.permit2Authorization.nonce`,
/// `signature`.
pub fn consume_key(a: &PreSignedAuth) -> Option<String> {
    let inner = |path: &str| {
        a.payment
            .as_ref()
            .and_then(|p| p.pointer(path))
            .and_then(Value::as_str)
    };
    non_empty(a.id.as_deref())
        .or(non_empty(a.nonce.as_deref()))
        .or(non_empty(inner("/payload/authorization/nonce")))
        .or(non_empty(inner("/payload/permit2Authorization/nonce")))
        .or(non_empty(a.signature.as_deref()))
        .map(str::to_owned)
}

impl Auth {
    /// Builds a spendable authorization. `None` without a consume key (the Go buyer would spend
    /// it but never record it, so a restart re-spends it: we refuse) or without a payload.
    pub fn from_presigned(a: &PreSignedAuth) -> Option<Self> {
        let key = consume_key(a)?;
        let payload = match a.payment.as_ref().and_then(|p| p.get("payload")) {
            Some(p) if p.is_object() => p.clone(),
            _ => json!({
                "signature": a.signature.as_deref()?,
                "authorization": {
                    "from": a.from.as_deref()?,
                    "to": a.to.as_deref()?,
                    "value": a.value.as_deref()?,
                    "validAfter": a.valid_after.as_deref().unwrap_or("0"),
                    "validBefore": a.valid_before.as_deref().unwrap_or("4294967295"),
                    "nonce": a.nonce.as_deref()?,
                }
            }),
        };
        let field = |name: &str| {
            payload
                .pointer(&format!("/authorization/{name}"))
                .and_then(Value::as_str)
        };
        let time = |name: &str| field(name).and_then(|s| s.parse().ok());
        let address = |name: &str| field(name).and_then(|s| scalar::parse_address(s).ok());
        Some(Self {
            key,
            valid_after: time("validAfter"),
            valid_before: time("validBefore"),
            from: address("from"),
            to: address("to"),
            value: field("value").and_then(|s| scalar::parse_decimal_u256(s).ok()),
            payload,
        })
    }

    /// An authorization for tests and tools: `key` with `payload`, its fields read from it.
    pub fn from_payload(key: impl Into<String>, payload: Value) -> Option<Self> {
        let key = key.into();
        Self::from_presigned(&PreSignedAuth {
            id: Some(key),
            payment: Some(json!({ "payload": payload })),
            ..PreSignedAuth::default()
        })
    }

    /// Whether the chain accepts it at `now` (`validAfter < now`).
    pub fn valid_at(&self, now: u64) -> bool {
        self.valid_after.is_none_or(|t| t < now)
    }

    /// Its partition slot: by `authorization.nonce`, or the consume key when it has none.
    pub fn slot(&self) -> crate::partition::Slot {
        let nonce = self
            .payload
            .pointer("/authorization/nonce")
            .and_then(Value::as_str)
            .unwrap_or(&self.key);
        crate::partition::slot_of_nonce(nonce)
    }

    /// Whether it stops being valid before `now + margin` (so it is no longer sent: the
    /// seller needs the margin to verify and settle; facilitators refuse under 6 s).
    pub fn expires_within(&self, now: u64, margin: u64) -> bool {
        self.valid_before
            .is_some_and(|t| t <= now.saturating_add(margin.max(6)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_normalise_like_the_go_buyer() {
        for (input, want) in [
            ("paid/qwen3:32b", "qwen3:32b"),
            ("openai/paid/qwen3.5:9b ", "qwen3.5:9b"),
            ("paid/openai/paid/x", "x"),
            ("  plain", "plain"),
        ] {
            assert_eq!(normalize_model(input), want);
        }
    }

    #[test]
    fn consume_key_precedence() {
        let payment = json!({"payload": {"authorization": {"nonce": "0xpn"}}});
        let mut a = PreSignedAuth {
            id: Some(String::new()),
            payment: Some(payment),
            signature: Some("0xsig".into()),
            ..PreSignedAuth::default()
        };
        assert_eq!(consume_key(&a).as_deref(), Some("0xpn"));
        a.nonce = Some("0xn".into());
        assert_eq!(consume_key(&a).as_deref(), Some("0xn"));
        a.id = Some("id1".into());
        assert_eq!(consume_key(&a).as_deref(), Some("id1"));
        assert_eq!(consume_key(&PreSignedAuth::default()), None);
    }

    #[test]
    fn legacy_fields_build_a_payload_and_time_window() {
        let a = PreSignedAuth {
            signature: Some("0xsig".into()),
            from: Some("0xf".into()),
            to: Some("0xt".into()),
            value: Some("1000".into()),
            valid_after: Some("100".into()),
            valid_before: Some("200".into()),
            nonce: Some("0xn".into()),
            ..PreSignedAuth::default()
        };
        let auth = Auth::from_presigned(&a).unwrap();
        assert_eq!(auth.key, "0xn");
        assert_eq!(auth.payload["authorization"]["value"], "1000");
        assert_eq!(auth.value, Some(U256::from(1000u64)));
        assert_eq!(auth.from, None, "an unreadable address is not checked");
        assert!(!auth.valid_at(100));
        assert!(auth.valid_at(150));
        assert!(!auth.expires_within(150, 6));
        assert!(auth.expires_within(194, 6));
        assert!(auth.expires_within(150, 50), "the margin counts");
        assert!(!auth.expires_within(140, 50));
        let no_key = PreSignedAuth {
            payment: Some(json!({"payload": {"signature": "0x"}})),
            ..PreSignedAuth::default()
        };
        assert_eq!(Auth::from_presigned(&no_key), None);
    }
}
