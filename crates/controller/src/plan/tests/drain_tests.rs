//! Draining: the route rule, the conditions and phase, the PaymentRoute's drain end, the
//! readiness mark and when the offer is looked at again.

use std::time::Duration;

use jiff::Timestamp;
use obol_api::Phase;
use obol_api::condition::{ConditionStatus, find, reasons, types};
use obol_api::drain::{self, DrainState};
use serde_json::json;

use super::super::status::*;
use super::status_tests::{mk_pr, mk_route};
use super::{mk_offer, settings};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn a_drained_offer_withdraws_its_route_whatever_else_holds() {
    use RouteAction::*;
    let admitted = mk_pr(1, Some((true, 1)));
    let stale = mk_pr(2, Some((true, 1)));
    // (payment route, healthy once, conflict, paused, drained) → action
    let cases = [
        (Some(&admitted), true, false, false, false, Apply),
        (
            Some(&admitted),
            true,
            false,
            false,
            true,
            Withdraw(Withheld::Drained),
        ),
        (
            Some(&stale),
            true,
            false,
            false,
            true,
            Withdraw(Withheld::Drained),
        ),
        (None, false, false, false, true, Withdraw(Withheld::Drained)),
        (
            Some(&admitted),
            true,
            false,
            true,
            true,
            Withdraw(Withheld::Drained),
        ),
        (
            Some(&admitted),
            true,
            true,
            false,
            true,
            Withdraw(Withheld::PathConflict),
        ),
    ];
    for (i, (pr, healthy, conflict, paused, drained, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            route_action(pr, healthy, conflict, paused, drained),
            want,
            "case {i}"
        );
    }
}

#[test]
fn drain_conditions_and_phase() {
    let d = drain::Drain {
        starts: ts("2026-01-02T03:00:00Z"),
        ends: ts("2026-01-02T04:00:00Z"),
    };
    let gw = settings().gateway;
    let probe = Probe::Healthy { code: 200 };
    let pr = mk_pr(1, Some((true, 1)));
    let route = mk_route(true);
    // (state, drained condition, phase)
    let cases = [
        (DrainState::Selling, None, Phase::Ready),
        (
            DrainState::Scheduled(d),
            Some((ConditionStatus::False, reasons::DRAIN_SCHEDULED)),
            Phase::Ready,
        ),
        (
            DrainState::Draining(d),
            Some((ConditionStatus::False, reasons::DRAINING)),
            Phase::Ready,
        ),
        (
            DrainState::Drained(d),
            Some((ConditionStatus::True, reasons::DRAINED)),
            Phase::Drained,
        ),
    ];
    for (state, want, phase) in cases {
        let action = route_action(Some(&pr), true, false, false, state.is_drained());
        let o = Observed {
            path: "/services/demo",
            probe: &probe,
            conflict_with: None,
            middleware_present: true,
            payment_route: Some(&pr),
            route_action: action,
            http_route: (!state.is_drained()).then_some(&route),
            gateway: &gw,
            failures: &[],
        };
        let mut conditions = gate_conditions(&o, "/health");
        if state.is_drained() {
            for t in [types::PAYMENT_GATE_READY, types::ROUTE_PUBLISHED] {
                let c = find(&conditions, t).unwrap();
                assert_eq!(
                    (c.status, c.reason.as_str()),
                    (ConditionStatus::False, reasons::DRAINED),
                    "{t}"
                );
            }
        }
        conditions.extend(drained_condition(state));
        let status = next_status(
            None,
            Some(1),
            conditions,
            "/services/demo",
            None,
            "2026-01-02T05:00:00Z",
        );
        let got = find(&status.conditions, types::DRAINED).map(|c| (c.status, c.reason.as_str()));
        assert_eq!(got, want, "{state:?}");
        assert_eq!(status.phase, Some(phase), "{state:?}");
        let ready = find(&status.conditions, types::READY).unwrap();
        assert_eq!(ready.is_true(), !state.is_drained(), "{state:?}");
    }
    let message = drained_condition(DrainState::Draining(d)).unwrap().message;
    assert!(message.contains("until 2026-01-02T04:00:00Z"), "{message}");
}

#[test]
fn the_payment_route_carries_the_end_from_the_drain_start_on() {
    let offer = mk_offer(
        "demo",
        json!({"drainAt": "2026-01-02T03:00:00Z", "drainGracePeriod": "1h"}),
    );
    let desired = super::super::desired(&offer, &settings()).unwrap();
    let d = desired.drain.unwrap();
    assert_eq!(d.ends, ts("2026-01-02T04:00:00Z"));
    for (now, want) in [
        ("2026-01-02T02:00:00Z", None),
        ("2026-01-02T03:00:00Z", Some("2026-01-02T04:00:00Z")),
        ("2026-01-02T05:00:00Z", Some("2026-01-02T04:00:00Z")),
    ] {
        let mut desired = desired.clone();
        let state = drain::state(desired.drain, ts(now));
        carry_drain(&mut desired, state);
        assert_eq!(
            desired.payment_route.spec.drain_ends_at.as_deref(),
            want,
            "{now}"
        );
    }
    let plain = super::super::desired(&mk_offer("demo", json!({})), &settings()).unwrap();
    assert_eq!(plain.drain, None);
}

#[test]
fn the_readiness_mark() {
    let mut pr = mk_pr(1, None);
    for ready in [true, false] {
        mark_ready(&mut pr, ready);
        let annotations = pr.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            annotations.get(obol_api::labels::OFFER_READY_ANNOTATION),
            Some(&ready.to_string())
        );
    }
}

#[test]
fn requeued_just_past_the_next_drain_boundary() {
    let d = drain::Drain {
        starts: ts("2026-01-02T03:00:00Z"),
        ends: ts("2026-01-02T03:00:10Z"),
    };
    let interval = Duration::from_secs(30);
    let slack = Duration::from_millis(20);
    let cases = [
        (None, "2026-01-02T03:00:00Z", interval),
        (
            Some(d),
            "2026-01-02T02:59:55Z",
            Duration::from_secs(5) + slack,
        ),
        (Some(d), "2026-01-02T02:00:00Z", interval),
        (
            Some(d),
            "2026-01-02T03:00:04Z",
            Duration::from_secs(6) + slack,
        ),
        (Some(d), "2026-01-02T03:00:10Z", interval),
    ];
    for (drain, now, want) in cases {
        let now = ts(now);
        assert_eq!(
            requeue_after(interval, drain::state(drain, now), now),
            want,
            "{now}"
        );
    }
}
