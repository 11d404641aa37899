//! `--route-source file`: routes from a YAML file, re-read when its mtime changes (polling,
//! which survives the symlink swaps of a mounted ConfigMap). A file that cannot be read or
//! parsed, or holds a route that cannot be loaded, is refused whole and the old table stays.
//!
//! ```yaml
//! routes:
//!   - name: demo
//!     namespace: default        # optional, default "default"
//!     pattern: /services/demo/*
//!     price: "1000"             # atomic units, as a string
//!     payTo: "0x…"
//!     network: base-sepolia     # or eip155:84532
//!     maxTimeoutSeconds: 120    # optional; also asset, description, upstreamAuth, facilitatorURL
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use obol_api::PaymentRouteSpec;
use serde::Deserialize;
use tracing::{info, warn};

use crate::error::LoadError;
use crate::metrics::VerifierMetrics;
use crate::route::{RouteEntry, RouteKey};
use crate::route_table::RouteTable;

/// Why a routes file was refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read the routes file")]
    Read(#[source] std::io::Error),
    /// Not YAML of the expected shape.
    #[error("routes file is not valid: {0}")]
    Parse(#[source] serde_yaml::Error),
    /// One route cannot be loaded.
    #[error("route {key}: {source}")]
    Route {
        /// The route.
        key: RouteKey,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// Two routes with the same namespace/name.
    #[error("route {0} appears twice")]
    Duplicate(RouteKey),
}

impl FileError {
    /// A bounded label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Read(_) => "read",
            Self::Parse(_) => "parse",
            Self::Route { .. } => "route",
            Self::Duplicate(_) => "duplicate",
        }
    }
}

#[derive(Deserialize)]
struct RoutesFile {
    #[serde(default)]
    routes: Vec<FileRoute>,
}

#[derive(Deserialize)]
struct FileRoute {
    name: String,
    #[serde(default = "default_namespace")]
    namespace: String,
    #[serde(flatten)]
    spec: PaymentRouteSpec,
}

fn default_namespace() -> String {
    "default".to_owned()
}

/// Parses and loads every route of a routes file.
pub fn parse_routes(text: &str) -> Result<Vec<RouteEntry>, FileError> {
    let file: RoutesFile = serde_yaml::from_str(text).map_err(FileError::Parse)?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(file.routes.len());
    for r in file.routes {
        let key = RouteKey::new(r.namespace, r.name);
        if !seen.insert(key.clone()) {
            return Err(FileError::Duplicate(key));
        }
        let entry = RouteEntry::load(key.clone(), None, &r.spec, None)
            .map_err(|source| FileError::Route { key, source })?;
        out.push(entry);
    }
    Ok(out)
}

/// Loads `path` into `table` (reset: routes gone from the file are removed, and their metric
/// series with them).
pub fn load_file(
    path: &Path,
    table: &RouteTable,
    metrics: &VerifierMetrics,
) -> Result<usize, FileError> {
    let text = std::fs::read_to_string(path).map_err(FileError::Read)?;
    let routes = parse_routes(&text)?;
    let n = routes.len();
    let before = table.snapshot();
    table.reset(routes);
    metrics.prune(&before, &table.snapshot());
    Ok(n)
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Loads the file, then re-loads it whenever its mtime changes; runs until dropped.
pub async fn watch_file(
    path: PathBuf,
    table: Arc<RouteTable>,
    metrics: VerifierMetrics,
    every: Duration,
) {
    let mut seen: Option<SystemTime> = None;
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(50)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = mtime(&path);
        if now.is_some() && now == seen {
            continue;
        }
        let (p, t, m) = (path.clone(), table.clone(), metrics.clone());
        let result = tokio::task::spawn_blocking(move || load_file(&p, &t, &m)).await;
        match result {
            Ok(Ok(n)) => {
                seen = now;
                info!(routes = n, path = %path.display(), "Loaded routes file");
            }
            Ok(Err(error)) => {
                // Remember the mtime so a broken file is reported once, not every tick.
                seen = now;
                warn!(%error, kind = error.metric_label(), path = %path.display(), "Keeping the previous routes");
            }
            Err(error) => warn!(%error, "Routes file task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
routes:
  - name: demo
    pattern: /services/demo/*
    price: "1000"
    payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
    network: base-sepolia
    maxTimeoutSeconds: 120
    upstreamAuth: Bearer sk-test
  - name: other
    namespace: llm
    pattern: /other
    price: "5"
    payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
    network: eip155:8453
"#;

    #[test]
    fn parses_routes_with_default_namespace() {
        let routes = parse_routes(GOOD).unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].key, RouteKey::new("default", "demo"));
        assert_eq!(
            routes[0].requirement.as_ref().unwrap().max_timeout_seconds,
            120
        );
        assert!(routes[0].upstream_auth.is_some());
        assert_eq!(routes[1].key, RouteKey::new("llm", "other"));
        assert_eq!(parse_routes("routes: []").unwrap().len(), 0);
        assert_eq!(parse_routes("{}").unwrap().len(), 0);
    }

    #[test]
    fn refuses_bad_files_whole() {
        let cases = [
            ("routes: [", "parse"),
            ("routes:\n  - name: a\n", "parse"),
            (&*GOOD.replace("base-sepolia", "invalid-chain"), "route"),
            (&*GOOD.replace("\"1000\"", "1000"), "parse"),
            (
                &*GOOD.replace(
                    "name: other\n    namespace: llm",
                    "name: demo\n    namespace: default",
                ),
                "duplicate",
            ),
        ];
        for (text, want) in cases {
            let got = parse_routes(text).err().map(|e| e.metric_label());
            assert_eq!(got, Some(want), "{text}");
        }
    }

    #[tokio::test]
    async fn reloads_on_change_and_keeps_old_table_on_error() {
        let dir = std::env::temp_dir().join(format!("obol-verifier-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("routes.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let table = Arc::new(RouteTable::new());
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = VerifierMetrics::register(&mut registry);
        let task = tokio::spawn(watch_file(
            path.clone(),
            table.clone(),
            metrics,
            Duration::from_millis(50),
        ));
        wait_for(|| table.is_synced() && table.len() == 2).await;
        // A broken file keeps the old routes.
        std::fs::write(&path, "routes: [").unwrap();
        bump_mtime(&path);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(table.len(), 2);
        // A fixed file is picked up.
        std::fs::write(&path, "routes: []").unwrap();
        bump_mtime(&path);
        wait_for(|| table.is_empty()).await;
        task.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn bump_mtime(path: &Path) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        let later = SystemTime::now() + Duration::from_secs(rand_secs());
        f.set_modified(later).unwrap();
    }

    fn rand_secs() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(10);
        N.fetch_add(10, Ordering::Relaxed)
    }

    async fn wait_for(cond: impl Fn() -> bool) {
        for _ in 0..200 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("condition not reached within 5 s");
    }
}
