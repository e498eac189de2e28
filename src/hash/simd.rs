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
#[inline]
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

#[inline]
fn word(key: &[u8], at: usize) -> u64 {
    key.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// The input offset of mix `step` of XXH3's 17..=128-byte path for a key
/// of `len` bytes: even steps walk forward from the start in 16-byte
/// strides, odd ones backward from the end. Step `s` uses secret words `2s`
/// and `2s + 1`; a key of class `c` takes steps `0..2*c`.
#[inline]
fn mix(step: usize, len: usize) -> usize {
    if step.is_multiple_of(2) {
        8 * step
    } else {
        len.saturating_sub(8 * (step + 1))
    }
}

/// Hashes `keys` into `out` (same length). Runs of consecutive keys of one
/// length class go through SIMD lanes: eight at a time with AVX-512 (F and
/// BW), four with AVX2. Every other key, and every key on other CPUs, takes
/// the scalar code.
pub(super) fn hash_batch<K: AsRef<[u8]>>(keys: &[K], out: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            // SAFETY: AVX-512 F and BW support was detected just above.
            #[expect(unsafe_code, reason = "calling an AVX-512 function after detection")]
            unsafe {
                x8::hash_batch(keys, out);
            }
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was detected just above.
            #[expect(unsafe_code, reason = "calling an AVX2 function after detection")]
            unsafe {
                x4::hash_batch(keys, out);
            }
            return;
        }
    }
    scalar(keys, out);
}

fn scalar<K: AsRef<[u8]>>(keys: &[K], out: &mut [u64]) {
    for (k, o) in keys.iter().zip(out.iter_mut()) {
        *o = super::hash_key(k.as_ref());
    }
}

/// The lane code, written once for a register of `$width` 64-bit lanes.
/// Neither AVX2 nor AVX-512 F has a 64×64-bit multiply with a high half, so
/// each 128-bit product is assembled from four 32×32→64 ones.
#[cfg(target_arch = "x86_64")]
macro_rules! lanes_module {
    (
        $module:ident, $features:literal, $width:literal, $reg:ident,
        load = $load:ident, store = $store:ident, splat = $splat:ident,
        add = $add:ident, and = $and:ident, or = $or:ident, xor = $xor:ident,
        mul32 = $mul32:ident, shl = $shl:ident, shr = $shr:ident, shuffle = $shuffle:ident $(,)?
    ) => {
        mod $module {
            use std::arch::x86_64::{
                $add, $and, $load, $mul32, $or, $reg, $shl, $shr, $shuffle, $splat, $store, $xor,
            };

            use super::{PRIME_MX1, PRIME64_1, SECRET, class, mix, word};

            const W: usize = $width;

            /// The batch loop, compiled for these features as a whole so the
            /// lane code inlines into it. Keys go `W` at a time; a group whose
            /// lengths share a class is hashed in lanes, any other key by key.
            #[target_feature(enable = $features)]
            pub(super) fn hash_batch<K: AsRef<[u8]>>(keys: &[K], out: &mut [u64]) {
                let mut groups = keys.chunks_exact(W);
                let mut outs = out.chunks_exact_mut(W);
                for (group, dst) in (&mut groups).zip(&mut outs) {
                    let mut ks: [&[u8]; W] = [&[]; W];
                    for (slot, k) in ks.iter_mut().zip(group) {
                        *slot = k.as_ref();
                    }
                    let c = class(ks[0].len());
                    match c {
                        Some(c) if ks.iter().all(|k| class(k.len()) == Some(c)) => {
                            dst.copy_from_slice(&hash_lanes(c, &ks));
                        }
                        _ => super::scalar(&ks, dst),
                    }
                }
                super::scalar(groups.remainder(), outs.into_remainder());
            }

            #[inline(always)]
            fn set(v: [u64; W]) -> $reg {
                // SAFETY: `v` is exactly one register wide; unaligned load.
                #[expect(unsafe_code, reason = "loading a register")]
                unsafe {
                    $load(v.as_ptr().cast())
                }
            }

            /// One lane per key: `f` of each key.
            #[inline(always)]
            fn lanes(keys: &[&[u8]; W], f: impl Fn(&[u8]) -> u64) -> $reg {
                let mut v = [0u64; W];
                for (o, k) in v.iter_mut().zip(keys) {
                    *o = f(k);
                }
                set(v)
            }

            #[inline(always)]
            fn splat(v: u64) -> $reg {
                // SAFETY: a register built from one integer; no memory is touched.
                #[expect(unsafe_code, reason = "intrinsic")]
                unsafe {
                    $splat(v as i64)
                }
            }

            /// Lane-wise `lo64(a*b) ^ hi64(a*b)` of the 128-bit products.
            #[target_feature(enable = $features)]
            #[inline]
            fn mul128_fold64(a: $reg, b: $reg) -> $reg {
                let lo32 = splat(0xffff_ffff);
                let a_hi = $shr::<32>(a);
                let b_hi = $shr::<32>(b);
                let ll = $mul32(a, b);
                let lh = $mul32(a, b_hi);
                let hl = $mul32(a_hi, b);
                let hh = $mul32(a_hi, b_hi);
                // Cannot overflow: three terms below 2^32 each.
                let mid = $add($add($shr::<32>(ll), $and(lh, lo32)), $and(hl, lo32));
                let lo = $or($and(ll, lo32), $shl::<32>(mid));
                let hi = $add(
                    $add(hh, $shr::<32>(lh)),
                    $add($shr::<32>(hl), $shr::<32>(mid)),
                );
                $xor(lo, hi)
            }

            /// Lane-wise 64-bit multiply by a constant, low 64 bits.
            #[target_feature(enable = $features)]
            #[inline]
            fn mul_lo(a: $reg, c: u64) -> $reg {
                let b = splat(c);
                let cross = $add($mul32($shr::<32>(a), b), $mul32(a, $shr::<32>(b)));
                $add($mul32(a, b), $shl::<32>(cross))
            }

            /// XXH3's final mix for these lengths.
            #[target_feature(enable = $features)]
            #[inline]
            fn avalanche(v: $reg) -> $reg {
                let v = $xor(v, $shr::<37>(v));
                let v = mul_lo(v, PRIME_MX1);
                $xor(v, $shr::<32>(v))
            }

            /// Byte-swaps each 64-bit lane.
            #[target_feature(enable = $features)]
            #[inline]
            fn bswap64(v: $reg) -> $reg {
                let mut mask = [0u64; W];
                for (i, m) in mask.iter_mut().enumerate() {
                    // Byte indices within each 128-bit half, reversed per 64-bit lane.
                    *m = if i.is_multiple_of(2) {
                        0x0001_0203_0405_0607
                    } else {
                        0x0809_0a0b_0c0d_0e0f
                    };
                }
                $shuffle(v, set(mask))
            }

            /// XXH3-64 (seed 0) of `W` keys of length class `class` (see `super::class`).
            #[target_feature(enable = $features)]
            #[inline]
            fn hash_lanes(class: usize, keys: &[&[u8]; W]) -> [u64; W] {
                let lens = lanes(keys, |k| k.len() as u64);
                let acc = if class == 0 {
                    // 9..=16 bytes: one mul128 fold of the first and last 8 bytes.
                    let bitflip1 = SECRET[3] ^ SECRET[4];
                    let bitflip2 = SECRET[5] ^ SECRET[6];
                    let lo = $xor(lanes(keys, |k| word(k, 0)), splat(bitflip1));
                    let hi = $xor(lanes(keys, |k| word(k, k.len() - 8)), splat(bitflip2));
                    let sum = $add($add(lens, bswap64(lo)), hi);
                    $add(sum, mul128_fold64(lo, hi))
                } else {
                    // 17..=128 bytes: len * PRIME64_1 plus one fold per 16 bytes mixed.
                    let mut acc = mul_lo(lens, PRIME64_1);
                    for step in 0..2 * class {
                        let lo = lanes(keys, |k| word(k, mix(step, k.len())));
                        let hi = lanes(keys, |k| word(k, mix(step, k.len()) + 8));
                        let lo = $xor(lo, splat(SECRET[2 * step]));
                        let hi = $xor(hi, splat(SECRET[2 * step + 1]));
                        acc = $add(acc, mul128_fold64(lo, hi));
                    }
                    acc
                };
                let mut out = [0u64; W];
                // SAFETY: `out` is exactly one register wide; unaligned store.
                #[expect(unsafe_code, reason = "storing a register")]
                unsafe {
                    $store(out.as_mut_ptr().cast(), avalanche(acc));
                }
                out
            }

            /// Runs the lane code directly, for tests on CPUs that would
            /// otherwise pick a wider path.
            #[cfg(test)]
            pub(super) fn hash_batch_for_test<K: AsRef<[u8]>>(keys: &[K], out: &mut [u64]) -> bool {
                let supported = $features.split(',').all(|f| match f {
                    "avx2" => std::arch::is_x86_feature_detected!("avx2"),
                    "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
                    "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
                    _ => false,
                });
                if supported {
                    // SAFETY: every feature was detected just above.
                    #[expect(
                        unsafe_code,
                        reason = "calling a feature-gated function after detection"
                    )]
                    unsafe {
                        hash_batch(keys, out);
                    }
                }
                supported
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
lanes_module!(
    x4,
    "avx2",
    4,
    __m256i,
    load = _mm256_loadu_si256,
    store = _mm256_storeu_si256,
    splat = _mm256_set1_epi64x,
    add = _mm256_add_epi64,
    and = _mm256_and_si256,
    or = _mm256_or_si256,
    xor = _mm256_xor_si256,
    mul32 = _mm256_mul_epu32,
    shl = _mm256_slli_epi64,
    shr = _mm256_srli_epi64,
    shuffle = _mm256_shuffle_epi8,
);

#[cfg(target_arch = "x86_64")]
lanes_module!(
    x8,
    "avx512f,avx512bw",
    8,
    __m512i,
    load = _mm512_loadu_si512,
    store = _mm512_storeu_si512,
    splat = _mm512_set1_epi64,
    add = _mm512_add_epi64,
    and = _mm512_and_si512,
    or = _mm512_or_si512,
    xor = _mm512_xor_si512,
    mul32 = _mm512_mul_epu32,
    shl = _mm512_slli_epi64,
    shr = _mm512_srli_epi64,
    shuffle = _mm512_shuffle_epi8,
);

#[cfg(test)]
mod tests {
    use super::super::{hash_key, hash_keys_batch, hash_keys_scalar};

    /// Every lane width this CPU has, plus the dispatching entry point.
    fn every_path(keys: &[Vec<u8>]) -> Vec<(&'static str, Vec<u64>)> {
        let mut paths = Vec::new();
        let mut out = Vec::new();
        hash_keys_batch(keys, &mut out);
        paths.push(("dispatch", out));
        #[cfg(target_arch = "x86_64")]
        {
            let mut out = vec![0; keys.len()];
            if super::x4::hash_batch_for_test(keys, &mut out) {
                paths.push(("avx2", out));
            }
            let mut out = vec![0; keys.len()];
            if super::x8::hash_batch_for_test(keys, &mut out) {
                paths.push(("avx512", out));
            }
        }
        paths
    }

    #[test]
    fn lanes_agree_with_scalar_for_every_length_0_to_300() {
        let mut rng = fastrand::Rng::with_seed(11);
        for len in 0..=300usize {
            // 19 keys: two groups of eight (four of four) and a remainder.
            let keys: Vec<Vec<u8>> = (0..19)
                .map(|_| (0..len).map(|_| rng.u8(..)).collect())
                .collect();
            let want: Vec<u64> = keys.iter().map(|k| hash_key(k)).collect();
            for (path, got) in every_path(&keys) {
                assert_eq!(got, want, "{path}, length {len}");
            }
        }
        let mut scalar = Vec::new();
        hash_keys_scalar(&[b"x"], &mut scalar);
        assert_eq!(scalar, vec![hash_key(b"x")]);
    }

    #[test]
    fn groups_mixing_length_classes_fall_back_key_by_key() {
        let mut rng = fastrand::Rng::with_seed(12);
        let lens = [
            16usize, 16, 16, 17, 16, 16, 16, 16, 40, 40, 40, 40, 3, 200, 16, 16,
        ];
        let keys: Vec<Vec<u8>> = lens
            .iter()
            .map(|&n| (0..n).map(|_| rng.u8(..)).collect())
            .collect();
        let want: Vec<u64> = keys.iter().map(|k| hash_key(k)).collect();
        for (path, got) in every_path(&keys) {
            assert_eq!(got, want, "{path}");
        }
    }
}
