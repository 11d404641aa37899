//! The one error type of this crate.

/// What went wrong, naming the file or object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest or kustomization that cannot be used.
    #[error("{origin}: {message}")]
    Manifest {
        /// File (and document).
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// Reading a file.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A call to the API server.
    #[error("{context}: {source}")]
    Kube {
        /// What was being done (`applying Deployment x402/x402-verifier`).
        context: String,
        /// Cause.
        #[source]
        source: Box<kube::Error>,
    },
}

impl Error {
    /// A bounded label for metrics and exit codes.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Manifest { .. } => "manifest",
            Self::Io { .. } => "io",
            Self::Kube { .. } => "kube",
        }
    }
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
