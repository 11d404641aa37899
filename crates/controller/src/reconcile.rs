//! The reconcile shell: read the caches, probe, call the plan, apply what it says, write the
//! status when it changed, and publish Events on transitions and failures.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use obol_api::condition::{self as cond, types};
use obol_api::gateway::HttpRoute;
use obol_api::traefik::Middleware;
use obol_api::{PaymentRoute, RegistrationRequest, ServiceOffer, ServiceOfferStatus};
use obol_runtime::clock::Clock;
use tracing::{info, instrument, warn};

use crate::apply::{self, Child};
use crate::error::{Error, Result};
use crate::metrics::ControllerMetrics;
use crate::plan::status::{
    self as plan_status, ApplyFailure, Observed, RegistrationSeen, RouteAction,
};
use crate::plan::{self, Settings, conflict};
use crate::probe;

/// Everything a reconcile reads besides the offer.
pub struct Context {
    /// API client.
    pub client: kube::Client,
    /// Child settings (verifier, gateway, base URL).
    pub settings: Settings,
    /// Deadline of one upstream probe.
    pub probe_timeout: Duration,
    /// How often an offer is re-probed.
    pub probe_interval: Duration,
    /// How long deletion waits for the RegistrationRequest to disappear.
    pub cleanup_timeout: Duration,
    /// All ServiceOffers (path conflicts).
    pub offers: Store<ServiceOffer>,
    /// Our Middlewares.
    pub middlewares: Store<Middleware>,
    /// Our PaymentRoutes.
    pub payment_routes: Store<PaymentRoute>,
    /// Our HTTPRoutes.
    pub http_routes: Store<HttpRoute>,
    /// Our RegistrationRequests.
    pub registrations: Store<RegistrationRequest>,
    /// Event publisher.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<ControllerMetrics>,
    /// Offers (by uid) whose upstream answered healthily at least once in this process.
    pub healthy_once: parking_lot::Mutex<HashSet<String>>,
    /// The clock, read once per reconcile.
    pub clock: Arc<dyn Clock>,
}

/// The one reading of the clock a reconcile makes: every time-dependent decision in it (drain,
/// deletion deadline, condition timestamps, the next wake-up) gets this value.
fn read_clock(clock: &dyn Clock) -> Timestamp {
    let ms = i64::try_from(clock.now_unix_millis()).unwrap_or(i64::MAX);
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Reconciles one offer (entry point for the kube-runtime Controller).
#[instrument(skip_all, fields(ns = offer.namespace(), name = offer.name_any()))]
pub async fn reconcile(offer: Arc<ServiceOffer>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let now = read_clock(ctx.clock.as_ref());
    let ns = offer.namespace().ok_or(Error::MissingField("namespace"))?;
    let api: Api<ServiceOffer> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, obol_api::FINALIZER, offer, |event| async {
        match event {
            Finalizer::Apply(offer) => apply_offer(&offer, &ctx, now).await,
            Finalizer::Cleanup(offer) => crate::cleanup::cleanup(&offer, &ctx, now).await,
        }
    })
    .await;
    let result = match result {
        // A stale cached copy of an offer whose finalizer is already gone (and the offer with
        // it): there is nothing left to do.
        Err(kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(s)))
            if s.code == 404 =>
        {
            Ok(Action::await_change())
        }
        other => other.map_err(|e| Error::Finalizer(Box::new(e))),
    };
    ctx.metrics.duration.observe(start.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&vec![("result", outcome)])
        .inc();
    result
}

/// Requeue policy on errors: cleanup waits are short, anything else backs off.
pub fn error_policy(offer: Arc<ServiceOffer>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .errors
        .get_or_create(&vec![("error", error.metric_label())])
        .inc();
    match error {
        Error::Finalizer(inner)
            if matches!(
                inner.as_ref(),
                kube::runtime::finalizer::Error::CleanupFailed(Error::CleanupPending { .. })
            ) =>
        {
            Action::requeue(Duration::from_secs(1))
        }
        _ => {
            warn!(%error, ns = offer.namespace(), name = offer.name_any(), "Reconcile failed");
            Action::requeue(Duration::from_secs(5))
        }
    }
}

/// The failed applies of one reconcile: each shows in its condition; the first is the
/// reconcile's error (it backs off and retries).
#[derive(Default)]
struct Failures {
    list: Vec<ApplyFailure>,
    first: Option<Error>,
}

impl Failures {
    fn record(&mut self, condition: &'static str, kind: &str, e: kube::Error) {
        self.list.push(ApplyFailure {
            condition,
            message: format!("applying {kind}: {e}"),
        });
        self.first.get_or_insert(Error::Kube {
            context: "apply child",
            source: e,
        });
    }

    fn of(&self, condition: &str) -> Option<&ApplyFailure> {
        self.list.iter().find(|f| f.condition == condition)
    }
}

/// The payment gate as this reconcile left it.
#[derive(Default)]
struct Gate {
    middleware_present: bool,
    payment_route: Option<PaymentRoute>,
}

/// One reconcile of a live offer, in the order that keeps it fail-closed:
/// 1. read: the desired children, the drain, the path owner, the upstream probe (decided by
///    `plan`, on this reconcile's one clock reading);
/// 2. the payment gate (Middleware, PaymentRoute), unless another offer owns the path;
/// 3. the HTTPRoute: `route_action` decides from what step 2 left (applied only behind an
///    admitted gate and a healthy-once upstream; withdrawn otherwise);
/// 4. gate children that go, only now that no route of this offer can reach the upstream:
///    the whole gate on a path conflict, a stale ForwardAuth Middleware otherwise;
/// 5. the RegistrationRequest, once the first three conditions hold;
/// 6. the status, then the readiness mark discovery reads.
///
/// Every choice between those steps is a pure function in `plan::status`.
async fn apply_offer(offer: &ServiceOffer, ctx: &Context, now: Timestamp) -> Result<Action> {
    let ns = offer.namespace().ok_or(Error::MissingField("namespace"))?;
    let name = offer.name_any();
    let generation = offer.metadata.generation;
    let old = offer.status.as_ref();
    let stamp = plan_status::condition_time(now);

    // 1. Read and decide.
    let mut desired = match plan::desired(offer, &ctx.settings) {
        Ok(d) => d,
        Err(invalid) => {
            // Fail closed and stay quiet: no children, no requeue until the spec changes.
            withdraw_route_children(ctx, &ns, &name).await?;
            let status = plan_status::invalid_status(old, generation, &invalid.0, &stamp);
            write_status(ctx, offer, &status).await?;
            return Ok(Action::await_change());
        }
    };
    let drain_state = obol_api::drain::state(desired.drain, now);
    plan_status::carry_drain(&mut desired, drain_state);
    // The readiness mark as the last status says; corrected in step 6 when this one differs.
    let was_ready = old.is_some_and(|s| cond::is_true(&s.conditions, types::READY));
    plan_status::mark_ready(&mut desired.payment_route, was_ready);
    let conflict_with = {
        let offers = ctx.offers.state();
        conflict::path_owner(offer, offers.iter().map(AsRef::as_ref))
    };
    let upstream_ns = offer.spec.upstream_namespace(&ns).to_owned();
    let (probe, external) = probe::probe(
        &ctx.client,
        &upstream_ns,
        &offer.spec.upstream,
        ctx.probe_timeout,
    )
    .await?;
    plan::reach_upstream_at(&mut desired, external.as_ref());
    let uid = offer.uid().unwrap_or_default();
    let healthy_once =
        plan_status::healthy_once(remember_health(ctx, &uid, probe.is_healthy()), old);
    let mut failures = Failures::default();

    // 2. The payment gate (none for an offer whose path another offer owns).
    let gate = if conflict_with.is_some() {
        Gate::default()
    } else {
        apply_gate(ctx, &desired, &mut failures).await
    };

    // 3. The route.
    let route_action = plan_status::route_action(
        gate.payment_route.as_ref(),
        healthy_once,
        conflict_with.is_some(),
        paused(offer),
        drain_state.is_drained(),
    );
    let http_route = match route_action {
        RouteAction::Apply => match ensure(ctx, &ctx.http_routes, &desired.http_route).await {
            Ok(route) => Some(route),
            Err(e) => {
                failures.record(types::ROUTE_PUBLISHED, "HTTPRoute", e);
                None
            }
        },
        RouteAction::Hold => apply::cached(&ctx.http_routes, &desired.http_route),
        RouteAction::Withdraw(_) => {
            let route_name = desired.http_route.name_any();
            apply::withdraw(&ctx.client, &ctx.http_routes, &ns, &route_name, false)
                .await
                .map_err(Error::kube("withdraw HTTPRoute"))?;
            None
        }
    };

    // 4. Gate children that go: all of them on a path conflict, a stale Middleware otherwise.
    let gone = plan_status::gate_withdrawal(
        desired.middleware.is_some(),
        route_action,
        http_route.is_some(),
    );
    if gone.payment_route {
        let pr = obol_api::names::payment_route(&name);
        apply::withdraw(&ctx.client, &ctx.payment_routes, &ns, &pr, false)
            .await
            .map_err(Error::kube("withdraw PaymentRoute"))?;
    }
    if gone.middleware {
        let mw = obol_api::names::middleware(&name);
        apply::withdraw(&ctx.client, &ctx.middlewares, &ns, &mw, false)
            .await
            .map_err(Error::kube("withdraw Middleware"))?;
    }

    let mut conditions = plan_status::gate_conditions(
        &Observed {
            path: &desired.path,
            probe: &probe,
            conflict_with: conflict_with.as_deref(),
            middleware_present: gate.middleware_present,
            payment_route: gate.payment_route.as_ref(),
            route_action,
            http_route: http_route.as_ref(),
            gateway: &ctx.settings.gateway,
            failures: &failures.list,
        },
        &offer.spec.upstream.health_path,
    );

    // 5. The registration.
    let due = plan_status::registration_due(desired.registration.is_some(), &conditions);
    let registration = match &desired.registration {
        Some(rr) if due => match ensure(ctx, &ctx.registrations, rr).await {
            Ok(live) => Some(live),
            Err(e) => {
                failures.record(types::REGISTERED, "RegistrationRequest", e);
                None
            }
        },
        Some(rr) => apply::cached(&ctx.registrations, rr),
        None => {
            let rr_name = obol_api::names::registration_request(&name);
            apply::withdraw(&ctx.client, &ctx.registrations, &ns, &rr_name, false)
                .await
                .map_err(Error::kube("delete RegistrationRequest"))?;
            None
        }
    };
    conditions.push(plan_status::registered_condition(&RegistrationSeen {
        enabled: desired.registration.is_some(),
        due,
        live: registration.as_ref(),
        failure: failures.of(types::REGISTERED),
    }));
    conditions.extend(plan_status::route_table_condition(
        desired.has_routes,
        &desired.ambiguous,
    ));
    conditions.extend(plan_status::drained_condition(drain_state));

    // 6. The status, then the readiness mark.
    let status = plan_status::next_status(
        old,
        generation,
        conditions,
        &desired.path,
        registration.as_ref(),
        &stamp,
    );
    for failure in &failures.list {
        event(
            ctx,
            offer,
            EventType::Warning,
            "ApplyFailed",
            &failure.message,
        )
        .await;
    }
    let ready = cond::is_true(&status.conditions, types::READY);
    if let Some(mark) =
        plan_status::ready_mark_change(was_ready, ready, gate.payment_route.is_some())
    {
        plan_status::mark_ready(&mut desired.payment_route, mark);
        if let Err(e) = ensure(ctx, &ctx.payment_routes, &desired.payment_route).await {
            failures.first.get_or_insert(Error::Kube {
                context: "mark PaymentRoute",
                source: e,
            });
        }
    }
    write_status(ctx, offer, &status).await?;
    match failures.first {
        Some(e) => Err(e),
        None => Ok(Action::requeue(plan_status::requeue_after(
            jittered(ctx.probe_interval, &uid),
            drain_state,
            now,
        ))),
    }
}

/// Remembers that the offer's upstream answered healthily (when `healthy`); returns whether
/// it ever did in this process.
fn remember_health(ctx: &Context, uid: &str, healthy: bool) -> bool {
    let mut seen = ctx.healthy_once.lock();
    if healthy {
        seen.insert(uid.to_owned());
    }
    seen.contains(uid)
}

/// Step 2: the Middleware (ForwardAuth mode only) and the PaymentRoute.
async fn apply_gate(ctx: &Context, desired: &plan::Desired, failures: &mut Failures) -> Gate {
    let middleware_present = match &desired.middleware {
        Some(mw) => match ensure(ctx, &ctx.middlewares, mw).await {
            Ok(_) => true,
            Err(e) => {
                failures.record(types::PAYMENT_GATE_READY, "Middleware", e);
                false
            }
        },
        // Mode proxy: the verifier is the HTTPRoute's backend, no Middleware to wait for.
        None => true,
    };
    let payment_route = match ensure(ctx, &ctx.payment_routes, &desired.payment_route).await {
        Ok(pr) => Some(pr),
        Err(e) => {
            failures.record(types::PAYMENT_GATE_READY, "PaymentRoute", e);
            None
        }
    };
    Gate {
        middleware_present,
        payment_route,
    }
}

/// `interval` spread over ±10% by the offer's uid, so that offers which converged together do
/// not re-probe in one burst.
pub(crate) fn jittered(interval: Duration, uid: &str) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut h);
    let permille = 900 + h.finish() % 201; // 900..=1100
    interval * u32::try_from(permille).unwrap_or(1000) / 1000
}

/// Whether the offer carries `obol.org/paused: "true"`: its route is withdrawn, nothing else is
/// deleted.
fn paused(offer: &ServiceOffer) -> bool {
    offer
        .annotations()
        .get(obol_api::labels::PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

async fn ensure<K: Child>(ctx: &Context, store: &Store<K>, desired: &K) -> Result<K, kube::Error> {
    let (live, applied) = apply::ensure(&ctx.client, store, desired).await?;
    if applied {
        ctx.metrics
            .applies
            .get_or_create(&vec![("kind", K::KIND)])
            .inc();
    }
    Ok(live)
}

/// Deletes the HTTPRoute, PaymentRoute and Middleware of `name` that the caches show (the
/// route first: traffic stops before the gate goes).
async fn withdraw_route_children(ctx: &Context, ns: &str, name: &str) -> Result<()> {
    let c = &ctx.client;
    let route = obol_api::names::http_route(name);
    apply::withdraw(c, &ctx.http_routes, ns, &route, false)
        .await
        .map_err(Error::kube("withdraw HTTPRoute"))?;
    let pr = obol_api::names::payment_route(name);
    apply::withdraw(c, &ctx.payment_routes, ns, &pr, false)
        .await
        .map_err(Error::kube("withdraw PaymentRoute"))?;
    let mw = obol_api::names::middleware(name);
    apply::withdraw(c, &ctx.middlewares, ns, &mw, false)
        .await
        .map_err(Error::kube("withdraw Middleware"))?;
    Ok(())
}

/// Writes `status` (server-side apply of the status subresource) when it differs from the
/// offer's, and publishes an Event per condition that flipped.
pub(crate) async fn write_status(
    ctx: &Context,
    offer: &ServiceOffer,
    status: &ServiceOfferStatus,
) -> Result<()> {
    let old = offer.status.as_ref();
    if !plan_status::status_changed(old, status) {
        return Ok(());
    }
    let ns = offer.namespace().ok_or(Error::MissingField("namespace"))?;
    let api: Api<ServiceOffer> = Api::namespaced(ctx.client.clone(), &ns);
    let body = serde_json::json!({
        "apiVersion": obol_api::API_VERSION,
        "kind": "ServiceOffer",
        "status": status,
    });
    let params = PatchParams::apply(obol_api::FIELD_MANAGER).force();
    api.patch_status(&offer.name_any(), &params, &Patch::Apply(&body))
        .await
        .map_err(Error::kube("write ServiceOffer status"))?;
    ctx.metrics.status_writes.inc();
    // One Event per status write, naming every condition that flipped.
    if let Some(notice) = plan_status::transition_notice(old, status) {
        let kind = if notice.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        event(ctx, offer, kind, &notice.reason, &notice.note).await;
    }
    if old.and_then(|s| s.phase) != status.phase {
        info!(phase = ?status.phase, "Phase changed");
    }
    Ok(())
}

pub(crate) async fn event(
    ctx: &Context,
    offer: &ServiceOffer,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let ev = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&ev, &offer.object_ref(&())).await {
        warn!(%error, "Publishing an Event failed");
    }
}
