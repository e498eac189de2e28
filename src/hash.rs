//! The stable hash: what bloom filters store on disk and what sharding uses.
//!
//! [`hash_key`] is XXH3-64 with seed 0, a specified function whose output is
//! the same on every platform and every version of strata-kv (a test pins
//! known values). [`hash_keys_batch`] computes the same values for many keys
//! at once, in SIMD lanes on x86-64 with AVX-512 or AVX2, and falls
//! back to the scalar code elsewhere; both give identical results.
//! [`jump_consistent_hash`] maps a hash to one of `n` buckets so that growing
//! `n` moves as few keys as possible.

mod simd;

/// XXH3-64 (seed 0) of `key`.
pub fn hash_key(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// Hashes every key into `out` (cleared first), `out[i] == hash_key(keys[i])`.
///
/// On x86-64, each run of consecutive keys whose lengths fall in one class
/// of XXH3's short-input path (9–16, 17–32, 33–64, 65–96 or 97–128 bytes) is
/// hashed in SIMD lanes: eight keys at a time with AVX-512, four with AVX2.
/// Other keys, and every key on other CPUs, take the scalar path.
/// Fixed-size keys take the lanes throughout.
pub fn hash_keys_batch<K: AsRef<[u8]>>(keys: &[K], out: &mut Vec<u64>) {
    out.clear();
    out.resize(keys.len(), 0);
    simd::hash_batch(keys, out);
}

/// The scalar reference for [`hash_keys_batch`].
pub fn hash_keys_scalar<K: AsRef<[u8]>>(keys: &[K], out: &mut Vec<u64>) {
    out.clear();
    out.extend(keys.iter().map(|k| hash_key(k.as_ref())));
}

/// Jump consistent hash (Lamping & Veach): the bucket in `0..buckets` for
/// `hash`. Growing `buckets` from n to n+1 moves about 1/(n+1) of the keys.
/// Returns 0 when `buckets` is 0.
pub fn jump_consistent_hash(hash: u64, buckets: u32) -> u32 {
    let mut key = hash;
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        let divisor = ((key >> 33) + 1) as f64;
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / divisor)) as i64;
    }
    u32::try_from(b.max(0)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_values_are_pinned() {
        // XXH3-64, seed 0, as the reference C implementation computes it
        // (cross-checked with python-xxhash). These must never change:
        // bloom filters on disk depend on them.
        let pinned: [(&[u8], u64); 6] = [
            (b"", 0x2d06_8005_38d3_94c2),
            (b"a", 0xe6c6_32b6_1e96_4e1f),
            (b"session:abc123", 0x9ed2_79b9_04f8_d999),
            (b"0123456789abcdef", 0x6443_9946_d8fa_212d),
            (&[b'x'; 100], 0xc909_84ff_df50_ce42),
            (&[b'y'; 300], 0xe59d_0f1d_a61c_2ee0),
        ];
        for (key, want) in pinned {
            assert_eq!(hash_key(key), want, "{key:?}");
            let mut batch = Vec::new();
            hash_keys_batch(&[key], &mut batch);
            assert_eq!(batch, vec![want]);
        }
    }

    #[test]
    fn jump_hash_is_stable_and_moves_few_keys() {
        assert_eq!(jump_consistent_hash(12345, 0), 0);
        assert_eq!(jump_consistent_hash(12345, 1), 0);
        let mut moved = 0;
        for k in 0..10_000u64 {
            let h = hash_key(&k.to_le_bytes());
            let a = jump_consistent_hash(h, 10);
            let b = jump_consistent_hash(h, 11);
            assert!(a < 10 && b < 11);
            if a != b {
                assert_eq!(b, 10, "keys only move to the new bucket");
                moved += 1;
            }
        }
        assert!((600..1300).contains(&moved), "moved {moved}");
    }
}
