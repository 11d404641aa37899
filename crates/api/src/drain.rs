//! Draining an offer: `spec.drainAt` (RFC 3339) and `spec.drainGracePeriod` (a duration) of a
//! ServiceOffer say when the offer stops being sold and how long its route keeps gating after.
//!
//! - before `drainAt`: **scheduled** — nothing changes yet;
//! - from `drainAt` until `drainAt + drainGracePeriod` (the drain's end): **draining** — the
//!   route keeps gating (buyers in the middle of something finish it), the PaymentRoute
//!   carries `drainEndsAt`, and discovery lists the offer with `available: false` and
//!   `drainEndsAt`;
//! - from the end on: **drained** — the route is withdrawn (as `obol.org/paused` withdraws it),
//!   the offer reports `Drained` (condition and phase) and discovery no longer lists it.
//!
//! Removing `drainAt` sells the offer again. Every decision is a pure function of the spec's
//! two fields and the current time.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::validation as v;

/// When a drain starts and ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drain {
    /// `drainAt`.
    pub starts: Timestamp,
    /// `drainAt + drainGracePeriod`: the route is withdrawn from then on.
    pub ends: Timestamp,
}

/// Why a drain field is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainError {
    /// `drainAt` is not an RFC 3339 timestamp with an offset.
    NotATimestamp,
    /// `drainGracePeriod` is not `<n>s`, `<n>m` or `<n>h` within the limit.
    NotAGracePeriod,
    /// `drainGracePeriod` without `drainAt`.
    GraceWithoutDrain,
}

/// Parses a grace period: a whole number of seconds, minutes or hours (`90s`, `15m`, `1h`), at
/// most [`v::MAX_DRAIN_GRACE_SECONDS`].
pub fn parse_grace(text: &str) -> Result<Duration, DrainError> {
    if !v::is_grace_period(text) {
        return Err(DrainError::NotAGracePeriod);
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        _ => 3600,
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|s| *s <= v::MAX_DRAIN_GRACE_SECONDS)
        .map(Duration::from_secs)
        .ok_or(DrainError::NotAGracePeriod)
}

/// Parses `drainAt` ([`v::TIMESTAMP`], then the calendar).
pub fn parse_drain_at(text: &str) -> Result<Timestamp, DrainError> {
    if !v::is_timestamp(text) {
        return Err(DrainError::NotATimestamp);
    }
    text.parse::<Timestamp>()
        .map_err(|_| DrainError::NotATimestamp)
}

/// The drain the two fields describe: `None` when `drain_at` is absent (and so is the grace
/// period); no grace period means the route goes at `drainAt`.
pub fn schedule(drain_at: Option<&str>, grace: Option<&str>) -> Result<Option<Drain>, DrainError> {
    let Some(at) = drain_at else {
        return match grace {
            Some(_) => Err(DrainError::GraceWithoutDrain),
            None => Ok(None),
        };
    };
    let starts = parse_drain_at(at)?;
    let grace = grace.map(parse_grace).transpose()?.unwrap_or_default();
    let grace = SignedDuration::try_from(grace).map_err(|_| DrainError::NotAGracePeriod)?;
    let ends = starts
        .checked_add(grace)
        .map_err(|_| DrainError::NotAGracePeriod)?;
    Ok(Some(Drain { starts, ends }))
}

/// Where an offer stands at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainState {
    /// No drain asked for.
    Selling,
    /// A drain starts later.
    Scheduled(Drain),
    /// Started: the route gates until `ends`.
    Draining(Drain),
    /// Ended: the route is withdrawn.
    Drained(Drain),
}

/// The state of `drain` at `now`.
pub fn state(drain: Option<Drain>, now: Timestamp) -> DrainState {
    match drain {
        None => DrainState::Selling,
        Some(d) if now < d.starts => DrainState::Scheduled(d),
        Some(d) if now < d.ends => DrainState::Draining(d),
        Some(d) => DrainState::Drained(d),
    }
}

impl DrainState {
    /// How long from `now` until the state changes by itself (`None`: it does not).
    pub fn next_change(&self, now: Timestamp) -> Option<Duration> {
        let at = match self {
            Self::Scheduled(d) => d.starts,
            Self::Draining(d) => d.ends,
            Self::Selling | Self::Drained(_) => return None,
        };
        let left = now.duration_until(at);
        Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
    }

    /// The end the PaymentRoute carries: set from the drain's start on (and kept once it
    /// ended, so the route's generation does not change when it is withdrawn).
    pub fn route_end(&self) -> Option<Timestamp> {
        match self {
            Self::Draining(d) | Self::Drained(d) => Some(d.ends),
            Self::Selling | Self::Scheduled(_) => None,
        }
    }

    /// Whether the route must be withdrawn.
    pub fn is_drained(&self) -> bool {
        matches!(self, Self::Drained(_))
    }
}

/// A timestamp as the resources write it: RFC 3339 in UTC, whole seconds unless the drain
/// asked for less.
pub fn format(t: Timestamp) -> String {
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn grace_periods() {
        let table: &[(&str, Result<u64, DrainError>)] = &[
            ("0s", Ok(0)),
            ("90s", Ok(90)),
            ("15m", Ok(900)),
            ("1h", Ok(3600)),
            ("720h", Ok(2_592_000)),
            ("721h", Err(DrainError::NotAGracePeriod)),
            ("2592001s", Err(DrainError::NotAGracePeriod)),
            ("99999999999999999999h", Err(DrainError::NotAGracePeriod)),
            ("1", Err(DrainError::NotAGracePeriod)),
            ("1d", Err(DrainError::NotAGracePeriod)),
            ("500ms", Err(DrainError::NotAGracePeriod)),
            ("1h30m", Err(DrainError::NotAGracePeriod)),
            ("-1s", Err(DrainError::NotAGracePeriod)),
            ("", Err(DrainError::NotAGracePeriod)),
            (" 1h", Err(DrainError::NotAGracePeriod)),
        ];
        for (text, want) in table {
            let got = parse_grace(text).map(|d| d.as_secs());
            assert_eq!(&got, want, "{text:?}");
        }
    }

    #[test]
    fn schedules() {
        let at = "2026-01-02T03:04:05Z";
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Result<Option<(&'a str, &'a str)>, DrainError>,
        );
        let table: &[Case<'_>] = &[
            (None, None, Ok(None)),
            (Some(at), None, Ok(Some((at, at)))),
            (Some(at), Some("1h"), Ok(Some((at, "2026-01-02T04:04:05Z")))),
            (
                Some("2026-01-02T05:04:05+02:00"),
                Some("30s"),
                Ok(Some((at, "2026-01-02T03:04:35Z"))),
            ),
            (
                Some("2026-01-02T03:04:05.5Z"),
                Some("0s"),
                Ok(Some(("2026-01-02T03:04:05.5Z", "2026-01-02T03:04:05.5Z"))),
            ),
            (None, Some("1h"), Err(DrainError::GraceWithoutDrain)),
            (Some("2026-01-02"), None, Err(DrainError::NotATimestamp)),
            (
                Some("2026-01-02T03:04:05"),
                None,
                Err(DrainError::NotATimestamp),
            ),
            (
                Some("2026-02-30T03:04:05Z"),
                None,
                Err(DrainError::NotATimestamp),
            ),
            (
                Some("2026-01-02 03:04:05Z"),
                None,
                Err(DrainError::NotATimestamp),
            ),
            (Some("tomorrow"), None, Err(DrainError::NotATimestamp)),
            (Some(at), Some("1w"), Err(DrainError::NotAGracePeriod)),
        ];
        for (drain_at, grace, want) in table {
            let want = want.clone().map(|o| {
                o.map(|(s, e)| Drain {
                    starts: ts(s),
                    ends: ts(e),
                })
            });
            assert_eq!(
                &schedule(*drain_at, *grace),
                &want,
                "{drain_at:?} {grace:?}"
            );
        }
    }

    #[test]
    fn states_and_when_they_change() {
        let d = Drain {
            starts: ts("2026-01-02T03:00:00Z"),
            ends: ts("2026-01-02T04:00:00Z"),
        };
        let table = [
            (None, "2026-01-02T03:30:00Z", DrainState::Selling, None),
            (
                Some(d),
                "2026-01-02T02:59:00Z",
                DrainState::Scheduled(d),
                Some(60),
            ),
            (
                Some(d),
                "2026-01-02T03:00:00Z",
                DrainState::Draining(d),
                Some(3600),
            ),
            (
                Some(d),
                "2026-01-02T03:59:30Z",
                DrainState::Draining(d),
                Some(30),
            ),
            (
                Some(d),
                "2026-01-02T04:00:00Z",
                DrainState::Drained(d),
                None,
            ),
            (
                Some(d),
                "2027-01-01T00:00:00Z",
                DrainState::Drained(d),
                None,
            ),
        ];
        for (drain, now, want, next) in table {
            let got = state(drain, ts(now));
            assert_eq!(got, want, "{now}");
            assert_eq!(
                got.next_change(ts(now)),
                next.map(Duration::from_secs),
                "{now}"
            );
            assert_eq!(
                got.route_end(),
                matches!(want, DrainState::Draining(_) | DrainState::Drained(_)).then_some(d.ends),
                "{now}"
            );
            assert_eq!(got.is_drained(), matches!(want, DrainState::Drained(_)));
        }
        // A drain with no grace goes from scheduled straight to drained.
        let now_ = Drain {
            starts: d.starts,
            ends: d.starts,
        };
        assert_eq!(
            state(Some(now_), d.starts),
            DrainState::Drained(now_),
            "zero grace"
        );
    }
}
