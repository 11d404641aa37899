//! Where a metered answer's token counts come from: the upstream's answer only, never the
//! client's request. OpenAI-compatible answers report `usage` — `prompt_tokens`,
//! `completion_tokens`, `total_tokens` — at the top of a JSON body, or, when streaming, in the
//! last `data:` event before `[DONE]` (only when the request set
//! `stream_options.include_usage`, which [`ask_for_stream_usage`] adds when a client did not).
//!
//! Reading rules (what [`usage_of`] accepts):
//! - `prompt_tokens` and `completion_tokens` as non-negative integers: used as they are
//!   (`total_tokens` is not needed; a total that disagrees with their sum is ignored);
//! - one of the two missing but `total_tokens` present: the missing side is the total minus the
//!   present side (never below zero);
//! - anything else (no `usage`, `null`, both sides missing, negative or fractional numbers,
//!   numbers above 2⁶⁴): no usage, so the route's declared fallback is charged.
//!
//! A stream's usage is the last event that reported one. Lines are read as they pass, without
//! holding the stream: only the current line is kept (at most [`MAX_SSE_LINE`] bytes; a longer
//! line is skipped), and only lines that mention `prompt_tokens` or `completion_tokens` are
//! parsed.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::TokenUsage;

/// Longest SSE line kept for reading usage; longer ones (content, never usage) are skipped.
pub const MAX_SSE_LINE: usize = 64 << 10;

/// An OpenAI `usage` object, each field optional so partial reports can be judged.
#[derive(Deserialize, Default)]
struct UsageWire {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
}

/// Only `usage` of an answer; every other field is skipped (scanned, never built).
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    usage: Option<Loose>,
}

/// A `usage` value that may be malformed: a malformed one is no usage, not a broken answer.
struct Loose(Option<UsageWire>);

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only an object: serde would read `[1, 2]` as the fields in order.
        let v = Value::deserialize(d)?;
        Ok(Self(
            v.is_object()
                .then(|| serde_json::from_value(v).ok())
                .flatten(),
        ))
    }
}

impl UsageWire {
    fn judge(&self) -> Option<TokenUsage> {
        let (input, output) = match (
            self.prompt_tokens,
            self.completion_tokens,
            self.total_tokens,
        ) {
            (Some(i), Some(o), _) => (i, o),
            (Some(i), None, Some(t)) => (i, t.saturating_sub(i)),
            (None, Some(o), Some(t)) => (t.saturating_sub(o), o),
            _ => return None,
        };
        Some(TokenUsage { input, output })
    }
}

/// The usage an answer's JSON (a whole body, or one SSE event's data) reports, if any.
pub fn usage_of(json: &[u8]) -> Option<TokenUsage> {
    let answer: Answer = serde_json::from_slice(json).ok()?;
    answer.usage?.0?.judge()
}

/// A streamed answer's usage, read line by line as the chunks pass.
#[derive(Debug, Default)]
pub struct SseUsage {
    line: Vec<u8>,
    /// The current line is longer than [`MAX_SSE_LINE`]: skip to its end.
    skipping: bool,
    /// The last `\r` ended a line (a following `\n` is part of the same end).
    after_cr: bool,
    usage: Option<TokenUsage>,
}

impl SseUsage {
    /// A reader with nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one chunk of the stream (any split: lines may span chunks).
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', rest) {
                Some(at) => {
                    self.push(&rest[..at]);
                    self.after_cr = rest[at] == b'\r';
                    self.end_line();
                    rest = &rest[at + 1..];
                }
                None => {
                    self.push(rest);
                    rest = &[];
                }
            }
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.skipping {
            return;
        }
        if self.line.len() + bytes.len() > MAX_SSE_LINE {
            self.skipping = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self) {
        if !self.skipping
            && let Some(data) = self.line.strip_prefix(b"data:")
            && mentions_tokens(data)
            && let Some(u) = usage_of(data)
        {
            self.usage = Some(u);
        }
        self.line.clear();
        self.skipping = false;
    }

    /// The stream ended: the last usage reported (a final line without its end counts).
    pub fn finish(mut self) -> Option<TokenUsage> {
        self.end_line();
        self.usage
    }
}

/// Whether a line names one of the usage counters. Runs on every event of a metered stream, so
/// it looks for the rare `_tokens` first (a vectorised search), then at what precedes it.
pub(crate) fn mentions_tokens(data: &[u8]) -> bool {
    memchr::memmem::find_iter(data, b"_tokens").any(|at| {
        let before = &data[..at];
        before.ends_with(b"prompt") || before.ends_with(b"completion") || before.ends_with(b"total")
    })
}

/// The request body to forward for a metered route: a streaming chat request
/// (`"stream": true`) that does not ask for usage gets `stream_options.include_usage: true`
/// (other `stream_options` kept); `None` when the body is to be forwarded as it is (not a JSON
/// object, not streaming, or already asking).
pub fn ask_for_stream_usage(body: &[u8]) -> Option<Vec<u8>> {
    let mut request: Map<String, Value> = serde_json::from_slice(body).ok()?;
    if request.get("stream") != Some(&Value::Bool(true)) {
        return None;
    }
    let options = request
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if !options.is_object() {
        *options = Value::Object(Map::new());
    }
    let options = options.as_object_mut()?;
    if options.get("include_usage") == Some(&Value::Bool(true)) {
        return None;
    }
    options.insert("include_usage".into(), Value::Bool(true));
    serde_json::to_vec(&request).ok()
}
