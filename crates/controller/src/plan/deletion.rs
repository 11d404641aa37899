//! What the finalizer's cleanup does once it withdrew the HTTPRoute and asked for the
//! RegistrationRequest's deletion: release the offer, keep waiting, or give up waiting.

use std::time::Duration;

use jiff::Timestamp;

/// The cleanup's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The RegistrationRequest is gone: release the offer.
    Release,
    /// It is still there after the deadline: release the offer anyway and say so.
    GiveUp,
    /// It is still there: keep the finalizer and look again soon.
    Wait,
}

/// The verdict for an offer deleted at `deleting_since` (its `deletionTimestamp`; `None`, or a
/// time after `now`, counts as just now) when `registration_gone` says whether its
/// RegistrationRequest disappeared, with `timeout` the longest wait.
pub fn verdict(
    registration_gone: bool,
    deleting_since: Option<Timestamp>,
    now: Timestamp,
    timeout: Duration,
) -> Verdict {
    if registration_gone {
        return Verdict::Release;
    }
    let waited = deleting_since.map_or(Duration::ZERO, |since| {
        Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO)
    });
    if waited >= timeout {
        Verdict::GiveUp
    } else {
        Verdict::Wait
    }
}
