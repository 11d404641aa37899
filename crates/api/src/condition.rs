//! Conditions, their types and reasons, the bookkeeping rules and the phase rule.
//!
//! Two rules keep status writes quiet and meaningful:
//! - `lastTransitionTime` moves only when a condition's status flips ([`set_condition`]);
//! - a status is written only when it changed ignoring timestamps ([`same_ignoring_time`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types.
pub mod types {
    /// The upstream answered its health path.
    pub const UPSTREAM_HEALTHY: &str = "UpstreamHealthy";
    /// The Middleware exists and the verifier admitted the PaymentRoute at its current generation.
    pub const PAYMENT_GATE_READY: &str = "PaymentGateReady";
    /// The Gateway accepted the HTTPRoute.
    pub const ROUTE_PUBLISHED: &str = "RoutePublished";
    /// The ERC-8004 registration finished (on chain, or off chain only), or is disabled.
    pub const REGISTERED: &str = "Registered";
    /// The offer serves paid traffic (see [`super::is_ready`]).
    pub const READY: &str = "Ready";
    /// On a PaymentRoute: the verifier loaded it (or says why not).
    pub const ADMITTED: &str = "Admitted";
    /// Only on an offer with `spec.routes`: whether every path and method has one most
    /// specific route (informational; never blocks Ready).
    pub const ROUTE_TABLE: &str = "RouteTable";
    /// Only on an offer with `spec.drainAt`: `False` while the drain is scheduled or under
    /// way (the route still gates), `True` once it ended and the route is withdrawn.
    pub const DRAINED: &str = "Drained";
}

/// Condition reasons (`CamelCase`, stable: scripts and alerts match on them).
pub mod reasons {
    /// UpstreamHealthy=True: the health path answered below 400.
    pub const HEALTH_CHECK_PASSED: &str = "HealthCheckPassed";
    /// UpstreamHealthy=False: the health path answered 4xx/5xx or not at all.
    pub const UNHEALTHY: &str = "Unhealthy";
    /// UpstreamHealthy=False: the upstream Service does not exist.
    pub const MISSING_SERVICE: &str = "MissingService";
    /// UpstreamHealthy=False: the Service has no ready endpoint address to probe.
    pub const NO_ENDPOINTS: &str = "NoEndpoints";
    /// PaymentGateReady=True.
    pub const PAYMENT_ROUTE_ADMITTED: &str = "PaymentRouteAdmitted";
    /// PaymentGateReady=False: the verifier has not admitted the current generation yet.
    pub const ADMISSION_PENDING: &str = "AdmissionPending";
    /// PaymentGateReady=False: the verifier refused the route (the message says why).
    pub const NOT_ADMITTED: &str = "NotAdmitted";
    /// PaymentGateReady=False / RoutePublished=False: waiting for the upstream to answer once.
    pub const WAITING_FOR_UPSTREAM: &str = "WaitingForUpstream";
    /// RoutePublished=False: the route is withheld until the payment gate is ready (fail closed).
    pub const WAITING_FOR_PAYMENT_GATE: &str = "WaitingForPaymentGate";
    /// RoutePublished=True.
    pub const HTTP_ROUTE_ACCEPTED: &str = "HTTPRouteAccepted";
    /// RoutePublished=False: applied, the Gateway has not accepted it (yet).
    pub const HTTP_ROUTE_NOT_ACCEPTED: &str = "HTTPRouteNotAccepted";
    /// RoutePublished=False: an older offer owns the same path.
    pub const PATH_CONFLICT: &str = "PathConflict";
    /// Registered=True: `registration.enabled` is false.
    pub const DISABLED: &str = "Disabled";
    /// Registered=False: registration waits for the first three conditions.
    pub const WAITING_FOR_ROUTE: &str = "WaitingForRoute";
    /// Registered=False: the RegistrationRequest is pending or submitted.
    pub const PENDING: &str = "Pending";
    /// Registered=True: confirmed on chain.
    pub const ON_CHAIN_CONFIRMED: &str = "OnChainConfirmed";
    /// Registered=True: no signing key; the document is served, nothing is on chain.
    pub const OFF_CHAIN_ONLY: &str = "OffChainOnly";
    /// Registered=False: the registrar gave up (the message says why); Ready is unaffected.
    pub const REGISTRATION_FAILED: &str = "RegistrationFailed";
    /// PaymentGateReady=False / RoutePublished=False: the offer is paused.
    pub const PAUSED: &str = "Paused";
    /// RouteTable=True: no two routes match a path equally specifically.
    pub const ROUTES_DISTINCT: &str = "RoutesDistinct";
    /// RouteTable=False: two routes match some path equally specifically; the first declared
    /// wins (the message names them).
    pub const ROUTES_OVERLAP: &str = "RoutesOverlap";
    /// Drained=False: `spec.drainAt` is in the future; nothing changed yet.
    pub const DRAIN_SCHEDULED: &str = "DrainScheduled";
    /// Drained=False: draining; the route gates until the drain ends (the message says when).
    pub const DRAINING: &str = "Draining";
    /// Drained=True, PaymentGateReady=False and RoutePublished=False: the drain ended and the
    /// route is withdrawn.
    pub const DRAINED: &str = "Drained";
    /// Any condition: applying a child failed (the message has the API error).
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// Ready=False: the spec cannot be turned into children (phase `Failed`).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Ready=True.
    pub const RECONCILED: &str = "Reconciled";
    /// Ready=False: some required condition is not True yet.
    pub const RECONCILING: &str = "Reconciling";
}

/// `True`, `False` or `Unknown`, as Kubernetes spells them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not determined yet.
    Unknown,
}

impl ConditionStatus {
    /// `True` for `true`, `False` for `false`.
    pub fn from_bool(value: bool) -> Self {
        if value { Self::True } else { Self::False }
    }

    /// The string Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// One status condition (the shape of `metav1.Condition`, with reason and message optional so
/// that conditions written by older controllers still parse).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready` (see [`types`]).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Machine-readable `CamelCase` reason (see [`reasons`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: Option<String>,
    /// The object's generation this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A condition without timestamp or generation; [`set_condition`] fills the timestamp.
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message: message.into(),
            last_transition_time: None,
            observed_generation: None,
        }
    }

    /// Whether this condition is `True`.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// The condition of type `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is present and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(Condition::is_true)
}

/// Upserts `new` into `conditions` (one entry per type) and returns whether anything other than
/// a timestamp changed.
///
/// `lastTransitionTime` becomes `now` (RFC 3339) only when the condition is new or its status
/// flips; otherwise the previous timestamp is kept and reason, message and generation are
/// updated in place.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: &str) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        None => {
            new.last_transition_time = Some(now.to_owned());
            conditions.push(new);
            true
        }
        Some(old) if old.status != new.status => {
            new.last_transition_time = Some(now.to_owned());
            *old = new;
            true
        }
        Some(old) => {
            new.last_transition_time = old
                .last_transition_time
                .clone()
                .or_else(|| Some(now.to_owned()));
            let changed = old.reason != new.reason
                || old.message != new.message
                || old.observed_generation != new.observed_generation;
            *old = new;
            changed
        }
    }
}

/// Whether two condition lists say the same thing, ignoring `lastTransitionTime` and order.
pub fn same_ignoring_time(a: &[Condition], b: &[Condition]) -> bool {
    let strip = |c: &Condition| Condition {
        last_transition_time: None,
        ..c.clone()
    };
    a.len() == b.len()
        && a.iter()
            .all(|x| find(b, &x.type_).is_some_and(|y| strip(x) == strip(y)))
}

/// The conditions that must all be `True` for an offer to be Ready. `Registered` is not among
/// them: a registration failure never holds back traffic (the seed's acceptance criterion 7).
pub const READY_REQUIRES: [&str; 3] = [
    types::UPSTREAM_HEALTHY,
    types::PAYMENT_GATE_READY,
    types::ROUTE_PUBLISHED,
];

/// The Ready rule: the status describes the current generation and every condition of
/// [`READY_REQUIRES`] is `True`.
pub fn is_ready(generation: Option<i64>, observed: Option<i64>, conditions: &[Condition]) -> bool {
    generation.is_some()
        && generation == observed
        && READY_REQUIRES.iter().all(|t| is_true(conditions, t))
}

/// The `Ready` condition the rule gives; the message names the first blocking condition.
pub fn ready_condition(
    generation: Option<i64>,
    observed: Option<i64>,
    conditions: &[Condition],
) -> Condition {
    if is_ready(generation, observed, conditions) {
        return Condition::new(
            types::READY,
            ConditionStatus::True,
            reasons::RECONCILED,
            "Offer reconciled successfully",
        );
    }
    let message = match READY_REQUIRES.iter().find(|t| !is_true(conditions, t)) {
        Some(t) => match find(conditions, t) {
            Some(c) if !c.reason.is_empty() => format!("Waiting for {t}: {}", c.reason),
            _ => format!("Waiting for {t}"),
        },
        None => "Waiting for the current generation to be observed".to_owned(),
    };
    Condition::new(
        types::READY,
        ConditionStatus::False,
        reasons::RECONCILING,
        message,
    )
}

/// The one-word summary shown in `kubectl get so` and `obol sell status`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    /// Not reconciled yet at this generation.
    Pending,
    /// Reconciled, some required condition is not True yet.
    Reconciling,
    /// Serving paid traffic.
    Ready,
    /// The spec is invalid; nothing is applied until it changes.
    Failed,
    /// Being deleted; the finalizer is cleaning up.
    Deleting,
    /// Its drain ended (`spec.drainAt` + grace period): the route is withdrawn.
    Drained,
}

impl Phase {
    /// The name as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Reconciling => "Reconciling",
            Self::Ready => "Ready",
            Self::Failed => "Failed",
            Self::Deleting => "Deleting",
            Self::Drained => "Drained",
        }
    }
}

/// The phase rule, first match wins: deleting → `Deleting`; `Ready=False/InvalidSpec` →
/// `Failed`; not observed at this generation → `Pending`; `Drained=True` → `Drained`; the
/// Ready rule holds → `Ready`; otherwise `Reconciling`.
pub fn compute_phase(
    deleting: bool,
    generation: Option<i64>,
    observed: Option<i64>,
    conditions: &[Condition],
) -> Phase {
    let invalid = find(conditions, types::READY)
        .is_some_and(|c| c.status == ConditionStatus::False && c.reason == reasons::INVALID_SPEC);
    if deleting {
        Phase::Deleting
    } else if invalid {
        Phase::Failed
    } else if observed.is_none() || observed != generation {
        Phase::Pending
    } else if is_true(conditions, types::DRAINED) {
        Phase::Drained
    } else if is_ready(generation, observed, conditions) {
        Phase::Ready
    } else {
        Phase::Reconciling
    }
}

#[cfg(test)]
mod tests;
