//! The retry schedule: exponential from `initial`, doubling per attempt, capped at `max`.
//!
//! Deterministic on purpose: the next attempt time is written into the status, so an operator
//! reading `kubectl get rr -o yaml` sees exactly when the registrar will try again.

use std::time::Duration;

/// Retry delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay after failed attempt number `attempt` (1 = the first failure).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.initial
            .saturating_mul(1u32 << doublings)
            .min(self.max)
            .max(self.initial.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let b = Backoff {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        let got: Vec<u64> = (0..=8).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(got, [2, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn default_schedule() {
        let b = Backoff::default();
        assert_eq!(b.delay(1), Duration::from_secs(2));
        assert_eq!(b.delay(20), Duration::from_secs(300));
    }
}
