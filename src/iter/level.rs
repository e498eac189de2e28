//! A cursor over one level below L0: its files are sorted and disjoint, so
//! they read as one long table, opened one file at a time.

use std::sync::Arc;

use bytes::Bytes;

use super::InternalIterator;
use crate::error::{Error, Result};
use crate::key;
use crate::sst::TableIter;
use crate::version::TableFile;

pub(crate) struct LevelIter {
    files: Vec<Arc<TableFile>>,
    index: usize,
    current: Option<TableIter>,
    err: Option<Error>,
    fill_cache: bool,
}

impl LevelIter {
    pub(crate) fn new(files: Vec<Arc<TableFile>>) -> Self {
        LevelIter {
            files,
            index: 0,
            current: None,
            err: None,
            fill_cache: true,
        }
    }

    /// A cursor that caches none of the blocks it reads (see
    /// [`TableIter::uncached`]).
    pub(crate) fn uncached(files: Vec<Arc<TableFile>>) -> Self {
        LevelIter {
            fill_cache: false,
            ..LevelIter::new(files)
        }
    }

    fn open(&mut self, index: usize) -> bool {
        self.index = index;
        self.current = None;
        let Some(file) = self.files.get(index) else {
            return false;
        };
        match file.table() {
            Ok(t) => {
                let table = Arc::clone(t);
                self.current = Some(if self.fill_cache {
                    TableIter::new(table)
                } else {
                    TableIter::uncached(table)
                });
                true
            }
            Err(e) => {
                self.err = Some(e);
                false
            }
        }
    }

    /// Moves past exhausted files; stops at an error.
    fn settle(&mut self, forward: bool) {
        loop {
            let Some(cur) = &self.current else { return };
            if cur.valid() {
                return;
            }
            if let Err(e) = cur.status() {
                self.err = Some(e);
                self.current = None;
                return;
            }
            let next = if forward {
                self.index + 1
            } else if self.index == 0 {
                self.current = None;
                return;
            } else {
                self.index - 1
            };
            if !self.open(next) {
                return;
            }
            if let Some(cur) = &mut self.current {
                if forward {
                    cur.seek_to_first();
                } else {
                    cur.seek_to_last();
                }
            }
        }
    }
}

impl InternalIterator for LevelIter {
    fn seek(&mut self, target: &[u8]) {
        self.err = None;
        let i = self
            .files
            .partition_point(|f| key::compare(&f.info.largest, target).is_lt());
        if self.open(i) {
            if let Some(cur) = &mut self.current {
                cur.seek(target);
            }
            self.settle(true);
        }
    }

    fn seek_to_first(&mut self) {
        self.err = None;
        if self.open(0) {
            if let Some(cur) = &mut self.current {
                cur.seek_to_first();
            }
            self.settle(true);
        }
    }

    fn seek_for_prev(&mut self, target: &[u8]) {
        self.err = None;
        let n = self
            .files
            .partition_point(|f| key::compare(&f.info.smallest, target).is_le());
        if n == 0 {
            self.current = None;
            return;
        }
        if self.open(n - 1) {
            if let Some(cur) = &mut self.current {
                cur.seek_for_prev(target);
            }
            self.settle(false);
        }
    }

    fn seek_to_last(&mut self) {
        self.err = None;
        if !self.files.is_empty() && self.open(self.files.len() - 1) {
            if let Some(cur) = &mut self.current {
                cur.seek_to_last();
            }
            self.settle(false);
        }
    }

    fn next(&mut self) {
        if let Some(cur) = &mut self.current {
            cur.next();
            self.settle(true);
        }
    }

    fn prev(&mut self) {
        if let Some(cur) = &mut self.current {
            cur.prev();
            self.settle(false);
        }
    }

    fn valid(&self) -> bool {
        self.current.as_ref().is_some_and(TableIter::valid)
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.key())
    }

    fn value(&self) -> Bytes {
        self.current.as_ref().map_or_else(Bytes::new, |c| c.value())
    }

    fn status(&self) -> Result<()> {
        match &self.err {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}
