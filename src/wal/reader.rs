//! Reads records back from a log file, classifying damage.
//!
//! The reader never stops at damage on its own: it reports it as a
//! [`LogItem::Damage`] and resynchronises at the next intact record start,
//! so the caller's recovery mode decides what damage means. Damage after
//! which no intact record exists is marked `torn`.
#![deny(clippy::indexing_slicing)]

use bytes::Bytes;

use crate::coding::{Decoder, read_u32};
use crate::format::{
    FRAGMENT_FIRST, FRAGMENT_FULL, FRAGMENT_LAST, FRAGMENT_MIDDLE, LOG_BLOCK_SIZE,
    LOG_FORMAT_VERSION, LOG_HEADER_RECORD_SIZE, LOG_HEADER_SIZE, LOG_MAGIC,
};

/// What the reader found next.
#[derive(Debug, Clone)]
pub(crate) enum LogItem {
    /// An intact record starting at `offset`.
    Record { offset: u64, data: Bytes },
    /// Bytes from `offset` could not be read as records. `torn` if nothing
    /// intact follows in the file.
    Damage {
        offset: u64,
        reason: &'static str,
        torn: bool,
    },
    /// The file's first record is intact but does not name this log.
    BadHeader { reason: String },
}

/// The previous record never got its LAST fragment, yet an intact record follows.
fn interrupted(start: usize) -> LogItem {
    LogItem::Damage {
        offset: start as u64,
        reason: "record interrupted by a new record",
        torn: false,
    }
}

/// Iterates the records of one log file held in memory.
#[derive(Debug)]
pub(crate) struct LogReader {
    data: Bytes,
    pos: usize,
    number: u64,
    /// Accept a header naming any log number (a file read on its own).
    any_number: bool,
    kind: u8,
    header_seen: bool,
    /// A record being assembled from fragments: (start offset, bytes).
    partial: Option<(usize, Vec<u8>)>,
    /// An item found while reporting another.
    queued: Option<LogItem>,
}

struct Fragment {
    kind: u8,
    start: usize,
    end: usize,
}

impl LogReader {
    /// Reads `data`, the contents of log `number` of the given kind.
    pub(crate) fn new(data: Bytes, number: u64, kind: u8) -> Self {
        LogReader {
            data,
            pos: 0,
            number,
            any_number: false,
            kind,
            header_seen: false,
            partial: None,
            queued: None,
        }
    }

    /// Accepts whatever log number the header names (for reading a file
    /// apart from its database, perhaps renamed).
    pub(crate) fn any_number(mut self) -> Self {
        self.any_number = true;
        self
    }

    /// The next record or damage report; `None` at the end of the file.
    /// The header record is checked and consumed, not returned.
    pub(crate) fn next_item(&mut self) -> Option<LogItem> {
        loop {
            let item = self.next_raw()?;
            if self.header_seen {
                return Some(item);
            }
            match item {
                LogItem::Record { data, .. } => {
                    self.header_seen = true;
                    if let Err(reason) = self.check_header(&data) {
                        self.pos = self.data.len();
                        return Some(LogItem::BadHeader { reason });
                    }
                }
                other => {
                    self.header_seen = true;
                    return Some(other);
                }
            }
        }
    }

    fn check_header(&self, data: &[u8]) -> Result<(), String> {
        let mut d = Decoder::new(data);
        let (magic, version, kind, number) = (d.u64(), d.u32(), d.u8(), d.u64());
        if data.len() != LOG_HEADER_RECORD_SIZE || magic != Some(LOG_MAGIC) {
            return Err("not a strata-kv log file (bad magic)".into());
        }
        match version {
            Some(v) if v <= LOG_FORMAT_VERSION && v > 0 => {}
            other => return Err(format!("unsupported log format version {other:?}")),
        }
        if kind != Some(self.kind) {
            return Err(format!("log kind {kind:?}, expected {}", self.kind));
        }
        if !self.any_number && number != Some(self.number) {
            return Err(format!(
                "log names itself {number:?}, expected {}",
                self.number
            ));
        }
        Ok(())
    }

    fn next_raw(&mut self) -> Option<LogItem> {
        if let Some(item) = self.queued.take() {
            return Some(item);
        }
        loop {
            if self.pos >= self.data.len() {
                let (start, _) = self.partial.take()?;
                return Some(LogItem::Damage {
                    offset: start as u64,
                    reason: "record cut short by the end of the file",
                    torn: true,
                });
            }
            let room = LOG_BLOCK_SIZE - self.pos % LOG_BLOCK_SIZE;
            if room < LOG_HEADER_SIZE {
                self.pos += room; // block trailer padding
                continue;
            }
            let frag = match self.parse_fragment(self.pos) {
                Ok(f) => f,
                Err(reason) => return Some(self.damage(self.pos, reason)),
            };
            let at = self.pos;
            self.pos = frag.end;
            let payload = self.data.slice(frag.start..frag.end);
            match frag.kind {
                FRAGMENT_FULL => {
                    let record = LogItem::Record {
                        offset: at as u64,
                        data: payload,
                    };
                    if let Some((start, _)) = self.partial.take() {
                        self.queued = Some(record);
                        return Some(interrupted(start));
                    }
                    return Some(record);
                }
                FRAGMENT_FIRST => {
                    if let Some((start, _)) = self.partial.replace((at, payload.to_vec())) {
                        return Some(interrupted(start));
                    }
                }
                _ => {
                    let Some((start, mut buf)) = self.partial.take() else {
                        return Some(self.damage(at, "fragment without a record start"));
                    };
                    buf.extend_from_slice(&payload);
                    if frag.kind == FRAGMENT_LAST {
                        return Some(LogItem::Record {
                            offset: start as u64,
                            data: Bytes::from(buf),
                        });
                    }
                    self.partial = Some((start, buf));
                }
            }
        }
    }

    /// Reports damage found at `at` and moves to the next intact record start.
    fn damage(&mut self, at: usize, reason: &'static str) -> LogItem {
        let offset = self.partial.take().map_or(at, |(start, _)| start) as u64;
        match self.resync_from(at + 1) {
            Some(next) => {
                self.pos = next;
                LogItem::Damage {
                    offset,
                    reason,
                    torn: false,
                }
            }
            None => {
                self.pos = self.data.len();
                LogItem::Damage {
                    offset,
                    reason,
                    torn: true,
                }
            }
        }
    }

    /// The first offset at or after `from` holding an intact FULL or FIRST fragment.
    fn resync_from(&self, from: usize) -> Option<usize> {
        let mut p = from;
        while p < self.data.len() {
            // Zeros (preallocated space) cannot hold a fragment's type byte,
            // the header's 7th: skip a run of them in one step, so the scan
            // stays linear in the file's size.
            let zeros = self
                .data
                .get(p..)
                .unwrap_or_default()
                .iter()
                .position(|&b| b != 0);
            match zeros {
                None => return None,
                Some(run) if run > LOG_HEADER_SIZE - 1 => {
                    p += run - (LOG_HEADER_SIZE - 1);
                    continue;
                }
                Some(_) => {}
            }
            if matches!(
                self.parse_fragment(p),
                Ok(Fragment {
                    kind: FRAGMENT_FULL | FRAGMENT_FIRST,
                    ..
                })
            ) {
                return Some(p);
            }
            p += 1;
        }
        None
    }

    fn parse_fragment(&self, pos: usize) -> Result<Fragment, &'static str> {
        let in_block = pos % LOG_BLOCK_SIZE;
        if LOG_BLOCK_SIZE - in_block < LOG_HEADER_SIZE {
            return Err("fragment header in block padding");
        }
        let header = self
            .data
            .get(pos..pos + LOG_HEADER_SIZE)
            .ok_or("fragment header cut short")?;
        let kind = *header.get(6).ok_or("fragment header cut short")?;
        if !(FRAGMENT_FULL..=FRAGMENT_LAST).contains(&kind) {
            return Err(if header.iter().all(|&b| b == 0) {
                "zero-filled space"
            } else {
                "unknown fragment type"
            });
        }
        let len = usize::from(u16::from_le_bytes([
            *header.get(4).ok_or("fragment header cut short")?,
            *header.get(5).ok_or("fragment header cut short")?,
        ]));
        if in_block + LOG_HEADER_SIZE + len > LOG_BLOCK_SIZE {
            return Err("fragment length crosses a block boundary");
        }
        let start = pos + LOG_HEADER_SIZE;
        let payload = self
            .data
            .get(start..start + len)
            .ok_or("fragment cut short by the end of the file")?;
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind]);
        h.update(payload);
        if Some(h.finalize()) != read_u32(header, 0) {
            return Err("fragment checksum mismatch");
        }
        debug_assert!(matches!(
            kind,
            FRAGMENT_FULL | FRAGMENT_FIRST | FRAGMENT_MIDDLE | FRAGMENT_LAST
        ));
        Ok(Fragment {
            kind,
            start,
            end: start + len,
        })
    }
}
