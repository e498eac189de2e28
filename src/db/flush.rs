//! Flush: writing an immutable memtable to an L0 table.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{DbInner, SuperVersion};
use crate::compaction::{Decision, EntryFilter, OutputTables};
use crate::error::{Error, Result};
use crate::format::{FileKind, KIND_DELETE, parse_file_name, wal_name};
use crate::iter::{InternalIterator, MemIter};
use crate::key;
use crate::memtable::Memtable;
use crate::version::{FileInfo, VersionEdit};

/// Writes the entries of `source` that `filter` keeps into `out`'s tables.
/// Returns the files written and their total size.
pub(crate) fn write_table(
    mut out: OutputTables<'_>,
    source: &mut dyn InternalIterator,
    filter: &mut EntryFilter,
) -> Result<(Vec<FileInfo>, u64)> {
    let mut tomb = Vec::new();
    let result = (|| {
        while source.valid() {
            let k = source.key();
            match filter.decide(k, &source.value()) {
                Decision::Keep => out.add(k, &source.value())?,
                Decision::KeepAsTombstone => {
                    let (ukey, trailer) = key::split(k).unwrap_or((k, 0));
                    tomb.clear();
                    key::push_ikey(&mut tomb, ukey, key::seq_of(trailer), KIND_DELETE);
                    out.add(&tomb, &[])?;
                }
                Decision::Drop => {}
            }
            source.next();
        }
        source.status()
    })();
    match result {
        Ok(()) => out.finish(),
        Err(e) => {
            out.abandon();
            Err(e)
        }
    }
}

impl DbInner {
    /// Writes `mem` to L0 tables (without installing them).
    pub(crate) fn build_l0(&self, mem: &Arc<Memtable>) -> Result<(Vec<FileInfo>, u64)> {
        let mut it = MemIter::new(Arc::clone(mem));
        it.seek_to_first();
        let dropped = self.dropped_namespaces();
        let mut filter = EntryFilter::new(self.snapshots.list(), false, self.now_ms(), dropped);
        write_table(OutputTables::new(self, u64::MAX), &mut it, &mut filter)
    }

    pub(crate) fn dropped_namespaces(&self) -> Vec<u32> {
        self.versions
            .as_ref()
            .map(|v| v.lock().dropped_namespaces().to_vec())
            .unwrap_or_default()
    }

    pub(crate) fn needs_flush(&self) -> bool {
        !self.in_memory && !self.super_version.load().imm.is_empty()
    }

    /// Flushes the oldest immutable memtable, installs the table and
    /// deletes the WAL files no memtable needs any more.
    pub(crate) fn flush_oldest(&self) -> Result<()> {
        let Some(versions) = &self.versions else {
            return Ok(());
        };
        let Some(imm) = self.super_version.load().imm.last().cloned() else {
            return Ok(());
        };
        let (files, bytes) = self.build_l0(&imm)?;
        let next_wal = {
            let _g = self.sv_update.lock();
            let cur = self.super_version.load_full();
            let Some((last, rest)) = cur.imm.split_last() else {
                return Err(Error::invalid("flush raced with another flush"));
            };
            if !Arc::ptr_eq(last, &imm) {
                return Err(Error::invalid("flush raced with another flush"));
            }
            // The oldest memtable still unflushed owns the oldest WAL still needed.
            let next_wal = rest.last().map_or(cur.mem.wal_number(), |m| m.wal_number());
            let edit = VersionEdit {
                log_number: Some(next_wal),
                last_sequence: Some(imm.max_seq()),
                added: files.into_iter().map(|f| (0, f)).collect(),
                ..VersionEdit::default()
            };
            let version = versions.lock().log_and_apply(edit)?;
            self.store_super_version(SuperVersion {
                mem: Arc::clone(&cur.mem),
                imm: rest.to_vec(),
                version,
            });
            next_wal
        };
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        self.stats.flush_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.remove_wals_below(next_wal);
        crate::memtable::release(imm, self.opts.trim_heap_after_flush);
        Ok(())
    }

    /// Deletes WAL files older than `number` (their memtables are in tables).
    pub(crate) fn remove_wals_below(&self, number: u64) {
        let names = match self.fs.list(&self.dir) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("listing {}: {e}", self.dir.display());
                return;
            }
        };
        for name in names {
            if let Some(FileKind::Wal(n)) = parse_file_name(&name)
                && n < number
                && let Err(e) = self.fs.remove(&self.dir.join(wal_name(n)))
            {
                log::warn!("removing old WAL {name}: {e}");
            }
        }
    }
}
