//! Pure payment decisions: does a decoded payload pay a route's [`Requirement`]?
//!
//! No I/O and no clock: the caller passes `now` (unix seconds). What this cannot see — balance,
//! a used nonce, contract-wallet signatures — stays with the facilitator (or an
//! `authorizationState` read); a local pass is a cheap pre-check, not a settlement guarantee.
//!
//! Checks, cheapest first: scheme, network, (v2) the copied `accepted` requirement, recipient,
//! amount, validity window, signature.
//!
//! **Signatures.** A 65-byte ECDSA signature that recovers to `authorization.from` under the
//! route's EIP-712 domain is proven here ([`SignatureCheck::Proven`]); one whose `v` is 0/1
//! (the y-parity form some signers emit) is proven after rewriting `v` to 27/28, and the
//! rewritten signature is what goes to the facilitator, for `/verify` and `/settle` alike
//! ([`VerifiedPayment::normalize`]): FiatToken's `(v, r, s)` entry point accepts nothing else.
//! Anything else — an ERC-1271 contract wallet's signature (any length, possibly 65 bytes
//! from its owner key), an ERC-6492 wrapper for a wallet not yet deployed, or simply a wrong
//! domain — cannot be decided offline: it is [`SignatureCheck::Deferred`] to the facilitator,
//! which checks it against the chain. Refusing it here would refuse every smart-contract
//! wallet; accepting it opens nothing a payer could not already do with a fresh key. Only an
//! empty signature is refused outright.
//!
//! **Amount rule: `value == amount`, in v2 and in v1.** v2 says so explicitly ("does not exactly
//! match"). v1's `maxAmountRequired` reads like a ceiling and the legacy TS facilitator accepts
//! `value >= maxAmountRequired`, but EIP-3009 transfers the whole `value`: accepting more would
//! silently overcharge a buggy or confused client with no refund path, and every official
//! client (and our buyer) signs exactly the required amount, so equality rejects no honest
//! payer while keeping one rule for both versions.

mod requirement;
mod upto;

use alloy::primitives::{Address, B256, Bytes, U256};

use crate::chain::Network;
use crate::eip3009::{self, SignatureError, TransferWithAuthorization};
use crate::wire::{PaymentPayload, PaymentRequirementsV2, SCHEME_EXACT, X402Version};

pub use requirement::{Requirement, RequirementError, payment_required_v1, payment_required_v2};
pub use upto::{
    UptoRejection, UptoRequirement, VerifiedUpto, payment_required_metered_v2, verify_upto,
};

/// Seconds an authorization must still be valid after `now` (x402-rs and TS/Go use 6 s): room
/// for settlement to land, and for our clock running behind the chain's.
///
/// There is no margin on `validAfter`: both references refuse `validAfter > now`, so being more
/// lenient would accept payments the facilitator then rejects. Buyers backdate `validAfter`
/// (TS: `now - 600`) to absorb skew on that side.
pub const CLOCK_SKEW_SECS: u64 = 6;

/// A payment that passed every local check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPayment {
    /// Protocol version of the payload.
    pub version: X402Version,
    /// The network paid on.
    pub network: &'static Network,
    /// The payer (`authorization.from`, proven by the signature).
    pub payer: Address,
    /// Atomic units transferred (equal to the requirement's amount).
    pub amount: U256,
    /// The EIP-3009 nonce (with `payer`, the replay key).
    pub nonce: B256,
    /// Unix seconds after which the authorization can no longer settle.
    pub valid_before: u64,
    /// How far the signature could be checked offline.
    pub signature: SignatureCheck,
}

impl VerifiedPayment {
    /// Rewrites the payload's signature into the form that was proven (`v` 27/28), so the
    /// facilitator verifies and settles exactly what was checked here.
    pub fn normalize(&self, payload: &mut PaymentPayload) {
        if let SignatureCheck::ProvenNormalized(signature) = &self.signature {
            payload.exact_mut().signature = signature.clone();
        }
    }

    /// Whether the signature was proven to be `from`'s.
    pub fn signature_proven(&self) -> bool {
        matches!(
            self.signature,
            SignatureCheck::Proven | SignatureCheck::ProvenNormalized(_)
        )
    }
}

/// How far a payment's signature could be checked offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// A 65-byte ECDSA signature recovering to `from` under the route's domain.
    Proven,
    /// Proven after rewriting `v` from 0/1 to 27/28: this is the signature to send on.
    ProvenNormalized(Bytes),
    /// Not decidable offline; the facilitator checks it against the chain.
    Deferred(DeferredSignature),
}

/// Why a signature was left to the facilitator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferredSignature {
    /// An ERC-6492 wrapper (a contract wallet that may not be deployed yet).
    Erc6492,
    /// Not 65 bytes: an ERC-1271 contract wallet's signature.
    ContractWallet {
        /// Length in bytes.
        len: usize,
    },
    /// 65 bytes that do not recover to `from` under the route's domain: a contract wallet's
    /// owner signature, or a signature made for another domain.
    NotFrom {
        /// The address it recovers to under the route's domain, when it recovers at all.
        recovered: Option<Address>,
    },
}

/// The 32-byte suffix that marks an ERC-6492 signature.
pub const ERC6492_MAGIC_SUFFIX: [u8; 32] = [
    0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92,
    0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92, 0x64, 0x92,
];

/// Why a payment was refused locally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The payload's scheme is not `exact`.
    #[error("scheme {got:?} is not {SCHEME_EXACT:?}")]
    SchemeMismatch {
        /// The payload's scheme.
        got: String,
    },
    /// The payload names another network (or one this crate does not know).
    #[error("network {got:?} does not match the requirement")]
    NetworkMismatch {
        /// The payload's network.
        got: String,
    },
    /// The v2 `accepted.asset` is another token.
    #[error("asset {got} does not match the requirement")]
    AssetMismatch {
        /// The payload's asset.
        got: Address,
    },
    /// `accepted.payTo` or `authorization.to` is not the requirement's `payTo`.
    #[error("recipient {got} does not match payTo")]
    PayToMismatch {
        /// The payload's recipient.
        got: Address,
    },
    /// `authorization.value` (or v2 `accepted.amount`) differs from the price.
    #[error("amount {got} does not exactly match the required {want}")]
    AmountMismatch {
        /// What the payload offers.
        got: U256,
        /// The price.
        want: U256,
    },
    /// The v2 `accepted.extra` names another EIP-712 domain, or none.
    #[error("EIP-712 domain in extra does not match the token's")]
    DomainMismatch,
    /// `extra.assetTransferMethod` is not `eip3009` (e.g. `permit2`).
    #[error("asset transfer method {0:?} is not supported")]
    UnsupportedTransferMethod(String),
    /// `validBefore` is already past, or too close to settle ([`CLOCK_SKEW_SECS`]).
    #[error("authorization expired (validBefore {valid_before}, now {now})")]
    Expired {
        /// The authorization's `validBefore`.
        valid_before: u64,
        /// The `now` passed in.
        now: u64,
    },
    /// `validAfter` is in the future.
    #[error("authorization not yet valid (validAfter {valid_after}, now {now})")]
    NotYetValid {
        /// The authorization's `validAfter`.
        valid_after: u64,
        /// The `now` passed in.
        now: u64,
    },
    /// The signature is empty.
    #[error("signature is empty")]
    EmptySignature,
}

impl Rejection {
    /// A stable, machine-readable reason for logs, metrics and tests.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SchemeMismatch { .. } => "scheme_mismatch",
            Self::NetworkMismatch { .. } => "network_mismatch",
            Self::AssetMismatch { .. } => "asset_mismatch",
            Self::PayToMismatch { .. } => "pay_to_mismatch",
            Self::AmountMismatch { .. } => "amount_mismatch",
            Self::DomainMismatch => "domain_mismatch",
            Self::UnsupportedTransferMethod(_) => "unsupported_transfer_method",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::EmptySignature => "empty_signature",
        }
    }

    /// A bounded label for metrics (same as [`Self::reason`]).
    pub fn metric_label(&self) -> &'static str {
        self.reason()
    }

    /// The closest x402 v2 spec error code, for the `error` of a 402 answer.
    pub fn x402_error_code(&self) -> &'static str {
        match self {
            Self::SchemeMismatch { .. } => "unsupported_scheme",
            Self::NetworkMismatch { .. } => "invalid_network",
            Self::AssetMismatch { .. }
            | Self::DomainMismatch
            | Self::UnsupportedTransferMethod(_) => "invalid_payment_requirements",
            Self::PayToMismatch { .. } => "invalid_exact_evm_payload_recipient_mismatch",
            Self::AmountMismatch { .. } => "invalid_exact_evm_payload_authorization_value_mismatch",
            Self::Expired { .. } => "invalid_exact_evm_payload_authorization_valid_before",
            Self::NotYetValid { .. } => "invalid_exact_evm_payload_authorization_valid_after",
            Self::EmptySignature => "invalid_exact_evm_payload_signature",
        }
    }

    /// Whether the payment pays for something else than the requirement (as opposed to a
    /// matching payment that is not valid): `no_matching_requirement` rather than
    /// `payment_invalid`.
    pub fn is_mismatch(&self) -> bool {
        !matches!(
            self,
            Self::Expired { .. } | Self::NotYetValid { .. } | Self::EmptySignature
        )
    }
}

/// Decides whether `payload` pays `requirement` at time `now` (unix seconds).
pub fn verify_payment(
    requirement: &Requirement,
    payload: &PaymentPayload,
    now: u64,
) -> Result<VerifiedPayment, Rejection> {
    match payload {
        PaymentPayload::V1(p) => {
            check_scheme(&p.scheme)?;
            let network = Network::resolve(p.network.as_str()).ok();
            if network != Some(requirement.network) {
                return Err(Rejection::NetworkMismatch {
                    got: p.network.to_string(),
                });
            }
        }
        PaymentPayload::V2(p) => check_accepted(requirement, &p.accepted)?,
    }
    let exact = payload.exact();
    let auth = &exact.authorization;
    if auth.to != requirement.pay_to {
        return Err(Rejection::PayToMismatch { got: auth.to });
    }
    if auth.value != requirement.amount {
        return Err(Rejection::AmountMismatch {
            got: auth.value,
            want: requirement.amount,
        });
    }
    if auth.valid_before < now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(Rejection::Expired {
            valid_before: auth.valid_before,
            now,
        });
    }
    if auth.valid_after > now {
        return Err(Rejection::NotYetValid {
            valid_after: auth.valid_after,
            now,
        });
    }
    let signature = check_signature(requirement, auth, &exact.signature)?;
    Ok(VerifiedPayment {
        version: payload.version(),
        network: requirement.network,
        payer: auth.from,
        amount: auth.value,
        nonce: auth.nonce,
        valid_before: auth.valid_before,
        signature,
    })
}

/// See the module documentation: prove an EOA signature, defer anything else.
fn check_signature(
    requirement: &Requirement,
    auth: &crate::wire::Authorization,
    signature: &Bytes,
) -> Result<SignatureCheck, Rejection> {
    let message = TransferWithAuthorization::from(auth);
    let domain = requirement.domain();
    classify_signature(signature, auth.from, |sig| {
        eip3009::recover_signer(&domain, &message, sig)
    })
    .ok_or(Rejection::EmptySignature)
}

/// How far `signature` proves `from` offline, with `recover` the scheme's EOA recovery: proven
/// (possibly after rewriting `v` 0/1 to 27/28), or deferred to the facilitator. `None` for an
/// empty signature, the only one refused outright. Shared by `exact` and `upto`.
pub(crate) fn classify_signature(
    signature: &Bytes,
    from: Address,
    recover: impl Fn(&[u8]) -> Result<Address, SignatureError>,
) -> Option<SignatureCheck> {
    if signature.is_empty() {
        return None;
    }
    if signature.ends_with(&ERC6492_MAGIC_SUFFIX) {
        return Some(SignatureCheck::Deferred(DeferredSignature::Erc6492));
    }
    let recovered = match recover(signature) {
        Ok(signer) if signer == from => return Some(SignatureCheck::Proven),
        Ok(signer) => Some(signer),
        Err(SignatureError::NotEoa(len)) => {
            return Some(SignatureCheck::Deferred(
                DeferredSignature::ContractWallet { len },
            ));
        }
        Err(SignatureError::InvalidV(v @ (0 | 1))) => {
            let mut fixed = signature.to_vec();
            fixed[eip3009::EOA_SIGNATURE_LEN - 1] = v + 27;
            match recover(&fixed) {
                Ok(signer) if signer == from => {
                    return Some(SignatureCheck::ProvenNormalized(fixed.into()));
                }
                Ok(signer) => Some(signer),
                Err(_) => None,
            }
        }
        Err(_) => None,
    };
    Some(SignatureCheck::Deferred(DeferredSignature::NotFrom {
        recovered,
    }))
}

fn check_scheme(scheme: &str) -> Result<(), Rejection> {
    if scheme == SCHEME_EXACT {
        Ok(())
    } else {
        Err(Rejection::SchemeMismatch {
            got: scheme.to_owned(),
        })
    }
}

/// The v2 `accepted` copy must be this requirement (addresses compared as values, so the case
/// of the hex digits does not matter).
fn check_accepted(req: &Requirement, accepted: &PaymentRequirementsV2) -> Result<(), Rejection> {
    check_scheme(&accepted.scheme)?;
    if accepted.network.eip155_chain_id() != Some(req.network.chain_id) {
        return Err(Rejection::NetworkMismatch {
            got: accepted.network.to_string(),
        });
    }
    if accepted.asset != req.asset {
        return Err(Rejection::AssetMismatch {
            got: accepted.asset,
        });
    }
    if accepted.pay_to != req.pay_to {
        return Err(Rejection::PayToMismatch {
            got: accepted.pay_to,
        });
    }
    if accepted.amount != req.amount {
        return Err(Rejection::AmountMismatch {
            got: accepted.amount,
            want: req.amount,
        });
    }
    let extra = accepted.extra.as_ref().ok_or(Rejection::DomainMismatch)?;
    if !extra.is_eip3009() {
        let method = extra.asset_transfer_method.clone().unwrap_or_default();
        return Err(Rejection::UnsupportedTransferMethod(method));
    }
    if extra.name != req.eip712_name || extra.version != req.eip712_version {
        return Err(Rejection::DomainMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
