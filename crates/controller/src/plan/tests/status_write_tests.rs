//! Registration, quiet status writes, timestamps and invalid specs.

use obol_api::condition::{ConditionStatus, find, reasons, types};
use obol_api::{Phase, RegistrationRequest};

use super::super::status::*;
use super::status_tests::{Case, gate, mk_pr, mk_route, mk_rr};

#[test]
fn registration_due_only_after_the_first_three() {
    let ok = gate(&Case {
        probe: Probe::Healthy { code: 204 },
        pr: Some(mk_pr(1, Some((true, 1)))),
        route: Some(mk_route(true)),
        conflict: false,
        failures: vec![],
        paused: false,
    });
    let not_ok = gate(&Case {
        probe: Probe::Healthy { code: 204 },
        pr: Some(mk_pr(1, Some((true, 1)))),
        route: Some(mk_route(false)),
        conflict: false,
        failures: vec![],
        paused: false,
    });
    assert!(registration_due(true, &ok));
    assert!(!registration_due(false, &ok));
    assert!(!registration_due(true, &not_ok));
}

#[test]
fn registered_from_the_request_phase() {
    use ConditionStatus::{False, True};
    let rrs = [
        ("Confirmed", True, reasons::ON_CHAIN_CONFIRMED),
        ("OffChainOnly", True, reasons::OFF_CHAIN_ONLY),
        ("Failed", False, reasons::REGISTRATION_FAILED),
        ("Pending", False, reasons::PENDING),
        ("Submitted", False, reasons::PENDING),
    ];
    let observed = |enabled, rr: Option<&RegistrationRequest>| -> obol_api::Condition {
        registered_condition(&RegistrationSeen {
            enabled,
            due: true,
            live: rr,
            failure: None,
        })
    };
    for (phase, status, reason) in rrs {
        let rr = mk_rr(Some(phase));
        let c = observed(true, Some(&rr));
        assert_eq!((c.status, c.reason.as_str()), (status, reason), "{phase}");
    }
    assert_eq!(
        observed(true, Some(&mk_rr(Some("Confirmed")))).message,
        "ERC-8004 agentId=42, tx=0xtx"
    );
    assert_eq!(
        observed(true, Some(&mk_rr(Some("Failed")))).message,
        "no gas"
    );
    assert_eq!(observed(false, None).reason, reasons::DISABLED);
    assert_eq!(observed(false, None).status, True);
    assert_eq!(observed(true, None).reason, reasons::PENDING);
    // Not due yet: it waits for the route; a failed apply says so, whatever the last phase.
    let not_due = RegistrationSeen {
        enabled: true,
        due: false,
        live: None,
        failure: None,
    };
    assert_eq!(
        registered_condition(&not_due).reason,
        reasons::WAITING_FOR_ROUTE
    );
    let failure = ApplyFailure {
        condition: types::REGISTERED,
        message: "applying RegistrationRequest: forbidden".into(),
    };
    let confirmed = mk_rr(Some("Confirmed"));
    let failed = registered_condition(&RegistrationSeen {
        enabled: true,
        due: true,
        live: Some(&confirmed),
        failure: Some(&failure),
    });
    assert_eq!(
        (
            failed.status,
            failed.reason.as_str(),
            failed.message.as_str()
        ),
        (
            ConditionStatus::False,
            reasons::APPLY_FAILED,
            "applying RegistrationRequest: forbidden"
        )
    );
}

#[test]
fn failing_registration_leaves_ready_and_timestamps_move_only_on_flips() {
    let ok = gate(&Case {
        probe: Probe::Healthy { code: 200 },
        pr: Some(mk_pr(1, Some((true, 1)))),
        route: Some(mk_route(true)),
        conflict: false,
        failures: vec![],
        paused: false,
    });
    let rr = mk_rr(Some("Failed"));
    let mut conds = ok.clone();
    conds.push(obol_api::Condition::new(
        types::REGISTERED,
        ConditionStatus::False,
        reasons::REGISTRATION_FAILED,
        "no gas",
    ));
    let s1 = next_status(
        None,
        Some(3),
        conds.clone(),
        "/services/demo",
        Some(&rr),
        "2026-01-01T00:00:00Z",
    );
    assert_eq!(s1.phase, Some(Phase::Ready));
    assert_eq!(s1.observed_generation, Some(3));
    assert_eq!(s1.agent_id.as_deref(), Some("42"));
    assert_eq!(s1.endpoint.as_deref(), Some("/services/demo"));
    assert!(find(&s1.conditions, types::READY).unwrap().is_true());

    // Same observations later: nothing to write, timestamps kept.
    let s2 = next_status(
        Some(&s1),
        Some(3),
        conds.clone(),
        "/services/demo",
        Some(&rr),
        "2026-01-01T01:00:00Z",
    );
    assert!(!status_changed(Some(&s1), &s2));
    assert_eq!(s1, s2);

    // The upstream goes down: UpstreamHealthy and Ready flip (new time), the rest keep theirs.
    conds[0] = obol_api::Condition::new(
        types::UPSTREAM_HEALTHY,
        ConditionStatus::False,
        reasons::UNHEALTHY,
        "HTTP 500",
    );
    let s3 = next_status(
        Some(&s2),
        Some(3),
        conds,
        "/services/demo",
        Some(&rr),
        "2026-01-01T02:00:00Z",
    );
    assert!(status_changed(Some(&s2), &s3));
    assert_eq!(s3.phase, Some(Phase::Reconciling));
    let time = |s: &obol_api::ServiceOfferStatus, t: &str| {
        find(&s.conditions, t)
            .unwrap()
            .last_transition_time
            .clone()
            .unwrap()
    };
    assert_eq!(time(&s3, types::UPSTREAM_HEALTHY), "2026-01-01T02:00:00Z");
    assert_eq!(time(&s3, types::READY), "2026-01-01T02:00:00Z");
    assert_eq!(time(&s3, types::PAYMENT_GATE_READY), "2026-01-01T00:00:00Z");
    let flipped: Vec<_> = transitions(Some(&s2), &s3)
        .iter()
        .map(|(c, _)| c.type_.clone())
        .collect();
    assert_eq!(
        flipped,
        vec![types::UPSTREAM_HEALTHY.to_owned(), types::READY.to_owned()]
    );
}

#[test]
fn invalid_spec_status_is_failed() {
    let s = invalid_status(
        None,
        Some(2),
        "spec.payment.price: price \"abc\" is not a decimal",
        "t0",
    );
    assert_eq!(s.phase, Some(Phase::Failed));
    let ready = find(&s.conditions, types::READY).unwrap();
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, reasons::INVALID_SPEC)
    );
    assert!(ready.message.contains("abc"));
    assert_eq!(s.conditions.len(), 5);
    assert!(!status_changed(
        Some(&s),
        &invalid_status(Some(&s), Some(2), &ready.message, "t1")
    ));
    // A new generation is a change even with the same message.
    assert!(status_changed(
        Some(&s),
        &invalid_status(Some(&s), Some(3), &ready.message, "t1")
    ));
}

#[test]
fn one_event_per_write_warning_only_for_failures() {
    let ok = gate(&Case {
        probe: Probe::Healthy { code: 200 },
        pr: Some(mk_pr(1, Some((true, 1)))),
        route: Some(mk_route(true)),
        conflict: false,
        failures: vec![],
        paused: false,
    });
    let ready = next_status(None, Some(1), ok.clone(), "/p", None, "t0");
    let first = transition_notice(None, &ready).unwrap();
    assert_eq!(
        (first.warning, first.reason.as_str()),
        (false, reasons::RECONCILED)
    );
    assert!(
        first.note.contains("Ready=True (Reconciled)"),
        "{}",
        first.note
    );
    assert_eq!(transition_notice(Some(&ready), &ready), None);

    let mut sick = ok;
    sick[0] = obol_api::Condition::new(
        types::UPSTREAM_HEALTHY,
        ConditionStatus::False,
        reasons::UNHEALTHY,
        "HTTP 503 from upstream",
    );
    let down = next_status(Some(&ready), Some(1), sick, "/p", None, "t1");
    let n = transition_notice(Some(&ready), &down).unwrap();
    assert_eq!((n.warning, n.reason.as_str()), (true, reasons::UNHEALTHY));
    assert!(
        n.note
            .contains("UpstreamHealthy=False (Unhealthy): HTTP 503")
            && n.note.contains("Ready=False"),
        "{}",
        n.note
    );
}
