//! The request the upstream gets and the headers the client gets back: pure rules.
//!
//! Upstream-bound: the path loses the offer's prefix (as the ForwardAuth mode's HTTPRoute
//! rewrites it); hop-by-hop headers, the payment headers, the route header and every
//! client-supplied `X-Payment-*` / `X-Verified-*` header are removed; `X-Payment-Payer` is set
//! by the verifier, `Authorization` to the route's `upstreamAuth` when it has one, `Host` to the
//! upstream, `X-Forwarded-Prefix` to the prefix removed. Client-bound: hop-by-hop headers are
//! removed.

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::uri::{Authority, PathAndQuery, Scheme, Uri};

use crate::decide::{PAYMENT_HEADERS, X_PAYMENT_PAYER};

/// `X-Forwarded-Prefix`: the path prefix removed before forwarding.
pub const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
/// Client-bound header of an answer passed through without charging: `false`.
pub const X_PAYMENT_SETTLED: HeaderName = HeaderName::from_static("x-payment-settled");

/// Connection-scoped headers (RFC 9110 §7.6.1) that a proxy never forwards.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Where a route's paid requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` (in-cluster upstreams).
    pub scheme: Scheme,
    /// Host and port.
    pub authority: Authority,
    /// Removed from the start of the path.
    pub strip_prefix: Option<String>,
}

impl Target {
    /// Parses an upstream base URL: `http://host[:port]` with nothing after the authority.
    pub fn parse(upstream: &str, strip_prefix: Option<&str>) -> Result<Self, String> {
        let uri: Uri = upstream
            .parse()
            .map_err(|e| format!("upstream {upstream:?}: {e}"))?;
        let scheme = uri.scheme().cloned().ok_or("the upstream needs a scheme")?;
        if scheme != Scheme::HTTP {
            return Err("the upstream must be http:// (an in-cluster address)".into());
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or("the upstream needs a host")?;
        if authority.as_str().contains('@') {
            return Err("the upstream may not carry credentials".into());
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err("the upstream is a base URL: scheme, host and port only".into());
        }
        let strip_prefix = match strip_prefix.map(|p| p.trim_end_matches('/')) {
            None | Some("") => None,
            Some(p) if p.starts_with('/') => Some(p.to_owned()),
            Some(p) => return Err(format!("stripPrefix {p:?} must start with /")),
        };
        Ok(Self {
            scheme,
            authority,
            strip_prefix,
        })
    }

    /// The upstream URI for a client request's path and query.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, axum::http::Error> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let path = match &self.strip_prefix {
            Some(prefix) => match path.strip_prefix(prefix.as_str()) {
                Some("") => "/",
                Some(rest) if rest.starts_with('/') => rest,
                _ => path,
            },
            None => path,
        };
        let pq = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::try_from(pq)?)
            .build()
    }
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
}

fn client_supplied_payment_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.starts_with("x-payment-") || n.starts_with("x-verified-")
}

/// Turns a client request's headers into the upstream's: see the module docs. `payer` is the
/// checksummed payer of a paid request; `websocket` keeps a WebSocket upgrade request's
/// `Upgrade` and `Connection: upgrade`.
pub fn upstream_headers(
    headers: &mut HeaderMap,
    target: &Target,
    payer: Option<&str>,
    upstream_auth: Option<&HeaderValue>,
    websocket: bool,
) {
    let upgrade = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    headers.remove(header::UPGRADE);
    if websocket && let Some(upgrade) = upgrade {
        headers.insert(header::UPGRADE, upgrade);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    for name in PAYMENT_HEADERS {
        headers.remove(name);
    }
    headers.remove(obol_api::proxy::ROUTE_HEADER);
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|n| client_supplied_payment_header(n))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
    if let Some(payer) = payer.and_then(|p| HeaderValue::from_str(p).ok()) {
        headers.insert(X_PAYMENT_PAYER, payer);
    }
    if let Some(auth) = upstream_auth {
        headers.insert(header::AUTHORIZATION, auth.clone());
    }
    if let Ok(host) = HeaderValue::from_str(target.authority.as_str()) {
        headers.insert(header::HOST, host);
    }
    if let Some(prefix) = target
        .strip_prefix
        .as_deref()
        .and_then(|p| HeaderValue::from_str(p).ok())
    {
        headers.insert(X_FORWARDED_PREFIX, prefix);
    }
}

/// Whether a request asks to upgrade to WebSocket.
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(prefix: Option<&str>) -> Target {
        Target::parse("http://llm.models.svc:8080", prefix).unwrap()
    }

    #[test]
    fn targets_parse_or_say_why_not() {
        assert_eq!(
            target(Some("/services/llm/")).strip_prefix.as_deref(),
            Some("/services/llm")
        );
        assert_eq!(target(Some("/")).strip_prefix, None);
        for bad in [
            "https://x:1",
            "x:1",
            "http://",
            "http://x/path",
            "http://x?q",
            "http://u:p@x",
            "",
        ] {
            assert!(Target::parse(bad, None).is_err(), "{bad:?}");
        }
        assert!(Target::parse("http://x", Some("services")).is_err());
    }

    #[test]
    fn paths_lose_the_prefix_like_the_forward_auth_rewrite() {
        let t = target(Some("/services/llm"));
        let cases = [
            (
                "/services/llm/v1/chat",
                "http://llm.models.svc:8080/v1/chat",
            ),
            ("/services/llm", "http://llm.models.svc:8080/"),
            ("/services/llm/", "http://llm.models.svc:8080/"),
            ("/services/llm?x=1", "http://llm.models.svc:8080/?x=1"),
            (
                "/services/llm/a?b=/services/llm",
                "http://llm.models.svc:8080/a?b=/services/llm",
            ),
            // Not under the prefix (the route pattern refuses it first): unchanged.
            ("/services/llmx", "http://llm.models.svc:8080/services/llmx"),
        ];
        for (path, want) in cases {
            assert_eq!(t.uri(path).unwrap().to_string(), want, "{path}");
        }
        assert_eq!(
            target(None).uri("/a/b?c").unwrap().to_string(),
            "http://llm.models.svc:8080/a/b?c"
        );
    }

    #[test]
    fn the_upstream_never_sees_payment_or_forged_verification_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("payment-signature", "sig"),
            ("x-payment", "sig"),
            ("x-payment-payer", "0xforged"),
            ("x-payment-tx", "0xforged"),
            ("x-verified-payer", "0xforged"),
            ("x-obol-payment-route", "a/b"),
            ("authorization", "Bearer client"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "hop"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("host", "public.example"),
            ("x-forwarded-host", "public.example"),
            ("accept", "text/event-stream"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        let auth = HeaderValue::from_static("Bearer upstream");
        upstream_headers(
            &mut h,
            &target(Some("/services/llm")),
            Some("0xPayer"),
            Some(&auth),
            false,
        );
        let mut got: Vec<String> = h
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "accept: text/event-stream",
                "authorization: Bearer upstream",
                "host: llm.models.svc:8080",
                "x-forwarded-host: public.example",
                "x-forwarded-prefix: /services/llm",
                "x-payment-payer: 0xPayer",
            ]
        );
        // A free request keeps the client's Authorization when the route has no upstreamAuth.
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer client"));
        upstream_headers(&mut h, &target(None), None, None, false);
        assert_eq!(h.get("authorization").unwrap(), "Bearer client");
        assert!(h.get("x-payment-payer").is_none());
        // An allowed WebSocket upgrade keeps its upgrade headers, nothing else hop-by-hop.
        let mut h = HeaderMap::new();
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("connection", HeaderValue::from_static("Upgrade, x-private"));
        h.insert("x-private", HeaderValue::from_static("hop"));
        upstream_headers(&mut h, &target(None), None, None, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert!(h.get("x-private").is_none());
    }

    #[test]
    fn websocket_upgrades_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!wants_websocket(&h));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        assert!(!wants_websocket(&h));
        h.insert("upgrade", HeaderValue::from_static("WebSocket"));
        assert!(wants_websocket(&h));
    }
}
