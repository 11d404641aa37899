//! Node errors to [`ChainError`]s: what is worth retrying and what is not.

use alloy::transports::{RpcError, TransportError};

use crate::error::ChainError;

/// Maps an RPC error to the registrar's classification.
pub fn classify(context: &'static str, e: &TransportError) -> ChainError {
    match e {
        RpcError::ErrorResp(p) => {
            // The official registry's custom errors come back by name (`crate::abi`).
            let reason = p
                .as_revert_data()
                .and_then(|d| crate::abi::revert_reason(&d));
            ChainError::from_rpc_response(context, p.code, &p.message, reason)
        }
        other => ChainError::Unavailable {
            context,
            message: other.to_string(),
        },
    }
}

pub(super) fn classify_contract(context: &'static str, e: alloy::contract::Error) -> ChainError {
    match e {
        alloy::contract::Error::TransportError(t) => classify(context, &t),
        alloy::contract::Error::PendingTransactionError(p) => ChainError::Unavailable {
            context,
            message: p.to_string(),
        },
        other => ChainError::Rpc {
            context,
            message: other.to_string(),
        },
    }
}
