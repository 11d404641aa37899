//! The body of a paid answer: it knows whether the answer reached its end.
//!
//! A buffered answer (already settled) is one chunk; a streamed one passes the upstream's
//! chunks on as they arrive, without buffering. When the body ends normally, its [`Finish`]
//! charges (settles a streamed payment, or marks a settled one spent) and may return trailers
//! (the receipt of a stream). When it ends otherwise — the upstream broke off or went quiet too
//! long, or the body was dropped because the client went away or a write failed — the `Finish`
//! abandons it (releases the reservation, or marks a settled payment undelivered so it can be
//! served once more). Both run as their own tasks: a connection that closes mid-settle never
//! cancels a settle half-way.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::task::JoinHandle;
use tokio::time::Sleep;

use obol_api::metering::usage::SseUsage;

use super::charge::{self, AtEnd, StreamEnd, Usage};
use super::upstream::BoxError;

/// A boxed future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What happens to a payment when its answer ends.
pub trait Finish: Send + 'static {
    /// The answer ended normally after `usage`: charge; the trailers to send, if any.
    fn charge(self: Box<Self>, usage: Usage) -> BoxFuture<Option<HeaderMap>>;
    /// The answer did not reach the client whole: nothing is charged.
    fn abandon(self: Box<Self>, end: StreamEnd) -> BoxFuture<()>;
}

/// The upstream went quiet for longer than the idle budget.
#[derive(Debug, thiserror::Error)]
#[error("upstream idle for longer than {0:?}")]
pub struct Idle(pub Duration);

/// See the module docs.
pub struct PaidBody {
    prefix: Option<Bytes>,
    rest: Option<Incoming>,
    idle: Duration,
    /// The idle timer: allocated at the first wait for the upstream, then re-armed (not
    /// re-allocated) at the first wait after each frame.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether `sleep` runs for the current wait.
    armed: bool,
    delivered: u64,
    finish: Option<Box<dyn Finish>>,
    charging: Option<JoinHandle<Option<HeaderMap>>>,
    done: bool,
    /// A small whole answer's length (sent with `Content-Length`).
    exact: Option<u64>,
    /// A whole answer: charged at its end even when empty (its head was the answer).
    whole: bool,
    /// Reads the stream's usage events as they pass (a metered `upto` payment's stream).
    sse: Option<SseUsage>,
}

/// Whole answers up to this size are sent with `Content-Length` and count as delivered once
/// handed to the connection (socket buffers take them whole). Larger ones are sent chunked, so
/// the body is asked for its end only after the connection wrote them, and a client that went
/// away before that leaves the payment undelivered (served once more, not charged twice).
pub const SMALL_ANSWER: u64 = 64 << 10;

impl PaidBody {
    /// A whole answer, settled before it is sent.
    pub fn buffered(body: Bytes, finish: Box<dyn Finish>) -> Self {
        let len = body.len() as u64;
        let mut b = Self::streamed(Some(body), None, Duration::MAX, finish);
        b.whole = true;
        if len <= SMALL_ANSWER {
            b.exact = Some(len);
        }
        if len == 0 {
            // Nothing to hand over: the head is the answer.
            b.ended();
            b.done = true;
        }
        b
    }

    /// `prefix` first, then `rest` as it comes (each chunk within `idle` of the last).
    pub fn streamed(
        prefix: Option<Bytes>,
        rest: Option<Incoming>,
        idle: Duration,
        finish: Box<dyn Finish>,
    ) -> Self {
        Self {
            prefix: prefix.filter(|b| !b.is_empty()),
            rest,
            idle,
            sleep: None,
            armed: false,
            delivered: 0,
            finish: Some(finish),
            charging: None,
            done: false,
            exact: None,
            whole: false,
            sse: None,
        }
    }

    /// Reads the usage the stream reports (its last SSE usage event) as it passes, for a
    /// metered charge at its end.
    pub fn metered(mut self) -> Self {
        self.sse = Some(SseUsage::new());
        self
    }

    fn abandon(&mut self, end: StreamEnd) {
        if let Some(finish) = self.finish.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(finish.abandon(end));
        }
    }

    /// The answer reached its end: charge or release.
    fn ended(&mut self) {
        let usage = Usage {
            bytes: self.delivered,
            tokens: self.sse.take().and_then(SseUsage::finish),
        };
        let end = StreamEnd::Finished {
            delivered: self.delivered,
        };
        let decision = if self.whole {
            AtEnd::Charge
        } else {
            charge::at_end(end)
        };
        match decision {
            AtEnd::Charge => {
                if let Some(finish) = self.finish.take() {
                    self.charging = Some(tokio::spawn(finish.charge(usage)));
                }
            }
            AtEnd::Release => self.abandon(end),
        }
    }

    fn poll_rest(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(rest) = self.rest.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match Pin::new(&mut *rest).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    self.armed = false;
                    match frame.into_data() {
                        Ok(data) if data.is_empty() => continue,
                        Ok(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        // The upstream's own trailers are not passed on: ours carry the receipt.
                        Err(_) => continue,
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    let idle = self.idle;
                    let sleep = match (&mut self.sleep, self.armed) {
                        (Some(sleep), true) => sleep,
                        (Some(sleep), false) => {
                            sleep.as_mut().reset(idle_deadline(idle));
                            sleep
                        }
                        (slot @ None, _) => {
                            slot.insert(Box::pin(tokio::time::sleep_until(idle_deadline(idle))))
                        }
                    };
                    self.armed = true;
                    ready!(sleep.as_mut().poll(cx));
                    return Poll::Ready(Some(Err(Box::new(Idle(idle)))));
                }
            }
        }
    }
}

/// When a wait that starts now times out after `idle` (an `idle` too large for the clock
/// waits about thirty years).
fn idle_deadline(idle: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(idle)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 3600))
}

impl Body for PaidBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.charging.is_none() && this.finish.is_some() {
            let next = match this.prefix.take() {
                Some(prefix) => Some(Ok(Frame::data(prefix))),
                None => ready!(this.poll_rest(cx)),
            };
            match next {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        this.delivered += data.len() as u64;
                        if let Some(sse) = this.sse.as_mut() {
                            sse.feed(data);
                        }
                    }
                    if this.exact.is_some() {
                        // With a known length the connection never asks for the end: this
                        // was the whole answer.
                        this.ended();
                        this.done = true;
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Some(Err(error)) => {
                    this.done = true;
                    this.rest = None;
                    this.abandon(StreamEnd::UpstreamFailed);
                    return Poll::Ready(Some(Err(error)));
                }
                None => {
                    this.rest = None;
                    this.ended();
                }
            }
        }
        let Some(charging) = this.charging.as_mut() else {
            this.done = true;
            return Poll::Ready(None);
        };
        let trailers = ready!(Pin::new(charging).poll(cx)).ok().flatten();
        this.charging = None;
        this.done = true;
        Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(len) => SizeHint::with_exact(len.saturating_sub(self.delivered)),
            None => SizeHint::default(),
        }
    }
}

impl Drop for PaidBody {
    fn drop(&mut self) {
        // Dropped before its end: the client went away or a write failed. A charge already
        // running (`charging`) goes on as its own task.
        self.abandon(StreamEnd::ClientGone);
    }
}
