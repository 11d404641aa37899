//! A fake OpenAI-compatible LLM upstream for tests, benchmarks and the local stack's `llm` demo
//! offer: `POST /v1/chat/completions` answering JSON or SSE with token counts the caller
//! controls through the standard request fields, `GET /v1/models`, `GET /health`.
//!
//! Token counts (the fake's "tokenizer"):
//! - `prompt_tokens` = the number of whitespace-separated words in all message contents;
//! - `completion_tokens` = `max_completion_tokens`, else `max_tokens`, else the server's
//!   default ([`LlmConfig::default_completion_tokens`]); the answer has exactly that many words
//!   (`tok0 tok1 …`), and a stream sends one word per event.
//!
//! Usage is reported as OpenAI does: always in a JSON answer; in a stream only when the request
//! sets `stream_options.include_usage` (then every chunk carries `"usage": null` and one last
//! chunk with `choices: []` carries the counts, before `data: [DONE]`).
//!
//! Failure modes, chosen by `model`: `fake-no-usage` answers without any usage; `fake-error-NNN`
//! answers status NNN with an OpenAI error body. A body that is not a chat request is a 400.
//!
//! The decisions ([`plan`]) and renderings ([`json_answer`], [`sse_events`]) are pure; the
//! server around them is [`LlmServer`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};

/// `model` of a request answered without any usage.
pub const MODEL_NO_USAGE: &str = "fake-no-usage";
/// Prefix of a `model` answered with an error status (`fake-error-500`).
pub const MODEL_ERROR_PREFIX: &str = "fake-error-";
/// The model the fake reports when the request names none.
pub const DEFAULT_MODEL: &str = "fake-llm";
/// The chat completions path.
pub const CHAT_PATH: &str = "/v1/chat/completions";

/// How the fake answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// Completion tokens when the request sets no `max_tokens` / `max_completion_tokens`.
    pub default_completion_tokens: u64,
    /// Pause before each streamed event (zero: as fast as the connection takes them).
    pub chunk_delay: Duration,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            default_completion_tokens: 16,
            chunk_delay: Duration::ZERO,
        }
    }
}

/// What one request will be answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// An error status with an OpenAI error body.
    Error {
        /// HTTP status.
        status: u16,
        /// Message of the error body.
        message: String,
    },
    /// A completion.
    Answer(Completion),
}

/// A completion's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// `model`, echoed.
    pub model: String,
    /// Counted from the messages.
    pub prompt_tokens: u64,
    /// Words in the answer.
    pub completion_tokens: u64,
    /// SSE instead of JSON.
    pub stream: bool,
    /// Whether usage is reported (JSON: unless `fake-no-usage`; SSE: also needs
    /// `stream_options.include_usage`).
    pub usage: bool,
}

impl Completion {
    /// `prompt_tokens + completion_tokens`.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<Value>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Words in a message content: a string, or OpenAI's array of `{type: "text", text}` parts.
fn words(content: &Value) -> u64 {
    let count = |s: &str| s.split_whitespace().count() as u64;
    match content {
        Value::String(s) => count(s),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(count)
            .sum(),
        _ => 0,
    }
}

/// Decides the answer to a chat completions request body.
pub fn plan(body: &[u8], config: &LlmConfig) -> Plan {
    let request: ChatRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return Plan::Error {
                status: 400,
                message: format!("not a chat completions request: {e}"),
            };
        }
    };
    let model = request.model.unwrap_or_else(|| DEFAULT_MODEL.to_owned());
    if let Some(code) = model.strip_prefix(MODEL_ERROR_PREFIX) {
        let status = code.parse().ok().filter(|s| (400..600).contains(s));
        return Plan::Error {
            status: status.unwrap_or(500),
            message: format!("the fake model {model} always fails"),
        };
    }
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    Plan::Answer(Completion {
        prompt_tokens: request
            .messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(words)
            .sum(),
        completion_tokens: request
            .max_completion_tokens
            .or(request.max_tokens)
            .unwrap_or(config.default_completion_tokens),
        stream: request.stream,
        usage: model != MODEL_NO_USAGE && (!request.stream || include_usage),
        model,
    })
}

fn usage(c: &Completion) -> Value {
    json!({"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
           "total_tokens": c.total_tokens()})
}

fn content(n: u64) -> String {
    let mut out = String::with_capacity(n as usize * 6);
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        out.push_str("tok");
        out.push_str(&i.to_string());
    }
    out
}

/// The JSON answer (`chat.completion`) of a non-streaming completion.
pub fn json_answer(c: &Completion, id: &str, created: u64) -> String {
    let mut answer = json!({
        "id": id, "object": "chat.completion", "created": created, "model": c.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content(c.completion_tokens)},
                     "finish_reason": "stop"}],
    });
    if c.usage {
        answer["usage"] = usage(c);
    }
    answer.to_string()
}

/// The SSE events of a streamed completion, each a complete `data: …\n\n` frame, in order:
/// the role, one event per completion token, the finish, the usage (when reported), `[DONE]`.
pub fn sse_events(c: &Completion, id: &str, created: u64) -> impl Iterator<Item = String> {
    let chunk = {
        let (id, model, with_usage) = (id.to_owned(), c.model.clone(), c.usage);
        move |choices: Value, usage: Option<Value>| {
            let mut event = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                                   "model": model, "choices": choices});
            if with_usage {
                event["usage"] = usage.unwrap_or(Value::Null);
            }
            format!("data: {event}\n\n")
        }
    };
    let role = chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        None,
    );
    let tokens = {
        let chunk = chunk.clone();
        (0..c.completion_tokens).map(move |i| {
            let text = if i == 0 {
                format!("tok{i}")
            } else {
                format!(" tok{i}")
            };
            chunk(
                json!([{"index": 0, "delta": {"content": text}, "finish_reason": null}]),
                None,
            )
        })
    };
    let finish = chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        None,
    );
    let usage_event = c.usage.then(|| chunk(json!([]), Some(usage(c))));
    std::iter::once(role)
        .chain(tokens)
        .chain(std::iter::once(finish))
        .chain(usage_event)
        .chain(std::iter::once("data: [DONE]\n\n".to_owned()))
}

/// The OpenAI error body.
pub fn error_body(status: u16, message: &str) -> String {
    let kind = if status < 500 {
        "invalid_request_error"
    } else {
        "server_error"
    };
    json!({"error": {"message": message, "type": kind, "code": status}}).to_string()
}

struct Shared {
    config: LlmConfig,
    requests: AtomicU64,
    completed_streams: AtomicU64,
}

/// What a running fake has served.
#[derive(Clone)]
pub struct LlmStats(Arc<Shared>);

impl LlmStats {
    /// Chat completion requests received (any outcome).
    pub fn requests(&self) -> u64 {
        self.0.requests.load(Ordering::SeqCst)
    }

    /// Streams whose every event (through `[DONE]`) was handed to the connection.
    pub fn completed_streams(&self) -> u64 {
        self.0.completed_streams.load(Ordering::SeqCst)
    }
}

/// The fake's routes, for serving on any listener.
pub fn router(config: LlmConfig) -> (Router, LlmStats) {
    let shared = Arc::new(Shared {
        config,
        requests: AtomicU64::new(0),
        completed_streams: AtomicU64::new(0),
    });
    let router = Router::new()
        .route(CHAT_PATH, post(chat))
        .route("/v1/models", get(models))
        .route("/health", get(|| async { "ok" }))
        .with_state(shared.clone());
    (router, LlmStats(shared))
}

async fn models() -> Response {
    let body = json!({"object": "list", "data": [{"id": DEFAULT_MODEL, "object": "model", "owned_by": "obol"}]});
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn chat(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let n = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let id = format!("chatcmpl-fake-{n}");
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match plan(&body, &shared.config) {
        Plan::Error { status, message } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                error_body(status.as_u16(), &message),
            )
                .into_response()
        }
        Plan::Answer(c) if !c.stream => (
            [(header::CONTENT_TYPE, "application/json")],
            json_answer(&c, &id, created),
        )
            .into_response(),
        Plan::Answer(c) => {
            let delay = shared.config.chunk_delay;
            let events: Vec<String> = sse_events(&c, &id, created).collect();
            let total = events.len();
            let done = shared.clone();
            let stream =
                futures::stream::iter(events.into_iter().enumerate()).then(move |(i, event)| {
                    let done = done.clone();
                    async move {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        if i + 1 == total {
                            done.completed_streams.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok::<_, std::convert::Infallible>(Bytes::from(event))
                    }
                });
            (
                [
                    (header::CONTENT_TYPE, "text/event-stream"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                Body::from_stream(stream),
            )
                .into_response()
        }
    }
}

/// A fake served on a loopback port until dropped.
pub struct LlmServer {
    url: String,
    stats: LlmStats,
    task: tokio::task::JoinHandle<()>,
}

impl LlmServer {
    /// Serves on `listen` (`127.0.0.1:0` picks a free port).
    pub async fn start(listen: &str, config: LlmConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (router, stats) = router(config);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { url, stats, task })
    }

    /// Base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What it has served.
    pub fn stats(&self) -> &LlmStats {
        &self.stats
    }
}

impl Drop for LlmServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the fake on `listen` until the process ends (`obol dev llm-upstream`).
pub async fn serve(listen: &str, config: LlmConfig) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let (router, _) = router(config);
    axum::serve(listener, router).await
}

#[cfg(test)]
#[path = "llm_tests.rs"]
mod tests;
