//! The write path: group commit.
//!
//! Writers queue their batches (`queue.rs`). One of them, the *leader*,
//! takes the whole queue (up to `MAX_GROUP_BYTES`), assigns sequence numbers
//! in queue order, appends every batch to the WAL as one record each in a
//! single write, issues one fdatasync if any batch asked for
//! `Durability::Sync`, inserts them into the memtable, publishes the new
//! sequence and wakes the group. Async writers are led by a dedicated
//! commit thread so no async task ever waits in fdatasync.
//!
//! Concurrency: `DbInner::writer` is held by the leader while it appends;
//! it guards the WAL, the last assigned sequence and memtable switches.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::queue::{CommitFuture, Pending, Slot, commit_thread, complete};
use super::{DbInner, SuperVersion};
use crate::batch::WriteBatch;
use crate::compaction::Pressure;
use crate::error::{Error, Result};
use crate::format::{LOG_KIND_WAL, wal_name};
use crate::key;
use crate::memtable::Memtable;
use crate::options::Durability;
use crate::wal::LogWriter;

/// A group stops growing past this many bytes of batches.
const MAX_GROUP_BYTES: usize = 1 << 20;

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
    fn validate(&self, batch: &WriteBatch) -> Result<()> {
        if let Some((_, e)) = batch.invalid().first() {
            return Err(e.clone());
        }
        self.check_open()?;
        if let Some(e) = self.poison_error() {
            return Err(e);
        }
        Ok(())
    }

    /// Commits `batch`; returns the sequence number of its last operation.
    pub(crate) fn write(
        self: &Arc<Self>,
        batch: WriteBatch,
        durability: Durability,
    ) -> Result<u64> {
        self.validate(&batch)?;
        if batch.count() == 0 {
            return Ok(self.visible_seq.load(Ordering::Acquire));
        }
        if self.in_memory {
            return self.write_in_memory(batch);
        }
        let p = Pending::new(batch, durability == Durability::Sync, false);
        let lead = {
            let mut q = self.queue.state.lock();
            if q.shutdown {
                return Err(Error::Closed);
            }
            q.pending.push_back(Arc::clone(&p));
            !std::mem::replace(&mut q.leader_active, true)
        };
        if lead {
            self.lead(Some(&p));
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
                    self.lead(Some(&p));
                }
                Slot::Waiting => p.cv.wait(&mut s),
            }
        }
    }

    /// Commits `batch` from async code: the returned future resolves when
    /// the batch is committed (and synced, if asked); no caller thread blocks.
    pub(crate) fn write_async(
        self: &Arc<Self>,
        batch: WriteBatch,
        durability: Durability,
    ) -> impl Future<Output = Result<u64>> + Send + 'static {
        let queued = self.enqueue_async(batch, durability);
        async move {
            match queued {
                Ok(Ok(seq)) => Ok(seq),
                Ok(Err(p)) => CommitFuture(p).await,
                Err(e) => Err(e),
            }
        }
    }

    fn enqueue_async(
        self: &Arc<Self>,
        batch: WriteBatch,
        durability: Durability,
    ) -> Result<std::result::Result<u64, Arc<Pending>>> {
        self.validate(&batch)?;
        if batch.count() == 0 {
            return Ok(Ok(self.visible_seq.load(Ordering::Acquire)));
        }
        if self.in_memory {
            // Nothing to wait for on disk: commit inline.
            return self.write(batch, durability).map(Ok);
        }
        let p = Pending::new(batch, durability == Durability::Sync, true);
        let mut q = self.queue.state.lock();
        if q.shutdown {
            return Err(Error::Closed);
        }
        q.pending.push_back(Arc::clone(&p));
        if !q.leader_active {
            q.leader_active = true;
            q.wake_committer = true;
            drop(q);
            self.ensure_committer();
            self.queue.committer_cv.notify_one();
        }
        Ok(Err(p))
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
            let batches: Vec<WriteBatch> =
                group.iter().filter_map(|p| p.batch.lock().take()).collect();
            let sync = group.iter().any(|p| p.sync);
            let outcome = {
                let mut ws = self.writer.lock();
                self.commit_locked(&mut ws, batches, sync)
            };
            complete(&group, outcome, me);
            if !self.hand_over(committer) {
                return;
            }
        }
    }

    fn take_group(&self) -> Vec<Arc<Pending>> {
        let mut q = self.queue.state.lock();
        let mut group = Vec::new();
        let mut bytes = 0;
        while let Some(p) = q.pending.front() {
            let size = p.batch.lock().as_ref().map_or(0, |b| b.rep().len());
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
    fn hand_over(&self, keep: bool) -> bool {
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
                head.set(Slot::Promoted);
                false
            }
        }
    }

    /// With the writer lock held: makes room, numbers the batches, appends
    /// them to the WAL in one write (and one fdatasync if `sync`), inserts
    /// them into the memtable and publishes them. Returns each batch's last sequence.
    fn commit_locked(
        &self,
        ws: &mut WriterState,
        mut batches: Vec<WriteBatch>,
        sync: bool,
    ) -> Result<Vec<u64>> {
        self.check_open()?;
        if let Some(e) = self.poison_error() {
            return Err(e);
        }
        let bytes: usize = batches.iter().map(|b| b.rep().len()).sum();
        self.make_room(ws, bytes)?;
        let mut seq = ws.last_seq;
        let mut lasts = Vec::with_capacity(batches.len());
        for b in &mut batches {
            b.set_sequence(seq + 1);
            seq += u64::from(b.count());
            lasts.push(seq);
        }
        if let Some(wal) = &mut ws.wal {
            ws.buf.clear();
            for b in &batches {
                wal.encode_record(b.rep(), &mut ws.buf);
            }
            if let Err(e) = wal.append(&ws.buf) {
                // The WAL's tail is now unknown: nothing more may follow it.
                self.set_poison(&e);
                return Err(e);
            }
            if sync {
                if let Err(e) = wal.sync() {
                    // After a failed fdatasync the WAL's state is unknown.
                    self.set_poison(&e);
                    return Err(e);
                }
                self.stats.wal_syncs.fetch_add(1, Ordering::Relaxed);
            }
            self.stats
                .wal_bytes
                .fetch_add(ws.buf.len() as u64, Ordering::Relaxed);
        }
        let mem = Arc::clone(&self.super_version.load().mem);
        for b in batches {
            let rep = Bytes::from(b.into_rep());
            insert_batch(&mem, &rep, ws.last_seq + 1, &mut ws.ukey);
            ws.last_seq += u64::from(read_count(&rep));
        }
        debug_assert_eq!(ws.last_seq, seq);
        self.stats
            .user_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.stats
            .writes
            .fetch_add(lasts.len() as u64, Ordering::Relaxed);
        self.visible_seq.store(seq, Ordering::Release);
        Ok(lasts)
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
        file.preallocate(self.wal_preallocation())?;
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

    /// Bytes reserved for a new WAL: about what a memtable's worth of
    /// writes takes, capped so small databases do not hold large files.
    pub(crate) fn wal_preallocation(&self) -> u64 {
        (self.opts.write_buffer_size as u64).min(64 << 20)
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
