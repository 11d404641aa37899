//! The `obol.org/v1alpha1` custom resources and everything the components agree on about them.
//!
//! This crate owns:
//! - the four resources ([`ServiceOffer`], [`PaymentRoute`], [`RegistrationRequest`],
//!   [`PurchaseRequest`]) as kube `CustomResource` types, from which `deploy/crds/*.yaml` is
//!   generated ([`crdgen`]);
//! - the external kinds the controller writes, typed minimally: Traefik [`traefik::Middleware`] and
//!   Gateway API [`gateway::HttpRoute`]; the [`gateway::Gateway`] they attach to (read by
//!   `obol doctor`, played by the local stack);
//! - draining an offer ([`drain`]);
//! - condition types and reasons, the condition bookkeeping and the phase rule ([`condition`]);
//! - child-object names ([`names`]), the exact-decimal price math ([`price`]) and the metered
//!   per-token charges ([`metering`]).
//!
//! It depends on no other crate of this workspace, holds no client and starts no runtime: every
//! function here is pure.

pub mod condition;
pub mod crdgen;
pub mod drain;
pub mod gateway;
pub mod metering;
pub mod names;
pub mod pattern;
pub mod payment_route;
pub mod price;
pub mod proxy;
pub mod purchase_request;
pub mod registration_request;
pub mod routes;
pub mod service_offer;
pub mod traefik;
pub mod upstream;
pub mod validation;

pub use condition::{Condition, ConditionStatus, Phase};
pub use payment_route::{
    Metering, PaymentRoute, PaymentRouteSpec, PaymentRouteStatus, PriceModel, ProxyTarget,
};
pub use purchase_request::{PurchaseRequest, PurchaseRequestSpec, PurchaseRequestStatus};
pub use registration_request::{
    RegistrationPhase, RegistrationRequest, RegistrationRequestSpec, RegistrationRequestStatus,
};
pub use service_offer::{ServiceOffer, ServiceOfferSpec, ServiceOfferStatus};

/// The API group of every resource this project defines.
pub const GROUP: &str = "obol.org";
/// The only served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of the project's resources.
pub const API_VERSION: &str = "obol.org/v1alpha1";

/// Field manager for every server-side apply the ServiceOffer controller makes.
pub const FIELD_MANAGER: &str = "serviceoffer-controller";
/// Field manager for the verifier's status patches on PaymentRoutes.
pub const VERIFIER_FIELD_MANAGER: &str = "x402-verifier";
/// Field manager for the registrar's status patches on RegistrationRequests.
pub const REGISTRAR_FIELD_MANAGER: &str = "erc8004-registrar";

/// Finalizer the controller puts on every ServiceOffer (the Go controller's name, kept so that
/// offers created by it are cleaned up by this one).
pub const FINALIZER: &str = "monetize.obol.org/finalizer";
/// Finalizer the registrar puts on every RegistrationRequest it has acted on.
pub const REGISTRAR_FINALIZER: &str = "obol.org/registration-tombstone";

/// Label keys put on every child object.
pub mod labels {
    /// Name of the owning ServiceOffer.
    pub const SERVICE_OFFER: &str = "obol.org/serviceoffer";
    /// Who manages the object.
    pub const MANAGED_BY: &str = "obol.org/managed-by";
    /// Annotation that pauses an offer (`"true"`): its route is withdrawn, nothing is deleted.
    pub const PAUSED_ANNOTATION: &str = "obol.org/paused";
    /// Annotation the controller puts on every PaymentRoute it writes: `"true"` while the
    /// offer is Ready, `"false"` otherwise. Discovery lists only routes not marked `"false"`
    /// (routes without it, e.g. from a route file, are listed). An annotation, not a spec
    /// field: it changes no generation, so it never sends the route back to admission.
    pub const OFFER_READY_ANNOTATION: &str = "obol.org/offer-ready";
}
