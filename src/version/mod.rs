//! Versions: the set of live table files, level by level.
//!
//! A [`Version`] is immutable once published. Readers and iterators hold an
//! `Arc` to the version they started with; flush and compaction publish new
//! versions through the [`VersionSet`]. A table file removed from the current
//! version is marked obsolete and deleted when the last version or iterator
//! holding it lets go (the `Drop` of [`TableFile`]).

mod edit;
mod set;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use once_cell::sync::OnceCell;

pub(crate) use edit::{FileInfo, MAX_LEVELS, NamespaceRecord, VersionEdit};
pub(crate) use set::{VersionSet, read_current, write_manifest_snapshot};

use crate::cache::BlockCache;
use crate::error::Result;
use crate::format::table_name;
use crate::fs::FileSystem;
use crate::key;
use crate::sst::{Probe, Table};

/// What a table file needs to open itself and, later, delete itself.
#[derive(Debug)]
pub(crate) struct TableCtx {
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) dir: PathBuf,
    pub(crate) cache: Arc<BlockCache>,
    pub(crate) use_mmap: bool,
}

/// A live table file: its manifest record and, once first read, the open table.
#[derive(Debug)]
pub(crate) struct TableFile {
    pub(crate) info: FileInfo,
    table: OnceCell<Arc<Table>>,
    ctx: Arc<TableCtx>,
    obsolete: AtomicBool,
}

impl TableFile {
    pub(crate) fn new(info: FileInfo, ctx: Arc<TableCtx>) -> Self {
        TableFile {
            info,
            table: OnceCell::new(),
            ctx,
            obsolete: AtomicBool::new(false),
        }
    }

    pub(crate) fn number(&self) -> u64 {
        self.info.number
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.ctx.dir.join(table_name(self.info.number))
    }

    /// The open table, opening it on first use.
    pub(crate) fn table(&self) -> Result<&Arc<Table>> {
        self.table.get_or_try_init(|| {
            let path = self.path();
            let file = self.ctx.fs.open(&path)?;
            let table = Table::open(
                file,
                path,
                self.info.number,
                Arc::clone(&self.ctx.cache),
                self.ctx.use_mmap,
            )?;
            Ok(Arc::new(table))
        })
    }

    pub(crate) fn smallest_ukey(&self) -> &[u8] {
        key::ukey_of(&self.info.smallest)
    }

    pub(crate) fn largest_ukey(&self) -> &[u8] {
        key::ukey_of(&self.info.largest)
    }

    /// True if the file's key range includes `ukey`.
    pub(crate) fn covers(&self, ukey: &[u8]) -> bool {
        self.smallest_ukey() <= ukey && ukey <= self.largest_ukey()
    }

    /// Called when no future version will hold this file.
    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }
}

impl Drop for TableFile {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            // Blocks are cached only through the open table.
            if self.table.get().is_some() {
                self.ctx.cache.evict_table(self.info.number);
            }
            let path = self.path();
            match self.ctx.fs.remove(&path) {
                Ok(()) => log::debug!("deleted obsolete table {}", path.display()),
                Err(e) => log::warn!("could not delete obsolete table {}: {e}", path.display()),
            }
        }
    }
}

/// The live files of the database at one moment.
///
/// Invariants: level 0 is ordered newest first (by file number) and its
/// files may overlap; every deeper level is ordered by key and its files do
/// not overlap, and no user key has versions in two files of one level.
#[derive(Debug, Default)]
pub(crate) struct Version {
    pub(crate) levels: [Vec<Arc<TableFile>>; MAX_LEVELS],
}

impl Version {
    /// Applies an edit. Returns the new version and the files it dropped.
    pub(crate) fn apply(
        &self,
        edit: &VersionEdit,
        ctx: &Arc<TableCtx>,
    ) -> (Version, Vec<Arc<TableFile>>) {
        let mut levels = self.levels.clone();
        let mut removed = Vec::new();
        for &(level, number) in &edit.deleted {
            if let Some(files) = levels.get_mut(level)
                && let Some(pos) = files.iter().position(|f| f.number() == number)
            {
                removed.push(files.remove(pos));
            }
        }
        for (level, info) in &edit.added {
            // A trivial move re-adds a deleted file: keep the same object so
            // the file is not deleted when the old version goes.
            let file = match removed.iter().position(|f| f.number() == info.number) {
                Some(pos) => removed.remove(pos),
                None => Arc::new(TableFile::new(info.clone(), Arc::clone(ctx))),
            };
            if let Some(files) = levels.get_mut(*level) {
                files.push(file);
            }
        }
        let (l0, deeper) = levels.split_at_mut(1);
        for files in l0 {
            files.sort_by_key(|f| std::cmp::Reverse(f.number()));
        }
        for files in deeper {
            files.sort_by(|a, b| key::compare(&a.info.smallest, &b.info.smallest));
        }
        let v = Version { levels };
        debug_assert!(v.check_disjoint().is_ok(), "{:?}", v.check_disjoint());
        (v, removed)
    }

    /// The newest version of `ukey` at or below the sequence in `target`.
    /// With `cached_only`, stops with `Probe::WouldBlock` rather than open a
    /// table or read a block that is not cached.
    pub(crate) fn get(
        &self,
        target: &[u8],
        ukey: &[u8],
        hash: u64,
        cached_only: bool,
    ) -> Result<Probe> {
        let l0 = self.levels[0].iter().filter(|f| f.covers(ukey));
        let deeper = self.levels.iter().skip(1).filter_map(|files| {
            let i = files.partition_point(|f| f.largest_ukey() < ukey);
            files.get(i).filter(|f| f.smallest_ukey() <= ukey)
        });
        for f in l0.chain(deeper) {
            let table = match f.table.get() {
                Some(t) => t,
                None if cached_only => return Ok(Probe::WouldBlock),
                None => f.table()?,
            };
            match table.get(target, ukey, hash, cached_only)? {
                Probe::Absent => {}
                found_or_blocked => return Ok(found_or_blocked),
            }
        }
        Ok(Probe::Absent)
    }

    /// Checks that no two files of a level below L0 share a user key.
    pub(crate) fn check_disjoint(&self) -> Result<(), String> {
        for (level, files) in self.levels.iter().enumerate().skip(1) {
            for pair in files.windows(2) {
                if let [a, b] = pair
                    && a.largest_ukey() >= b.smallest_ukey()
                {
                    return Err(format!(
                        "L{level}: file {} ends at {:?}, file {} starts at {:?}",
                        a.number(),
                        a.largest_ukey(),
                        b.number(),
                        b.smallest_ukey()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every live file, all levels.
    pub(crate) fn files(&self) -> impl Iterator<Item = (usize, &Arc<TableFile>)> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(|(l, files)| files.iter().map(move |f| (l, f)))
    }

    pub(crate) fn level_bytes(&self, level: usize) -> u64 {
        self.levels
            .get(level)
            .map_or(0, |fs| fs.iter().map(|f| f.info.size).sum())
    }

    /// The deepest level holding any file (0 if none).
    pub(crate) fn deepest_nonempty_level(&self) -> usize {
        self.levels.iter().rposition(|l| !l.is_empty()).unwrap_or(0)
    }

    /// Files of `level` whose user-key range meets `[lo, hi]` (inclusive).
    pub(crate) fn overlapping(&self, level: usize, lo: &[u8], hi: &[u8]) -> Vec<Arc<TableFile>> {
        self.levels.get(level).map_or_else(Vec::new, |files| {
            files
                .iter()
                .filter(|f| f.smallest_ukey() <= hi && f.largest_ukey() >= lo)
                .cloned()
                .collect()
        })
    }
}
