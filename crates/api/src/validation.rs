//! The value rules the CRD schemas enforce, as patterns (the schema attributes spell the same
//! strings; a test keeps them equal) and as client-side checks for the CLI, so the API server and
//! the CLI refuse exactly the same values.

/// An EVM address: `0x` and 40 hex digits (any case).
pub const ADDRESS: &str = "^0x[0-9a-fA-F]{40}$";
/// An offer path: a leading `/`, then URL-safe path characters.
pub const PATH: &str = "^/[a-zA-Z0-9/_.-]*$";
/// A non-negative decimal number without sign or exponent (`0.001`, `12`).
pub const DECIMAL: &str = "^[0-9]+(\\.[0-9]+)?$";
/// A non-negative integer (atomic token units).
pub const UINT: &str = "^[0-9]+$";
/// A network: a legacy chain name (`base-sepolia`) or a CAIP-2 EVM id (`eip155:84532`).
pub const NETWORK: &str = "^([a-z0-9][a-z0-9-]*|eip155:[0-9]+)$";

/// Whether `s` matches [`ADDRESS`].
pub fn is_address(s: &str) -> bool {
    s.len() == 42 && s.starts_with("0x") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` matches [`PATH`].
pub fn is_path(s: &str) -> bool {
    s.starts_with('/')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'.' | b'-'))
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

    #[test]
    fn address_table() {
        let ok = [
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "0x0000000000000000000000000000000000000000",
        ];
        let bad = [
            "",
            "0x",
            "70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C88",
            "0X70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79Cg",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C\u{e9}",
        ];
        ok.iter().for_each(|s| assert!(is_address(s), "{s}"));
        bad.iter().for_each(|s| assert!(!is_address(s), "{s}"));
    }

    #[test]
    fn path_table() {
        let ok = ["/", "/services/demo", "/a_b/c.d-e/"];
        let bad = ["", "services", "/a b", "/a?b", "/ä", "/a*b", "/a%20"];
        ok.iter().for_each(|s| assert!(is_path(s), "{s}"));
        bad.iter().for_each(|s| assert!(!is_path(s), "{s}"));
    }

    #[test]
    fn network_table() {
        let ok = [
            "base-sepolia",
            "base",
            "eip155:84532",
            "eip155:1",
            "polygon-amoy",
        ];
        let bad = [
            "",
            "Base",
            "-base",
            "eip155:",
            "eip155:x",
            "solana:abc",
            "base sepolia",
        ];
        ok.iter().for_each(|s| assert!(is_network(s), "{s}"));
        bad.iter().for_each(|s| assert!(!is_network(s), "{s}"));
    }
}
