//! Server-side apply and withdrawal of children, skipping calls the watch caches show to be
//! no-ops, so a periodic re-probe of an unchanged offer writes nothing.

use std::fmt::Debug;

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A child kind the controller writes: how to compare its spec.
pub trait Child:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The kind, for metrics.
    const KIND: &'static str;
    /// Whether the spec of `live` already equals the spec of `desired`.
    fn same_spec(live: &Self, desired: &Self) -> bool;
}

impl Child for obol_api::traefik::Middleware {
    const KIND: &'static str = "Middleware";
    fn same_spec(live: &Self, desired: &Self) -> bool {
        live.spec == desired.spec
    }
}

impl Child for obol_api::PaymentRoute {
    const KIND: &'static str = "PaymentRoute";
    fn same_spec(live: &Self, desired: &Self) -> bool {
        live.spec == desired.spec
    }
}

impl Child for obol_api::gateway::HttpRoute {
    const KIND: &'static str = "HTTPRoute";
    fn same_spec(live: &Self, desired: &Self) -> bool {
        live.spec == desired.spec
    }
}

impl Child for obol_api::RegistrationRequest {
    const KIND: &'static str = "RegistrationRequest";
    fn same_spec(live: &Self, desired: &Self) -> bool {
        live.spec == desired.spec
    }
}

/// The cached copy of `desired`'s object, if any.
pub fn cached<K: Child>(store: &Store<K>, desired: &K) -> Option<K> {
    let ns = desired.namespace().unwrap_or_default();
    store
        .get(&ObjectRef::new(&desired.name_any()).within(&ns))
        .map(|k| (*k).clone())
}

/// Whether the cached object already is what an apply of `desired` would make it: same spec,
/// our controller owner reference, our labels and our annotations.
fn up_to_date<K: Child>(live: &K, desired: &K) -> bool {
    let owner_uid = desired
        .owner_references()
        .first()
        .map(|o| o.uid.as_str())
        .unwrap_or_default();
    let owned = live
        .owner_references()
        .iter()
        .any(|o| o.uid == owner_uid && o.controller == Some(true));
    let labelled = desired
        .labels()
        .iter()
        .all(|(k, v)| live.labels().get(k) == Some(v));
    let annotated = desired
        .annotations()
        .iter()
        .all(|(k, v)| live.annotations().get(k) == Some(v));
    owned
        && labelled
        && annotated
        && live.meta().deletion_timestamp.is_none()
        && K::same_spec(live, desired)
}

/// Applies `desired` unless the cache shows it is already in place; returns the live object
/// and whether an apply was made.
pub async fn ensure<K: Child>(
    client: &kube::Client,
    store: &Store<K>,
    desired: &K,
) -> Result<(K, bool), kube::Error> {
    if let Some(live) = cached(store, desired).filter(|live| up_to_date(live, desired)) {
        return Ok((live, false));
    }
    let ns = desired.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let params = PatchParams::apply(obol_api::FIELD_MANAGER).force();
    let live = api
        .patch(&desired.name_any(), &params, &Patch::Apply(desired))
        .await?;
    Ok((live, true))
}

/// Deletes `name` in `ns` when the cache shows it (or when `force` is set); NotFound counts as
/// done. Returns whether a delete call was made.
pub async fn withdraw<K: Child>(
    client: &kube::Client,
    store: &Store<K>,
    ns: &str,
    name: &str,
    force: bool,
) -> Result<bool, kube::Error> {
    if !force && store.get(&ObjectRef::new(name).within(ns)).is_none() {
        return Ok(false);
    }
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
        Err(e) => Err(e),
    }
}
