//! Shutdown on signals: the first SIGTERM or SIGINT starts draining (servers stop accepting,
//! work in flight finishes, leases are released); a second one ends the process at once.

use std::future::Future;

use tokio::sync::{mpsc, watch};
use tracing::{Instrument as _, info_span, warn};

/// The exit code of a process stopped by a second signal.
pub const ABORT_EXIT_CODE: i32 = 1;

/// Whether shutdown was requested; cheap to clone, one per task.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Requests shutdown of a [`Shutdown`] made by [`Shutdown::manual`].
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

impl Trigger {
    /// Starts draining.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Listens for SIGTERM and SIGINT (needs a tokio runtime): the first drains, the second
    /// exits with [`ABORT_EXIT_CODE`].
    pub fn on_signals() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (trigger, shutdown) = Self::manual();
        let (tx, rx) = mpsc::channel(2);
        let forward = async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
                if tx.send(()).await.is_err() {
                    break;
                }
            }
        };
        tokio::spawn(forward.instrument(info_span!("signals")));
        let watching = on_two_signals(rx, trigger, || std::process::exit(ABORT_EXIT_CODE));
        tokio::spawn(watching.instrument(info_span!("shutdown")));
        Ok(shutdown)
    }

    /// A shutdown that only `Trigger::trigger` requests (tests, embedding).
    pub fn manual() -> (Trigger, Self) {
        let (tx, rx) = watch::channel(false);
        (Trigger(tx), Self(rx))
    }

    /// Whether draining has started.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once draining starts (at once if it has). Also resolves when the trigger is
    /// gone without firing, which only happens when the process is ending anyway.
    pub fn requested(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|requested| *requested).await;
        }
    }
}

/// The rule, apart from the signals: after the first signal, drain; after the second, abort.
/// (A closed channel is no signal: nothing more happens.)
pub async fn on_two_signals(mut signals: mpsc::Receiver<()>, drain: Trigger, abort: impl FnOnce()) {
    if signals.recv().await.is_none() {
        return;
    }
    warn!("Shutting down: finishing work in flight (a second signal stops at once)");
    drain.trigger();
    if signals.recv().await.is_none() {
        return;
    }
    warn!("Second signal: stopping now");
    abort();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn first_signal_drains_second_aborts() {
        let (signal_tx, signal_rx) = mpsc::channel::<()>(2);
        let (trigger, shutdown) = Shutdown::manual();
        let aborted = Arc::new(AtomicBool::new(false));
        let flag = aborted.clone();
        let task = tokio::spawn(on_two_signals(signal_rx, trigger, move || {
            flag.store(true, Ordering::SeqCst);
        }));
        let requested = shutdown.requested();
        assert!(!shutdown.is_requested());

        signal_tx.send(()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), requested)
            .await
            .expect("the first signal drains");
        assert!(shutdown.is_requested());
        assert!(!aborted.load(Ordering::SeqCst), "one signal must not abort");

        signal_tx.send(()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the watcher ends after the second signal")
            .unwrap();
        assert!(aborted.load(Ordering::SeqCst), "the second signal aborts");
    }

    #[tokio::test]
    async fn a_manual_shutdown_resolves_every_clone() {
        let (trigger, shutdown) = Shutdown::manual();
        let other = shutdown.clone();
        let waiting = tokio::spawn(other.requested());
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        // Already requested: resolves at once.
        shutdown.requested().await;
    }
}
