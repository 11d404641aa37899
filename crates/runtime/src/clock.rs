//! Time as a dependency: decisions get `now` as an argument; the services ask a [`Clock`] for it
//! (the verifier's gate, the buyer's pool), so tests can set the time by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of unix seconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the unix epoch.
    fn now_unix(&self) -> u64;

    /// Milliseconds since the unix epoch (a clock that only knows seconds says the second's
    /// start).
    fn now_unix_millis(&self) -> u64 {
        self.now_unix().saturating_mul(1000)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn now_unix_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock tests set by hand.
#[derive(Debug, Default)]
pub struct FixedClock(AtomicU64);

impl FixedClock {
    /// A clock reading `now`.
    pub fn new(now: u64) -> Self {
        Self(AtomicU64::new(now))
    }

    /// Moves the clock.
    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::Relaxed);
    }
}

impl Clock for FixedClock {
    fn now_unix(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_agree_with_seconds() {
        let fixed = FixedClock::new(1_764_763_200);
        assert_eq!(fixed.now_unix_millis(), 1_764_763_200_000);
        let before = SystemClock.now_unix();
        let ms = SystemClock.now_unix_millis();
        let after = SystemClock.now_unix();
        assert!(
            (before..=after).contains(&(ms / 1000)),
            "{before} {ms} {after}"
        );
    }
}
