//! x402 payment protocol core: what the verifier, the buyer and the CLI share.
//!
//! This crate owns the x402 v1 and v2 wire types ([`wire`]) and their base64(JSON) header
//! codecs ([`codec`]); the table of networks and USDC deployments ([`chain`]); EIP-3009
//! `TransferWithAuthorization` hashing, signing and signature recovery ([`eip3009`], keys in
//! [`PrivateKey`]); pure verification decisions and 402 answers ([`verify`]); the facilitator
//! seam ([`facilitator`]: the [`Facilitator`] trait, what its answers mean and, with the
//! default `http` feature, a reqwest implementation); and the stable reason codes of every
//! refusal ([`refusal`]).
//!
//! It depends on no other internal crate, holds no kube client, and reads no clock: time is
//! always an argument. Protocol references: `x402.md` and `obol-reference.md` §5 of the shared
//! design docs.
//!
//! ```
//! use obol_x402::{Network, Requirement, U256, codec, verify};
//!
//! let net = Network::resolve("eip155:84532")?; // same entry as "base-sepolia"
//! let pay_to = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C".parse()?;
//! let requirement = Requirement::usdc(net, pay_to, U256::from(10_000u64), 60)?;
//! let header = codec::encode_header(&requirement.to_v2())?;
//! assert!(!header.is_empty());
//! # let _ = verify::CLOCK_SKEW_SECS;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod chain;
pub mod codec;
pub mod eip3009;
pub mod error;
pub mod facilitator;
mod key;
pub mod permit2;
pub mod refusal;
#[cfg(feature = "http")]
pub mod rpc;
pub mod verify;
pub mod wire;

pub use alloy::primitives::{Address, B256, Bytes, U256};

pub use chain::{NETWORKS, Network, USDC_DECIMALS};
pub use eip3009::TokenDomain;
pub use error::{DecodeError, EncodeError, Error, Result, UnknownNetwork};
pub use facilitator::{Facilitator, FacilitatorError};
#[cfg(feature = "http")]
pub use facilitator::{HttpFacilitator, HttpFacilitatorConfig};
pub use key::{InvalidPrivateKey, KeyFileError, KeystoreError, PrivateKey};
pub use refusal::{Reason, Refusal};
pub use verify::{Rejection, Requirement, VerifiedPayment, verify_payment};
pub use wire::{PaymentPayload, PaymentRequired, X402Version};
