//! The observed conditions: `UpstreamHealthy`, `PaymentGateReady`, `RoutePublished` and
//! `Registered`, each with a stable reason.

use obol_api::condition::{Condition, ConditionStatus, reasons, types};
use obol_api::gateway::HttpRoute;
use obol_api::{PaymentRoute, RegistrationPhase, RegistrationRequest};

use super::GatewayRef;
use super::status::{Probe, RouteAction, Withheld, refusal};

/// A failed apply of one child, as it shows in status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyFailure {
    /// The condition it affects (`PaymentGateReady` for the Middleware and PaymentRoute,
    /// `RoutePublished` for the HTTPRoute, `Registered` for the RegistrationRequest).
    pub condition: &'static str,
    /// The API error.
    pub message: String,
}

/// What one reconcile observed of the upstream, the payment gate and the route, after applying
/// what it could.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The offer's path.
    pub path: &'a str,
    /// The upstream probe.
    pub probe: &'a Probe,
    /// The offer that owns the path, when it is another one (`namespace/name`); it names the
    /// owner in the message, [`Observed::route_action`] decides.
    pub conflict_with: Option<&'a str>,
    /// The Middleware exists (applied or seen).
    pub middleware_present: bool,
    /// The PaymentRoute as last seen.
    pub payment_route: Option<&'a PaymentRoute>,
    /// What was done with the HTTPRoute ([`super::status::route_action`]): the one place
    /// where a path conflict, a drain and a pause take precedence over each other.
    pub route_action: RouteAction,
    /// The HTTPRoute as last seen.
    pub http_route: Option<&'a HttpRoute>,
    /// The Gateway routes attach to.
    pub gateway: &'a GatewayRef,
    /// Applies of the Middleware, PaymentRoute or HTTPRoute that failed this time.
    pub failures: &'a [ApplyFailure],
}

impl Observed<'_> {
    fn failure(&self, condition: &str) -> Option<&ApplyFailure> {
        self.failures.iter().find(|f| f.condition == condition)
    }
}

/// What one reconcile observed of the offer's registration.
#[derive(Clone, Copy, Debug)]
pub struct RegistrationSeen<'a> {
    /// `registration.enabled`.
    pub enabled: bool,
    /// Whether the RegistrationRequest is due ([`super::status::registration_due`]).
    pub due: bool,
    /// The RegistrationRequest as last seen.
    pub live: Option<&'a RegistrationRequest>,
    /// Its apply, when that failed this time.
    pub failure: Option<&'a ApplyFailure>,
}

fn c(type_: &str, ok: bool, reason: &str, message: impl Into<String>) -> Condition {
    Condition::new(type_, ConditionStatus::from_bool(ok), reason, message)
}

/// `UpstreamHealthy`, `PaymentGateReady` and `RoutePublished`.
pub fn gate_conditions(o: &Observed<'_>, health_path: &str) -> Vec<Condition> {
    let upstream = match o.probe {
        Probe::Healthy { code } => c(
            types::UPSTREAM_HEALTHY,
            true,
            reasons::HEALTH_CHECK_PASSED,
            format!("GET {health_path} returned {code}"),
        ),
        Probe::Unhealthy { message } => c(
            types::UPSTREAM_HEALTHY,
            false,
            reasons::UNHEALTHY,
            message.clone(),
        ),
        Probe::MissingService => c(
            types::UPSTREAM_HEALTHY,
            false,
            reasons::MISSING_SERVICE,
            "Upstream Service does not exist",
        ),
        Probe::NoEndpoints => c(
            types::UPSTREAM_HEALTHY,
            false,
            reasons::NO_ENDPOINTS,
            "Upstream Service has no ready endpoint address",
        ),
    };
    // Why the route is withheld on someone's word, in the precedence `route_action` decided.
    let withheld = match o.route_action {
        RouteAction::Withdraw(Withheld::PathConflict) => Some((
            reasons::PATH_CONFLICT,
            format!(
                "Path {} is owned by the older offer {}",
                o.path,
                o.conflict_with.unwrap_or("another offer")
            ),
        )),
        RouteAction::Withdraw(Withheld::Paused) => {
            Some((reasons::PAUSED, "Offer is paused".to_owned()))
        }
        RouteAction::Withdraw(Withheld::Drained) => Some((
            reasons::DRAINED,
            "The offer's drain ended; its route is withdrawn".to_owned(),
        )),
        _ => None,
    };
    let gate = if let Some((reason, message)) = &withheld {
        c(types::PAYMENT_GATE_READY, false, reason, message.clone())
    } else if let Some(f) = o.failure(types::PAYMENT_GATE_READY) {
        c(
            types::PAYMENT_GATE_READY,
            false,
            reasons::APPLY_FAILED,
            f.message.clone(),
        )
    } else {
        payment_gate(o)
    };
    let route = if let Some((reason, message)) = withheld {
        c(types::ROUTE_PUBLISHED, false, reason, message)
    } else if let Some(f) = o.failure(types::ROUTE_PUBLISHED) {
        c(
            types::ROUTE_PUBLISHED,
            false,
            reasons::APPLY_FAILED,
            f.message.clone(),
        )
    } else {
        route_published(o)
    };
    vec![upstream, gate, route]
}

fn payment_gate(o: &Observed<'_>) -> Condition {
    let Some(pr) = o.payment_route.filter(|_| o.middleware_present) else {
        return c(
            types::PAYMENT_GATE_READY,
            false,
            reasons::ADMISSION_PENDING,
            "Waiting for the Middleware and PaymentRoute to exist",
        );
    };
    let name = pr.metadata.name.as_deref().unwrap_or_default();
    let generation = pr.metadata.generation.unwrap_or_default();
    if pr.admitted_at_current_generation() {
        c(
            types::PAYMENT_GATE_READY,
            true,
            reasons::PAYMENT_ROUTE_ADMITTED,
            format!("PaymentRoute {name} admitted by the verifier at generation {generation}"),
        )
    } else if let Some(refusal) = refusal(pr) {
        c(
            types::PAYMENT_GATE_READY,
            false,
            reasons::NOT_ADMITTED,
            format!("Verifier refused PaymentRoute {name}: {}", refusal.message),
        )
    } else {
        c(
            types::PAYMENT_GATE_READY,
            false,
            reasons::ADMISSION_PENDING,
            format!(
                "Waiting for the verifier to admit PaymentRoute {name} at generation {generation}"
            ),
        )
    }
}

fn route_published(o: &Observed<'_>) -> Condition {
    let gw = o.gateway;
    match (o.route_action, o.http_route) {
        (RouteAction::Withdraw(Withheld::Upstream), _) => c(
            types::ROUTE_PUBLISHED,
            false,
            reasons::WAITING_FOR_UPSTREAM,
            "Waiting for the upstream to answer once before publishing the route",
        ),
        (RouteAction::Withdraw(_), _) | (RouteAction::Hold, None) => c(
            types::ROUTE_PUBLISHED,
            false,
            reasons::WAITING_FOR_PAYMENT_GATE,
            "Waiting for the payment gate before publishing the route",
        ),
        (_, Some(route)) if route.accepted_by(&gw.name, &gw.namespace) => c(
            types::ROUTE_PUBLISHED,
            true,
            reasons::HTTP_ROUTE_ACCEPTED,
            format!(
                "HTTPRoute accepted by Gateway {}/{} at {}",
                gw.namespace, gw.name, o.path
            ),
        ),
        _ => c(
            types::ROUTE_PUBLISHED,
            false,
            reasons::HTTP_ROUTE_NOT_ACCEPTED,
            format!(
                "Waiting for Gateway {}/{} to accept the HTTPRoute",
                gw.namespace, gw.name
            ),
        ),
    }
}

/// `RouteTable`, for an offer that declares routes (`None` otherwise): `True` when every path
/// has one most specific route, else `False` naming the routes that tie (the first declared
/// serves). Never blocks `Ready`.
pub fn route_table_condition(
    has_routes: bool,
    ambiguous: &[(String, String)],
) -> Option<Condition> {
    if !has_routes {
        return None;
    }
    Some(match ambiguous {
        [] => c(
            types::ROUTE_TABLE,
            true,
            reasons::ROUTES_DISTINCT,
            "Every path has one most specific route",
        ),
        pairs => {
            let named: Vec<String> = pairs.iter().map(|(a, b)| format!("{a} and {b}")).collect();
            c(
                types::ROUTE_TABLE,
                false,
                reasons::ROUTES_OVERLAP,
                format!(
                    "Routes match some paths equally specifically; the first declared serves them: {}",
                    named.join("; ")
                ),
            )
        }
    })
}

/// `Registered`, from the RegistrationRequest phase (or `Disabled`).
pub fn registered_condition(r: &RegistrationSeen<'_>) -> Condition {
    let t = types::REGISTERED;
    if !r.enabled {
        return c(t, true, reasons::DISABLED, "Registration disabled");
    }
    if let Some(f) = r.failure {
        return c(t, false, reasons::APPLY_FAILED, f.message.clone());
    }
    let Some(rr) = r.live else {
        return if r.due {
            c(
                t,
                false,
                reasons::PENDING,
                "Waiting for the RegistrationRequest",
            )
        } else {
            c(
                t,
                false,
                reasons::WAITING_FOR_ROUTE,
                "Waiting for the upstream, payment gate and route before registration",
            )
        };
    };
    let status = rr.status.clone().unwrap_or_default();
    match status.phase {
        Some(RegistrationPhase::Confirmed) => c(
            t,
            true,
            reasons::ON_CHAIN_CONFIRMED,
            format!(
                "ERC-8004 agentId={}, tx={}",
                status.agent_id.as_deref().unwrap_or("?"),
                status.tx_hash.as_deref().unwrap_or("?")
            ),
        ),
        Some(RegistrationPhase::OffChainOnly) => c(
            t,
            true,
            reasons::OFF_CHAIN_ONLY,
            "Registration document served off chain only",
        ),
        Some(RegistrationPhase::Failed) => c(
            t,
            false,
            reasons::REGISTRATION_FAILED,
            status
                .error_message
                .unwrap_or_else(|| "Registration failed".into()),
        ),
        phase => c(
            t,
            false,
            reasons::PENDING,
            format!(
                "RegistrationRequest is {}",
                phase.map_or("Pending".to_owned(), |p| format!("{p:?}"))
            ),
        ),
    }
}
