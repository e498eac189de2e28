//! Batch hashing; the AVX2 lanes arrive with the async-store issue.

pub(super) fn hash_batch<K: AsRef<[u8]>>(keys: &[K], out: &mut [u64]) {
    for (k, o) in keys.iter().zip(out.iter_mut()) {
        *o = super::hash_key(k.as_ref());
    }
}
