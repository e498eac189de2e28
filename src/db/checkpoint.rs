//! Checkpoints: a second database directory holding this one as of one
//! sequence number, opened like any other database.
//!
//! The live tables are hard-linked (copied where links fail). What is still
//! in memtables is written as one more L0 table, cut at the checkpoint's
//! sequence number, so the checkpoint needs no WAL. A fresh manifest lists
//! both, and CURRENT, written last, makes the directory a database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::{Db, DbInner, flush::write_table};
use crate::compaction::{EntryFilter, OutputTables};
use crate::error::{Error, Result};
use crate::format::table_name;
use crate::iter::{InternalIterator, MemIter, MergingIterator};
use crate::key;
use crate::version::{VersionEdit, write_manifest_snapshot};

/// What [`Db::checkpoint`] made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckpointInfo {
    /// The checkpoint's directory.
    pub dir: PathBuf,
    /// Every write up to this sequence number is in it, none after.
    pub sequence: u64,
    /// Tables shared with the database (hard links or copies).
    pub linked_tables: usize,
    /// Tables written from the memtables.
    pub written_tables: usize,
    /// Bytes of all its tables.
    pub bytes: u64,
}

/// A cursor that hides entries newer than `max_seq`.
struct UpTo<I> {
    inner: I,
    max_seq: u64,
}

impl<I: InternalIterator> UpTo<I> {
    fn skip_forward(&mut self) {
        while self.inner.valid() && self.too_new() {
            self.inner.next();
        }
    }

    fn too_new(&self) -> bool {
        key::split(self.inner.key()).is_some_and(|(_, t)| key::seq_of(t) > self.max_seq)
    }
}

impl<I: InternalIterator> InternalIterator for UpTo<I> {
    fn seek(&mut self, target: &[u8]) {
        self.inner.seek(target);
        self.skip_forward();
    }
    fn seek_to_first(&mut self) {
        self.inner.seek_to_first();
        self.skip_forward();
    }
    fn seek_for_prev(&mut self, target: &[u8]) {
        self.inner.seek_for_prev(target);
        while self.inner.valid() && self.too_new() {
            self.inner.prev();
        }
    }
    fn seek_to_last(&mut self) {
        self.inner.seek_to_last();
        while self.inner.valid() && self.too_new() {
            self.inner.prev();
        }
    }
    fn next(&mut self) {
        self.inner.next();
        self.skip_forward();
    }
    fn prev(&mut self) {
        self.inner.prev();
        while self.inner.valid() && self.too_new() {
            self.inner.prev();
        }
    }
    fn valid(&self) -> bool {
        self.inner.valid()
    }
    fn key(&self) -> &[u8] {
        self.inner.key()
    }
    fn value(&self) -> Bytes {
        self.inner.value()
    }
    fn status(&self) -> Result<()> {
        self.inner.status()
    }
}

impl DbInner {
    pub(crate) fn checkpoint(self: &Arc<Self>, dir: &Path) -> Result<CheckpointInfo> {
        self.check_open()?;
        // Memory mode keeps its data in a private in-memory file system; its
        // checkpoint goes through the file system the options name.
        let fs = if self.in_memory {
            &self.opts.file_system
        } else {
            &self.fs
        };
        match fs.kind(dir)? {
            None => fs.create_dir_all(dir)?,
            Some(crate::fs::EntryKind::Dir) if fs.list(dir)?.is_empty() => {}
            Some(_) => {
                return Err(Error::invalid(format!(
                    "checkpoint target {} exists and is not an empty directory",
                    dir.display()
                )));
            }
        }
        if let (Ok(a), Ok(b)) = (dir.canonicalize(), self.dir.canonicalize())
            && a == b
        {
            return Err(Error::invalid(
                "a checkpoint cannot go into its own database",
            ));
        }

        // One moment: the namespaces as they are, a snapshot pinning the
        // versions visible now, and the files and memtables holding them.
        let (snapshot, sv, namespaces, dropped) = {
            let _ns = self.namespaces.create.lock();
            let snapshot = Db::snapshot_of(self);
            let (namespaces, dropped) = match &self.versions {
                Some(v) => {
                    let v = v.lock();
                    (v.namespace_records(), v.dropped_namespaces().to_vec())
                }
                None => (self.namespaces.records(), Vec::new()),
            };
            (
                snapshot,
                self.super_version.load_full(),
                namespaces,
                dropped,
            )
        };
        let seq = snapshot.sequence();

        let mut edit = VersionEdit {
            log_number: Some(0),
            last_sequence: Some(seq),
            namespaces,
            dropped_namespaces: dropped.clone(),
            ..VersionEdit::default()
        };
        let mut next_number = 1;
        let mut bytes = 0;
        let result = (|| {
            for (level, file) in sv.version.files() {
                let name = table_name(file.number());
                fs.link_or_copy(&file.path(), &dir.join(&name))?;
                next_number = next_number.max(file.number() + 1);
                bytes += file.info.size;
                edit.added.push((level, file.info.clone()));
            }
            let linked = edit.added.len();

            let mut sources: Vec<Box<dyn InternalIterator>> = Vec::new();
            for m in std::iter::once(&sv.mem).chain(&sv.imm) {
                sources.push(Box::new(MemIter::new(Arc::clone(m))));
            }
            let mut memtables = UpTo {
                inner: MergingIterator::new(sources),
                max_seq: seq,
            };
            memtables.seek_to_first();
            // Only the newest version up to `seq` matters; tombstones stay
            // (they hide older versions in the linked tables).
            let mut filter = EntryFilter::new(Vec::new(), false, self.now_ms(), dropped);
            let out = OutputTables::new_in(self, fs, dir, next_number);
            let (files, written_bytes) = write_table(out, &mut memtables, &mut filter)?;
            let written = files.len();
            for f in files {
                next_number = next_number.max(f.number + 1);
                edit.added.push((0, f));
            }
            bytes += written_bytes;
            edit.next_file_number = Some(next_number + 1);
            write_manifest_snapshot(fs.as_ref(), dir, next_number, &edit)?;
            // A read-only handle beside a writer: the tables linked above
            // were the live ones only if no flush or compaction ran since
            // the handle opened.
            if self.source_changed() {
                return Err(Error::Conflict);
            }
            Ok((linked, written))
        })();
        drop(snapshot);
        match result {
            Ok((linked_tables, written_tables)) => Ok(CheckpointInfo {
                dir: dir.to_path_buf(),
                sequence: seq,
                linked_tables,
                written_tables,
                bytes,
            }),
            Err(e) => {
                // Leave no half-made database behind.
                if let Ok(names) = fs.list(dir) {
                    for name in names {
                        let _ = fs.remove(&dir.join(name));
                    }
                }
                // A table a writer deleted under a read-only handle is a
                // lost race, not damage.
                Err(if self.source_changed() {
                    Error::Conflict
                } else {
                    e
                })
            }
        }
    }
}

impl Db {
    /// Writes a consistent copy of the database into `dir` (which must be
    /// missing or empty), as of one sequence number: every write committed
    /// before the call is in it, and no half of any batch.
    ///
    /// Tables are hard-linked where the file system allows (so a checkpoint
    /// costs little space until compaction rewrites the originals) and copied
    /// otherwise; memtable contents are written as a new table. Open the
    /// result with [`Db::open`]. Works in memory mode too: the checkpoint
    /// is then an ordinary database of the memory's contents, written
    /// through `Options::file_system` (the real file system by default).
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<CheckpointInfo> {
        self.inner.checkpoint(dir.as_ref())
    }
}
