//! [`WriteBatch`]: a list of puts and deletes applied atomically, and its
//! encoding, which is also the payload of one WAL record.
//!
//! ```text
//! batch := sequence u64 | count u32 | op*           (little-endian)
//! op    := kind u8 | namespace varint | key (varint len + bytes) | value?
//! value := varint len + bytes       (kind PUT; kind PUT_TTL: 8-byte expiry ms LE, then the value)
//! ```
#![deny(clippy::indexing_slicing)]

use std::ops::Range;
use std::path::Path;

use crate::coding::{Decoder, put_u64, put_varint, read_u32, read_u64, varint_len};
use crate::error::{Error, Result};
use crate::format::{
    BATCH_HEADER_SIZE, EXPIRY_SIZE, KIND_DELETE, KIND_PUT, KIND_PUT_TTL, MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
};

/// The namespace of keys written through `Db` directly.
pub(crate) const DEFAULT_NS: u32 = 0;

/// A group of puts and deletes that commit together: after a crash either
/// all of them are visible or none.
///
/// Operations that break a limit (a key over 64 KiB, a value over 1 GiB) are
/// remembered, not encoded; `Db::write` then rejects the whole batch.
///
/// ```
/// # fn main() -> strata_kv::Result<()> {
/// let db = strata_kv::Db::open_in_memory(strata_kv::Options::default())?;
/// let mut batch = strata_kv::WriteBatch::new();
/// batch.put(b"a", b"1");
/// batch.delete(b"b");
/// db.write(batch)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WriteBatch {
    rep: Vec<u8>,
    /// Operations added, valid or not: the index space of `invalid`.
    ops: usize,
    /// Operations left out of `rep`, by index, with the reason.
    invalid: Vec<(usize, Error)>,
    /// For each encoded op, its index among all operations added; empty
    /// while that is the identity (no op left out so far).
    positions: Vec<usize>,
    /// Encoded ops (by position in `rep`) that require their key to exist (`update`).
    must_exist: Vec<usize>,
    /// Relative TTLs to turn into absolute expiries at commit: (byte offset
    /// of the expiry field in `rep`, milliseconds).
    ttl_patches: Vec<(usize, u64)>,
}

impl Default for WriteBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::with_rep_capacity(64)
    }

    /// An empty batch with room for exactly one op in namespace `ns` on a
    /// key of `key_len` bytes: a put of `value_len` bytes (with an expiry if
    /// `ttl`), or a delete for `None`. A single-op write then allocates
    /// once, and the memtable entries that keep its buffer keep no spare
    /// bytes. Lengths over the limits get an ordinary batch (the op will be
    /// refused anyway).
    pub(crate) fn for_one_op(ns: u32, key_len: usize, value_len: Option<usize>, ttl: bool) -> Self {
        if key_len > MAX_KEY_SIZE || value_len.is_some_and(|v| v > MAX_VALUE_SIZE) {
            return Self::new();
        }
        let header = 1 + varint_len(u64::from(ns)) + varint_len(key_len as u64) + key_len;
        let value = value_len.map_or(0, |v| {
            let stored = v + if ttl { EXPIRY_SIZE } else { 0 };
            varint_len(stored as u64) + stored
        });
        Self::with_rep_capacity(BATCH_HEADER_SIZE + header + value)
    }

    fn with_rep_capacity(capacity: usize) -> Self {
        let mut rep = Vec::with_capacity(capacity);
        rep.resize(BATCH_HEADER_SIZE, 0);
        WriteBatch {
            rep,
            ops: 0,
            invalid: Vec::new(),
            positions: Vec::new(),
            must_exist: Vec::new(),
            ttl_patches: Vec::new(),
        }
    }

    /// Adds a put of `key` to `value`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.put_op(DEFAULT_NS, key.as_ref(), value.as_ref(), None);
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.delete_op(DEFAULT_NS, key.as_ref());
    }

    /// Adds a put of `key` that expires `ttl` after the batch commits.
    pub fn put_with_ttl(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: std::time::Duration,
    ) {
        self.put_ttl_op(DEFAULT_NS, key.as_ref(), value.as_ref(), ttl);
    }

    /// Adds a put of `key` that requires the key to exist when the batch
    /// commits (`Error::NotFound` otherwise).
    pub fn update(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.update_op(DEFAULT_NS, key.as_ref(), value.as_ref());
    }

    /// Adds a put in a namespace (with its default TTL, if it has one).
    pub fn put_in(
        &mut self,
        ns: &crate::Namespace,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) {
        match ns.default_ttl() {
            Some(ttl) => self.put_ttl_op(ns.id(), key.as_ref(), value.as_ref(), ttl),
            None => self.put_op(ns.id(), key.as_ref(), value.as_ref(), None),
        }
    }

    /// Adds a delete in a namespace.
    pub fn delete_in(&mut self, ns: &crate::Namespace, key: impl AsRef<[u8]>) {
        self.delete_op(ns.id(), key.as_ref());
    }

    pub(crate) fn put_ttl_op(
        &mut self,
        ns: u32,
        key: &[u8],
        value: &[u8],
        ttl: std::time::Duration,
    ) {
        let before = self.rep.len();
        let encoded = self.count();
        self.put_op(ns, key, value, Some(0));
        if self.count() > encoded {
            // The expiry field sits just before the value bytes.
            let at = self.rep.len() - value.len() - EXPIRY_SIZE;
            debug_assert!(at > before);
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            self.ttl_patches.push((at, ms));
        }
    }

    pub(crate) fn update_op(&mut self, ns: u32, key: &[u8], value: &[u8]) {
        let encoded = self.count() as usize;
        self.put_op(ns, key, value, None);
        if self.count() as usize > encoded {
            self.must_exist.push(encoded);
        }
    }

    /// Number of operations added (including any that break a limit).
    pub fn len(&self) -> usize {
        self.ops
    }

    /// Bytes of the encoded batch (roughly what it adds to the WAL).
    pub fn size_in_bytes(&self) -> usize {
        self.rep.len()
    }

    /// True if nothing was added.
    pub fn is_empty(&self) -> bool {
        self.ops == 0
    }

    /// Moves the batch out, leaving behind an empty one that holds no
    /// allocation (`mem::take` would allocate a fresh header for it).
    pub(crate) fn take(&mut self) -> WriteBatch {
        std::mem::replace(
            self,
            WriteBatch {
                rep: Vec::new(),
                ops: 0,
                invalid: Vec::new(),
                positions: Vec::new(),
                must_exist: Vec::new(),
                ttl_patches: Vec::new(),
            },
        )
    }

    /// Removes every operation.
    pub fn clear(&mut self) {
        *self = WriteBatch::new();
    }

    pub(crate) fn put_op(&mut self, ns: u32, key: &[u8], value: &[u8], expiry_ms: Option<u64>) {
        let index = self.next_index();
        if let Err(e) = check_key(key).and_then(|()| check_value(value)) {
            self.invalid.push((index, e));
            return;
        }
        let kind = if expiry_ms.is_some() {
            KIND_PUT_TTL
        } else {
            KIND_PUT
        };
        self.push_header(kind, ns, key);
        match expiry_ms {
            Some(at) => {
                put_varint(&mut self.rep, (value.len() + EXPIRY_SIZE) as u64);
                put_u64(&mut self.rep, at);
            }
            None => put_varint(&mut self.rep, value.len() as u64),
        }
        self.rep.extend_from_slice(value);
        self.bump_count();
    }

    pub(crate) fn delete_op(&mut self, ns: u32, key: &[u8]) {
        let index = self.next_index();
        if let Err(e) = check_key(key) {
            self.invalid.push((index, e));
            return;
        }
        self.push_header(KIND_DELETE, ns, key);
        self.bump_count();
    }

    fn next_index(&mut self) -> usize {
        self.ops += 1;
        self.ops - 1
    }

    fn push_header(&mut self, kind: u8, ns: u32, key: &[u8]) {
        debug_assert!(
            self.rep.len() >= BATCH_HEADER_SIZE,
            "an op added to a batch left behind by `take`"
        );
        self.rep.push(kind);
        put_varint(&mut self.rep, u64::from(ns));
        put_varint(&mut self.rep, key.len() as u64);
        self.rep.extend_from_slice(key);
    }

    fn bump_count(&mut self) {
        let (position, index) = (self.count() as usize, self.ops - 1);
        if index != position || !self.positions.is_empty() {
            // The first op after one left out: every op before it sat at its
            // own index.
            if self.positions.is_empty() {
                self.positions.extend(0..position);
            }
            self.positions.push(index);
        }
        let n = self.count() + 1;
        if let Some(c) = self.rep.get_mut(8..12) {
            c.copy_from_slice(&n.to_le_bytes());
        }
    }

    /// Number of encoded (valid) operations; each consumes one sequence number.
    pub(crate) fn count(&self) -> u32 {
        read_u32(&self.rep, 8).unwrap_or(0)
    }

    /// The operations left out, by index.
    pub(crate) fn invalid(&self) -> &[(usize, Error)] {
        &self.invalid
    }

    pub(crate) fn take_invalid(&mut self) -> Vec<(usize, Error)> {
        std::mem::take(&mut self.invalid)
    }

    /// The user-facing index of encoded op `position`.
    pub(crate) fn index_of(&self, position: usize) -> usize {
        self.positions.get(position).copied().unwrap_or(position)
    }

    /// Encoded ops that require their key to exist.
    pub(crate) fn must_exist(&self) -> &[usize] {
        &self.must_exist
    }

    /// True if committing needs a look at the current state.
    pub(crate) fn has_conditions(&self) -> bool {
        !self.must_exist.is_empty()
    }

    /// Turns relative TTLs into expiries from the time `now_ms` gives; the
    /// clock is read only if the batch has a TTL.
    pub(crate) fn stamp_expiries(&mut self, now_ms: impl FnOnce() -> u64) {
        if self.ttl_patches.is_empty() {
            return;
        }
        let now_ms = now_ms();
        for &(at, ttl) in &self.ttl_patches {
            if let Some(field) = self.rep.get_mut(at..at + EXPIRY_SIZE) {
                field.copy_from_slice(&now_ms.saturating_add(ttl).to_le_bytes());
            }
        }
    }

    /// A copy holding only the encoded ops not in `drop` (positions),
    /// keeping their user-facing indices and TTLs.
    pub(crate) fn without(&self, drop: &[usize]) -> WriteBatch {
        let mut out = WriteBatch::new();
        out.ops = self.ops;
        for (pos, op) in ops_of(&self.rep).enumerate() {
            let Ok(op) = op else { break };
            if drop.contains(&pos) {
                continue;
            }
            let ttl = self
                .ttl_patches
                .iter()
                .find(|(at, _)| op.value_range.start == *at)
                .map(|(_, ms)| *ms);
            out.push_header(op.kind, op.ns, op.key);
            if op.kind != KIND_DELETE {
                put_varint(&mut out.rep, op.value.len() as u64);
                if let Some(ms) = ttl {
                    out.ttl_patches.push((out.rep.len(), ms));
                }
                out.rep.extend_from_slice(op.value);
            }
            out.positions.push(self.index_of(pos));
            let n = out.count() + 1;
            if let Some(c) = out.rep.get_mut(8..12) {
                c.copy_from_slice(&n.to_le_bytes());
            }
        }
        out
    }

    pub(crate) fn set_sequence(&mut self, seq: u64) {
        if let Some(s) = self.rep.get_mut(0..8) {
            s.copy_from_slice(&seq.to_le_bytes());
        }
    }

    /// The encoded batch: the WAL record payload.
    pub(crate) fn rep(&self) -> &[u8] {
        &self.rep
    }

    pub(crate) fn into_rep(self) -> Vec<u8> {
        self.rep
    }
}

/// Rejects keys strata-kv cannot store.
pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY_SIZE {
        return Err(Error::invalid(format!(
            "key of {} bytes exceeds the limit of {MAX_KEY_SIZE}",
            key.len()
        )));
    }
    Ok(())
}

/// Rejects values strata-kv cannot store.
pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_SIZE {
        return Err(Error::invalid(format!(
            "value of {} bytes exceeds the limit of {MAX_VALUE_SIZE}",
            value.len()
        )));
    }
    Ok(())
}

/// One decoded operation. `value` includes the expiry prefix for `KIND_PUT_TTL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchOp<'a> {
    pub(crate) kind: u8,
    pub(crate) ns: u32,
    pub(crate) key: &'a [u8],
    pub(crate) value: &'a [u8],
    /// Where `value` lies in the batch encoding (for zero-copy slicing).
    pub(crate) value_range: Range<usize>,
}

/// Iterator over the operations of an encoded batch.
pub(crate) struct BatchOps<'a> {
    dec: Decoder<'a>,
    left: u32,
    failed: bool,
}

impl<'a> BatchOps<'a> {
    fn new(rep: &'a [u8]) -> Self {
        let mut dec = Decoder::new(rep);
        let left = match (dec.u64(), dec.u32()) {
            (Some(_), Some(n)) => n,
            _ => 0,
        };
        BatchOps {
            dec,
            left,
            failed: false,
        }
    }

    fn decode_one(&mut self) -> std::result::Result<BatchOp<'a>, (usize, &'static str)> {
        let at = self.dec.position();
        let kind = self.dec.u8().ok_or((at, "truncated op"))?;
        let ns = self.dec.varint32().ok_or((at, "bad namespace id"))?;
        let key = self.dec.len_prefixed().ok_or((at, "bad key length"))?;
        if key.len() > MAX_KEY_SIZE {
            return Err((at, "key over the size limit"));
        }
        let (value, value_range) = match kind {
            KIND_DELETE => (&[][..], 0..0),
            KIND_PUT | KIND_PUT_TTL => {
                let len = self.dec.length().ok_or((at, "bad value length"))?;
                let start = self.dec.position();
                let value = self.dec.bytes(len).ok_or((at, "truncated value"))?;
                let limit = if kind == KIND_PUT_TTL {
                    MAX_VALUE_SIZE + EXPIRY_SIZE
                } else {
                    MAX_VALUE_SIZE
                };
                if len > limit || (kind == KIND_PUT_TTL && len < EXPIRY_SIZE) {
                    return Err((at, "value length out of range"));
                }
                (value, start..start + len)
            }
            _ => return Err((at, "unknown op kind")),
        };
        Ok(BatchOp {
            kind,
            ns,
            key,
            value,
            value_range,
        })
    }
}

impl<'a> Iterator for BatchOps<'a> {
    type Item = std::result::Result<BatchOp<'a>, (usize, &'static str)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.left == 0 {
            if !self.dec.is_empty() {
                self.failed = true;
                return Some(Err((self.dec.position(), "bytes after the last op")));
            }
            return None;
        }
        self.left -= 1;
        let item = self.decode_one();
        self.failed = item.is_err();
        Some(item)
    }
}

/// Iterates the operations of an encoded batch (see [`WriteBatch::ops`]).
pub(crate) fn ops_of(rep: &[u8]) -> BatchOps<'_> {
    BatchOps::new(rep)
}

/// The expiry of a `KIND_PUT_TTL` value (ms since the Unix epoch).
pub(crate) fn ttl_expiry(value: &[u8]) -> u64 {
    read_u64(value, 0).unwrap_or(0)
}

/// Checks an encoded batch from disk: header, every op, no trailing bytes.
/// Returns its first sequence number and op count.
pub(crate) fn validate_batch(rep: &[u8], file: &Path, offset: u64) -> Result<(u64, u32)> {
    let seq = read_u64(rep, 0);
    let count = read_u32(rep, 8);
    let (Some(seq), Some(count)) = (seq, count) else {
        return Err(Error::corruption(
            file,
            offset,
            "write batch shorter than its header",
        ));
    };
    for op in BatchOps::new(rep) {
        if let Err((at, reason)) = op {
            return Err(Error::corruption(file, offset + at as u64, reason));
        }
    }
    Ok((seq, count))
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "tests index fixtures they built")]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_in_order() {
        let mut b = WriteBatch::new();
        b.put(b"k1", b"v1");
        b.delete(b"k2");
        b.put_op(7, b"k3", b"v3", Some(99));
        b.put(b"", b"");
        b.set_sequence(42);
        assert_eq!(b.len(), 4);
        assert_eq!(
            validate_batch(b.rep(), Path::new("t"), 0).expect("valid"),
            (42, 4)
        );
        let ops: Vec<_> = ops_of(b.rep()).map(|o| o.expect("op")).collect();
        assert_eq!(ops[0].key, b"k1");
        assert_eq!(ops[0].value, b"v1");
        assert_eq!(&b.rep()[ops[0].value_range.clone()], b"v1");
        assert_eq!(ops[1].kind, KIND_DELETE);
        assert_eq!((ops[2].ns, ops[2].kind), (7, KIND_PUT_TTL));
        assert_eq!(ttl_expiry(ops[2].value), 99);
        assert_eq!(&ops[2].value[EXPIRY_SIZE..], b"v3");
        assert_eq!(ops[3].key, b"");
    }

    #[test]
    fn a_one_op_batch_is_sized_exactly() {
        for ns in [0, 127, 128, u32::MAX] {
            for (key, value) in [(0, 0), (16, 100), (127, 128), (300, 20_000)] {
                let k = vec![1u8; key];
                let v = vec![2u8; value];
                let mut put = WriteBatch::for_one_op(ns, key, Some(value), false);
                put.put_op(ns, &k, &v, None);
                let mut ttl = WriteBatch::for_one_op(ns, key, Some(value), true);
                ttl.put_ttl_op(ns, &k, &v, std::time::Duration::from_secs(1));
                let mut del = WriteBatch::for_one_op(ns, key, None, false);
                del.delete_op(ns, &k);
                for b in [put, ttl, del] {
                    assert_eq!(b.count(), 1);
                    assert_eq!(
                        b.rep.capacity(),
                        b.rep.len(),
                        "ns {ns} key {key} value {value}"
                    );
                }
            }
        }
        let over = WriteBatch::for_one_op(0, MAX_KEY_SIZE + 1, Some(MAX_VALUE_SIZE + 1), false);
        assert!(
            over.rep.capacity() < 1024,
            "an op that will be refused reserves no room for itself"
        );
        for v in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(varint_len(v), buf.len(), "{v}");
        }
    }

    #[test]
    fn ops_after_a_refused_one_keep_their_user_facing_index() {
        let mut b = WriteBatch::new();
        b.put(b"a", b"1");
        b.put(b"b", b"2");
        assert!(b.positions.is_empty(), "identity while nothing is left out");
        assert_eq!((b.index_of(0), b.index_of(1)), (0, 1));
        b.put(vec![0u8; MAX_KEY_SIZE + 1], b"x");
        b.delete(b"c");
        b.put(b"d", b"4");
        assert_eq!(b.count(), 4);
        let at: Vec<usize> = (0..4).map(|p| b.index_of(p)).collect();
        assert_eq!(at, vec![0, 1, 3, 4]);
    }

    #[test]
    fn oversize_ops_are_remembered_not_encoded() {
        let mut b = WriteBatch::new();
        b.put(b"ok", b"1");
        b.put(vec![0u8; MAX_KEY_SIZE + 1], b"x");
        b.delete(vec![0u8; MAX_KEY_SIZE + 1]);
        b.put(vec![0u8; MAX_KEY_SIZE], b"max key is fine");
        assert_eq!(b.len(), 4);
        assert_eq!(b.count(), 2);
        let idx: Vec<usize> = b.invalid().iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![1, 2]);
    }

    #[test]
    fn truncated_or_garbled_batches_are_corruption() {
        let mut b = WriteBatch::new();
        b.put(b"key", b"value");
        b.delete(b"gone");
        let rep = b.rep().to_vec();
        for cut in 0..rep.len() {
            assert!(
                validate_batch(&rep[..cut], Path::new("t"), 0).is_err(),
                "cut {cut}"
            );
        }
        let mut extra = rep.clone();
        extra.push(0);
        assert!(validate_batch(&extra, Path::new("t"), 0).is_err());
        let mut bad_kind = rep;
        bad_kind[BATCH_HEADER_SIZE] = 9;
        assert!(validate_batch(&bad_kind, Path::new("t"), 0).is_err());
    }
}
