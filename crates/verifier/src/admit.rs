//! Admitting a payment, the part both gateway modes share: after the local checks, **reserve**
//! the authorization, then ask the facilitator's `/verify` — or recognise a payment that was
//! settled before but whose answer never reached the client, and serve it again without a
//! second charge (from the reservation record, or from chain evidence when the record is gone).

use std::sync::Arc;

use axum::http::StatusCode;
use obol_x402::facilitator::{FacilitatorError, Meaning};
use obol_x402::verify::UptoRequirement;
use obol_x402::wire::{FacilitatorRequest, ResourceInfo, SettleResponse};
use obol_x402::{B256, Facilitator, PaymentPayload, Requirement, VerifiedPayment, codec};
use tracing::{debug, info, warn};

use crate::decide::{self, Reply};
use crate::error::Denial;
use crate::evidence::{EvidenceError, Settlement};
use crate::metrics::Outcome;
use crate::reservations::{Fingerprint, Hold, Key, Known, Lease, Record, StoreError, Token};
use crate::route::RouteEntry;
use crate::state::AppState;

/// A payment that may be served.
pub enum Admitted {
    /// A new payment the facilitator verified: settle it (or release it) after serving.
    Fresh {
        /// The reservation, `Held`.
        lease: Lease,
        /// The `/verify` body, also the `/settle` body of the `exact` scheme.
        request: Box<FacilitatorRequest>,
        /// The route's facilitator.
        facilitator: Arc<dyn Facilitator>,
    },
    /// Settled before, answer not delivered: serve it without charging.
    Reserve {
        /// The reservation, `Delivering`.
        lease: Lease,
        /// The settlement receipt (`PAYMENT-RESPONSE`).
        receipt: String,
    },
}

/// A paid request on a matched route, after its local checks passed.
pub struct Ctx<'a> {
    /// Shared state.
    pub state: &'a AppState,
    /// The matched route.
    pub route: &'a RouteEntry,
    /// Its requirement.
    pub requirement: &'a Requirement,
    /// The resource paid for.
    pub resource: &'a ResourceInfo,
    /// The client wants HTML refusals.
    pub wants_html: bool,
    /// A metered route's `upto` requirement (gateway mode): offered in its 402s besides
    /// `requirement`, and the requirement an `upto` payment is reserved under.
    pub upto: Option<&'a UptoRequirement>,
}

impl Ctx<'_> {
    /// A refused payment: count it and answer with the refusal's status.
    pub fn refuse(&self, denial: Denial) -> (Reply, Outcome) {
        let metrics = &self.state.metrics;
        metrics.denied(denial.metric_label());
        let reply = decide::refused_offering(
            self.requirement,
            self.upto,
            self.resource,
            self.wants_html,
            &denial,
            self.route.bazaar.as_ref(),
        );
        if reply.status == StatusCode::PAYMENT_REQUIRED {
            metrics
                .payment_failed
                .get_or_create(&self.route.labels)
                .inc();
        }
        debug!(route = %self.route.key, reason = denial.metric_label(), "Payment refused");
        let outcome = Outcome::of_refusal(reply.status);
        (reply, outcome)
    }

    /// Reads a facilitator failure (with what the local check proved about the signature),
    /// logs and counts it.
    pub fn facilitator_denial(
        &self,
        error: &FacilitatorError,
        verified: &VerifiedPayment,
        nonce_id: &str,
    ) -> Denial {
        let kind = error.metric_label();
        self.state.metrics.facilitator_error(kind);
        let denial = Denial::from_facilitator(error, Some(&verified.signature));
        let endpoint = error.endpoint().as_str();
        let meaning = match &denial {
            Denial::Facilitator(f) => f.meaning,
            _ => Meaning::Unavailable,
        };
        let reason = error.reason().unwrap_or("");
        match meaning {
            Meaning::Refused | Meaning::AlreadyUsed => {
                info!(route = %self.route.key, endpoint, meaning = meaning.metric_label(), reason, nonce = %nonce_id, "Facilitator refused the payment");
            }
            Meaning::Unavailable | Meaning::SettleUnknown => {
                warn!(route = %self.route.key, endpoint, kind, meaning = meaning.metric_label(), reason, nonce = %nonce_id, "Facilitator could not complete the payment");
            }
        }
        denial
    }

    /// What a reservation of this payment is recorded under: the `upto` requirement for a
    /// metered payment, else the route's.
    fn fingerprint(&self, metered: bool) -> Fingerprint {
        match self.upto {
            Some(upto) if metered => Fingerprint::of(&upto.base),
            _ => Fingerprint::of(self.requirement),
        }
    }

    /// Reserves the authorization and verifies it (or recognises a re-serve).
    pub async fn admit(
        &self,
        payload: PaymentPayload,
        verified: &VerifiedPayment,
        now: u64,
    ) -> Result<Admitted, Denial> {
        let request = self
            .requirement
            .facilitator_request(payload, self.resource)
            .map_err(|_| Denial::UnsupportedVersion);
        self.admit_request(request, verified, false, now).await
    }

    /// [`Self::admit`] with the `/verify` body built by the caller (an `upto` payment's,
    /// `metered`, with `verified` its replay key, payer and deadline).
    pub async fn admit_request(
        &self,
        request: Result<FacilitatorRequest, Denial>,
        verified: &VerifiedPayment,
        metered: bool,
        now: u64,
    ) -> Result<Admitted, Denial> {
        let state = self.state;
        let key = Key::new(verified.payer, verified.nonce);
        let fingerprint = self.fingerprint(metered);
        let deadline = now.saturating_add(state.hold_secs);
        let hold = state
            .reservations
            .hold(key, verified.valid_before, now, deadline, fingerprint)
            .await
            .map_err(store_denial)?;
        let mut lease = match hold {
            Hold::Taken(lease) => lease,
            Hold::Known(known) => {
                return self.known(key, known, verified, fingerprint, now).await;
            }
        };
        let release = |lease: Lease, denial: Denial| async move {
            if let Err(error) = state.reservations.release(&lease).await {
                warn!(route = %self.route.key, %error, nonce = %short_hash(&key.nonce), "Cannot release a reservation; it expires by itself");
            }
            denial
        };
        let request = match request {
            Ok(r) => r,
            Err(denial) => return Err(release(lease, denial).await),
        };
        let facilitator = match state.facilitators.for_route(self.route) {
            Ok(f) => f,
            Err(denial) => return Err(release(lease, denial).await),
        };
        match facilitator.verify(&request).await {
            Ok(_) => Ok(Admitted::Fresh {
                lease,
                request: Box::new(request),
                facilitator,
            }),
            Err(error) => {
                let nonce_id = short_hash(&key.nonce);
                let denial = self.facilitator_denial(&error, verified, &nonce_id);
                if denial.says_already_used()
                    && let Ok(Some(receipt)) = self.chain_receipt(verified, now).await
                {
                    let record = self.delivering(lease.token, now, fingerprint, &receipt);
                    if state
                        .reservations
                        .set(&mut lease, record)
                        .await
                        .map_err(store_denial)?
                    {
                        info!(route = %self.route.key, nonce = %nonce_id, "Settled on chain before, never served: serving it once");
                        return Ok(Admitted::Reserve { lease, receipt });
                    }
                }
                Err(release(lease, denial).await)
            }
        }
    }

    async fn known(
        &self,
        key: Key,
        known: Known,
        verified: &VerifiedPayment,
        fingerprint: Fingerprint,
        now: u64,
    ) -> Result<Admitted, Denial> {
        let nonce_id = short_hash(&key.nonce);
        let (expected, receipt) = match known {
            Known::InFlight { retry_after } => return Err(Denial::InFlight { retry_after }),
            Known::Replayed => return Err(Denial::Replayed),
            Known::Reserve { expected, receipt } => (expected, receipt),
            Known::AskChain { expected } => match self.chain_receipt(verified, now).await {
                Ok(Some(receipt)) => (expected, receipt),
                Ok(None) | Err(EvidenceError::NoRpc(_)) => return Err(Denial::Replayed),
                Err(error) => {
                    warn!(route = %self.route.key, %error, nonce = %nonce_id, "Cannot ask the chain about an earlier settlement");
                    return Err(Denial::ChainUnavailable);
                }
            },
        };
        let token = Token::random();
        let record = self.delivering(token, now, fingerprint, &receipt);
        match self
            .state
            .reservations
            .take_over(key, token, &expected, record)
            .await
            .map_err(store_denial)?
        {
            Some(lease) => {
                info!(route = %self.route.key, nonce = %nonce_id, "Settled before, never served: serving it once");
                Ok(Admitted::Reserve { lease, receipt })
            }
            // Another copy took it over first.
            None => Err(Denial::InFlight { retry_after: 1 }),
        }
    }

    fn delivering(
        &self,
        token: Token,
        now: u64,
        fingerprint: Fingerprint,
        receipt: &str,
    ) -> Record {
        Record::Delivering {
            token,
            deadline: now.saturating_add(self.state.hold_secs),
            fingerprint,
            receipt: receipt.to_owned(),
        }
    }

    /// A receipt for the settlement the chain shows, if it shows one.
    async fn chain_receipt(
        &self,
        verified: &VerifiedPayment,
        now: u64,
    ) -> Result<Option<String>, EvidenceError> {
        let Some(evidence) = &self.state.evidence else {
            return Err(EvidenceError::NoRpc(
                self.requirement.network.caip2().to_string(),
            ));
        };
        let what = Settlement {
            requirement: self.requirement,
            payer: verified.payer,
            nonce: verified.nonce,
        };
        let Some(tx) = evidence.settled(what, now).await? else {
            return Ok(None);
        };
        let settle = SettleResponse {
            success: true,
            error_reason: None,
            error_message: None,
            transaction: tx,
            network: self.requirement.network.caip2().to_string(),
            payer: Some(verified.payer.to_checksum(None)),
            amount: None,
            extensions: None,
        };
        Ok(codec::encode_header(&settle).ok())
    }
}

/// Maps a store failure to its refusal (503 either way: never let a payment through unchecked).
pub fn store_denial(error: StoreError) -> Denial {
    match error {
        StoreError::Full => Denial::Busy,
        StoreError::Unavailable(detail) => {
            warn!(%detail, "Reservation store unavailable: refusing paid requests");
            Denial::ReservationsUnavailable
        }
    }
}

/// A log-safe nonce identifier: the first 8 bytes of its SHA-256, hex.
pub fn short_hash(nonce: &B256) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(nonce.as_slice())[..8])
}
