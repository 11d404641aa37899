//! Upstream configuration parsed at the edge, the consume key, and model-name normalisation.

use obol_x402::wire::{SCHEME_EXACT, SCHEME_UPTO};
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
    /// Exact price in atomic units; with [`Scheme::Upto`], the maximum every authorization
    /// allows (the 402's `upto` amount).
    pub price: U256,
    /// What the authorizations are signed as.
    pub scheme: Scheme,
    /// The wallet every authorization must come from, when configured.
    pub payer: Option<Address>,
}

/// The x402 scheme of an upstream's authorizations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scheme {
    /// EIP-3009 `transferWithAuthorization` for the price.
    #[default]
    Exact,
    /// A Permit2 witness authorization for a maximum; the seller settles what was used.
    Upto,
}

impl Scheme {
    /// The config's `scheme` (absent: exact).
    pub fn parse(name: Option<&str>) -> Result<Self, String> {
        match name {
            None => Ok(Self::Exact),
            Some(n) if n == SCHEME_EXACT => Ok(Self::Exact),
            Some(n) if n == SCHEME_UPTO => Ok(Self::Upto),
            Some(n) => Err(format!("{n:?} is neither {SCHEME_EXACT} nor {SCHEME_UPTO}")),
        }
    }

    /// The wire name (`accepts[].scheme`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => SCHEME_EXACT,
            Self::Upto => SCHEME_UPTO,
        }
    }

    /// The payload's key holding the signed message.
    fn message_key(self) -> &'static str {
        match self {
            Self::Exact => "authorization",
            Self::Upto => "permit2Authorization",
        }
    }
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
            scheme: Scheme::parse(c.scheme.as_deref()).map_err(|e| bad("scheme", e))?,
            payer: c
                .payer
                .as_deref()
                .map(scalar::parse_address)
                .transpose()
                .map_err(|e| bad("payer", e.to_string()))?,
        })
    }

    /// Whether `auth` was signed for this upstream's terms: its scheme, paying `payTo` exactly
    /// the price (the maximum, for `upto`) in the upstream's token, from the configured payer.
    /// Fields a legacy authorization does not state are not checked. The buyer never sends an
    /// authorization to a seller it was not signed for.
    pub fn signed_for(&self, auth: &Auth) -> Result<(), String> {
        if auth.scheme != self.scheme {
            return Err(format!(
                "signed as {}, the purchase is {}",
                auth.scheme.as_str(),
                self.scheme.as_str()
            ));
        }
        if auth.token.is_some_and(|t| t != self.asset) {
            return Err("signed for another token".into());
        }
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
    /// The scheme's `payload` object: `{signature, authorization}` (exact) or
    /// `{signature, permit2Authorization}` (upto).
    pub payload: Value,
    /// Which of the two the payload is.
    pub scheme: Scheme,
    /// `authorization.validAfter` / `permit2Authorization.witness.validAfter`, when readable.
    pub valid_after: Option<u64>,
    /// `authorization.validBefore` / `permit2Authorization.deadline`, when readable.
    pub valid_before: Option<u64>,
    /// `authorization.from` / `permit2Authorization.from`, when readable.
    pub from: Option<Address>,
    /// `authorization.to` / `permit2Authorization.witness.to`, when readable.
    pub to: Option<Address>,
    /// `authorization.value` / `permit2Authorization.permitted.amount`, when readable.
    pub value: Option<U256>,
    /// `permit2Authorization.permitted.token` (an EIP-3009 authorization names no token: its
    /// signature's domain does).
    pub token: Option<Address>,
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
        let scheme = if payload.get(Scheme::Upto.message_key()).is_some() {
            Scheme::Upto
        } else {
            Scheme::Exact
        };
        // Where each field is in the scheme's message.
        let [after, before, from, to, value, token] = match scheme {
            Scheme::Exact => ["validAfter", "validBefore", "from", "to", "value", ""],
            Scheme::Upto => [
                "witness/validAfter",
                "deadline",
                "from",
                "witness/to",
                "permitted/amount",
                "permitted/token",
            ],
        };
        let field = |path: &str| {
            payload
                .pointer(&format!("/{}/{path}", scheme.message_key()))
                .filter(|_| !path.is_empty())
                .and_then(Value::as_str)
        };
        let time = |path: &str| field(path).and_then(|s| s.parse().ok());
        let address = |path: &str| field(path).and_then(|s| scalar::parse_address(s).ok());
        Some(Self {
            key,
            scheme,
            valid_after: time(after),
            valid_before: time(before),
            from: address(from),
            to: address(to),
            value: field(value).and_then(|s| scalar::parse_decimal_u256(s).ok()),
            token: address(token),
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

    /// Its partition slot: by the message's nonce, or the consume key when it has none.
    pub fn slot(&self) -> crate::partition::Slot {
        let nonce = self
            .payload
            .pointer(&format!("/{}/nonce", self.scheme.message_key()))
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
pub(crate) mod tests {
    use super::*;
    use obol_x402::permit2::{UPTO_PROXY_ADDRESS, sign_payload};
    use obol_x402::wire::{Permit2Authorization, Permitted, UptoWitness};

    /// A signed Permit2 witness authorization (upto) of `amount` of `token` to `to`, by the
    /// public Anvil dev key #1 (test-only), as `obol buy` writes it into a pool.
    pub(crate) fn upto_item(token: &str, to: &str, amount: u64, nonce: u64) -> PreSignedAuth {
        let key: obol_x402::PrivateKey =
            "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
                .parse()
                .unwrap();
        let authorization = Permit2Authorization {
            from: key.address(),
            permitted: Permitted {
                token: token.parse().unwrap(),
                amount: U256::from(amount),
            },
            spender: UPTO_PROXY_ADDRESS,
            nonce: U256::from(nonce),
            deadline: 2_000_000_000,
            witness: UptoWitness {
                to: to.parse().unwrap(),
                facilitator: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
                    .parse()
                    .unwrap(),
                valid_after: 0,
            },
        };
        let payload = sign_payload(&key, 84_532, authorization).unwrap();
        PreSignedAuth {
            id: Some(nonce.to_string()),
            payment: Some(json!({"x402Version": 2, "payload": payload})),
            ..PreSignedAuth::default()
        }
    }

    #[test]
    fn upto_items_are_read_and_checked_against_the_purchase() {
        const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
        const SELLER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
        let config = |scheme: Option<&str>, price: &str| UpstreamConfig {
            url: "http://s".into(),
            remote_model: None,
            network: "base-sepolia".into(),
            pay_to: SELLER.into(),
            asset: USDC.into(),
            asset_symbol: None,
            asset_decimals: None,
            asset_transfer_method: None,
            eip712_name: None,
            eip712_version: None,
            price: price.into(),
            scheme: scheme.map(Into::into),
            payer: Some("0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into()),
        };
        let metered = Upstream::parse("llm", &config(Some("upto"), "2400")).unwrap();
        assert_eq!(metered.scheme, Scheme::Upto);
        let auth = Auth::from_presigned(&upto_item(USDC, SELLER, 2400, 7)).unwrap();
        assert_eq!(auth.scheme, Scheme::Upto);
        assert_eq!(
            (auth.value, auth.to, auth.token, auth.from),
            (
                Some(U256::from(2400u64)),
                Some(SELLER.parse().unwrap()),
                Some(USDC.parse().unwrap()),
                metered.payer
            )
        );
        assert_eq!(
            (auth.valid_after, auth.valid_before),
            (Some(0), Some(2_000_000_000))
        );
        assert_eq!(auth.slot(), crate::partition::slot_of_nonce("7"));
        assert_eq!(metered.signed_for(&auth), Ok(()));

        let exact_auth = Auth::from_payload(
            "0xn",
            json!({"signature": "0x01", "authorization": {"from": SELLER, "to": SELLER, "value": "2400", "nonce": "0xn"}}),
        )
        .unwrap();
        let other = |item: PreSignedAuth| Auth::from_presigned(&item).unwrap();
        let exact = Upstream::parse("llm", &config(None, "2400")).unwrap();
        let cases: Vec<(&str, &Upstream, Auth, &str)> = vec![
            (
                "upto item, exact purchase",
                &exact,
                auth.clone(),
                "signed as upto, the purchase is exact",
            ),
            (
                "exact item, upto purchase",
                &metered,
                exact_auth,
                "signed as exact, the purchase is upto",
            ),
            (
                "another token",
                &metered,
                other(upto_item(SELLER, SELLER, 2400, 8)),
                "signed for another token",
            ),
            (
                "another seller",
                &metered,
                other(upto_item(USDC, USDC, 2400, 9)),
                "signed for another payTo",
            ),
            (
                "another maximum",
                &metered,
                other(upto_item(USDC, SELLER, 2399, 10)),
                "signed for another amount than the price",
            ),
        ];
        for (name, upstream, auth, want) in cases {
            assert_eq!(upstream.signed_for(&auth), Err(want.to_owned()), "{name}");
        }
        let err = Upstream::parse("llm", &config(Some("stream"), "1")).unwrap_err();
        assert!(err.to_string().contains("scheme"), "{err}");
    }

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
