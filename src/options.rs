//! [`Options`]: every knob, its default, and why.
//!
//! Setters are by-value builders: `Options::default().durability(..).compression(..)`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::fs::{FileSystem, RealFs};
use crate::wal::WalRecovery;

/// When an acknowledged write becomes durable.
///
/// | mode | `write` returns after | survives a process crash | survives power loss |
/// |---|---|---|---|
/// | `Sync` (default) | the WAL is fdatasync'd | yes | yes |
/// | `Buffered` | the WAL bytes are handed to the OS | yes | a prefix of commit order |
/// | `Periodic(d)` | the WAL bytes are handed to the OS; a background fdatasync runs every `d` | yes | all but the last `d` or so, as a prefix |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every acknowledged write survives power loss. Concurrent writers share
    /// one fdatasync (group commit).
    #[default]
    Sync,
    /// Acknowledged writes survive a crash of the process, not of the machine.
    Buffered,
    /// Like `Buffered`, plus a background fdatasync every interval.
    Periodic(Duration),
}

/// Compression applied to each data block of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Blocks stored as they are.
    None,
    /// LZ4 block compression (lz4_flex): fast, the default.
    #[default]
    Lz4,
    /// Snappy raw compression (snap).
    Snappy,
}

/// Settings for opening a database.
#[derive(Clone)]
pub struct Options {
    pub(crate) durability: Durability,
    pub(crate) wal_recovery: WalRecovery,
    pub(crate) create_if_missing: bool,
    pub(crate) error_if_exists: bool,
    pub(crate) write_buffer_size: usize,
    pub(crate) max_write_buffers: usize,
    pub(crate) block_size: usize,
    pub(crate) block_restart_interval: usize,
    pub(crate) compression: Compression,
    pub(crate) bloom_bits_per_key: u32,
    pub(crate) block_cache_size: usize,
    pub(crate) use_mmap: bool,
    pub(crate) wal_mmap: bool,
    pub(crate) gather_synced_writers: bool,
    pub(crate) trim_heap_after_flush: bool,
    pub(crate) l0_compaction_trigger: usize,
    pub(crate) l0_slowdown_trigger: usize,
    pub(crate) l0_stop_trigger: usize,
    pub(crate) base_level_size: u64,
    pub(crate) level_size_multiplier: u64,
    pub(crate) target_file_size: u64,
    pub(crate) max_background_jobs: usize,
    pub(crate) max_manifest_size: u64,
    pub(crate) soft_pending_compaction_bytes: u64,
    pub(crate) hard_pending_compaction_bytes: u64,
    pub(crate) tombstone_compaction_ratio: f64,
    pub(crate) file_system: Arc<dyn FileSystem>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Sync,
            wal_recovery: WalRecovery::TolerateTornTail,
            create_if_missing: true,
            error_if_exists: false,
            write_buffer_size: 64 << 20,
            max_write_buffers: 2,
            block_size: 4096,
            block_restart_interval: 16,
            compression: Compression::Lz4,
            bloom_bits_per_key: 10,
            block_cache_size: 64 << 20,
            use_mmap: true,
            wal_mmap: true,
            gather_synced_writers: true,
            trim_heap_after_flush: true,
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 20,
            l0_stop_trigger: 36,
            base_level_size: 256 << 20,
            level_size_multiplier: 10,
            target_file_size: 64 << 20,
            max_background_jobs: 2,
            max_manifest_size: 8 << 20,
            soft_pending_compaction_bytes: 64 << 30,
            hard_pending_compaction_bytes: 256 << 30,
            tombstone_compaction_ratio: 0.5,
            file_system: Arc::new(RealFs),
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("durability", &self.durability)
            .field("wal_recovery", &self.wal_recovery)
            .field("create_if_missing", &self.create_if_missing)
            .field("error_if_exists", &self.error_if_exists)
            .field("write_buffer_size", &self.write_buffer_size)
            .field("max_write_buffers", &self.max_write_buffers)
            .field("block_size", &self.block_size)
            .field("block_restart_interval", &self.block_restart_interval)
            .field("compression", &self.compression)
            .field("bloom_bits_per_key", &self.bloom_bits_per_key)
            .field("block_cache_size", &self.block_cache_size)
            .field("use_mmap", &self.use_mmap)
            .field("wal_mmap", &self.wal_mmap)
            .field("gather_synced_writers", &self.gather_synced_writers)
            .field("trim_heap_after_flush", &self.trim_heap_after_flush)
            .field("l0_compaction_trigger", &self.l0_compaction_trigger)
            .field("l0_slowdown_trigger", &self.l0_slowdown_trigger)
            .field("l0_stop_trigger", &self.l0_stop_trigger)
            .field("base_level_size", &self.base_level_size)
            .field("level_size_multiplier", &self.level_size_multiplier)
            .field("target_file_size", &self.target_file_size)
            .field("max_background_jobs", &self.max_background_jobs)
            .field("file_system", &self.file_system)
            .finish_non_exhaustive()
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        #[must_use]
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl Options {
    setter!(
        /// When acknowledged writes become durable. Default: [`Durability::Sync`].
        durability: Durability
    );
    setter!(
        /// How recovery treats a damaged WAL. Default: [`WalRecovery::TolerateTornTail`].
        wal_recovery: WalRecovery
    );
    setter!(
        /// Create the database if the directory holds none. Default: true.
        create_if_missing: bool
    );
    setter!(
        /// Fail the open if a database already exists. Default: false.
        error_if_exists: bool
    );
    setter!(
        /// Bytes of writes buffered in the memtable before it is flushed to a
        /// table. Larger buffers mean fewer, larger L0 tables and longer WAL
        /// replay after a crash. Default: 64 MiB.
        write_buffer_size: usize
    );
    setter!(
        /// Memtables allowed at once (the active one plus those waiting for
        /// flush). Writers stall when all are full. Default: 2.
        max_write_buffers: usize
    );
    setter!(
        /// Target size of a table's data block before compression. Default: 4 KiB.
        block_size: usize
    );
    setter!(
        /// Keys between restart points in a block: smaller seeks faster,
        /// larger compresses keys better. Default: 16.
        block_restart_interval: usize
    );
    setter!(
        /// Data block compression. Default: [`Compression::Lz4`].
        compression: Compression
    );
    setter!(
        /// Bloom filter bits per key; 10 gives about a 1% false-positive rate;
        /// 0 disables filters. Default: 10.
        bloom_bits_per_key: u32
    );
    setter!(
        /// Byte budget of the cache of decompressed (or, without mmap, read)
        /// blocks; each block is charged its buffer's capacity. Outside the
        /// budget, each thread that reads tables keeps up to 32 buffers of
        /// dropped blocks (at most 16 KiB each) to decompress into again.
        /// Reads and iterators fill the cache; compaction uses blocks it
        /// finds there but caches none it reads. Default: 64 MiB.
        block_cache_size: usize
    );
    setter!(
        /// Read tables through a memory map (true) or positioned reads
        /// (false). A map reads uncompressed blocks without copying and lets
        /// the OS page cache do the caching; positioned reads keep resident
        /// memory within the block cache budget and suit 32-bit address
        /// spaces or file systems where mmap is slow. WAL appends have their
        /// own switch, [`wal_mmap`](Self::wal_mmap). Default: true.
        use_mmap: bool
    );
    setter!(
        /// Append buffered write groups to the WAL through a shared memory
        /// map of its preallocated space (true) or with a `write` system
        /// call per group (false); synced groups are always `write` calls,
        /// which measured faster before an fdatasync. Either way an append
        /// is in the OS page cache when the write returns, so a process
        /// crash loses nothing, and fdatasync makes it durable. The map saves a system call per
        /// write (a WAL append of a small write: ~0.25 µs against 1.5 µs;
        /// see docs/benchmarks.md, "Write path"). It is used only on Linux,
        /// on ext4, XFS and tmpfs, whose fallocate reserves the blocks;
        /// elsewhere writes are system calls whatever this says. Turn it off
        /// if a disk error must come back as an error: with the map, a store
        /// that has to read its page back from a failing disk kills the
        /// process with SIGBUS (a crash, which recovery handles) where
        /// `write` would return EIO. Default: true.
        wal_mmap: bool
    );
    setter!(
        /// Group commit: when a group with two or more synced writer threads
        /// is committed, the next group's leader (if it writes synced)
        /// waits for that many synced threads to queue again (each usually
        /// comes straight back with its next write), so that they share one
        /// fdatasync instead of splitting between two. The wait ends when
        /// the last of them arrives, and after about two recent
        /// fdatasyncs' duration (at most 1 ms) in any case. A thread writing alone
        /// never waits. When the writers do not come back (threads that
        /// write once, then do other work), each wait that runs out costs
        /// that group up to the bound, and makes the next 1, 2, 4, ... up
        /// to 64 groups skip the wait, until one completes. On the
        /// development VM this took 16 synced writers from about 9 to 16
        /// writes per fdatasync (docs/benchmarks.md, "Group commit").
        /// Default: true.
        gather_synced_writers: bool
    );
    setter!(
        /// After each flush of a memtable of 1 MiB or more, give free heap
        /// pages back to the OS (glibc's `malloc_trim`; Linux with
        /// glibc only, elsewhere nothing happens). A memtable is many small
        /// allocations made on the writing threads, and glibc otherwise
        /// keeps them in those threads' arenas, where threads that only
        /// read cannot reuse them. The trim runs on the flush thread (about
        /// 20 ms per 80 MiB freed) and holds each arena's lock while it
        /// walks it, so an allocation racing it may wait; turn it off if
        /// that matters more than resident memory, or if the process's
        /// allocator is not glibc's. Default: true.
        trim_heap_after_flush: bool
    );
    setter!(
        /// L0 files that trigger an L0 → L1 compaction. Default: 4.
        l0_compaction_trigger: usize
    );
    setter!(
        /// L0 files at which writes start to slow down. Default: 20.
        l0_slowdown_trigger: usize
    );
    setter!(
        /// L0 files at which writes stop until compaction catches up. Default: 36.
        l0_stop_trigger: usize
    );
    setter!(
        /// Target size of L1; deeper levels grow by `level_size_multiplier`. Default: 256 MiB.
        base_level_size: u64
    );
    setter!(
        /// Size ratio between consecutive levels. Default: 10.
        level_size_multiplier: u64
    );
    setter!(
        /// Compaction output files are cut at this size. Default: 64 MiB.
        target_file_size: u64
    );
    setter!(
        /// Background threads for flush and compaction; flush has priority. Default: 2.
        max_background_jobs: usize
    );
    setter!(
        /// The manifest is rewritten as a snapshot once it grows past this. Default: 8 MiB.
        max_manifest_size: u64
    );
    setter!(
        /// Pending compaction bytes at which writes start to slow down. Default: 64 GiB.
        soft_pending_compaction_bytes: u64
    );
    setter!(
        /// Pending compaction bytes at which writes stop. Default: 256 GiB.
        hard_pending_compaction_bytes: u64
    );
    setter!(
        /// A table whose tombstones exceed this fraction of its entries is
        /// compacted even when level sizes would not ask for it. Default: 0.5.
        tombstone_compaction_ratio: f64
    );
    setter!(
        /// The file system all I/O goes through. Default: the real one.
        file_system: Arc<dyn FileSystem>
    );
    setter!(
        /// The time source for TTLs. Default: the system clock.
        clock: Arc<dyn Clock>
    );

    /// Rejects settings the engine cannot run with, before anything is written.
    pub(crate) fn validate(&self) -> Result<()> {
        let checks: [(bool, &str); 12] = [
            (
                self.write_buffer_size >= 4096,
                "write_buffer_size must be at least 4 KiB",
            ),
            (
                self.max_write_buffers >= 2,
                "max_write_buffers must be at least 2",
            ),
            (
                self.block_size >= 64 && self.block_size <= 256 << 20,
                "block_size must be between 64 bytes and 256 MiB",
            ),
            (
                self.block_restart_interval >= 1 && self.block_restart_interval <= 4096,
                "block_restart_interval must be between 1 and 4096",
            ),
            (
                self.bloom_bits_per_key <= 64,
                "bloom_bits_per_key must be at most 64",
            ),
            (
                self.l0_compaction_trigger >= 1,
                "l0_compaction_trigger must be at least 1",
            ),
            (
                self.l0_slowdown_trigger >= self.l0_compaction_trigger
                    && self.l0_stop_trigger >= self.l0_slowdown_trigger,
                "need l0_compaction_trigger <= l0_slowdown_trigger <= l0_stop_trigger",
            ),
            (
                self.base_level_size >= 4096,
                "base_level_size must be at least 4 KiB",
            ),
            (
                self.level_size_multiplier >= 2,
                "level_size_multiplier must be at least 2",
            ),
            (
                self.target_file_size >= 4096,
                "target_file_size must be at least 4 KiB",
            ),
            (
                self.max_background_jobs >= 1,
                "max_background_jobs must be at least 1",
            ),
            (
                self.soft_pending_compaction_bytes <= self.hard_pending_compaction_bytes
                    && (0.0..=1.0).contains(&self.tombstone_compaction_ratio),
                "need soft <= hard pending compaction bytes and a tombstone ratio in 0..=1",
            ),
        ];
        if let Durability::Periodic(d) = self.durability
            && d.is_zero()
        {
            return Err(Error::invalid(
                "Durability::Periodic needs a non-zero interval",
            ));
        }
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(Error::invalid(*why)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        Options::default().validate().expect("defaults");
        let err = Options::default()
            .block_size(0)
            .validate()
            .expect_err("zero block");
        assert!(err.to_string().contains("block_size"), "{err}");
        let err = Options::default()
            .durability(Durability::Periodic(Duration::ZERO))
            .validate()
            .expect_err("zero period");
        assert!(err.to_string().contains("Periodic"), "{err}");
        assert!(Options::default().l0_stop_trigger(1).validate().is_err());
    }
}
