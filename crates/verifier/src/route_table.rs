//! The route table: apply / delete / reset from the route sources, lookups from requests.
//!
//! Writers build a new immutable [`Snapshot`] and swap it in (`arc-swap`); readers load the
//! current one without taking a lock, so a change never blocks a request and a request never
//! sees half an update. Writers are serialised by a `parking_lot` mutex (never held across an
//! `.await`). Order is deterministic: by `namespace/name`, and the first matching route in that
//! order wins (the Go verifier used map order).
//!
//! Path lookups use an index: exact patterns and `P/*` prefixes in hash maps (one probe per `/`
//! of the path, bounded by the deepest prefix); globs bucketed by the literal start of their
//! first segment (one probe per distinct literal length), and within a bucket scanned only
//! while they could still beat the best match found. At 10 000 routes a lookup costs a handful
//! of hash probes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::matcher::Matcher;
use crate::route::{RouteEntry, RouteKey};

/// An immutable view of the table.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Routes in lookup order.
    ordered: Vec<Arc<RouteEntry>>,
    /// namespace → name → position in `ordered`.
    by_key: HashMap<String, HashMap<String, usize>>,
    /// Exact pattern → first position.
    exact: HashMap<String, usize>,
    /// Prefix `P` of `P/*` → first position.
    prefix: HashMap<String, usize>,
    /// Most `/` in any prefix: deeper probes cannot hit.
    max_prefix_slashes: usize,
    /// Glob routes by the literal start of their first segment (before any `*`): only those
    /// whose literal start begins the path's first segment can match. Positions ascending.
    globs: HashMap<String, Vec<usize>>,
    /// The distinct lengths of those literal starts, ascending.
    glob_literal_lens: Vec<usize>,
    /// The discovery documents built from this snapshot.
    discovery: crate::discovery::Cache,
}

/// The literal start of a glob pattern's first segment: `/inference-*/v1/*` → `inference-`.
fn glob_literal(pattern: &str) -> &str {
    let first = first_segment(pattern);
    first.find('*').map_or(first, |i| &first[..i])
}

fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.split('/').next().unwrap_or_default()
}

impl Snapshot {
    fn build(routes: &BTreeMap<RouteKey, Arc<RouteEntry>>) -> Self {
        let mut s = Self::default();
        for (i, entry) in routes.values().enumerate() {
            s.by_key
                .entry(entry.key.namespace.clone())
                .or_default()
                .insert(entry.key.name.clone(), i);
            match &entry.matcher {
                Matcher::Exact(p) => {
                    s.exact.entry(p.clone()).or_insert(i);
                }
                Matcher::Prefix(p) => {
                    s.max_prefix_slashes = s.max_prefix_slashes.max(p.matches('/').count());
                    s.prefix.entry(p.clone()).or_insert(i);
                }
                Matcher::Glob(_) => {
                    let literal = glob_literal(&entry.pattern);
                    if !s.glob_literal_lens.contains(&literal.len()) {
                        s.glob_literal_lens.push(literal.len());
                    }
                    s.globs.entry(literal.to_owned()).or_default().push(i);
                }
            }
            s.ordered.push(entry.clone());
        }
        s.glob_literal_lens.sort_unstable();
        s
    }

    /// The route `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&Arc<RouteEntry>> {
        let i = *self.by_key.get(namespace)?.get(name)?;
        self.ordered.get(i)
    }

    /// The first route (in table order) whose pattern matches `path` (no query string).
    pub fn find(&self, path: &str) -> Option<&Arc<RouteEntry>> {
        let mut best = self.exact.get(path).copied();
        let mut consider = |i: Option<&usize>| {
            if let Some(&i) = i
                && best.is_none_or(|b| i < b)
            {
                best = Some(i);
            }
        };
        if !self.prefix.is_empty() {
            // `P/*` matches when P == path or path starts with `P/`: probe every `/` boundary.
            consider(self.prefix.get(path));
            for (slashes, (i, _)) in path.match_indices('/').enumerate() {
                if slashes > self.max_prefix_slashes {
                    break;
                }
                consider(self.prefix.get(&path[..i]));
            }
        }
        let segment = first_segment(path);
        for &len in &self.glob_literal_lens {
            // None when too long, or not on a char boundary (then no literal can match).
            let Some(literal) = segment.get(..len) else {
                continue;
            };
            for &i in self.globs.get(literal).map_or(&[][..], Vec::as_slice) {
                if best.is_some_and(|b| b < i) {
                    break;
                }
                if self.ordered[i].matcher.matches(path) {
                    best = Some(i);
                    break;
                }
            }
        }
        best.and_then(|i| self.ordered.get(i))
    }

    /// The discovery documents' cache of this snapshot.
    pub fn discovery_cache(&self) -> &crate::discovery::Cache {
        &self.discovery
    }

    /// Every route, in table order.
    pub fn routes(&self) -> &[Arc<RouteEntry>] {
        &self.ordered
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.ordered.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }
}

/// One change of a [`RouteTable::update`] batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Add or replace a route (boxed: an entry is large next to a key).
    Apply(Box<RouteEntry>),
    /// Remove a route.
    Delete(RouteKey),
}

/// The shared route table.
#[derive(Debug, Default)]
pub struct RouteTable {
    current: ArcSwap<Snapshot>,
    writer: Mutex<BTreeMap<RouteKey, Arc<RouteEntry>>>,
    synced: AtomicBool,
}

impl RouteTable {
    /// An empty, not yet synced table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot (lock-free).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Looks up `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<RouteEntry>> {
        self.current.load().get(namespace, name).cloned()
    }

    /// The first route matching `path` (callers strip the query first).
    pub fn find(&self, path: &str) -> Option<Arc<RouteEntry>> {
        self.current.load().find(path).cloned()
    }

    /// Adds or replaces one route; returns whether anything changed.
    pub fn apply(&self, entry: RouteEntry) -> bool {
        self.update([Change::Apply(Box::new(entry))]) > 0
    }

    /// Removes one route; returns whether it was present.
    pub fn delete(&self, key: &RouteKey) -> bool {
        self.update([Change::Delete(key.clone())]) > 0
    }

    /// Applies `changes` in order and publishes one new snapshot (none when nothing changed);
    /// returns how many changes changed something. A rebuild costs O(table), so a burst of
    /// watch events is applied as one batch rather than one rebuild per event.
    pub fn update(&self, changes: impl IntoIterator<Item = Change>) -> usize {
        let mut routes = self.writer.lock();
        let mut changed = 0;
        for change in changes {
            match change {
                Change::Apply(entry) => {
                    if !routes.get(&entry.key).is_some_and(|old| **old == *entry) {
                        routes.insert(entry.key.clone(), Arc::from(entry));
                        changed += 1;
                    }
                }
                Change::Delete(key) => {
                    if routes.remove(&key).is_some() {
                        changed += 1;
                    }
                }
            }
        }
        if changed > 0 {
            self.current.store(Arc::new(Snapshot::build(&routes)));
        }
        changed
    }

    /// Replaces every route (a full list), and marks the table synced.
    pub fn reset(&self, entries: impl IntoIterator<Item = RouteEntry>) {
        let mut routes = self.writer.lock();
        *routes = entries
            .into_iter()
            .map(|e| (e.key.clone(), Arc::new(e)))
            .collect();
        self.current.store(Arc::new(Snapshot::build(&routes)));
        self.synced.store(true, Ordering::Release);
    }

    /// Whether a first full list has been loaded.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.current.load().len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "route_table_tests.rs"]
mod tests;
