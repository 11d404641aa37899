//! The status the verifier reports on a PaymentRoute, decided purely: `admitted` and
//! `lastAdmittedGeneration` only after a successful load, `admitted: false` and an `Admitted`
//! condition with the reason otherwise. `None` when nothing would change (no write).

use obol_api::condition::{self, Condition, ConditionStatus, types};
use obol_api::{PaymentRoute, PaymentRouteStatus};

use crate::error::LoadError;

/// `Admitted=True` reason.
pub const LOADED: &str = "Loaded";

/// The status to write after loading `route` (`result`), or `None` when the current status
/// already says so (timestamps ignored).
pub fn desired_status(
    route: &PaymentRoute,
    result: Result<(), &LoadError>,
    now: &str,
) -> Option<PaymentRouteStatus> {
    let current = route.status.clone().unwrap_or_default();
    let generation = route.metadata.generation;
    let mut next = current.clone();
    let mut cond = match result {
        Ok(()) => {
            next.admitted = true;
            next.last_admitted_generation = generation;
            Condition::new(
                types::ADMITTED,
                ConditionStatus::True,
                LOADED,
                "Route loaded by the verifier",
            )
        }
        Err(error) => {
            next.admitted = false;
            Condition::new(
                types::ADMITTED,
                ConditionStatus::False,
                error.reason(),
                error.to_string(),
            )
        }
    };
    cond.observed_generation = generation;
    condition::set_condition(&mut next.conditions, cond, now);
    let same = next.admitted == current.admitted
        && next.last_admitted_generation == current.last_admitted_generation
        && condition::same_ignoring_time(&next.conditions, &current.conditions);
    (!same).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::mk_spec;

    fn route(generation: i64, status: Option<PaymentRouteStatus>) -> PaymentRoute {
        let mut r = PaymentRoute::new("r", mk_spec("/a/*", "1000"));
        r.metadata.namespace = Some("ns".into());
        r.metadata.generation = Some(generation);
        r.status = status;
        r
    }

    #[test]
    fn admitted_once_then_quiet() {
        let first = desired_status(&route(1, None), Ok(()), "t1").unwrap();
        assert!(first.admitted);
        assert_eq!(first.last_admitted_generation, Some(1));
        let c = condition::find(&first.conditions, types::ADMITTED).unwrap();
        assert_eq!(
            (c.status, c.reason.as_str()),
            (ConditionStatus::True, LOADED)
        );
        assert_eq!(c.observed_generation, Some(1));
        // Same generation again: nothing to write, whatever the time.
        assert!(desired_status(&route(1, Some(first.clone())), Ok(()), "t2").is_none());
        // A new generation is admitted again, keeping the transition time.
        let second = desired_status(&route(2, Some(first)), Ok(()), "t3").unwrap();
        assert_eq!(second.last_admitted_generation, Some(2));
        let c = condition::find(&second.conditions, types::ADMITTED).unwrap();
        assert_eq!(c.last_transition_time.as_deref(), Some("t1"));
    }

    #[test]
    fn refused_with_reason_and_never_admitted_on_failure() {
        let error = LoadError::UnknownNetwork {
            network: "invalid-chain".into(),
        };
        let s = desired_status(&route(1, None), Err(&error), "t1").unwrap();
        assert!(!s.admitted);
        assert_eq!(s.last_admitted_generation, None);
        let c = condition::find(&s.conditions, types::ADMITTED).unwrap();
        assert_eq!(c.status, ConditionStatus::False);
        assert_eq!(c.reason, "UnknownNetwork");
        assert!(c.message.contains("unsupported chain"), "{}", c.message);
        assert!(desired_status(&route(1, Some(s.clone())), Err(&error), "t2").is_none());
        // A once-admitted route that breaks is no longer admitted.
        let ok = desired_status(&route(1, None), Ok(()), "t1").unwrap();
        let broken = desired_status(&route(2, Some(ok)), Err(&error), "t2").unwrap();
        assert!(!broken.admitted);
    }
}
