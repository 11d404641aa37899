//! Table tests of conditions, the fail-closed rule, registration and quiet status writes.

use obol_api::condition::{ConditionStatus, reasons, types};
use obol_api::gateway::HttpRoute;
use obol_api::{PaymentRoute, RegistrationRequest};
use serde_json::json;

use super::super::status::*;
use super::settings;

pub(super) fn mk_pr(generation: i64, admitted: Option<(bool, i64)>) -> PaymentRoute {
    let status = admitted.map(|(a, g)| json!({"admitted": a, "lastAdmittedGeneration": g}));
    serde_json::from_value(json!({
        "apiVersion": "obol.org/v1alpha1", "kind": "PaymentRoute",
        "metadata": {"name": "x402-demo", "namespace": "llm", "generation": generation},
        "spec": {"pattern": "/services/demo/*", "price": "1000", "payTo": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "network": "eip155:84532"},
        "status": status,
    }))
    .unwrap()
}

pub(super) fn mk_refused_pr() -> PaymentRoute {
    let mut pr = mk_pr(2, Some((true, 1)));
    pr.status.as_mut().unwrap().conditions = vec![obol_api::Condition {
        observed_generation: Some(2),
        ..obol_api::Condition::new(
            types::ADMITTED,
            ConditionStatus::False,
            "BadNetwork",
            "unsupported chain",
        )
    }];
    pr
}

pub(super) fn mk_route(accepted: bool) -> HttpRoute {
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "so-demo", "namespace": "llm", "generation": 1},
        "spec": {},
        "status": {"parents": [{
            "parentRef": {"name": "traefik-gateway", "namespace": "traefik"},
            "controllerName": "test",
            "conditions": [{"type": "Accepted", "status": if accepted {"True"} else {"False"}}]
        }]}
    }))
    .unwrap()
}

pub(super) fn mk_rr(phase: Option<&str>) -> RegistrationRequest {
    serde_json::from_value(json!({
        "apiVersion": "obol.org/v1alpha1", "kind": "RegistrationRequest",
        "metadata": {"name": "so-demo-registration", "namespace": "llm"},
        "spec": {"name": "demo", "endpoint": "https://example.com/services/demo", "chain": "eip155:84532"},
        "status": phase.map(|p| json!({"phase": p, "agentId": "42", "txHash": "0xtx", "errorMessage": "no gas"})),
    }))
    .unwrap()
}

#[test]
fn fail_closed_route_rule() {
    use RouteAction::*;
    let admitted = mk_pr(1, Some((true, 1)));
    let stale = mk_pr(2, Some((true, 1)));
    let never = mk_pr(1, None);
    let rejected = mk_pr(1, Some((false, 1)));
    let refused = mk_refused_pr();
    let cases = [
        (Some(&admitted), true, false, Apply),
        (Some(&admitted), false, false, Withdraw(Withheld::Upstream)),
        (
            Some(&admitted),
            true,
            true,
            Withdraw(Withheld::PathConflict),
        ),
        (Some(&stale), true, false, Hold),
        (Some(&refused), true, false, Withdraw(Withheld::PaymentGate)),
        (Some(&never), true, false, Withdraw(Withheld::PaymentGate)),
        (
            Some(&rejected),
            true,
            false,
            Withdraw(Withheld::PaymentGate),
        ),
        (None, true, false, Withdraw(Withheld::PaymentGate)),
    ];
    for (i, (pr, healthy, conflict, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            route_action(pr, healthy, conflict, false, false),
            want,
            "case {i}"
        );
    }
    // Paused: withdrawn whatever the gate says; a conflict still names the conflict.
    assert_eq!(
        route_action(Some(&admitted), true, false, true, false),
        Withdraw(Withheld::Paused)
    );
    assert_eq!(
        route_action(Some(&admitted), true, true, true, true),
        Withdraw(Withheld::PathConflict)
    );
}

pub(super) struct Case {
    pub probe: Probe,
    pub pr: Option<PaymentRoute>,
    pub route: Option<HttpRoute>,
    pub conflict: bool,
    pub failures: Vec<ApplyFailure>,
    pub paused: bool,
}

pub(super) fn gate(case: &Case) -> Vec<obol_api::Condition> {
    let gw = settings().gateway;
    let action = route_action(
        case.pr.as_ref(),
        case.probe.is_healthy(),
        case.conflict,
        case.paused,
        false,
    );
    let o = Observed {
        path: "/services/demo",
        probe: &case.probe,
        conflict_with: case.conflict.then_some("llm/older"),
        middleware_present: true,
        payment_route: case.pr.as_ref(),
        route_action: action,
        http_route: case.route.as_ref(),
        gateway: &gw,
        failures: &case.failures,
    };
    gate_conditions(&o, "/health")
}

fn reasons_of(conds: &[obol_api::Condition]) -> Vec<(String, ConditionStatus)> {
    conds.iter().map(|c| (c.reason.clone(), c.status)).collect()
}

#[test]
fn per_condition_reasons() {
    use ConditionStatus::{False, True};
    let healthy = Probe::Healthy { code: 200 };
    let cases = [
        (
            Case {
                probe: healthy.clone(),
                pr: Some(mk_pr(1, Some((true, 1)))),
                route: Some(mk_route(true)),
                conflict: false,
                failures: vec![],
                paused: false,
            },
            [
                (reasons::HEALTH_CHECK_PASSED, True),
                (reasons::PAYMENT_ROUTE_ADMITTED, True),
                (reasons::HTTP_ROUTE_ACCEPTED, True),
            ],
        ),
        (
            Case {
                probe: healthy.clone(),
                pr: Some(mk_pr(1, Some((true, 1)))),
                route: Some(mk_route(false)),
                conflict: false,
                failures: vec![],
                paused: false,
            },
            [
                (reasons::HEALTH_CHECK_PASSED, True),
                (reasons::PAYMENT_ROUTE_ADMITTED, True),
                (reasons::HTTP_ROUTE_NOT_ACCEPTED, False),
            ],
        ),
        (
            Case {
                probe: healthy.clone(),
                pr: Some(mk_pr(1, None)),
                route: None,
                conflict: false,
                failures: vec![],
                paused: false,
            },
            [
                (reasons::HEALTH_CHECK_PASSED, True),
                (reasons::ADMISSION_PENDING, False),
                (reasons::WAITING_FOR_PAYMENT_GATE, False),
            ],
        ),
        (
            Case {
                probe: Probe::Unhealthy {
                    message: "HTTP 503 from upstream".into(),
                },
                pr: Some(mk_pr(1, Some((true, 1)))),
                route: None,
                conflict: false,
                failures: vec![],
                paused: false,
            },
            [
                (reasons::UNHEALTHY, False),
                (reasons::PAYMENT_ROUTE_ADMITTED, True),
                (reasons::WAITING_FOR_UPSTREAM, False),
            ],
        ),
        (
            Case {
                probe: Probe::MissingService,
                pr: None,
                route: None,
                conflict: false,
                failures: vec![],
                paused: false,
            },
            [
                (reasons::MISSING_SERVICE, False),
                (reasons::ADMISSION_PENDING, False),
                (reasons::WAITING_FOR_PAYMENT_GATE, False),
            ],
        ),
        (
            Case {
                probe: Probe::NoEndpoints,
                pr: Some(mk_refused_pr()),
                route: None,
                conflict: false,
                failures: vec![],
                paused: false,
            },
            [
                (reasons::NO_ENDPOINTS, False),
                (reasons::NOT_ADMITTED, False),
                (reasons::WAITING_FOR_PAYMENT_GATE, False),
            ],
        ),
        (
            Case {
                probe: healthy.clone(),
                pr: None,
                route: None,
                conflict: true,
                failures: vec![],
                paused: false,
            },
            [
                (reasons::HEALTH_CHECK_PASSED, True),
                (reasons::PATH_CONFLICT, False),
                (reasons::PATH_CONFLICT, False),
            ],
        ),
        (
            Case {
                probe: healthy.clone(),
                pr: Some(mk_pr(1, Some((true, 1)))),
                route: None,
                conflict: false,
                failures: vec![ApplyFailure {
                    condition: types::ROUTE_PUBLISHED,
                    message: "boom".into(),
                }],
                paused: false,
            },
            [
                (reasons::HEALTH_CHECK_PASSED, True),
                (reasons::PAYMENT_ROUTE_ADMITTED, True),
                (reasons::APPLY_FAILED, False),
            ],
        ),
    ];
    for (i, (case, want)) in cases.iter().enumerate() {
        let got = reasons_of(&gate(case));
        let want: Vec<_> = want.iter().map(|(r, s)| ((*r).to_owned(), *s)).collect();
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn paused_offer_reasons() {
    let case = Case {
        probe: Probe::Healthy { code: 200 },
        pr: Some(mk_pr(1, Some((true, 1)))),
        route: None,
        conflict: false,
        failures: vec![],
        paused: true,
    };
    let got = reasons_of(&gate(&case));
    assert_eq!(got[1], (reasons::PAUSED.to_owned(), ConditionStatus::False));
    assert_eq!(got[2], (reasons::PAUSED.to_owned(), ConditionStatus::False));
}
