//! Verifier metrics with the Go names (`obol_x402_verifier_*`, obol-reference.md §5.9).
//!
//! Route series carry `route`, `offer_namespace`, `offer_name` and `chain`; other labels are
//! bounded reasons. Never a payer address or a nonce. Free requests (no route) create no route
//! series. Each replica has its own registry; Prometheus sums them.
//!
//! A route's series go with the route: when the table loses a label set (the PaymentRoute was
//! deleted, or its pattern or chain changed), [`VerifierMetrics::prune`] removes it from every
//! route family, so a deleted offer does not stay on dashboards and its label sets do not
//! accumulate. (A request still in flight on the old route may count once more and bring its
//! series back until the next change; its counters then restart from that one count.)

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use std::collections::HashSet;

use crate::route::RouteLabels;
use crate::route_table::Snapshot;

/// How a ForwardAuth call ended (the latency histogram's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum Outcome {
    /// No route or a zero price: 200 without payment.
    Free,
    /// Unpaid: 402 with requirements.
    PaymentRequired,
    /// Paid and settled: 200.
    Verified,
    /// A payment that was refused: 402.
    Failed,
    /// Fail closed or our outage: 503 (or 502, a settlement that did not complete).
    Unavailable,
    /// Bad forwarded request: 403 / 400 / 414.
    BadRequest,
}

impl Outcome {
    /// The outcome of a refusal answered with `status`.
    pub fn of_refusal(status: axum::http::StatusCode) -> Self {
        match status.as_u16() {
            402 => Self::Failed,
            500..=599 => Self::Unavailable,
            _ => Self::BadRequest,
        }
    }
}

/// Label set of the latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// How the call ended.
    pub outcome: Outcome,
}

type Labelled = [(&'static str, &'static str); 1];

/// Every verifier metric.
#[derive(Debug, Clone)]
pub struct VerifierMetrics {
    /// A route matched.
    pub requests: Family<RouteLabels, Counter>,
    /// 402 without a payment.
    pub payment_required: Family<RouteLabels, Counter>,
    /// 200 with a settled payment.
    pub payment_verified: Family<RouteLabels, Counter>,
    /// 402 with a payment.
    pub payment_failed: Family<RouteLabels, Counter>,
    /// 200 with a settled payment (the Go name for what was charged).
    pub charged_requests: Family<RouteLabels, Counter>,
    /// Metered (`upto`) answers settled, per offer.
    pub metered_requests: Family<RouteLabels, Counter>,
    /// Prompt tokens charged for, per offer (as the upstream reported them).
    pub metered_input_tokens: Family<RouteLabels, Counter>,
    /// Completion tokens charged for, per offer.
    pub metered_output_tokens: Family<RouteLabels, Counter>,
    /// Atomic units settled for metered answers, per offer.
    pub metered_charged_atomic: Family<RouteLabels, Counter>,
    /// Atomic units authorized (up to the route's maximum) but not charged, per offer: the gap
    /// between what buyers allowed and what they paid.
    pub metered_unused_atomic: Family<RouteLabels, Counter>,
    /// Metered answers that reported no usage and were charged the declared fallback.
    pub metered_fallback: Family<RouteLabels, Counter>,
    /// Metered answers whose usage cost more than the maximum and were charged the maximum.
    pub metered_capped: Family<RouteLabels, Counter>,
    /// Refusals by machine-readable reason.
    pub denials: Family<Labelled, Counter>,
    /// Facilitator failures by `endpoint:label`.
    pub facilitator_errors: Family<Labelled, Counter>,
    /// ForwardAuth handling time, by outcome.
    pub request_duration: Family<OutcomeLabels, Histogram>,
    /// Routes loaded.
    pub routes: Gauge,
    /// Routes that could not be loaded (kube source).
    pub rejected_routes: Gauge,
}

impl VerifierMetrics {
    /// Creates the metrics and registers them under `obol_x402_verifier_`.
    pub fn register(registry: &mut Registry) -> Self {
        let reg = registry.sub_registry_with_prefix("obol_x402_verifier");
        let m = Self {
            requests: Family::default(),
            payment_required: Family::default(),
            payment_verified: Family::default(),
            payment_failed: Family::default(),
            charged_requests: Family::default(),
            metered_requests: Family::default(),
            metered_input_tokens: Family::default(),
            metered_output_tokens: Family::default(),
            metered_charged_atomic: Family::default(),
            metered_unused_atomic: Family::default(),
            metered_fallback: Family::default(),
            metered_capped: Family::default(),
            denials: Family::default(),
            facilitator_errors: Family::default(),
            request_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
            }),
            routes: Gauge::default(),
            rejected_routes: Gauge::default(),
        };
        reg.register(
            "requests",
            "ForwardAuth calls that matched a priced route",
            m.requests.clone(),
        );
        reg.register(
            "payment_required",
            "402 answers to requests without a payment",
            m.payment_required.clone(),
        );
        reg.register(
            "payment_verified",
            "Payments verified and settled",
            m.payment_verified.clone(),
        );
        reg.register(
            "payment_failed",
            "402 answers to requests carrying a payment",
            m.payment_failed.clone(),
        );
        reg.register(
            "charged_requests",
            "Requests let through after a settled payment",
            m.charged_requests.clone(),
        );
        let metered = [
            (
                "metered_requests",
                "Metered (upto) answers settled",
                &m.metered_requests,
            ),
            (
                "metered_input_tokens",
                "Prompt tokens charged for on metered routes",
                &m.metered_input_tokens,
            ),
            (
                "metered_output_tokens",
                "Completion tokens charged for on metered routes",
                &m.metered_output_tokens,
            ),
            (
                "metered_charged_atomic",
                "Atomic units of the asset settled for metered answers",
                &m.metered_charged_atomic,
            ),
            (
                "metered_unused_atomic",
                "Atomic units authorized (up to the route's maximum) but not charged",
                &m.metered_unused_atomic,
            ),
            (
                "metered_fallback",
                "Metered answers without usage, charged the declared fallback",
                &m.metered_fallback,
            ),
            (
                "metered_capped",
                "Metered answers whose usage cost more than the maximum, charged the maximum",
                &m.metered_capped,
            ),
        ];
        for (name, help, family) in metered {
            reg.register(name, help, family.clone());
        }
        reg.register(
            "denials",
            "ForwardAuth calls refused, by reason",
            m.denials.clone(),
        );
        reg.register(
            "facilitator_errors",
            "Facilitator calls that did not answer yes, by endpoint and kind",
            m.facilitator_errors.clone(),
        );
        reg.register(
            "request_duration_seconds",
            "Time to answer a ForwardAuth call, by outcome",
            m.request_duration.clone(),
        );
        reg.register("routes", "Routes in the route table", m.routes.clone());
        reg.register(
            "rejected_routes",
            "PaymentRoutes that could not be loaded",
            m.rejected_routes.clone(),
        );
        m
    }

    /// The route families (each labelled by [`RouteLabels`]).
    fn route_families(&self) -> [&Family<RouteLabels, Counter>; 12] {
        [
            &self.requests,
            &self.payment_required,
            &self.payment_verified,
            &self.payment_failed,
            &self.charged_requests,
            &self.metered_requests,
            &self.metered_input_tokens,
            &self.metered_output_tokens,
            &self.metered_charged_atomic,
            &self.metered_unused_atomic,
            &self.metered_fallback,
            &self.metered_capped,
        ]
    }

    /// Removes the series of `labels` from every route family.
    pub fn forget(&self, labels: &RouteLabels) {
        for family in self.route_families() {
            family.remove(labels);
        }
    }

    /// Forgets the label sets of `before` that `after` no longer has; returns how many.
    pub fn prune(&self, before: &Snapshot, after: &Snapshot) -> usize {
        let gone = gone_labels(before, after);
        for labels in &gone {
            self.forget(labels);
        }
        gone.len()
    }

    /// Counts one settled metered answer: its tokens, the amount charged and what was
    /// authorized but left unused (`cap` = the lesser of the maximum and the authorization).
    pub fn metered(
        &self,
        labels: &RouteLabels,
        tokens: Option<obol_api::metering::TokenUsage>,
        charged: u128,
        cap: u128,
        capped: bool,
    ) {
        let atomic = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
        self.metered_requests.get_or_create(labels).inc();
        match tokens {
            Some(t) => {
                self.metered_input_tokens
                    .get_or_create(labels)
                    .inc_by(t.input);
                self.metered_output_tokens
                    .get_or_create(labels)
                    .inc_by(t.output);
            }
            None => {
                self.metered_fallback.get_or_create(labels).inc();
            }
        }
        if capped {
            self.metered_capped.get_or_create(labels).inc();
        }
        self.metered_charged_atomic
            .get_or_create(labels)
            .inc_by(atomic(charged));
        self.metered_unused_atomic
            .get_or_create(labels)
            .inc_by(atomic(cap.saturating_sub(charged)));
    }

    /// Counts a refusal by its reason.
    pub fn denied(&self, reason: &'static str) {
        self.denials.get_or_create(&[("reason", reason)]).inc();
    }

    /// Counts a facilitator failure.
    pub fn facilitator_error(&self, kind: &'static str) {
        self.facilitator_errors
            .get_or_create(&[("kind", kind)])
            .inc();
    }
}

/// The label sets of `before`'s routes that none of `after`'s carries. Pure.
pub fn gone_labels(before: &Snapshot, after: &Snapshot) -> Vec<RouteLabels> {
    let kept: HashSet<&RouteLabels> = after.routes().iter().map(|r| &r.labels).collect();
    let mut gone: Vec<RouteLabels> = before
        .routes()
        .iter()
        .map(|r| &r.labels)
        .filter(|l| !kept.contains(l))
        .cloned()
        .collect();
    gone.dedup();
    gone
}

#[cfg(test)]
mod tests {
    use obol_runtime::admin::encode;

    use super::*;
    use crate::testing::mk_entry;

    #[test]
    fn go_names_and_route_labels() {
        let mut registry = Registry::default();
        let m = VerifierMetrics::register(&mut registry);
        let labels = mk_entry("llm", "paid-rpc", "/rpc/*").labels;
        m.requests.get_or_create(&labels).inc();
        m.payment_required.get_or_create(&labels).inc();
        let text = encode(&registry);
        assert!(
            text.contains(
                "obol_x402_verifier_requests_total{route=\"/rpc/*\",offer_namespace=\"llm\",offer_name=\"paid-rpc\",chain=\"eip155:84532\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("obol_x402_verifier_payment_required_total{"));
        // Families without observations have no series (V12).
        assert!(!text.contains("obol_x402_verifier_payment_verified_total{"));
        assert!(!text.contains("obol_x402_verifier_charged_requests_total{"));
        assert!(!text.contains("obol_x402_verifier_metered_requests_total{"));
    }

    #[test]
    fn metered_charges_count_tokens_amounts_and_the_unused_gap() {
        let mut registry = Registry::default();
        let m = VerifierMetrics::register(&mut registry);
        let labels = mk_entry("llm", "chat", "/chat/*").labels;
        let tokens = obol_api::metering::TokenUsage {
            input: 120,
            output: 30,
        };
        // Used 250 of a 1000 cap; then no usage (fallback 100); then capped at 1000.
        m.metered(&labels, Some(tokens), 250, 1000, false);
        m.metered(&labels, None, 100, 1000, false);
        m.metered(&labels, Some(tokens), 1000, 1000, true);
        let text = encode(&registry);
        let series = |name: &str| {
            let prefix = format!(
                "obol_x402_verifier_{name}_total{{route=\"/chat/*\",offer_namespace=\"llm\",offer_name=\"chat\",chain=\"eip155:84532\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("{name} missing in {text}"))
                .to_owned()
        };
        let cases = [
            ("metered_requests", "3"),
            ("metered_input_tokens", "240"),
            ("metered_output_tokens", "60"),
            ("metered_charged_atomic", "1350"),
            ("metered_unused_atomic", "1650"),
            ("metered_fallback", "1"),
            ("metered_capped", "1"),
        ];
        for (name, want) in cases {
            assert_eq!(series(name), want, "{name}");
        }
    }

    #[test]
    fn series_of_routes_that_go_are_pruned() {
        use crate::route_table::RouteTable;

        let mut registry = Registry::default();
        let m = VerifierMetrics::register(&mut registry);
        let table = RouteTable::new();
        let (kept, deleted, moved) = (
            mk_entry("llm", "kept", "/kept/*"),
            mk_entry("llm", "deleted", "/deleted/*"),
            mk_entry("llm", "moved", "/old/*"),
        );
        table.reset([kept.clone(), deleted.clone(), moved.clone()]);
        for entry in [&kept, &deleted, &moved] {
            for family in m.route_families() {
                family.get_or_create(&entry.labels).inc();
            }
        }
        m.denied("some_reason");
        let before = table.snapshot();
        let text = encode(&registry);
        for name in ["kept", "deleted", "moved"] {
            assert!(text.contains(&format!("offer_name=\"{name}\"")), "{text}");
        }

        // One route deleted, one whose pattern changed (a new label set), one untouched.
        table.delete(&deleted.key);
        table.apply(mk_entry("llm", "moved", "/new/*"));
        let after = table.snapshot();
        let gone = gone_labels(&before, &after);
        assert_eq!(gone, vec![deleted.labels.clone(), moved.labels.clone()]);
        assert_eq!(m.prune(&before, &after), 2);

        let text = encode(&registry);
        assert!(!text.contains("offer_name=\"deleted\""), "{text}");
        assert!(!text.contains("route=\"/old/*\""), "{text}");
        for family in [
            "requests",
            "payment_required",
            "payment_verified",
            "payment_failed",
            "charged_requests",
        ] {
            assert!(
                text.contains(&format!(
                    "obol_x402_verifier_{family}_total{{route=\"/kept/*\",offer_namespace=\"llm\",offer_name=\"kept\""
                )),
                "{family}: {text}"
            );
        }
        assert!(
            text.contains("reason=\"some_reason\""),
            "bounded series stay"
        );
        // Nothing changed: nothing pruned.
        assert_eq!(m.prune(&after, &table.snapshot()), 0);
    }
}
