//! The one-machine local stack (issue #9), starting with its gateway.
//!
//! Traefik's Kubernetes providers need a newer API server and kubelet-managed endpoints than
//! the local control plane has (see TOOLING.md §3). So on one machine a small **dev-only**
//! adapter plays the Gateway: it watches HTTPRoutes, Traefik Middlewares and Services, renders
//! them into the dynamic configuration file of a real Traefik (file provider, watched), and
//! writes the HTTPRoute's `Accepted` condition the way a Gateway would. In a real cluster
//! Traefik does this itself; nothing here runs there.
//!
//! The adapter fails closed: a route whose Middleware, Service or filter it cannot resolve is
//! not served at all (never served without its payment gate) and gets `Accepted=False` with the
//! reason.

pub mod chain;
pub mod demo;
pub mod discovery;
pub mod facilitator;
pub mod files;
pub mod identity;
pub mod llm;
pub mod onchain;
pub mod process;
pub mod redis;
pub mod stack;
pub mod traefik;
