//! The HTML paywall a browser gets instead of the JSON 402 (status still 402).

use obol_x402::Requirement;
use obol_x402::wire::ResourceInfo;

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

/// A self-contained page: what is sold, the price, the recipient, and the same JSON as the
/// 402 body for x402-aware tooling. Every interpolated value is escaped.
pub fn paywall(requirement: &Requirement, resource: &ResourceInfo, json: &[u8]) -> String {
    let amount = obol_api::price::format_atomic(
        requirement.amount.try_into().unwrap_or(u128::MAX),
        obol_x402::USDC_DECIMALS,
    );
    let description = resource.description.as_deref().unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Payment required</title></head><body>\
<h1>Payment required</h1><p>{description}</p>\
<dl><dt>Resource</dt><dd>{url}</dd><dt>Price</dt><dd>{amount} USDC</dd>\
<dt>Network</dt><dd>{network}</dd><dt>Pay to</dt><dd>{pay_to}</dd></dl>\
<p>Pay with an x402 client: send the signed payment in the <code>PAYMENT-SIGNATURE</code> \
(x402 v2) or <code>X-PAYMENT</code> (v1) header.</p>\
<pre id=\"x402\">{json}</pre></body></html>\n",
        description = escape(description),
        url = escape(&resource.url),
        network = escape(&requirement.network.caip2().to_string()),
        pay_to = requirement.pay_to.to_checksum(None),
        json = escape(&String::from_utf8_lossy(json)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
