//! Appends records to a log file.
//!
//! Concurrency: one writer per file, owned by whoever holds the write path
//! (the group-commit leader, or the version set's lock for the manifest).
//! The file handle itself may be shared for `sync` (the periodic syncer).

use std::sync::Arc;

use crate::coding::{put_u32, put_u64};
use crate::error::Result;
use crate::format::{
    FRAGMENT_FIRST, FRAGMENT_FULL, FRAGMENT_LAST, FRAGMENT_MIDDLE, LOG_BLOCK_SIZE,
    LOG_FORMAT_VERSION, LOG_HEADER_SIZE, LOG_MAGIC,
};
use crate::fs::WritableFile;

/// Encodes records into fragments and appends them.
#[derive(Debug)]
pub(crate) struct LogWriter {
    file: Arc<dyn WritableFile>,
    /// Bytes used in the current block (as encoded, including ones not yet appended).
    block_offset: usize,
    /// Bytes appended to the file.
    len: u64,
}

impl LogWriter {
    /// Starts a new log on an empty file and appends its header record.
    pub(crate) fn new(file: Arc<dyn WritableFile>, number: u64, kind: u8) -> Result<Self> {
        let mut w = LogWriter {
            file,
            block_offset: 0,
            len: 0,
        };
        let mut header = Vec::with_capacity(21);
        put_u64(&mut header, LOG_MAGIC);
        put_u32(&mut header, LOG_FORMAT_VERSION);
        header.push(kind);
        put_u64(&mut header, number);
        let mut buf = Vec::new();
        w.encode_record(&header, &mut buf);
        w.append(&buf)?;
        Ok(w)
    }

    /// Appends the fragments of one record to `out`. Several records may be
    /// encoded into one buffer and appended with one call (group commit);
    /// `out` must then be passed to [`append`](Self::append) before encoding more.
    pub(crate) fn encode_record(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let mut left = payload;
        let mut first = true;
        loop {
            let room = LOG_BLOCK_SIZE - self.block_offset;
            if room < LOG_HEADER_SIZE {
                out.resize(out.len() + room, 0);
                self.block_offset = 0;
            }
            let avail = LOG_BLOCK_SIZE - self.block_offset - LOG_HEADER_SIZE;
            let n = left.len().min(avail);
            let (chunk, rest) = left.split_at(n);
            let last = rest.is_empty();
            let kind = match (first, last) {
                (true, true) => FRAGMENT_FULL,
                (true, false) => FRAGMENT_FIRST,
                (false, false) => FRAGMENT_MIDDLE,
                (false, true) => FRAGMENT_LAST,
            };
            let mut h = crc32fast::Hasher::new();
            h.update(&[kind]);
            h.update(chunk);
            put_u32(out, h.finalize());
            out.extend_from_slice(&(n as u16).to_le_bytes());
            out.push(kind);
            out.extend_from_slice(chunk);
            self.block_offset += LOG_HEADER_SIZE + n;
            left = rest;
            first = false;
            if last {
                break;
            }
        }
    }

    /// Appends encoded fragments to the file (handed to the OS, not synced).
    pub(crate) fn append(&mut self, encoded: &[u8]) -> Result<()> {
        self.file.append(encoded)?;
        self.len += encoded.len() as u64;
        Ok(())
    }

    /// Appends encoded fragments and makes everything appended durable.
    pub(crate) fn append_and_sync(&mut self, encoded: &[u8]) -> Result<()> {
        self.file.append_and_sync(encoded)?;
        self.len += encoded.len() as u64;
        Ok(())
    }

    /// Encodes and appends one record.
    pub(crate) fn add_record(&mut self, payload: &[u8]) -> Result<()> {
        let mut buf = Vec::with_capacity(payload.len() + LOG_HEADER_SIZE);
        self.encode_record(payload, &mut buf);
        self.append(&buf)
    }

    /// Makes everything appended durable.
    pub(crate) fn sync(&self) -> Result<()> {
        self.file.sync()
    }

    /// Bytes appended so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}
