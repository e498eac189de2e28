//! Snapshots: a pinned sequence number that reads go through.
//!
//! Concurrency: the list of live snapshots is guarded by one mutex. A
//! snapshot's sequence is read from the published sequence *under* that
//! mutex, and flush and compaction read the list under it too, so a job
//! never misses a snapshot taken before it looked.
//!
//! In-memory mode drops overwritten versions as it writes, which must
//! never race a snapshot being taken. Writers check without the mutex:
//! `acquiring` counts snapshots being taken, `oldest` mirrors the oldest
//! pinned sequence, all SeqCst. A writer publishes its sequence, then reads
//! `acquiring` (must be 0) and `oldest`. If it read 0 before a snapshot
//! started, that snapshot reads the published sequence after it, so needs
//! none of the versions dropped; otherwise it sees `oldest`.

use std::collections::BTreeMap;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::batch::DEFAULT_NS;
use crate::db::DbInner;
use crate::error::Result;
use crate::iter::Iter;
use crate::value::Value;

/// Sequence numbers pinned by live snapshots, with reference counts.
#[derive(Debug)]
pub(crate) struct SnapshotList {
    pinned: Mutex<BTreeMap<u64, usize>>,
    /// Snapshots being taken right now.
    acquiring: AtomicUsize,
    /// The oldest pinned sequence, `u64::MAX` if none.
    oldest: AtomicU64,
}

impl Default for SnapshotList {
    fn default() -> Self {
        SnapshotList {
            pinned: Mutex::default(),
            acquiring: AtomicUsize::new(0),
            oldest: AtomicU64::new(u64::MAX),
        }
    }
}

impl SnapshotList {
    /// Pins the sequence `current()` returns, atomically with respect to `list`.
    pub(crate) fn acquire(&self, current: impl FnOnce() -> u64) -> u64 {
        self.acquiring.fetch_add(1, Ordering::SeqCst);
        let mut p = self.pinned.lock();
        let seq = current();
        *p.entry(seq).or_insert(0) += 1;
        self.oldest
            .store(*p.keys().next().unwrap_or(&u64::MAX), Ordering::SeqCst);
        drop(p);
        self.acquiring.fetch_sub(1, Ordering::SeqCst);
        seq
    }

    pub(crate) fn release(&self, seq: u64) {
        let mut p = self.pinned.lock();
        if let Some(n) = p.get_mut(&seq) {
            *n -= 1;
            if *n == 0 {
                p.remove(&seq);
            }
        }
        self.oldest
            .store(*p.keys().next().unwrap_or(&u64::MAX), Ordering::SeqCst);
    }

    /// For a writer that has published `seq`: true if no snapshot (taken or
    /// being taken) can see anything older than `seq`.
    pub(crate) fn none_older_than(&self, seq: u64) -> bool {
        self.acquiring.load(Ordering::SeqCst) == 0 && self.oldest.load(Ordering::SeqCst) >= seq
    }

    /// Pinned sequences, ascending.
    pub(crate) fn list(&self) -> Vec<u64> {
        self.pinned.lock().keys().copied().collect()
    }

    pub(crate) fn oldest(&self) -> Option<u64> {
        self.pinned.lock().keys().next().copied()
    }
}

/// A consistent, read-only view of the database at one moment.
///
/// Reads through a snapshot never see writes committed after it was taken.
/// Holding one keeps compaction from discarding the versions it can see, so
/// drop snapshots you no longer need.
pub struct Snapshot {
    pub(crate) inner: Arc<DbInner>,
    pub(crate) seq: u64,
}

impl Snapshot {
    /// The sequence number this snapshot reads at.
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// The value of `key` as of the snapshot.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.inner.get(DEFAULT_NS, key.as_ref(), Some(self.seq))
    }

    /// True if `key` existed as of the snapshot.
    pub fn exists(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.get(key).map(|v| v.is_some())
    }

    /// Every key as of the snapshot, in order.
    pub fn iter(&self) -> Iter {
        self.inner
            .iter_range::<&[u8], _>(DEFAULT_NS, .., Some(self.seq))
    }

    /// The keys in `range` as of the snapshot.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        self.inner.iter_range(DEFAULT_NS, range, Some(self.seq))
    }

    /// The keys starting with `prefix` as of the snapshot.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        self.inner
            .iter_prefix(DEFAULT_NS, prefix.as_ref(), Some(self.seq))
    }
}

impl Clone for Snapshot {
    fn clone(&self) -> Self {
        let seq = self.inner.snapshots.acquire(|| self.seq);
        Snapshot {
            inner: Arc::clone(&self.inner),
            seq,
        }
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.inner.snapshots.release(self.seq);
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("seq", &self.seq).finish()
    }
}
