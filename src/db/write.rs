//! The write path: group commit.
//!
//! Writers queue their batches (`queue.rs`). One of them, the *leader*,
//! takes the whole queue (up to `MAX_GROUP_BYTES`), assigns sequence numbers
//! in queue order, appends every batch to the WAL as one record each in a
//! single write, issues one fdatasync if any batch asked for
//! `Durability::Sync`, inserts them into the memtable, publishes the new
//! sequence and wakes the group. Queued async writers are led by a
//! dedicated commit thread so no async task ever waits in fdatasync
//! (`write_async.rs`: which async writes commit on their own thread). A thread that
//! finds no leader, nobody queued and no synced writers expected back
//! (below) commits its own batch directly, as a group of one, without a
//! queue entry (`commit_alone`).
//!
//! Gathering (`Options::gather_synced_writers`): the synced writer threads
//! of a group usually come straight back with their next write. Left alone
//! they would split between the group being formed and the next one, so
//! the next group's leader, if it writes synced, holds leadership asleep
//! (the *gatherer*) until as many synced threads have queued again as the
//! group released: the last of them takes the leadership over and leads
//! at once. The wait is bounded by about two recent fdatasyncs (at most
//! 1 ms), measured from the release; after that the gatherer leads
//! whoever is queued. Its timer still fires, usually during the next
//! group's fdatasync, where it finds it has nothing to do. Waits that run
//! out make the next releases skip gathering (1, 2, 4, ... up to 64 of
//! them) until one completes. Only synced threads gather or are counted;
//! buffered and async writers that queue behind a gatherer wait with it.
//!
//! Concurrency: `DbInner::writer` is held by the leader while it appends;
//! it guards the WAL, the last assigned sequence and memtable switches.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smallvec::SmallVec;

use super::queue::{Pending, QueueState, Slot, complete};
use super::request::{Committed, StateView, WriteRequest};
use super::{DbInner, SuperVersion};
use crate::batch::WriteBatch;
use crate::compaction::Pressure;
use crate::error::{Error, Result};
use crate::format::{LOG_KIND_WAL, wal_name};
use crate::fs::WritableFile;
use crate::key;
use crate::memtable::Memtable;
use crate::options::Durability;
use crate::wal::LogWriter;

/// A group stops growing past this many bytes of batches.
const MAX_GROUP_BYTES: usize = 1 << 20;

/// A request the leader accepted: its place in the group, the batch to
/// write and the ops it refused.
type Accepted = (usize, WriteBatch, Vec<(usize, Error)>);

/// Each request's outcome, in group order. Inline for the common group of
/// one, which then allocates nothing for its bookkeeping.
pub(super) type Outcomes = SmallVec<[Result<Committed>; 1]>;

/// What only the commit leader touches.
#[derive(Debug)]
pub(crate) struct WriterState {
    pub(crate) wal: Option<LogWriter>,
    pub(crate) wal_number: u64,
    /// The last sequence number assigned.
    pub(crate) last_seq: u64,
    /// Encoding buffer, reused across groups.
    buf: Vec<u8>,
    ukey: Vec<u8>,
}

impl WriterState {
    pub(crate) fn new(wal: Option<LogWriter>, wal_number: u64, last_seq: u64) -> Self {
        WriterState {
            wal,
            wal_number,
            last_seq,
            buf: Vec::new(),
            ukey: Vec::new(),
        }
    }
}

impl DbInner {
    /// Refuses a write before it queues: a closed or poisoned database, or
    /// an all-or-nothing batch holding an op over a size limit.
    pub(super) fn validate(&self, req: &WriteRequest) -> Result<()> {
        if !req.best_effort
            && let Some((_, e)) = req.batch.invalid().first()
        {
            return Err(e.clone());
        }
        self.check_open()?;
        if let Some(e) = self.poison_error() {
            return Err(e);
        }
        Ok(())
    }

    /// True if there is nothing to write and nothing to check.
    pub(super) fn is_noop(req: &WriteRequest) -> bool {
        req.batch.count() == 0 && req.batch.invalid().is_empty() && req.prepare.is_none()
    }

    /// Commits `batch`; returns the sequence number of its last operation.
    pub(crate) fn write(
        self: &Arc<Self>,
        batch: WriteBatch,
        durability: Durability,
    ) -> Result<u64> {
        self.submit(WriteRequest::new(batch, durability))
            .map(|c| c.last_seq)
    }

    /// Commits a request and waits for it.
    pub(crate) fn submit(self: &Arc<Self>, req: WriteRequest) -> Result<Committed> {
        self.validate(&req)?;
        if Self::is_noop(&req) {
            return Ok(Committed {
                last_seq: self.visible_seq.load(Ordering::Acquire),
                rejected: Vec::new(),
            });
        }
        if self.in_memory {
            let committed = self.write_in_memory(req);
            self.sweep_expired();
            return committed;
        }
        let synced = req.durability == Durability::Sync;
        let (p, role) = {
            let mut q = self.queue.state.lock();
            if q.shutdown {
                return Err(Error::Closed);
            }
            let more = if synced { self.returned(&mut q) } else { None };
            if !q.leader_active && q.pending.is_empty() && more.is_none() {
                q.leader_active = true;
                drop(q);
                return self.commit_alone(req);
            }
            let p = Pending::new(req, false);
            q.pending.push_back(Arc::clone(&p));
            let role = if !q.leader_active {
                q.leader_active = true;
                match more {
                    Some(until) => {
                        q.gatherer = Some(Arc::clone(&p));
                        Role::Gather(until)
                    }
                    None => Role::Lead,
                }
            } else if synced && more.is_none() && q.gatherer.take().is_some() {
                // The last writer a gatherer waited for (or one arriving
                // after its wait ran out) is running already: it leads
                // the group, the gatherer's write included.
                Role::Lead
            } else {
                Role::Follow
            };
            (p, role)
        };
        match role {
            Role::Lead => self.lead(Some(&p)),
            Role::Gather(until) => self.gather_then_lead(&p, until),
            Role::Follow => {}
        }
        loop {
            let mut s = p.slot.lock();
            match std::mem::replace(&mut s.0, Slot::Waiting) {
                Slot::Done(r) => {
                    drop(s);
                    p.pass_wake_on();
                    return r;
                }
                Slot::Promoted => {
                    drop(s);
                    let gather = if synced {
                        self.become_gatherer(&p)
                    } else {
                        None
                    };
                    match gather {
                        Some(until) => self.gather_then_lead(&p, until),
                        None => self.lead(Some(&p)),
                    }
                }
                Slot::Waiting => p.cv.wait(&mut s),
            }
        }
    }

    /// A promoted writer: waits for returning writers instead of leading
    /// at once, if any are expected.
    fn become_gatherer(&self, p: &Arc<Pending>) -> Option<Instant> {
        let mut q = self.queue.state.lock();
        if q.returning == 0 {
            return None;
        }
        match q.gather_until {
            Some(until) if Instant::now() < until => {
                q.gatherer = Some(Arc::clone(p));
                Some(until)
            }
            _ => {
                q.gather_missed();
                None
            }
        }
    }

    /// Holds leadership asleep until the last expected writer takes it
    /// over (then that writer's group completes this one's write) or
    /// `until` passes (then this writer leads whoever is queued).
    fn gather_then_lead(&self, p: &Arc<Pending>, until: Instant) {
        {
            let mut s = p.slot.lock();
            loop {
                if !matches!(s.0, Slot::Waiting) {
                    return;
                }
                if p.cv.wait_until(&mut s, until).timed_out() {
                    break;
                }
            }
        }
        let mine = {
            let mut q = self.queue.state.lock();
            if q.gatherer.as_ref().is_some_and(|g| Arc::ptr_eq(g, p)) {
                q.gatherer = None;
                q.gather_missed();
                true
            } else {
                false
            }
        };
        if mine {
            self.lead(Some(p));
        }
    }

    /// Commits one request as leader of a group of one: the caller found no
    /// leader, nobody queued and no synced writers expected back, and took
    /// leadership. The common case of a
    /// single writer: no queue entry to allocate, fill and wake.
    fn commit_alone(&self, mut req: WriteRequest) -> Result<Committed> {
        // Writers that queued meanwhile get the next group.
        let _lead = HandOver(self);
        let mut ws = self.writer.lock();
        self.commit_one(&mut ws, &mut req, Room::MayWait)
    }

    /// `commit_guarded` for a group of one request.
    pub(super) fn commit_one(
        &self,
        ws: &mut WriterState,
        req: &mut WriteRequest,
        room: Room,
    ) -> Result<Committed> {
        self.commit_guarded(ws, std::slice::from_mut(req), room)
            .and_then(|mut each| each.pop().unwrap_or(Err(Error::Closed)))
    }

    /// Leads groups: takes the queue, appends it, syncs it, publishes it and
    /// wakes its writers. A writer thread leads one group and hands over to
    /// the next queued writer; the commit thread leads until the queue is
    /// empty.
    /// `me` is the leading writer's own request (`None` for the commit thread).
    pub(super) fn lead(&self, me: Option<&Arc<Pending>>) {
        let committer = me.is_none();
        loop {
            let group = self.take_group();
            if group.is_empty() {
                let mut q = self.queue.state.lock();
                if q.pending.is_empty() {
                    q.leader_active = false;
                    return;
                }
                continue;
            }
            let mut requests = Vec::with_capacity(group.len());
            let mut synced_threads = 0;
            for p in &group {
                if let Some(r) = p.request.lock().take() {
                    if !p.is_async && r.durability == Durability::Sync {
                        synced_threads += 1;
                    }
                    requests.push(r);
                }
            }
            let outcome = {
                let mut ws = self.writer.lock();
                self.commit_guarded(&mut ws, &mut requests, Room::MayWait)
            };
            if outcome.is_ok() {
                self.released(synced_threads);
            }
            complete(&group, outcome, me);
            if !self.hand_over(committer) {
                return;
            }
        }
    }

    /// Counts an arriving writer thread against those the last synced
    /// group released. If more of them are expected, returns until when a
    /// leader should wait for them.
    fn returned(&self, q: &mut QueueState) -> Option<Instant> {
        if q.returning == 0 {
            return None;
        }
        match q.gather_until {
            Some(until) if Instant::now() < until => {
                q.returning -= 1;
                if q.returning > 0 {
                    return Some(until);
                }
                // All back in time: gathering pays here.
                q.gather_backoff = 0;
                None
            }
            _ => {
                q.gather_missed();
                None
            }
        }
    }

    /// A group with `n` synced writer threads was committed and is about
    /// to be woken: each is expected back within about two fdatasyncs'
    /// time, unless earlier waits ran out.
    fn released(&self, n: usize) {
        if !self.opts.gather_synced_writers || n < 2 {
            return;
        }
        let window = self.queue.gather_window();
        if window.is_zero() {
            return;
        }
        let mut q = self.queue.state.lock();
        if q.gather_skip > 0 {
            q.gather_skip -= 1;
            q.returning = 0;
            return;
        }
        q.returning = n;
        q.gather_until = Some(Instant::now() + window);
    }

    fn take_group(&self) -> Vec<Arc<Pending>> {
        let mut q = self.queue.state.lock();
        let mut group = Vec::new();
        let mut bytes = 0;
        while let Some(p) = q.pending.front() {
            let size = p.request.lock().as_ref().map_or(0, |r| r.batch.rep().len());
            if !group.is_empty() && bytes + size > MAX_GROUP_BYTES {
                break;
            }
            bytes += size;
            group.extend(q.pending.pop_front());
        }
        group
    }

    /// Passes leadership to the next queued writer (or the commit thread
    /// for async writers), unless `keep` and writers are queued. Returns
    /// true if the caller should lead again.
    pub(super) fn hand_over(&self, keep: bool) -> bool {
        let mut q = self.queue.state.lock();
        match q.pending.front() {
            None => {
                q.leader_active = false;
                false
            }
            Some(_) if keep => true,
            Some(head) if head.is_async => {
                q.wake_committer = true;
                self.queue.committer_cv.notify_one();
                false
            }
            Some(head) => {
                let head = Arc::clone(head);
                drop(q);
                head.promote();
                false
            }
        }
    }

    /// `commit_locked`, with a panic inside it (a `FileSystem`
    /// implementation's, or an engine bug) turned into an error: the group
    /// fails, the database turns read-only (the WAL's tail is unknown), and
    /// the leader goes on to wake its writers and hand over, instead of
    /// unwinding with leadership held, which would leave every later writer
    /// waiting forever.
    fn commit_guarded(
        &self,
        ws: &mut WriterState,
        requests: &mut [WriteRequest],
        room: Room,
    ) -> Result<Outcomes> {
        let run = std::panic::AssertUnwindSafe(|| self.commit_locked(ws, requests, room));
        std::panic::catch_unwind(run).unwrap_or_else(|payload| {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            let e = Error::from(std::io::Error::other(format!(
                "panicked while committing a write group: {what}"
            )));
            self.set_poison(&e);
            Err(e)
        })
    }

    /// With the writer lock held: evaluates each request against the
    /// latest state (if any needs it), makes room, numbers the accepted
    /// batches, appends them to the WAL in one write (and one fdatasync if
    /// any asked), inserts them into the memtable and publishes them.
    /// Returns each request's outcome; `Err` if the whole group failed.
    fn commit_locked(
        &self,
        ws: &mut WriterState,
        requests: &mut [WriteRequest],
        room: Room,
    ) -> Result<Outcomes> {
        self.check_open()?;
        if let Some(e) = self.poison_error() {
            return Err(e);
        }
        let stateful = requests.iter().any(|r| r.needs_state(self));
        let mut view = stateful.then(|| StateView::new(self));
        let mut results: SmallVec<[Option<Result<Committed>>; 1]> =
            SmallVec::with_capacity(requests.len());
        let mut accepted: SmallVec<[Accepted; 1]> = SmallVec::new();
        let mut sync = false;
        for (i, req) in requests.iter_mut().enumerate() {
            let evaluated = match &mut view {
                Some(v) => self.evaluate(v, req),
                None => self.evaluate_plain(req),
            };
            match evaluated {
                Ok((batch, rejected)) if batch.count() > 0 => {
                    sync |= req.durability == Durability::Sync;
                    accepted.push((i, batch, rejected));
                    results.push(None);
                }
                Ok((_, rejected)) => results.push(Some(Ok(Committed {
                    last_seq: ws.last_seq,
                    rejected,
                }))),
                Err(e) => results.push(Some(Err(e))),
            }
        }
        drop(view);
        let bytes: usize = accepted.iter().map(|(_, b, _)| b.rep().len()).sum();
        if !accepted.is_empty() && room == Room::MayWait {
            self.make_room(ws, bytes)?;
        }
        let mut seq = ws.last_seq;
        for (_, b, _) in &mut accepted {
            b.set_sequence(seq + 1);
            seq += u64::from(b.count());
        }
        if let Some(wal) = &mut ws.wal
            && !accepted.is_empty()
        {
            ws.buf.clear();
            for (_, b, _) in &accepted {
                wal.encode_record(b.rep(), &mut ws.buf);
            }
            let started = sync.then(Instant::now);
            let appended = if sync {
                wal.append_and_sync(&ws.buf)
            } else {
                wal.append(&ws.buf)
            };
            if let Err(e) = appended {
                // The WAL's tail, or what of it is durable, is now unknown:
                // nothing more may follow it.
                self.set_poison(&e);
                return Err(e);
            }
            if let Some(started) = started {
                self.queue.sync_took(started.elapsed());
                self.stats.wal_syncs.fetch_add(1, Ordering::Relaxed);
            }
            self.stats
                .wal_bytes
                .fetch_add(ws.buf.len() as u64, Ordering::Relaxed);
        }
        let mem = Arc::clone(&self.super_version.load().mem);
        let mut events = Vec::new();
        for (i, b, rejected) in accepted {
            let rep = Bytes::from(b.into_rep());
            let first = ws.last_seq + 1;
            insert_batch(&mem, &rep, first, &mut ws.ukey);
            ws.last_seq += u64::from(read_count(&rep));
            if self.watchers.active() {
                events.push((rep, first));
            }
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(Ok(Committed {
                    last_seq: ws.last_seq,
                    rejected,
                }));
            }
        }
        debug_assert_eq!(ws.last_seq, seq);
        self.stats
            .user_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.stats
            .writes
            .fetch_add(results.len() as u64, Ordering::Relaxed);
        self.visible_seq.store(seq, Ordering::Release);
        for (rep, first) in events {
            self.watchers.publish(&rep, first);
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(Error::Closed)))
            .collect())
    }

    /// Makes sure the memtable has room, switching to a new one (and a new
    /// WAL) when it is full, and applies backpressure while flush or
    /// compaction lag behind.
    fn make_room(&self, ws: &mut WriterState, bytes: usize) -> Result<()> {
        if self.in_memory {
            return Ok(());
        }
        let mut stall_started: Option<Instant> = None;
        let mut delayed = false;
        let result = loop {
            self.check_open()?;
            if let Some(e) = self.poison_error() {
                break Err(e);
            }
            let sv = self.super_version.load_full();
            match self.write_pressure(&sv, bytes) {
                Pressure::Stop => {
                    stall_started.get_or_insert_with(Instant::now);
                    self.bg.wait_for_change(Duration::from_millis(100));
                    continue;
                }
                Pressure::Delay(d) if !delayed => {
                    delayed = true;
                    self.delay_write(d);
                }
                _ => {}
            }
            if sv.mem.approximate_bytes() < self.opts.write_buffer_size {
                break Ok(());
            }
            if sv.imm.len() + 1 >= self.opts.max_write_buffers {
                stall_started.get_or_insert_with(Instant::now);
                self.bg.wait_for_change(Duration::from_millis(100));
                continue;
            }
            if let Err(e) = self.switch_memtable(ws) {
                self.set_poison(&e);
                break Err(e);
            }
        };
        if let Some(t) = stall_started {
            self.stats.add_stall(t.elapsed());
        }
        result
    }

    /// Accumulates small delays and sleeps once they add up to a
    /// millisecond, so slowing down costs no busy waiting.
    fn delay_write(&self, d: Duration) {
        let owed = {
            let mut debt = self.write_debt.lock();
            *debt += d;
            if *debt < Duration::from_millis(1) {
                return;
            }
            std::mem::take(&mut *debt)
        };
        std::thread::sleep(owed);
        self.stats.add_stall(owed);
    }

    /// Freezes the active memtable and starts a new one with a new WAL.
    pub(crate) fn switch_memtable(&self, ws: &mut WriterState) -> Result<()> {
        let Some(versions) = &self.versions else {
            return Ok(());
        };
        // The old WAL must be durable before anything lands in the new one,
        // or a power loss could keep a later write and lose an earlier one.
        if let Some(wal) = &ws.wal {
            wal.sync()?;
        }
        let number = versions.lock().new_file_number();
        let path = self.dir.join(wal_name(number));
        let file = self.fs.create(&path)?;
        self.reserve_wal(file.as_ref())?;
        let wal = LogWriter::new(Arc::clone(&file), number, LOG_KIND_WAL)?;
        self.fs.sync_dir(&self.dir)?;
        ws.wal = Some(wal);
        ws.wal_number = number;
        *self.wal_file.lock() = Some(file);
        let fresh = Arc::new(Memtable::new(number));
        self.update_super_version(|sv| SuperVersion {
            mem: fresh,
            imm: std::iter::once(Arc::clone(&sv.mem))
                .chain(sv.imm.iter().cloned())
                .collect(),
            version: Arc::clone(&sv.version),
        });
        self.bg.notify_all();
        Ok(())
    }

    /// Reserves space for a new WAL: about what a memtable's worth of
    /// writes takes, capped so small databases do not hold large files;
    /// mapped for appends unless `Options::wal_mmap(false)`.
    pub(crate) fn reserve_wal(&self, file: &dyn WritableFile) -> Result<()> {
        let len = (self.opts.write_buffer_size as u64).min(64 << 20);
        if self.opts.wal_mmap {
            file.preallocate_mapped(len)
        } else {
            file.preallocate(len)
        }
    }

    /// Flushes the active memtable (if it holds anything) and waits until
    /// every immutable memtable is in a table.
    pub(crate) fn flush_and_wait(&self) -> Result<()> {
        self.check_open()?;
        if self.in_memory {
            return Ok(());
        }
        if let Some(e) = self.poison_error() {
            return Err(e);
        }
        {
            let mut ws = self.writer.lock();
            if !self.super_version.load().mem.is_empty()
                && let Err(e) = self.switch_memtable(&mut ws)
            {
                self.set_poison(&e);
                return Err(e);
            }
        }
        self.bg.wait_until(self, |sv| sv.imm.is_empty())
    }
}

fn read_count(rep: &[u8]) -> u32 {
    crate::coding::read_u32(rep, 8).unwrap_or(0)
}

/// Inserts every op of an encoded batch, numbering them from `first`.
pub(crate) fn insert_batch(mem: &Memtable, rep: &Bytes, first: u64, ukey: &mut Vec<u8>) {
    for (seq, op) in (first..).zip(crate::batch::ops_of(rep)) {
        let Ok(op) = op else { break };
        ukey.clear();
        key::push_ukey(ukey, op.ns, op.key);
        mem.insert(ukey, seq, op.kind, rep.slice(op.value_range));
    }
}

/// Leadership taken by a writer committing a group of one, passed on
/// however it returns (a panic included), so no queued writer waits for a
/// leader that left. Declare it before the writer lock's guard, so that it
/// is dropped after it.
pub(super) struct HandOver<'a>(pub(super) &'a DbInner);

impl Drop for HandOver<'_> {
    fn drop(&mut self) {
        self.0.hand_over(false);
    }
}

/// How a group gets room in the memtable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Room {
    /// `make_room`: switch a full memtable, wait out write stalls. Any
    /// leader but an async task's.
    MayWait,
    /// Checked by the caller under the same writer lock (`has_room`), which
    /// must not wait: an async task committing on its own thread. The
    /// memtable cannot fill meanwhile; write pressure that a flush or
    /// compaction raised since the check is left to the next write.
    Checked,
}

/// What a writer does after queueing.
enum Role {
    /// Leads a group now.
    Lead,
    /// Holds leadership asleep while writers of the last synced group come
    /// back, until the given time at most.
    Gather(Instant),
    /// Waits for a leader.
    Follow,
}
