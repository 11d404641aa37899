//! The one secp256k1 key type of the workspace (the payer's EIP-3009 key, the registrar's
//! transaction key), kept out of logs, `Debug` and error messages.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use alloy::primitives::{Address, B256, Signature};
use alloy::signers::SignerSync as _;
use alloy::signers::local::PrivateKeySigner;

/// A secp256k1 private key used to sign EIP-3009 authorizations.
///
/// `Debug` prints only the address; there is deliberately no `Display`, `Serialize` or accessor
/// for the key bytes. The underlying k256 key is zeroized on drop.
#[derive(Clone)]
pub struct PrivateKey(PrivateKeySigner);

/// Why an encrypted JSON keystore could not be opened. Carries no key material and no part
/// of the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoreError {
    /// The file could not be read.
    #[error("cannot read the keystore file")]
    Read,
    /// Not an encrypted JSON keystore (Web3 Secret Storage, version 3) this build reads.
    #[error("not an encrypted JSON keystore (version 3, scrypt or pbkdf2, aes-128-ctr)")]
    Format,
    /// The MAC does not match: a wrong password, or a damaged file.
    #[error("wrong password (or a damaged keystore)")]
    WrongPassword,
    /// It decrypts to something that is not a secp256k1 private key.
    #[error("the keystore does not hold a valid secp256k1 private key")]
    InvalidKey,
}

/// A private key string that is not `0x` + 64 hex digits, or not a valid secp256k1 scalar.
/// Carries no part of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid private key (expected 0x + 64 hex digits of a valid secp256k1 scalar)")]
pub struct InvalidPrivateKey;

/// A key file that cannot be used. The message names the file and what is wrong, never any part
/// of its content.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold a key.
    #[error("key file {path}: {source}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        source: InvalidPrivateKey,
    },
}

impl PrivateKey {
    /// Reads a key file (`0x` + 64 hex digits, e.g. a mounted Secret; whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self, KeyFileError> {
        let shown = || path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: shown(),
            source,
        })?;
        text.parse().map_err(|source| KeyFileError::Invalid {
            path: shown(),
            source,
        })
    }

    /// Reads a configured key file that may legitimately be absent: an optional Secret volume
    /// without its Secret mounts an empty directory. Absent → `None`; present but unreadable or
    /// malformed → an error.
    pub fn from_optional_file(path: &Path) -> Result<Option<Self>, KeyFileError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => Self::from_file(path).map(Some),
        }
    }

    /// The alloy signer, for a transaction provider's wallet (the registrar's). alloy's signer
    /// shows only its address in `Debug` too.
    pub fn signer(&self) -> PrivateKeySigner {
        self.0.clone()
    }

    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &B256) -> Result<Self, InvalidPrivateKey> {
        PrivateKeySigner::from_bytes(bytes)
            .map(Self)
            .map_err(|_| InvalidPrivateKey)
    }

    /// Decrypts an encrypted JSON keystore (Web3 Secret Storage v3, as geth, foundry's
    /// `cast wallet` and most wallets write them) with `password`.
    pub fn from_keystore(path: &std::path::Path, password: &[u8]) -> Result<Self, KeystoreError> {
        use alloy::signers::local::LocalSignerError;
        use eth_keystore::KeystoreError as Inner;
        match PrivateKeySigner::decrypt_keystore(path, password) {
            Ok(signer) => Ok(Self(signer)),
            Err(LocalSignerError::EthKeystoreError(Inner::MacMismatch)) => {
                Err(KeystoreError::WrongPassword)
            }
            Err(LocalSignerError::EthKeystoreError(Inner::StdIo(_))) => Err(KeystoreError::Read),
            Err(LocalSignerError::EthKeystoreError(_)) => Err(KeystoreError::Format),
            Err(_) => Err(KeystoreError::InvalidKey),
        }
    }

    /// The address this key signs for.
    pub fn address(&self) -> Address {
        self.0.address()
    }

    /// Signs a 32-byte digest (RFC 6979 nonce, low-s, `v` as parity).
    pub fn sign_hash(&self, digest: &B256) -> Result<Signature, crate::eip3009::SignatureError> {
        self.0
            .sign_hash_sync(digest)
            .map_err(|_| crate::eip3009::SignatureError::SigningFailed)
    }
}

impl FromStr for PrivateKey {
    type Err = InvalidPrivateKey;

    /// Parses `0x` + 64 hex digits (surrounding whitespace, e.g. a trailing newline from a
    /// mounted secret file, is ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = crate::wire::scalar::parse_b256(s.trim()).map_err(|_| InvalidPrivateKey)?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("address", &self.address())
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Public Anvil/Hardhat dev key #1 (test-only).
    const DEV_KEY_1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

    #[test]
    fn opens_an_encrypted_keystore_and_says_why_not_without_secrets() {
        let dir = std::env::temp_dir().join(format!("obol-keystore-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = crate::wire::scalar::parse_b256(DEV_KEY_1).unwrap();
        let password = "correct horse battery staple";
        PrivateKeySigner::encrypt_keystore(
            &dir,
            &mut rand08::thread_rng(),
            secret,
            password,
            Some("payer.json"),
        )
        .unwrap();
        let path = dir.join("payer.json");
        let key = PrivateKey::from_keystore(&path, password.as_bytes()).unwrap();
        assert_eq!(
            key.address(),
            DEV_KEY_1.parse::<PrivateKey>().unwrap().address()
        );
        let wrong = PrivateKey::from_keystore(&path, b"correct horse battery").unwrap_err();
        assert_eq!(wrong, KeystoreError::WrongPassword);
        assert_eq!(
            PrivateKey::from_keystore(&dir.join("absent.json"), b"x").unwrap_err(),
            KeystoreError::Read
        );
        std::fs::write(dir.join("plain.json"), format!("\"{DEV_KEY_1}\"")).unwrap();
        let not = PrivateKey::from_keystore(&dir.join("plain.json"), b"x").unwrap_err();
        assert_eq!(not, KeystoreError::Format);
        for e in [wrong, not, KeystoreError::Read, KeystoreError::InvalidKey] {
            let text = format!("{e} {e:?}");
            assert!(
                !text.contains(&DEV_KEY_1[2..]) && !text.contains("horse"),
                "{text}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn parses_and_derives_the_address() {
        let key: PrivateKey = format!("{DEV_KEY_1}\n").parse().unwrap();
        let want: Address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
            .parse()
            .unwrap();
        assert_eq!(key.address(), want);
    }

    #[test]
    fn debug_redacts_the_key() {
        let key: PrivateKey = DEV_KEY_1.parse().unwrap();
        let debug = format!("{key:?} {key:#?}");
        assert!(!debug.contains(&DEV_KEY_1[2..]), "{debug}");
        assert!(!debug.contains("59c6995e"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn key_files_absent_bad_and_good() {
        let dir = std::env::temp_dir().join(format!("obol-x402-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            PrivateKey::from_optional_file(&dir.join("missing"))
                .unwrap()
                .is_none()
        );
        assert!(PrivateKey::from_file(&dir.join("missing")).is_err());
        let bad = dir.join("bad");
        std::fs::write(&bad, &DEV_KEY_1[..40]).unwrap();
        let err = PrivateKey::from_optional_file(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad") && !err.contains("59c6"), "{err}");
        let good = dir.join("good");
        std::fs::write(&good, format!("{DEV_KEY_1}\n")).unwrap();
        let key = PrivateKey::from_optional_file(&good).unwrap().unwrap();
        assert_eq!(key.signer().address(), key.address());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        let zero = format!("0x{}", "0".repeat(64));
        for bad in [
            &DEV_KEY_1[2..],
            &DEV_KEY_1[..64],
            zero.as_str(),
            "0xnot-a-key",
        ] {
            let err = bad.parse::<PrivateKey>().unwrap_err();
            assert!(!err.to_string().contains("59c6"), "{err}");
        }
    }
}
