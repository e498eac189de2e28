//! Iteration: cursors over each source of entries, the merge of them all,
//! and the user-facing iterator that applies snapshots and tombstones.
//!
//! Every source is an [`InternalIterator`] over internal keys. An iterator
//! is driven in one direction only, fixed by how it was positioned: forward
//! (`seek`, `seek_to_first`, then `next`) or backward (`seek_for_prev`,
//! `seek_to_last`, then `prev`). The user iterator keeps one merged cursor
//! per direction, which keeps each cursor simple.

mod level;
mod mem;
mod merge;
mod user;

use bytes::Bytes;

use crate::error::Result;

pub(crate) use level::LevelIter;
pub(crate) use mem::MemIter;
pub(crate) use merge::MergingIterator;
pub use user::Iter;
pub(crate) use user::{Bounds, IterState};

/// A cursor over entries in internal-key order.
pub(crate) trait InternalIterator: Send {
    /// Forward mode: the first entry with key >= `target`.
    fn seek(&mut self, target: &[u8]);
    /// Forward mode: the first entry.
    fn seek_to_first(&mut self);
    /// Backward mode: the last entry with key <= `target`.
    fn seek_for_prev(&mut self, target: &[u8]);
    /// Backward mode: the last entry.
    fn seek_to_last(&mut self);
    /// Forward mode: the following entry.
    fn next(&mut self);
    /// Backward mode: the preceding entry.
    fn prev(&mut self);
    /// True while positioned at an entry.
    fn valid(&self) -> bool;
    /// The current internal key; only while valid.
    fn key(&self) -> &[u8];
    /// The current value; only while valid.
    fn value(&self) -> Bytes;
    /// The error that stopped the cursor, if any.
    fn status(&self) -> Result<()>;
}
