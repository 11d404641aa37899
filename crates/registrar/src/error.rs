//! Errors, and the line between transient failures (retry with backoff) and permanent ones
//! (phase `Failed` with the message).

/// What went wrong talking to the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The RPC endpoint could not be reached or answered garbage (retry).
    #[error("{context}: RPC unavailable: {message}")]
    Unavailable {
        /// The operation, e.g. `eth_blockNumber`.
        context: &'static str,
        /// The transport's message.
        message: String,
    },
    /// The node answered with an error that may go away (nonce races, underpriced replacement).
    #[error("{context}: RPC error: {message}")]
    Rpc {
        /// The operation.
        context: &'static str,
        /// The node's message.
        message: String,
    },
    /// The call or transaction reverted (permanent).
    #[error("{context}: reverted: {reason}")]
    Reverted {
        /// The operation.
        context: &'static str,
        /// The decoded revert reason, or the node's message.
        reason: String,
    },
    /// The signer cannot pay for gas (permanent until someone funds it).
    #[error("{context}: insufficient funds: {message}")]
    InsufficientFunds {
        /// The operation.
        context: &'static str,
        /// The node's message.
        message: String,
    },
    /// The registry address holds no contract (retry: a lagging RPC node or a registry not
    /// deployed yet; the message says so meanwhile).
    #[error("no contract at registry address {address}")]
    NoContract {
        /// The configured registry.
        address: String,
    },
    /// The registry does not answer `getVersion()` with `2.0.0` (permanent: registering with
    /// another ABI would mint an agent the registrar cannot find again).
    #[error("registry {address} is not an ERC-8004 v2 IdentityRegistry (getVersion: {version})")]
    UnsupportedRegistry {
        /// The configured registry.
        address: String,
        /// What it answered.
        version: String,
    },
    /// The address answers like the registry's implementation, not its proxy (permanent: an
    /// agent minted there would live in the implementation's own storage).
    #[error(
        "registry {address} answers getVersion 2.0.0 but name() {name:?} instead of \"AgentIdentity\": \
         it looks like the registry's implementation contract, not its proxy; set spec.registry \
         to the proxy{official}"
    )]
    NotTheProxy {
        /// The configured registry.
        address: String,
        /// What `name()` answered.
        name: String,
        /// `" (the official registry on chain N is 0x…)"`, or empty.
        official: String,
    },
    /// `ownerOf(agentId)` does not answer yet (a lagging RPC replica; retry).
    #[error("agent {agent_id} is not visible at the RPC endpoint yet (ownerOf reverts)")]
    AgentNotVisible {
        /// The agent.
        agent_id: u64,
    },
    /// The agent belongs to another address than the registrar's key (permanent: the
    /// registrar cannot update it; e.g. the key was rotated, or the agent transferred).
    #[error(
        "agent {agent_id} is owned by {owner}, not by the registrar's key {signer}; only its owner \
         (or an approved operator) can update it"
    )]
    NotOwner {
        /// The agent.
        agent_id: u64,
        /// Its owner.
        owner: String,
        /// The registrar's address.
        signer: String,
    },
    /// A mined registration carried no `Registered` event from the registry (permanent).
    #[error("transaction {tx_hash} has no Registered event from the registry")]
    NoRegisteredEvent {
        /// The transaction.
        tx_hash: String,
    },
    /// The RPC endpoint serves another chain than the request names (retry: configuration).
    #[error("RPC endpoint serves chain {actual}, the request wants chain {wanted}")]
    WrongChain {
        /// The request's chain id.
        wanted: u64,
        /// The endpoint's chain id.
        actual: u64,
    },
    /// No RPC endpoint is configured for the chain (retry: configuration).
    #[error("no RPC endpoint configured for chain {chain_id}")]
    NoRpc {
        /// The chain id.
        chain_id: u64,
    },
    /// A transaction was sent but no receipt arrived in time (retry; sends here are idempotent).
    #[error("{context}: no receipt for {tx_hash} within the timeout")]
    ReceiptTimeout {
        /// The operation.
        context: &'static str,
        /// The transaction.
        tx_hash: String,
    },
}

impl ChainError {
    /// Whether retrying cannot help (the request goes to `Failed`).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Reverted { .. }
                | Self::InsufficientFunds { .. }
                | Self::NoRegisteredEvent { .. }
                | Self::UnsupportedRegistry { .. }
                | Self::NotTheProxy { .. }
                | Self::NotOwner { .. }
        )
    }

    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "rpc_unavailable",
            Self::Rpc { .. } => "rpc_error",
            Self::Reverted { .. } => "reverted",
            Self::InsufficientFunds { .. } => "insufficient_funds",
            Self::NoContract { .. } => "no_contract",
            Self::NoRegisteredEvent { .. } => "no_registered_event",
            Self::UnsupportedRegistry { .. } => "unsupported_registry",
            Self::NotTheProxy { .. } => "not_the_proxy",
            Self::AgentNotVisible { .. } => "agent_not_visible",
            Self::NotOwner { .. } => "not_owner",
            Self::WrongChain { .. } => "wrong_chain",
            Self::NoRpc { .. } => "no_rpc",
            Self::ReceiptTimeout { .. } => "receipt_timeout",
        }
    }

    /// Classifies a JSON-RPC error response from a node (`code`, `message`, decoded revert
    /// reason if the node sent revert data).
    pub fn from_rpc_response(
        context: &'static str,
        code: i64,
        message: &str,
        revert_reason: Option<String>,
    ) -> Self {
        let lower = message.to_ascii_lowercase();
        if let Some(reason) = revert_reason {
            return Self::Reverted { context, reason };
        }
        // Geth, anvil and most providers: code 3 with revert data, or -32000/-32003 with
        // "execution reverted" in the text.
        if code == 3 || lower.contains("revert") {
            let reason = message
                .split_once("reverted: ")
                .map_or(message, |(_, r)| r)
                .trim()
                .to_owned();
            return Self::Reverted { context, reason };
        }
        if lower.contains("insufficient funds") {
            return Self::InsufficientFunds {
                context,
                message: message.to_owned(),
            };
        }
        Self::Rpc {
            context,
            message: message.to_owned(),
        }
    }
}

/// The registrar's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{context}: {source}")]
    Kube {
        /// The operation.
        context: &'static str,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A chain call failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The request cannot be acted on as written (unknown chain, bad registry address).
    #[error("invalid RegistrationRequest: {0}")]
    InvalidSpec(String),
    /// Startup configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Deletion is waiting (backoff, a pending transaction): run the cleanup again after this
    /// long. Not a failure; an error only because that is how the finalizer helper keeps the
    /// finalizer.
    #[error("cleanup continues in {0:?}")]
    RetryAt(std::time::Duration),
    /// kube-runtime's finalizer helper failed (boxed: it is generic over this type).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::Chain(e) => e.metric_label(),
            Self::InvalidSpec(_) => "invalid_spec",
            Self::Config(_) => "config",
            Self::RetryAt(_) => "retry",
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "finalizer",
            },
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverts_and_missing_funds_are_permanent() {
        let revert = ChainError::from_rpc_response(
            "register",
            3,
            "execution reverted: registrations closed",
            None,
        );
        assert_eq!(
            revert,
            ChainError::Reverted {
                context: "register",
                reason: "registrations closed".into()
            }
        );
        assert!(revert.is_permanent());
        let decoded = ChainError::from_rpc_response("register", -32000, "x", Some("why".into()));
        assert!(matches!(decoded, ChainError::Reverted { reason, .. } if reason == "why"));
        let funds = ChainError::from_rpc_response(
            "register",
            -32000,
            "Insufficient funds for gas * price + value",
            None,
        );
        assert!(funds.is_permanent());
        assert_eq!(funds.metric_label(), "insufficient_funds");
    }

    #[test]
    fn transport_and_nonce_trouble_are_transient() {
        let nonce = ChainError::from_rpc_response("register", -32000, "nonce too low", None);
        assert!(!nonce.is_permanent());
        for e in [
            nonce,
            ChainError::Unavailable {
                context: "eth_blockNumber",
                message: "connection refused".into(),
            },
            ChainError::WrongChain {
                wanted: 84532,
                actual: 1,
            },
            ChainError::NoRpc { chain_id: 8453 },
            ChainError::NoContract {
                address: "0x00".into(),
            },
            ChainError::ReceiptTimeout {
                context: "setAgentURI",
                tx_hash: "0x01".into(),
            },
        ] {
            assert!(!e.is_permanent(), "{e}");
        }
    }
}
