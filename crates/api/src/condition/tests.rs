use super::*;

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-01T00:05:00Z";

fn cond(type_: &str, status: ConditionStatus, reason: &str) -> Condition {
    Condition::new(type_, status, reason, "")
}

fn all_true() -> Vec<Condition> {
    READY_REQUIRES
        .iter()
        .map(|t| cond(t, ConditionStatus::True, "Ok"))
        .collect()
}

#[test]
fn set_condition_inserts_with_timestamp() {
    let mut cs = vec![];
    assert!(set_condition(
        &mut cs,
        cond("A", ConditionStatus::True, "R"),
        T0
    ));
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].last_transition_time.as_deref(), Some(T0));
}

#[test]
fn set_condition_keeps_time_when_status_unchanged() {
    let mut cs = vec![];
    set_condition(&mut cs, cond("A", ConditionStatus::False, "R1"), T0);
    // Same status, new reason: changed, but the transition time stays.
    assert!(set_condition(
        &mut cs,
        cond("A", ConditionStatus::False, "R2"),
        T1
    ));
    assert_eq!(cs[0].reason, "R2");
    assert_eq!(cs[0].last_transition_time.as_deref(), Some(T0));
    // Identical: not changed, time still kept.
    assert!(!set_condition(
        &mut cs,
        cond("A", ConditionStatus::False, "R2"),
        T1
    ));
    assert_eq!(cs[0].last_transition_time.as_deref(), Some(T0));
}

#[test]
fn set_condition_moves_time_on_flip() {
    // The Go controller's C3 case: an existing `Ready False` becomes one `Ready True`.
    let mut cs = vec![cond(
        types::READY,
        ConditionStatus::False,
        reasons::RECONCILING,
    )];
    cs[0].last_transition_time = Some(T0.into());
    let ready = cond(types::READY, ConditionStatus::True, reasons::RECONCILED);
    assert!(set_condition(&mut cs, ready, T1));
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].status, ConditionStatus::True);
    assert_eq!(cs[0].reason, reasons::RECONCILED);
    assert_eq!(cs[0].last_transition_time.as_deref(), Some(T1));
}

#[test]
fn set_condition_fills_missing_time_without_reporting_change() {
    let mut cs = vec![cond("A", ConditionStatus::True, "R")];
    assert!(!set_condition(
        &mut cs,
        cond("A", ConditionStatus::True, "R"),
        T1
    ));
    assert_eq!(cs[0].last_transition_time.as_deref(), Some(T1));
}

#[test]
fn same_ignoring_time_table() {
    let mut a = all_true();
    let mut b = all_true();
    b.reverse();
    for (i, c) in a.iter_mut().enumerate() {
        c.last_transition_time = Some(format!("2026-01-0{}T00:00:00Z", i + 1));
    }
    assert!(
        same_ignoring_time(&a, &b),
        "order and timestamps do not matter"
    );
    b[0].message = "different".into();
    assert!(!same_ignoring_time(&a, &b), "a message matters");
    b.pop();
    assert!(!same_ignoring_time(&a, &b), "a missing condition matters");
    assert!(same_ignoring_time(&[], &[]));
}

#[test]
fn ready_rule_table() {
    let registered_failed = {
        let mut cs = all_true();
        cs.push(cond(
            types::REGISTERED,
            ConditionStatus::False,
            reasons::REGISTRATION_FAILED,
        ));
        cs
    };
    let gate_pending = {
        let mut cs = all_true();
        cs[1] = cond(
            types::PAYMENT_GATE_READY,
            ConditionStatus::False,
            reasons::ADMISSION_PENDING,
        );
        cs
    };
    type Case = (&'static str, Option<i64>, Option<i64>, Vec<Condition>, bool);
    let cases: Vec<Case> = vec![
        ("all true, observed", Some(3), Some(3), all_true(), true),
        ("stale generation", Some(4), Some(3), all_true(), false),
        ("never observed", Some(1), None, all_true(), false),
        ("no generation", None, None, all_true(), false),
        ("no conditions", Some(1), Some(1), vec![], false),
        (
            "registration failure never blocks",
            Some(1),
            Some(1),
            registered_failed,
            true,
        ),
        ("gate pending", Some(1), Some(1), gate_pending, false),
    ];
    for (name, generation, observed, cs, want) in cases {
        assert_eq!(is_ready(generation, observed, &cs), want, "{name}");
        let ready = ready_condition(generation, observed, &cs);
        assert_eq!(ready.is_true(), want, "{name}");
    }
}

#[test]
fn ready_message_names_the_blocking_condition() {
    let mut cs = all_true();
    cs[2] = cond(
        types::ROUTE_PUBLISHED,
        ConditionStatus::False,
        reasons::PATH_CONFLICT,
    );
    let ready = ready_condition(Some(1), Some(1), &cs);
    assert_eq!(ready.reason, reasons::RECONCILING);
    assert_eq!(ready.message, "Waiting for RoutePublished: PathConflict");
    let ready = ready_condition(Some(1), Some(1), &[]);
    assert_eq!(ready.message, "Waiting for UpstreamHealthy");
}

#[test]
fn phase_rule_table() {
    let invalid = vec![cond(
        types::READY,
        ConditionStatus::False,
        reasons::INVALID_SPEC,
    )];
    let half = vec![cond(
        types::UPSTREAM_HEALTHY,
        ConditionStatus::True,
        reasons::HEALTH_CHECK_PASSED,
    )];
    type Case = (
        &'static str,
        bool,
        Option<i64>,
        Option<i64>,
        Vec<Condition>,
        Phase,
    );
    let cases: Vec<Case> = vec![
        (
            "deleting wins",
            true,
            Some(1),
            Some(1),
            all_true(),
            Phase::Deleting,
        ),
        (
            "invalid spec",
            false,
            Some(2),
            Some(2),
            invalid.clone(),
            Phase::Failed,
        ),
        (
            "invalid even if stale",
            false,
            Some(3),
            Some(2),
            invalid,
            Phase::Failed,
        ),
        ("new object", false, Some(1), None, vec![], Phase::Pending),
        (
            "spec changed",
            false,
            Some(2),
            Some(1),
            all_true(),
            Phase::Pending,
        ),
        ("ready", false, Some(2), Some(2), all_true(), Phase::Ready),
        (
            "partly there",
            false,
            Some(2),
            Some(2),
            half.clone(),
            Phase::Reconciling,
        ),
        (
            "drained",
            false,
            Some(2),
            Some(2),
            [
                half.clone(),
                vec![cond(
                    types::DRAINED,
                    ConditionStatus::True,
                    reasons::DRAINED,
                )],
            ]
            .concat(),
            Phase::Drained,
        ),
        (
            "draining still serves",
            false,
            Some(2),
            Some(2),
            [
                all_true(),
                vec![cond(
                    types::DRAINED,
                    ConditionStatus::False,
                    reasons::DRAINING,
                )],
            ]
            .concat(),
            Phase::Ready,
        ),
        (
            "drained but the spec changed",
            false,
            Some(3),
            Some(2),
            vec![cond(
                types::DRAINED,
                ConditionStatus::True,
                reasons::DRAINED,
            )],
            Phase::Pending,
        ),
    ];
    for (name, deleting, generation, observed, cs, want) in cases {
        assert_eq!(
            compute_phase(deleting, generation, observed, &cs),
            want,
            "{name}"
        );
    }
}

#[test]
fn condition_status_serializes_as_kubernetes_spells_it() {
    let c = cond("Ready", ConditionStatus::Unknown, "");
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "Ready", "status": "Unknown"})
    );
    assert_eq!(ConditionStatus::from_bool(true).as_str(), "True");
    assert_eq!(Phase::Reconciling.as_str(), "Reconciling");
}
