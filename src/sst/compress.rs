//! Block compression: LZ4 (lz4_flex block format with a u32 length prefix)
//! and Snappy (snap raw format, which stores its own length).
#![deny(clippy::indexing_slicing)]

use crate::format::{COMPRESSION_LZ4, COMPRESSION_NONE, COMPRESSION_SNAPPY};
use crate::options::Compression;

/// A recycled buffer is used only if it holds the block without growing
/// (growth would double it and copy it) and with at most this fraction of
/// its capacity to spare: the cache charges a block its buffer's capacity.
const MAX_REUSE_SLACK_DIVISOR: usize = 4;

/// `reuse` if its capacity is between `len` and `len` + 25%.
fn fitting(reuse: Option<Vec<u8>>, len: usize) -> Option<Vec<u8>> {
    reuse.filter(|b| (len..=len + len / MAX_REUSE_SLACK_DIVISOR).contains(&b.capacity()))
}

/// No block grows by more than this factor when decompressed (LZ4 tops out
/// near 255x, Snappy lower): a stored length beyond it is damage, and
/// refusing it keeps a corrupt length from sizing an allocation.
const MAX_EXPANSION: usize = 256;

/// Compresses `raw`; returns the bytes to store and their type byte. A block
/// that does not shrink by at least 1/8 is stored raw.
pub(crate) fn compress(raw: &[u8], compression: Compression, out: &mut Vec<u8>) -> u8 {
    out.clear();
    let kind = match compression {
        Compression::None => return COMPRESSION_NONE,
        Compression::Lz4 => {
            out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
            let start = out.len();
            out.resize(
                start + lz4_flex::block::get_maximum_output_size(raw.len()),
                0,
            );
            match lz4_flex::block::compress_into(raw, out.get_mut(start..).unwrap_or_default()) {
                Ok(n) => out.truncate(start + n),
                Err(_) => return COMPRESSION_NONE,
            }
            COMPRESSION_LZ4
        }
        Compression::Snappy => {
            out.resize(snap::raw::max_compress_len(raw.len()), 0);
            match snap::raw::Encoder::new().compress(raw, out) {
                Ok(n) => out.truncate(n),
                Err(_) => return COMPRESSION_NONE,
            }
            COMPRESSION_SNAPPY
        }
    };
    if out.len() > raw.len() - raw.len() / 8 {
        out.clear();
        return COMPRESSION_NONE;
    }
    kind
}

/// Decompresses a stored block of the given type (not `COMPRESSION_NONE`),
/// into `reuse` if given: a buffer whose bytes are initialized already, so
/// it is resized, not zeroed. Without one, LZ4 decompresses into fresh
/// capacity (zeroing a new buffer first was 4% of a cache-missing read).
pub(crate) fn decompress(
    stored: &[u8],
    kind: u8,
    reuse: Option<Vec<u8>>,
) -> Result<Vec<u8>, &'static str> {
    match kind {
        COMPRESSION_LZ4 => {
            let (len, body) = stored
                .split_at_checked(4)
                .ok_or("lz4 block without length")?;
            let len = u32::from_le_bytes(len.try_into().map_err(|_| "lz4 length")?) as usize;
            if len > body.len().saturating_mul(MAX_EXPANSION).saturating_add(64) {
                return Err("lz4 block claims an impossible length");
            }
            let bad = "lz4 block does not decompress";
            // lz4_flex checks every write against the output's bounds and
            // returns an error on damaged input.
            match fitting(reuse, len) {
                Some(mut out) => {
                    out.resize(len, 0);
                    match lz4_flex::block::decompress_into(body, &mut out) {
                        Ok(n) if n == len => Ok(out),
                        _ => Err(bad),
                    }
                }
                None => match lz4_flex::block::decompress(body, len) {
                    Ok(out) if out.len() == len => Ok(out),
                    _ => Err(bad),
                },
            }
        }
        COMPRESSION_SNAPPY => {
            let len = snap::raw::decompress_len(stored).map_err(|_| "snappy length")?;
            if len
                > stored
                    .len()
                    .saturating_mul(MAX_EXPANSION)
                    .saturating_add(64)
            {
                return Err("snappy block claims an impossible length");
            }
            let mut out = fitting(reuse, len).unwrap_or_default();
            out.resize(len, 0);
            match snap::raw::Decoder::new().decompress(stored, &mut out) {
                Ok(n) if n == len => Ok(out),
                _ => Err("snappy block does not decompress"),
            }
        }
        _ => Err("unknown compression type"),
    }
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "tests index fixtures they built")]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_incompressible_stays_raw() {
        let text: Vec<u8> = b"abcabcabcabc-strata-"
            .iter()
            .copied()
            .cycle()
            .take(4096)
            .collect();
        let mut noise = Vec::with_capacity(4096);
        let mut x = 0x1234_5678_u32;
        for _ in 0..4096 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            noise.push(x as u8);
        }
        let mut out = Vec::new();
        for c in [Compression::Lz4, Compression::Snappy] {
            let kind = compress(&text, c, &mut out);
            assert_ne!(kind, COMPRESSION_NONE);
            assert!(out.len() < text.len() / 2);
            assert_eq!(decompress(&out, kind, None).expect("round trip"), text);
            // Into a recycled buffer: used if it fits with at most 25% to
            // spare (its capacity kept), else a fresh one of the exact size.
            for (old, reused) in [(10, false), (4096, true), (5120, true), (5121, false)] {
                let got = decompress(&out, kind, Some(vec![9u8; old])).expect("decompress");
                assert_eq!(got, text);
                assert_eq!(got.capacity() == old, reused, "buffer of {old}");
            }
            assert_eq!(compress(&noise, c, &mut out), COMPRESSION_NONE);
        }
        assert_eq!(
            compress(&text, Compression::None, &mut out),
            COMPRESSION_NONE
        );
    }

    #[test]
    fn damaged_input_is_an_error_not_a_panic() {
        let text: Vec<u8> = b"hello hello hello hello ".repeat(50);
        let mut out = Vec::new();
        for c in [Compression::Lz4, Compression::Snappy] {
            let kind = compress(&text, c, &mut out);
            for i in 0..out.len() {
                let mut bad = out.clone();
                bad[i] ^= 0x5a;
                let _ = decompress(&bad, kind, None);
                let _ = decompress(&bad[..i], kind, Some(vec![1u8; 64]));
            }
        }
        assert!(decompress(&[0xff, 0xff, 0xff, 0x7f, 1], COMPRESSION_LZ4, None).is_err());
        assert!(decompress(b"x", 9, None).is_err());
    }
}
