//! The x402 buyer: spends pre-signed authorizations, never twice.
//!
//! Not built yet: issue #7 tracks this component. The binary `x402-buyer` exists so that manifests
//! and scripts can name it; it refuses to run until the component is implemented.

/// The issue that tracks this component.
pub const TRACKING_ISSUE: u32 = 7;
