//! The Go buyer's state file, `consumed.json`: `{"consumed": {"<upstream>": ["<key>", …]}}`.
//!
//! Found at start-up, it is imported into the journal (idempotently; the file is left in place
//! so a rollback to the Go buyer still sees what it knew). As in the Go buyer, a file that
//! exists but cannot be read or parsed is fatal: starting empty would re-spend its nonces.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::Deserialize;

use super::{JournalError, Record};

#[derive(Deserialize)]
struct StateFile {
    #[serde(default)]
    consumed: BTreeMap<String, Vec<String>>,
}

/// Parses the content of a `consumed.json`.
pub fn parse(content: &[u8]) -> Result<Vec<Record>, JournalError> {
    let state: StateFile = serde_json::from_slice(content)
        .map_err(|e| JournalError::Legacy(format!("parse consumed state: {e}")))?;
    Ok(state
        .consumed
        .into_iter()
        .flat_map(|(upstream, keys)| {
            keys.into_iter()
                .filter(|k| !k.is_empty())
                .map(move |k| Record::new(upstream.clone(), k))
        })
        .collect())
}

/// Reads and parses `path`; a missing file imports nothing.
pub fn load(path: &Path) -> Result<Vec<Record>, JournalError> {
    match std::fs::read(path) {
        Ok(content) => parse(&content),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(JournalError::Legacy(format!(
            "read {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_state_files_parse() {
        let json = br#"{
  "consumed": {
    "seller-qwen": ["0xaa", "0xbb"],
    "other": [""]
  }
}"#;
        let records = parse(json).unwrap();
        assert_eq!(
            records,
            vec![
                Record::new("seller-qwen", "0xaa"),
                Record::new("seller-qwen", "0xbb")
            ]
        );
        assert!(parse(b"{}").unwrap().is_empty());
        let err = parse(b"{\"consumed\": [").unwrap_err();
        assert_eq!(err.metric_label(), "legacy_state_invalid");
        assert!(err.to_string().starts_with("load state"), "{err}");
    }
}
