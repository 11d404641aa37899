//! The ERC-8004 registrar: on-chain agent registration for RegistrationRequests.
//!
//! Not built yet: issue #6 tracks this component. The binary `erc8004-registrar` exists so that manifests
//! and scripts can name it; it refuses to run until the component is implemented.

/// The issue that tracks this component.
pub const TRACKING_ISSUE: u32 = 6;
