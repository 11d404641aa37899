use alloy::primitives::{B256, address};

use super::*;

const SIGNER: Address = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

fn fence(nonce: Option<u64>) -> Fence {
    Fence {
        uri: "data:application/json;base64,e30=".into(),
        from_block: 10,
        reservation: nonce.map(|nonce| Reservation {
            signer: SIGNER,
            nonce,
        }),
    }
}

fn seen(mined_nonce: u64, stored: StoredTx, pending_nonce: u64) -> Observation {
    Observation {
        mined_nonce,
        minted: None,
        stored,
        pending_nonce,
        own_key: true,
    }
}

#[test]
fn a_reserved_fence_is_judged_by_its_nonce_at_the_pinned_block() {
    let tx = B256::repeat_byte(1);
    let n = 5;
    let found = Observation {
        minted: Some((0, tx)),
        ..seen(6, StoredTx::None, 6)
    };
    let cases = [
        // (observation, verdict, why)
        (
            found,
            Verdict::Found {
                agent_id: 0,
                tx_hash: tx,
            },
            "minted by the reserved nonce",
        ),
        (
            seen(6, StoredTx::None, 6),
            Verdict::Released,
            "N used by another transaction, nothing stored (crash before the hash was written)",
        ),
        (
            seen(7, StoredTx::Unknown, 9),
            Verdict::Released,
            "N used elsewhere; the stored hash was replaced",
        ),
        (
            seen(6, StoredTx::Reverted, 6),
            Verdict::Reverted,
            "our register used N and reverted",
        ),
        (
            seen(6, StoredTx::Succeeded, 6),
            Verdict::Inconsistent {
                why: "the registration succeeded but its Registered log is missing",
            },
            "a lagging log index must not release the fence",
        ),
        (
            seen(6, StoredTx::Pending, 6),
            Verdict::Inconsistent {
                why: "the registration is pending although its nonce is used",
            },
            "contradicting answers",
        ),
        (
            seen(5, StoredTx::None, 6),
            Verdict::InFlight,
            "a transaction with N is in the pool (ours, sent before a crash)",
        ),
        (
            seen(5, StoredTx::Pending, 6),
            Verdict::InFlight,
            "ours is pending, or mined after B",
        ),
        (
            seen(5, StoredTx::Succeeded, 6),
            Verdict::InFlight,
            "mined after B counts as pending (the stored state is pinned too)",
        ),
        (
            seen(5, StoredTx::None, 5),
            Verdict::Send { nonce: n },
            "nothing with N anywhere: (re)send with N",
        ),
        (
            seen(5, StoredTx::Unknown, 5),
            Verdict::Send { nonce: n },
            "the sent transaction was dropped: re-send with N",
        ),
        (
            seen(3, StoredTx::None, 3),
            Verdict::Gap { next: 3, nonce: n },
            "earlier nonces are missing: a send would only queue",
        ),
    ];
    for (o, want, why) in cases {
        assert_eq!(judge(&fence(Some(n)), &o), want, "{why}");
    }
}

#[test]
fn a_fence_of_a_rotated_key_waits_until_that_key_uses_its_nonce() {
    let other = Observation {
        own_key: false,
        ..seen(5, StoredTx::None, 5)
    };
    assert_eq!(
        judge(&fence(Some(5)), &other),
        Verdict::WaitForSigner {
            signer: SIGNER,
            nonce: 5
        }
    );
    // Once the old key's nonce is used, the outcome is known without that key.
    let used = Observation {
        own_key: false,
        ..seen(6, StoredTx::None, 6)
    };
    assert_eq!(judge(&fence(Some(5)), &used), Verdict::Released);
    let minted = Observation {
        own_key: false,
        minted: Some((3, B256::ZERO)),
        ..seen(6, StoredTx::None, 6)
    };
    assert!(matches!(
        judge(&fence(Some(5)), &minted),
        Verdict::Found { agent_id: 3, .. }
    ));
}

#[test]
fn an_old_fence_without_a_nonce_releases_only_when_nothing_can_still_mine() {
    let old = fence(None);
    assert_eq!(
        judge(&old, &seen(4, StoredTx::None, 4)),
        Verdict::Released,
        "nothing pending, nothing mined after B, no log up to B"
    );
    assert_eq!(
        judge(&old, &seen(4, StoredTx::None, 5)),
        Verdict::InFlight,
        "a transaction pending or mined after B may be the registration"
    );
    assert_eq!(
        judge(&old, &seen(4, StoredTx::Pending, 5)),
        Verdict::InFlight
    );
    assert_eq!(
        judge(&old, &seen(4, StoredTx::Reverted, 4)),
        Verdict::Reverted
    );
    assert!(matches!(
        judge(&old, &seen(4, StoredTx::Succeeded, 4)),
        Verdict::Inconsistent { .. }
    ));
}

#[test]
fn nonce_conflicts_on_a_resend_are_recognised() {
    for m in [
        "nonce too low: next nonce 6, tx nonce 5",
        "already known",
        "replacement transaction underpriced",
        "Known transaction: 0xabc",
    ] {
        assert!(nonce_taken(m), "{m}");
    }
    for m in [
        "execution reverted: registrations closed",
        "insufficient funds",
    ] {
        assert!(!nonce_taken(m), "{m}");
    }
}
