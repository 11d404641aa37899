//! A JSON-RPC proxy on loopback between the registrar and anvil that counts the registrar's
//! calls and, at chosen calls, mines a block first, or "kills" the registrar: the call is held
//! (before or after anvil saw it) and the test drops the registrar's step, as SIGKILL would.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use parking_lot::Mutex;
use tokio::sync::watch;

/// When a kill happens relative to the call it is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kill {
    /// The call never reaches anvil.
    Before,
    /// Anvil handles the call; its answer never reaches the registrar.
    After,
}

/// What the proxy does at which call (indices count every call through the proxy).
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// `evm_mine` before forwarding this call.
    pub mine_before: Option<usize>,
    /// Kill at these calls (each kill once; the test restarts the registrar in between).
    pub kills: Vec<(usize, Kill)>,
    /// `evm_mine` before the n-th (0-based) call of this method.
    pub mine_before_nth: Option<(&'static str, usize)>,
    /// Kill at the n-th (0-based) call of this method.
    pub kill_at_nth: Option<(&'static str, usize, Kill)>,
}

#[derive(Default)]
struct Inner {
    script: Script,
    calls: Vec<String>,
    fired: Option<usize>,
}

/// A running proxy (stopped when dropped).
pub struct RpcProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
    killed: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    killed: watch::Sender<bool>,
    upstream: String,
    http: alloy::transports::http::reqwest::Client,
}

impl RpcProxy {
    /// Starts a proxy in front of `upstream` (anvil's URL).
    pub async fn start(upstream: String) -> Self {
        Self::start_on(0, upstream).await
    }

    /// Starts a proxy on `port` (0: any) in front of `upstream`.
    pub async fn start_on(port: u16, upstream: String) -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let (killed, _) = watch::channel(false);
        let shared = Shared {
            inner: inner.clone(),
            killed: killed.clone(),
            upstream,
            http: alloy::transports::http::reqwest::Client::new(),
        };
        let app = Router::new().route("/", post(handle)).with_state(shared);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            port,
            inner,
            killed,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts a new scenario: the script, a call count of zero, not killed.
    pub fn reset(&self, script: Script) {
        let mut inner = self.inner.lock();
        inner.script = script;
        inner.calls.clear();
        self.killed.send_replace(false);
    }

    /// After a kill was acted on: calls go through again, and the kill is spent.
    pub fn revive(&self) {
        let mut inner = self.inner.lock();
        if let Some(at) = inner.fired.take() {
            inner.script.kills.retain(|(i, _)| *i != at);
        }
        self.killed.send_replace(false);
    }

    /// Clears the script (calls still counted), e.g. for the settling phase.
    pub fn disarm(&self) {
        self.inner.lock().script = Script::default();
    }

    /// The methods called so far in this scenario, in order.
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().calls.clone()
    }

    /// Resolves once the scripted kill happened.
    pub async fn killed(&self) {
        let mut rx = self.killed.subscribe();
        let _ = rx.wait_for(|k| *k).await;
    }

    /// Scripted kills not fired yet.
    pub fn kills_left(&self) -> usize {
        self.inner.lock().script.kills.len()
    }

    /// Whether the scripted kill happened.
    pub fn was_killed(&self) -> bool {
        *self.killed.borrow()
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(shared: &Shared, body: Bytes) -> Result<Bytes, String> {
    let answer = shared
        .http
        .post(&shared.upstream)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    answer.bytes().await.map_err(|e| e.to_string())
}

async fn mine(shared: &Shared) {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"evm_mine","params":[]}"#;
    forward(shared, Bytes::from_static(body.as_bytes()))
        .await
        .expect("evm_mine");
}

/// Holds a killed call: the registrar's step is dropped meanwhile. Bounded, so that no task
/// outlives the test for long.
async fn hold() -> ([(&'static str, &'static str); 1], Bytes) {
    tokio::time::sleep(Duration::from_secs(30)).await;
    (
        [("content-type", "application/json")],
        Bytes::from_static(b"{}"),
    )
}

async fn handle(
    State(shared): State<Shared>,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Bytes) {
    let method = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["method"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "<batch or garbage>".into());
    let (index, nth, script) = {
        let mut inner = shared.inner.lock();
        let nth = inner.calls.iter().filter(|m| **m == method).count();
        inner.calls.push(method.clone());
        let index = inner.calls.len() - 1;
        // A method trigger becomes an index trigger, so that firing and reviving work alike.
        if let Some((m, n, when)) = inner.script.kill_at_nth
            && m == method
            && n == nth
        {
            inner.script.kills.push((index, when));
            inner.script.kill_at_nth = None;
        }
        (index, nth, inner.script.clone())
    };
    let mine_now = script.mine_before == Some(index)
        || script
            .mine_before_nth
            .is_some_and(|(m, n)| m == method && n == nth);
    let fire = |when: Kill| {
        if script.kills.contains(&(index, when)) {
            shared.inner.lock().fired = Some(index);
            shared.killed.send_replace(true);
            true
        } else {
            false
        }
    };
    if *shared.killed.borrow() {
        // A call of a step that is being dropped: it never arrives.
        return hold().await;
    }
    if mine_now {
        mine(&shared).await;
    }
    if fire(Kill::Before) {
        return hold().await;
    }
    let t0 = std::time::Instant::now();
    let answer = forward(&shared, body).await.expect("forward to anvil");
    if std::env::var_os("OBOL_PROXY_TIMING").is_some() {
        eprintln!("proxy {method} {:?}", t0.elapsed());
    }
    if fire(Kill::After) {
        return hold().await;
    }
    ([("content-type", "application/json")], answer)
}
