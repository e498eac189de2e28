//! Reads a table: footer, resident index and filter, blocks on demand.
//!
//! Concurrency: a `Table` is immutable after `open` and shared through
//! `Arc` by versions and iterators; any number of threads may read it.
#![deny(clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::block::{Block, BlockError, BlockIter};
use super::buffers;
use super::compress::decompress;
use super::filter::BloomFilter;
use super::index::BlockIndex;
use super::props::TableProps;
use crate::cache::BlockCache;
use crate::coding::{Decoder, read_u32, read_u64};
use crate::error::{Error, Result};
use crate::format::{
    BLOCK_TRAILER_SIZE, COMPRESSION_NONE, FOOTER_CRC_OFFSET, FOOTER_FILTER_OFFSET,
    FOOTER_INDEX_OFFSET, FOOTER_MAGIC_OFFSET, FOOTER_PROPS_OFFSET, FOOTER_SIZE,
    FOOTER_VERSION_OFFSET, SST_FORMAT_VERSION, SST_MAGIC,
};
use crate::fs::ReadableFile;
use crate::iter::InternalIterator;
use crate::key;
use crate::memtable::Found;

thread_local! {
    /// Key buffer for point lookups, reused so a lookup allocates nothing.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An open table.
#[derive(Debug)]
pub(crate) struct Table {
    number: u64,
    path: PathBuf,
    file: Arc<dyn ReadableFile>,
    map: Option<Bytes>,
    /// End of the block area (start of the footer).
    blocks_end: u64,
    index: BlockIndex,
    filter: Option<BloomFilter>,
    props: TableProps,
    cache: Arc<BlockCache>,
}

impl Table {
    /// Opens and checks a table: footer, index, properties. A damaged filter
    /// is dropped (lookups then read data blocks); anything else damaged is
    /// `Error::Corruption`.
    pub(crate) fn open(
        file: Arc<dyn ReadableFile>,
        path: PathBuf,
        number: u64,
        cache: Arc<BlockCache>,
        use_mmap: bool,
    ) -> Result<Table> {
        let len = file.len();
        let corrupt = |offset: u64, why: &str| Error::corruption(&path, offset, why.to_owned());
        let blocks_end = len
            .checked_sub(FOOTER_SIZE as u64)
            .ok_or_else(|| corrupt(0, "file shorter than a table footer"))?;
        let map = if use_mmap { Some(file.map()?) } else { None };
        let mut footer = [0u8; FOOTER_SIZE];
        match &map {
            Some(m) => footer.copy_from_slice(
                m.get(blocks_end as usize..)
                    .filter(|f| f.len() == FOOTER_SIZE)
                    .ok_or_else(|| corrupt(blocks_end, "footer out of range"))?,
            ),
            None => file.read_at(blocks_end, &mut footer)?,
        }
        if read_u64(&footer, FOOTER_MAGIC_OFFSET) != Some(SST_MAGIC) {
            return Err(corrupt(blocks_end, "not a strata-kv table (bad magic)"));
        }
        let crc_covered = footer.get(..FOOTER_CRC_OFFSET).unwrap_or_default();
        if read_u32(&footer, FOOTER_CRC_OFFSET) != Some(crc32fast::hash(crc_covered)) {
            return Err(corrupt(blocks_end, "footer checksum mismatch"));
        }
        match read_u32(&footer, FOOTER_VERSION_OFFSET) {
            Some(v) if v == SST_FORMAT_VERSION => {}
            v => {
                return Err(corrupt(
                    blocks_end,
                    &format!("unsupported table format version {v:?}"),
                ));
            }
        }
        let handle = |at: usize| {
            (
                read_u64(&footer, at).unwrap_or(0),
                read_u64(&footer, at + 8).unwrap_or(0),
            )
        };
        let mut table = Table {
            number,
            path: path.clone(),
            file,
            map,
            blocks_end,
            index: BlockIndex::default(),
            filter: None,
            props: TableProps::default(),
            cache,
        };

        let (off, size) = handle(FOOTER_INDEX_OFFSET);
        let index = table.read_block(off, size)?;
        table.index = table.decode_index(index, off)?;

        let (off, size) = handle(FOOTER_PROPS_OFFSET);
        let props = table.load_raw(off, size)?.0;
        table.props =
            TableProps::decode(&props).map_err(|(at, why)| corrupt(off + at as u64, why))?;
        table.index.seal();

        let (off, size) = handle(FOOTER_FILTER_OFFSET);
        if size > 0 {
            match table.load_raw(off, size) {
                Ok((b, _)) => table.filter = BloomFilter::parse(b),
                Err(e) => log::warn!("{}: ignoring damaged filter: {e}", path.display()),
            }
            if table.filter.is_none() {
                log::warn!("{}: filter unusable; reading without it", path.display());
            }
        }
        Ok(table)
    }

    fn decode_index(&self, index: Block, offset: u64) -> Result<BlockIndex> {
        let mut it = BlockIter::new(index);
        let mut out = BlockIndex::default();
        let mut next_offset = 0u64;
        it.seek_to_first();
        while it.valid() {
            let mut d = Decoder::new(it.value_slice());
            let (Some(off), Some(size)) = (d.varint(), d.varint()) else {
                return Err(Error::corruption(
                    &self.path,
                    offset,
                    "bad block handle in index",
                ));
            };
            let end = off
                .checked_add(size)
                .and_then(|e| e.checked_add(BLOCK_TRAILER_SIZE as u64));
            if off != next_offset || end.is_none_or(|e| e > self.blocks_end) {
                return Err(Error::corruption(
                    &self.path,
                    offset,
                    "index points outside the data area",
                ));
            }
            if !out.is_empty() && key::compare(out.key(out.len() - 1), it.key()).is_ge() {
                return Err(Error::corruption(
                    &self.path,
                    offset,
                    "index keys out of order",
                ));
            }
            next_offset = end.unwrap_or(0);
            out.push(it.key(), off, size);
            it.next();
        }
        if let Some((at, why)) = it.error() {
            return Err(Error::corruption(&self.path, offset + at as u64, why));
        }
        Ok(out)
    }

    /// Reads the block at `offset` (of `size` stored bytes), checks its
    /// trailer and decompresses it. Bypasses the cache.
    pub(crate) fn read_block(&self, offset: u64, size: u64) -> Result<Block> {
        self.load_block(offset, size).map(|(b, _)| b)
    }

    fn load_block(&self, offset: u64, size: u64) -> Result<(Block, u64)> {
        let (bytes, heap) = self.load_raw(offset, size)?;
        let block = Block::new(bytes)
            .map_err(|(at, why)| Error::corruption(&self.path, offset + at as u64, why))?;
        Ok((block, heap))
    }

    /// Reads the stored bytes of a block, checks the trailer and
    /// decompresses. Also returns the heap bytes the block holds (its
    /// buffer's capacity; 0 for a view into the memory map).
    fn load_raw(&self, offset: u64, size: u64) -> Result<(Bytes, u64)> {
        let corrupt = |at: u64, why: &str| Error::corruption(&self.path, at, why.to_owned());
        let total = size
            .checked_add(BLOCK_TRAILER_SIZE as u64)
            .filter(|t| {
                offset
                    .checked_add(*t)
                    .is_some_and(|end| end <= self.blocks_end)
            })
            .ok_or_else(|| corrupt(offset, "block handle outside the file"))?;
        let (raw, read_heap) = match &self.map {
            Some(m) => (m.slice(offset as usize..(offset + total) as usize), 0),
            None => {
                let mut buf = vec![0u8; total as usize];
                self.file.read_at(offset, &mut buf)?;
                let heap = buf.capacity() as u64;
                (Bytes::from(buf), heap)
            }
        };
        let body_len = size as usize;
        let kind = *raw
            .get(body_len)
            .ok_or_else(|| corrupt(offset, "block trailer missing"))?;
        let stored = raw.get(..body_len).unwrap_or_default();
        let mut h = crc32fast::Hasher::new();
        h.update(stored);
        h.update(&[kind]);
        if read_u32(&raw, body_len + 1) != Some(h.finalize()) {
            return Err(corrupt(offset, "block checksum mismatch"));
        }
        if kind == COMPRESSION_NONE {
            Ok((raw.slice(..body_len), read_heap))
        } else {
            let data =
                decompress(stored, kind, buffers::take()).map_err(|why| corrupt(offset, why))?;
            let heap = data.capacity() as u64;
            Ok((buffers::into_bytes(data), heap))
        }
    }

    /// Data block `i`, through the block cache. A block the cache lacks
    /// is cached only if `fill_cache`: compaction, which passes each block
    /// of its inputs once before deleting them, reads without filling, so
    /// it neither evicts the blocks readers use nor grows the cache during
    /// a load.
    fn data_block(&self, i: usize, fill_cache: bool) -> Result<Block> {
        let (offset, size) = self
            .index
            .handle(i)
            .ok_or_else(|| Error::corruption(&self.path, 0, "data block index out of range"))?;
        match self.cache.get(self.number, offset) {
            Some(b) => Ok(b),
            None if fill_cache => self.load_into_cache(offset, size),
            None => self.read_block(offset, size),
        }
    }

    /// Reads a block the cache does not hold, and caches it.
    fn load_into_cache(&self, offset: u64, size: u64) -> Result<Block> {
        let (block, heap) = self.load_block(offset, size)?;
        self.cache.insert(self.number, offset, block.clone(), heap);
        Ok(block)
    }

    fn block_error(&self, i: usize, (at, why): BlockError) -> Error {
        let base = self.index.handle(i).map_or(0, |(offset, _)| offset);
        Error::corruption(&self.path, base + at as u64, why)
    }

    #[cfg(test)]
    pub(crate) fn data_blocks(&self) -> usize {
        self.index.len()
    }

    /// Reads every block (bypassing the cache), checks every checksum and
    /// decodes every entry; returns (blocks, entries).
    pub(crate) fn verify(&self) -> Result<(u64, u64)> {
        let mut entries = 0u64;
        for i in 0..self.index.len() {
            let (offset, size) = self.index.handle(i).unwrap_or((0, 0));
            let mut it = BlockIter::new(self.load_block(offset, size)?.0);
            it.seek_to_first();
            while it.valid() {
                entries += 1;
                it.next();
            }
            if let Some(e) = it.error() {
                return Err(self.block_error(i, e));
            }
        }
        if entries != self.props.entries {
            return Err(Error::corruption(
                &self.path,
                0,
                format!(
                    "table holds {entries} entries, its properties say {}",
                    self.props.entries
                ),
            ));
        }
        Ok((self.index.len() as u64, entries))
    }

    /// The table's properties.
    pub(crate) fn props(&self) -> &TableProps {
        &self.props
    }

    /// False only if `hash` (of a user key) is certainly not in this table.
    pub(crate) fn may_contain(&self, hash: u64) -> bool {
        self.filter.as_ref().is_none_or(|f| f.may_contain(hash))
    }

    /// Index of the first data block whose last key is >= `target`.
    fn find_block(&self, target: &[u8]) -> usize {
        self.index.find(target)
    }

    /// The newest version of `ukey` at or below the sequence in `target`
    /// (a seek key for `ukey`), checking the filter with `hash` first.
    /// With `cached_only`, a data block not in the block cache is not read:
    /// the answer is `Probe::WouldBlock`.
    pub(crate) fn get(
        &self,
        target: &[u8],
        ukey: &[u8],
        hash: u64,
        cached_only: bool,
    ) -> Result<Probe> {
        if !self.may_contain(hash) {
            return Ok(Probe::Absent);
        }
        let i = self.find_block(target);
        let Some((offset, size)) = self.index.handle(i) else {
            return Ok(Probe::Absent);
        };
        let block = match self.cache.get(self.number, offset) {
            Some(b) => b,
            None if cached_only => return Ok(Probe::WouldBlock),
            None => self.load_into_cache(offset, size)?,
        };
        SCRATCH.with(|scratch| {
            let mut k = scratch.borrow_mut();
            let value = block
                .seek_ge(target, &mut k)
                .map_err(|e| self.block_error(i, e))?;
            let Some(range) = value else {
                return Ok(Probe::Absent);
            };
            match key::split(&k) {
                Some((found, trailer)) if found == ukey => Ok(Probe::Found(Found {
                    trailer,
                    value: block.value_bytes(range),
                })),
                _ => Ok(Probe::Absent),
            }
        })
    }
}

/// The outcome of a point lookup in one source.
#[derive(Debug)]
pub(crate) enum Probe {
    Found(Found),
    Absent,
    /// Answering would need I/O, and the caller asked for none.
    WouldBlock,
}

/// A cursor over one table.
pub(crate) struct TableIter {
    table: Arc<Table>,
    block: usize,
    data: Option<BlockIter>,
    err: Option<Error>,
    fill_cache: bool,
}

impl TableIter {
    /// A cursor whose block reads go through the block cache.
    pub(crate) fn new(table: Arc<Table>) -> Self {
        TableIter {
            table,
            block: 0,
            data: None,
            err: None,
            fill_cache: true,
        }
    }

    /// A cursor that uses cached blocks but caches none it reads: for
    /// compaction, which reads each block of its inputs once.
    pub(crate) fn uncached(table: Arc<Table>) -> Self {
        TableIter {
            fill_cache: false,
            ..TableIter::new(table)
        }
    }

    fn load(&mut self, i: usize) -> bool {
        self.block = i;
        match self.table.data_block(i, self.fill_cache) {
            Ok(b) => {
                self.data = Some(BlockIter::new(b));
                true
            }
            Err(e) => {
                self.err = Some(e);
                self.data = None;
                false
            }
        }
    }

    fn check_block_error(&mut self) -> bool {
        if let Some(e) = self.data.as_ref().and_then(BlockIter::error) {
            self.err = Some(self.table.block_error(self.block, e));
            self.data = None;
            return true;
        }
        false
    }

    fn skip_forward(&mut self) {
        loop {
            if self.check_block_error() {
                return;
            }
            match &self.data {
                Some(d) if d.valid() => return,
                None => return,
                Some(_) => {}
            }
            let next = self.block + 1;
            if next >= self.table.index.len() {
                self.data = None;
                return;
            }
            if !self.load(next) {
                return;
            }
            if let Some(d) = &mut self.data {
                d.seek_to_first();
            }
        }
    }

    fn skip_backward(&mut self) {
        loop {
            if self.check_block_error() {
                return;
            }
            match &self.data {
                Some(d) if d.valid() => return,
                None => return,
                Some(_) => {}
            }
            if self.block == 0 {
                self.data = None;
                return;
            }
            if !self.load(self.block - 1) {
                return;
            }
            if let Some(d) = &mut self.data {
                d.seek_to_last();
            }
        }
    }

    fn reset(&mut self) {
        self.err = None;
        self.data = None;
    }
}

impl InternalIterator for TableIter {
    fn seek(&mut self, target: &[u8]) {
        self.reset();
        let i = self.table.find_block(target);
        if i < self.table.index.len() && self.load(i) {
            if let Some(d) = &mut self.data {
                d.seek(target);
            }
            self.skip_forward();
        }
    }

    fn seek_to_first(&mut self) {
        self.reset();
        if !self.table.index.is_empty() && self.load(0) {
            if let Some(d) = &mut self.data {
                d.seek_to_first();
            }
            self.skip_forward();
        }
    }

    fn seek_for_prev(&mut self, target: &[u8]) {
        self.reset();
        let n = self.table.index.len();
        if n == 0 {
            return;
        }
        let i = self.table.find_block(target).min(n - 1);
        if self.load(i) {
            if let Some(d) = &mut self.data {
                d.seek_for_prev(target);
            }
            self.skip_backward();
        }
    }

    fn seek_to_last(&mut self) {
        self.reset();
        let n = self.table.index.len();
        if n > 0 && self.load(n - 1) {
            if let Some(d) = &mut self.data {
                d.seek_to_last();
            }
            self.skip_backward();
        }
    }

    fn next(&mut self) {
        if let Some(d) = &mut self.data {
            d.next();
            self.skip_forward();
        }
    }

    fn prev(&mut self) {
        if let Some(d) = &mut self.data {
            d.prev();
            self.skip_backward();
        }
    }

    fn valid(&self) -> bool {
        self.data.as_ref().is_some_and(BlockIter::valid)
    }

    fn key(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], BlockIter::key)
    }

    fn value(&self) -> Bytes {
        self.data.as_ref().map_or_else(Bytes::new, BlockIter::value)
    }

    fn status(&self) -> Result<()> {
        match &self.err {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}
