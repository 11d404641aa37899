//! `PurchaseRequest` (`purch`): authorizations bought from one seller, written by `obol buy`,
//! spent by the x402 buyer.
//!
//! The spec names the seller and the terms every authorization was signed for (network, asset,
//! payTo, price, payer); the authorizations themselves live in ConfigMaps the request owns
//! (`spec.pool`, at most [`MAX_AUTHS_PER_CONFIGMAP`] per ConfigMap, well under the API server's
//! 1 MiB object limit), so the API server's garbage collector removes them with the request.
//! The buyer watches both through the API (no mounted volume and its minute of kubelet delay)
//! and reports in the status what it holds.
//!
//! The key that signed never enters the cluster: only signed authorizations do.

// kube's printcolumn(...) attributes repeat `type_ = "string"` on purpose.
#![allow(clippy::duplicated_attributes)]

use std::ops::Range;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;

/// One purchase: authorizations signed for one seller's terms.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "obol.org",
    version = "v1alpha1",
    kind = "PurchaseRequest",
    namespaced,
    shortname = "purch",
    status = "PurchaseRequestStatus",
    doc = "Pre-signed x402 authorizations bought from one seller; spent by the x402 buyer.",
    printcolumn(name = "Seller", type_ = "string", json_path = ".spec.sellerUrl"),
    printcolumn(name = "Price", type_ = "string", json_path = ".spec.price"),
    printcolumn(name = "Bought", type_ = "integer", json_path = ".spec.count"),
    printcolumn(name = "Remaining", type_ = "integer", json_path = ".status.remaining"),
    printcolumn(name = "Held", type_ = "integer", json_path = ".status.held"),
    printcolumn(name = "Spent", type_ = "integer", json_path = ".status.spent"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseRequestSpec {
    /// The seller endpoint; the buyer forwards `/upstream/<upstream>/<rest>` to `<sellerUrl>/<rest>`.
    #[schemars(regex(pattern = r"^https?://[^\s]+$"), length(max = 2048))]
    pub seller_url: String,
    /// Name the buyer serves the purchase under (`/upstream/<upstream>/`); default the
    /// request's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub upstream: Option<String>,
    /// The model the seller serves: the buyer's OpenAI-compatible routes send `paid/<model>` here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub remote_model: Option<String>,
    /// Chain: a name (`base-sepolia`) or a CAIP-2 id (`eip155:84532`).
    #[schemars(regex(pattern = r"^([a-z0-9][a-z0-9-]*|eip155:[0-9]+)$"))]
    pub network: String,
    /// Token contract the authorizations transfer.
    #[schemars(regex(pattern = r"^0x[0-9a-fA-F]{40}$"))]
    pub asset: String,
    /// The seller's wallet every authorization pays.
    #[schemars(regex(pattern = r"^0x[0-9a-fA-F]{40}$"))]
    pub pay_to: String,
    /// Price of one request in atomic units of the asset (`"1000"` = 0.001 USDC); the value
    /// of every authorization. With scheme `upto`, the most one request may be charged.
    #[schemars(regex(pattern = r"^[0-9]+$"), length(max = 78))]
    pub price: String,
    /// The x402 scheme the authorizations are signed as: `exact` (absent: EIP-3009 for the
    /// price) or `upto` (Permit2 witness authorizations for the maximum `price`; the seller
    /// charges what each answer cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(exact|upto)$"))]
    pub scheme: Option<String>,
    /// The wallet that signed (every authorization's `from`).
    #[schemars(regex(pattern = r"^0x[0-9a-fA-F]{40}$"))]
    pub payer: String,
    /// EIP-712 domain name of the token the authorizations were signed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eip712_name: Option<String>,
    /// EIP-712 domain version of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eip712_version: Option<String>,
    /// Authorizations bought in total (the sum of the pool's counts).
    #[schemars(range(min = 1))]
    pub count: u64,
    /// The ConfigMaps holding the authorizations, in the order they were bought.
    pub pool: Vec<PoolShard>,
}

/// One ConfigMap of authorizations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolShard {
    /// ConfigMap name (same namespace, owned by the request).
    #[schemars(length(min = 1, max = 253))]
    pub config_map: String,
    /// How many authorizations it holds.
    #[schemars(range(min = 1))]
    pub count: u64,
    /// When they stop being valid (`validBefore`, RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub expires_at: String,
}

/// What the buyer reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseRequestStatus {
    /// `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `PoolLoaded`, `SellerReachable`, `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Authorizations the buyer loaded (valid and signed for this request's terms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded: Option<u64>,
    /// Not yet sent and still valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// Sent, without an answer saying whether they were spent (the connection broke, the buyer
    /// was killed): never sent again; counted as spent once the chain says they were used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<u64>,
    /// Spent: confirmed by the seller, or found used on chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent: Option<u64>,
    /// Of the spent, those found already used (by a seller's answer or the chain) that this
    /// buyer's journal did not know about: lost state, healed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healed: Option<u64>,
    /// Dropped unsent because they expire within the buyer's safety margin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired: Option<u64>,
    /// Authorizations in the ConfigMaps that were ignored (malformed, or signed for other
    /// terms than the spec's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u64>,
    /// Of the spent, those whose receipt stated the amount charged (an `upto` seller settles
    /// what was used; a streamed answer settles after its head and states nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipts: Option<u64>,
    /// What those receipts charged, in the asset's atomic units (a decimal string). Authorized
    /// for them was `receipts × spec.price`; the difference was never moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charged: Option<String>,
    /// What the buyer last saw from the seller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seller: Option<SellerObservation>,
    /// One entry per buyer replica (each owns a partition of the pool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub buyers: Vec<BuyerReplicaStatus>,
}

/// The last answer the buyer got from the seller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SellerObservation {
    /// When (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub time: String,
    /// HTTP status, absent when the seller could not be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// What it meant (`payment_required`, `paid`, `refused`, `terms_changed`, `unreachable`, …).
    pub outcome: String,
    /// Details.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One buyer replica's share of the pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuyerReplicaStatus {
    /// The replica (pod) name.
    pub name: String,
    /// Partition slots it owns (comma-separated; empty for a single unpartitioned buyer).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub slots: String,
    /// Remaining in its slots.
    pub remaining: u64,
    /// Held in its slots.
    pub held: u64,
    /// Spent in its slots.
    pub spent: u64,
    /// Healed in its slots.
    pub healed: u64,
    /// Expired in its slots.
    pub expired: u64,
    /// Spent in its slots with a receipt stating the amount charged (this replica's journal).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub receipts: u64,
    /// What those receipts charged, in atomic units (a decimal string; empty when none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub charged: String,
    /// When it last wrote this entry (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub updated: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Condition types of a PurchaseRequest.
pub mod types {
    /// Every ConfigMap of the pool is loaded by the buyer at this generation.
    pub const POOL_LOADED: &str = "PoolLoaded";
    /// The seller answered its 402 with the terms of this request, recently.
    pub const SELLER_REACHABLE: &str = "SellerReachable";
    /// Loaded, reachable, and something left to spend.
    pub const READY: &str = crate::condition::types::READY;
}

/// Condition reasons of a PurchaseRequest.
pub mod reasons {
    /// Every ConfigMap loaded.
    pub const LOADED: &str = "Loaded";
    /// A ConfigMap of `spec.pool` is missing (not written yet, or deleted).
    pub const WAITING_FOR_CONFIG_MAPS: &str = "WaitingForConfigMaps";
    /// The spec cannot be used (bad address, network, price).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The buyer has no chain reader for the request's network, so it could not heal lost state.
    pub const NO_CHAIN_READER: &str = "NoChainReader";
    /// Another request (older) already serves this upstream name.
    pub const UPSTREAM_CONFLICT: &str = "UpstreamConflict";
    /// The seller asks for exactly these terms.
    pub const TERMS_MATCH: &str = "TermsMatch";
    /// The seller asks for something else (price, payTo, network, asset).
    pub const TERMS_CHANGED: &str = "TermsChanged";
    /// The seller could not be reached or did not answer with a usable 402.
    pub const UNREACHABLE: &str = "Unreachable";
    /// Not checked yet.
    pub const NOT_CHECKED: &str = "NotChecked";
    /// Ready to spend.
    pub const SPENDABLE: &str = "Spendable";
    /// Nothing left to spend.
    pub const EXHAUSTED: &str = "Exhausted";
    /// Waiting for another condition.
    pub const WAITING: &str = "Waiting";
}

/// Label on every ConfigMap of a pool: the request's name.
pub const POOL_LABEL: &str = "obol.org/purchaserequest";
/// The ConfigMap key holding a JSON array of pre-signed authorizations.
pub const POOL_KEY: &str = "auths.json";
/// Most authorizations in one ConfigMap.
pub const MAX_AUTHS_PER_CONFIGMAP: usize = 500;
/// Most bytes of authorizations in one ConfigMap: well under the 1 MiB object limit, leaving
/// room for metadata.
pub const MAX_POOL_BYTES_PER_CONFIGMAP: usize = 900 * 1024;
/// Field manager of the buyer's status writes.
pub const BUYER_FIELD_MANAGER: &str = "x402-buyer";

impl PurchaseRequestSpec {
    /// The upstream name: `spec.upstream`, else the request's name.
    pub fn upstream_name<'a>(&'a self, request_name: &'a str) -> &'a str {
        self.upstream.as_deref().unwrap_or(request_name)
    }
}

/// The name of the `index`-th pool ConfigMap of request `name`: `purch-<name>-<index>`.
pub fn pool_config_map(name: &str, index: usize) -> String {
    crate::names::child_name("purch-", name, &format!("-{index}"))
}

/// Splits items of the given serialized sizes into consecutive ranges of at most
/// [`MAX_AUTHS_PER_CONFIGMAP`] items and [`MAX_POOL_BYTES_PER_CONFIGMAP`] bytes (two bytes per
/// item for the JSON array's separators included). An item larger than the byte limit alone
/// gets a range of its own.
pub fn shard(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 2);
    for (i, &size) in sizes.iter().enumerate() {
        let item = size + 1;
        let full =
            i - start >= MAX_AUTHS_PER_CONFIGMAP || bytes + item > MAX_POOL_BYTES_PER_CONFIGMAP;
        if i > start && full {
            out.push(start..i);
            (start, bytes) = (i, 2);
        }
        bytes += item;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(
        clippy::single_range_in_vec_init,
        reason = "a table of shard lists, some of one"
    )]
    fn shards_respect_count_and_bytes() {
        let cases: &[(&[usize], &[Range<usize>])] = &[
            (&[], &[]),
            (&[400; 3], &[0..3]),
            (&[400; 500], &[0..500]),
            (&[400; 501], &[0..500, 500..501]),
            (&[400; 1000], &[0..500, 500..1000]),
            // Bytes bind first: 3 000-byte items fit 307 to a ConfigMap.
            (&[3000; 400], &[0..307, 307..400]),
            // An oversized item still gets a shard (the API server will refuse it loudly).
            (&[2_000_000, 10], &[0..1, 1..2]),
        ];
        for (sizes, want) in cases {
            assert_eq!(&shard(sizes), want, "{} items", sizes.len());
        }
        for r in shard(&[450; 2345]) {
            let bytes: usize = 2 + r.len() * 451;
            assert!(r.len() <= MAX_AUTHS_PER_CONFIGMAP && bytes <= MAX_POOL_BYTES_PER_CONFIGMAP);
        }
    }

    #[test]
    fn pool_names_are_labels_and_distinct() {
        assert_eq!(pool_config_map("qwen", 0), "purch-qwen-0");
        let long = "a".repeat(80);
        let (a, b) = (pool_config_map(&long, 1), pool_config_map(&long, 2));
        assert!(crate::names::is_dns1123_label(&a) && a != b, "{a} {b}");
    }
}
