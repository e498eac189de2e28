//! The user-facing iterator: merges every source, shows each key's newest
//! version visible at the read's sequence, hides tombstones and expired
//! entries, and runs from both ends.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::{InternalIterator, MergingIterator};
use crate::batch::ttl_expiry;
use crate::db::SuperVersion;
use crate::error::Result;
use crate::format::{EXPIRY_SIZE, KIND_DELETE, KIND_PUT, KIND_PUT_TTL, MAX_SEQUENCE};
use crate::key;
use crate::value::Value;

/// An internal key sorting after every version of `ukey` (sequences start at 1).
fn after_all_versions(ukey: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(ukey.len() + 8);
    key::push_ikey(&mut t, ukey, 0, KIND_DELETE);
    t
}

/// What an iterator reads: a pinned super-version at one sequence number.
pub(crate) struct IterState {
    pub(crate) sv: Arc<SuperVersion>,
    pub(crate) seq: u64,
    pub(crate) now_ms: u64,
    /// Keeps `seq` pinned while the iterator lives.
    pub(crate) _pin: crate::snapshot::Snapshot,
}

/// The range of `ukey`s (namespace-prefixed keys) an iterator covers.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    pub(crate) lower: Bound<Vec<u8>>,
    pub(crate) upper: Bound<Vec<u8>>,
}

impl Bounds {
    fn below_upper(&self, ukey: &[u8]) -> bool {
        match &self.upper {
            Bound::Included(u) => ukey <= u.as_slice(),
            Bound::Excluded(u) => ukey < u.as_slice(),
            Bound::Unbounded => true,
        }
    }

    fn above_lower(&self, ukey: &[u8]) -> bool {
        match &self.lower {
            Bound::Included(l) => ukey >= l.as_slice(),
            Bound::Excluded(l) => ukey > l.as_slice(),
            Bound::Unbounded => true,
        }
    }
}

/// An iterator over `(key, value)` pairs in key byte order, from
/// [`Db::iter`](crate::Db::iter), [`Db::range`](crate::Db::range) or
/// [`Db::prefix`](crate::Db::prefix), or the same on a snapshot.
///
/// It reads a consistent view: the database as of the moment it was made
/// (or the snapshot's moment), whatever is written, flushed or compacted
/// meanwhile. Use `.rev()` to go backwards; both ends may be used at once.
/// A read error is yielded once as `Err`, then the iterator ends.
pub struct Iter {
    state: IterState,
    bounds: Bounds,
    ns_prefix_len: usize,
    front: Option<MergingIterator>,
    back: Option<MergingIterator>,
    done: bool,
    /// An error to yield before anything else (the database was closed).
    pending_error: Option<crate::error::Error>,
    /// The expiry of the entry yielded last, if it has one.
    last_expiry: Option<u64>,
}

impl Iter {
    /// An iterator that yields `err` once and ends.
    pub(crate) fn failed(state: IterState, err: crate::error::Error) -> Iter {
        let mut it = Iter::new(
            state,
            Bounds {
                lower: Bound::Unbounded,
                upper: Bound::Unbounded,
            },
        );
        it.pending_error = Some(err);
        it
    }

    pub(crate) fn new(state: IterState, bounds: Bounds) -> Iter {
        Iter {
            state,
            bounds,
            ns_prefix_len: crate::format::NS_PREFIX_SIZE,
            front: None,
            back: None,
            done: false,
            pending_error: None,
            last_expiry: None,
        }
    }

    /// The expiry (ms since the Unix epoch) of the entry yielded last, if
    /// it was written with a TTL.
    pub(crate) fn last_expiry(&self) -> Option<u64> {
        self.last_expiry
    }

    fn emit(&self, ukey: &[u8], value: Bytes) -> (Value, Value) {
        let user = ukey.get(self.ns_prefix_len..).unwrap_or_default();
        (Value::from(user), Value::from_bytes(value))
    }

    /// The value to show for a version, or `None` if it hides the key.
    fn visible(&mut self, trailer: u64, value: Bytes) -> Option<Bytes> {
        match key::kind_of(trailer) {
            KIND_PUT => {
                self.last_expiry = None;
                Some(value)
            }
            KIND_PUT_TTL if ttl_expiry(&value) > self.state.now_ms => {
                self.last_expiry = Some(ttl_expiry(&value));
                Some(value.slice(EXPIRY_SIZE.min(value.len())..))
            }
            _ => None,
        }
    }

    fn front_cursor(&mut self) -> &mut MergingIterator {
        let (state, bounds) = (&self.state, &self.bounds);
        self.front.get_or_insert_with(|| {
            let mut m = state.sv.merged();
            match &bounds.lower {
                Bound::Included(k) => m.seek(&key::seek_key(k, MAX_SEQUENCE)),
                Bound::Excluded(k) => m.seek(&after_all_versions(k)),
                Bound::Unbounded => m.seek_to_first(),
            }
            m
        })
    }

    fn back_cursor(&mut self) -> &mut MergingIterator {
        let (state, bounds) = (&self.state, &self.bounds);
        self.back.get_or_insert_with(|| {
            let mut m = state.sv.merged();
            match &bounds.upper {
                Bound::Included(k) => m.seek_for_prev(&after_all_versions(k)),
                Bound::Excluded(k) => m.seek_for_prev(&key::seek_key(k, MAX_SEQUENCE)),
                Bound::Unbounded => m.seek_to_last(),
            }
            m
        })
    }

    fn next_front(&mut self) -> Option<Result<(Value, Value)>> {
        let seq = self.state.seq;
        loop {
            let it = self.front_cursor();
            if !it.valid() {
                return it.status().err().map(Err);
            }
            let (ukey, trailer) = key::split(it.key())?;
            let ukey = ukey.to_vec();
            if key::seq_of(trailer) > seq {
                it.next();
                continue;
            }
            let value = it.value();
            // Skip the older versions of this key.
            loop {
                it.next();
                if !it.valid() || key::ukey_of(it.key()) != ukey.as_slice() {
                    break;
                }
            }
            if !self.bounds.below_upper(&ukey) {
                return None;
            }
            if let Some(v) = self.visible(trailer, value) {
                let out = self.emit(&ukey, v);
                self.bounds.lower = Bound::Excluded(ukey);
                return Some(Ok(out));
            }
        }
    }

    fn next_back_inner(&mut self) -> Option<Result<(Value, Value)>> {
        let seq = self.state.seq;
        loop {
            let it = self.back_cursor();
            if !it.valid() {
                return it.status().err().map(Err);
            }
            let ukey = key::ukey_of(it.key()).to_vec();
            // Versions arrive oldest first: keep the newest visible one.
            let mut best: Option<(u64, Bytes)> = None;
            while it.valid() {
                let Some((u, trailer)) = key::split(it.key()) else {
                    break;
                };
                if u != ukey.as_slice() {
                    break;
                }
                if key::seq_of(trailer) <= seq {
                    best = Some((trailer, it.value()));
                }
                it.prev();
            }
            if let Err(e) = it.status() {
                return Some(Err(e));
            }
            if !self.bounds.above_lower(&ukey) {
                return None;
            }
            if let Some(v) = best.and_then(|(t, v)| self.visible(t, v)) {
                let out = self.emit(&ukey, v);
                self.bounds.upper = Bound::Excluded(ukey);
                return Some(Ok(out));
            }
        }
    }
}

impl Iterator for Iter {
    type Item = Result<(Value, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending_error.take() {
            self.done = true;
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        let item = self.next_front();
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending_error.take() {
            self.done = true;
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        let item = self.next_back_inner();
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

impl std::fmt::Debug for Iter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("seq", &self.state.seq)
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}
