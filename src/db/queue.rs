//! The group-commit queue: writers waiting to be committed, leadership
//! hand-over, and waking a finished group.
//!
//! Concurrency: `CommitQueue::state` guards the queue, the leader flag,
//! the commit thread's wake-up flag and the gathering state (who is
//! expected back, until when, and which queued writer holds leadership
//! meanwhile). Each queued write has its own slot
//! (mutex + condvar) that the leader fills and the writer waits on.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::DbInner;
use super::request::{Committed, WriteRequest};
use super::write::Outcomes;
use crate::error::{Error, Result};

/// The longest a leader waits for the writers of the last synced group.
const MAX_GATHER: Duration = Duration::from_millis(1);

/// A leader waits for them for about this many fdatasyncs (at most
/// `MAX_GATHER`). Their return (about 100 µs of wake-ups for 16 threads on
/// two vCPUs) can outlast one fdatasync of a small append (about 90 µs on
/// the same machine); a wait of two still costs less than the extra group
/// and fdatasync that the writers left out would form.
const GATHER_SYNCS: u64 = 2;

/// The most releases skipped after waits that ran out.
const MAX_GATHER_BACKOFF: u32 = 64;

pub(super) enum Slot {
    Waiting,
    /// The previous leader handed leadership to this writer.
    Promoted,
    Done(Result<Committed>),
}

/// One queued write.
pub(super) struct Pending {
    pub(super) request: Mutex<Option<WriteRequest>>,
    pub(super) is_async: bool,
    pub(super) slot: Mutex<(Slot, Option<Waker>)>,
    pub(super) cv: Condvar,
    /// Writers of the same group to wake once this one is awake: the
    /// leader wakes one writer and the wake-ups fan out as a binary tree, so
    /// waking a group costs the leader one wake-up and takes log2(n) steps.
    chain: Mutex<Vec<Arc<Pending>>>,
}

impl Pending {
    pub(super) fn new(request: WriteRequest, is_async: bool) -> Arc<Self> {
        Arc::new(Pending {
            request: Mutex::new(Some(request)),
            is_async,
            slot: Mutex::new((Slot::Waiting, None)),
            cv: Condvar::new(),
            chain: Mutex::new(Vec::new()),
        })
    }

    pub(super) fn set(&self, slot: Slot) {
        self.set_quietly(slot);
        self.wake();
    }

    /// Hands this waiting writer leadership, unless its slot holds an
    /// outcome already: `shutdown` may have failed it with `Closed` after
    /// the previous leader chose it, and that outcome must not be lost.
    pub(super) fn promote(&self) {
        {
            let mut slot = self.slot.lock();
            if !matches!(slot.0, Slot::Waiting) {
                return;
            }
            slot.0 = Slot::Promoted;
        }
        self.wake();
    }

    /// Sets the slot without waking the waiter (a chain wake follows).
    fn set_quietly(&self, slot: Slot) {
        self.slot.lock().0 = slot;
    }

    pub(super) fn wake(&self) {
        let waker = self.slot.lock().1.take();
        self.cv.notify_one();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Called by a woken writer: wakes the next one of its group.
    pub(super) fn pass_wake_on(&self) {
        let next = std::mem::take(&mut *self.chain.lock());
        for p in next {
            p.wake();
        }
    }
}

/// Records a group's outcome and wakes its writers: async ones directly,
/// threads by a chain starting at the first. `leader` (if in the group) is
/// awake already.
pub(super) fn complete(
    group: &[Arc<Pending>],
    outcome: Result<Outcomes>,
    leader: Option<&Arc<Pending>>,
) {
    let results: Outcomes = match outcome {
        Ok(each) => each,
        Err(e) => group.iter().map(|_| Err(e.clone())).collect(),
    };
    let is_leader = |p: &Arc<Pending>| leader.is_some_and(|l| Arc::ptr_eq(l, p));
    let sleepers: Vec<&Arc<Pending>> = group
        .iter()
        .filter(|p| !p.is_async && !is_leader(p))
        .collect();
    // A writer awake for another reason (a gatherer woken by its timer)
    // may see its outcome as soon as it is set and pass the wake-up on at
    // once: so the chains go in place first, and outcomes are published
    // from the last writer to the first, so that every writer below one
    // in the chain (always later in the group) has its outcome already.
    for (i, p) in sleepers.iter().enumerate() {
        let children = [2 * i + 1, 2 * i + 2];
        let mut chain = p.chain.lock();
        chain.extend(
            children
                .iter()
                .filter_map(|&c| sleepers.get(c))
                .map(|c| Arc::clone(c)),
        );
    }
    for (p, r) in group.iter().zip(results).rev() {
        if p.is_async {
            p.set(Slot::Done(r));
        } else {
            p.set_quietly(Slot::Done(r));
        }
    }
    if let Some(first) = sleepers.first() {
        first.wake();
    }
}

#[derive(Default)]
pub(super) struct QueueState {
    pub(super) pending: VecDeque<Arc<Pending>>,
    pub(super) leader_active: bool,
    /// The commit thread should take leadership.
    pub(super) wake_committer: bool,
    pub(super) shutdown: bool,
    /// How many more synced writer threads are expected back: set to the
    /// number a synced group released, counted down by each synced thread
    /// that queues (any thread, not necessarily one of those), and
    /// meaningless after `gather_until`.
    pub(super) returning: usize,
    /// Until when a leader waits for them.
    pub(super) gather_until: Option<std::time::Instant>,
    /// A queued writer holding leadership while it waits for them.
    pub(super) gatherer: Option<Arc<Pending>>,
    /// Releases that arm no gathering, after waits that ran out: doubles
    /// (up to `MAX_GATHER_BACKOFF`) with each wait that runs out and is
    /// reset by one that completes.
    pub(super) gather_backoff: u32,
    /// Releases still to skip.
    pub(super) gather_skip: u32,
}

impl QueueState {
    /// A wait for released writers ran out: gather less often.
    pub(super) fn gather_missed(&mut self) {
        self.returning = 0;
        self.gather_backoff = (self.gather_backoff * 2).clamp(1, MAX_GATHER_BACKOFF);
        self.gather_skip = self.gather_backoff;
    }
}

/// The queue of writers waiting for group commit.
#[derive(Default)]
pub(crate) struct CommitQueue {
    pub(super) state: Mutex<QueueState>,
    pub(super) committer_cv: Condvar,
    /// A moving average of the WAL's fdatasync time, in nanoseconds:
    /// how long a gathering leader may wait.
    sync_nanos: AtomicU64,
    pub(super) committer: Mutex<Option<JoinHandle<()>>>,
}

impl CommitQueue {
    /// Records one fdatasync's duration (called by the leader only).
    pub(super) fn sync_took(&self, took: Duration) {
        // Clamped, so that one stalled sync cannot hold the window at its
        // cap for many groups after.
        let sample = u64::try_from(took.min(MAX_GATHER).as_nanos()).unwrap_or(u64::MAX);
        let old = self.sync_nanos.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.sync_nanos.store(new, Ordering::Relaxed);
    }

    /// How long after a synced group is released its writers are waited
    /// for: about `GATHER_SYNCS` fdatasyncs, at most `MAX_GATHER`.
    pub(super) fn gather_window(&self) -> Duration {
        let nanos = self.sync_nanos.load(Ordering::Relaxed);
        Duration::from_nanos(nanos.saturating_mul(GATHER_SYNCS)).min(MAX_GATHER)
    }

    /// Fails every queued writer with `Error::Closed` and stops the commit thread.
    pub(crate) fn shutdown(&self) {
        let drained: Vec<_> = {
            let mut q = self.state.lock();
            q.shutdown = true;
            q.pending.drain(..).collect()
        };
        for p in drained {
            p.set(Slot::Done(Err(Error::Closed)));
        }
        self.committer_cv.notify_all();
        if let Some(h) = self.committer.lock().take()
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
    }
}

impl std::fmt::Debug for CommitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitQueue").finish_non_exhaustive()
    }
}

/// Resolves when an async write is committed.
pub(super) struct CommitFuture(pub(super) Arc<Pending>);

impl Future for CommitFuture {
    type Output = Result<Committed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Committed>> {
        let mut s = self.0.slot.lock();
        match std::mem::replace(&mut s.0, Slot::Waiting) {
            Slot::Done(r) => Poll::Ready(r),
            other => {
                s.0 = other;
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

pub(super) fn commit_thread(db: Arc<DbInner>) {
    loop {
        {
            let mut q = db.queue.state.lock();
            while !q.wake_committer && !q.shutdown {
                db.queue.committer_cv.wait(&mut q);
            }
            if q.shutdown {
                return;
            }
            q.wake_committer = false;
        }
        db.lead(None);
    }
}
