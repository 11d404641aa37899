//! The one JSON-RPC client of the workspace's hand-written chain reads (the buyer's
//! `authorizationState`, the verifier's settlement evidence, the local stack's chain set-up,
//! `obol doctor`'s balance check). The registrar sends transactions through alloy instead.
//!
//! Errors and `Debug` never show the endpoint's URL: RPC URLs often carry an API key in their
//! path or query. They name the method and what went wrong.

use std::fmt;

use serde_json::{Value, json};

/// Why a JSON-RPC call gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The endpoint could not be reached, or the exchange broke off.
    #[error("{method}: the RPC endpoint could not be reached ({detail})")]
    Unreachable {
        /// The JSON-RPC method.
        method: String,
        /// The cause, without the URL.
        detail: String,
    },
    /// The endpoint answered with an HTTP error status.
    #[error("{method}: the RPC endpoint answered HTTP {status}")]
    Status {
        /// The JSON-RPC method.
        method: String,
        /// The HTTP status.
        status: u16,
    },
    /// The answer is not the JSON-RPC answer asked for.
    #[error("{method}: not a JSON-RPC answer ({detail})")]
    Answer {
        /// The JSON-RPC method.
        method: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The node answered with a JSON-RPC error.
    #[error("{method}: the node answered an error: {message}")]
    Node {
        /// The JSON-RPC method.
        method: String,
        /// The node's error object, as JSON.
        message: String,
    },
}

impl RpcError {
    /// A bounded label for metrics: the endpoint could not answer, or its answer was unusable
    /// (malformed, or the node's own error).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } | Self::Status { .. } => "rpc_unreachable",
            Self::Answer { .. } | Self::Node { .. } => "rpc_bad_answer",
        }
    }

    /// Whether the node itself refused (as opposed to the transport or a malformed answer).
    pub fn is_node_error(&self) -> bool {
        matches!(self, Self::Node { .. })
    }
}

/// A JSON-RPC endpoint reached over HTTP. Cheap to clone.
#[derive(Clone)]
pub struct JsonRpc {
    http: reqwest::Client,
    url: reqwest::Url,
    timeout: Option<std::time::Duration>,
}

impl fmt::Debug for JsonRpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonRpc")
            .field("host", &self.url.host_str().unwrap_or(""))
            .finish_non_exhaustive()
    }
}

/// The cause of a transport error, with every source, and never the URL.
fn transport_detail(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

/// The `result` of one answer object, or its error.
fn result_of(method: &str, answer: &Value) -> Result<Value, RpcError> {
    if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
        return Err(RpcError::Node {
            method: method.to_owned(),
            message: error.to_string(),
        });
    }
    answer
        .get("result")
        .cloned()
        .ok_or_else(|| RpcError::Answer {
            method: method.to_owned(),
            detail: "neither result nor error".to_owned(),
        })
}

/// The answers of a batch in the order of its calls (ids are the positions; a node may answer
/// in any order). A missing, repeated or foreign id makes the whole batch unusable.
fn batch_results(method: &str, calls: usize, answer: &Value) -> Result<Vec<Value>, RpcError> {
    let bad = |detail: &str| RpcError::Answer {
        method: method.to_owned(),
        detail: detail.to_owned(),
    };
    let answers = answer
        .as_array()
        .ok_or_else(|| bad("a batch answer that is not an array"))?;
    if answers.len() != calls {
        return Err(bad("a batch answer of the wrong length"));
    }
    let mut ordered: Vec<Option<Value>> = vec![None; calls];
    for a in answers {
        let id = a
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|id| usize::try_from(id).ok())
            .filter(|&id| id < calls)
            .ok_or_else(|| bad("a batch answer with an unknown id"))?;
        if ordered[id].replace(a.clone()).is_some() {
            return Err(bad("a batch answer with a repeated id"));
        }
    }
    Ok(ordered.into_iter().flatten().collect())
}

impl JsonRpc {
    /// An endpoint at `url` (http or https).
    pub fn new(http: reqwest::Client, url: &str) -> Result<Self, RpcError> {
        let bad = |detail: &str| RpcError::Answer {
            method: "(none)".to_owned(),
            detail: detail.to_owned(),
        };
        let url: reqwest::Url = url.parse().map_err(|_| bad("not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the RPC URL is not http or https"));
        }
        Ok(Self {
            http,
            url,
            timeout: None,
        })
    }

    /// Every call waits at most `timeout` (on top of the client's own limits).
    #[must_use]
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    async fn post(&self, method: &str, body: &Value) -> Result<Value, RpcError> {
        let unreachable = |e| RpcError::Unreachable {
            method: method.to_owned(),
            detail: transport_detail(e),
        };
        let mut request = self.http.post(self.url.clone()).json(body);
        if let Some(t) = self.timeout {
            request = request.timeout(t);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(RpcError::Status {
                method: method.to_owned(),
                status: status.as_u16(),
            });
        }
        let bytes = response.bytes().await.map_err(unreachable)?;
        serde_json::from_slice(&bytes).map_err(|e| RpcError::Answer {
            method: method.to_owned(),
            detail: e.to_string(),
        })
    }

    /// One call: its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let answer = self.post(method, &body).await?;
        result_of(method, &answer)
    }

    /// Calls of one `method` in one batch: each call's `result` or error, in order. The outer
    /// error is a batch that failed as a whole.
    pub async fn batch(
        &self,
        method: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<Result<Value, RpcError>>, RpcError> {
        let body: Vec<Value> = params
            .into_iter()
            .enumerate()
            .map(|(id, p)| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": p}))
            .collect();
        if body.is_empty() {
            return Ok(Vec::new());
        }
        let answer = self.post(method, &Value::Array(body.clone())).await?;
        Ok(batch_results(method, body.len(), &answer)?
            .iter()
            .map(|a| result_of(method, a))
            .collect())
    }
}

/// A quantity (`0x`-prefixed hex) as a `u128`.
pub fn quantity(method: &str, value: &Value) -> Result<u128, RpcError> {
    value
        .as_str()
        .and_then(|h| h.strip_prefix("0x"))
        .and_then(|h| u128::from_str_radix(h, 16).ok())
        .ok_or_else(|| RpcError::Answer {
            method: method.to_owned(),
            detail: format!("not a quantity: {value}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_errors_and_malformed_answers() {
        let m = "eth_call";
        assert_eq!(result_of(m, &json!({"result": "0x1"})), Ok(json!("0x1")));
        assert_eq!(result_of(m, &json!({"result": null})), Ok(Value::Null));
        assert!(
            result_of(m, &json!({"error": {"code": 3}}))
                .unwrap_err()
                .is_node_error()
        );
        assert!(matches!(
            result_of(m, &json!({})),
            Err(RpcError::Answer { .. })
        ));
    }

    #[test]
    fn batches_come_back_in_call_order_or_not_at_all() {
        let a = json!([{"id": 1, "result": "b"}, {"id": 0, "result": "a"}]);
        assert_eq!(
            batch_results("m", 2, &a).unwrap(),
            vec![
                json!({"id": 0, "result": "a"}),
                json!({"id": 1, "result": "b"})
            ]
        );
        let cases = [
            ("not an array", json!({"id": 0})),
            ("short", json!([{"id": 0, "result": 1}])),
            (
                "repeated id",
                json!([{"id": 0, "result": 1}, {"id": 0, "result": 2}]),
            ),
            (
                "foreign id",
                json!([{"id": 0, "result": 1}, {"id": 7, "result": 2}]),
            ),
            ("no id", json!([{"id": 0, "result": 1}, {"result": 2}])),
        ];
        for (name, answer) in cases {
            assert!(batch_results("m", 2, &answer).is_err(), "{name}");
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity("m", &json!("0x2a")), Ok(42));
        for bad in [json!("2a"), json!(42), json!("0xzz")] {
            assert!(quantity("m", &bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn errors_and_debug_never_show_the_url() {
        // A closed loopback port: the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/v2/secret-api-key?key=hunter2");
        let rpc = JsonRpc::new(reqwest::Client::new(), &url).unwrap();
        let err = rpc.call("eth_chainId", json!([])).await.unwrap_err();
        let shown = format!("{err} {err:?} {rpc:?}");
        assert!(matches!(err, RpcError::Unreachable { .. }), "{shown}");
        assert!(
            !shown.contains("secret-api-key") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(JsonRpc::new(reqwest::Client::new(), "file:///etc/passwd").is_err());
    }
}
