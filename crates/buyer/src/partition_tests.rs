use super::*;

/// One verdict in one or two letters: `S` spend, `C` claim, `K` check, `W:<holder>` wait,
/// `D` drain, `Y:<other>` yield, `R` release, `-` idle.
fn code(v: &Verdict) -> String {
    match v {
        Verdict::Spend => "S".into(),
        Verdict::Claim => "C".into(),
        Verdict::Check => "K".into(),
        Verdict::Wait { holder } => format!("W:{holder}"),
        Verdict::Drain => "D".into(),
        Verdict::Yield { other } => format!("Y:{other}"),
        Verdict::Release => "R".into(),
        Verdict::Idle => "-".into(),
    }
}

fn slots(list: &[Slot]) -> BTreeSet<Slot> {
    list.iter().copied().collect()
}

fn peer(name: &str, list: &[Slot], live: bool) -> Peer {
    Peer {
        name: name.into(),
        slots: slots(list),
        live,
    }
}

/// `holding` per slot from a 12-letter string (`.` none, `c` claimed, `k` checked) and the
/// held counts `(slot, held, overdue)`.
fn own(holding: &str, held: &[(Slot, usize, bool)]) -> Vec<Own> {
    assert_eq!(holding.len(), usize::from(SLOTS));
    let mut out: Vec<Own> = holding
        .bytes()
        .map(|b| Own {
            holding: match b {
                b'.' => Holding::None,
                b'c' => Holding::Claimed,
                b'k' => Holding::Checked,
                other => panic!("holding {}", other as char),
            },
            ..Own::default()
        })
        .collect();
    for &(s, n, overdue) in held {
        out[usize::from(s)].held = n;
        out[usize::from(s)].drain_overdue = overdue;
    }
    out
}

struct Case {
    name: &'static str,
    ordinal: u32,
    replicas: u32,
    own: Vec<Own>,
    peers: Vec<Peer>,
    lapsed: bool,
    /// The 12 verdicts, space-separated, slot 0 first.
    want: &'static str,
}

const R0_OF_3: [Slot; 4] = [0, 3, 6, 9];
const R1_OF_3: [Slot; 4] = [1, 4, 7, 10];
const R2_OF_3: [Slot; 4] = [2, 5, 8, 11];
const EVERY: [Slot; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

#[test]
fn handover_table() {
    let cases = [
        // ---- one replica
        Case {
            name: "a single replica starting claims every slot",
            ordinal: 0,
            replicas: 1,
            own: own("............", &[]),
            peers: vec![],
            lapsed: false,
            want: "C C C C C C C C C C C C",
        },
        Case {
            name: "claimed slots are checked on chain before the first spend",
            ordinal: 0,
            replicas: 1,
            own: own("cccccccccccc", &[]),
            peers: vec![],
            lapsed: false,
            want: "K K K K K K K K K K K K",
        },
        Case {
            name: "checked slots are spent from",
            ordinal: 0,
            replicas: 1,
            own: own("kkkkkkkkkkkk", &[]),
            peers: vec![],
            lapsed: false,
            want: "S S S S S S S S S S S S",
        },
        // ---- scale up 1 -> 3
        Case {
            name: "scale up, the old holder (now 1 of 3): keeps its share, releases the rest, \
                   drains what it still waits answers for",
            ordinal: 0,
            replicas: 3,
            own: own(
                "kkkkkkkkkkkk",
                &[(2, 2, false), (4, 1, false), (0, 3, false)],
            ),
            peers: vec![peer("b-1", &[], true), peer("b-2", &[], true)],
            lapsed: false,
            want: "S R D S D R S R R S R R",
        },
        Case {
            name: "scale up, a new replica waits while the old holder lists its slots",
            ordinal: 1,
            replicas: 3,
            own: own("............", &[]),
            peers: vec![peer("b-0", &[0, 2, 3, 4, 6, 9], true)],
            lapsed: false,
            want: "- C - - W:b-0 - - C - - C -",
        },
        Case {
            name: "scale up, the old holder still sees one replica: the new ones wait for all",
            ordinal: 2,
            replicas: 3,
            own: own("............", &[]),
            peers: vec![peer("b-0", &EVERY, true), peer("b-1", &[], true)],
            lapsed: false,
            want: "- - W:b-0 - - W:b-0 - - W:b-0 - - W:b-0",
        },
        // ---- scale down 3 -> 1
        Case {
            name: "scale down, the survivor waits for a draining live peer and takes a released \
                   slot",
            ordinal: 0,
            replicas: 1,
            own: own("k..k..k..k..", &[]),
            peers: vec![
                peer("b-1", &[1, 4], true),
                peer("b-2", &R2_OF_3, true),
                peer("b-3", &[], true),
            ],
            lapsed: false,
            want: "S W:b-1 W:b-2 S W:b-1 W:b-2 S C W:b-2 S C W:b-2",
        },
        Case {
            name: "scale down, a replica being removed releases what has no answer pending",
            ordinal: 1,
            replicas: 1,
            own: own(".k..k..k..k.", &[(4, 2, false), (7, 1, true)]),
            peers: vec![peer("b-0", &R0_OF_3, true)],
            lapsed: false,
            want: "- R - - D - - R - - R -",
        },
        Case {
            name: "scaled to zero: nobody is assigned anything",
            ordinal: 0,
            replicas: 0,
            own: own("k..k..k..k..", &[(3, 1, false)]),
            peers: vec![],
            lapsed: false,
            want: "R - - D - - R - - R - -",
        },
        // ---- a replica that died holding authorizations
        Case {
            name: "a dead holder's slots are claimed after a whole lease of silence (then the \
                   chain check decides what it spent)",
            ordinal: 0,
            replicas: 1,
            own: own("k..k..k..k..", &[]),
            peers: vec![peer("b-1", &R1_OF_3, false), peer("b-2", &R2_OF_3, false)],
            lapsed: false,
            want: "S C C S C C S C C S C C",
        },
        Case {
            name: "a dead holder's slots are not taken by a replica they are not assigned to",
            ordinal: 0,
            replicas: 3,
            own: own("k..k..k..k..", &[]),
            peers: vec![peer("b-1", &R1_OF_3, false), peer("b-2", &R2_OF_3, true)],
            lapsed: false,
            want: "S - - S - - S - - S - -",
        },
        Case {
            name: "a replica restarted after kill -9 claims its own slots again (its old entry \
                   is not a peer) and checks the chain first",
            ordinal: 1,
            replicas: 3,
            own: own("............", &[]),
            peers: vec![peer("b-0", &R0_OF_3, true), peer("b-2", &R2_OF_3, true)],
            lapsed: false,
            want: "- C - - C - - C - - C -",
        },
        // ---- two replicas that both believe they own a slot
        Case {
            name: "both list a slot (one took over while the other only looked dead): yield, \
                   drain, release",
            ordinal: 1,
            replicas: 3,
            own: own(".k..k..k..k.", &[(4, 1, false), (7, 1, true)]),
            peers: vec![peer("b-0", &[1, 4, 7], true)],
            lapsed: false,
            want: "- R - - Y:b-0 - - R - - S -",
        },
        Case {
            name: "both see themselves assigned (replica counts seen differently), neither lists \
                   it: both try to claim, the conditional write lets one win",
            ordinal: 0,
            replicas: 1,
            own: own("k..k..k..k..", &[]),
            peers: vec![peer("b-1", &[], true)],
            lapsed: false,
            want: "S C C S C C S C C S C C",
        },
        Case {
            name: "... and the loser, on re-reading, waits for the winner",
            ordinal: 1,
            replicas: 3,
            own: own("............", &[]),
            peers: vec![peer("b-0", &EVERY, true)],
            lapsed: false,
            want: "- W:b-0 - - W:b-0 - - W:b-0 - - W:b-0 -",
        },
        // ---- a lapsed lease
        Case {
            name: "after a lapse nothing counts as checked: the chain is asked again",
            ordinal: 0,
            replicas: 3,
            own: own("k..k..c..k..", &[]),
            peers: vec![],
            lapsed: true,
            want: "K - - K - - K - - K - -",
        },
        Case {
            name: "after a lapse a slot someone else took is yielded",
            ordinal: 0,
            replicas: 3,
            own: own("k..k..k..k..", &[(3, 1, false)]),
            peers: vec![peer("b-1", &[3], true)],
            lapsed: true,
            want: "K - - Y:b-1 - - K - - K - -",
        },
    ];
    for c in cases {
        let got: Vec<String> = decide(&Input {
            ordinal: c.ordinal,
            replicas: c.replicas,
            own: &c.own,
            peers: &c.peers,
            lapsed: c.lapsed,
        })
        .iter()
        .map(code)
        .collect();
        assert_eq!(got.join(" "), c.want, "{}", c.name);
    }
}

/// The invariant behind the table: whatever the views, after any sequence of successful
/// conditional writes no two replicas may spend from one slot. Simulated: three replicas with
/// changing replica counts, a store that accepts a write only on the version it was decided
/// on, random interleavings.
#[test]
fn no_two_replicas_ever_spend_from_one_slot() {
    #[derive(Clone)]
    struct Replica {
        own: Vec<Own>,
        replicas: u32,
        spending: BTreeSet<Slot>,
    }
    let names = ["b-0", "b-1", "b-2"];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // Slots spent from, and slots spent from by a replica other than the one before.
    let (mut spent_from, mut moved) = (0usize, 0usize);
    for _run in 0..300 {
        let mut last_spender: Vec<Option<usize>> = vec![None; usize::from(SLOTS)];
        let mut store: Vec<BTreeSet<Slot>> = vec![BTreeSet::new(); 3];
        let mut version = 0u64;
        let mut rs: Vec<Replica> = (0..3)
            .map(|_| Replica {
                own: vec![Own::default(); usize::from(SLOTS)],
                replicas: 1 + next(3) as u32,
                spending: BTreeSet::new(),
            })
            .collect();
        for _step in 0..60 {
            let i = next(3) as usize;
            match next(4) {
                // The replica count this replica sees changes.
                0 => rs[i].replicas = 1 + next(3) as u32,
                // An answer arrives, or a request is sent, in a slot it spends from.
                1 => {
                    let s = next(u64::from(SLOTS)) as usize;
                    if rs[i].spending.contains(&(s as Slot)) {
                        rs[i].own[s].held += 1;
                    } else if rs[i].own[s].held > 0 {
                        rs[i].own[s].held -= 1;
                    }
                }
                // A decision round: read, decide, maybe lose the race, write.
                _ => {
                    let read_version = version;
                    let peers: Vec<Peer> = (0..3)
                        .filter(|&j| j != i)
                        .map(|j| Peer {
                            name: names[j].into(),
                            slots: store[j].clone(),
                            live: true,
                        })
                        .collect();
                    let verdicts = decide(&Input {
                        ordinal: i as u32,
                        replicas: rs[i].replicas,
                        own: &rs[i].own,
                        peers: &peers,
                        lapsed: false,
                    });
                    // Another replica may write in between: the write then fails.
                    if next(4) == 0 {
                        version += 1;
                    }
                    if read_version != version {
                        continue;
                    }
                    store[i] = listed(&verdicts);
                    version += 1;
                    let r = &mut rs[i];
                    for (s, v) in verdicts.iter().enumerate() {
                        r.own[s].holding = v.next_holding(r.own[s].holding);
                    }
                    // A claimed or checked slot gets its chain check right after the write.
                    for o in &mut r.own {
                        if o.holding == Holding::Claimed {
                            o.holding = Holding::Checked;
                        }
                    }
                    r.spending = spendable(&verdicts);
                }
            }
            for s in 0..SLOTS {
                if let Some(j) = rs.iter().position(|r| r.spending.contains(&s)) {
                    spent_from += 1;
                    let before = last_spender[usize::from(s)].replace(j);
                    moved += usize::from(before.is_some_and(|b| b != j));
                }
                let spenders = rs.iter().filter(|r| r.spending.contains(&s)).count();
                assert!(spenders <= 1, "slot {s} spent from by {spenders} replicas");
                // Spending implies listing in the store.
                for (j, r) in rs.iter().enumerate() {
                    if r.spending.contains(&s) {
                        assert!(store[j].contains(&s));
                    }
                }
            }
        }
    }
    // Not vacuous: slots were spent from, and moved between replicas.
    assert!(spent_from > 10_000 && moved > 100, "{spent_from} {moved}");
}

#[test]
fn slots_of_nonces_are_fixed_case_blind_and_spread() {
    // Pinned: changing the function would move authorizations between running replicas.
    let a = slot_of_nonce("0x00000000000000000000000000000000000000000000000000000000000000aa");
    assert_eq!(a, 7);
    assert_eq!(
        a,
        slot_of_nonce("0x00000000000000000000000000000000000000000000000000000000000000AA")
    );
    assert_eq!(slot_of_nonce("abc"), PINNED_ABC);
    assert_eq!(slot_of_nonce(""), PINNED_EMPTY);
    let mut per_slot = [0usize; SLOTS as usize];
    for i in 0..12_000u64 {
        per_slot[usize::from(slot_of_nonce(&format!(
            "0x{:064x}",
            i.wrapping_mul(0x9e37_79b9)
        )))] += 1;
    }
    assert!(
        per_slot.iter().all(|&n| (800..1200).contains(&n)),
        "{per_slot:?}"
    );
}

const PINNED_ABC: Slot = 3;
const PINNED_EMPTY: Slot = 5;

#[test]
fn assignment_ordinals_and_slot_lists() {
    assert_eq!(
        (0..SLOTS)
            .filter(|&s| assigned(s, 1, 3))
            .collect::<Vec<_>>(),
        R1_OF_3
    );
    assert!((0..SLOTS).all(|s| assigned(s, 0, 1)));
    assert!((0..SLOTS).all(|s| !assigned(s, 3, 3) && !assigned(s, 0, 0)));
    for r in 1..=6u32 {
        for s in 0..SLOTS {
            assert_eq!((0..r).filter(|&o| assigned(s, o, r)).count(), 1);
        }
    }
    assert_eq!(ordinal_of("x402-buyer-0"), Some(0));
    assert_eq!(ordinal_of("x402-buyer-12"), Some(12));
    for bad in [
        "x402-buyer",
        "x402-buyer-",
        "x402-buyer-01",
        "x402-buyer-a",
        "7",
    ] {
        assert_eq!(ordinal_of(bad), None, "{bad}");
    }
    assert_eq!(parse_slots("").unwrap(), BTreeSet::new());
    assert_eq!(parse_slots("0, 3,9").unwrap(), slots(&[0, 3, 9]));
    assert!(parse_slots("12").is_err());
    assert!(parse_slots("1;2").is_err());
    assert_eq!(format_slots(&slots(&[9, 0, 3])), "0,3,9");
    assert_eq!(
        parse_slots(&format_slots(&all_slots())).unwrap(),
        all_slots()
    );
}

#[test]
fn liveness_is_judged_by_the_local_clock_only() {
    let lease = Duration::from_secs(10);
    let mut l = Liveness::default();
    assert!(l.live("b-1", 0, lease), "unknown peers are live");
    l.observe("b-1", "2026-01-01T00:00:00Z", 1_000);
    assert!(l.live("b-1", 10_999, lease));
    assert!(!l.live("b-1", 11_000, lease));
    // The same timestamp read again is no renewal, whatever it says.
    l.observe("b-1", "2026-01-01T00:00:00Z", 11_000);
    assert!(!l.live("b-1", 11_000, lease));
    // A changed one is, even if it went backwards (another clock).
    l.observe("b-1", "2025-12-31T23:59:59Z", 12_000);
    assert!(l.live("b-1", 21_999, lease));
    l.retain_prefixed("c/", &BTreeSet::new());
    assert!(
        !l.live("b-1", 1_000_000, lease),
        "another request's peers are kept"
    );
    l.retain_prefixed("b-", &BTreeSet::new());
    assert!(l.live("b-1", 1_000_000, lease), "forgotten: unknown again");
    assert!(may_spend(Duration::from_millis(4_999), lease));
    assert!(!may_spend(Duration::from_secs(5), lease));
}

#[test]
fn holdings_after_a_write() {
    let (none, claimed, checked) = (Holding::None, Holding::Claimed, Holding::Checked);
    let y = Verdict::Yield { other: "b".into() };
    let w = Verdict::Wait { holder: "b".into() };
    let table = [
        (Verdict::Spend, checked, checked),
        (Verdict::Claim, none, claimed),
        (Verdict::Check, claimed, claimed),
        (y.clone(), checked, claimed),
        (Verdict::Drain, checked, checked),
        (Verdict::Drain, claimed, claimed),
        (Verdict::Release, checked, none),
        (w, none, none),
        (Verdict::Idle, none, none),
    ];
    for (v, before, after) in table {
        assert_eq!(v.next_holding(before), after, "{v:?} from {before:?}");
    }
    assert!(y.listed() && !y.spends());
}
