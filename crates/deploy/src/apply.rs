//! Server-side apply of manifest objects of any kind (resolved by discovery, once per kind).

use std::collections::HashMap;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, Scope, pinned_kind};
use kube::{Api, Client};

use crate::error::{Error, Result};
use crate::manifest::Object;

/// Resolves kinds to API resources, asking the server once per kind.
#[derive(Default)]
pub struct Kinds {
    known: HashMap<(String, String, String), (ApiResource, ApiCapabilities)>,
}

impl Kinds {
    /// The API of `object`'s kind, in its namespace when the kind is namespaced.
    pub async fn api(&mut self, client: &Client, object: &Object) -> Result<Api<DynamicObject>> {
        let key = (
            object.group().to_owned(),
            object.version().to_owned(),
            object.kind().to_owned(),
        );
        if !self.known.contains_key(&key) {
            let gvk = GroupVersionKind::gvk(&key.0, &key.1, &key.2);
            let found = pinned_kind(client, &gvk)
                .await
                .map_err(|source| Error::Kube {
                    context: format!(
                        "the cluster does not serve {} {}",
                        object.api_version(),
                        object.kind()
                    ),
                    source: Box::new(source),
                })?;
            self.known.insert(key.clone(), found);
        }
        let (resource, caps) = &self.known[&key];
        Ok(match (&caps.scope, object.namespace()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, resource),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), resource),
            (Scope::Cluster, _) => Api::all_with(client.clone(), resource),
        })
    }
}

/// Applies `object` server-side as `manager` (forcing: these objects are ours), or only asks
/// the server to validate it when `dry_run`.
pub async fn apply(
    client: &Client,
    kinds: &mut Kinds,
    object: &Object,
    manager: &str,
    dry_run: bool,
) -> Result<DynamicObject> {
    let api = kinds.api(client, object).await?;
    let mut params = PatchParams::apply(manager).force();
    params.dry_run = dry_run;
    api.patch(object.name(), &params, &Patch::Apply(&object.0))
        .await
        .map_err(|source| Error::Kube {
            context: format!("applying {}", object.id()),
            source: Box::new(source),
        })
}
