//! The reservation store shared by several verifier replicas: one Redis or Valkey (7.0 or
//! newer). A reservation is `SET key value NX PX <remaining validity> GET` (set only when absent,
//! and say what was there); changes are compare-and-swap Lua scripts that keep the expiry.
//! Any failure to get an answer is [`StoreError::Unavailable`]: the caller answers 503, it
//! never skips the check.

use std::time::Duration;

use obol_x402::facilitator::async_trait;

use super::resp::{Client, RedisUrl, Reply, RespError};
use super::{Key, Store, StoreError};

/// Prefix of every key (`obol:x402:auth:<payer>:<nonce>`, lower-case hex).
pub const KEY_PREFIX: &str = "obol:x402:auth:";

const SWAP: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') return 1 end return 0";
const REMOVE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// See the module docs.
#[derive(Debug)]
pub struct RedisStore {
    client: Client,
}

impl RedisStore {
    /// A store at `url`; each operation gets `timeout`; at most `max_connections` are open.
    pub fn new(url: &str, timeout: Duration, max_connections: usize) -> Result<Self, String> {
        let url = RedisUrl::parse(url)?;
        Ok(Self {
            client: Client::new(url, timeout, max_connections),
        })
    }

    /// `PING`: whether the server answers (start-up log, tests).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self.client.call(&[b"PING"]).await.map_err(unavailable)? {
            Reply::Status(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn script(&self, script: &str, key: &Key, args: &[&str]) -> Result<bool, StoreError> {
        let key = key_string(key);
        let mut cmd: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), b"1", key.as_bytes()];
        cmd.extend(args.iter().map(|a| a.as_bytes()));
        match self.client.call(&cmd).await.map_err(unavailable)? {
            Reply::Int(n) => Ok(n == 1),
            other => Err(unexpected(&other)),
        }
    }
}

/// The Redis key of an authorization.
pub fn key_string(key: &Key) -> String {
    format!(
        "{KEY_PREFIX}{}:{}",
        hex::encode(key.payer.as_slice()),
        hex::encode(key.nonce.as_slice())
    )
}

fn unavailable(e: RespError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn unexpected(reply: &Reply) -> StoreError {
    match reply {
        // A server error (wrong version, out of memory, read-only replica): not an answer.
        Reply::Error(e) => StoreError::Unavailable(format!("Redis refused: {e}")),
        _ => StoreError::Unavailable("unexpected Redis reply".into()),
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn insert(
        &self,
        key: &Key,
        value: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let key = key_string(key);
        let ms = ttl.as_millis().max(1).to_string();
        let cmd: [&[u8]; 7] = [
            b"SET",
            key.as_bytes(),
            value.as_bytes(),
            b"NX",
            b"PX",
            ms.as_bytes(),
            b"GET",
        ];
        match self.client.call(&cmd).await.map_err(unavailable)? {
            Reply::Bulk(None) => Ok(None),
            Reply::Bulk(Some(old)) => Ok(Some(String::from_utf8_lossy(&old).into_owned())),
            other => Err(unexpected(&other)),
        }
    }

    async fn swap(&self, key: &Key, expected: &str, new: &str) -> Result<bool, StoreError> {
        self.script(SWAP, key, &[expected, new]).await
    }

    async fn remove(&self, key: &Key, expected: &str) -> Result<bool, StoreError> {
        self.script(REMOVE, key, &[expected]).await
    }
}
