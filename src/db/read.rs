//! The read path: point lookups and iterators over the super-version.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use smallvec::SmallVec;

use super::DbInner;
use crate::batch::ttl_expiry;
use crate::error::Result;
use crate::format::{EXPIRY_SIZE, KIND_PUT, KIND_PUT_TTL, KIND_SEEK};
use crate::hash::hash_key;
use crate::iter::{Bounds, InternalIterator, Iter, IterState, LevelIter, MemIter, MergingIterator};
use crate::key;
use crate::memtable::{Found, Memtable};
use crate::snapshot::Snapshot;
use crate::sst::{Probe, TableIter};
use crate::value::Value;
use crate::version::Version;

/// Everything a read needs, published atomically: the active memtable, the
/// immutable ones waiting for flush (newest first) and the table files.
#[derive(Debug)]
pub(crate) struct SuperVersion {
    pub(crate) mem: Arc<Memtable>,
    pub(crate) imm: Vec<Arc<Memtable>>,
    pub(crate) version: Arc<Version>,
}

/// A cursor that only reports an error (a table that failed to open).
struct FailedIter(crate::error::Error);

impl InternalIterator for FailedIter {
    fn seek(&mut self, _: &[u8]) {}
    fn seek_to_first(&mut self) {}
    fn seek_for_prev(&mut self, _: &[u8]) {}
    fn seek_to_last(&mut self) {}
    fn next(&mut self) {}
    fn prev(&mut self) {}
    fn valid(&self) -> bool {
        false
    }
    fn key(&self) -> &[u8] {
        &[]
    }
    fn value(&self) -> Bytes {
        Bytes::new()
    }
    fn status(&self) -> Result<()> {
        Err(self.0.clone())
    }
}

impl SuperVersion {
    /// The newest version of `ukey` at or below `seq`, from any source.
    pub(crate) fn get(&self, ukey: &[u8], seq: u64) -> Result<Option<Found>> {
        match self.probe(ukey, seq, None, false)? {
            Probe::Found(f) => Ok(Some(f)),
            _ => Ok(None),
        }
    }

    /// Like `get`, with the key's hash if already known, and optionally
    /// refusing any I/O (`Probe::WouldBlock` then).
    pub(crate) fn probe(
        &self,
        ukey: &[u8],
        seq: u64,
        hash: Option<u64>,
        cached_only: bool,
    ) -> Result<Probe> {
        if let Some(f) = self.mem.get(ukey, seq) {
            return Ok(Probe::Found(f));
        }
        for m in &self.imm {
            if let Some(f) = m.get(ukey, seq) {
                return Ok(Probe::Found(f));
            }
        }
        if self.version.levels.iter().all(Vec::is_empty) {
            return Ok(Probe::Absent);
        }
        let mut target: SmallVec<[u8; 96]> = SmallVec::new();
        target.extend_from_slice(ukey);
        target.extend_from_slice(&key::trailer(seq, KIND_SEEK).to_le_bytes());
        let hash = hash.unwrap_or_else(|| hash_key(ukey));
        self.version.get(&target, ukey, hash, cached_only)
    }

    /// One cursor over every source, unpositioned.
    pub(crate) fn merged(&self) -> MergingIterator {
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
        children.push(Box::new(MemIter::new(Arc::clone(&self.mem))));
        for m in &self.imm {
            children.push(Box::new(MemIter::new(Arc::clone(m))));
        }
        for f in &self.version.levels[0] {
            match f.table() {
                Ok(t) => children.push(Box::new(TableIter::new(Arc::clone(t)))),
                Err(e) => children.push(Box::new(FailedIter(e))),
            }
        }
        for files in self.version.levels.iter().skip(1) {
            if !files.is_empty() {
                children.push(Box::new(LevelIter::new(files.clone())));
            }
        }
        MergingIterator::new(children)
    }
}

/// The value a found version shows at time `now_ms`, or `None` if it hides the key.
pub(crate) fn resolve(found: Found, now_ms: u64) -> Option<Bytes> {
    match key::kind_of(found.trailer) {
        KIND_PUT => Some(found.value),
        KIND_PUT_TTL if ttl_expiry(&found.value) > now_ms => {
            Some(found.value.slice(EXPIRY_SIZE.min(found.value.len())..))
        }
        _ => None,
    }
}

impl DbInner {
    /// Waits until the write holding sequence `seq` is published (in memory
    /// mode, whose writers publish right after recording their versions).
    fn wait_visible(&self, seq: u64) {
        super::memory::wait_while(|| self.visible_seq.load(Ordering::Acquire) < seq);
    }

    /// A super-version and a sequence that it fully covers. A memtable
    /// switch stores the new super-version (and bumps the generation)
    /// before anything in the new memtable is published, so if the
    /// generation did not move while the sequence was read, the pair holds.
    pub(crate) fn read_view(&self) -> (Arc<SuperVersion>, u64) {
        loop {
            let generation = self.sv_generation.load(Ordering::Acquire);
            let sv = self.super_version.load_full();
            let seq = self.visible_seq.load(Ordering::Acquire);
            if self.sv_generation.load(Ordering::Acquire) == generation {
                return (sv, seq);
            }
        }
    }

    /// Finds the newest version of `ukey` visible at `seq` (or now).
    pub(crate) fn get_found(&self, ukey: &[u8], seq: Option<u64>) -> Result<Option<Found>> {
        self.check_open()?;
        if let Some(seq) = seq {
            return self.super_version.load().get(ukey, seq);
        }
        if let Some(index) = &self.point_index {
            // In memory: the index holds every key's newest version.
            let seq = self.visible_seq.load(Ordering::Acquire);
            return Ok(match index.get(ukey) {
                // Nothing at or below `seq` (see point_index.rs).
                None => None,
                Some(f) => {
                    // A version still being written: its writer publishes
                    // it shortly (the older one may exist nowhere else).
                    let written = key::seq_of(f.trailer);
                    if written > seq {
                        self.wait_visible(written);
                    }
                    Some(f)
                }
            });
        }
        // As `read_view`, without taking a reference count.
        loop {
            let generation = self.sv_generation.load(Ordering::Acquire);
            let sv = self.super_version.load();
            let seq = self.visible_seq.load(Ordering::Acquire);
            if self.sv_generation.load(Ordering::Acquire) == generation {
                return sv.get(ukey, seq);
            }
        }
    }

    /// In memory mode: the values of `ukeys` at one moment, read from the
    /// point index alone, if no write was published while reading them and
    /// none was in flight (else `None`: read at a snapshot instead).
    pub(crate) fn multi_get_latest(&self, ukeys: &[Vec<u8>]) -> Option<Vec<Option<Bytes>>> {
        let index = self.point_index.as_ref()?;
        self.check_open().ok()?;
        let seq = self.visible_seq.load(Ordering::Acquire);
        let now = self.now_ms();
        let mut out = Vec::with_capacity(ukeys.len());
        for ukey in ukeys {
            match index.get(ukey) {
                Some(f) if key::seq_of(f.trailer) > seq => return None,
                found => out.push(found.and_then(|f| resolve(f, now))),
            }
        }
        (self.visible_seq.load(Ordering::Acquire) == seq).then_some(out)
    }

    pub(crate) fn get(&self, ns: u32, key: &[u8], seq: Option<u64>) -> Result<Option<Value>> {
        let mut ukey: SmallVec<[u8; 88]> = SmallVec::new();
        ukey.extend_from_slice(&ns.to_be_bytes());
        ukey.extend_from_slice(key);
        let found = self.get_found(&ukey, seq)?;
        // Only an entry with a time to live needs the clock.
        Ok(found
            .and_then(|f| match key::kind_of(f.trailer) {
                KIND_PUT => Some(f.value),
                _ => resolve(f, self.now_ms()),
            })
            .map(Value::from_bytes))
    }

    fn iter_with(self: &Arc<Self>, bounds: Bounds, seq: Option<u64>) -> Iter {
        // The iterator pins its sequence like a snapshot, so nothing it may
        // read is pruned (in memory) or compacted away under it.
        let (sv, pin) = match seq {
            Some(seq) => (
                self.super_version.load_full(),
                self.snapshots.acquire(|| seq),
            ),
            None if self.in_memory => {
                // One memtable for good: any super-version covers the pin.
                let pin = self.pin_sequence();
                (self.super_version.load_full(), pin)
            }
            None => {
                let (sv, seq) = self.read_view();
                (sv, self.snapshots.acquire(|| seq))
            }
        };
        let seq = pin;
        let pin = Snapshot {
            inner: Arc::clone(self),
            seq: pin,
        };
        let state = IterState {
            sv,
            seq,
            now_ms: self.now_ms(),
            _pin: pin,
        };
        match self.check_open() {
            Ok(()) => Iter::new(state, bounds),
            Err(e) => Iter::failed(state, e),
        }
    }

    pub(crate) fn iter_range<K: AsRef<[u8]>, R: RangeBounds<K>>(
        self: &Arc<Self>,
        ns: u32,
        range: R,
        seq: Option<u64>,
    ) -> Iter {
        let lower = match range.start_bound() {
            Bound::Included(k) => Bound::Included(key::ukey(ns, k.as_ref())),
            Bound::Excluded(k) => Bound::Excluded(key::ukey(ns, k.as_ref())),
            Bound::Unbounded => Bound::Included(key::ukey(ns, b"")),
        };
        let upper = match range.end_bound() {
            Bound::Included(k) => Bound::Included(key::ukey(ns, k.as_ref())),
            Bound::Excluded(k) => Bound::Excluded(key::ukey(ns, k.as_ref())),
            Bound::Unbounded => namespace_end(ns),
        };
        self.iter_with(Bounds { lower, upper }, seq)
    }

    pub(crate) fn iter_prefix(self: &Arc<Self>, ns: u32, prefix: &[u8], seq: Option<u64>) -> Iter {
        let start = key::ukey(ns, prefix);
        let upper = match key::prefix_successor(&start) {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        };
        self.iter_with(
            Bounds {
                lower: Bound::Included(start),
                upper,
            },
            seq,
        )
    }
}

/// The upper bound of a namespace's keys.
fn namespace_end(ns: u32) -> Bound<Vec<u8>> {
    match ns.checked_add(1) {
        Some(next) => Bound::Excluded(next.to_be_bytes().to_vec()),
        None => Bound::Unbounded,
    }
}

impl DbInner {
    /// Point lookups of many keys at one sequence, hashing them for the
    /// filters in one batch. With `cached_only`, returns `None` as soon as a
    /// lookup would need I/O (the caller retries on a blocking thread).
    pub(crate) fn multi_get(
        &self,
        ukeys: &[Vec<u8>],
        sv: &SuperVersion,
        seq: u64,
        cached_only: bool,
    ) -> Result<Option<Vec<Option<Bytes>>>> {
        self.check_open()?;
        let mut hashes = Vec::new();
        crate::hash::hash_keys_batch(ukeys, &mut hashes);
        let now = self.now_ms();
        let mut out = Vec::with_capacity(ukeys.len());
        for (ukey, hash) in ukeys.iter().zip(hashes) {
            match sv.probe(ukey, seq, Some(hash), cached_only)? {
                Probe::Found(f) => out.push(resolve(f, now)),
                Probe::Absent => out.push(None),
                Probe::WouldBlock => return Ok(None),
            }
        }
        Ok(Some(out))
    }
}
