//! Internal keys and their order.
//!
//! ```text
//! ukey  := namespace u32 BE | user key bytes
//! ikey  := ukey | trailer u64 LE        trailer = sequence << 8 | kind
//! ```
//!
//! Internal keys sort by `ukey` ascending, then trailer descending, so the
//! newest version of a key comes first and a lookup key built with
//! [`KIND_SEEK`] lands before every version at or below its sequence.
#![deny(clippy::indexing_slicing)]

use std::cmp::Ordering;

use crate::format::{KIND_SEEK, NS_PREFIX_SIZE, TRAILER_SIZE};

/// Packs a sequence number and a kind.
pub(crate) fn trailer(seq: u64, kind: u8) -> u64 {
    (seq << 8) | u64::from(kind)
}

/// Appends `ns | key` to `dst`.
pub(crate) fn push_ukey(dst: &mut Vec<u8>, ns: u32, key: &[u8]) {
    dst.extend_from_slice(&ns.to_be_bytes());
    dst.extend_from_slice(key);
}

/// `ns | key` as a fresh vector.
pub(crate) fn ukey(ns: u32, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(NS_PREFIX_SIZE + key.len());
    push_ukey(&mut v, ns, key);
    v
}

/// Appends a full internal key to `dst`.
pub(crate) fn push_ikey(dst: &mut Vec<u8>, ukey: &[u8], seq: u64, kind: u8) {
    dst.extend_from_slice(ukey);
    dst.extend_from_slice(&trailer(seq, kind).to_le_bytes());
}

/// The internal key that sorts first among the versions of `ukey` visible at `seq`.
pub(crate) fn seek_key(ukey: &[u8], seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(ukey.len() + TRAILER_SIZE);
    push_ikey(&mut v, ukey, seq, KIND_SEEK);
    v
}

/// Splits an internal key into `ukey` and trailer. `None` if shorter than a trailer.
pub(crate) fn split(ikey: &[u8]) -> Option<(&[u8], u64)> {
    let cut = ikey.len().checked_sub(TRAILER_SIZE)?;
    let (ukey, t) = ikey.split_at_checked(cut)?;
    Some((ukey, u64::from_le_bytes(t.try_into().ok()?)))
}

/// The `ukey` part of a well-formed internal key (the whole slice if malformed).
pub(crate) fn ukey_of(ikey: &[u8]) -> &[u8] {
    split(ikey).map_or(ikey, |(u, _)| u)
}

/// Sequence number of a trailer.
pub(crate) fn seq_of(trailer: u64) -> u64 {
    trailer >> 8
}

/// Kind of a trailer.
pub(crate) fn kind_of(trailer: u64) -> u8 {
    trailer as u8
}

/// The namespace of a `ukey`.
pub(crate) fn ns_of(ukey: &[u8]) -> u32 {
    ukey.get(..NS_PREFIX_SIZE)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

/// The internal key order. Malformed keys (shorter than a trailer) sort by raw bytes.
pub(crate) fn compare(a: &[u8], b: &[u8]) -> Ordering {
    match (split(a), split(b)) {
        (Some((ua, ta)), Some((ub, tb))) => ua.cmp(ub).then_with(|| tb.cmp(&ta)),
        _ => a.cmp(b),
    }
}

/// The smallest `ukey` greater than every key starting with `prefix`, or
/// `None` when there is none (the prefix is all 0xff).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{KIND_DELETE, KIND_PUT};

    fn ik(u: &[u8], seq: u64, kind: u8) -> Vec<u8> {
        let mut v = Vec::new();
        push_ikey(&mut v, u, seq, kind);
        v
    }

    #[test]
    fn newer_versions_sort_first_and_seek_key_precedes_them() {
        let a5 = ik(b"a", 5, KIND_PUT);
        let a3 = ik(b"a", 3, KIND_DELETE);
        let b9 = ik(b"b", 9, KIND_PUT);
        assert_eq!(compare(&a5, &a3), Ordering::Less);
        assert_eq!(compare(&a3, &b9), Ordering::Less);
        assert_eq!(compare(&seek_key(b"a", 5), &a5), Ordering::Less);
        assert_eq!(compare(&seek_key(b"a", 4), &a5), Ordering::Greater);
        assert_eq!(compare(&seek_key(b"a", 4), &a3), Ordering::Less);
        // A shorter key that is a prefix sorts first regardless of trailers.
        assert_eq!(
            compare(&ik(b"a", 1, KIND_PUT), &ik(b"a\0", 9, KIND_PUT)),
            Ordering::Less
        );
    }

    #[test]
    fn split_and_parts() {
        let k = ik(&ukey(3, b"xy"), 77, KIND_PUT);
        let (u, t) = split(&k).expect("well formed");
        assert_eq!((ns_of(u), u.get(NS_PREFIX_SIZE..)), (3, Some(&b"xy"[..])));
        assert_eq!((seq_of(t), kind_of(t)), (77, KIND_PUT));
        assert_eq!(split(b"short"), None);
    }

    #[test]
    fn prefix_successor_skips_trailing_ff() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff]), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
