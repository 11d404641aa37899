//! The buyer's pool from the cluster: PurchaseRequests and the ConfigMaps they own, watched
//! through the API (no mounted volume, so a new purchase is spendable as soon as its objects
//! exist), and the status the buyer writes back on each request.
//!
//! [`assemble`] is the pure part: requests + ConfigMaps → the upstreams and authorizations
//! the pool loads, and per request what is missing or wrong. [`status`] is the status a
//! request gets from the pool's counts and the last seller observation. [`run`] is the I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use obol_api::condition::{Condition, ConditionStatus, set_condition};
use obol_api::purchase_request::{
    POOL_KEY, POOL_LABEL, PurchaseRequest, PurchaseRequestStatus, SellerObservation, reasons, types,
};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::buyer::{Buyer, Observer};
use crate::config::{Loaded, PreSignedAuth, UpstreamConfig};
use crate::pool::Counts;

/// Which request an upstream came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.generation` loaded.
    pub generation: Option<i64>,
    /// Authorizations bought (`spec.count`).
    pub bought: u64,
}

/// Why a request's pool is not (completely) loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolProblem {
    /// A [`reasons`] constant.
    pub reason: &'static str,
    /// Details.
    pub message: String,
}

/// What [`assemble`] gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assembled {
    /// What the pool loads.
    pub loaded: Loaded,
    /// Upstream name → the request it came from.
    pub refs: BTreeMap<String, PurchaseRef>,
    /// `namespace/name` → why the request is not completely loaded (absent when it is).
    pub problems: BTreeMap<String, PoolProblem>,
    /// Requests that serve nothing (invalid, or conflicting): `namespace/name` → its ref.
    pub unserved: BTreeMap<String, PurchaseRef>,
}

/// `namespace/name`.
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn purchase_ref(p: &PurchaseRequest) -> PurchaseRef {
    PurchaseRef {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        generation: p.metadata.generation,
        bought: p.spec.count,
    }
}

fn owned_by(cm: &ConfigMap, uid: Option<&str>) -> bool {
    uid.is_some_and(|uid| {
        cm.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.uid == uid)
    })
}

/// Reads one pool ConfigMap's authorizations (the caller caches by resource version).
pub type ParseConfigMap<'a> = dyn FnMut(&ConfigMap) -> Result<Arc<Vec<PreSignedAuth>>, String> + 'a;

/// Builds the pool's input from the requests and ConfigMaps seen. `parse` reads one
/// ConfigMap's authorizations (cached by the caller). A request being deleted serves nothing.
/// Two requests claiming one upstream name: the older wins, the other is unserved.
pub fn assemble(
    purchases: &[Arc<PurchaseRequest>],
    config_maps: &HashMap<String, Arc<ConfigMap>>,
    parse: &mut ParseConfigMap<'_>,
) -> Assembled {
    let mut out = Assembled::default();
    let mut ordered: Vec<&Arc<PurchaseRequest>> = purchases
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    ordered.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.clone().map(|t| t.0),
            p.namespace(),
            p.name_any(),
        )
    });
    for p in ordered {
        let ns = p.namespace().unwrap_or_default();
        let name = p.name_any();
        let k = key(&ns, &name);
        let upstream = p.spec.upstream_name(&name).to_owned();
        if let Some(other) = out.refs.get(&upstream) {
            out.problems.insert(
                k.clone(),
                PoolProblem {
                    reason: reasons::UPSTREAM_CONFLICT,
                    message: format!(
                        "upstream name {upstream} is already served for {}",
                        key(&other.namespace, &other.name)
                    ),
                },
            );
            out.unserved.insert(k, purchase_ref(p));
            continue;
        }
        let spec = &p.spec;
        out.loaded.upstreams.insert(
            upstream.clone(),
            UpstreamConfig {
                url: spec.seller_url.clone(),
                remote_model: spec.remote_model.clone(),
                network: spec.network.clone(),
                pay_to: spec.pay_to.clone(),
                asset: spec.asset.clone(),
                asset_symbol: None,
                asset_decimals: None,
                asset_transfer_method: None,
                eip712_name: spec.eip712_name.clone(),
                eip712_version: spec.eip712_version.clone(),
                price: spec.price.clone(),
                scheme: spec.scheme.clone(),
                payer: Some(spec.payer.clone()),
            },
        );
        let mut auths = Vec::new();
        let mut missing = Vec::new();
        let mut wrong = Vec::new();
        for shard in &spec.pool {
            let cm = config_maps
                .get(&key(&ns, &shard.config_map))
                .filter(|cm| owned_by(cm, p.metadata.uid.as_deref()));
            match cm.map(|cm| parse(cm)) {
                None => missing.push(shard.config_map.clone()),
                Some(Err(e)) => wrong.push(format!("{}: {e}", shard.config_map)),
                Some(Ok(list)) => {
                    if list.len() as u64 != shard.count {
                        wrong.push(format!(
                            "{}: {} authorizations, the spec says {}",
                            shard.config_map,
                            list.len(),
                            shard.count
                        ));
                    }
                    auths.extend(list.iter().cloned());
                }
            }
        }
        out.loaded.auths.insert(upstream.clone(), auths);
        if !missing.is_empty() {
            out.problems.insert(
                k.clone(),
                PoolProblem {
                    reason: reasons::WAITING_FOR_CONFIG_MAPS,
                    message: format!("waiting for ConfigMaps {}", missing.join(", ")),
                },
            );
        } else if !wrong.is_empty() {
            out.problems.insert(
                k.clone(),
                PoolProblem {
                    reason: reasons::INVALID_SPEC,
                    message: wrong.join("; "),
                },
            );
        }
        out.refs.insert(upstream, purchase_ref(p));
    }
    out
}

/// Reads the authorizations of one pool ConfigMap.
pub fn parse_config_map(cm: &ConfigMap) -> Result<Vec<PreSignedAuth>, String> {
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(POOL_KEY))
        .ok_or_else(|| format!("no {POOL_KEY} key"))?;
    serde_json::from_str(text)
        .map_err(|e| format!("{POOL_KEY} is not a JSON array of authorizations: {e}"))
}

/// Everything the status of one request is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusInput<'a> {
    /// The request.
    pub purchase: &'a PurchaseRef,
    /// The pool's counts (absent when the upstream is not served).
    pub counts: Option<Counts>,
    /// Why the pool is not (completely) loaded.
    pub problem: Option<&'a PoolProblem>,
    /// The last seller observation.
    pub seller: Option<&'a SellerObservation>,
    /// The status as written before (for transition times).
    pub previous: &'a PurchaseRequestStatus,
    /// Now, RFC 3339.
    pub now: &'a str,
}

/// Seller outcomes that show the seller reachable with our terms.
const REACHABLE: &[&str] = &[
    "payment_required",
    "paid",
    "settled_error",
    "error",
    "refused",
];

/// The status a request gets.
pub fn status(input: &StatusInput<'_>) -> PurchaseRequestStatus {
    let mut s = input.previous.clone();
    s.observed_generation = input.purchase.generation;
    let c = input.counts.unwrap_or_default();
    s.loaded = Some((c.remaining + c.held + c.spent + c.expired) as u64);
    s.remaining = Some(c.remaining as u64);
    s.held = Some(c.held as u64);
    s.spent = Some(c.spent as u64);
    s.healed = Some(c.healed as u64);
    s.expired = Some(c.expired as u64);
    s.skipped = Some(c.skipped as u64);
    s.receipts = (c.receipts > 0).then_some(c.receipts as u64);
    s.charged = (c.receipts > 0).then(|| c.charged.to_string());
    s.last_seller = input.seller.cloned().or(s.last_seller);
    let generation = input.purchase.generation;
    let cond = |t: &str, ok: bool, reason: &str, message: String| Condition {
        observed_generation: generation,
        ..Condition::new(t, ConditionStatus::from_bool(ok), reason, message)
    };
    let pool = match (input.problem, input.counts) {
        (Some(p), _) => cond(types::POOL_LOADED, false, p.reason, p.message.clone()),
        (None, None) => cond(
            types::POOL_LOADED,
            false,
            reasons::INVALID_SPEC,
            "the buyer cannot use this request's terms (see its log)".into(),
        ),
        (None, Some(c)) => cond(
            types::POOL_LOADED,
            true,
            reasons::LOADED,
            format!(
                "{} of {} authorizations loaded ({} skipped)",
                c.remaining + c.held + c.spent + c.expired,
                input.purchase.bought,
                c.skipped
            ),
        ),
    };
    let seller = match input.seller {
        None => Condition {
            status: ConditionStatus::Unknown,
            ..cond(
                types::SELLER_REACHABLE,
                false,
                reasons::NOT_CHECKED,
                "not checked yet".into(),
            )
        },
        Some(o) if REACHABLE.contains(&o.outcome.as_str()) => cond(
            types::SELLER_REACHABLE,
            true,
            reasons::TERMS_MATCH,
            format!("{} at {}", o.outcome, o.time),
        ),
        Some(o) if o.outcome == "terms_changed" => cond(
            types::SELLER_REACHABLE,
            false,
            reasons::TERMS_CHANGED,
            o.message.clone(),
        ),
        Some(o) => cond(
            types::SELLER_REACHABLE,
            false,
            reasons::UNREACHABLE,
            format!("{}: {}", o.outcome, o.message),
        ),
    };
    let ready = if !pool.is_true() && input.counts.is_none() {
        cond(
            types::READY,
            false,
            reasons::WAITING,
            "waiting for PoolLoaded".into(),
        )
    } else if c.remaining == 0 {
        cond(
            types::READY,
            false,
            reasons::EXHAUSTED,
            "nothing left to spend: obol buy refill".into(),
        )
    } else if seller.status == ConditionStatus::False {
        cond(
            types::READY,
            false,
            reasons::WAITING,
            "waiting for SellerReachable".into(),
        )
    } else {
        cond(
            types::READY,
            true,
            reasons::SPENDABLE,
            format!("{} authorizations to spend", c.remaining),
        )
    };
    for c in [pool, seller, ready] {
        set_condition(&mut s.conditions, c, input.now);
    }
    s
}

/// Now, RFC 3339 to the second.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}

/// What the watcher, the status writer and the replica task share.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) assembled: Assembled,
    pub(crate) seller: HashMap<String, SellerObservation>,
    written: HashMap<String, PurchaseRequestStatus>,
    dirty: std::collections::BTreeSet<String>,
}

/// The [`Observer`] that marks requests for a status write.
struct StatusObserver {
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
}

impl Observer for StatusObserver {
    fn pool_changed(&self, upstream: &str) {
        self.shared.lock().dirty.insert(upstream.to_owned());
        self.wake.notify_one();
    }

    fn seller_answered(&self, upstream: &str, status: Option<u16>, outcome: &str, message: &str) {
        let observation = SellerObservation {
            time: now_rfc3339(),
            http_status: status,
            outcome: outcome.to_owned(),
            message: message.chars().take(512).collect(),
        };
        let mut shared = self.shared.lock();
        shared.seller.insert(upstream.to_owned(), observation);
        shared.dirty.insert(upstream.to_owned());
        drop(shared);
        self.wake.notify_one();
    }
}

/// How the watcher runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Namespace to watch; all when `None`.
    pub namespace: Option<String>,
    /// How often each seller's 402 is re-checked.
    pub seller_check: Duration,
    /// One replica of several: partition the pools ([`crate::replica`]), which then also
    /// writes the statuses.
    pub replica: Option<crate::replica::ReplicaOptions>,
}

fn spawn_reflector<K>(api: Api<K>, config: watcher::Config, wake: Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(error) = event {
                warn!(%error, "Watch failed; retrying");
            }
            wake.notify_one();
        }
    });
    reader
}

/// Watches PurchaseRequests and their ConfigMaps, feeds the pool, writes statuses and
/// re-checks sellers, until the process ends. Calls `on_ready` once the first complete load
/// is in the pool.
pub async fn run(
    buyer: Arc<Buyer>,
    client: Client,
    options: WatchOptions,
    on_ready: impl FnOnce(),
) {
    let wake = Arc::new(Notify::new());
    let (purchases_api, cms_api): (Api<PurchaseRequest>, Api<ConfigMap>) = match &options.namespace
    {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let purchases = spawn_reflector(purchases_api, watcher::Config::default(), wake.clone());
    let cms = spawn_reflector(
        cms_api,
        watcher::Config::default().labels(POOL_LABEL),
        wake.clone(),
    );
    let shared = Arc::new(Mutex::new(Shared::default()));
    let status_wake = Arc::new(Notify::new());
    buyer.observe(Arc::new(StatusObserver {
        shared: shared.clone(),
        wake: status_wake.clone(),
    }));
    // A replica writes the statuses of the requests it serves with its partition entry
    // (conditionally, see `replica`); this writer then keeps only the unserved ones.
    let served_elsewhere = options.replica.is_some();
    if let Some(replica) = options.replica.clone() {
        tokio::spawn(crate::replica::run(
            buyer.clone(),
            client.clone(),
            shared.clone(),
            replica,
        ));
    }
    tokio::spawn(write_statuses(
        buyer.clone(),
        client.clone(),
        shared.clone(),
        status_wake.clone(),
        served_elsewhere,
    ));
    tokio::spawn(check_sellers(
        buyer.clone(),
        shared.clone(),
        options.seller_check,
    ));
    for (what, ready) in [
        ("PurchaseRequests", purchases.wait_until_ready().await),
        ("ConfigMaps", cms.wait_until_ready().await),
    ] {
        if let Err(error) = ready {
            warn!(%error, what, "Watch ended before its first list");
        }
    }
    let mut cache: HashMap<String, (String, Arc<Vec<PreSignedAuth>>)> = HashMap::new();
    let mut on_ready = Some(on_ready);
    loop {
        let by_key: HashMap<String, Arc<ConfigMap>> = cms
            .state()
            .into_iter()
            .map(|cm| (key(&cm.namespace().unwrap_or_default(), &cm.name_any()), cm))
            .collect();
        let mut parse = |cm: &ConfigMap| {
            let k = key(&cm.namespace().unwrap_or_default(), &cm.name_any());
            let version = cm.resource_version().unwrap_or_default();
            if let Some((v, list)) = cache.get(&k)
                && *v == version
            {
                return Ok(list.clone());
            }
            let list = Arc::new(parse_config_map(cm)?);
            cache.insert(k, (version, list.clone()));
            Ok(list)
        };
        let assembled = assemble(&purchases.state(), &by_key, &mut parse);
        cache.retain(|k, _| by_key.contains_key(k));
        let changed = shared.lock().assembled != assembled;
        if changed {
            let notes = buyer.load(assembled.loaded.clone());
            for note in notes {
                warn!(%note, "Pool item skipped");
            }
            let mut s = shared.lock();
            s.dirty.extend(assembled.refs.keys().cloned());
            s.dirty
                .extend(assembled.unserved.keys().map(|k| format!("!{k}")));
            s.assembled = assembled;
            drop(s);
            status_wake.notify_one();
        }
        if let Some(f) = on_ready.take() {
            info!(
                upstreams = shared.lock().assembled.refs.len(),
                "PurchaseRequests loaded"
            );
            f();
        }
        wake.notified().await;
    }
}

/// Writes the status of every request marked dirty, at most every 100 ms, only when it
/// changed; with `unserved_only`, only of the requests that serve nothing.
async fn write_statuses(
    buyer: Arc<Buyer>,
    client: Client,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
    unserved_only: bool,
) {
    loop {
        wake.notified().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let dirty: Vec<String> = std::mem::take(&mut shared.lock().dirty)
            .into_iter()
            .collect();
        for upstream in dirty {
            if unserved_only && !upstream.starts_with('!') {
                continue;
            }
            let (purchase, problem, seller, previous) = {
                let s = shared.lock();
                let (purchase, problem) = match upstream.strip_prefix('!') {
                    Some(k) => match s.assembled.unserved.get(k) {
                        Some(r) => (r.clone(), s.assembled.problems.get(k).cloned()),
                        None => continue,
                    },
                    None => match s.assembled.refs.get(&upstream) {
                        Some(r) => (
                            r.clone(),
                            s.assembled
                                .problems
                                .get(&key(&r.namespace, &r.name))
                                .cloned(),
                        ),
                        None => continue,
                    },
                };
                let k = key(&purchase.namespace, &purchase.name);
                (
                    purchase,
                    problem,
                    s.seller.get(&upstream).cloned(),
                    s.written.get(&k).cloned(),
                )
            };
            let api: Api<PurchaseRequest> = Api::namespaced(client.clone(), &purchase.namespace);
            let previous = match previous {
                Some(p) => p,
                None => match api.get_status(&purchase.name).await {
                    Ok(p) => p.status.unwrap_or_default(),
                    Err(error) => {
                        warn!(%error, purchase = %purchase.name, "Cannot read status");
                        continue;
                    }
                },
            };
            let counts = if upstream.starts_with('!') {
                None
            } else {
                buyer.counts(&upstream)
            };
            let now = now_rfc3339();
            let next = status(&StatusInput {
                purchase: &purchase,
                counts,
                problem: problem.as_ref(),
                seller: seller.as_ref(),
                previous: &previous,
                now: &now,
            });
            if next == previous {
                continue;
            }
            let patch = serde_json::json!({ "status": next });
            let params = PatchParams::default();
            match api
                .patch_status(&purchase.name, &params, &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    let k = key(&purchase.namespace, &purchase.name);
                    shared.lock().written.insert(k, next);
                }
                Err(error) => {
                    warn!(%error, purchase = %purchase.name, "Status write failed; retrying");
                    shared.lock().dirty.insert(upstream);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    wake.notify_one();
                }
            }
        }
    }
}

/// Probes every served upstream's seller: at once for new ones, then every `every`.
async fn check_sellers(buyer: Arc<Buyer>, shared: Arc<Mutex<Shared>>, every: Duration) {
    let mut checked: HashMap<String, tokio::time::Instant> = HashMap::new();
    loop {
        let upstreams: Vec<String> = shared.lock().assembled.refs.keys().cloned().collect();
        for name in upstreams {
            let due = checked.get(&name).is_none_or(|t| t.elapsed() >= every);
            if !due {
                continue;
            }
            checked.insert(name.clone(), tokio::time::Instant::now());
            let Some(upstream) = buyer.pool.lock().upstream(&name) else {
                continue;
            };
            crate::forward::probe(&buyer, &upstream).await;
        }
        checked.retain(|n, _| shared.lock().assembled.refs.contains_key(n));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
#[path = "purchases_tests.rs"]
mod tests;
