//! Crash simulation at every sync point (after redb's `crash_consistency` test).
//!
//! [`CrashStorage`] keeps, per file, the bytes written apart from the bytes a finished sync
//! covered, and the directory as last changed apart from the directory as last synced. A run
//! fails at sync point N (that sync and everything after it error out, as if the process died
//! there); the crash image is then rebuilt from synced state only, with every way a torn
//! unsynced tail can look, under both directory views, and reopened.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Journal, Record, Storage};

#[derive(Clone, Default)]
struct Inode {
    written: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Clone, Default)]
struct State {
    inodes: Vec<Inode>,
    dir: BTreeMap<String, usize>,
    dir_synced: BTreeMap<String, usize>,
    syncs: usize,
    fail_at: Option<usize>,
    crashed: bool,
}

#[derive(Default)]
pub(crate) struct CrashStorage(Mutex<State>);

#[derive(Clone, Copy, Debug)]
enum DirView {
    Synced,
    Written,
}

#[derive(Clone, Copy, Debug)]
enum Tail {
    /// The first `n` bytes of each file's unsynced tail reached the disk.
    Prefix(usize),
    /// The size grew but the data did not (zero-filled tail).
    Zeros,
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash")
}

impl CrashStorage {
    fn failing_at(n: Option<usize>) -> Self {
        Self(Mutex::new(State {
            fail_at: n,
            ..State::default()
        }))
    }

    fn syncs(&self) -> usize {
        self.0.lock().syncs
    }

    fn sync_point(st: &mut State) -> io::Result<()> {
        if st.crashed || st.fail_at == Some(st.syncs) {
            st.crashed = true;
            return Err(crashed());
        }
        st.syncs += 1;
        Ok(())
    }

    fn max_tail(&self) -> usize {
        let st = self.0.lock();
        st.inodes
            .iter()
            .map(|i| i.written.len().saturating_sub(i.synced.len()))
            .max()
            .unwrap_or(0)
    }

    /// The files as a machine rebooting after the crash would find them.
    fn image(&self, view: DirView, tail: Tail) -> Self {
        let st = self.0.lock();
        let dir = match view {
            DirView::Synced => &st.dir_synced,
            DirView::Written => &st.dir,
        };
        let mut out = State::default();
        for (name, &id) in dir {
            let inode = &st.inodes[id];
            let mut data = inode.synced.clone();
            if inode.written.starts_with(&inode.synced) {
                let unsynced = &inode.written[inode.synced.len()..];
                match tail {
                    Tail::Prefix(n) => data.extend_from_slice(&unsynced[..n.min(unsynced.len())]),
                    Tail::Zeros => data.extend(std::iter::repeat_n(0, unsynced.len())),
                }
            }
            out.inodes.push(Inode {
                written: data.clone(),
                synced: data,
            });
            out.dir.insert(name.clone(), out.inodes.len() - 1);
        }
        out.dir_synced = out.dir.clone();
        Self(Mutex::new(out))
    }
}

impl Storage for CrashStorage {
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        let st = self.0.lock();
        if st.crashed {
            return Err(crashed());
        }
        Ok(st.dir.get(name).map(|&id| st.inodes[id].written.clone()))
    }

    fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut st = self.0.lock();
        if st.crashed {
            return Err(crashed());
        }
        st.inodes.push(Inode {
            written: data.to_vec(),
            synced: Vec::new(),
        });
        let id = st.inodes.len() - 1;
        st.dir.insert(name.to_owned(), id);
        Ok(())
    }

    fn append(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut st = self.0.lock();
        if st.crashed {
            return Err(crashed());
        }
        let id = match st.dir.get(name) {
            Some(&id) => id,
            None => {
                st.inodes.push(Inode::default());
                let id = st.inodes.len() - 1;
                st.dir.insert(name.to_owned(), id);
                id
            }
        };
        st.inodes[id].written.extend_from_slice(data);
        Ok(())
    }

    fn sync(&self, name: &str) -> io::Result<()> {
        let mut st = self.0.lock();
        Self::sync_point(&mut st)?;
        let id = *st
            .dir
            .get(name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        st.inodes[id].synced = st.inodes[id].written.clone();
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut st = self.0.lock();
        if st.crashed {
            return Err(crashed());
        }
        let id = st
            .dir
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        st.dir.insert(to.to_owned(), id);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut st = self.0.lock();
        if st.crashed {
            return Err(crashed());
        }
        st.dir.remove(name);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut st = self.0.lock();
        Self::sync_point(&mut st)?;
        st.dir_synced = st.dir.clone();
        Ok(())
    }
}

fn rec(i: usize) -> Record {
    Record::new(format!("up-{}", i % 3), format!("0x{i:064x}"))
}

/// Opens with a legacy import, then spends singly and in pairs, compacting every few records.
/// Returns (acknowledged, attempted).
fn scenario(storage: Arc<CrashStorage>) -> (BTreeSet<Record>, BTreeSet<Record>) {
    let import = vec![Record::new("legacy", "L1"), Record::new("legacy", "L2")];
    let mut attempted: BTreeSet<Record> = import.iter().cloned().collect();
    let mut acked = BTreeSet::new();
    let Ok((journal, _)) = Journal::open(storage, import.clone(), 300) else {
        return (acked, attempted);
    };
    acked.extend(import);
    let mut i = 0;
    for round in 0..16 {
        let batch: Vec<Record> = (0..1 + usize::from(round % 4 == 0))
            .map(|k| rec(i + k))
            .collect();
        i += batch.len();
        attempted.extend(batch.iter().cloned());
        if journal.record(&batch).is_err() {
            // Poisoned: every later spend must fail too.
            assert!(journal.record(&[rec(999)]).is_err());
            return (acked, attempted);
        }
        acked.extend(batch);
    }
    (acked, attempted)
}

#[test]
fn nothing_acknowledged_is_forgotten_at_any_sync_point() {
    let clean = Arc::new(CrashStorage::failing_at(None));
    let (all, _) = scenario(clean.clone());
    assert_eq!(all.len(), 2 + 20);
    let points = clean.syncs();
    assert!(
        points > 20 + 8,
        "compactions should add sync points: {points}"
    );

    let mut images = 0;
    for n in 0..=points {
        let storage = Arc::new(CrashStorage::failing_at(Some(n)));
        let (acked, attempted) = scenario(storage.clone());
        let mut tails: Vec<Tail> = (0..=storage.max_tail()).map(Tail::Prefix).collect();
        tails.push(Tail::Zeros);
        for view in [DirView::Synced, DirView::Written] {
            for &tail in &tails {
                images += 1;
                let image = Arc::new(storage.image(view, tail));
                let (journal, rec_) = Journal::open(image.clone(), Vec::new(), 300)
                    .unwrap_or_else(|e| panic!("sync point {n}, {view:?}, {tail:?}: {e}"));
                let got = rec_.records;
                assert!(
                    got.is_superset(&acked),
                    "lost an acknowledged spend at {n} {view:?} {tail:?}"
                );
                assert!(
                    got.is_subset(&attempted),
                    "invented a record at {n} {view:?} {tail:?}"
                );
                // The recovered journal is clean: a further spend survives another reopen.
                journal.record(&[rec(500)]).unwrap();
                drop(journal);
                let (_, again) = Journal::open(
                    Arc::new(image.image(DirView::Synced, Tail::Prefix(0))),
                    Vec::new(),
                    300,
                )
                .unwrap();
                assert!(again.records.contains(&rec(500)));
                assert!(again.records.is_superset(&got));
            }
        }
    }
    println!("crash points: {}, images reopened: {images}", points + 1);
}

#[test]
fn corruption_before_the_tail_is_refused_with_its_offset() {
    let storage = Arc::new(CrashStorage::failing_at(None));
    let (journal, _) = Journal::open(storage.clone(), Vec::new(), u64::MAX).unwrap();
    for i in 0..3 {
        journal.record(&[rec(i)]).unwrap();
    }
    drop(journal);
    {
        let mut st = storage.0.lock();
        let id = st.dir[super::JOURNAL_FILE];
        st.inodes[id].written[20] ^= 0xff;
    }
    let err = Journal::open(storage, Vec::new(), u64::MAX).unwrap_err();
    assert_eq!(err.metric_label(), "journal_corrupt");
    let text = err.to_string();
    assert!(
        text.contains("spend.journal is corrupt at byte 8"),
        "{text}"
    );
}
