//! Writes from async code: no task ever blocks in an fdatasync or a stall.
//!
//! A synced write (and any write that finds the queue busy, or that could
//! wait: a full memtable, write pressure, a conditional op reading the
//! tables) queues, and the dedicated commit thread leads it (`lead(None)`
//! in write.rs); its future resolves when its group is committed.
//!
//! A write that asks for no fdatasync commits on the calling thread, as a
//! group of one, when that costs no more than a copy into the WAL's page
//! cache and the memtable inserts (`commit_now`): nobody else leads or is
//! queued, the request needs no read of the current state, there is no write
//! pressure and the memtable has room. That is `make_room`'s fast path,
//! checked under the writer lock, where nobody else can fill or switch the
//! memtable; the commit then skips `make_room` (`Room::Checked`), so a
//! stall raised by a flush finishing meanwhile cannot make it wait either.
//! What is left is a copy into the WAL's page cache (which the kernel may
//! still throttle when dirty pages pile up, as for any buffered write) and
//! the memtable inserts. Handing such a write to the commit thread would
//! cost two thread wake-ups per write, many times the write itself.
//!
//! Concurrency: as in write.rs. `commit_now` takes leadership under the
//! queue lock exactly as a writer thread committing alone does, and hands it
//! over the same way after.

use std::future::Future;
use std::sync::Arc;

use super::DbInner;
use super::queue::{CommitFuture, Pending, commit_thread};
use super::request::{Committed, WriteRequest};
use super::write::{HandOver, Room, WriterState};
use crate::batch::WriteBatch;
use crate::compaction::Pressure;
use crate::error::{Error, Result};
use crate::options::Durability;

/// What an async write became before it is awaited.
enum Queued {
    /// Committed already (or refused).
    Done(Result<Committed>),
    /// Waiting for the commit thread.
    Waiting(Arc<Pending>),
}

impl DbInner {
    /// Commits a request from async code: the future resolves when it is
    /// committed (and synced, if asked); no caller thread blocks.
    pub(crate) fn submit_async(
        self: &Arc<Self>,
        req: WriteRequest,
    ) -> impl Future<Output = Result<Committed>> + Send + 'static + use<> {
        let on_disk = !self.in_memory;
        let queued = self.enqueue_async(req);
        async move {
            match queued {
                Queued::Done(r) => {
                    // Committed without waiting: a task writing in a loop
                    // would otherwise never yield, and starve the other
                    // tasks of its runtime thread. (In memory, a write is a
                    // map insert, as in any in-memory map: no yield point.)
                    if on_disk {
                        tokio::task::coop::consume_budget().await;
                    }
                    r
                }
                Queued::Waiting(p) => CommitFuture(p).await,
            }
        }
    }

    /// `write` for async code.
    pub(crate) fn write_async(
        self: &Arc<Self>,
        batch: WriteBatch,
        durability: Durability,
    ) -> impl Future<Output = Result<u64>> + Send + 'static + use<> {
        let fut = self.submit_async(WriteRequest::new(batch, durability));
        async move { fut.await.map(|c| c.last_seq) }
    }

    fn enqueue_async(self: &Arc<Self>, mut req: WriteRequest) -> Queued {
        if let Err(e) = self.validate(&req) {
            return Queued::Done(Err(e));
        }
        if self.in_memory || Self::is_noop(&req) {
            // Nothing to wait for on disk: commit inline.
            return Queued::Done(self.submit(req));
        }
        if let Some(done) = self.commit_now(&mut req) {
            return Queued::Done(done);
        }
        // Started before queueing even when a writer thread leads: that
        // leader hands an async head of the queue over to the commit thread.
        self.ensure_committer();
        let p = Pending::new(req, true);
        let mut q = self.queue.state.lock();
        if q.shutdown {
            return Queued::Done(Err(Error::Closed));
        }
        q.pending.push_back(Arc::clone(&p));
        if !q.leader_active {
            q.leader_active = true;
            q.wake_committer = true;
            drop(q);
            self.queue.committer_cv.notify_one();
        }
        Queued::Waiting(p)
    }

    /// Commits `req` on this thread if that cannot wait on the disk (see the
    /// module docs) and returns its outcome; `None` if it is to be queued.
    fn commit_now(&self, req: &mut WriteRequest) -> Option<Result<Committed>> {
        if req.durability == Durability::Sync || req.needs_state(self) {
            return None;
        }
        {
            let mut q = self.queue.state.lock();
            if q.shutdown || q.leader_active || !q.pending.is_empty() {
                return None;
            }
            q.leader_active = true;
        }
        // Declared before the writer lock's guard, so dropped after it.
        let _lead = HandOver(self);
        // Only a leader commits, so the writer lock is free unless a flush,
        // a namespace recount or close holds it: those may take a while.
        let mut ws = self.writer.try_lock()?;
        // A namespace limit may have been set since the first look.
        if req.needs_state(self) || !self.has_room(&ws, req.batch.rep().len()) {
            return None;
        }
        Some(self.commit_one(&mut ws, req, Room::Checked))
    }

    /// With the writer lock held: whether a group of `bytes` fits the
    /// memtable with no switch and no write stall (`make_room`'s fast path).
    fn has_room(&self, ws: &WriterState, bytes: usize) -> bool {
        let sv = self.super_version.load();
        ws.wal.is_some()
            && sv.mem.approximate_bytes() < self.opts.write_buffer_size
            && matches!(self.write_pressure(&sv, bytes), Pressure::None)
    }

    fn ensure_committer(self: &Arc<Self>) {
        let mut h = self.queue.committer.lock();
        if h.is_some() {
            return;
        }
        let inner = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("strata-commit".into())
            .spawn(move || commit_thread(inner));
        match spawned {
            Ok(j) => *h = Some(j),
            Err(e) => {
                let err = Error::from(e);
                self.set_poison(&err);
            }
        }
    }
}
