//! The x402 buyer: spends pre-signed authorizations, never twice.
//!
//! Work in progress (issue #7): the spend journal is in place; the proxy follows.

pub mod journal;

/// The issue that tracks this component.
pub const TRACKING_ISSUE: u32 = 7;
