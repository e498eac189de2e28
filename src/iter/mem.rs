//! A cursor over a memtable, copying entries out in chunks so that it
//! borrows nothing between calls.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::InternalIterator;
use crate::error::Result;
use crate::memtable::{Chunk, MemKey, Memtable};

/// The first chunk is small (a seek often reads few entries); later ones grow.
const FIRST_CHUNK: usize = 8;
const MAX_CHUNK: usize = 256;

pub(crate) struct MemIter {
    mem: Arc<Memtable>,
    chunk: Chunk,
    pos: usize,
    /// The size the next refill asks for; 0 once the memtable is exhausted.
    next_fill: usize,
    forward: bool,
}

impl MemIter {
    pub(crate) fn new(mem: Arc<Memtable>) -> Self {
        MemIter {
            mem,
            chunk: Chunk::default(),
            pos: 0,
            next_fill: 0,
            forward: true,
        }
    }

    fn fill(&mut self, from: Bound<&MemKey>, want: usize) {
        if self.forward {
            self.mem.fill_forward(from, want, &mut self.chunk);
        } else {
            self.mem.fill_backward(from, want, &mut self.chunk);
        }
        self.pos = 0;
        self.next_fill = if self.chunk.len() < want {
            0
        } else {
            (want * 4).min(MAX_CHUNK)
        };
    }

    fn advance(&mut self) {
        self.pos += 1;
        if self.pos < self.chunk.len() || self.next_fill == 0 {
            return;
        }
        let last = MemKey::from_ikey(self.chunk.key(self.chunk.len() - 1));
        let want = self.next_fill;
        self.fill(Bound::Excluded(&last), want);
    }
}

impl InternalIterator for MemIter {
    fn seek(&mut self, target: &[u8]) {
        self.forward = true;
        self.fill(Bound::Included(&MemKey::from_ikey(target)), FIRST_CHUNK);
    }

    fn seek_to_first(&mut self) {
        self.forward = true;
        self.fill(Bound::Unbounded, FIRST_CHUNK);
    }

    fn seek_for_prev(&mut self, target: &[u8]) {
        self.forward = false;
        self.fill(Bound::Included(&MemKey::from_ikey(target)), FIRST_CHUNK);
    }

    fn seek_to_last(&mut self) {
        self.forward = false;
        self.fill(Bound::Unbounded, FIRST_CHUNK);
    }

    fn next(&mut self) {
        self.advance();
    }

    fn prev(&mut self) {
        self.advance();
    }

    fn valid(&self) -> bool {
        self.pos < self.chunk.len()
    }

    fn key(&self) -> &[u8] {
        self.chunk.key(self.pos)
    }

    fn value(&self) -> Bytes {
        self.chunk.value(self.pos)
    }

    fn status(&self) -> Result<()> {
        Ok(())
    }
}
