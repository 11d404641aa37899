//! The x402 ForwardAuth verifier: the paid request path.
//!
//! Not built yet: issue #4 tracks this component. The binary `x402-verifier` exists so that manifests
//! and scripts can name it; it refuses to run until the component is implemented.

/// The issue that tracks this component.
pub const TRACKING_ISSUE: u32 = 4;
