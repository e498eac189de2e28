//! The in-memory mode's write path: no WAL, so no group commit.
//!
//! A writer takes its sequence numbers with one atomic add, records its
//! versions in the point index alongside other writers, and publishes in
//! sequence order, waiting briefly for earlier writers to publish first.
//! Puts reach the (lock-free) skiplist later, when a snapshot or iterator
//! first needs order (`pin_sequence`, see point_index.rs); tombstones go
//! in at once, and their writer then prunes the versions they replaced,
//! unless a snapshot may still read them: with no flush, nothing else
//! would ever free them.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use parking_lot::RwLockWriteGuard;
use smallvec::SmallVec;

use super::DbInner;
use super::point_index::ToOrder;
use super::request::{Committed, StateView, WriteRequest};
use crate::batch::ops_of;
use crate::error::Result;
use crate::format::{KIND_DELETE, KIND_PUT_TTL};
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
        let index = self.point_index.as_ref();
        let mut ukey: SmallVec<[u8; 64]> = SmallVec::new();
        // Versions in the skiplist already: every one without an index,
        // else the tombstones.
        let mut ordered: SmallVec<[_; 4]> = SmallVec::new();
        for (seq, op) in (first..).zip(ops_of(&rep)) {
            let Ok(op) = op else { break };
            ukey.clear();
            ukey.extend_from_slice(&op.ns.to_be_bytes());
            ukey.extend_from_slice(op.key);
            let value = rep.slice(op.value_range);
            let trailer = key::trailer(seq, op.kind);
            if op.kind == KIND_PUT_TTL && !self.expiry_any_ttl.load(Ordering::Relaxed) {
                self.expiry_any_ttl.store(true, Ordering::Relaxed);
            }
            match index {
                Some(index) if op.kind != KIND_DELETE => {
                    index.record(&ukey, trailer, &value, false);
                }
                _ => {
                    let entry = mem.insert_entry(&ukey, seq, op.kind, value.clone());
                    if let Some(index) = index {
                        index.record(&ukey, trailer, &value, true);
                    }
                    ordered.push(entry);
                }
            }
        }
        // Publish in sequence order: earlier writers are mid-insert, briefly.
        wait_while(|| self.visible_seq.load(Ordering::Acquire) != first - 1);
        if self.watchers.active() {
            // Deliver before the next writer may publish: commit order.
            let _emit = self.emit_lock.lock();
            self.visible_seq.store(last, Ordering::SeqCst);
            self.watchers.publish(&rep, first);
        } else {
            self.visible_seq.store(last, Ordering::SeqCst);
        }
        if let Some(index) = index {
            // Published tombstones leave the index (the skiplist keeps them
            // while snapshots may need them).
            for e in &ordered {
                if let Some((ukey, trailer)) = key::split(e.key().as_bytes())
                    && key::kind_of(trailer) == KIND_DELETE
                {
                    index.forget_tombstone(ukey, trailer);
                }
            }
        }
        if self.snapshots.none_older_than(first) {
            for e in &ordered {
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

    /// Pins a sequence for a snapshot or an iterator. In memory mode every
    /// version it can see is ordered (in the skiplist) first.
    ///
    /// Ordering takes the waiting puts with writers held off (`mem_lock`
    /// exclusively: no version is half written, and the pin is taken at that
    /// moment), then sorts and inserts them with writers running again,
    /// newest version per key, in key order (cheaper than one at a time:
    /// neighbouring inserts walk the same warm path). One ordering runs at
    /// a time. Must not be called with `mem_lock` held.
    pub(crate) fn pin_sequence(&self) -> u64 {
        let current = || self.visible_seq.load(Ordering::Acquire);
        let seq = self.snapshots.acquire(current);
        let Some(index) = &self.point_index else {
            return seq;
        };
        // Writers flag before publishing, so with `seq` loaded first this
        // says whether everything at or below `seq` is in the skiplist.
        if index.all_ordered() {
            return seq;
        }
        self.snapshots.release(seq);
        let _one = self.ordering.lock();
        // The pin is taken with the puts, before they are inserted: while it
        // is held, a tombstone written meanwhile (sequence above the pin)
        // prunes nothing, so it stays above an older put inserted after it.
        let (pending, pin) = {
            let _exclusive = self.mem_lock.write();
            (index.take_unordered(), self.snapshots.acquire(current))
        };
        self.insert_ordered(pending);
        index.ordering_done();
        pin
    }

    /// As `pin_sequence`, for a caller that then reads with writes held off:
    /// returns the pin with `mem_lock` held exclusively, everything ordered.
    pub(crate) fn pin_exclusive(&self) -> (RwLockWriteGuard<'_, ()>, u64) {
        let _one = self.ordering.lock();
        let exclusive = self.mem_lock.write();
        let pin = self
            .snapshots
            .acquire(|| self.visible_seq.load(Ordering::Acquire));
        if let Some(index) = &self.point_index {
            self.insert_ordered(index.take_unordered());
            index.ordering_done();
        }
        (exclusive, pin)
    }

    /// Inserts what `take_unordered` returned, in key order.
    fn insert_ordered(&self, mut pending: Vec<ToOrder>) {
        pending.sort_unstable_by(|a, b| a.ukey.as_bytes().cmp(b.ukey.as_bytes()));
        let n = pending.len() as u64;
        let mem = &self.super_version.load().mem;
        for p in pending {
            let seq = key::seq_of(p.trailer);
            let entry = mem.insert_entry(p.ukey.as_bytes(), seq, key::kind_of(p.trailer), p.value);
            // Older versions of the key, unless a snapshot may read them.
            if self.snapshots.none_older_than(seq) {
                mem.prune_below(&entry);
            }
        }
        self.stats.orderings.fetch_add(1, Ordering::Relaxed);
        self.stats.ordered_entries.fetch_add(n, Ordering::Relaxed);
    }
}

/// Spins briefly, then yields, until `busy` turns false.
pub(crate) fn wait_while(busy: impl Fn() -> bool) {
    let mut spins = 0u32;
    while busy() {
        if spins < 100 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        spins += 1;
    }
}
