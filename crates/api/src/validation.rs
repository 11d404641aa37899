//! The value rules of the resources, each written once: as a constant the CRD schemas are
//! generated from (patterns, ranges, lengths, defaults) and as a predicate that
//! [`crate::ServiceOfferSpec::validate`] (and so the CLI and the controller) applies. A table
//! test below keeps each predicate equal to its pattern; the property test
//! `tests/offer_rules.rs` checks that whatever the generated schema admits, `validate` answers,
//! and that `validate` admits nothing the schema refuses.

/// An EVM address: `0x` and 40 hex digits (any case).
pub const ADDRESS: &str = "^0x[0-9a-fA-F]{40}$";
/// An offer path: a leading `/`, then URL-safe path characters, never `..` (a gateway
/// normalises dot segments away, so such a path would publish somewhere else than it says).
pub const PATH: &str = r"^/([a-zA-Z0-9/_-]|\.[a-zA-Z0-9/_-])*\.?$";
/// A health path probed on the upstream: like [`PATH`] plus a query (`? = & %`); `..` is
/// allowed, the upstream is probed directly, not through the gateway.
pub const HEALTH_PATH: &str = "^/[a-zA-Z0-9/_.?=&%-]*$";
/// A PaymentRoute pattern: a path with `*` globs.
pub const ROUTE_PATTERN: &str = "^/[a-zA-Z0-9/_.*-]*$";
/// A non-negative decimal number without sign or exponent (`0.001`, `12`).
pub const DECIMAL: &str = r"^[0-9]+(\.[0-9]+)?$";
/// A non-negative integer (atomic token units).
pub const UINT: &str = "^[0-9]+$";
/// A network: a legacy chain name (`base-sepolia`) or a CAIP-2 EVM id (`eip155:84532`).
pub const NETWORK: &str = "^([a-z0-9][a-z0-9-]*|eip155:[0-9]+)$";
/// A DNS-1123 label (a Service name): lower-case alphanumerics and `-`, alphanumeric at both
/// ends, at most [`crate::names::MAX_LABEL_LEN`] characters.
pub const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS-1123 label or nothing (an empty upstream namespace means the offer's own).
pub const DNS_LABEL_OR_EMPTY: &str = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$";
/// An `http` or `https` URL without spaces.
pub const HTTP_URL: &str = r"^https?://[^\s]+$";

/// Longest offer path and PaymentRoute pattern.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest PaymentRoute description (what a 402 shows buyers).
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Lowest port number.
pub const MIN_PORT: i32 = 1;
/// Highest port number.
pub const MAX_PORT: i32 = 65535;
/// Upstream port when the offer names none (and `obol sell http --port`'s default): the HTTP
/// service port. The Go CRD said 11434 (Ollama's), which the Go CLI contradicted with 8080;
/// offers are `type: http` by default, so 8080 it is.
pub const DEFAULT_UPSTREAM_PORT: i32 = 8080;
/// Health path when the offer names none.
pub const DEFAULT_HEALTH_PATH: &str = "/health";
/// Shortest payment validity window, seconds.
pub const MIN_TIMEOUT_SECONDS: i64 = 1;
/// Longest payment validity window, seconds (a day).
pub const MAX_TIMEOUT_SECONDS: i64 = 86400;
/// Payment validity window when the offer names none, seconds.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 300;
/// Most decimals of a token override.
pub const MAX_ASSET_DECIMALS: u8 = 36;
/// A media type without parameters, lower-case (`application/x-ndjson`).
pub const MEDIA_TYPE: &str = "^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$";
/// Most streaming content types an offer may declare.
pub const MAX_STREAMING_TYPES: usize = 16;
/// An RFC 3339 timestamp with an offset (`2026-01-02T03:04:05Z`, `…05.5+02:00`); the calendar
/// is checked by [`crate::drain::parse_drain_at`].
pub const TIMESTAMP: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$";
/// A drain grace period: a whole number of seconds, minutes or hours (`90s`, `15m`, `1h`).
pub const GRACE_PERIOD: &str = "^[0-9]{1,7}(s|m|h)$";
/// Longest drain grace period, seconds (30 days).
pub const MAX_DRAIN_GRACE_SECONDS: u64 = 30 * 86_400;

/// Whether `s` matches [`ADDRESS`].
pub fn is_address(s: &str) -> bool {
    s.len() == 42 && s.starts_with("0x") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'.' | b'-')
}

/// Whether `s` matches [`PATH`].
pub fn is_path(s: &str) -> bool {
    s.starts_with('/') && s.bytes().all(path_char) && !s.contains("..")
}

/// Whether `s` matches [`ROUTE_PATTERN`].
pub fn is_route_pattern(s: &str) -> bool {
    s.starts_with('/') && s.bytes().all(|b| path_char(b) || b == b'*')
}

/// Whether `s` matches [`HEALTH_PATH`].
pub fn is_health_path(s: &str) -> bool {
    s.starts_with('/')
        && s.bytes()
            .all(|b| path_char(b) || matches!(b, b'?' | b'=' | b'&' | b'%'))
}

/// Whether `s` matches [`MEDIA_TYPE`].
pub fn is_media_type(s: &str) -> bool {
    let part = |p: &str| {
        let b = p.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b.iter().all(|&c| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || matches!(
                        c,
                        b'!' | b'#' | b'$' | b'&' | b'^' | b'_' | b'.' | b'+' | b'-'
                    )
            })
    };
    s.split_once('/')
        .is_some_and(|(t, sub)| part(t) && part(sub))
}

/// Whether `s` matches [`TIMESTAMP`].
pub fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let fixed = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !fixed {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        rest = &frac[n..];
    }
    let o = rest.as_bytes();
    rest == "Z"
        || (o.len() == 6
            && matches!(o[0], b'+' | b'-')
            && o[1..3].iter().all(u8::is_ascii_digit)
            && o[3] == b':'
            && o[4..6].iter().all(u8::is_ascii_digit))
}

/// Whether `s` matches [`GRACE_PERIOD`].
pub fn is_grace_period(s: &str) -> bool {
    match s.as_bytes().split_last() {
        Some((unit, digits)) => {
            matches!(unit, b's' | b'm' | b'h')
                && (1..=7).contains(&digits.len())
                && digits.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

/// Whether `s` matches [`DECIMAL`].
pub fn is_decimal(s: &str) -> bool {
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac),
        None => digits(s),
    }
}

/// Whether `s` matches [`NETWORK`].
pub fn is_network(s: &str) -> bool {
    if let Some(id) = s.strip_prefix("eip155:") {
        return !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    }
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each predicate accepts exactly what its pattern matches, on the listed strings.
    #[test]
    fn predicates_equal_their_patterns() {
        type Rule = (&'static str, fn(&str) -> bool, &'static [&'static str]);
        let rules: &[Rule] = &[
            (
                ADDRESS,
                is_address,
                &[
                    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    "0x0000000000000000000000000000000000000000",
                    "",
                    "0x",
                    "70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    "0x70997970C51812dc3A010C7d01b50e0d17dc79C",
                    "0x70997970C51812dc3A010C7d01b50e0d17dc79C88",
                    "0X70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    "0x70997970C51812dc3A010C7d01b50e0d17dc79Cg",
                    "0x70997970C51812dc3A010C7d01b50e0d17dc79C\u{e9}",
                ],
            ),
            (
                PATH,
                is_path,
                &[
                    "/",
                    "/services/demo",
                    "/a_b/c.d-e/",
                    "/.well-known",
                    "/a/.",
                    "/v1.2/x",
                    "",
                    "services",
                    "/a b",
                    "/a?b",
                    "/ä",
                    "/a*b",
                    "/a%20",
                    "/a/../b",
                    "/..",
                    "/a..b",
                    "/a/..",
                    "/...",
                ],
            ),
            (
                ROUTE_PATTERN,
                is_route_pattern,
                &[
                    "/",
                    "/v1/*",
                    "/a-*/b_c.d",
                    "/*",
                    "",
                    "v1",
                    "/a b",
                    "/a?b",
                    "/ä",
                ],
            ),
            (
                HEALTH_PATH,
                is_health_path,
                &[
                    "/",
                    "/health",
                    "/health?full=1&x=%20",
                    "/a/../b",
                    "",
                    "health",
                    "/a b",
                    "/a#b",
                    "/ä",
                ],
            ),
            (
                DECIMAL,
                is_decimal,
                &[
                    "0", "0.001", "12", "007.50", "", ".5", "5.", "1.2.3", "-1", "+1", "1e3", " 1",
                    "1,5",
                ],
            ),
            (
                NETWORK,
                is_network,
                &[
                    "base-sepolia",
                    "base",
                    "eip155:84532",
                    "eip155:1",
                    "polygon-amoy",
                    "0chain",
                    "",
                    "Base",
                    "-base",
                    "eip155:",
                    "eip155:x",
                    "solana:abc",
                    "base sepolia",
                ],
            ),
            (
                TIMESTAMP,
                is_timestamp,
                &[
                    "2026-01-02T03:04:05Z",
                    "2026-01-02T03:04:05.5Z",
                    "2026-01-02T03:04:05.123456789+02:00",
                    "2026-01-02T03:04:05-11:30",
                    "2026-01-02T03:04:05",
                    "2026-01-02 03:04:05Z",
                    "2026-01-02t03:04:05Z",
                    "2026-01-02T03:04:05z",
                    "2026-01-02T03:04:05.Z",
                    "2026-01-02T03:04:05.1234567890Z",
                    "2026-01-02T03:04:05+0200",
                    "2026-01-02T03:04Z",
                    "26-01-02T03:04:05Z",
                    "2026-01-02T03:04:05Z ",
                    "2026-01-02T03:04:05\u{e9}",
                    "",
                ],
            ),
            (
                GRACE_PERIOD,
                is_grace_period,
                &[
                    "0s",
                    "90s",
                    "15m",
                    "1h",
                    "9999999h",
                    "10000000h",
                    "1",
                    "1d",
                    "500ms",
                    "1h30m",
                    "-1s",
                    "",
                    "s",
                    " 1h",
                    "1H",
                ],
            ),
            (
                MEDIA_TYPE,
                is_media_type,
                &[
                    "application/x-ndjson",
                    "text/event-stream",
                    "application/vnd.api+json",
                    "application/json-seq",
                    "Application/json",
                    "text/plain; charset=utf-8",
                    "text",
                    "/json",
                    "text/",
                    "a/b/c",
                    "-x/y",
                    "",
                ],
            ),
        ];
        for (pattern, predicate, samples) in rules {
            let re = regex::Regex::new(pattern).unwrap();
            let mut answers = [0usize; 2];
            for s in *samples {
                let want = re.is_match(s);
                answers[usize::from(want)] += 1;
                assert_eq!(predicate(s), want, "{pattern} on {s:?}");
            }
            assert!(
                answers[0] > 0 && answers[1] > 0,
                "{pattern}: the samples exercise both answers"
            );
        }
    }

    #[test]
    fn dns_patterns_equal_the_name_rules() {
        let label = regex::Regex::new(DNS_LABEL).unwrap();
        let or_empty = regex::Regex::new(DNS_LABEL_OR_EMPTY).unwrap();
        let long = "a".repeat(63);
        for s in [
            "a", "a-b", "0", "ab1", "-a", "a-", "A", "a_b", "a.b", "", &long,
        ] {
            assert_eq!(
                label.is_match(s),
                crate::names::is_dns1123_label(s),
                "{s:?}"
            );
            assert_eq!(
                or_empty.is_match(s),
                s.is_empty() || crate::names::is_dns1123_label(s),
                "{s:?}"
            );
        }
    }
}
