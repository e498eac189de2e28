//! In-memory mode: a hash index beside the skiplist, holding every key's
//! newest version, and deferring the skiplist's ordering work.
//!
//! The skiplist keeps keys ordered for scans and snapshots, but inserting
//! into it or reading from it walks log2(n) levels of pointers, a cache
//! miss each: on a million keys several times a hash-map probe. In memory
//! mode (one memtable, never flushed) a read of the latest state is one
//! probe here, and a put is only recorded here: it reaches the skiplist
//! when something first needs order ("ordering", `DbInner::order_pending`,
//! run by whoever pins a sequence for a snapshot or an iterator). Puts to
//! the same key in between are ordered once, newest only: no snapshot can
//! see the ones in between, because taking a snapshot orders first.
//! Tombstones are ordered at once by their writer, so the skiplist hides
//! older versions and the index can forget them.
//!
//! Rules (see `write_in_memory`): a writer records its versions here after
//! taking its sequence numbers and before publishing them, while holding
//! `mem_lock` shared; ordering holds it exclusively, so it never sees a
//! version still being written. A version replaces the recorded one only
//! if it is newer. So a reader that loaded `visible_seq` = V and then finds
//! nothing here knows no version <= V exists. A tombstone, once published,
//! is removed again (only if still the newest): a later reader then finds
//! nothing, which is the published state. Memory: one map entry (key copy,
//! inline up to 23 bytes; value handle) per live key, plus one more key copy
//! per key waiting to be ordered.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;
use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::batch::ttl_expiry;
use crate::format::KIND_PUT_TTL;
use crate::key;
use crate::memtable::Found;

/// Shards of the index; a power of two, several per core so writers on
/// different keys rarely meet.
pub(crate) const SHARDS: usize = 64;

/// Keys up to this many bytes live inside the map entry: no allocation.
const INLINE_KEY: usize = 23;

/// A user key owned by the index. Hashes and compares as the byte slice it
/// holds, so the map is probed with a plain `&[u8]`.
#[derive(Debug)]
pub(crate) enum IndexKey {
    Inline { len: u8, buf: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl IndexKey {
    fn new(ukey: &[u8]) -> IndexKey {
        let mut buf = [0u8; INLINE_KEY];
        match buf.get_mut(..ukey.len()) {
            Some(dst) => {
                dst.copy_from_slice(ukey);
                IndexKey::Inline {
                    len: ukey.len() as u8,
                    buf,
                }
            }
            None => IndexKey::Heap(ukey.into()),
        }
    }
}

impl Borrow<[u8]> for IndexKey {
    fn borrow(&self) -> &[u8] {
        match self {
            IndexKey::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            IndexKey::Heap(b) => b,
        }
    }
}

impl Hash for IndexKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Borrow::<[u8]>::borrow(self).hash(state);
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        Borrow::<[u8]>::borrow(self) == Borrow::<[u8]>::borrow(other)
    }
}

impl Eq for IndexKey {}

impl IndexKey {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.borrow()
    }
}

#[derive(Debug)]
struct Newest {
    trailer: u64,
    value: Bytes,
    /// True once this version is in the skiplist too.
    ordered: bool,
}

/// Bytes charged per map entry besides a long key and an unordered value:
/// the entry itself and the table's control byte, rounded up.
const ENTRY_OVERHEAD: usize = std::mem::size_of::<(IndexKey, Newest)>() + 8;

impl Newest {
    /// What the entry holds that nothing else does: a key too long to be
    /// inline, and the value until the skiplist shares it.
    fn charge(&self, ukey_len: usize) -> usize {
        let key = if ukey_len > INLINE_KEY { ukey_len } else { 0 };
        let value = if self.ordered { 0 } else { self.value.len() };
        ENTRY_OVERHEAD + key + value
    }
}

#[derive(Debug, Default)]
struct Shard {
    map: FxHashMap<IndexKey, Newest>,
    /// Sum of the entries' `charge`.
    bytes: usize,
    /// Keys whose newest version may not be ordered yet. A key is pushed
    /// when its entry stops being ordered; stale and repeated keys are
    /// skipped when ordering, and weeded out when the list outgrows the map.
    unordered: Vec<IndexKey>,
}

/// A version taken out of the index to be inserted into the skiplist.
#[derive(Debug)]
pub(crate) struct ToOrder {
    pub(crate) ukey: IndexKey,
    pub(crate) trailer: u64,
    pub(crate) value: Bytes,
}

#[derive(Debug)]
pub(crate) struct PointIndex {
    shards: Box<[RwLock<Shard>]>,
    /// Set (before publishing) by a writer that leaves a version unordered;
    /// cleared when an ordering takes the unordered versions.
    any_unordered: AtomicBool,
    /// Set from taking unordered versions until they are in the skiplist.
    ordering: AtomicBool,
}

impl Default for PointIndex {
    fn default() -> Self {
        PointIndex {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            any_unordered: AtomicBool::new(false),
            ordering: AtomicBool::new(false),
        }
    }
}

impl PointIndex {
    fn shard(&self, ukey: &[u8]) -> &RwLock<Shard> {
        // The map hashes again with the low bits; take the shard from the top.
        let i = (FxBuildHasher.hash_one(ukey) >> 58) as usize % SHARDS;
        &self.shards[i]
    }

    /// Records a version of `ukey` unless a newer one is recorded.
    /// `ordered`: the caller has put it in the skiplist as well.
    pub(crate) fn record(&self, ukey: &[u8], trailer: u64, value: &Bytes, ordered: bool) {
        let mut shard = self.shard(ukey).write();
        let Shard {
            map,
            bytes,
            unordered,
        } = &mut *shard;
        let newly_unordered = match map.get_mut(ukey) {
            Some(e) => {
                if key::seq_of(e.trailer) >= key::seq_of(trailer) {
                    // A newer version (from a writer that took its sequence
                    // later but recorded first) wins. An unordered put that
                    // loses now exists nowhere: until the newer one is
                    // published, a reader pinning the put's sequence must
                    // not skip ordering, which waits for that writer and
                    // pins above it.
                    if !ordered {
                        self.any_unordered.store(true, Ordering::Relaxed);
                    }
                    return;
                }
                *bytes -= e.charge(ukey.len());
                let was_ordered = e.ordered;
                e.trailer = trailer;
                e.value = value.clone();
                e.ordered = ordered;
                *bytes += e.charge(ukey.len());
                was_ordered && !ordered
            }
            None => {
                let e = Newest {
                    trailer,
                    value: value.clone(),
                    ordered,
                };
                *bytes += e.charge(ukey.len());
                map.insert(IndexKey::new(ukey), e);
                !ordered
            }
        };
        if newly_unordered {
            unordered.push(IndexKey::new(ukey));
            if unordered.len() > 2 * map.len() + 64 {
                unordered.retain(|k| map.get(k).is_some_and(|e| !e.ordered));
                unordered.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
                unordered.dedup();
            }
            // Read first: once set, writers only share the cache line.
            if !self.any_unordered.load(Ordering::Relaxed) {
                self.any_unordered.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Forgets `ukey` if its newest version is still the tombstone `trailer`.
    pub(crate) fn forget_tombstone(&self, ukey: &[u8], trailer: u64) {
        let mut shard = self.shard(ukey).write();
        let Shard {
            map,
            bytes,
            unordered,
        } = &mut *shard;
        if let Some(e) = map.get(ukey)
            && e.trailer == trailer
        {
            *bytes -= e.charge(ukey.len());
            map.remove(ukey);
            if map.is_empty() {
                // Every listed key is stale.
                *unordered = Vec::new();
            }
        }
    }

    /// Up to `max` keys of shard `i` whose newest version is a put whose
    /// time to live ended at or before `now_ms`.
    pub(crate) fn expired_in_shard(&self, i: usize, now_ms: u64, max: usize) -> Vec<Vec<u8>> {
        let Some(shard) = self.shards.get(i) else {
            return Vec::new();
        };
        shard
            .read()
            .map
            .iter()
            .filter(|(_, e)| {
                key::kind_of(e.trailer) == KIND_PUT_TTL && ttl_expiry(&e.value) <= now_ms
            })
            .take(max)
            .map(|(k, _)| k.as_bytes().to_vec())
            .collect()
    }

    /// The newest recorded version of `ukey`.
    pub(crate) fn get(&self, ukey: &[u8]) -> Option<Found> {
        let shard = self.shard(ukey).read();
        shard.map.get(ukey).map(|e| Found {
            trailer: e.trailer,
            value: e.value.clone(),
        })
    }

    /// True if every published version is in the skiplist. A reader that
    /// loaded `visible_seq` before asking sees every version published by then.
    pub(crate) fn all_ordered(&self) -> bool {
        // This order: a clear `any_unordered` stored by `take_unordered`
        // comes with `ordering` set, until `ordering_done`.
        !self.any_unordered.load(Ordering::SeqCst) && !self.ordering.load(Ordering::SeqCst)
    }

    /// Takes every unordered version (unsorted), marking it ordered.
    /// The caller must exclude writers (hold `mem_lock` exclusively) while
    /// it runs, then insert everything returned into the skiplist and call
    /// `ordering_done`; one caller at a time.
    pub(crate) fn take_unordered(&self) -> Vec<ToOrder> {
        self.ordering.store(true, Ordering::SeqCst);
        self.any_unordered.store(false, Ordering::SeqCst);
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.write();
            let Shard {
                map,
                bytes,
                unordered,
            } = &mut *shard;
            for ukey in unordered.drain(..) {
                if let Some(e) = map.get_mut(&ukey)
                    && !e.ordered
                {
                    *bytes -= e.value.len();
                    e.ordered = true;
                    out.push(ToOrder {
                        ukey,
                        trailer: e.trailer,
                        value: e.value.clone(),
                    });
                }
            }
            unordered.shrink_to(64);
        }
        out
    }

    /// Says that what `take_unordered` returned is in the skiplist.
    pub(crate) fn ordering_done(&self) {
        self.ordering.store(false, Ordering::SeqCst);
    }

    /// Approximate bytes held by the index (entries, unordered values and
    /// the lists of keys waiting to be ordered).
    pub(crate) fn approximate_bytes(&self) -> usize {
        let list_entry = std::mem::size_of::<IndexKey>();
        self.shards
            .iter()
            .map(|s| {
                let s = s.read();
                s.bytes + s.unordered.len() * list_entry
            })
            .sum()
    }

    /// Keys recorded (tombstones not yet forgotten included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().map.len()).sum()
    }

    /// Keys waiting in the unordered lists, stale ones included.
    #[cfg(test)]
    fn listed(&self) -> usize {
        self.shards.iter().map(|s| s.read().unordered.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{KIND_DELETE, KIND_PUT};

    #[test]
    fn keeps_the_newest_version_whatever_the_order_of_recording() {
        let idx = PointIndex::default();
        let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
        idx.record(b"k", key::trailer(7, KIND_PUT), &b, true);
        idx.record(b"k", key::trailer(5, KIND_PUT), &a, true);
        let f = idx.get(b"k").expect("recorded");
        assert_eq!(key::seq_of(f.trailer), 7);
        assert_eq!(f.value, b);
        assert!(idx.get(b"other").is_none());
    }

    #[test]
    fn short_and_long_keys_are_found_by_their_bytes() {
        let idx = PointIndex::default();
        let v = Bytes::from_static(b"v");
        let keys: Vec<Vec<u8>> = [0usize, 1, 22, 23, 24, 100]
            .iter()
            .map(|&n| vec![b'k'; n])
            .collect();
        for (i, k) in keys.iter().enumerate() {
            idx.record(k, key::trailer(i as u64 + 1, KIND_PUT), &v, true);
        }
        for (i, k) in keys.iter().enumerate() {
            let f = idx.get(k).expect("recorded");
            assert_eq!(
                key::seq_of(f.trailer),
                i as u64 + 1,
                "key of {} bytes",
                k.len()
            );
        }
        assert!(idx.get(&[b'k'; 25]).is_none());
        assert_eq!(idx.len(), keys.len());
    }

    #[test]
    fn a_tombstone_is_forgotten_only_while_it_is_the_newest() {
        let idx = PointIndex::default();
        let v = Bytes::from_static(b"v");
        let tomb = key::trailer(6, KIND_DELETE);
        idx.record(b"k", tomb, &Bytes::new(), true);
        idx.record(b"k", key::trailer(7, KIND_PUT), &v, true);
        idx.forget_tombstone(b"k", tomb);
        assert_eq!(idx.get(b"k").map(|f| f.value), Some(v));
        idx.record(b"j", tomb, &Bytes::new(), true);
        idx.forget_tombstone(b"j", tomb);
        assert!(idx.get(b"j").is_none());
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn unordered_versions_are_taken_once_and_newest_only() {
        let idx = PointIndex::default();
        let v = |s: &'static [u8]| Bytes::from_static(s);
        assert!(idx.all_ordered());
        idx.record(b"b", key::trailer(1, KIND_PUT), &v(b"b1"), false);
        idx.record(b"a", key::trailer(2, KIND_PUT), &v(b"a2"), false);
        idx.record(b"b", key::trailer(3, KIND_PUT), &v(b"b3"), false);
        idx.record(b"c", key::trailer(4, KIND_PUT), &v(b"c4"), true);
        assert!(!idx.all_ordered());
        let mut taken = idx.take_unordered();
        idx.ordering_done();
        taken.sort_unstable_by(|a, b| a.ukey.as_bytes().cmp(b.ukey.as_bytes()));
        let got: Vec<(&[u8], u64, &[u8])> = taken
            .iter()
            .map(|t| (t.ukey.as_bytes(), key::seq_of(t.trailer), &t.value[..]))
            .collect();
        assert_eq!(
            got,
            [(&b"a"[..], 2, &b"a2"[..]), (&b"b"[..], 3, &b"b3"[..])]
        );
        assert!(idx.all_ordered());
        assert!(idx.take_unordered().is_empty());
        // An ordered key overwritten by an unordered version is listed again.
        idx.record(b"a", key::trailer(5, KIND_PUT), &v(b"a5"), false);
        assert!(!idx.all_ordered());
        let again = idx.take_unordered();
        idx.ordering_done();
        let seqs: Vec<u64> = again.iter().map(|t| key::seq_of(t.trailer)).collect();
        assert_eq!(seqs, [5]);
    }

    #[test]
    fn a_key_deleted_and_put_again_forever_does_not_grow_the_list_without_bound() {
        let idx = PointIndex::default();
        let v = Bytes::from_static(b"v");
        // A second key in the same shard keeps its map from ever emptying
        // (which would drop the whole list), so only weeding bounds it.
        let same_shard = (0u32..)
            .map(|i| format!("other{i}").into_bytes())
            .find(|o| std::ptr::eq(idx.shard(o), idx.shard(b"k")))
            .expect("some key shares the shard");
        idx.record(&same_shard, key::trailer(1, KIND_PUT), &v, true);
        for i in 1..10_000u64 {
            idx.record(b"k", key::trailer(2 * i, KIND_PUT), &v, false);
            let tomb = key::trailer(2 * i + 1, KIND_DELETE);
            idx.record(b"k", tomb, &Bytes::new(), true);
            idx.forget_tombstone(b"k", tomb);
        }
        // Weeded once past 2 * (map size) + 64 entries.
        assert!(idx.listed() <= 2 * 2 + 64 + 1, "{} listed", idx.listed());
        assert!(idx.take_unordered().is_empty());
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn bytes_charged_return_to_the_start_once_versions_are_ordered_or_forgotten() {
        let idx = PointIndex::default();
        let long_key = vec![b'x'; 100];
        let value = Bytes::from(vec![7u8; 1000]);
        assert_eq!(idx.approximate_bytes(), 0);
        idx.record(b"short", key::trailer(1, KIND_PUT), &value, false);
        idx.record(&long_key, key::trailer(2, KIND_PUT), &value, false);
        let unordered = idx.approximate_bytes();
        assert!(unordered >= 2 * 1000 + 100, "{unordered}");
        let taken = idx.take_unordered();
        idx.ordering_done();
        assert_eq!(taken.len(), 2);
        let ordered = idx.approximate_bytes();
        assert_eq!(
            unordered - ordered,
            2 * 1000 + 2 * std::mem::size_of::<IndexKey>()
        );
        for (i, k) in [&b"short"[..], &long_key].into_iter().enumerate() {
            let tomb = key::trailer(3 + i as u64, KIND_DELETE);
            idx.record(k, tomb, &Bytes::new(), true);
            idx.forget_tombstone(k, tomb);
        }
        assert_eq!(idx.approximate_bytes(), 0);
    }
}
