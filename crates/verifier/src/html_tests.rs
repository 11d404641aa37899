use serde_json::Value;

use super::*;
use crate::decide::{Forwarded, resource};
use crate::error::Denial;
use crate::testing::mk_entry;

const BROWSER: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// (case, Accept values, Sec-Fetch-Dest, payment header, page)
type Case<'a> = (&'a str, &'a [&'a str], Option<&'a str>, bool, bool);

#[test]
fn who_gets_the_page() {
    let long = format!("{},text/html", "a/b,".repeat(40));
    let huge = format!("text/html;q=0.{}", "1".repeat(5000));
    let cases: &[Case<'_>] = &[
        (
            "Chromium navigation",
            &[BROWSER],
            Some("document"),
            false,
            true,
        ),
        (
            "Firefox navigation",
            &["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
            None,
            false,
            true,
        ),
        (
            "Safari",
            &["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
            None,
            false,
            true,
        ),
        ("xhtml only", &["application/xhtml+xml"], None, false, true),
        ("upper case", &["TEXT/HTML"], Some("DOCUMENT"), false, true),
        (
            "html in a second Accept header",
            &["application/xml", "text/html"],
            None,
            false,
            true,
        ),
        ("curl", &["*/*"], None, false, false),
        ("no Accept", &[], None, false, false),
        ("empty Accept", &[""], None, false, false),
        (
            "x402 client: JSON",
            &["application/json"],
            None,
            false,
            false,
        ),
        (
            "x402 client: JSON first",
            &["application/json, text/html;q=0.9"],
            None,
            false,
            false,
        ),
        (
            "tie goes to JSON",
            &["text/html, application/json"],
            None,
            false,
            false,
        ),
        (
            "html ranked above JSON",
            &["application/json;q=0.5, text/html"],
            None,
            false,
            true,
        ),
        (
            "x402 client retrying with a payment",
            &[BROWSER],
            Some("document"),
            true,
            false,
        ),
        (
            "the page's own fetch",
            &["*/*"],
            Some("empty"),
            false,
            false,
        ),
        (
            "a fetch asking for HTML",
            &["text/html"],
            Some("empty"),
            false,
            false,
        ),
        ("iframe", &[BROWSER], Some("iframe"), false, false),
        (
            "html refused with q=0",
            &["text/html;q=0, */*"],
            None,
            false,
            false,
        ),
        ("q=0.000", &["text/html;q=0.000"], None, false, false),
        ("q=0.001", &["text/html;q=0.001"], None, false, true),
        ("q=1.0", &["text/html;q=1.0"], None, false, true),
        (
            "q above 1 is malformed",
            &["text/html;q=2"],
            None,
            false,
            false,
        ),
        (
            "q=1.5 is malformed",
            &["text/html;q=1.5"],
            None,
            false,
            false,
        ),
        (
            "q with four decimals",
            &["text/html;q=0.1234"],
            None,
            false,
            false,
        ),
        ("q not a number", &["text/html;q=abc"], None, false, false),
        ("negative q", &["text/html;q=-1"], None, false, false),
        ("very long q", &[&huge], None, false, false),
        ("a longer type", &["text/htmlx"], None, false, false),
        ("a prefix of it", &["text/htm"], None, false, false),
        (
            "html as a parameter",
            &["application/json;x=text/html"],
            None,
            false,
            false,
        ),
        ("html past the read ranges", &[&long], None, false, false),
        ("wildcard text", &["text/*"], None, false, false),
        ("spaces", &["  text/html  ;  q=0.8  "], None, false, true),
        ("control bytes", &["\u{1}text/html"], None, false, false),
        ("a range that is only ;", &[";;;,,,"], None, false, false),
    ];
    for (case, accept, dest, paid, want) in cases {
        assert_eq!(
            wants_paywall(accept.iter().copied(), *dest, *paid),
            *want,
            "{case}: {accept:?}"
        );
    }
}

#[test]
fn header_map_reads_all_three_inputs() {
    use axum::http::HeaderMap;
    let mut h = HeaderMap::new();
    h.insert("accept", HeaderValue::from_static(BROWSER));
    assert!(crate::decide::wants_html(&h));
    h.insert("sec-fetch-dest", HeaderValue::from_static("empty"));
    assert!(!crate::decide::wants_html(&h));
    h.insert("sec-fetch-dest", HeaderValue::from_static("document"));
    h.insert("x-payment", HeaderValue::from_static("e30="));
    assert!(!crate::decide::wants_html(&h));
    h.remove("x-payment");
    h.insert("payment-signature", HeaderValue::from_static("e30="));
    assert!(!crate::decide::wants_html(&h));
}

/// The text of the first `<script type="application/json" id="x402-offer">` block.
fn offer_json(page: &str) -> Value {
    let open = "<script type=\"application/json\" id=\"x402-offer\">";
    let start = page.find(open).expect("offer block") + open.len();
    let len = page[start..].find("</script>").expect("closed");
    serde_json::from_str(&page[start..start + len]).expect("offer is JSON")
}

fn render(description: &str, uri: &str, host: &str, refusal: Option<&Denial>) -> String {
    let mut route = mk_entry("llm", "demo", "/services/demo/*");
    route.description = Some(description.to_owned());
    let requirement = route.requirement.clone().expect("priced");
    let fwd = Forwarded {
        proto: Some("https"),
        host: Some(host),
        uri,
        wants_html: true,
    };
    let res = resource(&route, &fwd);
    let refusal = refusal.map(|d| d.refusal(Some(&requirement)));
    paywall(&requirement, &res, refusal.as_ref())
}

#[test]
fn hostile_values_are_escaped_everywhere() {
    let hostile = [
        "</script><script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
        "<!-- <script>",
        "{{offer}} {{refusal}} {{title}}",
        "it's & \"quoted\"",
        "line\u{2028}separator\u{2029}",
        "ünïcödé \u{0}\u{7f}",
    ];
    let (scripts, styles) = (
        TEMPLATE.matches("<script").count(),
        TEMPLATE.matches("<style").count(),
    );
    for text in hostile {
        let uri = format!("/services/demo/{}", text.replace(' ', "%20"));
        let page = render(text, &uri, "obol.stack", None);
        assert_eq!(page.matches("<script").count(), scripts, "{text}: {page}");
        assert_eq!(page.matches("</script").count(), scripts, "{text}");
        assert_eq!(page.matches("<style").count(), styles, "{text}");
        assert!(!page.contains("<img"), "{text}");
        assert!(!page.contains("<!-- <"), "{text}");
        assert!(
            page.contains(&escape(text)),
            "{text}: description shown escaped"
        );
        // The data block gives the script the values exactly.
        let offer = offer_json(&page);
        assert_eq!(offer["resource"]["description"], text, "{text}");
        assert_eq!(offer["resource"]["url"], format!("https://obol.stack{uri}"));
        // The inline code is the template's, byte for byte (so its hash still matches).
        assert_eq!(
            inline_blocks(&page, "<script>", "</script>"),
            inline_blocks(TEMPLATE, "<script>", "</script>")
        );
    }
    let page = render("ok", "/services/demo/x", "evil\"><script>x</script>", None);
    assert!(!page.contains("<script>x"));
}

#[test]
fn the_page_says_what_is_sold_and_embeds_the_v2_offer() {
    let page = render(
        "Chat completions, 8B model",
        "/services/demo/v1/chat",
        "obol.stack",
        None,
    );
    for text in [
        "Chat completions, 8B model",
        "0.001 USDC",
        "base-sepolia",
        "eip155:84532",
        crate::testing::PAY_TO,
        "https://obol.stack/services/demo/v1/chat",
        "Pay with wallet",
    ] {
        assert!(page.contains(text), "{text} missing");
    }
    assert!(!page.contains("id=\"refusal\""));
    assert!(!page.contains("{{"), "every hole filled");
    let offer = offer_json(&page);
    assert_eq!(offer["chainId"], 84532);
    assert_eq!(offer["networkName"], "base-sepolia");
    assert_eq!(offer["decimals"], 6);
    assert_eq!(offer["addChain"]["chainId"], "0x14a34");
    let accepted = &offer["accepted"];
    let requirement = mk_entry("llm", "demo", "/services/demo/*")
        .requirement
        .expect("priced");
    assert_eq!(
        accepted,
        &serde_json::to_value(requirement.to_v2()).expect("json")
    );
    assert_eq!(accepted["amount"], "1000");
    assert_eq!(accepted["extra"]["name"], "USDC");
}

#[test]
fn a_refused_payment_is_shown_with_its_reason_code() {
    let page = render(
        "demo",
        "/services/demo/x",
        "obol.stack",
        Some(&Denial::Replayed),
    );
    let refusal = Denial::Replayed.refusal(None);
    assert!(page.contains("id=\"refusal\""));
    assert!(page.contains(refusal.reason.code()), "{page}");
}

#[test]
fn the_policy_admits_exactly_the_inline_code() {
    let csp = PAGE.csp.to_str().expect("ascii").to_owned();
    assert!(csp.starts_with("default-src 'none'; "), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(csp.contains("connect-src 'self'"));
    let scripts = inline_blocks(TEMPLATE, "<script>", "</script>");
    let styles = inline_blocks(TEMPLATE, "<style>", "</style>");
    assert_eq!((scripts.len(), styles.len()), (1, 1));
    for code in scripts.iter().chain(&styles) {
        assert!(csp.contains(&sha256_source(code)), "{csp}");
        assert!(!code.contains("{{"), "no hole inside inline code");
    }
    // Nothing is loaded from anywhere: no src/href attributes, no url() in the style.
    for needle in ["src=", "href=", "url(", "@import", "http://", "//fonts"] {
        assert!(!TEMPLATE.contains(needle), "{needle}");
    }
    let headers = page_headers();
    assert!(
        headers
            .iter()
            .any(|(n, _)| n == header::CONTENT_SECURITY_POLICY)
    );
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == header::CACHE_CONTROL && v == "no-store")
    );
}

#[test]
fn a_template_with_unknown_holes_keeps_them_as_text() {
    let page = Page::parse("a{{title}}b{{nope}}c{{offer}}{{");
    assert_eq!(page.texts, ["a", "b{{nope}}c", "{{"]);
    assert_eq!(page.holes, [Hole::Title, Hole::Offer]);
}

#[test]
fn quality_values() {
    for (text, want) in [
        ("1", Some(1000)),
        ("1.", Some(1000)),
        ("1.000", Some(1000)),
        ("0", Some(0)),
        ("0.5", Some(500)),
        ("0.05", Some(50)),
        ("1.001", None),
        ("0.0001", None),
        ("", None),
        ("0.a", None),
        ("+0.5", None),
    ] {
        assert_eq!(quality(text), want, "{text}");
    }
}

#[test]
fn script_json_cannot_close_its_block() {
    let s = script_json(&serde_json::json!({"a": "</script><!--&\u{2028}"}));
    assert!(
        !s.contains('<') && !s.contains('>') && !s.contains('&'),
        "{s}"
    );
    let back: Value = serde_json::from_str(&s).expect("still JSON");
    assert_eq!(back["a"], "</script><!--&\u{2028}");
}
