//! Batch XXH3-64 in AVX2 lanes.
//!
//! For keys of 9 to 128 bytes XXH3-64 is a short chain of 64×64→128-bit
//! multiplications ("mul128 fold"), one per 16 bytes of input, summed and
//! mixed. Four keys of the same length class are hashed together in the
//! four 64-bit lanes of an AVX2 register; AVX2 has no 64×64 multiply, so
//! each 128-bit product is assembled from four 32×32→64 ones. Other
//! lengths, and CPUs without AVX2, take xxhash-rust's scalar code. The
//! lane code is checked against the scalar code for every length class.
//!
//! The constants are those of the XXH3 specification (seed 0, default secret).

/// The first 128 bytes of the XXH3 default secret, as little-endian words.
const SECRET: [u64; 16] = secret_words();

const fn secret_words() -> [u64; 16] {
    const BYTES: [u8; 128] = [
        0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad,
        0x1c, 0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3,
        0x67, 0x1f, 0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc,
        0xff, 0x72, 0x21, 0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6,
        0x81, 0x3a, 0x26, 0x4c, 0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65,
        0x8b, 0x1b, 0x53, 0x2e, 0xa3, 0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19,
        0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8, 0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9,
        0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d, 0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31,
        0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    ];
    let mut out = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        let mut w = 0u64;
        let mut b = 0;
        while b < 8 {
            w |= (BYTES[i * 8 + b] as u64) << (8 * b);
            b += 1;
        }
        out[i] = w;
        i += 1;
    }
    out
}

const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME_MX1: u64 = 0x1656_6791_9E37_79F9;

/// Which lane routine hashes a key of this length, if any.
fn class(len: usize) -> Option<usize> {
    match len {
        9..=16 => Some(0),
        17..=32 => Some(1),
        33..=64 => Some(2),
        65..=96 => Some(3),
        97..=128 => Some(4),
        _ => None,
    }
}

fn word(key: &[u8], at: usize) -> u64 {
    key.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// The (input offset, secret word) pairs of the 16-byte mixes of XXH3's
/// 17..=128-byte path, for a key of `len` bytes in length class `class`.
fn mixes(class: usize, len: usize) -> impl Iterator<Item = (usize, usize)> {
    let back = |n: usize| len.saturating_sub(n);
    let all = [
        (0, 0),
        (back(16), 2),
        (16, 4),
        (back(32), 6),
        (32, 8),
        (back(48), 10),
        (48, 12),
        (back(64), 14),
    ];
    all.into_iter().take(2 * class)
}

pub(super) fn hash_batch<K: AsRef<[u8]>>(keys: &[K], out: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // Up to four pending indices per length class.
            let mut pending: [[usize; 4]; 5] = [[0; 4]; 5];
            let mut counts = [0usize; 5];
            for (i, k) in keys.iter().enumerate() {
                let key = k.as_ref();
                match class(key.len()) {
                    Some(c) => {
                        pending[c][counts[c]] = i;
                        counts[c] += 1;
                        if counts[c] == 4 {
                            let idx = pending[c];
                            let lanes = idx.map(|j| keys[j].as_ref());
                            // SAFETY: AVX2 support was detected just above.
                            #[expect(
                                unsafe_code,
                                reason = "calling an AVX2 function after detection"
                            )]
                            let h = unsafe { avx2::hash4(c, lanes) };
                            for (j, v) in idx.into_iter().zip(h) {
                                out[j] = v;
                            }
                            counts[c] = 0;
                        }
                    }
                    None => out[i] = super::hash_key(key),
                }
            }
            for c in 0..5 {
                for &j in &pending[c][..counts[c]] {
                    out[j] = super::hash_key(keys[j].as_ref());
                }
            }
            return;
        }
    }
    for (k, o) in keys.iter().zip(out.iter_mut()) {
        *o = super::hash_key(k.as_ref());
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_and_si256, _mm256_mul_epu32, _mm256_or_si256,
        _mm256_set_epi64x, _mm256_set1_epi64x, _mm256_shuffle_epi8, _mm256_slli_epi64,
        _mm256_srli_epi64, _mm256_storeu_si256, _mm256_xor_si256,
    };

    use super::{PRIME_MX1, PRIME64_1, SECRET, mixes, word};

    #[inline(always)]
    fn set(v: [u64; 4]) -> __m256i {
        // SAFETY: a register built from four integers; no memory is touched.
        #[expect(unsafe_code, reason = "intrinsic")]
        unsafe {
            _mm256_set_epi64x(v[3] as i64, v[2] as i64, v[1] as i64, v[0] as i64)
        }
    }

    #[inline(always)]
    fn splat(v: u64) -> __m256i {
        // SAFETY: as `set`.
        #[expect(unsafe_code, reason = "intrinsic")]
        unsafe {
            _mm256_set1_epi64x(v as i64)
        }
    }

    /// Lane-wise `lo64(a*b) ^ hi64(a*b)` of the 128-bit products.
    #[target_feature(enable = "avx2")]
    fn mul128_fold64(a: __m256i, b: __m256i) -> __m256i {
        let lo32 = splat(0xffff_ffff);
        let a_hi = _mm256_srli_epi64::<32>(a);
        let b_hi = _mm256_srli_epi64::<32>(b);
        let ll = _mm256_mul_epu32(a, b);
        let lh = _mm256_mul_epu32(a, b_hi);
        let hl = _mm256_mul_epu32(a_hi, b);
        let hh = _mm256_mul_epu32(a_hi, b_hi);
        // Cannot overflow: three terms below 2^32 each.
        let mid = _mm256_add_epi64(
            _mm256_add_epi64(_mm256_srli_epi64::<32>(ll), _mm256_and_si256(lh, lo32)),
            _mm256_and_si256(hl, lo32),
        );
        let lo = _mm256_or_si256(_mm256_and_si256(ll, lo32), _mm256_slli_epi64::<32>(mid));
        let hi = _mm256_add_epi64(
            _mm256_add_epi64(hh, _mm256_srli_epi64::<32>(lh)),
            _mm256_add_epi64(_mm256_srli_epi64::<32>(hl), _mm256_srli_epi64::<32>(mid)),
        );
        _mm256_xor_si256(lo, hi)
    }

    /// Lane-wise 64-bit multiply by a constant, low 64 bits.
    #[target_feature(enable = "avx2")]
    fn mul_lo(a: __m256i, c: u64) -> __m256i {
        let b = splat(c);
        let ll = _mm256_mul_epu32(a, b);
        let cross = _mm256_add_epi64(
            _mm256_mul_epu32(_mm256_srli_epi64::<32>(a), b),
            _mm256_mul_epu32(a, _mm256_srli_epi64::<32>(b)),
        );
        _mm256_add_epi64(ll, _mm256_slli_epi64::<32>(cross))
    }

    #[target_feature(enable = "avx2")]
    fn xorshift(v: __m256i, shift: u32) -> __m256i {
        match shift {
            37 => _mm256_xor_si256(v, _mm256_srli_epi64::<37>(v)),
            _ => _mm256_xor_si256(v, _mm256_srli_epi64::<32>(v)),
        }
    }

    /// XXH3's final mix for these lengths.
    #[target_feature(enable = "avx2")]
    fn avalanche(v: __m256i) -> __m256i {
        xorshift(mul_lo(xorshift(v, 37), PRIME_MX1), 32)
    }

    /// Byte-swaps each 64-bit lane.
    #[target_feature(enable = "avx2")]
    fn bswap64(v: __m256i) -> __m256i {
        let m = set([
            0x0001_0203_0405_0607,
            0x0809_0a0b_0c0d_0e0f,
            0x0001_0203_0405_0607,
            0x0809_0a0b_0c0d_0e0f,
        ]);
        _mm256_shuffle_epi8(v, m)
    }

    /// XXH3-64 (seed 0) of four keys of length class `class` (see `super::class`).
    #[target_feature(enable = "avx2")]
    pub(super) fn hash4(class: usize, keys: [&[u8]; 4]) -> [u64; 4] {
        let lens = keys.map(|k| k.len() as u64);
        let acc = if class == 0 {
            // 9..=16 bytes: one mul128 fold of the first and last 8 bytes.
            let bitflip1 = SECRET[3] ^ SECRET[4];
            let bitflip2 = SECRET[5] ^ SECRET[6];
            let lo = _mm256_xor_si256(set(keys.map(|k| word(k, 0))), splat(bitflip1));
            let hi = _mm256_xor_si256(set(keys.map(|k| word(k, k.len() - 8))), splat(bitflip2));
            let sum = _mm256_add_epi64(_mm256_add_epi64(set(lens), bswap64(lo)), hi);
            _mm256_add_epi64(sum, mul128_fold64(lo, hi))
        } else {
            // 17..=128 bytes: len * PRIME64_1 plus one fold per 16 bytes mixed.
            let mut acc = mul_lo(set(lens), PRIME64_1);
            let steps: Vec<[(usize, usize); 4]> = {
                let per_key = keys.map(|k| mixes(class, k.len()).collect::<Vec<_>>());
                (0..2 * class)
                    .map(|s| [per_key[0][s], per_key[1][s], per_key[2][s], per_key[3][s]])
                    .collect()
            };
            for step in steps {
                let sec = step[0].1;
                let lo = set([0, 1, 2, 3].map(|l| word(keys[l], step[l].0)));
                let hi = set([0, 1, 2, 3].map(|l| word(keys[l], step[l].0 + 8)));
                let lo = _mm256_xor_si256(lo, splat(SECRET[sec]));
                let hi = _mm256_xor_si256(hi, splat(SECRET[sec + 1]));
                acc = _mm256_add_epi64(acc, mul128_fold64(lo, hi));
            }
            acc
        };
        let mut out = [0u64; 4];
        // SAFETY: `out` is 32 bytes, the size of one register; unaligned store.
        #[expect(unsafe_code, reason = "storing a register")]
        unsafe {
            _mm256_storeu_si256(out.as_mut_ptr().cast(), avalanche(acc));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::{hash_key, hash_keys_batch, hash_keys_scalar};

    #[test]
    fn lanes_agree_with_scalar_for_every_length_0_to_300() {
        let mut rng = fastrand::Rng::with_seed(11);
        for len in 0..=300usize {
            let keys: Vec<Vec<u8>> = (0..9)
                .map(|_| (0..len).map(|_| rng.u8(..)).collect())
                .collect();
            let mut simd = Vec::new();
            hash_keys_batch(&keys, &mut simd);
            let want: Vec<u64> = keys.iter().map(|k| hash_key(k)).collect();
            assert_eq!(simd, want, "length {len}");
        }
        let mut scalar = Vec::new();
        hash_keys_scalar(&[b"x"], &mut scalar);
        assert_eq!(scalar, vec![hash_key(b"x")]);
    }
}
