//! The decisions the reconcile shell takes between its steps: health remembered, the stale
//! Middleware, the readiness mark, condition time, deletion, and the one precedence of path
//! conflict, drain and pause.

use std::time::Duration;

use jiff::Timestamp;
use obol_api::condition::{ConditionStatus, reasons, types};

use super::super::deletion::{Verdict, verdict};
use super::super::status::*;
use super::status_tests::{Case, gate, mk_pr, mk_route};

fn status_with(upstream_true: bool) -> obol_api::ServiceOfferStatus {
    obol_api::ServiceOfferStatus {
        conditions: vec![obol_api::Condition::new(
            types::UPSTREAM_HEALTHY,
            ConditionStatus::from_bool(upstream_true),
            reasons::HEALTH_CHECK_PASSED,
            "",
        )],
        ..Default::default()
    }
}

#[test]
fn healthy_once_in_this_process_or_by_the_last_status() {
    let was_healthy = status_with(true);
    let was_not = status_with(false);
    let cases = [
        (false, None, false),
        (true, None, true),
        (false, Some(&was_not), false),
        (false, Some(&was_healthy), true),
        (true, Some(&was_not), true),
    ];
    for (seen, old, want) in cases {
        assert_eq!(healthy_once(seen, old), want, "seen {seen}, old {old:?}");
    }
}

#[test]
fn gate_children_go_only_when_no_route_can_reach_through_them() {
    use RouteAction::{Apply, Hold, Withdraw};
    let none = GateWithdrawal::default();
    let mw = GateWithdrawal {
        payment_route: false,
        middleware: true,
    };
    let all = GateWithdrawal {
        payment_route: true,
        middleware: true,
    };
    let cases = [
        // ForwardAuth mode wants its Middleware: never deleted here.
        (true, Apply, true, none),
        (true, Withdraw(Withheld::Paused), false, none),
        (true, Withdraw(Withheld::PaymentGate), false, none),
        // Mode proxy: after the new route is applied, or with the route withdrawn.
        (false, Apply, true, mw),
        (false, Withdraw(Withheld::PaymentGate), false, mw),
        (false, Withdraw(Withheld::Drained), false, mw),
        // The apply failed, or the old route is held: it may still name the Middleware.
        (false, Apply, false, none),
        (false, Hold, true, none),
        (false, Hold, false, none),
        // Another offer owns the path: the whole gate goes, in both modes.
        (true, Withdraw(Withheld::PathConflict), false, all),
        (false, Withdraw(Withheld::PathConflict), false, all),
    ];
    for (wanted, action, applied, want) in cases {
        assert_eq!(
            gate_withdrawal(wanted, action, applied),
            want,
            "wanted {wanted}, {action:?}, applied {applied}"
        );
    }
}

#[test]
fn the_readiness_mark_changes_only_on_a_flip_of_an_existing_route() {
    let cases = [
        (false, false, true, None),
        (true, true, true, None),
        (false, true, true, Some(true)),
        (true, false, true, Some(false)),
        (false, true, false, None),
        (true, false, false, None),
    ];
    for (was, ready, present, want) in cases {
        assert_eq!(ready_mark_change(was, ready, present), want);
    }
}

#[test]
fn condition_time_drops_the_fraction() {
    let t: Timestamp = "2026-12-03T19:45:07.912Z".parse().unwrap();
    assert_eq!(condition_time(t), "2026-12-03T19:45:07Z");
}

#[test]
fn deletion_releases_waits_or_gives_up() {
    let at = |s: &str| -> Timestamp { s.parse().unwrap() };
    let since = Some(at("2026-12-03T10:00:00Z"));
    let minute = Duration::from_secs(60);
    let cases = [
        // Gone: released at once, whatever the time.
        (true, since, "2026-12-03T10:00:00Z", Verdict::Release),
        (true, None, "2026-12-03T11:00:00Z", Verdict::Release),
        // Still there, inside the deadline: wait.
        (false, since, "2026-12-03T10:00:59Z", Verdict::Wait),
        // At and past the deadline: give up waiting.
        (false, since, "2026-12-03T10:01:00Z", Verdict::GiveUp),
        (false, since, "2026-12-03T12:00:00Z", Verdict::GiveUp),
        // No deletion time, or one in the future (clock skew): counts as just now.
        (false, None, "2026-12-03T12:00:00Z", Verdict::Wait),
        (false, since, "2026-12-03T09:00:00Z", Verdict::Wait),
    ];
    for (gone, since, now, want) in cases {
        assert_eq!(
            verdict(gone, since, at(now), minute),
            want,
            "{since:?} {now}"
        );
    }
}

/// A path conflict outranks a drain, which outranks a pause, in both conditions that say why
/// the route is withheld: the precedence lives in `route_action` alone.
#[test]
fn one_precedence_for_conflict_drain_and_pause() {
    let admitted = mk_pr(1, Some((true, 1)));
    let cases = [
        ((true, true, true), reasons::PATH_CONFLICT),
        ((true, false, false), reasons::PATH_CONFLICT),
        ((false, true, true), reasons::DRAINED),
        ((false, false, true), reasons::PAUSED),
    ];
    for ((conflict, drained, paused), want) in cases {
        let action = route_action(Some(&admitted), true, conflict, paused, drained);
        let gw = super::settings().gateway;
        let probe = Probe::Healthy { code: 200 };
        let route = mk_route(true);
        let conditions = gate_conditions(
            &Observed {
                path: "/services/demo",
                probe: &probe,
                conflict_with: conflict.then_some("llm/older"),
                middleware_present: true,
                payment_route: Some(&admitted),
                route_action: action,
                http_route: Some(&route),
                gateway: &gw,
                failures: &[],
            },
            "/health",
        );
        for t in [types::PAYMENT_GATE_READY, types::ROUTE_PUBLISHED] {
            let c = obol_api::condition::find(&conditions, t).unwrap();
            assert_eq!(
                (c.status, c.reason.as_str()),
                (ConditionStatus::False, want),
                "{t} for conflict {conflict}, drained {drained}, paused {paused}"
            );
        }
    }
    // The conflict message names the owner.
    let conds = gate(&Case {
        probe: Probe::Healthy { code: 200 },
        pr: Some(admitted.clone()),
        route: None,
        conflict: true,
        failures: vec![],
        paused: true,
    });
    let published = obol_api::condition::find(&conds, types::ROUTE_PUBLISHED).unwrap();
    assert_eq!(
        published.message,
        "Path /services/demo is owned by the older offer llm/older"
    );
}
