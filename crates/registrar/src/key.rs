//! The registrar's signing key: read from a file, never logged, printed or serialized.

use std::fmt;
use std::path::Path;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;

/// A secp256k1 key for registration transactions. `Debug` shows only the address; there is
/// no `Display`, no `Serialize` and no accessor for the key bytes.
#[derive(Clone)]
pub struct SigningKey(PrivateKeySigner);

impl SigningKey {
    /// Parses `0x` + 64 hex digits (surrounding whitespace ignored). The error never contains
    /// any part of the input.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let hex = text.strip_prefix("0x").unwrap_or(text);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("signing key: expected 0x + 64 hex digits".into());
        }
        hex.parse::<PrivateKeySigner>()
            .map(Self)
            .map_err(|_| "signing key: not a valid secp256k1 key".into())
    }

    /// Reads the key from a file (e.g. a mounted Secret).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("signing key file {}: {e}", path.display()))?;
        Self::parse(&text)
    }

    /// Reads a configured key file that may legitimately be absent: an optional Secret volume
    /// without its Secret mounts an empty directory. Absent → `None` (the registrar then runs
    /// OffChainOnly); present but unreadable or malformed → an error.
    pub fn from_optional_file(path: &Path) -> Result<Option<Self>, String> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => Self::from_file(path).map(Some),
        }
    }

    /// The address transactions come from.
    pub fn address(&self) -> Address {
        self.0.address()
    }

    /// The alloy signer, for the provider's wallet only.
    pub(crate) fn signer(&self) -> PrivateKeySigner {
        self.0.clone()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("address", &self.address())
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Public anvil dev key #0 (test-only).
    const DEV_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn parses_with_trailing_newline_and_redacts() {
        let key = SigningKey::parse(&format!("{DEV_KEY_0}\n")).unwrap();
        assert_eq!(
            key.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        let debug = format!("{key:?} {key:#?}");
        assert!(!debug.contains("ac0974be"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn an_absent_key_file_means_no_key_but_a_bad_one_is_an_error() {
        let dir = std::env::temp_dir().join(format!("obol-registrar-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            SigningKey::from_optional_file(&dir.join("missing"))
                .unwrap()
                .is_none()
        );
        let bad = dir.join("bad");
        std::fs::write(&bad, "0x1234").unwrap();
        assert!(SigningKey::from_optional_file(&bad).is_err());
        let good = dir.join("good");
        std::fs::write(&good, DEV_KEY_0).unwrap();
        assert!(SigningKey::from_optional_file(&good).unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_never_echo_the_input() {
        for bad in [&DEV_KEY_0[..40], "0xzz", &format!("0x{}", "0".repeat(64))] {
            let err = SigningKey::parse(bad).unwrap_err();
            assert!(!err.contains("ac0974") && !err.contains("zz"), "{err}");
        }
    }
}
