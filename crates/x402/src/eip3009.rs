//! EIP-3009 `TransferWithAuthorization`: EIP-712 hashing, signing and local recovery.
//!
//! The digest is `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message))`, where the domain
//! is the token's `{name, version, chainId, verifyingContract}` (x402.md §5.1). Recovery
//! follows FiatToken v2.2 for EOAs: exactly 65 bytes `r‖s‖v`, `v ∈ {27, 28}`, low `s`; a
//! signature the token would refuse is refused here too.

use alloy::primitives::{Address, B256, Bytes, Signature, U256, b256};
use alloy::sol_types::{Eip712Domain, SolStruct};

use crate::key::PrivateKey;
use crate::wire::{Authorization, ExactEvmPayload};

alloy::sol! {
    /// The EIP-3009 message, as hashed by EIP-712.
    #[derive(Debug, PartialEq, Eq)]
    struct TransferWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }
}

/// `keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")`.
pub const DOMAIN_TYPEHASH: B256 =
    b256!("0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f");

/// `keccak256("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")`.
pub const TRANSFER_WITH_AUTHORIZATION_TYPEHASH: B256 =
    b256!("0x7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267");

/// Length of an EOA signature `r‖s‖v`.
pub const EOA_SIGNATURE_LEN: usize = 65;

/// The EIP-712 domain of an EIP-3009 token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenDomain {
    /// Domain `name` (`extra.name`).
    pub name: String,
    /// Domain `version` (`extra.version`).
    pub version: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The token (proxy) address, i.e. the requirement's `asset`.
    pub verifying_contract: Address,
}

impl TokenDomain {
    /// A domain from its four fields.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        chain_id: u64,
        verifying_contract: Address,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            chain_id,
            verifying_contract,
        }
    }

    /// The alloy form of the domain.
    pub fn eip712(&self) -> Eip712Domain {
        Eip712Domain::new(
            Some(self.name.clone().into()),
            Some(self.version.clone().into()),
            Some(U256::from(self.chain_id)),
            Some(self.verifying_contract),
            None,
        )
    }

    /// The domain separator (what FiatToken's `DOMAIN_SEPARATOR()` returns).
    pub fn separator(&self) -> B256 {
        self.eip712().separator()
    }
}

impl From<&Authorization> for TransferWithAuthorization {
    fn from(a: &Authorization) -> Self {
        Self {
            from: a.from,
            to: a.to,
            value: a.value,
            validAfter: U256::from(a.valid_after),
            validBefore: U256::from(a.valid_before),
            nonce: a.nonce,
        }
    }
}

/// Why a signature could not be produced or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not 65 bytes: an ERC-1271 / ERC-6492 contract-wallet signature, which only an on-chain
    /// check (the facilitator) can verify.
    #[error("signature is {0} bytes, not a 65-byte EOA signature")]
    NotEoa(usize),
    /// `v` is not 27 or 28 (FiatToken's `ecrecover` accepts nothing else).
    #[error("signature v = {0}, expected 27 or 28")]
    InvalidV(u8),
    /// `s` is in the upper half of the curve order (malleable; FiatToken refuses it).
    #[error("signature s is not in the lower half of the curve order")]
    HighS,
    /// No public key recovers from the signature.
    #[error("signature does not recover to any address")]
    Unrecoverable,
    /// The signer failed.
    #[error("signing failed")]
    SigningFailed,
}

impl SignatureError {
    /// A bounded, machine-readable label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotEoa(_) => "signature_not_eoa",
            Self::InvalidV(_) => "signature_invalid_v",
            Self::HighS => "signature_high_s",
            Self::Unrecoverable => "signature_unrecoverable",
            Self::SigningFailed => "signing_failed",
        }
    }
}

/// `hashStruct(message)` of the authorization.
pub fn struct_hash(message: &TransferWithAuthorization) -> B256 {
    message.eip712_hash_struct()
}

/// The digest the payer signs and the token recovers from.
pub fn signing_hash(domain: &TokenDomain, message: &TransferWithAuthorization) -> B256 {
    message.eip712_signing_hash(&domain.eip712())
}

/// Signs an authorization: 65 bytes `r‖s‖v` with `v ∈ {27, 28}` and low `s`, deterministic
/// (RFC 6979), as `eth_signTypedData_v4` would produce.
pub fn sign(
    key: &PrivateKey,
    domain: &TokenDomain,
    message: &TransferWithAuthorization,
) -> Result<Bytes, SignatureError> {
    let signature = key.sign_hash(&signing_hash(domain, message))?;
    Ok(Bytes::copy_from_slice(&signature.as_bytes()))
}

/// Builds and signs the `payload` of an `exact` payment for `authorization`.
pub fn sign_payload(
    key: &PrivateKey,
    domain: &TokenDomain,
    authorization: Authorization,
) -> Result<ExactEvmPayload, SignatureError> {
    let signature = sign(
        key,
        domain,
        &TransferWithAuthorization::from(&authorization),
    )?;
    Ok(ExactEvmPayload {
        signature,
        authorization,
    })
}

/// Recovers the signer of an authorization from a 65-byte EOA signature.
///
/// The caller compares the result with `authorization.from`; a wrong domain recovers to some
/// other address rather than failing.
pub fn recover_signer(
    domain: &TokenDomain,
    message: &TransferWithAuthorization,
    signature: &[u8],
) -> Result<Address, SignatureError> {
    recover_prehash(&signing_hash(domain, message), signature)
}

/// Recovers the signer of `digest` from a 65-byte EOA signature `r‖s‖v` with `v ∈ {27, 28}`
/// and low `s` (the rules of FiatToken and of Permit2's EOA path).
pub(crate) fn recover_prehash(digest: &B256, signature: &[u8]) -> Result<Address, SignatureError> {
    let raw: &[u8; EOA_SIGNATURE_LEN] = signature
        .try_into()
        .map_err(|_| SignatureError::NotEoa(signature.len()))?;
    let v = raw[EOA_SIGNATURE_LEN - 1];
    if v != 27 && v != 28 {
        return Err(SignatureError::InvalidV(v));
    }
    let parsed = Signature::from_raw_array(raw).map_err(|_| SignatureError::InvalidV(v))?;
    if parsed.normalize_s().is_some() {
        return Err(SignatureError::HighS);
    }
    parsed
        .recover_address_from_prehash(digest)
        .map_err(|_| SignatureError::Unrecoverable)
}

#[cfg(test)]
#[path = "eip3009_tests.rs"]
mod tests;
