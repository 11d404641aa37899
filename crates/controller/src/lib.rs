//! The ServiceOffer controller: turns offers into PaymentRoutes, Middlewares, HTTPRoutes and RegistrationRequests.
//!
//! Not built yet: issue #5 tracks this component. The binary `serviceoffer-controller` exists so that manifests
//! and scripts can name it; it refuses to run until the component is implemented.

/// The issue that tracks this component.
pub const TRACKING_ISSUE: u32 = 5;
