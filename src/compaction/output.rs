//! Writes the entries of a flush or compaction into one or more tables,
//! cutting a new table once one reaches the target size, but never between
//! two versions of the same key (so a key lives in one file per level).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::db::DbInner;
use crate::error::{Error, Result};
use crate::format::{table_name, temp_name};
use crate::fs::FileSystem;
use crate::key;
use crate::sst::TableBuilder;
use crate::version::FileInfo;

pub(crate) struct OutputTables<'a> {
    inner: &'a DbInner,
    /// Where the tables go: the database's directory, or a checkpoint's.
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    /// Numbers for new tables: from the version set, or counting up from here.
    next_number: Option<u64>,
    target_size: u64,
    current: Option<(u64, PathBuf, TableBuilder)>,
    finished: Vec<FileInfo>,
    last_ukey: Vec<u8>,
    /// Bytes written to finished tables.
    pub(crate) bytes_written: u64,
}

impl<'a> OutputTables<'a> {
    pub(crate) fn new(inner: &'a DbInner, target_size: u64) -> Self {
        OutputTables {
            inner,
            fs: Arc::clone(&inner.fs),
            dir: inner.dir.clone(),
            next_number: None,
            target_size,
            current: None,
            finished: Vec::new(),
            last_ukey: Vec::new(),
            bytes_written: 0,
        }
    }

    /// Tables written into `dir`, numbered from `first_number` up.
    pub(crate) fn new_in(
        inner: &'a DbInner,
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        first_number: u64,
    ) -> Self {
        let mut out = OutputTables::new(inner, u64::MAX);
        out.fs = Arc::clone(fs);
        out.dir = dir.to_path_buf();
        out.next_number = Some(first_number);
        out
    }

    fn new_number(&mut self) -> Result<u64> {
        if let Some(n) = &mut self.next_number {
            *n += 1;
            return Ok(*n - 1);
        }
        let versions = self
            .inner
            .versions
            .as_ref()
            .ok_or_else(|| Error::invalid("no tables in memory mode"))?;
        Ok(versions.lock().new_file_number())
    }

    pub(crate) fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        let ukey = key::ukey_of(ikey);
        let new_key = ukey != self.last_ukey.as_slice();
        if new_key {
            if let Some((_, _, b)) = &self.current
                && b.estimated_size() >= self.target_size
            {
                self.finish_current()?;
            }
            self.last_ukey.clear();
            self.last_ukey.extend_from_slice(ukey);
        }
        if self.current.is_none() {
            let number = self.new_number()?;
            let temp = self.dir.join(temp_name(number));
            let file = self.fs.create(&temp)?;
            let builder = TableBuilder::new(file, temp.clone(), &self.inner.opts);
            self.current = Some((number, temp, builder));
        }
        match &mut self.current {
            Some((_, _, b)) => b.add(ikey, value),
            None => Ok(()),
        }
    }

    /// Finishes the open table: fsync, rename into place, fsync the directory.
    fn finish_current(&mut self) -> Result<()> {
        let Some((number, temp, builder)) = self.current.take() else {
            return Ok(());
        };
        let fs = &self.fs;
        if builder.entries() == 0 {
            drop(builder);
            return fs.remove(&temp);
        }
        let (props, size) = builder.finish()?;
        fs.rename(&temp, &self.dir.join(table_name(number)))?;
        fs.sync_dir(&self.dir)?;
        self.bytes_written += size;
        self.finished.push(FileInfo {
            number,
            size,
            smallest: props.smallest,
            largest: props.largest,
            smallest_seq: props.smallest_seq,
            largest_seq: props.largest_seq,
            entries: props.entries,
            tombstones: props.tombstones,
            raw_bytes: props.raw_key_bytes + props.raw_value_bytes,
            min_expiry: props.min_expiry,
        });
        Ok(())
    }

    /// Finishes every table; returns what was written.
    pub(crate) fn finish(mut self) -> Result<(Vec<FileInfo>, u64)> {
        self.finish_current()?;
        Ok((std::mem::take(&mut self.finished), self.bytes_written))
    }

    /// Removes every file written so far (after a failure).
    pub(crate) fn abandon(mut self) {
        let fs = &self.fs;
        if let Some((_, temp, builder)) = self.current.take() {
            drop(builder);
            let _ = fs.remove(&temp);
        }
        for f in &self.finished {
            let _ = fs.remove(&self.dir.join(table_name(f.number)));
        }
    }
}
