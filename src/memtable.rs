//! The memtable: a lock-free skiplist (crossbeam-skiplist `SkipMap`) of
//! internal keys to values, with its memory accounted in bytes.
//!
//! Concurrency: any number of readers and writers may use a memtable at
//! once. In the on-disk engine only the group-commit leader inserts; once a
//! memtable is made immutable (handed to flush) nobody inserts again.
//! Values are `Bytes` slices of the write batch that carried them, so an
//! insert copies the key but not the value.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;

use crate::format::{KIND_SEEK, TRAILER_SIZE};
use crate::key;

/// Keys up to this many bytes (namespace + user key + trailer) live inside
/// the skiplist node, saving a pointer chase per comparison.
const INLINE_KEY: usize = 38;

/// Bytes charged per entry on top of key and value, measured rather than
/// summed from struct sizes: the skiplist node (header, tower, inline key
/// buffer, value handle, allocator rounding) plus, for a one-put batch, the
/// batch buffer's header and key copy and its reference-count block.
/// `cargo run --release --example engine_bench -- memtable` (16-byte keys)
/// measured 183, 155 and 167 bytes per entry beyond key and value for
/// 8-, 100- and 1000-byte values; this was 96 until 2026-12-03, which let a
/// 64 MiB write buffer hold ~81 MiB. Batches of many puts share their
/// buffer's overhead, so they are charged a little more than they use.
const ENTRY_OVERHEAD: usize = 168;

/// An encoded internal key stored in the skiplist, ordered by [`key::compare`].
#[derive(Clone)]
pub(crate) enum MemKey {
    Inline { len: u8, buf: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl MemKey {
    /// Builds `ukey | trailer`.
    pub(crate) fn new(ukey: &[u8], trailer: u64) -> MemKey {
        let len = ukey.len() + TRAILER_SIZE;
        if len <= INLINE_KEY {
            let mut buf = [0u8; INLINE_KEY];
            let (u, rest) = buf.split_at_mut(ukey.len());
            u.copy_from_slice(ukey);
            if let Some(t) = rest.get_mut(..TRAILER_SIZE) {
                t.copy_from_slice(&trailer.to_le_bytes());
            }
            MemKey::Inline {
                len: len as u8,
                buf,
            }
        } else {
            let mut v = Vec::with_capacity(len);
            v.extend_from_slice(ukey);
            v.extend_from_slice(&trailer.to_le_bytes());
            MemKey::Heap(v.into_boxed_slice())
        }
    }

    /// Wraps an already encoded internal key.
    pub(crate) fn from_ikey(ikey: &[u8]) -> MemKey {
        match key::split(ikey) {
            Some((ukey, trailer)) => MemKey::new(ukey, trailer),
            None => MemKey::Heap(ikey.into()),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            MemKey::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            MemKey::Heap(b) => b,
        }
    }
}

impl PartialEq for MemKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for MemKey {}

impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MemKey {
    fn cmp(&self, other: &Self) -> Ordering {
        key::compare(self.as_bytes(), other.as_bytes())
    }
}

impl std::fmt::Debug for MemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemKey({:?})", self.as_bytes())
    }
}

/// A handle on one skiplist entry.
pub(crate) type MemEntry<'a> = crossbeam_skiplist::map::Entry<'a, MemKey, Bytes>;

/// Bytes charged for an entry.
fn charge(ikey_len: usize, value_len: usize) -> usize {
    ikey_len + value_len + ENTRY_OVERHEAD
}

/// One version found by a point lookup.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) trailer: u64,
    pub(crate) value: Bytes,
}

/// A batch of consecutive entries copied out of the skiplist, so iterators
/// hold no borrow of it between calls.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    keys: Vec<u8>,
    ends: Vec<usize>,
    values: Vec<Bytes>,
}

impl Chunk {
    pub(crate) fn clear(&mut self) {
        self.keys.clear();
        self.ends.clear();
        self.values.clear();
    }

    fn push(&mut self, ikey: &[u8], value: &Bytes) {
        self.keys.extend_from_slice(ikey);
        self.ends.push(self.keys.len());
        self.values.push(value.clone());
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).copied().unwrap_or(0)
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.keys.get(start..end).unwrap_or_default()
    }

    pub(crate) fn value(&self, i: usize) -> Bytes {
        self.values.get(i).cloned().unwrap_or_default()
    }
}

/// Memtables below this charge are not worth a trim of the heap.
const RELEASE_AFTER_BYTES: usize = 1 << 20;

/// Drops flush's reference to a memtable it has written and, if the
/// memtable was charged at least 1 MiB and `trim` is set, hands the heap
/// pages that are free by then back to the OS
/// (`Options::trim_heap_after_flush`).
///
/// Why: a memtable is hundreds of thousands of small allocations (skiplist
/// nodes, batch buffers) made on the writing threads. glibc keeps freed
/// small chunks in the arena of the thread that allocated them, and only
/// threads of that arena reuse them; a process whose reads run on other
/// threads (a pool, an async runtime) held a whole memtable of freed
/// memory on top of what those readers allocated: 172 MiB resident
/// instead of 92 MiB for 1M reads after a 1M-key load, in a test program.
/// `malloc_trim` returns every free page of every arena (about 20 ms for
/// 80 MiB freed, on the flush thread). Platforms without glibc skip it.
///
/// If a reader (an open iterator) still holds the memtable, it is freed
/// later, on that reader's thread; the trim after the next flush returns
/// those pages, since it trims whatever is free.
pub(crate) fn release(mem: std::sync::Arc<Memtable>, trim: bool) {
    let large = trim && mem.approximate_bytes() >= RELEASE_AFTER_BYTES;
    drop(mem);
    if large {
        trim_heap();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    #[expect(unsafe_code, reason = "FFI call into glibc")]
    // SAFETY: malloc_trim takes no pointers and has no preconditions; it
    // only returns free pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// A sorted in-memory table of recent writes.
#[derive(Debug)]
pub(crate) struct Memtable {
    map: SkipMap<MemKey, Bytes>,
    bytes: AtomicUsize,
    max_seq: AtomicU64,
    /// The first WAL holding this memtable's writes (0 when there is no WAL).
    wal_number: u64,
}

impl Memtable {
    pub(crate) fn new(wal_number: u64) -> Memtable {
        Memtable {
            map: SkipMap::new(),
            bytes: AtomicUsize::new(0),
            max_seq: AtomicU64::new(0),
            wal_number,
        }
    }

    pub(crate) fn wal_number(&self) -> u64 {
        self.wal_number
    }

    /// Entries held (every version and tombstone).
    pub(crate) fn entries(&self) -> usize {
        self.map.len()
    }

    /// Inserts one version. `(ukey, seq)` pairs are unique by construction.
    pub(crate) fn insert(&self, ukey: &[u8], seq: u64, kind: u8, value: Bytes) {
        drop(self.insert_entry(ukey, seq, kind, value));
    }

    /// Inserts one version and returns its entry (for `prune_below`).
    pub(crate) fn insert_entry(
        &self,
        ukey: &[u8],
        seq: u64,
        kind: u8,
        value: Bytes,
    ) -> MemEntry<'_> {
        let charge = charge(ukey.len() + TRAILER_SIZE, value.len());
        let e = self
            .map
            .insert(MemKey::new(ukey, key::trailer(seq, kind)), value);
        self.bytes.fetch_add(charge, AtomicOrdering::Relaxed);
        self.max_seq.fetch_max(seq, AtomicOrdering::Relaxed);
        e
    }

    /// Removes the versions of `entry`'s key older than it, and `entry`
    /// itself if it is a tombstone: for the in-memory mode, once no reader
    /// can need them (see `SnapshotList::none_older_than`).
    pub(crate) fn prune_below(&self, entry: &MemEntry<'_>) {
        let Some((ukey, trailer)) = key::split(entry.key().as_bytes()) else {
            return;
        };
        let mut next = entry.next();
        while let Some(older) = next {
            if key::ukey_of(older.key().as_bytes()) != ukey {
                break;
            }
            next = older.next();
            if older.remove() {
                let freed = charge(older.key().as_bytes().len(), older.value().len());
                self.bytes.fetch_sub(freed, AtomicOrdering::Relaxed);
            }
        }
        if key::kind_of(trailer) == crate::format::KIND_DELETE && entry.remove() {
            let freed = charge(entry.key().as_bytes().len(), 0);
            self.bytes.fetch_sub(freed, AtomicOrdering::Relaxed);
        }
    }

    /// The largest sequence number inserted.
    pub(crate) fn max_seq(&self) -> u64 {
        self.max_seq.load(AtomicOrdering::Relaxed)
    }

    /// The newest version of `ukey` with sequence at most `seq`.
    pub(crate) fn get(&self, ukey: &[u8], seq: u64) -> Option<Found> {
        let probe = MemKey::new(ukey, key::trailer(seq, KIND_SEEK));
        let entry = self.map.lower_bound(Bound::Included(&probe))?;
        let (found_ukey, trailer) = key::split(entry.key().as_bytes())?;
        (found_ukey == ukey).then(|| Found {
            trailer,
            value: entry.value().clone(),
        })
    }

    /// Approximate memory used, in bytes.
    pub(crate) fn approximate_bytes(&self) -> usize {
        self.bytes.load(AtomicOrdering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    // Scans step from entry to entry rather than through `SkipMap::range`:
    // in crossbeam-skiplist 0.1.3 that iterator overwrites the entry it
    // moves past without releasing its reference, so every node a scan
    // passed could never be freed after removal (the in-memory mode prunes
    // replaced versions). `Entry` releases its reference when dropped.

    /// Copies up to `max` entries at or after `from` (ascending) into `out`.
    pub(crate) fn fill_forward(&self, from: Bound<&MemKey>, max: usize, out: &mut Chunk) {
        out.clear();
        let mut at = self.map.lower_bound(from);
        while let Some(entry) = at.filter(|_| out.len() < max) {
            out.push(entry.key().as_bytes(), entry.value());
            at = entry.next();
        }
    }

    /// Copies up to `max` entries at or before `from` (descending) into `out`.
    pub(crate) fn fill_backward(&self, from: Bound<&MemKey>, max: usize, out: &mut Chunk) {
        out.clear();
        let mut at = self.map.upper_bound(from);
        while let Some(entry) = at.filter(|_| out.len() < max) {
            out.push(entry.key().as_bytes(), entry.value());
            at = entry.prev();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{KIND_DELETE, KIND_PUT};

    /// crossbeam-skiplist 0.1.3's `SkipMap::range` iterator overwrote the
    /// entry it moved past without releasing its reference, so a node a scan
    /// had passed was never freed once removed: the in-memory mode, which
    /// prunes replaced versions, leaked them with their write batches.
    /// Found by the `db_ops_model` fuzzer under LeakSanitizer.
    #[test]
    fn regression_a_version_passed_by_a_scan_then_pruned_was_never_freed() {
        use std::sync::Arc;

        struct Counted(Arc<AtomicUsize>);
        impl AsRef<[u8]> for Counted {
            fn as_ref(&self) -> &[u8] {
                b"old"
            }
        }
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, AtomicOrdering::SeqCst);
            }
        }

        let freed = Arc::new(AtomicUsize::new(0));
        let m = Memtable::new(0);
        let keys: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'k', i]).collect();
        for k in &keys {
            let old = Bytes::from_owner(Counted(Arc::clone(&freed)));
            m.insert(k, 1, KIND_PUT, old);
        }
        let mut chunk = Chunk::default();
        m.fill_forward(Bound::Unbounded, 100, &mut chunk);
        assert_eq!(chunk.len(), 10);
        m.fill_backward(Bound::Unbounded, 100, &mut chunk);
        assert_eq!(chunk.len(), 10);
        drop(chunk);
        for k in &keys {
            let newer = m.insert_entry(k, 2, KIND_PUT, Bytes::from_static(b"new"));
            m.prune_below(&newer);
        }
        // Removed nodes are freed by the epoch collector: let it run.
        for _ in 0..10_000 {
            if freed.load(AtomicOrdering::SeqCst) == keys.len() {
                break;
            }
            crossbeam_epoch::pin().flush();
            std::thread::yield_now();
        }
        assert_eq!(
            freed.load(AtomicOrdering::SeqCst),
            keys.len(),
            "every pruned version's value freed"
        );
    }

    #[test]
    fn get_sees_newest_version_at_or_below_sequence() {
        let m = Memtable::new(0);
        m.insert(b"k", 1, KIND_PUT, Bytes::from_static(b"v1"));
        m.insert(b"k", 5, KIND_PUT, Bytes::from_static(b"v5"));
        m.insert(b"k", 7, KIND_DELETE, Bytes::new());
        m.insert(b"j", 9, KIND_PUT, Bytes::from_static(b"j"));
        assert!(m.get(b"k", 0).is_none());
        assert_eq!(&m.get(b"k", 4).expect("v1").value[..], b"v1");
        assert_eq!(&m.get(b"k", 6).expect("v5").value[..], b"v5");
        assert_eq!(
            key::kind_of(m.get(b"k", 100).expect("tomb").trailer),
            KIND_DELETE
        );
        assert!(m.get(b"kk", 100).is_none());
        assert!(m.get(b"", 100).is_none());
        assert!(m.approximate_bytes() > 0);
    }

    #[test]
    fn long_keys_go_to_the_heap_and_still_order() {
        let m = Memtable::new(0);
        let long = vec![b'x'; 100];
        m.insert(&long, 1, KIND_PUT, Bytes::from_static(b"long"));
        m.insert(b"x", 2, KIND_PUT, Bytes::from_static(b"short"));
        let mut c = Chunk::default();
        m.fill_forward(Bound::Unbounded, 10, &mut c);
        assert_eq!(c.len(), 2);
        assert_eq!(key::ukey_of(c.key(0)), b"x");
        assert_eq!(key::ukey_of(c.key(1)), &long[..]);
        m.fill_backward(Bound::Unbounded, 1, &mut c);
        assert_eq!(&c.value(0)[..], b"long");
    }
}
