//! Change subscriptions: `watch_prefix` hands out a [`Subscriber`] that
//! receives every committed put and delete under a key prefix, in commit
//! order.
//!
//! Writers deliver events right after their group becomes visible, into
//! each matching subscriber's bounded queue. A writer never waits for a
//! subscriber: when a queue is full the event is dropped and counted, and
//! the subscriber later receives `Event::Lagged(missed)` in its place.
//!
//! Concurrency: the list of watches is behind a read-write lock (written
//! only when subscribing or unsubscribing); each watch's queue has its own
//! mutex and condvar. Delivery happens in commit order because the commit
//! leader (or, in memory mode, the writer holding its publish turn)
//! delivers before the next group can publish.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::batch::ops_of;
use crate::format::{EXPIRY_SIZE, KIND_DELETE, KIND_PUT_TTL, NS_PREFIX_SIZE};
use crate::value::Value;

/// Events a subscriber holds before it starts to lag.
pub(crate) const WATCH_CAPACITY: usize = 4096;

/// How many events a subscriber holds before it starts to lag (and
/// receives `Event::Lagged` for what it missed).
pub fn watch_capacity() -> usize {
    WATCH_CAPACITY
}

/// A change delivered to a [`Subscriber`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `key` was set to `value` by the write with sequence number `seq`.
    Put {
        /// The key (without namespace).
        key: Value,
        /// The new value.
        value: Value,
        /// The write's sequence number.
        seq: u64,
    },
    /// `key` was deleted by the write with sequence number `seq`.
    Delete {
        /// The key (without namespace).
        key: Value,
        /// The write's sequence number.
        seq: u64,
    },
    /// This many events were dropped because the subscriber fell behind.
    Lagged(u64),
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<Event>,
    missed: u64,
    waker: Option<Waker>,
}

#[derive(Debug)]
struct Watch {
    /// Namespace id and key prefix, as stored keys start.
    prefix: Vec<u8>,
    queue: Mutex<Queue>,
    cv: Condvar,
    ended: AtomicBool,
}

impl Watch {
    /// Queues the event `make` builds, or, when the queue is full, only
    /// counts it as missed (without building it: a lagging subscriber
    /// costs writers next to nothing).
    fn push_with(&self, make: impl FnOnce() -> Event) {
        let mut q = self.queue.lock();
        if q.events.len() >= WATCH_CAPACITY {
            q.missed += 1;
            return;
        }
        if q.missed > 0 {
            let missed = std::mem::take(&mut q.missed);
            q.events.push_back(Event::Lagged(missed));
        }
        q.events.push_back(make());
        let waker = q.waker.take();
        drop(q);
        self.cv.notify_one();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        let waker = self.queue.lock().waker.take();
        self.cv.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn try_pop(&self, q: &mut Queue) -> Option<Event> {
        if let Some(e) = q.events.pop_front() {
            return Some(e);
        }
        (q.missed > 0).then(|| Event::Lagged(std::mem::take(&mut q.missed)))
    }
}

/// Every live subscription of one database.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    list: RwLock<Vec<Arc<Watch>>>,
    count: AtomicUsize,
}

impl Watchers {
    /// True if anyone is subscribed (checked on every commit, without locking).
    pub(crate) fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    pub(crate) fn subscribe(self: &Arc<Self>, ns: u32, prefix: &[u8]) -> Subscriber {
        let mut p = ns.to_be_bytes().to_vec();
        p.extend_from_slice(prefix);
        let watch = Arc::new(Watch {
            prefix: p,
            queue: Mutex::default(),
            cv: Condvar::new(),
            ended: AtomicBool::new(false),
        });
        self.list.write().push(Arc::clone(&watch));
        self.count.fetch_add(1, Ordering::AcqRel);
        Subscriber {
            watch,
            watchers: Arc::clone(self),
        }
    }

    fn unsubscribe(&self, watch: &Arc<Watch>) {
        let mut list = self.list.write();
        if let Some(i) = list.iter().position(|w| Arc::ptr_eq(w, watch)) {
            list.swap_remove(i);
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Delivers the ops of a committed batch (numbered from `first_seq`).
    pub(crate) fn publish(&self, rep: &Bytes, first_seq: u64) {
        let list = self.list.read();
        if list.is_empty() {
            return;
        }
        for (seq, op) in (first_seq..).zip(ops_of(rep)) {
            let Ok(op) = op else { break };
            let ns = op.ns.to_be_bytes();
            for w in list.iter() {
                let (wns, wprefix) = w.prefix.split_at(NS_PREFIX_SIZE.min(w.prefix.len()));
                if wns != ns || !op.key.starts_with(wprefix) {
                    continue;
                }
                w.push_with(|| {
                    // Both slices of the batch's buffer: no copies.
                    let key = Value::from_bytes(rep.slice_ref(op.key));
                    match op.kind {
                        KIND_DELETE => Event::Delete { key, seq },
                        kind => {
                            let skip = if kind == KIND_PUT_TTL { EXPIRY_SIZE } else { 0 };
                            let r = op.value_range.start + skip..op.value_range.end;
                            Event::Put {
                                key,
                                value: Value::from_bytes(rep.slice(r)),
                                seq,
                            }
                        }
                    }
                });
            }
        }
    }

    /// Ends every subscription (the database closed).
    pub(crate) fn end_all(&self) {
        for w in self.list.read().iter() {
            w.end();
        }
    }
}

/// A subscription to the changes under a key prefix, from
/// [`Db::watch_prefix`](crate::Db::watch_prefix).
///
/// Read it as a blocking iterator, with [`recv_timeout`](Self::recv_timeout),
/// or as an async `Stream`. Iteration ends when the database closes.
/// Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscriber {
    watch: Arc<Watch>,
    watchers: Arc<Watchers>,
}

impl Subscriber {
    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        let mut q = self.watch.queue.lock();
        loop {
            if let Some(e) = self.watch.try_pop(&mut q) {
                return Some(e);
            }
            if self.watch.ended.load(Ordering::Acquire)
                || self.watch.cv.wait_until(&mut q, deadline).timed_out()
            {
                return self.watch.try_pop(&mut q);
            }
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.watch.try_pop(&mut self.watch.queue.lock())
    }
}

impl Iterator for Subscriber {
    type Item = Event;

    /// Blocks until the next event; `None` once the database is closed.
    fn next(&mut self) -> Option<Event> {
        let mut q = self.watch.queue.lock();
        loop {
            if let Some(e) = self.watch.try_pop(&mut q) {
                return Some(e);
            }
            if self.watch.ended.load(Ordering::Acquire) {
                return None;
            }
            self.watch.cv.wait_for(&mut q, Duration::from_millis(200));
        }
    }
}

impl futures_core::Stream for Subscriber {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let mut q = self.watch.queue.lock();
        if let Some(e) = self.watch.try_pop(&mut q) {
            return Poll::Ready(Some(e));
        }
        if self.watch.ended.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        q.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.watchers.unsubscribe(&self.watch);
    }
}
