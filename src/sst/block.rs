//! Data and index blocks: prefix-compressed entries with restart points.
//!
//! ```text
//! block := entry* | restart u32* | restart_count u32
//! entry := shared varint | unshared varint | value_len varint | key[shared..] | value
//! ```
//! Every `restart_interval`th entry stores its whole key (`shared == 0`) and
//! its offset goes into the restart array, so a seek binary-searches the
//! restarts and then scans at most one run of entries.
#![deny(clippy::indexing_slicing)]

use std::ops::Range;

use bytes::Bytes;

use super::prefetch::prefetch;
use crate::coding::{Decoder, put_u32, put_varint, read_u32};
use crate::format::TRAILER_SIZE;
use crate::key;

/// Builds one block in memory.
#[derive(Debug)]
pub(crate) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    counter: usize,
    interval: usize,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    pub(crate) fn new(interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            counter: 0,
            interval: interval.max(1),
            last_key: Vec::new(),
            entries: 0,
        }
    }

    /// Appends an entry; keys must arrive in increasing internal-key order.
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) {
        let shared = if self.counter < self.interval {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
            0
        };
        let delta = key.get(shared..).unwrap_or_default();
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, delta.len() as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(delta);
        self.buf.extend_from_slice(value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.counter += 1;
        self.entries += 1;
    }

    /// Bytes the finished block will take.
    pub(crate) fn size_estimate(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub(crate) fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Appends the restart array and returns the block bytes; call `reset` before reuse.
    pub(crate) fn finish(&mut self) -> &[u8] {
        for &r in &self.restarts {
            put_u32(&mut self.buf, r);
        }
        put_u32(&mut self.buf, self.restarts.len() as u32);
        &self.buf
    }

    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.restarts.clear();
        self.restarts.push(0);
        self.counter = 0;
        self.last_key.clear();
        self.entries = 0;
    }
}

/// Restart offsets a block keeps in its struct. With the default 4 KiB
/// blocks and 16-entry runs a block has 2–3 restarts, so a point lookup in
/// a cached block knows where every restart key lies without loading the
/// restart array (a cache miss of its own), and prefetches them together.
const INLINE_RESTARTS: usize = 4;

/// The unit of `prefetch`.
const CACHE_LINE: usize = 64;

/// At most this much of a restart run is prefetched by `seek_ge`: 32 lines,
/// a whole run of 16 entries with 100-byte values.
const MAX_RUN_PREFETCH: usize = 32 * CACHE_LINE;

/// A decoded-on-demand block. Cheap to clone (shares its bytes).
#[derive(Debug, Clone)]
pub(crate) struct Block {
    data: Bytes,
    /// Where entries end and the restart array begins.
    entries_end: usize,
    restarts: usize,
    /// The first restart offsets as stored: checked on use, like the rest.
    first_restarts: [u32; INLINE_RESTARTS],
}

/// Where a block failed to decode: offset inside the block and why.
pub(crate) type BlockError = (usize, &'static str);

impl Block {
    /// Checks the restart array's framing. Entries are checked as they are read.
    pub(crate) fn new(data: Bytes) -> Result<Block, BlockError> {
        let len = data.len();
        let count = len
            .checked_sub(4)
            .and_then(|at| read_u32(&data, at))
            .ok_or((0, "block shorter than its restart count"))? as usize;
        let entries_end = count
            .checked_mul(4)
            .and_then(|n| len.checked_sub(4 + n))
            .ok_or((len.saturating_sub(4), "restart count larger than the block"))?;
        if count == 0 {
            return Err((len - 4, "block without restart points"));
        }
        let mut first_restarts = [u32::MAX; INLINE_RESTARTS];
        for (i, slot) in first_restarts.iter_mut().enumerate().take(count) {
            *slot = read_u32(&data, entries_end + 4 * i).unwrap_or(u32::MAX);
        }
        Ok(Block {
            data,
            entries_end,
            restarts: count,
            first_restarts,
        })
    }

    fn restart(&self, i: usize) -> Result<usize, BlockError> {
        let at = self.entries_end + 4 * i;
        let inline = self.first_restarts.get(i).filter(|_| i < self.restarts);
        let off = match inline {
            Some(&off) => off,
            None => read_u32(&self.data, at).ok_or((at, "restart point out of range"))?,
        } as usize;
        if off >= self.entries_end && !(off == 0 && self.entries_end == 0) {
            return Err((at, "restart point beyond the entries"));
        }
        Ok(off)
    }

    /// Decodes the entry at `pos`, extending `key` (which holds the previous
    /// key) and returning the next entry's offset and the value's range.
    #[inline(always)]
    fn decode_at(
        &self,
        pos: usize,
        key: &mut Vec<u8>,
    ) -> Result<(usize, Range<usize>), BlockError> {
        let (entries, [shared, unshared, value_len, header]) = self.entry_header(pos)?;
        let bad = (pos, "malformed block entry");
        if shared > key.len() {
            return Err((pos, "entry shares more bytes than the previous key has"));
        }
        let delta_end = header.checked_add(unshared).ok_or(bad)?;
        let end = delta_end
            .checked_add(value_len)
            .filter(|&e| e <= entries.len())
            .ok_or((pos, "entry runs past the entries"))?;
        let delta = entries.get(header..delta_end).ok_or(bad)?;
        key.truncate(shared);
        key.extend_from_slice(delta);
        if key.len() < TRAILER_SIZE {
            return Err((pos, "key shorter than its trailer"));
        }
        Ok((pos + end, pos + delta_end..pos + end))
    }

    /// The entries from `pos` on, and the entry's shared, unshared and value
    /// lengths and header size.
    #[inline(always)]
    fn entry_header(&self, pos: usize) -> Result<(&[u8], [usize; 4]), BlockError> {
        let entries = self
            .data
            .get(pos..self.entries_end)
            .ok_or((pos, "entry offset out of range"))?;
        // Almost every entry's three lengths fit one varint byte each.
        let header = match entries {
            [a, b, c, ..] if (a | b | c) & 0x80 == 0 => {
                [usize::from(*a), usize::from(*b), usize::from(*c), 3]
            }
            _ => {
                let bad = (pos, "malformed block entry");
                let mut d = Decoder::new(entries);
                let shared = d.varint().ok_or(bad)? as usize;
                let unshared = d.varint().ok_or(bad)? as usize;
                let value_len = d.varint().ok_or(bad)? as usize;
                [shared, unshared, value_len, d.position()]
            }
        };
        Ok((entries, header))
    }

    /// The key at restart point `i`, read in place: a restart entry shares
    /// nothing with the key before it, so it is stored whole.
    fn restart_key(&self, i: usize) -> Result<&[u8], BlockError> {
        let pos = self.restart(i)?;
        let (entries, [shared, unshared, value_len, header]) = self.entry_header(pos)?;
        if shared != 0 {
            return Err((pos, "entry shares more bytes than the previous key has"));
        }
        // The same bounds `decode_at` checks, value included, so a damaged
        // restart entry is reported whether it is probed or decoded.
        let key_end = header.checked_add(unshared);
        let key = key_end
            .and_then(|end| end.checked_add(value_len))
            .filter(|&end| end <= entries.len())
            .and(key_end)
            .and_then(|end| entries.get(header..end))
            .ok_or((pos, "entry runs past the entries"))?;
        if key.len() < TRAILER_SIZE {
            return Err((pos, "key shorter than its trailer"));
        }
        Ok(key)
    }

    /// The number of leading restarts whose key is `< target` (`<=` if `inclusive`).
    fn restarts_before(&self, target: &[u8], inclusive: bool) -> Result<usize, BlockError> {
        if self.entries_end == 0 {
            return Ok(0);
        }
        let (mut lo, mut hi) = (0, self.restarts);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let ord = key::compare(self.restart_key(mid)?, target);
            if ord.is_lt() || (inclusive && ord.is_eq()) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

impl Block {
    /// The first entry with key >= `target`: fills `key` and returns the
    /// value's range, or `None` past the last entry. The point-lookup path:
    /// no iterator state, `key` is the caller's reusable buffer.
    pub(crate) fn seek_ge(
        &self,
        target: &[u8],
        key: &mut Vec<u8>,
    ) -> Result<Option<Range<usize>>, BlockError> {
        if self.restarts <= INLINE_RESTARTS {
            // Start loading every restart key at once: the search needs
            // one or two of them, and in a cached block each is a miss.
            for &off in self.first_restarts.iter().take(self.restarts) {
                if let Some(b) = self.data.get(off as usize) {
                    prefetch(b);
                }
            }
        }
        let run = self.restarts_before(target, false)?.saturating_sub(1);
        let mut pos = self.restart(run)?;
        // The scan below reads the run entry by entry, each load depending
        // on the previous entry's lengths: start loading the run now (its
        // first `MAX_RUN_PREFETCH` bytes, where runs hold large values). A
        // damaged next restart only misplaces the hint; the scan checks.
        let run_end = match run + 1 < self.restarts {
            true => self.restart(run + 1).unwrap_or(self.entries_end),
            false => self.entries_end,
        };
        let ahead = run_end.min(pos + MAX_RUN_PREFETCH);
        for line in self
            .data
            .get(pos..ahead)
            .unwrap_or_default()
            .chunks(CACHE_LINE)
        {
            prefetch(line);
        }
        key.clear();
        while pos < self.entries_end {
            let (next, value) = self.decode_at(pos, key)?;
            if key::compare(key, target).is_ge() {
                return Ok(Some(value));
            }
            pos = next;
        }
        Ok(None)
    }

    /// The bytes of a value range from `seek_ge`.
    pub(crate) fn value_bytes(&self, range: Range<usize>) -> Bytes {
        self.data.slice(range)
    }
}

/// A cursor over one block. Forward mode (`seek`, `seek_to_first`, `next`)
/// and backward mode (`seek_for_prev`, `seek_to_last`, `prev`) are not mixed.
#[derive(Debug)]
pub(crate) struct BlockIter {
    block: Block,
    key: Vec<u8>,
    value: Range<usize>,
    next: usize,
    valid: bool,
    err: Option<BlockError>,
    /// Backward mode: entries of the current restart run, decoded.
    run_index: usize,
    run_keys: Vec<u8>,
    run: Vec<(Range<usize>, Range<usize>)>,
    run_pos: usize,
}

impl BlockIter {
    pub(crate) fn new(block: Block) -> Self {
        BlockIter {
            block,
            key: Vec::new(),
            value: 0..0,
            next: 0,
            valid: false,
            err: None,
            run_index: 0,
            run_keys: Vec::new(),
            run: Vec::new(),
            run_pos: 0,
        }
    }

    pub(crate) fn valid(&self) -> bool {
        self.valid
    }

    pub(crate) fn error(&self) -> Option<BlockError> {
        self.err
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    pub(crate) fn value(&self) -> Bytes {
        self.block.data.slice(self.value.clone())
    }

    pub(crate) fn value_slice(&self) -> &[u8] {
        self.block.data.get(self.value.clone()).unwrap_or_default()
    }

    fn fail(&mut self, e: BlockError) {
        self.err = Some(e);
        self.valid = false;
    }

    fn parse_next(&mut self) {
        if self.next >= self.block.entries_end {
            self.valid = false;
            return;
        }
        match self.block.decode_at(self.next, &mut self.key) {
            Ok((next, value)) => {
                self.next = next;
                self.value = value;
                self.valid = true;
            }
            Err(e) => self.fail(e),
        }
    }

    pub(crate) fn seek_to_first(&mut self) {
        self.key.clear();
        self.next = 0;
        self.parse_next();
    }

    pub(crate) fn next(&mut self) {
        if self.valid {
            self.parse_next();
        }
    }

    /// First entry with key >= `target`.
    pub(crate) fn seek(&mut self, target: &[u8]) {
        let run = match self.block.restarts_before(target, false) {
            Ok(n) => n.saturating_sub(1),
            Err(e) => return self.fail(e),
        };
        match self.block.restart(run) {
            Ok(start) => self.next = start,
            Err(e) => return self.fail(e),
        }
        self.key.clear();
        loop {
            self.parse_next();
            if !self.valid || key::compare(&self.key, target).is_ge() {
                return;
            }
        }
    }

    fn load_run(&mut self, index: usize) -> Result<(), BlockError> {
        self.run_index = index;
        self.run.clear();
        self.run_keys.clear();
        let mut pos = self.block.restart(index)?;
        let end = if index + 1 < self.block.restarts {
            self.block.restart(index + 1)?
        } else {
            self.block.entries_end
        };
        let mut key = Vec::new();
        while pos < end {
            let (next, value) = self.block.decode_at(pos, &mut key)?;
            let start = self.run_keys.len();
            self.run_keys.extend_from_slice(&key);
            self.run.push((start..self.run_keys.len(), value));
            pos = next;
        }
        Ok(())
    }

    fn show_run_entry(&mut self) {
        match self.run.get(self.run_pos) {
            Some((k, v)) => {
                self.key.clear();
                self.key
                    .extend_from_slice(self.run_keys.get(k.clone()).unwrap_or_default());
                self.value = v.clone();
                self.valid = true;
            }
            None => self.valid = false,
        }
    }

    pub(crate) fn seek_to_last(&mut self) {
        if self.block.entries_end == 0 {
            self.valid = false;
            return;
        }
        if let Err(e) = self.load_run(self.block.restarts - 1) {
            return self.fail(e);
        }
        self.run_pos = self.run.len().saturating_sub(1);
        self.show_run_entry();
    }

    /// Last entry with key <= `target`.
    pub(crate) fn seek_for_prev(&mut self, target: &[u8]) {
        if self.block.entries_end == 0 {
            self.valid = false;
            return;
        }
        let runs = match self.block.restarts_before(target, true) {
            Ok(n) => n,
            Err(e) => return self.fail(e),
        };
        if runs == 0 {
            self.valid = false;
            return;
        }
        if let Err(e) = self.load_run(runs - 1) {
            return self.fail(e);
        }
        let keys = &self.run_keys;
        let count = self
            .run
            .iter()
            .take_while(|(k, _)| {
                key::compare(keys.get(k.clone()).unwrap_or_default(), target).is_le()
            })
            .count();
        self.run_pos = count.saturating_sub(1);
        self.show_run_entry();
    }

    pub(crate) fn prev(&mut self) {
        if !self.valid {
            return;
        }
        if self.run_pos > 0 {
            self.run_pos -= 1;
            return self.show_run_entry();
        }
        if self.run_index == 0 {
            self.valid = false;
            return;
        }
        if let Err(e) = self.load_run(self.run_index - 1) {
            return self.fail(e);
        }
        self.run_pos = self.run.len().saturating_sub(1);
        self.show_run_entry();
    }
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "tests index fixtures they built")]
mod tests {
    use super::*;
    use crate::format::KIND_PUT;

    fn ik(i: u32) -> Vec<u8> {
        let mut v = Vec::new();
        key::push_ikey(&mut v, format!("key{i:05}").as_bytes(), 1, KIND_PUT);
        v
    }

    fn build(n: u32, interval: usize) -> Block {
        let mut b = BlockBuilder::new(interval);
        for i in 0..n {
            b.add(&ik(i * 2), format!("v{i}").as_bytes());
        }
        Block::new(Bytes::copy_from_slice(b.finish())).expect("block")
    }

    #[test]
    fn forward_seek_and_scan() {
        for interval in [1, 3, 16] {
            let block = build(50, interval);
            let mut it = BlockIter::new(block.clone());
            it.seek_to_first();
            let mut n = 0;
            while it.valid() {
                assert_eq!(it.key(), ik(n * 2));
                it.next();
                n += 1;
            }
            assert_eq!(n, 50);
            for t in 0..101 {
                it.seek(&ik(t));
                if t >= 99 {
                    assert!(!it.valid(), "seek past end {t}");
                } else {
                    assert_eq!(it.key(), ik(t.div_ceil(2) * 2), "seek {t}");
                }
            }
            assert!(it.error().is_none());
        }
    }

    #[test]
    fn backward_seek_and_scan() {
        for interval in [1, 4, 16] {
            let block = build(37, interval);
            let mut it = BlockIter::new(block.clone());
            it.seek_to_last();
            let mut n = 37;
            while it.valid() {
                n -= 1;
                assert_eq!(it.key(), ik(n * 2));
                it.prev();
            }
            assert_eq!(n, 0);
            for t in 0..80u32 {
                let mut it = BlockIter::new(block.clone());
                it.seek_for_prev(&ik(t));
                let want = (t / 2).min(36) * 2;
                assert_eq!(it.key(), ik(want), "seek_for_prev {t}");
            }
        }
    }

    #[test]
    fn damaged_blocks_fail_without_panicking() {
        let block = build(20, 4);
        let raw = block.data.to_vec();
        for i in 0..raw.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = raw.clone();
                bad[i] ^= flip;
                let Ok(b) = Block::new(Bytes::from(bad)) else {
                    continue;
                };
                let mut it = BlockIter::new(b.clone());
                it.seek_to_first();
                while it.valid() {
                    it.next();
                }
                let mut it = BlockIter::new(b);
                it.seek_to_last();
                while it.valid() {
                    it.prev();
                }
                it.seek(&ik(7));
                it.seek_for_prev(&ik(7));
            }
        }
        assert!(Block::new(Bytes::from_static(&[1, 2])).is_err());
        assert!(Block::new(Bytes::from_static(&[0, 0, 0, 0])).is_err());
    }

    /// Found in review: comparing restart keys in place first checked only
    /// the key's bounds, so a restart entry whose value runs past the
    /// entries passed unnoticed when the search probed it without decoding.
    #[test]
    fn regression_a_probed_restart_entry_whose_value_overruns_is_corruption() {
        let block = build(8, 1);
        let mut raw = block.data.to_vec();
        // Every entry here is a restart: 3 one-byte lengths, key, "vN".
        let entry = 4 * (3 + ik(0).len() + 2);
        raw[entry + 2] = 0x7f;
        let damaged = Block::new(Bytes::from(raw)).expect("framing intact");
        assert!(damaged.decode_at(entry, &mut Vec::new()).is_err());
        // The restart search probes restart 4 first.
        assert!(damaged.seek_ge(&ik(14), &mut Vec::new()).is_err());
    }
}
