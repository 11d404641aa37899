//! The shipped manifests (`deploy/`) as the operator's tools see them: read and render them
//! (the kustomize subset `deploy/` uses), apply them server-side. Used by `obol install`,
//! `obol uninstall`, `obol doctor` and by the local stack, which applies the same RBAC.
//!
//! Depends on no service crate; decisions are pure functions beside their tests.

pub mod apply;
pub mod error;
pub mod kustomize;
pub mod manifest;

pub use error::{Error, Result};
pub use manifest::Object;
