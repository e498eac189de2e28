//! The database: [`Db`], the handle users hold, and `DbInner`, the engine
//! behind it.
//!
//! Data flow: a write becomes a WAL record (group commit, `write.rs`) and
//! memtable entries; full memtables are flushed to L0 tables by background
//! workers (`flush.rs`, `background.rs`), which compaction merges down the
//! levels; reads (`read.rs`) merge the memtables and the current version.
//!
//! Concurrency rules:
//! - The *super-version* (memtable, immutable memtables, version) is
//!   published through an `ArcSwap`; readers load it without locking.
//!   It changes only under `sv_update`, in three places: a memtable switch
//!   (by the commit leader), a finished flush and a finished compaction.
//! - Only the commit leader, holding `writer`, appends to the WAL, assigns
//!   sequence numbers and inserts into the active memtable.
//! - `visible_seq` is published after a group is in the memtable: a reader
//!   loads the super-version, then `visible_seq`, then checks the
//!   super-version did not change, so it never misses what the sequence covers.
//! - `versions` (the manifest) is taken briefly by flush and compaction.

mod background;
mod checkpoint;
mod dump;
mod expiry;
mod flush;
mod inspect;
mod memory;
mod namespaces;
mod open;
mod point_index;
mod queue;
mod read;
pub(crate) mod request;
mod space;
mod verify;
mod write;
mod write_async;

use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

pub(crate) use background::Background;
pub use checkpoint::CheckpointInfo;
pub use dump::{ExportReport, ImportReport, Progress};
pub(crate) use flush::write_table;
pub use inspect::{Inspection, TableInfo};
pub(crate) use queue::CommitQueue;
pub(crate) use read::{SuperVersion, resolve};
pub(crate) use space::Space;
pub use space::{BatchReport, CasConflict};
pub use verify::VerifyReport;
pub(crate) use write::WriterState;

use crate::batch::{DEFAULT_NS, WriteBatch};
use crate::compaction::Pointers;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, LockGuard, WritableFile};
use crate::iter::Iter;
use crate::namespace::Registry;
use crate::options::{Durability, Options};
use crate::snapshot::{Snapshot, SnapshotList};
use crate::stats::{Counters, Stats};
use crate::value::Value;
use crate::version::{TableCtx, VersionSet};
use crate::watch::Watchers;

/// An open database: a cheap handle (`Clone + Send + Sync`) to one engine.
///
/// ```
/// # fn main() -> strata_kv::Result<()> {
/// use strata_kv::{Db, Options, Durability};
/// let dir = tempfile::tempdir().unwrap();
/// let db = Db::open(dir.path(), Options::default().durability(Durability::Buffered))?;
/// db.put(b"user:1", b"Alice")?;
/// assert_eq!(db.get(b"user:1")?.as_deref(), Some(&b"Alice"[..]));
/// for item in db.prefix(b"user:") {
///     let (key, value) = item?;
///     println!("{key:?} = {value:?}");
/// }
/// db.close()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<DbInner>,
    _close_on_drop: Arc<CloseOnDrop>,
}

/// Closes the engine when the last `Db` handle goes away.
struct CloseOnDrop(Arc<DbInner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Err(e) = self.0.close() {
            log::warn!("closing {} on drop: {e}", self.0.dir.display());
        }
    }
}

/// The engine shared by every handle, snapshot, iterator and background thread.
pub(crate) struct DbInner {
    pub(crate) opts: Options,
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) dir: PathBuf,
    /// No WAL, no tables: the in-memory mode.
    pub(crate) in_memory: bool,
    pub(crate) super_version: ArcSwap<SuperVersion>,
    /// Bumped after every new super-version is stored (see `read_view`).
    pub(crate) sv_generation: AtomicU64,
    pub(crate) sv_update: Mutex<()>,
    pub(crate) visible_seq: AtomicU64,
    /// In-memory mode: the last sequence number handed out.
    pub(crate) next_seq: AtomicU64,
    /// In-memory mode: every key's newest version, for point reads.
    pub(crate) point_index: Option<point_index::PointIndex>,
    /// In memory mode: whether any put with a TTL was written, writes
    /// counted toward the next expiry sweep (`expiry.rs`), and whether one
    /// is running.
    pub(crate) expiry_any_ttl: AtomicBool,
    pub(crate) expiry_writes: AtomicU64,
    pub(crate) expiry_sweeping: AtomicBool,
    pub(crate) snapshots: SnapshotList,
    pub(crate) versions: Option<Mutex<VersionSet>>,
    pub(crate) table_ctx: Arc<TableCtx>,
    pub(crate) writer: Mutex<WriterState>,
    pub(crate) queue: CommitQueue,
    /// The WAL's file, for the periodic syncer.
    pub(crate) wal_file: Mutex<Option<Arc<dyn WritableFile>>>,
    pub(crate) bg: Background,
    /// The first background or WAL failure; once set, writes fail with it.
    pub(crate) poison: Mutex<Option<Error>>,
    pub(crate) poisoned: AtomicBool,
    pub(crate) closed: AtomicBool,
    pub(crate) stats: Counters,
    pub(crate) lock: Mutex<Option<Box<dyn LockGuard>>>,
    /// Per level, where round-robin compaction resumes.
    pub(crate) compact_pointers: Mutex<Pointers>,
    /// Write delay owed under backpressure, paid in sleeps of 1 ms or more.
    pub(crate) write_debt: Mutex<std::time::Duration>,
    pub(crate) namespaces: Registry,
    /// Some namespace has `max_keys` (the leader must count keys).
    pub(crate) has_limits: AtomicBool,
    pub(crate) watchers: Arc<Watchers>,
    /// In-memory mode: plain writes share it, conditional writes take it alone.
    pub(crate) mem_lock: parking_lot::RwLock<()>,
    /// In-memory mode: held from publishing to delivering events, so
    /// subscribers see commits in order.
    pub(crate) emit_lock: Mutex<()>,
    /// In-memory mode: held while waiting puts are ordered (one at a time).
    pub(crate) ordering: Mutex<()>,
    /// Opened read-only: the manifest it was recovered from (number and
    /// length), to tell whether a writer has changed the database since.
    pub(crate) read_only_source: Option<(u64, u64)>,
}

impl DbInner {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Records the first fatal error; the database turns read-only.
    pub(crate) fn set_poison(&self, e: &Error) {
        let mut p = self.poison.lock();
        if p.is_none() {
            log::error!("{}: entering read-only mode: {e}", self.dir.display());
            *p = Some(e.clone());
            self.poisoned.store(true, Ordering::Release);
        }
        drop(p);
        self.bg.notify_all();
    }

    pub(crate) fn poison_error(&self) -> Option<Error> {
        if !self.poisoned.load(Ordering::Acquire) {
            return None;
        }
        self.poison.lock().clone()
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.opts.clock.now_ms()
    }

    /// Publishes a new super-version built from the current one.
    pub(crate) fn update_super_version(&self, f: impl FnOnce(&SuperVersion) -> SuperVersion) {
        let _g = self.sv_update.lock();
        let next = f(&self.super_version.load());
        self.store_super_version(next);
    }

    /// Stores a super-version; the caller holds `sv_update`.
    pub(crate) fn store_super_version(&self, sv: SuperVersion) {
        self.super_version.store(Arc::new(sv));
        self.sv_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Stops the engine: later calls fail with `Error::Closed`. Syncs the
    /// WAL, stops background work (a running flush finishes) and releases the lock.
    pub(crate) fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Taking the writer lock waits for the group in flight.
        let synced = {
            let mut ws = self.writer.lock();
            let r = match &ws.wal {
                Some(w) if self.poison_error().is_none() => w.sync(),
                _ => Ok(()),
            };
            ws.wal = None;
            r
        };
        *self.wal_file.lock() = None;
        self.queue.shutdown();
        self.bg.shutdown();
        self.watchers.end_all();
        self.lock.lock().take();
        synced
    }
}

impl Db {
    /// Opens the database in `path`, creating it if missing (unless
    /// `Options::create_if_missing(false)`), and replays its WAL.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let inner = open::open(path.as_ref(), options)?;
        Ok(Db::from_inner(inner))
    }

    /// Opens an existing database for reading only, without taking its
    /// lock: nothing in `path` is written (its WALs are replayed into
    /// memory, not into tables) and every write, flush, compaction or
    /// namespace change fails with [`Error::ReadOnly`].
    ///
    /// Another process may hold the database open for writing meanwhile.
    /// The handle then sees every write that had reached the WAL when it
    /// opened, and nothing later: a prefix of commit order. (So the newest
    /// WAL, which the writer may be appending to as it is read, is read up
    /// to its first damaged or unwritten record, as in
    /// `WalRecovery::PointInTime`; older WALs follow `Options::wal_recovery`.) It does not
    /// follow new writes; files the writer's compactions delete later can
    /// make reads fail with an I/O error (reopen to catch up).
    /// [`checkpoint`](Self::checkpoint) from such a handle fails with
    /// [`Error::Conflict`] if the writer changed the manifest while it ran:
    /// retry with a fresh handle.
    pub fn open_read_only(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let inner = open::open_read_only(path.as_ref(), options)?;
        Ok(Db::from_inner(inner))
    }

    /// Opens a database that lives only in memory: the same engine and API
    /// with no WAL and no files. Its contents go when the last handle does.
    pub fn open_in_memory(options: Options) -> Result<Db> {
        let inner = open::open_in_memory(options)?;
        Ok(Db::from_inner(inner))
    }

    fn from_inner(inner: Arc<DbInner>) -> Db {
        Db {
            _close_on_drop: Arc::new(CloseOnDrop(Arc::clone(&inner))),
            inner,
        }
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.space().put(key.as_ref(), value.as_ref())
    }

    /// Removes `key` (a no-op if absent).
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        self.space().delete(key.as_ref())
    }

    /// The current value of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.space().get(key.as_ref())
    }

    /// True if `key` has a value.
    pub fn exists(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.get(key).map(|v| v.is_some())
    }

    /// Applies every operation of `batch` atomically, with the database's
    /// default durability. If any operation breaks a limit, nothing is written.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_with(batch, self.inner.opts.durability)
    }

    /// Like [`write`](Self::write) with a durability for this batch only.
    pub fn write_with(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        self.inner.write(batch, durability).map(|_| ())
    }

    /// A consistent view of the database as of now.
    pub fn snapshot(&self) -> Snapshot {
        Db::snapshot_of(&self.inner)
    }

    pub(crate) fn snapshot_of(inner: &Arc<DbInner>) -> Snapshot {
        let seq = inner.pin_sequence();
        Snapshot {
            inner: Arc::clone(inner),
            seq,
        }
    }

    /// Every key, in order (`.rev()` for reverse).
    pub fn iter(&self) -> Iter {
        self.inner.iter_range::<&[u8], _>(DEFAULT_NS, .., None)
    }

    /// The keys in `range`, in order: `db.range(b"a".to_vec()..b"z".to_vec())`.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        self.inner.iter_range(DEFAULT_NS, range, None)
    }

    /// The keys starting with `prefix`, in order.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        self.inner.iter_prefix(DEFAULT_NS, prefix.as_ref(), None)
    }

    /// Writes the memtable to a table and waits until it is on disk. A no-op
    /// in memory mode.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush_and_wait()
    }

    /// Flushes, then compacts every table down to the deepest level,
    /// dropping overwritten versions, tombstones and expired entries that no
    /// snapshot needs. Waits until done.
    pub fn compact(&self) -> Result<()> {
        self.inner.compact_range_ukeys(None, None)
    }

    /// Like [`compact`](Self::compact), for the tables overlapping `range`.
    pub fn compact_range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<()> {
        use std::ops::Bound;
        let lo = match range.start_bound() {
            Bound::Included(k) | Bound::Excluded(k) => crate::key::ukey(DEFAULT_NS, k.as_ref()),
            Bound::Unbounded => crate::key::ukey(DEFAULT_NS, b""),
        };
        let hi = match range.end_bound() {
            Bound::Included(k) | Bound::Excluded(k) => {
                Some(crate::key::ukey(DEFAULT_NS, k.as_ref()))
            }
            Bound::Unbounded => None,
        };
        self.inner.compact_range_ukeys(Some(&lo), hi.as_deref())
    }

    /// Counters and the shape of the tree: levels, amplification, stalls.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The sequence number of the last write visible to readers.
    pub fn latest_sequence(&self) -> u64 {
        self.inner.visible_seq.load(Ordering::Acquire)
    }

    /// The directory the database lives in (empty in memory mode).
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Closes the database: syncs the WAL, stops background work and
    /// releases the directory lock. Every handle then fails with
    /// `Error::Closed`. Dropping the last handle does the same, best-effort.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.inner.dir)
            .field("in_memory", &self.inner.in_memory)
            .finish_non_exhaustive()
    }
}
