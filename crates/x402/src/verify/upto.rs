//! The `upto` scheme: a metered route's requirement (the most one request may cost), the
//! local checks of a Permit2 payment for it, and the facilitator bodies that verify the
//! maximum and settle the metered charge.
//!
//! Checks, cheapest first, none of them a network call: the copied `accepted` requirement
//! (scheme, network, asset, `payTo`, maximum, `assetTransferMethod`, facilitator), then the
//! signed fields (spender = the upto proxy, recipient = `payTo`, token = the asset, permitted
//! amount ≥ the maximum, facilitator = ours, deadline and `validAfter` against `now`), then the
//! EIP-712 signature over Permit2's domain, by the same rule as `exact` (see [`super`]): a
//! 65-byte signature recovering to `from` is proven (after rewriting `v` 0/1 to 27/28 if need
//! be, and the rewritten one is sent on), anything else is left to the facilitator, which
//! checks contract wallets against the chain; only an empty signature is refused. Balance,
//! allowance and the nonce bitmap stay with the facilitator's simulation.

use alloy::primitives::{Address, B256, U256};

use crate::chain::Network;
use crate::permit2::{self, UPTO_PROXY_ADDRESS};
use crate::wire::{
    Accept, Eip712Extra, FacilitatorRequest, PaymentRequiredV2, PaymentRequirementsV2,
    ResourceInfo, UptoPaymentPayload,
};
use crate::wire::{SCHEME_UPTO, TRANSFER_METHOD_PERMIT2};

use super::{CLOCK_SKEW_SECS, Requirement, SignatureCheck, classify_signature};

/// What a metered route asks of an `upto` payment: [`Requirement`] with `amount` = the most
/// one request may cost, and the facilitator signer allowed to settle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UptoRequirement {
    /// Network, token, recipient, maximum (`amount`), token domain and timeout.
    pub base: Requirement,
    /// The facilitator's settling address (`extra.facilitatorAddress`, from its `/supported`).
    pub facilitator: Address,
}

/// An `upto` payment that passed every local check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUpto {
    /// The network paid on.
    pub network: &'static Network,
    /// The payer (`permit2Authorization.from`, proven by the signature).
    pub payer: Address,
    /// The most that may be settled (`permitted.amount`, at least the route's maximum).
    pub authorized: U256,
    /// Permit2's nonce as 32 bytes (with `payer`, the replay key).
    pub nonce: B256,
    /// Unix seconds after which the authorization can no longer settle.
    pub deadline: u64,
    /// How far the signature could be checked offline.
    pub signature: SignatureCheck,
}

impl VerifiedUpto {
    /// Rewrites the payload's signature into the form that was proven (`v` 27/28), so the
    /// facilitator verifies and settles exactly what was checked here.
    pub fn normalize(&self, payload: &mut UptoPaymentPayload) {
        if let SignatureCheck::ProvenNormalized(signature) = &self.signature {
            payload.payload.signature = signature.clone();
        }
    }
}

/// Why an `upto` payment was refused locally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UptoRejection {
    /// `accepted.scheme` is not `upto`.
    #[error("scheme {got:?} is not {SCHEME_UPTO:?}")]
    SchemeMismatch {
        /// The payload's scheme.
        got: String,
    },
    /// `accepted.network` is another chain.
    #[error("network {got:?} does not match the requirement")]
    NetworkMismatch {
        /// The payload's network.
        got: String,
    },
    /// `accepted.asset` or `permitted.token` is another token.
    #[error("token {got} does not match the requirement's asset")]
    AssetMismatch {
        /// The token named.
        got: Address,
    },
    /// `accepted.payTo` or `witness.to` is not the requirement's `payTo`.
    #[error("recipient {got} does not match payTo")]
    PayToMismatch {
        /// The recipient named.
        got: Address,
    },
    /// `accepted.amount` is not the route's maximum.
    #[error("accepted amount {got} is not the advertised maximum {want}")]
    AmountMismatch {
        /// The payload's `accepted.amount`.
        got: U256,
        /// The route's maximum.
        want: U256,
    },
    /// `permitted.amount` is below the route's maximum.
    #[error("authorized amount {got} is below the maximum {want}")]
    AmountBelowMaximum {
        /// The signed `permitted.amount`.
        got: U256,
        /// The route's maximum.
        want: U256,
    },
    /// `accepted.extra` is missing, names another token domain, or another transfer method.
    #[error(
        "accepted.extra does not match the requirement (token domain, assetTransferMethod permit2)"
    )]
    ExtraMismatch,
    /// `accepted.extra.facilitatorAddress` or `witness.facilitator` is not our facilitator.
    #[error("facilitator {got} is not the one that settles this route ({want})")]
    FacilitatorMismatch {
        /// The facilitator named.
        got: Address,
        /// Ours.
        want: Address,
    },
    /// The spender is not the `x402UptoPermit2Proxy`.
    #[error("spender {got} is not the upto proxy {UPTO_PROXY_ADDRESS}")]
    SpenderMismatch {
        /// The signed spender.
        got: Address,
    },
    /// The deadline is past, or too close to settle ([`CLOCK_SKEW_SECS`]).
    #[error("authorization expired (deadline {deadline}, now {now})")]
    Expired {
        /// The signed deadline.
        deadline: u64,
        /// The `now` passed in.
        now: u64,
    },
    /// `witness.validAfter` is in the future.
    #[error("authorization not yet valid (validAfter {valid_after}, now {now})")]
    NotYetValid {
        /// The signed `validAfter`.
        valid_after: u64,
        /// The `now` passed in.
        now: u64,
    },
    /// The signature is empty.
    #[error("signature is empty")]
    EmptySignature,
}

impl UptoRejection {
    /// A stable, machine-readable reason for logs, metrics and tests.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SchemeMismatch { .. } => "scheme_mismatch",
            Self::NetworkMismatch { .. } => "network_mismatch",
            Self::AssetMismatch { .. } => "asset_mismatch",
            Self::PayToMismatch { .. } => "pay_to_mismatch",
            Self::AmountMismatch { .. } => "amount_mismatch",
            Self::AmountBelowMaximum { .. } => "amount_below_maximum",
            Self::ExtraMismatch => "extra_mismatch",
            Self::FacilitatorMismatch { .. } => "facilitator_mismatch",
            Self::SpenderMismatch { .. } => "spender_mismatch",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::EmptySignature => "empty_signature",
        }
    }

    /// The official `upto` facilitator's `invalidReason` for the same fault (so a client sees
    /// one vocabulary whether we or the facilitator refused).
    pub fn x402_error_code(&self) -> &'static str {
        match self {
            Self::SchemeMismatch { .. } => "invalid_upto_evm_scheme",
            Self::NetworkMismatch { .. } => "invalid_upto_evm_network_mismatch",
            Self::AssetMismatch { .. } => "permit2_token_mismatch",
            Self::PayToMismatch { .. } => "invalid_permit2_recipient_mismatch",
            Self::AmountMismatch { .. } | Self::AmountBelowMaximum { .. } => {
                "permit2_amount_mismatch"
            }
            Self::ExtraMismatch => "invalid_payment_requirements",
            Self::FacilitatorMismatch { .. } => "upto_facilitator_mismatch",
            Self::SpenderMismatch { .. } => "invalid_permit2_spender",
            Self::Expired { .. } => "permit2_deadline_expired",
            Self::NotYetValid { .. } => "permit2_not_yet_valid",
            Self::EmptySignature => "invalid_permit2_signature",
        }
    }

    /// Whether the payment is for something other than this route (sign again for what the
    /// 402 states), as opposed to a payment for it that is not valid (expired, bad signature).
    pub fn is_mismatch(&self) -> bool {
        !matches!(
            self,
            Self::Expired { .. } | Self::NotYetValid { .. } | Self::EmptySignature
        )
    }
}

impl UptoRequirement {
    /// The v2 `accepts[]` entry: scheme `upto`, `amount` = the maximum, `extra` = the token's
    /// EIP-712 domain, `assetTransferMethod: permit2` and `facilitatorAddress` (what
    /// `@x402/evm`'s upto server advertises and its client needs).
    pub fn to_v2(&self) -> PaymentRequirementsV2 {
        let mut extra = Eip712Extra::new(
            self.base.eip712_name.clone(),
            self.base.eip712_version.clone(),
        );
        extra.asset_transfer_method = Some(TRANSFER_METHOD_PERMIT2.to_owned());
        extra.facilitator_address = Some(self.facilitator);
        PaymentRequirementsV2 {
            scheme: SCHEME_UPTO.to_owned(),
            extra: Some(extra),
            ..self.base.to_v2()
        }
    }

    /// The `/verify` body: the payment against its own `accepted` copy (already checked to be
    /// this requirement), i.e. against the maximum.
    pub fn verify_request(&self, payload: UptoPaymentPayload) -> FacilitatorRequest {
        let requirements = payload.accepted.clone();
        FacilitatorRequest::Upto {
            payload,
            requirements,
        }
    }

    /// The `/settle` body for a metered `charge` (at most the authorized amount): the
    /// requirement's `amount` is what the facilitator transfers.
    pub fn settle_request(&self, payload: UptoPaymentPayload, charge: U256) -> FacilitatorRequest {
        let requirements = PaymentRequirementsV2 {
            amount: charge,
            ..payload.accepted.clone()
        };
        FacilitatorRequest::Upto {
            payload,
            requirements,
        }
    }
}

/// The v2 `PAYMENT-REQUIRED` content of a metered route: two options for one resource, `upto`
/// first (the maximum; clients that can be charged for what they use should pick it) and
/// `exact` second (the approximate price, for clients without `upto`). The v1 body stays
/// `exact` only ([`super::payment_required_v1`]): v1 has no `upto`.
pub fn payment_required_metered_v2(
    exact: &Requirement,
    upto: &UptoRequirement,
    resource: &ResourceInfo,
    error: impl Into<String>,
) -> PaymentRequiredV2 {
    let mut required = super::payment_required_v2(exact, resource, error);
    required.accepts.insert(0, Accept::Parsed(upto.to_v2()));
    required
}

/// Decides whether `payload` authorizes `requirement`'s maximum at time `now` (unix seconds).
pub fn verify_upto(
    requirement: &UptoRequirement,
    payload: &UptoPaymentPayload,
    now: u64,
) -> Result<VerifiedUpto, UptoRejection> {
    let req = &requirement.base;
    check_accepted(requirement, &payload.accepted)?;
    let auth = &payload.payload.permit2_authorization;
    if auth.spender != UPTO_PROXY_ADDRESS {
        return Err(UptoRejection::SpenderMismatch { got: auth.spender });
    }
    if auth.witness.to != req.pay_to {
        return Err(UptoRejection::PayToMismatch {
            got: auth.witness.to,
        });
    }
    if auth.permitted.token != req.asset {
        return Err(UptoRejection::AssetMismatch {
            got: auth.permitted.token,
        });
    }
    if auth.permitted.amount < req.amount {
        return Err(UptoRejection::AmountBelowMaximum {
            got: auth.permitted.amount,
            want: req.amount,
        });
    }
    if auth.witness.facilitator != requirement.facilitator {
        return Err(UptoRejection::FacilitatorMismatch {
            got: auth.witness.facilitator,
            want: requirement.facilitator,
        });
    }
    if auth.deadline < now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(UptoRejection::Expired {
            deadline: auth.deadline,
            now,
        });
    }
    if auth.witness.valid_after > now {
        return Err(UptoRejection::NotYetValid {
            valid_after: auth.witness.valid_after,
            now,
        });
    }
    let chain_id = req.network.chain_id;
    let signature = classify_signature(&payload.payload.signature, auth.from, |sig| {
        permit2::recover_signer(chain_id, auth, sig)
    })
    .ok_or(UptoRejection::EmptySignature)?;
    Ok(VerifiedUpto {
        network: req.network,
        payer: auth.from,
        authorized: auth.permitted.amount,
        nonce: B256::from(auth.nonce),
        deadline: auth.deadline,
        signature,
    })
}

/// The `accepted` copy must be this requirement (addresses compared as values).
fn check_accepted(
    requirement: &UptoRequirement,
    accepted: &PaymentRequirementsV2,
) -> Result<(), UptoRejection> {
    let req = &requirement.base;
    if accepted.scheme != SCHEME_UPTO {
        return Err(UptoRejection::SchemeMismatch {
            got: accepted.scheme.clone(),
        });
    }
    if accepted.network.eip155_chain_id() != Some(req.network.chain_id) {
        return Err(UptoRejection::NetworkMismatch {
            got: accepted.network.to_string(),
        });
    }
    if accepted.asset != req.asset {
        return Err(UptoRejection::AssetMismatch {
            got: accepted.asset,
        });
    }
    if accepted.pay_to != req.pay_to {
        return Err(UptoRejection::PayToMismatch {
            got: accepted.pay_to,
        });
    }
    if accepted.amount != req.amount {
        return Err(UptoRejection::AmountMismatch {
            got: accepted.amount,
            want: req.amount,
        });
    }
    let extra = accepted
        .extra
        .as_ref()
        .ok_or(UptoRejection::ExtraMismatch)?;
    if extra.asset_transfer_method.as_deref() != Some(TRANSFER_METHOD_PERMIT2)
        || extra.name != req.eip712_name
        || extra.version != req.eip712_version
    {
        return Err(UptoRejection::ExtraMismatch);
    }
    match extra.facilitator_address {
        Some(f) if f == requirement.facilitator => Ok(()),
        got => Err(UptoRejection::FacilitatorMismatch {
            got: got.unwrap_or(Address::ZERO),
            want: requirement.facilitator,
        }),
    }
}

#[cfg(test)]
#[path = "upto_tests.rs"]
mod tests;
