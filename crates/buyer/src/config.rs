//! The Go buyer's configuration and authorization files (obol-reference §6).
//!
//! Dir mode: `<name>.json` per upstream in the config dir (one [`UpstreamConfig`]) and in the
//! auths dir (a JSON array of [`PreSignedAuth`]); the key is the file stem. Non-`.json`,
//! hidden (ConfigMap `..data`), unreadable or unparsable files are skipped, as in the Go buyer
//! (but logged). Legacy mode: `config.json` = `{"upstreams": {...}}`, `auths.json` =
//! `{"<name>": [...]}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// One purchased upstream, as the controller writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamConfig {
    /// Seller base URL, e.g. `https://seller/services/qwen`.
    pub url: String,
    /// The model the seller serves; routes `paid/<remoteModel>`.
    #[serde(default)]
    pub remote_model: Option<String>,
    /// Network as configured (`base-sepolia` or CAIP-2).
    pub network: String,
    /// The seller's address.
    pub pay_to: String,
    /// The token contract.
    pub asset: String,
    /// Display only.
    #[serde(default)]
    pub asset_symbol: Option<String>,
    /// Display only.
    #[serde(default)]
    pub asset_decimals: Option<u32>,
    /// `eip3009` or `permit2`.
    #[serde(default)]
    pub asset_transfer_method: Option<String>,
    /// EIP-712 domain name of the token.
    #[serde(default)]
    pub eip712_name: Option<String>,
    /// EIP-712 domain version of the token.
    #[serde(default)]
    pub eip712_version: Option<String>,
    /// Price per request in atomic units (`"1000"` = 0.001 USDC); with scheme `upto`, the
    /// most one request may be charged (every authorization's Permit2 amount).
    pub price: String,
    /// The x402 scheme the authorizations are signed for: `exact` (the default: EIP-3009 for
    /// the price) or `upto` (Permit2 witness authorizations for the maximum; the seller
    /// charges what the answer cost).
    #[serde(default)]
    pub scheme: Option<String>,
    /// The wallet every authorization must come from (a PurchaseRequest's payer); unset in the
    /// Go buyer's files.
    #[serde(default)]
    pub payer: Option<String>,
}

/// A pre-signed authorization: a full x402 payment (preferred) or the legacy flat fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PreSignedAuth {
    /// Consume key when present.
    #[serde(default)]
    pub id: Option<String>,
    /// A full x402 payment payload (`{x402Version, accepted?, payload: {signature, authorization}}`).
    #[serde(default)]
    pub payment: Option<Value>,
    /// Legacy: the signature.
    #[serde(default)]
    pub signature: Option<String>,
    /// Legacy: the payer.
    #[serde(default)]
    pub from: Option<String>,
    /// Legacy: the recipient.
    #[serde(default)]
    pub to: Option<String>,
    /// Legacy: the amount.
    #[serde(default)]
    pub value: Option<String>,
    /// Legacy: unix seconds.
    #[serde(default)]
    pub valid_after: Option<String>,
    /// Legacy: unix seconds.
    #[serde(default)]
    pub valid_before: Option<String>,
    /// Legacy: the EIP-3009 nonce.
    #[serde(default)]
    pub nonce: Option<String>,
}

/// Everything read from the files in one pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loaded {
    /// Upstreams by name.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Authorizations by upstream name.
    pub auths: BTreeMap<String, Vec<PreSignedAuth>>,
}

/// Where the files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// One file per upstream in each directory.
    Dirs {
        /// Upstream configs.
        config_dir: PathBuf,
        /// Authorization arrays.
        auths_dir: PathBuf,
    },
    /// The two legacy single files.
    Files {
        /// `config.json`.
        config: PathBuf,
        /// `auths.json`.
        auths: PathBuf,
    },
}

#[derive(Deserialize)]
struct LegacyConfig {
    #[serde(default)]
    upstreams: BTreeMap<String, UpstreamConfig>,
}

impl Source {
    /// Reads every file (blocking I/O). Missing files or directories mean "nothing yet".
    pub fn load(&self) -> Loaded {
        match self {
            Self::Dirs {
                config_dir,
                auths_dir,
            } => Loaded {
                upstreams: read_dir_json(config_dir),
                auths: read_dir_json(auths_dir),
            },
            Self::Files { config, auths } => Loaded {
                upstreams: read_json::<LegacyConfig>(config)
                    .map(|c| c.upstreams)
                    .unwrap_or_default(),
                auths: read_json(auths).unwrap_or_default(),
            },
        }
    }
}

/// Names, sizes and modification times of the files [`Source::load`] would read: when it is
/// unchanged, the periodic reload skips parsing (pools can be tens of megabytes of JSON).
pub type Fingerprint = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;

impl Source {
    /// The current [`Fingerprint`] (blocking I/O).
    pub fn fingerprint(&self) -> Fingerprint {
        let paths: Vec<PathBuf> = match self {
            Self::Dirs {
                config_dir,
                auths_dir,
            } => [config_dir, auths_dir]
                .iter()
                .filter_map(|d| std::fs::read_dir(d).ok())
                .flat_map(|entries| entries.flatten().map(|e| e.path()))
                .collect(),
            Self::Files { config, auths } => vec![config.clone(), auths.clone()],
        };
        let mut out: Fingerprint = paths
            .into_iter()
            .map(|p| {
                // `metadata` follows the ConfigMap `..data` symlinks to the real files.
                let meta = std::fs::metadata(&p).ok();
                let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
                let modified = meta.and_then(|m| m.modified().ok());
                (p, len, modified)
            })
            .collect();
        out.sort();
        out
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "Skipping unreadable file");
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Some(v),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "Skipping unparsable file");
            None
        }
    }
}

fn read_dir_json<T: serde::de::DeserializeOwned>(dir: &Path) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        if stem.is_empty() || name.starts_with('.') || !path.is_file() {
            continue;
        }
        if let Some(v) = read_json(&path) {
            out.insert(stem.to_owned(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_mode_skips_what_the_go_buyer_skips() {
        let dir = crate::journal::tests::temp_dir("config");
        let (c, a) = (dir.join("c"), dir.join("a"));
        std::fs::create_dir_all(&c).unwrap();
        std::fs::create_dir_all(c.join("..data")).unwrap();
        std::fs::create_dir_all(&a).unwrap();
        let up = r#"{"url":"http://s/services/q","remoteModel":"qwen3:32b","network":"base-sepolia","payTo":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","price":"1000"}"#;
        std::fs::write(c.join("seller.json"), up).unwrap();
        std::fs::write(c.join("broken.json"), "{").unwrap();
        std::fs::write(c.join("notes.txt"), up).unwrap();
        std::fs::write(a.join("seller.json"), r#"[{"id":"a1"},{"nonce":"0x01"}]"#).unwrap();
        let loaded = Source::Dirs {
            config_dir: c,
            auths_dir: a,
        }
        .load();
        assert_eq!(loaded.upstreams.keys().collect::<Vec<_>>(), ["seller"]);
        assert_eq!(loaded.upstreams["seller"].price, "1000");
        assert_eq!(loaded.auths["seller"].len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn legacy_files_load_and_missing_ones_are_empty() {
        let dir = crate::journal::tests::temp_dir("legacy-config");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.json");
        std::fs::write(
            &config,
            r#"{"upstreams":{"x":{"url":"http://s","network":"base","payTo":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","asset":"0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913","price":"5"}}}"#,
        )
        .unwrap();
        let loaded = Source::Files {
            config,
            auths: dir.join("auths.json"),
        }
        .load();
        assert_eq!(loaded.upstreams["x"].network, "base");
        assert!(loaded.auths.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
