use std::sync::Arc;

use obol_x402::{Address, B256};

use super::memory::MemoryStore;
use super::*;
use crate::clock::FixedClock;

const FP: Fingerprint = Fingerprint(42);

fn key(i: u8) -> Key {
    Key::new(Address::repeat_byte(1), B256::repeat_byte(i))
}

fn setup(capacity: usize) -> (Reservations, Arc<MemoryStore>, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(1000));
    let store = Arc::new(MemoryStore::new(capacity, clock.clone()));
    (Reservations::new(store.clone(), 3600), store, clock)
}

async fn take(r: &Reservations, k: Key, now: u64) -> Lease {
    match r.hold(k, now + 300, now, now + 60, FP).await.unwrap() {
        Hold::Taken(lease) => lease,
        Hold::Known(known) => panic!("not free: {known:?}"),
    }
}

async fn known(r: &Reservations, k: Key, now: u64) -> Known {
    match r.hold(k, now + 300, now, now + 60, FP).await.unwrap() {
        Hold::Taken(lease) => panic!("taken: {lease:?}"),
        Hold::Known(known) => known,
    }
}

#[tokio::test]
async fn a_held_authorization_is_in_flight_until_released() {
    let (r, store, _) = setup(10);
    let lease = take(&r, key(1), 1000).await;
    assert_eq!(
        known(&r, key(1), 1010).await,
        Known::InFlight { retry_after: 50 }
    );
    // Another payer's same nonce is another authorization.
    let other = Key::new(Address::repeat_byte(2), B256::repeat_byte(1));
    take(&r, other, 1000).await;
    assert!(r.release(&lease).await.unwrap());
    take(&r, key(1), 1000).await;
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn settled_then_delivered_is_spent_and_undelivered_is_served_again_once() {
    let (r, _, _) = setup(10);
    let mut lease = take(&r, key(1), 1000).await;
    let delivering = Record::Delivering {
        token: lease.token,
        deadline: 1030,
        fingerprint: FP,
        receipt: "cmVjZWlwdA==".into(),
    };
    assert!(r.set(&mut lease, delivering).await.unwrap());
    // Not delivered yet: a copy is in flight, not a re-serve.
    assert!(matches!(
        known(&r, key(1), 1001).await,
        Known::InFlight { .. }
    ));
    // The answer never reached the client.
    let undelivered = Record::Undelivered {
        fingerprint: FP,
        receipt: "cmVjZWlwdA==".into(),
    };
    assert!(r.set(&mut lease, undelivered).await.unwrap());
    // A settled payment is never given back.
    assert!(!r.release(&lease).await.unwrap());
    let Known::Reserve { expected, receipt } = known(&r, key(1), 1002).await else {
        panic!("expected a re-serve");
    };
    assert_eq!(receipt, "cmVjZWlwdA==");
    let token = Token::random();
    let again = Record::Delivering {
        token,
        deadline: 1040,
        fingerprint: FP,
        receipt,
    };
    let mut second = r
        .take_over(key(1), token, &expected, again.clone())
        .await
        .unwrap()
        .expect("first claim wins");
    // A concurrent claim from the same stored form loses.
    assert!(
        r.take_over(key(1), Token::random(), &expected, again)
            .await
            .unwrap()
            .is_none()
    );
    assert!(r.set(&mut second, Record::Spent).await.unwrap());
    assert_eq!(known(&r, key(1), 1003).await, Known::Replayed);
    // The first holder, presumed gone, can no longer change anything.
    assert!(!r.set(&mut lease, Record::Spent).await.unwrap());
}

#[tokio::test]
async fn records_expire_with_the_authorization() {
    let (r, _, clock) = setup(10);
    let lease = take(&r, key(1), 1000).await;
    let _ = lease;
    // validBefore = 1300: gone after it, when no facilitator could settle it anyway.
    clock.set(1300);
    take(&r, key(1), 1300).await;
}

#[tokio::test]
async fn ttl_is_capped_and_at_least_a_second() {
    let (r, _, _) = setup(10);
    assert_eq!(r.ttl(u64::MAX, 0), Duration::from_secs(3600));
    assert_eq!(r.ttl(10, 10), Duration::from_secs(1));
    assert_eq!(r.ttl(70, 10), Duration::from_secs(60));
}

#[tokio::test]
async fn a_full_table_evicts_what_nobody_holds_then_refuses() {
    let (r, store, _) = setup(3);
    let mut leases = vec![];
    for i in 0..3 {
        leases.push(take(&r, key(i), 1000).await);
    }
    assert_eq!(
        r.hold(key(9), 1300, 1000, 1060, FP).await,
        Err(StoreError::Full)
    );
    // One is settled and delivered: it makes room for the newcomer.
    let mut first = leases.remove(0);
    assert!(r.set(&mut first, Record::Spent).await.unwrap());
    take(&r, key(9), 1000).await;
    assert_eq!(store.len(), 3);
    assert_eq!(
        r.hold(key(10), 1300, 1000, 1060, FP).await,
        Err(StoreError::Full)
    );
}
