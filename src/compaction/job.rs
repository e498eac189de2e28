//! Running a compaction: merge the inputs, keep what the filter keeps,
//! write and fsync the outputs, install them through the manifest.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::picker::{self, Pick, Reason};
use super::{EntryFilter, OutputTables};
use crate::db::{DbInner, SuperVersion, write_table};
use crate::error::{Error, Result};
use crate::iter::{InternalIterator, LevelIter, MergingIterator};
use crate::sst::TableIter;
use crate::version::{MAX_LEVELS, TableFile, VersionEdit};

impl DbInner {
    /// Records `edit` in the manifest and publishes the new version.
    fn install(&self, edit: VersionEdit) -> Result<()> {
        let versions = self
            .versions
            .as_ref()
            .ok_or_else(|| Error::invalid("no tables in memory mode"))?;
        let _g = self.sv_update.lock();
        let version = versions.lock().log_and_apply(edit)?;
        let cur = self.super_version.load_full();
        self.store_super_version(SuperVersion {
            mem: Arc::clone(&cur.mem),
            imm: cur.imm.clone(),
            version,
        });
        drop(_g);
        self.bg.notify_all();
        Ok(())
    }

    pub(crate) fn run_compaction(&self, pick: Pick) -> Result<()> {
        match pick {
            Pick::TrivialMove { level, file } => {
                let edit = VersionEdit {
                    deleted: vec![(level, file.number())],
                    added: vec![(level + 1, file.info.clone())],
                    ..VersionEdit::default()
                };
                self.install(edit)?;
                self.compact_pointers.lock()[level] = file.info.largest.clone();
                self.stats.trivial_moves.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Pick::Merge {
                level,
                output_level,
                inputs,
                overlapping,
                bottommost,
                reason,
            } => {
                log::debug!(
                    "compacting {} files of L{level} with {} of L{output_level} ({reason:?})",
                    inputs.len(),
                    overlapping.len()
                );
                let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
                if level == 0 {
                    for f in &inputs {
                        children.push(Box::new(TableIter::uncached(Arc::clone(f.table()?))));
                    }
                } else {
                    children.push(Box::new(LevelIter::uncached(inputs.clone())));
                }
                if !overlapping.is_empty() {
                    children.push(Box::new(LevelIter::uncached(overlapping.clone())));
                }
                let mut merged = MergingIterator::new(children);
                merged.seek_to_first();
                let mut filter = EntryFilter::new(
                    self.snapshots.list(),
                    bottommost,
                    self.now_ms(),
                    self.dropped_namespaces(),
                );
                let (outputs, written) = write_table(
                    OutputTables::new(self, self.opts.target_file_size),
                    &mut merged,
                    &mut filter,
                )?;
                let read: u64 = inputs.iter().chain(&overlapping).map(|f| f.info.size).sum();
                let mut edit = VersionEdit::default();
                edit.deleted
                    .extend(inputs.iter().map(|f| (level, f.number())));
                edit.deleted
                    .extend(overlapping.iter().map(|f| (output_level, f.number())));
                edit.added
                    .extend(outputs.into_iter().map(|f| (output_level, f)));
                self.install(edit)?;
                if let Some(last) = inputs
                    .iter()
                    .map(|f| &f.info.largest)
                    .max_by(|a, b| crate::key::compare(a, b))
                {
                    self.compact_pointers.lock()[level] = last.clone();
                }
                self.stats.compactions.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .compaction_bytes_read
                    .fetch_add(read, Ordering::Relaxed);
                self.stats
                    .compaction_bytes_written
                    .fetch_add(written, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Compacts every table overlapping the `ukey` range `[lo, hi]` (open
    /// ends when `None`) down to the deepest level, dropping tombstones and
    /// expired entries no snapshot needs. Flushes first; waits for the end.
    pub(crate) fn compact_range_ukeys(&self, lo: Option<&[u8]>, hi: Option<&[u8]>) -> Result<()> {
        self.flush_and_wait()?;
        if self.in_memory {
            return Ok(());
        }
        self.bg.acquire_compaction(self)?;
        let result = self.compact_range_locked(lo, hi);
        self.bg.release_compaction();
        if let Err(e) = &result
            && !matches!(e, Error::Closed)
        {
            // As in the background: after a failed write or sync the state
            // of the files is unknown, so the database stops writing.
            self.set_poison(e);
        }
        result
    }

    fn compact_range_locked(&self, lo: Option<&[u8]>, hi: Option<&[u8]>) -> Result<()> {
        let in_range = |f: &Arc<TableFile>| {
            lo.is_none_or(|l| f.largest_ukey() >= l) && hi.is_none_or(|h| f.smallest_ukey() <= h)
        };
        let bottom = self
            .super_version
            .load()
            .version
            .deepest_nonempty_level()
            .max(1);
        for level in 0..bottom {
            self.check_open()?;
            let version = Arc::clone(&self.super_version.load().version);
            // All of L0 or none: its files overlap, and leaving an older one
            // behind would let it shadow a newer version moved below it.
            let inputs: Vec<_> = if level == 0 {
                if version.levels[0].iter().any(in_range) {
                    version.levels[0].clone()
                } else {
                    Vec::new()
                }
            } else {
                version.levels[level]
                    .iter()
                    .filter(|f| in_range(f))
                    .cloned()
                    .collect()
            };
            if inputs.is_empty() {
                continue;
            }
            self.run_compaction(picker::merge_into(
                &version,
                level,
                level + 1,
                inputs,
                Reason::Manual,
            ))?;
        }
        // Files already at the bottom may still carry garbage: rewrite those in place.
        let version = Arc::clone(&self.super_version.load().version);
        let now = self.now_ms();
        let garbage: Vec<_> = version.levels[bottom.min(MAX_LEVELS - 1)]
            .iter()
            .filter(|f| in_range(f))
            .filter(|f| {
                f.info.tombstones > 0 || (f.info.min_expiry != 0 && f.info.min_expiry <= now)
            })
            .cloned()
            .collect();
        // One file at a time: a rewrite in place must stay inside its own
        // range, or it would overlap the clean files between garbage ones.
        for f in garbage {
            self.run_compaction(picker::merge_into(
                &version,
                bottom,
                bottom,
                vec![f],
                Reason::Manual,
            ))?;
        }
        Ok(())
    }
}
