//! In-memory mode: freeing puts whose time to live has ended.
//!
//! On disk, compaction drops expired versions. In memory nothing is ever
//! compacted, so an expired put that is never overwritten or deleted would
//! hold its memory for as long as the database is open: a cache that sets
//! every key with a TTL would grow without bound. So every
//! `SWEEP_EVERY` writes, the writer that committed the last of them
//! sweeps one shard of the point index (round robin): it deletes the keys
//! whose newest version expired, with one conditional write that re-checks
//! each key under the exclusive lock, so a key written again meanwhile is
//! left alone. The tombstones then free the puts exactly as a user's
//! delete would (see `write_in_memory`: not what a snapshot older than
//! the tombstone may still read).
//!
//! A swept key reads as absent before and after, but the tombstone is a
//! write: change subscribers see it as a delete, and an optimistic
//! transaction that read the key conflicts with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::DbInner;
use super::point_index::SHARDS;
use super::request::WriteRequest;
use crate::batch::WriteBatch;
use crate::format::NS_PREFIX_SIZE;
use crate::key;
use crate::options::Durability;

/// Writes between two sweeps: 64 shards take 16k writes to cover.
const SWEEP_EVERY: u64 = 256;

/// Keys one sweep deletes at most, bounding the pause of the write that
/// runs it; the rest of the shard waits for its next turn.
const SWEEP_MAX: usize = 256;

impl DbInner {
    /// Called after each in-memory write, with no lock held: every
    /// `SWEEP_EVERY` writes, deletes the expired puts of one index shard.
    pub(crate) fn sweep_expired(&self) {
        let Some(index) = &self.point_index else {
            return;
        };
        // Until a put with a TTL is written, writers share no counter.
        if !self.expiry_any_ttl.load(Ordering::Relaxed) {
            return;
        }
        let n = self.expiry_writes.fetch_add(1, Ordering::Relaxed) + 1;
        if !n.is_multiple_of(SWEEP_EVERY) || self.expiry_sweeping.swap(true, Ordering::Acquire) {
            return;
        }
        let shard = (n / SWEEP_EVERY) as usize % SHARDS;
        let expired = index.expired_in_shard(shard, self.now_ms(), SWEEP_MAX);
        if !expired.is_empty() {
            let deleted = Arc::new(AtomicU64::new(0));
            let counted = Arc::clone(&deleted);
            let mut req = WriteRequest::new(WriteBatch::new(), Durability::Buffered);
            req.prepare = Some(Box::new(move |view, batch| {
                for ukey in &expired {
                    // Still expired (nothing newer written since the scan):
                    // the tombstone changes no read.
                    if view.value(ukey)?.is_none()
                        && let Some(user_key) = ukey.get(NS_PREFIX_SIZE..)
                    {
                        batch.delete_op(key::ns_of(ukey), user_key);
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            }));
            // Best effort: a closed database simply stops sweeping.
            if self.write_in_memory(req).is_ok() {
                let n = deleted.load(Ordering::Relaxed);
                self.stats.expired_swept.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.expiry_sweeping.store(false, Ordering::Release);
    }
}
