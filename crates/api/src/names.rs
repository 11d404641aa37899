//! Names of the objects the controller derives from an offer.
//!
//! Every child name is a valid DNS-1123 **label** (at most 63 characters of `[a-z0-9-]`,
//! alphanumeric at both ends), whatever the offer's name: a label is also a valid object name,
//! Service name and label value, so a name derived here can be used anywhere. Names that fit are
//! used as they are (`so-demo`); others are shortened deterministically and get the first eight
//! hex digits of the SHA-256 of the offer name, so distinct offers never share a child name.

use sha2::{Digest, Sha256};

/// Longest DNS-1123 label.
pub const MAX_LABEL_LEN: usize = 63;
/// Longest DNS-1123 subdomain (the limit for most object names).
pub const MAX_SUBDOMAIN_LEN: usize = 253;
const HASH_LEN: usize = 8;

/// The Traefik Middleware (ForwardAuth to the verifier): `x402-<offer>`.
pub fn middleware(offer: &str) -> String {
    child_name("x402-", offer, "")
}

/// The PaymentRoute: `x402-<offer>`, the same name as the Middleware that points at it.
pub fn payment_route(offer: &str) -> String {
    child_name("x402-", offer, "")
}

/// The Gateway API HTTPRoute: `so-<offer>`.
pub fn http_route(offer: &str) -> String {
    child_name("so-", offer, "")
}

/// The RegistrationRequest: `so-<offer>-registration`.
pub fn registration_request(offer: &str) -> String {
    child_name("so-", offer, "-registration")
}

/// The path an offer is published at when `spec.path` is unset: `/services/<offer>`.
pub fn default_path(offer: &str) -> String {
    format!("/services/{offer}")
}

/// `prefix + name + suffix` when that is a valid DNS-1123 label; otherwise the name part is
/// lower-cased, every other character becomes `-`, it is cut to fit, and `-<hash>` is appended.
/// `prefix` and `suffix` are kept whole; they must be label characters themselves.
pub fn child_name(prefix: &str, name: &str, suffix: &str) -> String {
    let plain = format!("{prefix}{name}{suffix}");
    if is_dns1123_label(&plain) {
        return plain;
    }
    let sanitized: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect();
    let budget = MAX_LABEL_LEN.saturating_sub(prefix.len() + suffix.len() + HASH_LEN + 1);
    let body = sanitized[..sanitized.len().min(budget)].trim_matches('-');
    let hash = short_hash(name);
    let joined = match (prefix.is_empty(), body.is_empty()) {
        (_, true) => format!("{prefix}{hash}{suffix}"),
        _ => format!("{prefix}{body}-{hash}{suffix}"),
    };
    // A prefix or suffix that is not label-safe is the caller's bug; still return a valid name.
    if is_dns1123_label(&joined) {
        joined
    } else {
        format!("x{hash}")
    }
}

fn short_hash(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    hex::encode(digest)[..HASH_LEN].to_owned()
}

/// Whether `s` is a DNS-1123 label: 1–63 of `[a-z0-9-]`, alphanumeric first and last.
pub fn is_dns1123_label(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LABEL_LEN
        && bytes.iter().all(|&b| alnum(b) || b == b'-')
        && alnum(bytes[0])
        && alnum(bytes[bytes.len() - 1])
}

/// Whether `s` is a DNS-1123 subdomain: at most 253 characters of dot-separated labels.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SUBDOMAIN_LEN && s.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept() {
        // The Go controller's C1/C4/C7 names.
        assert_eq!(middleware("demo"), "x402-demo");
        assert_eq!(payment_route("demo"), "x402-demo");
        assert_eq!(http_route("demo"), "so-demo");
        assert_eq!(registration_request("demo"), "so-demo-registration");
        assert_eq!(default_path("demo"), "/services/demo");
    }

    #[test]
    fn every_name_is_a_label_whatever_the_input() {
        let long = "a".repeat(260);
        let dotted = format!("{}.example.com", "b".repeat(70));
        let inputs: Vec<&str> = vec![
            "demo",
            "a",
            "my.api",
            "UPPER-case",
            "ünïcödé-offer",
            "日本語",
            "🦀🦀🦀",
            "-leading",
            "trailing-",
            "",
            "a b/c",
            &long,
            &dotted,
            // The longest plain name per helper, and one more.
            "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghi",
            "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij",
            "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijab",
            "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd",
        ];
        for input in inputs {
            for name in [
                middleware(input),
                http_route(input),
                registration_request(input),
            ] {
                assert!(is_dns1123_label(&name), "{name:?} from {input:?}");
            }
            let rr = registration_request(input);
            assert!(
                rr.starts_with("so-") && rr.ends_with("-registration"),
                "{rr}"
            );
        }
    }

    #[test]
    fn edge_lengths() {
        // `x402-` + 58 chars = 63: kept; 59 chars: shortened to exactly 63 with a hash.
        let fits = "a".repeat(58);
        assert_eq!(middleware(&fits), format!("x402-{fits}"));
        let over = "a".repeat(59);
        let m = middleware(&over);
        assert_eq!(m.len(), MAX_LABEL_LEN);
        assert!(m.starts_with("x402-aaaa") && m != format!("x402-{over}"));
        // `so-` + 47 + `-registration` = 63.
        let fits = "r".repeat(47);
        assert_eq!(
            registration_request(&fits),
            format!("so-{fits}-registration")
        );
        assert_eq!(registration_request(&"r".repeat(48)).len(), MAX_LABEL_LEN);
    }

    #[test]
    fn distinct_inputs_give_distinct_names() {
        let base = "x".repeat(100);
        let names: std::collections::HashSet<String> = [
            format!("{base}1"),
            format!("{base}2"),
            "my.api".into(),
            "my-api".into(),
            "My-Api".into(),
            "ä".into(),
            "ö".into(),
        ]
        .iter()
        .map(|n| http_route(n))
        .collect();
        assert_eq!(names.len(), 7);
        // Deterministic.
        assert_eq!(http_route("my.api"), http_route("my.api"));
    }

    #[test]
    fn label_and_subdomain_checks() {
        let ok_labels = ["a", "a-b", "0", "a1", &"z".repeat(63)];
        let bad_labels = ["", "-a", "a-", "A", "a.b", "a_b", "ä", &"z".repeat(64)];
        for s in ok_labels {
            assert!(is_dns1123_label(s), "{s}");
        }
        for s in bad_labels {
            assert!(!is_dns1123_label(s), "{s}");
        }
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain(&"a.".repeat(127)));
    }
}
