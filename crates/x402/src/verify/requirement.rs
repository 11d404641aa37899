//! A route's payment requirement, and the 402 answers built from it.

use alloy::primitives::{Address, U256};

use crate::chain::Network;
use crate::eip3009::TokenDomain;
use crate::wire::{Accept, Eip712Extra, FacilitatorRequest, PaymentPayload};
use crate::wire::{PaymentRequiredV1, PaymentRequiredV2};
use crate::wire::{PaymentRequirementsV1, PaymentRequirementsV2, ResourceInfo, SCHEME_EXACT};

/// What one route charges: an `exact` EIP-3009 payment of `amount` atomic units of `asset` to
/// `pay_to` on `network`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The chain.
    pub network: &'static Network,
    /// The token (proxy) address; also the EIP-712 `verifyingContract`.
    pub asset: Address,
    /// The recipient.
    pub pay_to: Address,
    /// The price in atomic units; payments must match it exactly.
    pub amount: U256,
    /// The token's EIP-712 domain `name` (Base Sepolia USDC: `USDC`).
    pub eip712_name: String,
    /// The token's EIP-712 domain `version`.
    pub eip712_version: String,
    /// Validity the buyer should give its authorization (offer value; 60 s is the v2 default).
    pub max_timeout_seconds: u64,
}

/// A requirement that cannot be built or expressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequirementError {
    /// The chain table has no USDC for this network.
    #[error("no USDC deployment known on {0}")]
    NoUsdc(&'static str),
    /// v1 needs a network name every v1 peer knows; this chain has none (use v2).
    #[error("{0} has no x402 v1 network name; use x402 v2")]
    NoV1Name(&'static str),
}

impl RequirementError {
    /// A bounded, machine-readable label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NoUsdc(_) => "no_usdc",
            Self::NoV1Name(_) => "no_v1_name",
        }
    }
}

impl Requirement {
    /// A price in the network's USDC (domain name and version from the chain table).
    pub fn usdc(
        network: &'static Network,
        pay_to: Address,
        amount: U256,
        max_timeout_seconds: u64,
    ) -> Result<Self, RequirementError> {
        let usdc = network
            .usdc
            .as_ref()
            .ok_or(RequirementError::NoUsdc(network.name))?;
        Ok(Self {
            network,
            asset: usdc.address,
            pay_to,
            amount,
            eip712_name: usdc.eip712_name.to_owned(),
            eip712_version: usdc.eip712_version.to_owned(),
            max_timeout_seconds,
        })
    }

    /// The EIP-712 domain signatures are checked against: chain id and contract come from the
    /// requirement itself, so they cannot disagree with `network` and `asset`.
    pub fn domain(&self) -> TokenDomain {
        TokenDomain::new(
            self.eip712_name.clone(),
            self.eip712_version.clone(),
            self.network.chain_id,
            self.asset,
        )
    }

    /// The EIP-712 domain in words, for a refusal that must say what to sign with.
    pub fn domain_words(&self) -> String {
        format!(
            "EIP-712 domain name {:?}, version {:?}, chainId {}, verifyingContract {}",
            self.eip712_name,
            self.eip712_version,
            self.network.chain_id,
            self.asset.to_checksum(None)
        )
    }

    fn extra(&self) -> Eip712Extra {
        Eip712Extra::new(self.eip712_name.clone(), self.eip712_version.clone())
    }

    /// The v1 `accepts[]` entry; `resource` fills `resource`, `description` and `mimeType`
    /// (absent ones become `""`, as TS requires the keys).
    pub fn to_v1(
        &self,
        resource: &ResourceInfo,
    ) -> Result<PaymentRequirementsV1, RequirementError> {
        let network = self
            .network
            .v1_name()
            .ok_or(RequirementError::NoV1Name(self.network.name))?;
        Ok(PaymentRequirementsV1 {
            scheme: SCHEME_EXACT.to_owned(),
            network,
            max_amount_required: self.amount,
            asset: self.asset,
            pay_to: self.pay_to,
            resource: resource.url.clone(),
            description: resource.description.clone().unwrap_or_default(),
            mime_type: resource.mime_type.clone().unwrap_or_default(),
            output_schema: None,
            max_timeout_seconds: self.max_timeout_seconds,
            extra: Some(self.extra()),
        })
    }

    /// The `/verify` and `/settle` body for a payload matched to this requirement.
    ///
    /// v1 sends [`Self::to_v1`]; v2 sends the payload's own `accepted` copy, because x402-rs
    /// demands `accepted == paymentRequirements` and [`crate::verify_payment`] has already
    /// checked that copy against this requirement.
    pub fn facilitator_request(
        &self,
        payload: PaymentPayload,
        resource: &ResourceInfo,
    ) -> Result<FacilitatorRequest, RequirementError> {
        Ok(match payload {
            PaymentPayload::V1(payload) => FacilitatorRequest::V1 {
                payload,
                requirements: self.to_v1(resource)?,
            },
            PaymentPayload::V2(payload) => {
                let requirements = payload.accepted.clone();
                FacilitatorRequest::V2 {
                    payload,
                    requirements,
                }
            }
        })
    }

    /// A v2 payment header (base64 JSON) that spends `authorization`, signed by `key` for this
    /// requirement's token domain and accepting exactly this requirement: what a buyer that
    /// holds the key sends (tests, benchmarks, the local payer).
    pub fn signed_v2_header(
        &self,
        key: &crate::key::PrivateKey,
        authorization: crate::wire::Authorization,
    ) -> crate::Result<String> {
        let payload = crate::eip3009::sign_payload(key, &self.domain(), authorization)?;
        Ok(crate::codec::encode_header(
            &crate::wire::PaymentPayloadV2 {
                x402_version: Default::default(),
                resource: None,
                accepted: self.to_v2(),
                payload,
                extensions: None,
            },
        )?)
    }

    /// The v2 `accepts[]` entry (what a v2 buyer copies into `accepted`).
    pub fn to_v2(&self) -> PaymentRequirementsV2 {
        PaymentRequirementsV2 {
            scheme: SCHEME_EXACT.to_owned(),
            network: self.network.caip2(),
            amount: self.amount,
            asset: self.asset,
            pay_to: self.pay_to,
            max_timeout_seconds: self.max_timeout_seconds,
            extra: Some(self.extra()),
        }
    }
}

/// The v1 402 JSON body: `{x402Version: 1, error, accepts: [requirement]}`.
pub fn payment_required_v1(
    requirement: &Requirement,
    resource: &ResourceInfo,
    error: impl Into<String>,
) -> Result<PaymentRequiredV1, RequirementError> {
    Ok(PaymentRequiredV1 {
        x402_version: Default::default(),
        error: Some(error.into()),
        accepts: vec![Accept::Parsed(requirement.to_v1(resource)?)],
    })
}

/// The v2 `PAYMENT-REQUIRED` content: `{x402Version: 2, error, resource, accepts}`.
pub fn payment_required_v2(
    requirement: &Requirement,
    resource: &ResourceInfo,
    error: impl Into<String>,
) -> PaymentRequiredV2 {
    PaymentRequiredV2 {
        x402_version: Default::default(),
        error: Some(error.into()),
        resource: resource.clone(),
        accepts: vec![Accept::Parsed(requirement.to_v2())],
        extensions: None,
    }
}
