use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

pub(crate) fn temp_dir(tag: &str) -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "obol-buyer-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn rec(i: usize) -> Record {
    Record::new("up", format!("0x{i:064x}"))
}

#[test]
fn file_journal_survives_reopen_and_compaction() {
    let dir = temp_dir("reopen");
    let open = |import| {
        let storage = Arc::new(FileStorage::open(&dir).unwrap());
        Journal::open(storage, import, 64).unwrap()
    };
    let (j, r) = open(vec![Record::new("legacy", "L")]);
    assert_eq!(r.imported, 1);
    for i in 0..10 {
        j.record(&[rec(i)]).unwrap();
    }
    drop(j);
    let (j, r) = open(vec![Record::new("legacy", "L")]);
    assert_eq!(r.imported, 0, "the import is idempotent");
    assert_eq!(r.records.len(), 11);
    assert!(!r.dropped_torn_tail);
    j.record(&[rec(10)]).unwrap();
    drop(j);

    // A torn tail left by a crash mid-append is dropped, and the log is clean afterwards.
    let path = dir.join(JOURNAL_FILE);
    let mut data = std::fs::read(&path).unwrap();
    let mut partial = Vec::new();
    codec::encode_record(&mut partial, &rec(11)).unwrap();
    data.extend_from_slice(&partial[..partial.len() - 3]);
    std::fs::write(&path, data).unwrap();
    let (_, r) = open(Vec::new());
    assert!(r.dropped_torn_tail);
    assert_eq!(r.records.len(), 12);
    assert!(!r.records.contains(&rec(11)));
    let (_, r) = open(Vec::new());
    assert!(!r.dropped_torn_tail);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_charged_spend_survives_reopen_and_compaction() {
    let dir = temp_dir("charged");
    let open = || {
        let storage = Arc::new(FileStorage::open(&dir).unwrap());
        Journal::open(storage, Vec::new(), 64).unwrap()
    };
    let (j, _) = open();
    j.record(&[Record::marked("llm", "k1", Mark::Held)])
        .unwrap();
    j.note(&[Record::spent_charged("llm", "k1", 61)]).unwrap();
    // A late second answer for the key cannot change what was charged.
    j.note(&[Record::spent_charged("llm", "k1", 2400)]).unwrap();
    // A spend recorded without an amount learns it later (a stream's trailer), once.
    j.record(&[Record::marked("llm", "k2", Mark::Held)])
        .unwrap();
    j.note(&[Record::new("llm", "k2")]).unwrap();
    j.note(&[Record::spent_charged("llm", "k2", 31)]).unwrap();
    j.note(&[Record::spent_charged("llm", "k2", 7)]).unwrap();
    for i in 0..10 {
        j.record(&[rec(i)]).unwrap();
    }
    drop(j);
    let (j, r) = open();
    assert!(
        r.records.contains(&Record::spent_charged("llm", "k1", 61)),
        "{r:?}"
    );
    assert!(
        r.records.contains(&Record::spent_charged("llm", "k2", 31)),
        "{r:?}"
    );
    assert_eq!(j.mark("k1"), Some(Mark::Spent));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_spends_share_syncs() {
    let dir = temp_dir("group");
    let storage = Arc::new(FileStorage::open(&dir).unwrap());
    let (j, _) = Journal::open(storage, Vec::new(), DEFAULT_COMPACT_BYTES).unwrap();
    let j = Arc::new(j);
    let threads = 16;
    let per = 25;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    j.record(&[rec(t * 1000 + i)]).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let spends = (threads * per) as u64;
    let syncs = j.syncs();
    println!("group commit: {spends} spends, {syncs} syncs");
    assert!(syncs < spends, "{syncs} syncs for {spends} spends");
    drop(j);
    let storage = Arc::new(FileStorage::open(&dir).unwrap());
    let (_, r) = Journal::open(storage, Vec::new(), DEFAULT_COMPACT_BYTES).unwrap();
    assert_eq!(r.records.len(), threads * per);
    std::fs::remove_dir_all(&dir).unwrap();
}
