//! The Redis reservation store against a real `redis-server` (Debian's, from
//! `scripts/tools/redis.sh`): the store contract, three "replicas" sharing one server, and a
//! server that dies and comes back.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use obol_devstack::redis::Redis;
use obol_verifier::reservations::redis::RedisStore;
use obol_verifier::reservations::{
    Fingerprint, Hold, Key, Known, Record, Reservations, Store, StoreError,
};
use obol_x402::{Address, B256};

fn key(i: u8) -> Key {
    Key::new(Address::repeat_byte(0xaa), B256::repeat_byte(i))
}

async fn server() -> (Redis, std::path::PathBuf) {
    let dir = obol_testenv::scratch_dir("redis-test");
    let bin = obol_testenv::tools::redis_server();
    let redis = Redis::start(&bin, &dir.join("redis.log")).await.unwrap();
    (redis, dir)
}

fn store(url: &str) -> RedisStore {
    RedisStore::new(url, Duration::from_millis(500), 8).unwrap()
}

#[tokio::test]
async fn the_store_contract_holds_on_redis() {
    let (redis, dir) = server().await;
    let s = store(&redis.url());
    s.ping().await.unwrap();
    let ttl = Duration::from_secs(60);
    assert_eq!(s.insert(&key(1), "h:1:9", ttl).await, Ok(None));
    assert_eq!(
        s.insert(&key(1), "h:2:9", ttl).await,
        Ok(Some("h:1:9".into()))
    );
    assert_eq!(s.swap(&key(1), "h:2:9", "d").await, Ok(false));
    assert_eq!(s.swap(&key(1), "h:1:9", "d").await, Ok(true));
    assert_eq!(s.remove(&key(1), "h:1:9").await, Ok(false));
    assert_eq!(s.remove(&key(1), "d").await, Ok(true));
    assert_eq!(s.insert(&key(1), "h:3:9", ttl).await, Ok(None));
    // PX: gone after the authorization's remaining validity.
    assert_eq!(
        s.insert(&key(2), "h:1:9", Duration::from_millis(200)).await,
        Ok(None)
    );
    assert!(
        s.swap(&key(2), "h:1:9", "d").await.unwrap(),
        "the swap keeps the expiry"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.insert(&key(2), "h:4:9", ttl).await, Ok(None));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn three_replicas_sharing_redis_give_one_copy_the_payment() {
    let (redis, dir) = server().await;
    let replicas: Vec<Arc<Reservations>> = (0..3)
        .map(|_| Arc::new(Reservations::new(Arc::new(store(&redis.url())), 3600)))
        .collect();
    let mut tasks = vec![];
    for i in 0..32 {
        let r = replicas[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            r.hold(
                key(7),
                2_000_000_000,
                1_000_000_000,
                1_000_000_060,
                Fingerprint(1),
            )
            .await
        }));
    }
    let mut taken = vec![];
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Hold::Taken(lease) => taken.push(lease),
            Hold::Known(k) => assert!(matches!(k, Known::InFlight { .. }), "{k:?}"),
        }
    }
    assert_eq!(taken.len(), 1, "exactly one copy holds it");
    // Settled and delivered on one replica: a replay on another is refused.
    let mut lease = taken.pop().unwrap();
    assert!(replicas[0].set(&mut lease, Record::Spent).await.unwrap());
    let again = replicas[2]
        .hold(
            key(7),
            2_000_000_000,
            1_000_000_000,
            1_000_000_060,
            Fingerprint(1),
        )
        .await
        .unwrap();
    assert_eq!(again, Hold::Known(Known::Replayed));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_dead_redis_is_unavailable_fast_and_recovery_needs_nothing() {
    let (mut redis, dir) = server().await;
    let s = store(&redis.url());
    let ttl = Duration::from_secs(60);
    assert_eq!(s.insert(&key(1), "h:1:9", ttl).await, Ok(None));
    redis.kill().await;
    let started = std::time::Instant::now();
    let down = s.insert(&key(2), "h:1:9", ttl).await;
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "fails within its budget"
    );
    redis.restart().await.unwrap();
    // The pooled connections died with the server; new ones are made.
    let mut answered = None;
    for _ in 0..3 {
        answered = Some(s.insert(&key(3), "h:1:9", ttl).await);
        if matches!(answered, Some(Ok(_))) {
            break;
        }
    }
    assert_eq!(answered, Some(Ok(None)));
    let _ = std::fs::remove_dir_all(dir);
}
