//! Status writes: server-side apply of the whole status under the registrar's field manager,
//! guarded by the resourceVersion of the fresh read the decision was based on. A concurrent
//! change (another replica during a lease handover, a stale decision) fails with a conflict
//! instead of overwriting the fence.

use kube::Api;
use kube::api::{Patch, PatchParams};
use obol_api::{REGISTRAR_FIELD_MANAGER, RegistrationRequest, RegistrationRequestStatus};

use crate::error::{Error, Result};

/// Reads the object from the API server (not a cache): decisions about sending must see the
/// last persisted fence.
pub async fn read_fresh(api: &Api<RegistrationRequest>, name: &str) -> Result<RegistrationRequest> {
    api.get_status(name).await.map_err(|source| Error::Kube {
        context: "read RegistrationRequest",
        source,
    })
}

/// Writes `status` if it differs from `old`'s; returns the stored object's resourceVersion.
pub async fn write(
    api: &Api<RegistrationRequest>,
    old: &RegistrationRequest,
    status: &RegistrationRequestStatus,
) -> Result<Option<String>> {
    if old.status.as_ref() == Some(status) {
        return Ok(old.metadata.resource_version.clone());
    }
    let name = old.metadata.name.clone().unwrap_or_default();
    let body = serde_json::json!({
        "apiVersion": obol_api::API_VERSION,
        "kind": "RegistrationRequest",
        "metadata": {"name": name, "resourceVersion": old.metadata.resource_version},
        "status": status,
    });
    let params = PatchParams::apply(REGISTRAR_FIELD_MANAGER).force();
    let stored = api
        .patch_status(&name, &params, &Patch::Apply(&body))
        .await
        .map_err(|source| Error::Kube {
            context: "write RegistrationRequest status",
            source,
        })?;
    Ok(stored.metadata.resource_version)
}
