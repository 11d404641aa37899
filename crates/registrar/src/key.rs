//! The registrar's signing key: obol-x402's [`PrivateKey`] (read from a file, never logged,
//! printed or serialized), under the name the registrar's code uses.

pub use obol_x402::{KeyFileError, PrivateKey as SigningKey};
