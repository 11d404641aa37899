//! One buyer replica among several (a StatefulSet): the I/O around [`crate::partition`].
//!
//! Every tick, for every served PurchaseRequest: read the request (its status and
//! resourceVersion) and the StatefulSet's replica count, [`decide`] per slot, and patch the
//! status back with the resourceVersion read as a precondition (a conflict means another
//! replica wrote first: nothing changes here, the next tick decides again). Only after a
//! successful write do the slots' holdings move on; claimed slots are then checked on chain
//! (batched nonce checks, [`crate::chain`]) and opened for spending. A replica that could not write for
//! half the lease closes every slot ([`may_spend`]).
//!
//! The status written: this replica's entry in `status.buyers[]` (its listed slots, their
//! counts, `updated`), the entries of live peers as read, entries of peers silent for a whole
//! lease removed (their slots are then claimable), and the request's counts as the sum of the
//! entries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt as _};
use obol_api::purchase_request::{BuyerReplicaStatus, PurchaseRequest, PurchaseRequestStatus};
use parking_lot::Mutex;
use tracing::{debug, info, warn};

use crate::buyer::Buyer;
use crate::partition::{
    self, Holding, Input, Liveness, Own, Peer, SLOTS, Slot, Verdict, decide, may_spend,
};
use crate::pool::Counts;
use crate::purchases::{Shared, StatusInput, key, status};

/// How this replica takes part.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// Its pod name (`x402-buyer-2`): its entry's name; the ordinal is its suffix.
    pub name: String,
    /// Its ordinal.
    pub ordinal: u32,
    /// The StatefulSet whose `spec.replicas` is the replica count (same namespace).
    pub statefulset: String,
    /// Namespace of the StatefulSet and the PurchaseRequests.
    pub namespace: String,
    /// A peer whose entry did not change for this long is taken for dead.
    pub lease: Duration,
    /// After this long draining a slot, what it still holds no longer blocks the release (no
    /// answer is coming: the request timed out).
    pub drain_limit: Duration,
}

/// The counts over `slots` of a per-slot list.
pub fn sum_slots(per_slot: &[Counts], slots: &BTreeSet<Slot>) -> Counts {
    let mut c = Counts::default();
    for s in slots {
        if let Some(x) = per_slot.get(usize::from(*s)) {
            c.remaining += x.remaining;
            c.held += x.held;
            c.spent += x.spent;
            c.healed += x.healed;
            c.expired += x.expired;
            c.receipts += x.receipts;
            c.charged = c.charged.saturating_add(x.charged);
        }
    }
    c
}

/// `status.buyers[]` after this replica's write: its own `entry`, the peers as read except
/// those in `dead` (silent for a whole lease), sorted by name.
pub fn next_entries(
    current: &[BuyerReplicaStatus],
    entry: BuyerReplicaStatus,
    dead: &BTreeSet<String>,
) -> Vec<BuyerReplicaStatus> {
    let mut out: Vec<BuyerReplicaStatus> = current
        .iter()
        .filter(|b| b.name != entry.name && !dead.contains(&b.name))
        .cloned()
        .collect();
    out.push(entry);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The request's counts: the sum of the entries (each slot is listed by one live entry).
pub fn total(entries: &[BuyerReplicaStatus], skipped: usize) -> Counts {
    let mut c = Counts {
        skipped,
        ..Counts::default()
    };
    for b in entries {
        c.remaining += b.remaining as usize;
        c.held += b.held as usize;
        c.spent += b.spent as usize;
        c.healed += b.healed as usize;
        c.expired += b.expired as usize;
        c.receipts += b.receipts as usize;
        // Written by a replica as a decimal; anything else counts as nothing charged.
        c.charged = c
            .charged
            .saturating_add(b.charged.parse::<u128>().unwrap_or(0));
    }
    c
}

/// The charged amount of `c` as a status writes it: a decimal, empty when no receipt stated one.
pub fn charged_text(c: &Counts) -> String {
    if c.receipts == 0 {
        String::new()
    } else {
        c.charged.to_string()
    }
}

/// Whether another process writes this replica's entry: once a write of this process was
/// accepted (`wrote`), the entry read must carry one of the `updated` values it sent. Two pods
/// of one name (a force-deleted pod still running) would spend the same slots; the one that
/// notices stops.
///
/// Before its first accepted write, a foreign `updated` is its predecessor's: a process killed
/// with a write in flight can have that write land after the restarted process sent its own
/// (which is then refused, the version having moved). After an accepted write no such late
/// write can land, since each carries the version its writer read.
pub fn written_by_another(read: Option<&str>, sent: &[&str], wrote: bool) -> bool {
    wrote && read.is_some_and(|u| !sent.contains(&u))
}

/// Whether two entries say the same apart from `updated`.
fn same_entry(a: &BuyerReplicaStatus, b: &BuyerReplicaStatus) -> bool {
    BuyerReplicaStatus {
        updated: String::new(),
        ..a.clone()
    } == BuyerReplicaStatus {
        updated: String::new(),
        ..b.clone()
    }
}

/// Now, RFC 3339 to the millisecond (an entry's `updated` must change at every renewal).
fn now_millis() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}

/// What this replica keeps per request.
struct Held {
    holding: Vec<Holding>,
    drain_since: Vec<Option<Instant>>,
    last_write: Option<Instant>,
    /// The `updated` values of this process's last writes (sent, whether or not the answer
    /// arrived).
    sent: std::collections::VecDeque<String>,
}

impl Default for Held {
    fn default() -> Self {
        Self {
            holding: vec![Holding::None; usize::from(SLOTS)],
            drain_since: vec![None; usize::from(SLOTS)],
            last_write: None,
            sent: std::collections::VecDeque::new(),
        }
    }
}

/// Runs the replica's part until the process ends.
pub(crate) async fn run(
    buyer: Arc<Buyer>,
    client: Client,
    shared: Arc<Mutex<Shared>>,
    options: ReplicaOptions,
) {
    buyer.set_partitioned();
    let epoch = Instant::now();
    let mut liveness = Liveness::default();
    let mut state: HashMap<String, Held> = HashMap::new();
    let mut replicas: Option<u32> = None;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &options.namespace);
    let tick = (options.lease / 10).clamp(Duration::from_millis(200), Duration::from_secs(1));
    let renew_every = options.lease / 4;
    let mut stopped = false;
    loop {
        if stopped {
            for upstream in shared.lock().assembled.refs.keys() {
                buyer.set_gate(upstream, BTreeSet::new());
            }
            tokio::time::sleep(tick).await;
            continue;
        }
        match sets.get(&options.statefulset).await {
            Ok(s) => {
                let n = s.spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as u32;
                if replicas != Some(n) {
                    info!(replicas = n, "Replica count");
                }
                replicas = Some(n);
            }
            Err(error) => warn!(%error, statefulset = %options.statefulset,
                "Cannot read the replica count; keeping the last one"),
        }
        let upstreams: BTreeMap<String, (String, String)> = shared
            .lock()
            .assembled
            .refs
            .iter()
            .map(|(u, r)| (u.clone(), (r.namespace.clone(), r.name.clone())))
            .collect();
        state.retain(|u, _| upstreams.contains_key(u));
        for (upstream, (ns, name)) in &upstreams {
            let held = state.entry(upstream.clone()).or_default();
            // Self-fence: no renewal for half the lease, no spending.
            if held
                .last_write
                .is_none_or(|t| !may_spend(t.elapsed(), options.lease))
            {
                buyer.set_gate(upstream, BTreeSet::new());
            }
            let Some(r) = replicas else { continue };
            let due = held.last_write.is_none_or(|t| t.elapsed() >= renew_every);
            match round(
                &buyer,
                &client,
                &shared,
                &options,
                RoundCtx {
                    upstream,
                    namespace: ns,
                    name,
                    replicas: r,
                    due,
                    now_ms: epoch.elapsed().as_millis() as u64,
                },
                held,
                &mut liveness,
            )
            .await
            {
                Ok(Round::Done) => {}
                Ok(Round::Impostor) => {
                    tracing::error!(replica = %options.name, %upstream,
                        "Another process writes this replica's status entry (two pods of one \
                         name?): this one stops spending until restarted");
                    stopped = true;
                    buyer.set_gate(upstream, BTreeSet::new());
                }
                Err(error) => {
                    debug!(%error, %upstream, "Replica round not written; next tick decides again");
                }
            }
        }
        tokio::time::sleep(tick).await;
    }
}

/// How a round ended.
enum Round {
    /// Written, or nothing to write.
    Done,
    /// Another process writes this replica's entry.
    Impostor,
}

struct RoundCtx<'a> {
    upstream: &'a str,
    namespace: &'a str,
    name: &'a str,
    replicas: u32,
    due: bool,
    now_ms: u64,
}

#[allow(clippy::too_many_lines)]
async fn round(
    buyer: &Buyer,
    client: &Client,
    shared: &Mutex<Shared>,
    options: &ReplicaOptions,
    ctx: RoundCtx<'_>,
    held: &mut Held,
    liveness: &mut Liveness,
) -> Result<Round, kube::Error> {
    let api: Api<PurchaseRequest> = Api::namespaced(client.clone(), ctx.namespace);
    let object = api.get_status(ctx.name).await?;
    let current = object.status.clone().unwrap_or_default();
    let mine_read = current
        .buyers
        .iter()
        .find(|b| b.name == options.name)
        .map(|b| b.updated.as_str());
    let sent: Vec<&str> = held.sent.iter().map(String::as_str).collect();
    if written_by_another(mine_read, &sent, held.last_write.is_some()) {
        return Ok(Round::Impostor);
    }
    let Some(per_slot) = buyer.slot_counts(ctx.upstream) else {
        return Ok(Round::Done);
    };
    let request_key = key(ctx.namespace, ctx.name);
    let mut peers = Vec::new();
    let mut dead = BTreeSet::new();
    let mut names = BTreeSet::new();
    for b in current.buyers.iter().filter(|b| b.name != options.name) {
        let who = format!("{request_key}/{}", b.name);
        liveness.observe(&who, &b.updated, ctx.now_ms);
        names.insert(who.clone());
        let live = liveness.live(&who, ctx.now_ms, options.lease);
        if !live {
            dead.insert(b.name.clone());
        }
        // A listing that cannot be read is taken as listing everything.
        let slots = partition::parse_slots(&b.slots).unwrap_or_else(|e| {
            warn!(peer = %b.name, error = %e, "Unreadable slots; taken as all");
            partition::all_slots()
        });
        peers.push(Peer {
            name: b.name.clone(),
            slots,
            live,
        });
    }
    liveness.retain_prefixed(&format!("{request_key}/"), &names);
    let own: Vec<Own> = (0..usize::from(SLOTS))
        .map(|s| Own {
            holding: held.holding[s],
            held: per_slot[s].held,
            drain_overdue: held.drain_since[s].is_some_and(|t| t.elapsed() > options.drain_limit),
        })
        .collect();
    let lapsed = held
        .last_write
        .is_some_and(|t| !may_spend(t.elapsed(), options.lease));
    let verdicts = decide(&Input {
        ordinal: options.ordinal,
        replicas: ctx.replicas,
        own: &own,
        peers: &peers,
        lapsed,
    });
    let listed = partition::listed(&verdicts);
    let mine = sum_slots(&per_slot, &listed);
    let entry = BuyerReplicaStatus {
        name: options.name.clone(),
        slots: partition::format_slots(&listed),
        remaining: mine.remaining as u64,
        held: mine.held as u64,
        spent: mine.spent as u64,
        healed: mine.healed as u64,
        expired: mine.expired as u64,
        receipts: mine.receipts as u64,
        charged: charged_text(&mine),
        updated: now_millis(),
    };
    let unchanged = current
        .buyers
        .iter()
        .find(|b| b.name == options.name)
        .is_some_and(|b| same_entry(b, &entry));
    let changes_holding = verdicts
        .iter()
        .zip(&held.holding)
        .any(|(v, h)| v.next_holding(*h) != *h);
    if unchanged && dead.is_empty() && !ctx.due && !changes_holding {
        return Ok(Round::Done);
    }
    let updated = entry.updated.clone();
    let buyers = next_entries(&current.buyers, entry, &dead);
    let (purchase, problem, seller) = {
        let s = shared.lock();
        let purchase = s.assembled.refs.get(ctx.upstream).cloned();
        let problem = s.assembled.problems.get(&request_key).cloned();
        (purchase, problem, s.seller.get(ctx.upstream).cloned())
    };
    let Some(purchase) = purchase else {
        return Ok(Round::Done);
    };
    let skipped = buyer.counts(ctx.upstream).map_or(0, |c| c.skipped);
    let now = crate::purchases::now_rfc3339();
    let mut next: PurchaseRequestStatus = status(&StatusInput {
        purchase: &purchase,
        counts: Some(total(&buyers, skipped)),
        problem: problem.as_ref(),
        seller: seller.as_ref(),
        previous: &current,
        now: &now,
    });
    next.buyers = buyers;
    // The resourceVersion read is a precondition: on any other version the write is refused
    // (409), so two replicas deciding on the same status cannot both succeed.
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": object.resource_version() },
        "status": next,
    });
    held.sent.push_back(updated);
    if held.sent.len() > 4 {
        held.sent.pop_front();
    }
    api.patch_status(ctx.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    held.last_write = Some(Instant::now());
    for (s, v) in verdicts.iter().enumerate() {
        let before = held.holding[s];
        held.holding[s] = v.next_holding(before);
        held.drain_since[s] = match v {
            Verdict::Drain | Verdict::Yield { .. } => held.drain_since[s].or(Some(Instant::now())),
            _ => None,
        };
        if *v == Verdict::Release && before != Holding::None {
            info!(slot = s, upstream = %ctx.upstream, "Slot released");
        }
        if *v == Verdict::Claim {
            info!(slot = s, upstream = %ctx.upstream, "Slot claimed");
        }
    }
    let mut spendable = partition::spendable(&verdicts);
    let to_check: BTreeSet<Slot> = verdicts
        .iter()
        .zip(0..SLOTS)
        .filter(|(v, _)| matches!(v, Verdict::Claim | Verdict::Check))
        .map(|(_, s)| s)
        .collect();
    if !to_check.is_empty()
        && let Some(upstream) = buyer.upstream(ctx.upstream)
    {
        match buyer.check_slots(&upstream, &to_check).await {
            Ok(r) => {
                info!(upstream = %ctx.upstream, slots = %partition::format_slots(&to_check),
                    checked = r.checked, used = r.marked, "Claimed slots checked on chain");
                for s in &to_check {
                    held.holding[usize::from(*s)] = Holding::Checked;
                }
                spendable.extend(to_check);
            }
            Err(error) => {
                warn!(%error, upstream = %ctx.upstream, "Chain check of claimed slots failed; retried")
            }
        }
    }
    buyer.set_gate(ctx.upstream, spendable);
    Ok(Round::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, slots: &str, remaining: u64, spent: u64) -> BuyerReplicaStatus {
        BuyerReplicaStatus {
            name: name.into(),
            slots: slots.into(),
            remaining,
            spent,
            updated: "t".into(),
            ..BuyerReplicaStatus::default()
        }
    }

    #[test]
    fn entries_replace_this_replicas_drop_the_dead_and_sum() {
        let current = [
            entry("b-2", "2,5", 5, 1),
            entry("b-0", "0,3", 7, 2),
            entry("b-1", "1,4", 4, 4),
        ];
        let dead: BTreeSet<String> = ["b-2".to_owned()].into();
        let out = next_entries(&current, entry("b-0", "0,2,3,5", 9, 3), &dead);
        let names: Vec<&str> = out.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["b-0", "b-1"]);
        assert_eq!(out[0].slots, "0,2,3,5");
        let t = total(&out, 2);
        assert_eq!((t.remaining, t.spent, t.skipped), (13, 7, 2));
        assert_eq!((t.receipts, t.charged), (0, 0));
        // Charged amounts add up over the replicas; an unreadable one counts as nothing.
        let charged = |name: &str, receipts, charged: &str| BuyerReplicaStatus {
            receipts,
            charged: charged.into(),
            ..entry(name, "", 0, receipts)
        };
        let t = total(
            &[
                charged("b-0", 2, "61"),
                charged("b-1", 1, "340282366920938463463374607431768211455"),
                charged("b-2", 1, "junk"),
            ],
            0,
        );
        assert_eq!((t.receipts, t.charged), (4, u128::MAX));
        let t = total(&[charged("b-0", 2, "61"), charged("b-1", 1, "5")], 0);
        assert_eq!((t.receipts, t.charged), (3, 66));
        assert_eq!(charged_text(&t), "66");
        assert_eq!(charged_text(&Counts::default()), "");
        assert!(same_entry(
            &entry("x", "1", 1, 1),
            &BuyerReplicaStatus {
                updated: "other".into(),
                ..entry("x", "1", 1, 1)
            }
        ));
        assert!(!same_entry(
            &entry("x", "1", 1, 1),
            &entry("x", "1,2", 1, 1)
        ));
        // Another process writing this replica's entry is noticed once a write of this one
        // was accepted; before that, a foreign value is the predecessor's late write.
        for (read, sent, wrote, another) in [
            (None, vec![], false, false),
            (Some("t1"), vec![], false, false),
            (None, vec!["t1"], false, false),
            (Some("t9"), vec!["t1"], false, false),
            (Some("t1"), vec!["t1"], false, false),
            (None, vec!["t1"], true, false),
            (Some("t1"), vec!["t0", "t1"], true, false),
            (Some("t0"), vec!["t0", "t1"], true, false),
            (Some("t9"), vec!["t0", "t1"], true, true),
            (Some("t9"), vec!["t1"], true, true),
        ] {
            assert_eq!(
                written_by_another(read, &sent, wrote),
                another,
                "{read:?} {sent:?} {wrote}"
            );
        }
        let per_slot: Vec<Counts> = (0..usize::from(SLOTS))
            .map(|s| Counts {
                remaining: s,
                spent: 1,
                ..Counts::default()
            })
            .collect();
        let c = sum_slots(&per_slot, &[1, 4, 7].into());
        assert_eq!((c.remaining, c.spent), (12, 3));
    }
}
