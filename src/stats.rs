//! Engine counters and the [`Stats`] snapshot built from them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Monotonic counters, updated with relaxed atomics on the paths they count.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Batches committed.
    pub(crate) writes: AtomicU64,
    /// Bytes of encoded batches committed (what users asked to write).
    pub(crate) user_bytes: AtomicU64,
    pub(crate) wal_bytes: AtomicU64,
    pub(crate) wal_syncs: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) flush_bytes: AtomicU64,
    pub(crate) compactions: AtomicU64,
    pub(crate) trivial_moves: AtomicU64,
    pub(crate) compaction_bytes_read: AtomicU64,
    pub(crate) compaction_bytes_written: AtomicU64,
    pub(crate) stall_nanos: AtomicU64,
    /// In memory: times waiting puts were moved into the skiplist.
    pub(crate) orderings: AtomicU64,
    /// In memory: puts moved into the skiplist by those orderings.
    pub(crate) ordered_entries: AtomicU64,
    /// In memory: expired puts deleted by the expiry sweep.
    pub(crate) expired_swept: AtomicU64,
}

impl Counters {
    pub(crate) fn add_stall(&self, d: Duration) {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.stall_nanos.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// The files and bytes of one level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LevelStats {
    /// Table files in the level.
    pub files: usize,
    /// Bytes of those files on disk.
    pub bytes: u64,
    /// Entries (all versions and tombstones) in those files.
    pub entries: u64,
    /// Tombstones among the entries.
    pub tombstones: u64,
}

/// A snapshot of the engine's counters and shape, from [`Db::stats`](crate::Db::stats).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Per level, L0 first.
    pub levels: Vec<LevelStats>,
    /// Bytes written by flush and compaction divided by the bytes users wrote.
    pub write_amplification: f64,
    /// Table bytes on disk divided by an estimate of the live logical bytes
    /// (key and value bytes of the entries that are not tombstones, taken
    /// from table properties; overwritten versions still in upper levels
    /// count as live, so this errs low while compaction is behind).
    pub space_amplification: f64,
    /// Time writers spent slowed down or stopped by backpressure.
    pub stall_time: std::time::Duration,
    /// Memtables flushed to tables.
    pub flushes: u64,
    /// Compactions that rewrote tables (trivial moves not included).
    pub compactions: u64,
    /// Files moved down a level without rewriting.
    pub trivial_moves: u64,
    /// Batches committed.
    pub writes: u64,
    /// Bytes of batches committed (the denominator of write amplification).
    pub user_bytes_written: u64,
    /// Bytes appended to the WAL.
    pub wal_bytes_written: u64,
    /// fdatasync calls on the WAL (group commit shares one among many writers).
    pub wal_syncs: u64,
    /// Bytes of tables written by flushes.
    pub flush_bytes_written: u64,
    /// Bytes of tables read by compactions.
    pub compaction_bytes_read: u64,
    /// Bytes of tables written by compactions.
    pub compaction_bytes_written: u64,
    /// Estimated bytes compaction must rewrite to bring every level within target.
    pub pending_compaction_bytes: u64,
    /// Approximate bytes held by the active and immutable memtables (in
    /// memory mode: the skiplist and the point index beside it, including
    /// puts still waiting to be ordered).
    pub memtable_bytes: u64,
    /// In memory mode: times the puts waiting in the point index were moved
    /// into the ordered skiplist, because a snapshot or iterator needed order.
    pub memory_orderings: u64,
    /// In memory mode: puts moved into the skiplist by those orderings (the
    /// newest version of each key; overwritten ones never reach it).
    pub memory_ordered_entries: u64,
    /// In memory mode: expired puts deleted by the sweep that frees them
    /// (nothing else would, short of an overwrite or a delete).
    pub memory_expired_swept: u64,
    /// Immutable memtables waiting for flush.
    pub immutable_memtables: usize,
    /// Bytes of all live table files.
    pub table_bytes: u64,
    /// Bytes held by the block cache.
    pub block_cache_bytes: u64,
    /// Sequence number of the last visible write.
    pub latest_sequence: u64,
}

impl crate::db::DbInner {
    pub(crate) fn stats(&self) -> Stats {
        let c = &self.stats;
        let sv = self.super_version.load_full();
        let mut levels = Vec::new();
        let mut live_estimate = 0f64;
        for files in &sv.version.levels {
            let mut l = LevelStats::default();
            for f in files {
                l.files += 1;
                l.bytes += f.info.size;
                l.entries += f.info.entries;
                l.tombstones += f.info.tombstones;
                if f.info.entries > 0 {
                    let live = (f.info.entries - f.info.tombstones.min(f.info.entries)) as f64;
                    live_estimate += f.info.raw_bytes as f64 * live / f.info.entries as f64;
                }
            }
            levels.push(l);
        }
        let table_bytes: u64 = levels.iter().map(|l| l.bytes).sum();
        let user = Counters::get(&c.user_bytes);
        let flushed = Counters::get(&c.flush_bytes);
        let compacted = Counters::get(&c.compaction_bytes_written);
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Stats {
            write_amplification: ratio((flushed + compacted) as f64, user as f64),
            space_amplification: ratio(table_bytes as f64, live_estimate),
            stall_time: std::time::Duration::from_nanos(Counters::get(&c.stall_nanos)),
            flushes: Counters::get(&c.flushes),
            compactions: Counters::get(&c.compactions),
            trivial_moves: Counters::get(&c.trivial_moves),
            writes: Counters::get(&c.writes),
            user_bytes_written: user,
            wal_bytes_written: Counters::get(&c.wal_bytes),
            wal_syncs: Counters::get(&c.wal_syncs),
            memory_orderings: Counters::get(&c.orderings),
            memory_expired_swept: Counters::get(&c.expired_swept),
            memory_ordered_entries: Counters::get(&c.ordered_entries),
            flush_bytes_written: flushed,
            compaction_bytes_read: Counters::get(&c.compaction_bytes_read),
            compaction_bytes_written: compacted,
            pending_compaction_bytes: crate::compaction::picker::pending_compaction_bytes(
                &sv.version,
                &self.picker_config(),
            ),
            memtable_bytes: (sv.mem.approximate_bytes()
                + sv.imm.iter().map(|m| m.approximate_bytes()).sum::<usize>()
                + self
                    .point_index
                    .as_ref()
                    .map_or(0, |i| i.approximate_bytes())) as u64,
            immutable_memtables: sv.imm.len(),
            table_bytes,
            block_cache_bytes: self.table_ctx.cache.usage(),
            latest_sequence: self.visible_seq.load(Ordering::Acquire),
            levels,
        }
    }
}
