//! Internals for the fuzz targets and the micro-benchmarks, behind the
//! `internals` feature. Not a stable API: each function drives one decoder
//! or hot path on arbitrary input and must never panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{WriteBatch, validate_batch};
use crate::cache::BlockCache;
use crate::error::Result;
use crate::format::{LOG_KIND_MANIFEST, LOG_KIND_WAL};
use crate::fs::{FileSystem, MemFs, RealFs};
use crate::iter::InternalIterator;
use crate::options::{Compression, Options};
use crate::sst::{Block, BlockBuilder, BlockIter, Table, TableBuilder, TableIter, filter};
use crate::version::VersionEdit;
use crate::wal::{LogItem, LogReader, LogWriter};

/// Decodes `data` as a block and walks it forwards, backwards and by seeks.
/// Returns the entries seen going forward.
pub fn block_decode(data: &[u8]) -> usize {
    let Ok(block) = Block::new(Bytes::copy_from_slice(data)) else {
        return 0;
    };
    let mut it = BlockIter::new(block.clone());
    it.seek_to_first();
    let mut n = 0;
    while it.valid() {
        n += 1;
        it.next();
    }
    let mut it = BlockIter::new(block.clone());
    it.seek_to_last();
    while it.valid() {
        it.prev();
    }
    let probe = data.get(..data.len().min(24)).unwrap_or_default();
    let mut it = BlockIter::new(block.clone());
    it.seek(probe);
    it.seek_for_prev(probe);
    let mut key = Vec::new();
    let _ = block.seek_ge(probe, &mut key);
    n
}

/// A block holding `entries` (internal keys, in order), for seeding and benchmarks.
pub fn block_encode(entries: &[(Vec<u8>, Vec<u8>)], restart_interval: usize) -> Vec<u8> {
    let mut b = BlockBuilder::new(restart_interval);
    for (k, v) in entries {
        b.add(k, v);
    }
    b.finish().to_vec()
}

/// An internal key for `user_key` (namespace 0) at `seq`, a put.
pub fn internal_key(user_key: &[u8], seq: u64) -> Vec<u8> {
    let mut k = Vec::new();
    crate::key::push_ikey(
        &mut k,
        &crate::key::ukey(0, user_key),
        seq,
        crate::format::KIND_PUT,
    );
    k
}

/// Opens `data` as a table file and scans it both ways; returns the
/// entries seen, or the error that stopped it.
pub fn sst_open_and_scan(data: &[u8], use_mmap: bool) -> Result<usize> {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/t"))?;
    let path = PathBuf::from("/t/000001.sst");
    let f = fs.create(&path)?;
    f.append(data)?;
    let table = Arc::new(Table::open(
        fs.open(&path)?,
        path,
        1,
        Arc::new(BlockCache::new(1 << 20, 4096)),
        use_mmap,
    )?);
    let mut it = TableIter::new(Arc::clone(&table));
    it.seek_to_first();
    let mut n = 0;
    while it.valid() {
        n += 1;
        it.next();
    }
    it.status()?;
    it.seek_to_last();
    while it.valid() {
        it.prev();
    }
    it.status()?;
    Ok(n)
}

/// A table file built from `entries` (internal keys, in order).
pub fn sst_build(
    entries: &[(Vec<u8>, Vec<u8>)],
    compression: Compression,
    block_size: usize,
) -> Result<Vec<u8>> {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/t"))?;
    let path = PathBuf::from("/t/000001.sst");
    let opts = Options::default()
        .compression(compression)
        .block_size(block_size);
    let mut b = TableBuilder::new(fs.create(&path)?, path.clone(), &opts);
    for (k, v) in entries {
        b.add(k, v)?;
    }
    b.finish()?;
    Ok(fs.open(&path)?.map()?.to_vec())
}

fn read_log(
    data: &[u8],
    kind: u8,
    on_record: &mut dyn FnMut(u64, &Bytes) -> Result<()>,
) -> Result<usize> {
    let mut reader = LogReader::new(Bytes::copy_from_slice(data), 1, kind);
    let mut n = 0;
    while let Some(item) = reader.next_item() {
        if let LogItem::Record { offset, data } = item {
            on_record(offset, &data)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Reads `data` as WAL 1 and checks every record as a write batch.
/// Returns the intact batches.
pub fn wal_replay(data: &[u8]) -> usize {
    let mut ok = 0;
    let _ = read_log(data, LOG_KIND_WAL, &mut |offset, rec| {
        if validate_batch(rec, Path::new("wal"), offset).is_ok() {
            ok += 1;
        }
        Ok(())
    });
    ok
}

/// Reads `data` as manifest 1 and decodes every record as a version edit.
pub fn manifest_replay(data: &[u8]) -> Result<usize> {
    read_log(data, LOG_KIND_MANIFEST, &mut |offset, rec| {
        VersionEdit::decode(rec, Path::new("manifest"), offset).map(|_| ())
    })
}

/// Checks `data` as an encoded write batch; returns its op count.
pub fn batch_decode(data: &[u8]) -> Result<u32> {
    validate_batch(data, Path::new("batch"), 0).map(|(_, n)| n)
}

/// A log file (number 1) holding `records`; `wal` picks the WAL header, else the manifest's.
pub fn log_build(records: &[Vec<u8>], wal: bool) -> Result<Vec<u8>> {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/l"))?;
    let path = PathBuf::from("/l/log");
    let kind = if wal { LOG_KIND_WAL } else { LOG_KIND_MANIFEST };
    let mut w = LogWriter::new(fs.create(&path)?, 1, kind)?;
    for r in records {
        w.add_record(r)?;
    }
    Ok(fs.open(&path)?.map()?.to_vec())
}

/// The encoding of a batch putting each pair, starting at sequence `seq`.
pub fn batch_build(pairs: &[(Vec<u8>, Vec<u8>)], seq: u64) -> Vec<u8> {
    let mut b = WriteBatch::new();
    for (k, v) in pairs {
        b.put(k, v);
    }
    b.set_sequence(seq);
    b.into_rep()
}

/// A bloom filter over key hashes.
pub fn bloom_build(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    filter::build(hashes, bits_per_key)
}

/// Probes a filter built by `bloom_build`; `None` if it does not parse.
pub fn bloom_probe(filter_bytes: &Bytes, hash: u64) -> Option<bool> {
    filter::BloomFilter::parse(filter_bytes.clone()).map(|f| f.may_contain(hash))
}

/// The memtable, for benchmarks.
#[derive(Debug)]
pub struct Memtable(crate::memtable::Memtable);

impl Default for Memtable {
    fn default() -> Self {
        Memtable(crate::memtable::Memtable::new(0))
    }
}

impl Memtable {
    /// Inserts a put of `key` (namespace 0) at `seq`.
    pub fn insert(&self, key: &[u8], seq: u64, value: Bytes) {
        self.0.insert(
            &crate::key::ukey(0, key),
            seq,
            crate::format::KIND_PUT,
            value,
        );
    }

    /// The newest value of `key` at or below `seq`.
    pub fn get(&self, key: &[u8], seq: u64) -> Option<Bytes> {
        self.0.get(&crate::key::ukey(0, key), seq).map(|f| f.value)
    }
}

/// A WAL writer on an in-memory file, for benchmarks.
#[derive(Debug)]
pub struct WalWriter(LogWriter);

impl WalWriter {
    /// A new, empty WAL.
    pub fn new() -> Result<Self> {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new("/w"))?;
        Ok(WalWriter(LogWriter::new(
            fs.create(Path::new("/w/1.wal"))?,
            1,
            LOG_KIND_WAL,
        )?))
    }

    /// A new WAL at `path` on the real file system, with `reserve` bytes
    /// preallocated: appended through a map (`mapped`, where the file
    /// system allows it) or with write calls, as `Options::wal_mmap` chooses.
    pub fn on_disk(path: &Path, reserve: u64, mapped: bool) -> Result<Self> {
        let file = RealFs::new().create(path)?;
        if mapped {
            file.preallocate_mapped(reserve)?;
        } else {
            file.preallocate(reserve)?;
        }
        Ok(WalWriter(LogWriter::new(file, 1, LOG_KIND_WAL)?))
    }

    /// Appends one record.
    pub fn append(&mut self, record: &[u8]) -> Result<()> {
        self.0.add_record(record)
    }
}
