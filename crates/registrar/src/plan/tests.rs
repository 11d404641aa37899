use std::time::Duration;

use alloy::primitives::address;

use super::recovery::{Fence, Reservation};
use super::*;

const URI: &str = "data:application/json;base64,AAAA";
const LIVE: &str = "data:application/json;base64,BBBB";
const REGISTRY: &str = "eip155:84532:0x8004A818BFB912233c491871b3d84c89A494BD9e";
const SIGNER: Address = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

fn reservation(nonce: u64) -> Reservation {
    Reservation {
        signer: SIGNER,
        nonce,
    }
}

fn fenced(from_block: u64, uri: &str) -> Outcome {
    Outcome::Fenced {
        from_block,
        uri: uri.into(),
        reservation: reservation(7),
        agent_registry: REGISTRY.into(),
    }
}

fn fence(from_block: u64, uri: &str) -> Fence {
    Fence {
        uri: uri.into(),
        from_block,
        reservation: Some(reservation(7)),
    }
}

fn now() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn backoff() -> Backoff {
    Backoff {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(60),
    }
}

fn inputs(status: &Status) -> Inputs<'_> {
    Inputs {
        generation: Some(1),
        status,
        has_key: true,
        register_uri: URI,
        live_uri: LIVE,
        agent_registry: REGISTRY,
        now: now(),
    }
}

fn tx() -> B256 {
    B256::repeat_byte(0xab)
}

/// Runs `outcome` on `status` at generation 1.
fn after(status: &Status, outcome: Outcome) -> Status {
    apply(status, Some(1), outcome, now(), &backoff())
}

#[test]
fn happy_path_fences_before_sending_then_confirms() {
    let s0 = Status::default();
    assert_eq!(decide(&inputs(&s0)), Action::Fence { uri: URI.into() });

    let s1 = after(&s0, fenced(41, URI));
    assert_eq!(s1.phase, Some(Phase::Pending));
    assert_eq!(s1.search_from_block, Some(41));
    assert_eq!(
        (s1.signer.as_deref(), s1.nonce, s1.agent_registry.as_deref()),
        (
            Some("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
            Some(7),
            Some(REGISTRY)
        )
    );
    assert_eq!(
        decide(&inputs(&s1)),
        Action::Submit {
            fence: fence(41, URI),
            tx_hash: None,
        }
    );

    let s2 = after(&s1, Outcome::Sent { tx_hash: tx() });
    assert_eq!(s2.phase, Some(Phase::Submitted));
    assert_eq!(s2.tx_hash.as_deref(), Some(tx().to_string().as_str()));
    // After a crash (or simply the next reconcile) the stored hash is looked up first.
    assert_eq!(
        decide(&inputs(&s2)),
        Action::Submit {
            fence: fence(41, URI),
            tx_hash: Some(tx()),
        }
    );

    let s3 = after(
        &s2,
        Outcome::Recovered {
            agent_id: 0,
            tx_hash: None,
        },
    );
    assert_eq!(s3.phase, Some(Phase::Confirmed));
    assert_eq!(s3.agent_id.as_deref(), Some("0"));
    assert!(s3.tx_hash.is_some(), "the hash stays");
    assert!(s3.phase.unwrap().counts_as_registered());

    // The data: URI now gains `registrations`: one setAgentURI, then metadata, then idle.
    assert_eq!(
        decide(&inputs(&s3)),
        Action::UpdateUri {
            agent_id: 0,
            uri: LIVE.into()
        }
    );
    let s4 = after(&s3, Outcome::UriUpdated { uri: LIVE.into() });
    assert_eq!(decide(&inputs(&s4)), Action::SyncMetadata { agent_id: 0 });
    let s5 = after(&s4, Outcome::MetadataSynced);
    assert_eq!(decide(&inputs(&s5)), Action::Idle);
    assert_eq!(s5.observed_generation, Some(1));
}

#[test]
fn a_spec_change_updates_the_uri_instead_of_registering_again() {
    let mut s = Status {
        phase: Some(Phase::Confirmed),
        agent_id: Some("5".into()),
        registration_uri: Some(LIVE.into()),
        search_from_block: Some(3),
        ..Status::default()
    };
    s = after(&s, Outcome::MetadataSynced);
    assert_eq!(decide(&inputs(&s)), Action::Idle);
    let changed = Inputs {
        generation: Some(2),
        live_uri: "data:application/json;base64,CCCC",
        ..inputs(&s)
    };
    assert_eq!(
        decide(&changed),
        Action::UpdateUri {
            agent_id: 5,
            uri: "data:application/json;base64,CCCC".into()
        }
    );
    // Same URI (served document) but new generation: metadata is synced again.
    let served = Inputs {
        generation: Some(2),
        ..inputs(&s)
    };
    assert_eq!(decide(&served), Action::SyncMetadata { agent_id: 5 });
}

#[test]
fn a_spec_change_while_fenced_registers_the_fenced_uri_first() {
    // The fenced register may already be in a mempool: the fence is never dropped for a newer
    // URI. The fenced URI is registered, then moved with setAgentURI.
    let s = after(
        &Status::default(),
        fenced(9, "data:application/json;base64,OLD"),
    );
    let s = after(&s, Outcome::Sent { tx_hash: tx() });
    assert_eq!(
        decide(&inputs(&s)),
        Action::Submit {
            fence: fence(9, "data:application/json;base64,OLD"),
            tx_hash: Some(tx()),
        }
    );
    let confirmed = after(
        &s,
        Outcome::Recovered {
            agent_id: 2,
            tx_hash: Some(tx()),
        },
    );
    assert_eq!(
        decide(&inputs(&confirmed)),
        Action::UpdateUri {
            agent_id: 2,
            uri: LIVE.into()
        }
    );
}

#[test]
fn a_released_fence_is_cleared_and_fenced_again() {
    let s = after(&Status::default(), fenced(9, URI));
    let s = after(&s, Outcome::Sent { tx_hash: tx() });
    let s2 = after(&s, Outcome::Unfenced);
    assert_eq!(
        (
            s2.search_from_block,
            s2.tx_hash.as_deref(),
            s2.signer.as_deref(),
            s2.nonce,
            s2.agent_registry.as_deref()
        ),
        (None, None, None, None, None)
    );
    assert_eq!(decide(&inputs(&s2)), Action::Fence { uri: URI.into() });
}

#[test]
fn a_fence_of_an_earlier_version_is_recovered_without_a_reservation() {
    let s = Status {
        phase: Some(Phase::Submitted),
        search_from_block: Some(9),
        registration_uri: Some(URI.into()),
        ..Status::default()
    };
    assert_eq!(
        decide(&inputs(&s)),
        Action::Submit {
            fence: Fence {
                uri: URI.into(),
                from_block: 9,
                reservation: None,
            },
            tx_hash: None,
        }
    );
}

#[test]
fn an_agent_cannot_move_to_another_registry() {
    let s = after(&Status::default(), fenced(9, URI));
    let moved = Inputs {
        agent_registry: "eip155:8453:0x8004A169FB4a3325136EB29fA0ceB6D2e539a432",
        ..inputs(&s)
    };
    let Action::Refuse { message } = decide(&moved) else {
        panic!("a moved target must be refused");
    };
    assert!(
        message.contains(REGISTRY) && message.contains("eip155:8453"),
        "{message}"
    );
    let failed = after(&s, Outcome::Permanent { message });
    assert_eq!(failed.phase, Some(Phase::Failed));
    assert_eq!(failed.nonce, Some(7), "the fence is kept");
}

#[test]
fn in_flight_keeps_submitted_and_never_unfences() {
    let s = Status {
        phase: Some(Phase::Pending),
        search_from_block: Some(9),
        registration_uri: Some(URI.into()),
        ..Status::default()
    };
    let s2 = after(&s, Outcome::InFlight);
    assert_eq!(s2.phase, Some(Phase::Submitted));
    assert_eq!(s2.search_from_block, Some(9));
    assert!(matches!(decide(&inputs(&s2)), Action::Submit { .. }));
}

#[test]
fn transient_errors_back_off_and_count_attempts() {
    let s0 = Status::default();
    let s1 = after(
        &s0,
        Outcome::Transient {
            message: "connection refused".into(),
        },
    );
    assert_eq!(s1.attempts, Some(1));
    assert_eq!(s1.error_message.as_deref(), Some("connection refused"));
    assert_eq!(
        s1.next_attempt_time.as_deref(),
        Some("2026-01-01T00:00:02Z")
    );
    assert_eq!(s1.phase, Some(Phase::Pending));
    assert_eq!(
        decide(&inputs(&s1)),
        Action::Wait {
            until: "2026-01-01T00:00:02Z".parse().unwrap()
        }
    );
    let s2 = after(
        &s1,
        Outcome::Transient {
            message: "again".into(),
        },
    );
    assert_eq!(s2.attempts, Some(2));
    assert_eq!(
        s2.next_attempt_time.as_deref(),
        Some("2026-01-01T00:00:04Z")
    );
    // Once the time has come, the step is retried.
    let later = Inputs {
        now: "2026-01-01T00:00:05Z".parse().unwrap(),
        ..inputs(&s2)
    };
    assert_eq!(decide(&later), Action::Fence { uri: URI.into() });
    // Success clears the bookkeeping.
    let s3 = after(&s2, fenced(1, URI));
    assert_eq!(
        (s3.attempts, s3.next_attempt_time, s3.error_message),
        (None, None, None)
    );
}

#[test]
fn permanent_errors_fail_until_the_spec_changes() {
    let s = after(
        &Status::default(),
        Outcome::Permanent {
            message: "register: reverted: registrations closed".into(),
        },
    );
    assert_eq!(s.phase, Some(Phase::Failed));
    assert_eq!(
        s.error_message.as_deref(),
        Some("register: reverted: registrations closed")
    );
    assert_eq!(decide(&inputs(&s)), Action::Idle);
    let next_gen = Inputs {
        generation: Some(2),
        ..inputs(&s)
    };
    assert_eq!(decide(&next_gen), Action::Fence { uri: URI.into() });
}

#[test]
fn no_key_is_off_chain_only_and_stays_quiet() {
    let s = Status::default();
    let i = Inputs {
        has_key: false,
        ..inputs(&s)
    };
    assert_eq!(decide(&i), Action::OffChainOnly);
    let s2 = after(&s, Outcome::OffChainOnly);
    assert_eq!(s2.phase, Some(Phase::OffChainOnly));
    assert_eq!(
        decide(&Inputs {
            has_key: false,
            ..inputs(&s2)
        }),
        Action::Idle
    );
    // A key configured later registers.
    assert_eq!(decide(&inputs(&s2)), Action::Fence { uri: URI.into() });
}

#[test]
fn messages_are_clipped() {
    let long = "x".repeat(1000);
    let s = after(&Status::default(), Outcome::Permanent { message: long });
    assert_eq!(s.error_message.unwrap().chars().count(), MAX_MESSAGE);
}

#[test]
fn cleanup_tombstones_known_agents_and_releases_the_rest() {
    let confirmed = Status {
        phase: Some(Phase::Confirmed),
        agent_id: Some("0".into()),
        registration_uri: Some(LIVE.into()),
        search_from_block: Some(1),
        ..Status::default()
    };
    assert_eq!(
        decide_cleanup(&confirmed, true, 5, now()),
        CleanupAction::Tombstone { agent_id: 0 }
    );
    let done = after(&confirmed, Outcome::Tombstoned { uri: "t".into() });
    assert_eq!(done.phase, Some(Phase::Tombstoned));
    assert_eq!(
        decide_cleanup(&done, true, 5, now()),
        CleanupAction::Release { warning: None }
    );
    // Never registered: nothing to retire.
    assert_eq!(
        decide_cleanup(&Status::default(), true, 5, now()),
        CleanupAction::Release { warning: None }
    );
    // Fenced without an id: a registration may be in flight; judge the fence first.
    let in_flight = after(
        &after(&Status::default(), fenced(4, URI)),
        Outcome::Sent { tx_hash: tx() },
    );
    assert_eq!(
        decide_cleanup(&in_flight, true, 5, now()),
        CleanupAction::Recover {
            fence: fence(4, URI),
            tx_hash: Some(tx())
        }
    );
    // No key: release, warning when an agent stays active.
    let CleanupAction::Release { warning: Some(w) } = decide_cleanup(&confirmed, false, 5, now())
    else {
        panic!("expected a warning");
    };
    assert!(w.contains("agent 0"), "{w}");
}

#[test]
fn cleanup_retries_are_bounded() {
    let confirmed = Status {
        phase: Some(Phase::Confirmed),
        agent_id: Some("3".into()),
        attempts: Some(2),
        next_attempt_time: Some("2025-12-31T00:00:00Z".into()),
        ..Status::default()
    };
    // Deletion resets the counter once.
    let started = begin_cleanup(&confirmed, now()).unwrap();
    assert_eq!(started.attempts, None);
    assert!(begin_cleanup(&started, now()).is_none());

    let mut s = started;
    for attempt in 1..=3u32 {
        assert_eq!(
            decide_cleanup(&s, true, 3, "2027-01-01T00:00:00Z".parse().unwrap()),
            CleanupAction::Tombstone { agent_id: 3 },
            "attempt {attempt}"
        );
        s = after(
            &s,
            Outcome::Transient {
                message: "rpc down".into(),
            },
        );
        assert!(matches!(
            decide_cleanup(&s, true, 3, now()),
            CleanupAction::Wait { .. } | CleanupAction::Release { .. }
        ));
    }
    let CleanupAction::Release { warning: Some(w) } = decide_cleanup(&s, true, 3, now()) else {
        panic!("expected release with a warning");
    };
    assert!(
        w.contains("after 3 attempts") && w.contains("rpc down"),
        "{w}"
    );
}
