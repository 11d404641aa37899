//! The controller's one error type.

/// Everything a reconcile or the process can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{context}: {source}")]
    Kube {
        /// The operation.
        context: &'static str,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Adding or removing the finalizer failed, or the wrapped reconcile failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Deletion waits for the RegistrationRequest to disappear (retried with backoff).
    #[error("waiting for RegistrationRequest {namespace}/{name} to be deleted")]
    CleanupPending {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The object lacks a name or namespace (never from the API server).
    #[error("object without {0}")]
    MissingField(&'static str),
    /// Leader election failed.
    #[error("lease: {0}")]
    Lease(#[from] obol_runtime::lease::Error),
    /// Serving the admin endpoints failed.
    #[error("admin server: {0}")]
    Admin(#[source] std::io::Error),
    /// This replica lost the lease; it stops so that a fresh process can campaign again.
    #[error("leadership lost")]
    LeadershipLost,
}

impl Error {
    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "finalizer",
            },
            Self::CleanupPending { .. } => "cleanup_pending",
            Self::MissingField(_) => "missing_field",
            Self::Lease(_) => "lease",
            Self::Admin(_) => "admin",
            Self::LeadershipLost => "leadership_lost",
        }
    }

    /// Wraps a kube error with the operation's name.
    pub(crate) fn kube(context: &'static str) -> impl FnOnce(kube::Error) -> Self {
        move |source| Self::Kube { context, source }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
