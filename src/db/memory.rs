//! The in-memory mode's write path: no WAL, so no group commit.
//!
//! A writer takes its sequence numbers with one atomic add, inserts into
//! the (lock-free) memtable alongside other writers, and publishes in
//! sequence order, waiting briefly for earlier writers to publish first.
//! It then prunes the versions its writes replaced, unless a snapshot may
//! still read them: with no flush, nothing else would ever free them.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use smallvec::SmallVec;

use super::DbInner;
use super::request::{Committed, StateView, WriteRequest};
use crate::batch::ops_of;
use crate::error::Result;
use crate::format::KIND_DELETE;
use crate::key;

impl DbInner {
    pub(crate) fn write_in_memory(&self, mut req: WriteRequest) -> Result<Committed> {
        // Conditional writes run alone, with every earlier write published.
        let (_shared, _exclusive, evaluated);
        if req.needs_state(self) {
            _exclusive = self.mem_lock.write();
            evaluated = self.evaluate(&mut StateView::new(self), &mut req);
        } else {
            _shared = self.mem_lock.read();
            evaluated = self.evaluate_plain(&mut req);
        }
        let (batch, rejected) = evaluated?;
        if batch.count() == 0 {
            return Ok(Committed {
                last_seq: self.visible_seq.load(Ordering::Acquire),
                rejected,
            });
        }
        let count = u64::from(batch.count());
        let first = self.next_seq.fetch_add(count, Ordering::AcqRel) + 1;
        let last = first + count - 1;
        let bytes = batch.rep().len() as u64;
        let rep = Bytes::from(batch.into_rep());
        let sv = self.super_version.load();
        let mem = &sv.mem;
        let mut ukey: SmallVec<[u8; 64]> = SmallVec::new();
        let mut entries: SmallVec<[_; 4]> = SmallVec::new();
        for (seq, op) in (first..).zip(ops_of(&rep)) {
            let Ok(op) = op else { break };
            ukey.clear();
            ukey.extend_from_slice(&op.ns.to_be_bytes());
            ukey.extend_from_slice(op.key);
            let value = rep.slice(op.value_range);
            let entry = mem.insert_entry(&ukey, seq, op.kind, value.clone());
            if let Some(index) = &self.point_index {
                index.record(&ukey, key::trailer(seq, op.kind), &value);
            }
            entries.push(entry);
        }
        // Publish in sequence order: earlier writers are mid-insert, briefly.
        let mut spins = 0u32;
        while self.visible_seq.load(Ordering::Acquire) != first - 1 {
            if spins < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            spins += 1;
        }
        if self.watchers.active() {
            // Deliver before the next writer may publish: commit order.
            let _emit = self.emit_lock.lock();
            self.visible_seq.store(last, Ordering::SeqCst);
            self.watchers.publish(&rep, first);
        } else {
            self.visible_seq.store(last, Ordering::SeqCst);
        }
        if let Some(index) = &self.point_index {
            // Published tombstones leave the index (the skiplist keeps them
            // while snapshots may need them).
            for e in &entries {
                if let Some((ukey, trailer)) = key::split(e.key().as_bytes())
                    && key::kind_of(trailer) == KIND_DELETE
                {
                    index.forget_tombstone(ukey, trailer);
                }
            }
        }
        if self.snapshots.none_older_than(first) {
            for e in &entries {
                mem.prune_below(e);
            }
        }
        self.stats.user_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        Ok(Committed {
            last_seq: last,
            rejected,
        })
    }
}
