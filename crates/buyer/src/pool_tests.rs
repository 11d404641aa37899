use super::*;
use crate::config::{PreSignedAuth, UpstreamConfig};
use crate::journal::Mark;

pub(crate) fn mk_config(url: &str, model: Option<&str>, network: &str) -> UpstreamConfig {
    UpstreamConfig {
        url: url.into(),
        remote_model: model.map(Into::into),
        network: network.into(),
        pay_to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into(),
        asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
        asset_symbol: None,
        asset_decimals: None,
        asset_transfer_method: None,
        eip712_name: None,
        eip712_version: None,
        price: "1000".into(),
        scheme: None,
        payer: None,
    }
}

fn mk_auth(nonce: &str, valid_before: &str) -> PreSignedAuth {
    PreSignedAuth {
        signature: Some("0x01".into()),
        from: Some("0xf".into()),
        to: Some("0xt".into()),
        value: Some("1000".into()),
        valid_after: Some("0".into()),
        valid_before: Some(valid_before.into()),
        nonce: Some(nonce.into()),
        ..PreSignedAuth::default()
    }
}

fn mk_loaded(n: usize) -> Loaded {
    let mut l = Loaded::default();
    l.upstreams.insert(
        "s".into(),
        mk_config("http://s/x/", Some("qwen3:32b"), "base-sepolia"),
    );
    l.auths.insert(
        "s".into(),
        (0..n)
            .map(|i| mk_auth(&format!("0x{i}"), "4294967295"))
            .collect(),
    );
    l
}

fn counts(pool: &Pool) -> (usize, usize, usize, usize, usize) {
    let c = pool.counts("s").unwrap();
    (c.remaining, c.held, c.spent, c.healed, c.expired)
}

#[test]
fn take_holds_and_reload_keeps_counts() {
    let mut pool = Pool::new([("0x0".to_owned(), Mark::Spent)]);
    assert!(pool.apply(&mk_loaded(3), 1000).is_empty());
    assert_eq!(counts(&pool), (2, 0, 1, 0, 0));
    let a = pool.take("s", 1000).unwrap();
    assert_eq!(a.key, "0x1");
    assert_eq!(counts(&pool), (1, 1, 1, 0, 0));
    // Reloading the same files keeps what is held and spent (B8).
    pool.apply(&mk_loaded(3), 1000);
    assert_eq!(counts(&pool), (1, 1, 1, 0, 0));
    pool.take("s", 1000).unwrap();
    assert_eq!(pool.take("s", 1000), Err(TakeError::Exhausted));
    assert_eq!(pool.take("nope", 1000), Err(TakeError::Unknown));
    assert_eq!(counts(&pool), (0, 2, 1, 0, 0));
}

#[test]
fn answers_move_a_held_authorization_on() {
    // (mark applied to a held key, to a free key) -> (journaled mark, counts after)
    let cases = [
        (Mark::Spent, Some(Mark::Spent), (1, 0, 1, 0, 0)),
        (Mark::Healed, Some(Mark::Healed), (1, 0, 1, 1, 0)),
        (Mark::Released, Some(Mark::Released), (2, 0, 0, 0, 0)),
        (Mark::Held, None, (1, 1, 0, 0, 0)),
    ];
    for (mark, journaled, after) in cases {
        let mut pool = Pool::new([]);
        pool.apply(&mk_loaded(2), 1000);
        let a = pool.take("s", 1000).unwrap();
        assert_eq!(pool.settle("s", &a.key, mark), journaled, "{mark:?}");
        assert_eq!(counts(&pool), after, "{mark:?}");
        // Spent is final: nothing moves it back.
        if mark.is_spent() {
            assert_eq!(pool.settle("s", &a.key, Mark::Released), None);
            assert_eq!(counts(&pool), after);
        }
    }
    // A released authorization is the next one sent.
    let mut pool = Pool::new([]);
    pool.apply(&mk_loaded(2), 1000);
    let a = pool.take("s", 1000).unwrap();
    pool.settle("s", &a.key, Mark::Released);
    assert_eq!(pool.take("s", 1000).unwrap().key, a.key);
}

#[test]
fn a_free_key_found_used_is_healed() {
    let mut pool = Pool::new([]);
    pool.apply(&mk_loaded(3), 1000);
    assert_eq!(pool.settle("s", "0x2", Mark::Spent), Some(Mark::Healed));
    assert_eq!(counts(&pool), (2, 0, 1, 1, 0));
    // A release of a free key means nothing.
    assert_eq!(pool.settle("s", "0x1", Mark::Released), None);
    assert_eq!(pool.unresolved("s").len(), 2);
}

#[test]
fn journal_marks_place_authorizations_at_load() {
    let marks = [
        ("0x0".to_owned(), Mark::Held),
        ("0x1".to_owned(), Mark::Healed),
        ("0x2".to_owned(), Mark::Spent),
    ];
    let mut pool = Pool::new(marks);
    pool.apply(&mk_loaded(4), 1000);
    assert_eq!(counts(&pool), (1, 1, 2, 1, 0));
    assert_eq!(pool.held()[0].1[0].key, "0x0");
}

#[test]
fn give_back_restores_the_auth_first() {
    let mut pool = Pool::new([]);
    pool.apply(&mk_loaded(2), 1);
    let a = pool.take("s", 1).unwrap();
    pool.give_back("s", a.clone());
    assert_eq!(counts(&pool), (2, 0, 0, 0, 0));
    assert_eq!(pool.take("s", 1).unwrap(), a);
}

#[test]
fn expiring_auths_are_dropped_and_counted() {
    let mut l = mk_loaded(0);
    l.auths.insert(
        "s".into(),
        vec![
            mk_auth("0xold", "100"),
            mk_auth("0xsoon", "1030"),
            mk_auth("0xlater", "1100"),
            mk_auth("0xnew", "4294967295"),
        ],
    );
    let mut pool = Pool::new([]).with_margin(60);
    pool.apply(&l, 1000);
    assert_eq!(
        counts(&pool),
        (2, 0, 0, 0, 2),
        "old and soon are dropped at load"
    );
    // Time passes: `later` is inside the margin by the time it would be taken.
    assert_eq!(pool.take("s", 1050).unwrap().key, "0xnew");
    assert_eq!(pool.take("s", 1050), Err(TakeError::Exhausted));
    assert_eq!(counts(&pool), (0, 1, 0, 0, 3));
    let mut pool = Pool::new([]).with_margin(60);
    pool.apply(&l, 1000);
    pool.sweep(1045);
    assert_eq!(counts(&pool), (1, 0, 0, 0, 3));
}

#[test]
fn authorizations_signed_for_other_terms_are_skipped() {
    let mut l = mk_loaded(0);
    let mut other_amount = mk_auth("0xa", "4294967295");
    other_amount.value = Some("2000".into());
    let mut other_payee = mk_auth("0xb", "4294967295");
    other_payee.to = Some("0x036CbD53842c5426634e7929541eC2318f3dCF7e".into());
    let fine = mk_auth("0xc", "4294967295");
    l.auths.insert(
        "s".into(),
        vec![other_amount, other_payee, fine.clone(), fine],
    );
    let mut pool = Pool::new([]);
    let notes = pool.apply(&l, 1000);
    assert_eq!(notes.len(), 2, "{notes:?}");
    let c = pool.counts("s").unwrap();
    assert_eq!(
        (c.remaining, c.skipped),
        (1, 3),
        "two for their terms, one duplicate"
    );
    // A payer, when configured, must have signed.
    let mut l = mk_loaded(1);
    l.upstreams.get_mut("s").unwrap().payer =
        Some("0x857b06519E91e3A54538791bDbb0E22373e36b66".into());
    pool.apply(&l, 1000);
    assert_eq!(pool.counts("s").unwrap().skipped, 1);
}

#[test]
fn a_key_spent_under_another_upstream_is_never_taken_again() {
    let mut l = mk_loaded(1);
    l.upstreams
        .insert("t".into(), mk_config("http://t", None, "base-sepolia"));
    l.auths
        .insert("t".into(), vec![mk_auth("0x0", "4294967295")]);
    let mut pool = Pool::new([]);
    pool.apply(&l, 1);
    pool.take("s", 1).unwrap();
    assert_eq!(pool.take("t", 1), Err(TakeError::Exhausted));
}

#[test]
fn models_route_and_status_matches_the_go_shape() {
    let mut l = mk_loaded(2);
    l.upstreams
        .insert("free".into(), mk_config("http://f", None, "base"));
    let mut bad = mk_config("ftp://x", None, "base");
    bad.price = "1.5".into();
    l.upstreams.insert("bad".into(), bad);
    let mut pool = Pool::new([]);
    let notes = pool.apply(&l, 1);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(pool.route_model("qwen3:32b").unwrap().name, "s");
    assert_eq!(pool.route_model("free").unwrap().name, "free");
    assert!(pool.route_model("other").is_none());
    let status = serde_json::to_value(pool.status()).unwrap();
    assert_eq!(
        status["s"],
        serde_json::json!({"url": "http://s/x", "remote_model": "qwen3:32b",
            "public_model": "paid/qwen3:32b", "remaining": 2, "spent": 0, "held": 0, "healed": 0,
            "expired": 0, "network": "base-sepolia"})
    );
    assert!(status["free"].get("remote_model").is_none());
}

#[test]
fn a_partitioned_pool_takes_only_from_open_slots_and_counts_per_slot() {
    use crate::partition::{SLOTS, slot_of_nonce};
    let loaded = mk_loaded(60);
    let slot = |i: usize| slot_of_nonce(&format!("0x{i}"));
    let mut pool = Pool::new([("0x0".to_owned(), Mark::Spent)]);
    pool.set_partitioned();
    pool.apply(&loaded, 1000);
    assert_eq!(
        pool.take("s", 1000).unwrap_err(),
        TakeError::Exhausted,
        "closed"
    );
    let open: BTreeSet<_> = [slot(1), slot(2)].into_iter().collect();
    pool.set_gate("s", Some(open.clone()));
    let mut taken = Vec::new();
    while let Ok(a) = pool.take("s", 1000) {
        assert!(open.contains(&a.slot()), "{} from a closed slot", a.key);
        taken.push(a.key);
    }
    let in_open = (1..60).filter(|&i| open.contains(&slot(i))).count();
    assert_eq!(taken.len(), in_open);
    // The others are untouched, still free for the replica that holds their slots.
    assert_eq!(pool.counts("s").unwrap().remaining, 59 - in_open);
    let per_slot = pool.slot_counts("s").unwrap();
    assert_eq!(per_slot.len(), usize::from(SLOTS));
    for (s, c) in per_slot.iter().enumerate() {
        let s = s as u16;
        let here = (0..60).filter(|&i| slot(i) == s).count();
        let spent = usize::from(slot(0) == s);
        if open.contains(&s) {
            assert_eq!(
                (c.remaining, c.held, c.spent),
                (0, here - spent, spent),
                "slot {s}"
            );
        } else {
            assert_eq!(
                (c.remaining, c.held, c.spent),
                (here - spent, 0, spent),
                "slot {s}"
            );
        }
    }
    // Unpartitioned again: every slot.
    let mut single = Pool::new([]);
    single.apply(&loaded, 1000);
    single.set_gate("s", None);
    assert_eq!(
        (0..60).filter(|_| single.take("s", 1000).is_ok()).count(),
        60
    );
}

#[test]
fn a_stated_charge_is_counted_once_and_survives_a_reload() {
    let charged = |pool: &Pool| {
        let c = pool.counts("s").unwrap();
        (c.spent, c.receipts, c.charged)
    };
    let mut pool = Pool::new([]);
    pool.apply(&mk_loaded(4), 1000);
    let a = pool.take("s", 1000).unwrap();
    let b = pool.take("s", 1000).unwrap();
    let c = pool.take("s", 1000).unwrap();
    // A confirmed spend with a receipt amount, one without (a stream), a refusal.
    assert_eq!(
        pool.settle_charged("s", &a.key, Mark::Spent, Some(61)),
        Some(Mark::Spent)
    );
    assert_eq!(
        pool.settle_charged("s", &b.key, Mark::Spent, None),
        Some(Mark::Spent)
    );
    assert_eq!(
        pool.settle_charged("s", &c.key, Mark::Released, Some(9)),
        Some(Mark::Released)
    );
    assert_eq!(charged(&pool), (2, 1, 61));
    // A second answer for a spent key changes nothing, amount included.
    assert_eq!(pool.settle_charged("s", &a.key, Mark::Spent, Some(5)), None);
    // A free key found used is healed: the chain says nothing of an amount.
    let d = pool.unresolved("s").pop().unwrap();
    assert_eq!(
        pool.settle_charged("s", &d.key, Mark::Spent, Some(7)),
        Some(Mark::Healed)
    );
    assert_eq!(charged(&pool), (3, 1, 61));
    let status = &pool.status()["s"];
    assert_eq!(
        (status.receipts, status.charged.as_deref()),
        (1, Some("61"))
    );
    assert_eq!(
        pool.slot_counts("s")
            .unwrap()
            .iter()
            .map(|c| c.charged)
            .sum::<u128>(),
        61
    );
    pool.apply(&mk_loaded(4), 1000);
    assert_eq!(charged(&pool), (3, 1, 61));

    // A restart: the journal's marks and amounts give the same counts.
    let mut again = Pool::new([
        (a.key.clone(), Mark::Spent),
        (b.key.clone(), Mark::Spent),
        (d.key.clone(), Mark::Healed),
    ])
    .with_charges([(a.key.clone(), 61)]);
    again.apply(&mk_loaded(4), 1000);
    assert_eq!(charged(&again), (3, 1, 61));
    // A stream's amount arrives after its spend was recorded: taken once, by a spent key only.
    assert!(again.add_charge("s", &b.key, 30));
    assert!(!again.add_charge("s", &b.key, 99), "once");
    assert!(!again.add_charge("s", &a.key, 99), "a has its amount");
    assert!(
        !again.add_charge("s", &d.key, 99),
        "healed: nothing was answered"
    );
    let free = again.unresolved("s").pop().unwrap();
    assert!(!again.add_charge("s", &free.key, 99), "not spent");
    assert_eq!(charged(&again), (3, 2, 91));
    let none = &Pool::new([]);
    assert_eq!(none.status().get("s"), None);
}
