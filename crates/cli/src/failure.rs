//! Exit codes scripts can rely on.

use std::fmt;

/// Success.
pub const OK: u8 = 0;
/// An error talking to the cluster, or anything unexpected.
pub const ERROR: u8 = 1;
/// Usage error (bad flags; clap's own code).
pub const USAGE: u8 = 2;
/// A precondition failed; nothing was written.
pub const REFUSED: u8 = 3;
/// Waiting (`--wait`, `delete`) ran out of time.
pub const TIMEOUT: u8 = 4;
/// The named offer does not exist.
pub const NOT_FOUND: u8 = 5;
/// `sell test`: the endpoint is not live and gated.
pub const NOT_GATED: u8 = 6;

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Failure {
    /// Exit code (one of the constants of this module).
    pub code: u8,
    /// What went wrong and what to do.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The exit code for an error returned by a subcommand.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    error.downcast_ref::<Failure>().map_or(ERROR, |f| f.code)
}
