//! Table properties: counts and ranges written once at the end of a table.
//!
//! ```text
//! props := field*          field := tag varint | value
//! tag   := id << 1 | is_bytes      value := varint, or (is_bytes) varint len + bytes
//! ```
//! Unknown ids are skipped, so later versions may add fields.
#![deny(clippy::indexing_slicing)]

use crate::coding::{Decoder, put_len_prefixed, put_varint};

/// What a table holds, summarised when it is built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TableProps {
    pub(crate) entries: u64,
    pub(crate) tombstones: u64,
    pub(crate) raw_key_bytes: u64,
    pub(crate) raw_value_bytes: u64,
    pub(crate) data_blocks: u64,
    /// Bytes of data blocks before compression.
    pub(crate) data_bytes: u64,
    /// Bytes of data blocks as stored.
    pub(crate) stored_data_bytes: u64,
    pub(crate) smallest_seq: u64,
    pub(crate) largest_seq: u64,
    pub(crate) compression: u8,
    /// Earliest TTL expiry of any entry (ms), 0 if none.
    pub(crate) min_expiry: u64,
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
}

impl TableProps {
    fn numbers(&self) -> [(u64, u64); 11] {
        [
            (1, self.entries),
            (2, self.tombstones),
            (3, self.raw_key_bytes),
            (4, self.raw_value_bytes),
            (5, self.data_blocks),
            (6, self.data_bytes),
            (7, self.stored_data_bytes),
            (8, self.smallest_seq),
            (9, self.largest_seq),
            (10, u64::from(self.compression)),
            (11, self.min_expiry),
        ]
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (id, v) in self.numbers() {
            put_varint(&mut out, id << 1);
            put_varint(&mut out, v);
        }
        for (id, bytes) in [(12u64, &self.smallest), (13, &self.largest)] {
            put_varint(&mut out, (id << 1) | 1);
            put_len_prefixed(&mut out, bytes);
        }
        out
    }

    pub(crate) fn decode(data: &[u8]) -> Result<TableProps, (usize, &'static str)> {
        let mut p = TableProps::default();
        let mut d = Decoder::new(data);
        while !d.is_empty() {
            let at = d.position();
            let tag = d.varint().ok_or((at, "bad property tag"))?;
            if tag & 1 == 1 {
                let bytes = d.len_prefixed().ok_or((at, "bad property bytes"))?;
                match tag >> 1 {
                    12 => p.smallest = bytes.to_vec(),
                    13 => p.largest = bytes.to_vec(),
                    _ => {}
                }
                continue;
            }
            let v = d.varint().ok_or((at, "bad property value"))?;
            match tag >> 1 {
                1 => p.entries = v,
                2 => p.tombstones = v,
                3 => p.raw_key_bytes = v,
                4 => p.raw_value_bytes = v,
                5 => p.data_blocks = v,
                6 => p.data_bytes = v,
                7 => p.stored_data_bytes = v,
                8 => p.smallest_seq = v,
                9 => p.largest_seq = v,
                10 => p.compression = u8::try_from(v).map_err(|_| (at, "bad compression"))?,
                11 => p.min_expiry = v,
                _ => {}
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "tests index fixtures they built")]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unknown_fields_skipped() {
        let p = TableProps {
            entries: 10,
            tombstones: 2,
            smallest_seq: 1,
            largest_seq: u64::MAX >> 8,
            smallest: b"a".to_vec(),
            largest: b"zz".to_vec(),
            min_expiry: 99,
            ..TableProps::default()
        };
        let mut enc = p.encode();
        put_varint(&mut enc, 40 << 1);
        put_varint(&mut enc, 7);
        put_varint(&mut enc, (41 << 1) | 1);
        put_len_prefixed(&mut enc, b"future");
        assert_eq!(TableProps::decode(&enc).expect("decode"), p);
        for cut in 1..enc.len() {
            let _ = TableProps::decode(&enc[..cut]);
        }
    }
}
