//! Leader election on a `coordination.k8s.io` Lease, for the replicas of the ServiceOffer
//! controller and of the registrar: wait for the lease (or for shutdown), run the leader's work
//! until it ends or the lease is lost, then release the lease.
//!
//! Mutual exclusion also rests on server-side apply conflicts between replicas, so each replica
//! keeps kube-lease-manager's per-identity field manager; one shared manager name would silence
//! those conflicts.

use std::future::Future;
use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;
pub use kube_lease_manager::LeaseManagerError as Error;
use tokio::sync::watch;
use tracing::info;

pub use crate::lease_args::{LeaseArgs, LeaseConfig};

/// How long a released lease may take to be written back before the process goes on.
const RELEASE_BUDGET: Duration = Duration::from_secs(5);

/// How a term ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Shutdown came before the lease was acquired: nothing ran.
    Stopped,
    /// The work ran while leading and returned.
    Finished(T),
    /// The lease was lost (or its task ended) before the work returned; the work was dropped.
    Lost,
}

/// Campaigns for `lease`; once leading, runs `work` until it returns or the lease is lost, then
/// releases the lease (within a few seconds). `shutdown` only matters while waiting: the work
/// gets its own shutdown signal from the caller. `leading` is told when leadership starts and
/// ends (for a gauge).
pub async fn lead<T, Fut>(
    client: kube::Client,
    lease: &LeaseConfig,
    shutdown: impl Future<Output = ()>,
    leading: impl Fn(bool),
    work: impl FnOnce() -> Fut,
) -> Result<Outcome<T>, Error>
where
    Fut: Future<Output = T>,
{
    let manager = LeaseManagerBuilder::new(client, &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(lease.duration.as_secs().max(1))
        .with_grace(lease.grace.as_secs().max(1))
        .build()
        .await?;
    let (mut state, lease_task) = manager.watch().await;
    info!(identity = %lease.identity, lease = %lease.name, "Waiting for the lease");
    let acquired = tokio::select! {
        got = until(&mut state, true) => got,
        () = shutdown => {
            drop(state);
            let _ = tokio::time::timeout(RELEASE_BUDGET, lease_task).await;
            return Ok(Outcome::Stopped);
        }
    };
    let outcome = if acquired {
        info!(identity = %lease.identity, "Acquired the lease");
        leading(true);
        let mut watching = state.clone();
        let outcome = tokio::select! {
            value = work() => Outcome::Finished(value),
            _ = until(&mut watching, false) => Outcome::Lost,
        };
        leading(false);
        outcome
    } else {
        Outcome::Lost
    };
    // Closing the channel makes the lease task release the lease.
    drop(state);
    let _ = tokio::time::timeout(RELEASE_BUDGET, lease_task).await;
    Ok(outcome)
}

/// [`lead`] when `lease` is set; without one (a single replica, tests) the work runs at once,
/// as leader.
pub async fn lead_if<T, Fut>(
    client: kube::Client,
    lease: Option<&LeaseConfig>,
    shutdown: impl Future<Output = ()>,
    leading: impl Fn(bool),
    work: impl FnOnce() -> Fut,
) -> Result<Outcome<T>, Error>
where
    Fut: Future<Output = T>,
{
    match lease {
        Some(lease) => lead(client, lease, shutdown, leading, work).await,
        None => {
            leading(true);
            Ok(Outcome::Finished(work().await))
        }
    }
}

/// Waits until the leadership flag equals `wanted`; false when the lease task is gone first.
async fn until(state: &mut watch::Receiver<bool>, wanted: bool) -> bool {
    while *state.borrow_and_update() != wanted {
        if state.changed().await.is_err() {
            return false;
        }
    }
    true
}
