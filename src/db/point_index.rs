//! In-memory mode: a hash index beside the skiplist, for point reads.
//!
//! The skiplist keeps keys ordered for scans, but a point read walks
//! log2(n) levels of pointers, a cache miss each: on a million keys it
//! costs several times a hash-map probe. In memory mode (one memtable,
//! never flushed) every key's newest version is also kept here, so a read
//! of the latest state is one probe. Snapshot reads still use the skiplist.
//!
//! Rules (see `write_in_memory`): a writer records its versions here after
//! inserting them into the skiplist and before publishing its sequence
//! numbers; a version replaces the recorded one only if it is newer. So a
//! reader that loaded `visible_seq` = V and then finds nothing here knows no
//! version <= V exists. A tombstone, once published, is removed again (only
//! if still the newest): a later reader then finds nothing, which is the
//! published state. Memory: one map entry (key copy, inline up to 23
//! bytes; value handle) per live key, on top of the skiplist's.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash, Hasher};

use bytes::Bytes;
use parking_lot::RwLock;
use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::key;
use crate::memtable::Found;

/// Shards of the index; a power of two, several per core so writers on
/// different keys rarely meet.
const SHARDS: usize = 64;

/// Keys up to this many bytes live inside the map entry: no allocation.
const INLINE_KEY: usize = 23;

/// A user key owned by the index. Hashes and compares as the byte slice it
/// holds, so the map is probed with a plain `&[u8]`.
#[derive(Debug)]
enum IndexKey {
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

#[derive(Debug)]
struct Newest {
    trailer: u64,
    value: Bytes,
}

#[derive(Debug)]
pub(crate) struct PointIndex {
    shards: Box<[RwLock<FxHashMap<IndexKey, Newest>>]>,
}

impl Default for PointIndex {
    fn default() -> Self {
        PointIndex {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }
}

impl PointIndex {
    fn shard(&self, ukey: &[u8]) -> &RwLock<FxHashMap<IndexKey, Newest>> {
        // The map hashes again with the low bits; take the shard from the top.
        let i = (FxBuildHasher.hash_one(ukey) >> 58) as usize % SHARDS;
        &self.shards[i]
    }

    /// Records a version of `ukey` unless a newer one is recorded.
    pub(crate) fn record(&self, ukey: &[u8], trailer: u64, value: &Bytes) {
        let mut map = self.shard(ukey).write();
        match map.get_mut(ukey) {
            Some(e) => {
                if key::seq_of(e.trailer) < key::seq_of(trailer) {
                    e.trailer = trailer;
                    e.value = value.clone();
                }
            }
            None => {
                map.insert(
                    IndexKey::new(ukey),
                    Newest {
                        trailer,
                        value: value.clone(),
                    },
                );
            }
        }
    }

    /// Forgets `ukey` if its newest version is still the tombstone `trailer`.
    pub(crate) fn forget_tombstone(&self, ukey: &[u8], trailer: u64) {
        let mut map = self.shard(ukey).write();
        if map.get(ukey).is_some_and(|e| e.trailer == trailer) {
            map.remove(ukey);
        }
    }

    /// The newest recorded version of `ukey`.
    pub(crate) fn get(&self, ukey: &[u8]) -> Option<Found> {
        let map = self.shard(ukey).read();
        map.get(ukey).map(|e| Found {
            trailer: e.trailer,
            value: e.value.clone(),
        })
    }

    /// Keys recorded (tombstones not yet forgotten included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
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
        idx.record(b"k", key::trailer(7, KIND_PUT), &b);
        idx.record(b"k", key::trailer(5, KIND_PUT), &a);
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
            idx.record(k, key::trailer(i as u64 + 1, KIND_PUT), &v);
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
        idx.record(b"k", tomb, &Bytes::new());
        idx.record(b"k", key::trailer(7, KIND_PUT), &v);
        idx.forget_tombstone(b"k", tomb);
        assert_eq!(idx.get(b"k").map(|f| f.value), Some(v));
        idx.record(b"j", tomb, &Bytes::new());
        idx.forget_tombstone(b"j", tomb);
        assert!(idx.get(b"j").is_none());
        assert_eq!(idx.len(), 1);
    }
}
