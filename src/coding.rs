//! Little-endian fixed-width integers and LEB128 varints: the primitives of every format.
//!
//! Encoders append to a `Vec<u8>`. Decoders never panic: they read from a
//! [`Decoder`] that returns `None` when the input ends early or a varint is
//! malformed, and the caller turns that into `Error::Corruption` with its own
//! file and offset.
#![deny(clippy::indexing_slicing)]

/// Appends `v` as 4 little-endian bytes.
pub(crate) fn put_u32(dst: &mut Vec<u8>, v: u32) {
    dst.extend_from_slice(&v.to_le_bytes());
}

/// Appends `v` as 8 little-endian bytes.
pub(crate) fn put_u64(dst: &mut Vec<u8>, v: u64) {
    dst.extend_from_slice(&v.to_le_bytes());
}

/// Appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
pub(crate) fn put_varint(dst: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        dst.push((v as u8) | 0x80);
        v >>= 7;
    }
    dst.push(v as u8);
}

/// The bytes `put_varint` appends for `v`.
pub(crate) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends a varint length followed by the bytes.
pub(crate) fn put_len_prefixed(dst: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(dst, bytes.len() as u64);
    dst.extend_from_slice(bytes);
}

/// Reads a little-endian u32 at `pos`, if the bytes are there.
pub(crate) fn read_u32(buf: &[u8], pos: usize) -> Option<u32> {
    let bytes = buf.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Reads a little-endian u64 at `pos`, if the bytes are there.
pub(crate) fn read_u64(buf: &[u8], pos: usize) -> Option<u64> {
    let bytes = buf.get(pos..pos.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// A forward cursor over encoded bytes. Every read is bounds-checked.
#[derive(Debug, Clone)]
pub(crate) struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let v = read_u32(self.buf, self.pos)?;
        self.pos += 4;
        Some(v)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let v = read_u64(self.buf, self.pos)?;
        self.pos += 8;
        Some(v)
    }

    /// Reads a varint of at most 10 bytes whose value fits in a u64.
    pub(crate) fn varint(&mut self) -> Option<u64> {
        let mut result: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return None; // would overflow u64
            }
            result |= bits << shift;
            if byte & 0x80 == 0 {
                return Some(result);
            }
        }
        None
    }

    /// Reads a varint that must fit in a u32.
    pub(crate) fn varint32(&mut self) -> Option<u32> {
        u32::try_from(self.varint()?).ok()
    }

    /// Reads a varint that must fit in a usize and be no larger than what is left:
    /// a length of bytes still to come.
    pub(crate) fn length(&mut self) -> Option<usize> {
        let n = usize::try_from(self.varint()?).ok()?;
        (n <= self.remaining()).then_some(n)
    }

    /// Takes the next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// Takes a varint length and that many bytes.
    pub(crate) fn len_prefixed(&mut self) -> Option<&'a [u8]> {
        let n = self.length()?;
        self.bytes(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Number of bytes `put_varint(v)` writes.
    fn varint_len(mut v: u64) -> usize {
        let mut n = 1;
        while v >= 0x80 {
            v >>= 7;
            n += 1;
        }
        n
    }

    #[test]
    fn varint_round_trips_edge_values() {
        for v in [0, 1, 127, 128, 255, 300, 1 << 32, u64::MAX - 1, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v));
            let mut d = Decoder::new(&buf);
            assert_eq!(d.varint(), Some(v));
            assert!(d.is_empty());
        }
    }

    #[test]
    fn decoder_rejects_truncated_and_overlong_input() {
        assert_eq!(Decoder::new(&[0x80]).varint(), None);
        assert_eq!(Decoder::new(&[0xff; 11]).varint(), None);
        // 10th byte carrying more than the top bit overflows u64.
        let mut overflow = vec![0xff; 9];
        overflow.push(0x02);
        assert_eq!(Decoder::new(&overflow).varint(), None);
        assert_eq!(Decoder::new(&[5, 1, 2]).len_prefixed(), None);
        assert_eq!(Decoder::new(&[1, 2, 3]).u32(), None);
        assert_eq!(read_u64(&[0; 7], 0), None);
        assert_eq!(read_u32(&[0; 8], usize::MAX), None);
    }
}
