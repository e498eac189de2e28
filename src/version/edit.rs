//! Version edits: the records of the manifest.
//!
//! ```text
//! edit  := field*
//! field := 1 log_number | 2 next_file_number | 3 last_sequence      (varint values)
//!        | 4 added file: level, number, size, smallest, largest, smallest_seq,
//!                        largest_seq, entries, tombstones, raw_bytes, min_expiry
//!        | 5 deleted file: level, number
//!        | 6 namespace: id, name, max_keys, default_ttl_ms
//!        | 7 dropped namespace: id
//! ```
//! Tags and numbers are varints; keys and names are varint-length-prefixed.
#![deny(clippy::indexing_slicing)]

use std::path::Path;

use crate::coding::{Decoder, put_len_prefixed, put_varint};
use crate::error::{Error, Result};

const TAG_LOG_NUMBER: u64 = 1;
const TAG_NEXT_FILE: u64 = 2;
const TAG_LAST_SEQUENCE: u64 = 3;
const TAG_ADDED_FILE: u64 = 4;
const TAG_DELETED_FILE: u64 = 5;
const TAG_NAMESPACE: u64 = 6;
const TAG_DROPPED_NAMESPACE: u64 = 7;

/// Levels a file may be recorded at.
pub(crate) const MAX_LEVELS: usize = 7;

/// What the manifest knows about one table file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct FileInfo {
    pub(crate) number: u64,
    pub(crate) size: u64,
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
    pub(crate) smallest_seq: u64,
    pub(crate) largest_seq: u64,
    pub(crate) entries: u64,
    pub(crate) tombstones: u64,
    /// Key and value bytes before compression (for space amplification).
    pub(crate) raw_bytes: u64,
    /// Earliest TTL expiry among the entries (ms), 0 if none.
    pub(crate) min_expiry: u64,
}

/// A namespace as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct NamespaceRecord {
    pub(crate) id: u32,
    pub(crate) name: String,
    /// 0 means unlimited.
    pub(crate) max_keys: u64,
    /// 0 means no default TTL.
    pub(crate) default_ttl_ms: u64,
}

/// A change to the set of live files and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VersionEdit {
    pub(crate) log_number: Option<u64>,
    pub(crate) next_file_number: Option<u64>,
    pub(crate) last_sequence: Option<u64>,
    pub(crate) added: Vec<(usize, FileInfo)>,
    pub(crate) deleted: Vec<(usize, u64)>,
    pub(crate) namespaces: Vec<NamespaceRecord>,
    pub(crate) dropped_namespaces: Vec<u32>,
}

impl VersionEdit {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let counters = [
            (TAG_LOG_NUMBER, self.log_number),
            (TAG_NEXT_FILE, self.next_file_number),
            (TAG_LAST_SEQUENCE, self.last_sequence),
        ];
        for (tag, v) in counters {
            if let Some(v) = v {
                put_varint(&mut out, tag);
                put_varint(&mut out, v);
            }
        }
        for (level, f) in &self.added {
            put_varint(&mut out, TAG_ADDED_FILE);
            put_varint(&mut out, *level as u64);
            put_varint(&mut out, f.number);
            put_varint(&mut out, f.size);
            put_len_prefixed(&mut out, &f.smallest);
            put_len_prefixed(&mut out, &f.largest);
            for v in [
                f.smallest_seq,
                f.largest_seq,
                f.entries,
                f.tombstones,
                f.raw_bytes,
                f.min_expiry,
            ] {
                put_varint(&mut out, v);
            }
        }
        for (level, number) in &self.deleted {
            put_varint(&mut out, TAG_DELETED_FILE);
            put_varint(&mut out, *level as u64);
            put_varint(&mut out, *number);
        }
        for ns in &self.namespaces {
            put_varint(&mut out, TAG_NAMESPACE);
            put_varint(&mut out, u64::from(ns.id));
            put_len_prefixed(&mut out, ns.name.as_bytes());
            put_varint(&mut out, ns.max_keys);
            put_varint(&mut out, ns.default_ttl_ms);
        }
        for id in &self.dropped_namespaces {
            put_varint(&mut out, TAG_DROPPED_NAMESPACE);
            put_varint(&mut out, u64::from(*id));
        }
        out
    }

    /// Decodes an edit read at `offset` of the manifest `file`.
    pub(crate) fn decode(data: &[u8], file: &Path, offset: u64) -> Result<VersionEdit> {
        let mut e = VersionEdit::default();
        let mut d = Decoder::new(data);
        let bad =
            |at: usize, why: &str| Error::corruption(file, offset + at as u64, why.to_owned());
        while !d.is_empty() {
            let at = d.position();
            let tag = d.varint().ok_or_else(|| bad(at, "bad edit tag"))?;
            let mut num = || d.varint().ok_or_else(|| bad(at, "truncated edit field"));
            match tag {
                TAG_LOG_NUMBER => e.log_number = Some(num()?),
                TAG_NEXT_FILE => e.next_file_number = Some(num()?),
                TAG_LAST_SEQUENCE => e.last_sequence = Some(num()?),
                TAG_DELETED_FILE => {
                    let level = level_of(num()?).ok_or_else(|| bad(at, "level out of range"))?;
                    e.deleted.push((level, num()?));
                }
                TAG_DROPPED_NAMESPACE => {
                    let id = u32::try_from(num()?).map_err(|_| bad(at, "namespace id"))?;
                    e.dropped_namespaces.push(id);
                }
                TAG_ADDED_FILE => {
                    let level = d.varint().and_then(level_of);
                    let level = level.ok_or_else(|| bad(at, "level out of range"))?;
                    let (number, size) = (d.varint(), d.varint());
                    let (smallest, largest) = (d.len_prefixed(), d.len_prefixed());
                    let mut rest = [0u64; 6];
                    for r in &mut rest {
                        *r = d.varint().ok_or_else(|| bad(at, "truncated file record"))?;
                    }
                    let (Some(number), Some(size), Some(smallest), Some(largest)) =
                        (number, size, smallest, largest)
                    else {
                        return Err(bad(at, "truncated file record"));
                    };
                    let [
                        smallest_seq,
                        largest_seq,
                        entries,
                        tombstones,
                        raw_bytes,
                        min_expiry,
                    ] = rest;
                    e.added.push((
                        level,
                        FileInfo {
                            number,
                            size,
                            smallest: smallest.to_vec(),
                            largest: largest.to_vec(),
                            smallest_seq,
                            largest_seq,
                            entries,
                            tombstones,
                            raw_bytes,
                            min_expiry,
                        },
                    ));
                }
                TAG_NAMESPACE => {
                    let id = d.varint().and_then(|v| u32::try_from(v).ok());
                    let name = d.len_prefixed().map(|n| String::from_utf8(n.to_vec()));
                    let (max_keys, ttl) = (d.varint(), d.varint());
                    let (Some(id), Some(Ok(name)), Some(max_keys), Some(default_ttl_ms)) =
                        (id, name, max_keys, ttl)
                    else {
                        return Err(bad(at, "bad namespace record"));
                    };
                    e.namespaces.push(NamespaceRecord {
                        id,
                        name,
                        max_keys,
                        default_ttl_ms,
                    });
                }
                _ => return Err(bad(at, "unknown edit tag")),
            }
        }
        Ok(e)
    }
}

fn level_of(v: u64) -> Option<usize> {
    usize::try_from(v).ok().filter(|l| *l < MAX_LEVELS)
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "tests index fixtures they built")]
mod tests {
    use super::*;

    fn sample() -> VersionEdit {
        VersionEdit {
            log_number: Some(7),
            next_file_number: Some(12),
            last_sequence: Some(1 << 40),
            added: vec![(
                2,
                FileInfo {
                    number: 9,
                    size: 4096,
                    smallest: b"a\0\0\0\0\0\0\0\0".to_vec(),
                    largest: b"z\0\0\0\0\0\0\0\0".to_vec(),
                    smallest_seq: 1,
                    largest_seq: 99,
                    entries: 10,
                    tombstones: 1,
                    raw_bytes: 300,
                    min_expiry: 0,
                },
            )],
            deleted: vec![(0, 3), (1, 4)],
            namespaces: vec![NamespaceRecord {
                id: 1,
                name: "users".into(),
                max_keys: 10,
                default_ttl_ms: 5000,
            }],
            dropped_namespaces: vec![2],
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        let got = VersionEdit::decode(&e.encode(), Path::new("m"), 0).expect("decode");
        assert_eq!(got, e);
    }

    #[test]
    fn truncation_and_junk_are_corruption() {
        let enc = sample().encode();
        for cut in 1..enc.len() {
            // A cut may land on a field boundary and still decode: then it must differ.
            if let Ok(e) = VersionEdit::decode(&enc[..cut], Path::new("m"), 0) {
                assert_ne!(e, sample());
            }
        }
        assert!(VersionEdit::decode(&[99, 1], Path::new("m"), 0).is_err());
        assert!(VersionEdit::decode(&[TAG_DELETED_FILE as u8, 9, 1], Path::new("m"), 0).is_err());
    }
}
