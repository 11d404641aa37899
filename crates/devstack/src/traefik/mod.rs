//! The dev-only Traefik adapter (see the crate docs).

pub mod adapter;
pub mod render;
