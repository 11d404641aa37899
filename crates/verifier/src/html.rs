//! The HTML paywall a browser gets instead of the JSON 402 (status still 402): what is sold, the
//! price, the network, and a "Pay with wallet" button that pays through an injected EIP-1193
//! wallet (`window.ethereum`) and shows the paid answer.
//!
//! The page is one static asset (`paywall.html`, compiled in) with `{{name}}` holes filled in
//! one pass, every value escaped. Its inline `<style>` and `<script>` are fixed text, so their
//! SHA-256 hashes are computed once and the page carries a strict `Content-Security-Policy`
//! (no `'unsafe-inline'`, no other origin): it loads nothing from anywhere and works offline.
//! The offer the script needs (the v2 `accepts` entry, the resource, the chain) is embedded as
//! a JSON data block, escaped so no value can close it.

use std::sync::LazyLock;

use axum::http::{HeaderName, HeaderValue, header};
use base64::Engine as _;
use obol_x402::wire::ResourceInfo;
use obol_x402::{Refusal, Requirement};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The page template (see the module docs).
const TEMPLATE: &str = include_str!("paywall.html");

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that can sit inside a `<script type="application/json">` block: `<`, `>` and `&` only
/// occur inside JSON strings, where `\u003c` … mean the same, so no value can write
/// `</script>` or `<!--`.
pub fn script_json<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

// === Who gets the page ===

/// Most media ranges of an `Accept` list that are read; the rest is ignored (a browser sends
/// fewer than ten).
const MAX_ACCEPT_RANGES: usize = 32;
/// Longest `Accept` text that is read (longer is cut at a range boundary by the count above).
const MAX_ACCEPT_LEN: usize = 2048;

/// Whether a request to a paid route gets the HTML paywall instead of the JSON 402, from its
/// `Accept` values, its `Sec-Fetch-Dest` and whether it carries a payment header. A pure
/// decision:
///
/// - a request with a payment header is an x402 client (or the page's own retry): never HTML;
/// - a browser's `fetch` (`Sec-Fetch-Dest` present and not `document`) gets JSON;
/// - otherwise HTML only when `text/html` or `application/xhtml+xml` is accepted with `q > 0`
///   and ranked strictly above `application/json` (`*/*`, no `Accept`, a tie or anything
///   unreadable gets the JSON 402, which every x402 client understands).
pub fn wants_paywall<'a>(
    accept: impl IntoIterator<Item = &'a str>,
    fetch_dest: Option<&str>,
    has_payment: bool,
) -> bool {
    if has_payment {
        return false;
    }
    if fetch_dest.is_some_and(|d| !d.trim().eq_ignore_ascii_case("document")) {
        return false;
    }
    let (mut html, mut json) = (0u16, 0u16);
    let mut read = 0usize;
    let ranges = accept
        .into_iter()
        .flat_map(|value| value.split(','))
        .take(MAX_ACCEPT_RANGES);
    for range in ranges {
        read += range.len() + 1;
        if read > MAX_ACCEPT_LEN {
            break;
        }
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let mut q = Some(1000);
        for param in parts {
            if let Some((name, value)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                q = quality(value.trim());
            }
        }
        let Some(q) = q else { continue };
        if media.eq_ignore_ascii_case("text/html")
            || media.eq_ignore_ascii_case("application/xhtml+xml")
        {
            html = html.max(q);
        } else if media.eq_ignore_ascii_case("application/json") {
            json = json.max(q);
        }
    }
    html > 0 && html > json
}

/// An HTTP quality value (`0`, `0.5`, `1.000`) in thousandths; `None` when malformed.
fn quality(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

// === The page ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hole {
    Title,
    Description,
    Resource,
    Price,
    NetworkName,
    Network,
    PayTo,
    Refusal,
    Offer,
}

impl Hole {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "title" => Self::Title,
            "description" => Self::Description,
            "resource" => Self::Resource,
            "price" => Self::Price,
            "network_name" => Self::NetworkName,
            "network" => Self::Network,
            "pay_to" => Self::PayTo,
            "refusal" => Self::Refusal,
            "offer" => Self::Offer,
            _ => return None,
        })
    }
}

/// The template cut at its holes, and the policy that admits its inline code.
struct Page {
    /// `texts.len() == holes.len() + 1`.
    texts: Vec<String>,
    holes: Vec<Hole>,
    csp: HeaderValue,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| Page::parse(TEMPLATE));

impl Page {
    /// Cuts `template` at its `{{name}}` holes; a `{{` that names no hole stays text.
    fn parse(template: &str) -> Self {
        let (mut texts, mut holes, mut current) = (vec![], vec![], String::new());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let hole = after
                .find("}}")
                .and_then(|len| Hole::named(&after[..len]).map(|h| (h, len)));
            match hole {
                Some((hole, len)) => {
                    current.push_str(&rest[..start]);
                    texts.push(std::mem::take(&mut current));
                    holes.push(hole);
                    rest = &after[len + 2..];
                }
                None => {
                    current.push_str(&rest[..start + 2]);
                    rest = after;
                }
            }
        }
        current.push_str(rest);
        texts.push(current);
        Self {
            texts,
            holes,
            csp: content_security_policy(template),
        }
    }
}

/// The inline code of the template: the text between `open` and the next `close`, for every
/// `open` (exactly as the browser hashes it).
fn inline_blocks<'a>(template: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut found = vec![];
    let mut rest = template;
    while let Some(at) = rest.find(open) {
        let body = &rest[at + open.len()..];
        let Some(end) = body.find(close) else { break };
        found.push(&body[..end]);
        rest = &body[end + close.len()..];
    }
    found
}

fn sha256_source(code: &str) -> String {
    let digest = Sha256::digest(code.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// `default-src 'none'`, the page's own script and style by hash, `connect-src 'self'` for
/// the paid retry, and nothing else (no framing, no forms, no base).
fn content_security_policy(template: &str) -> HeaderValue {
    let hashes = |open| {
        inline_blocks(
            template,
            open,
            if open == "<style>" {
                "</style>"
            } else {
                "</script>"
            },
        )
        .into_iter()
        .map(sha256_source)
        .collect::<Vec<_>>()
        .join(" ")
    };
    let policy = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'none'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes("<script>"),
        hashes("<style>"),
    );
    HeaderValue::try_from(policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
}

/// The headers every paywall page carries besides `Content-Type`.
pub fn page_headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (header::CONTENT_SECURITY_POLICY, PAGE.csp.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::VARY, HeaderValue::from_static("Accept")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

/// What the page's script reads (the JSON data block).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Offer<'a> {
    accepted: obol_x402::wire::PaymentRequirementsV2,
    resource: &'a ResourceInfo,
    chain_id: u64,
    network_name: &'static str,
    decimals: u8,
    /// `wallet_addEthereumChain` parameters, for the chains whose public RPC is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    add_chain: Option<AddChain>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AddChain {
    chain_id: String,
    chain_name: &'static str,
    native_currency: NativeCurrency,
    rpc_urls: [&'static str; 1],
}

#[derive(Serialize)]
struct NativeCurrency {
    name: &'static str,
    symbol: &'static str,
    decimals: u8,
}

/// `wallet_addEthereumChain` for a chain a wallet may not know yet (Base and Base Sepolia, the
/// chains sellers use); other chains ship with every wallet or must be added by hand.
fn add_chain(network: &obol_x402::Network) -> Option<AddChain> {
    let (chain_name, rpc) = match network.name {
        "base" => ("Base", "https://mainnet.base.org"),
        "base-sepolia" => ("Base Sepolia", "https://sepolia.base.org"),
        _ => return None,
    };
    Some(AddChain {
        chain_id: format!("{:#x}", network.chain_id),
        chain_name,
        native_currency: NativeCurrency {
            name: "Ether",
            symbol: "ETH",
            decimals: 18,
        },
        rpc_urls: [rpc],
    })
}

/// The page for `requirement` at `resource`; `refusal` is the previous attempt's, shown with
/// its reason code. Every interpolated value is escaped.
pub fn paywall(
    requirement: &Requirement,
    resource: &ResourceInfo,
    refusal: Option<&Refusal>,
) -> String {
    let page = &*PAGE;
    let price = obol_api::price::format_atomic(
        requirement.amount.try_into().unwrap_or(u128::MAX),
        obol_x402::USDC_DECIMALS,
    );
    let description = resource.description.as_deref().unwrap_or_default();
    let offer = Offer {
        accepted: requirement.to_v2(),
        resource,
        chain_id: requirement.network.chain_id,
        network_name: requirement.network.name,
        decimals: obol_x402::USDC_DECIMALS,
        add_chain: add_chain(requirement.network),
    };
    let value = |hole| match hole {
        Hole::Title | Hole::Description => escape(description),
        Hole::Resource => escape(&resource.url),
        Hole::Price => escape(&price),
        Hole::NetworkName => escape(requirement.network.name),
        Hole::Network => escape(&requirement.network.caip2().to_string()),
        Hole::PayTo => requirement.pay_to.to_checksum(None),
        Hole::Refusal => refusal.map_or_else(String::new, |r| {
            let failure = r.payment_failure();
            format!(
                "<p id=\"refusal\" role=\"alert\">The last payment was refused \
                 (<span class=\"code\">{}</span>): {} {}</p>",
                escape(&failure.reason),
                escape(&failure.detail),
                escape(&failure.hint),
            )
        }),
        Hole::Offer => script_json(&offer),
    };
    let mut out = String::with_capacity(TEMPLATE.len() + 1024);
    for (i, text) in page.texts.iter().enumerate() {
        out.push_str(text);
        if let Some(hole) = page.holes.get(i) {
            out.push_str(&value(*hole));
        }
    }
    out
}

#[cfg(test)]
#[path = "html_tests.rs"]
mod tests;
