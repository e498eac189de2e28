//! Writes a table from entries in internal-key order.
//!
//! Concurrency: one builder per output file, owned by the flush or
//! compaction job writing it.

use std::path::PathBuf;
use std::sync::Arc;

use super::block::BlockBuilder;
use super::compress::compress;
use super::filter;
use super::props::TableProps;
use crate::coding::{put_u32, put_u64, put_varint};
use crate::error::{Error, Result};
use crate::format::{
    BLOCK_TRAILER_SIZE, COMPRESSION_NONE, EXPIRY_SIZE, KIND_DELETE, KIND_PUT_TTL,
    SST_FORMAT_VERSION, SST_MAGIC,
};
use crate::fs::WritableFile;
use crate::hash::hash_keys_batch;
use crate::key;
use crate::options::{Compression, Options};

/// Output is handed to the file system in chunks of about this size.
const WRITE_CHUNK: usize = 1 << 20;
/// Keys are hashed for the filter in batches of this many.
const HASH_BATCH: usize = 256;

/// Builds one table file.
pub(crate) struct TableBuilder {
    writer: BlockWriter,
    path: PathBuf,
    data: BlockBuilder,
    index: BlockBuilder,
    block_size: usize,
    compression: Compression,
    bloom_bits: u32,
    /// User keys waiting to be hashed, and the hashes so far.
    pending_keys: Vec<u8>,
    pending_ends: Vec<usize>,
    hashes: Vec<u64>,
    last_ukey: Vec<u8>,
    props: TableProps,
}

impl TableBuilder {
    pub(crate) fn new(file: Arc<dyn WritableFile>, path: PathBuf, opts: &Options) -> Self {
        TableBuilder {
            writer: BlockWriter {
                file,
                out: Vec::with_capacity(WRITE_CHUNK + opts.block_size * 2),
                scratch: Vec::new(),
                offset: 0,
            },
            path,
            data: BlockBuilder::new(opts.block_restart_interval),
            index: BlockBuilder::new(1),
            block_size: opts.block_size,
            compression: opts.compression,
            bloom_bits: opts.bloom_bits_per_key,
            pending_keys: Vec::new(),
            pending_ends: Vec::new(),
            hashes: Vec::new(),
            last_ukey: Vec::new(),
            props: TableProps {
                compression: match opts.compression {
                    Compression::None => 0,
                    Compression::Lz4 => 1,
                    Compression::Snappy => 2,
                },
                ..TableProps::default()
            },
        }
    }

    /// Adds an entry; internal keys must strictly increase.
    pub(crate) fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        let Some((ukey, trailer)) = key::split(ikey) else {
            return Err(Error::invalid("table entry key shorter than a trailer"));
        };
        debug_assert!(
            self.props.entries == 0 || key::compare(&self.props.largest, ikey).is_lt(),
            "keys out of order"
        );
        let seq = key::seq_of(trailer);
        let p = &mut self.props;
        if p.entries == 0 {
            p.smallest = ikey.to_vec();
            p.smallest_seq = seq;
        }
        p.entries += 1;
        p.raw_key_bytes += ikey.len() as u64;
        p.raw_value_bytes += value.len() as u64;
        p.smallest_seq = p.smallest_seq.min(seq);
        p.largest_seq = p.largest_seq.max(seq);
        match key::kind_of(trailer) {
            KIND_DELETE => p.tombstones += 1,
            KIND_PUT_TTL if value.len() >= EXPIRY_SIZE => {
                let at = crate::batch::ttl_expiry(value);
                p.min_expiry = if p.min_expiry == 0 {
                    at
                } else {
                    p.min_expiry.min(at)
                };
            }
            _ => {}
        }
        p.largest.clear();
        p.largest.extend_from_slice(ikey);

        if self.bloom_bits > 0 && (p.entries == 1 || ukey != self.last_ukey.as_slice()) {
            self.pending_keys.extend_from_slice(ukey);
            self.pending_ends.push(self.pending_keys.len());
            if self.pending_ends.len() >= HASH_BATCH {
                self.hash_pending();
            }
        }
        self.last_ukey.clear();
        self.last_ukey.extend_from_slice(ukey);

        self.data.add(ikey, value);
        if self.data.size_estimate() >= self.block_size {
            self.flush_data_block()?;
        }
        Ok(())
    }

    fn hash_pending(&mut self) {
        let mut keys = Vec::with_capacity(self.pending_ends.len());
        let mut start = 0;
        for &end in &self.pending_ends {
            keys.push(self.pending_keys.get(start..end).unwrap_or_default());
            start = end;
        }
        let mut out = Vec::new();
        hash_keys_batch(&keys, &mut out);
        self.hashes.extend_from_slice(&out);
        self.pending_keys.clear();
        self.pending_ends.clear();
    }

    fn flush_data_block(&mut self) -> Result<()> {
        if self.data.is_empty() {
            return Ok(());
        }
        let raw_len = self.data.size_estimate() as u64;
        let (offset, size) = self
            .writer
            .write_block(self.data.finish(), self.compression)?;
        self.props.data_blocks += 1;
        self.props.data_bytes += raw_len;
        self.props.stored_data_bytes += size;
        let mut handle = Vec::with_capacity(16);
        put_varint(&mut handle, offset);
        put_varint(&mut handle, size);
        self.index.add(self.data.last_key(), &handle);
        self.data.reset();
        Ok(())
    }

    /// Bytes the table would take if finished now (roughly).
    pub(crate) fn estimated_size(&self) -> u64 {
        self.writer.offset + self.data.size_estimate() as u64
    }

    pub(crate) fn entries(&self) -> u64 {
        self.props.entries
    }

    /// Writes the filter, properties, index and footer, appends everything
    /// and fsyncs. Returns the properties and the file size.
    pub(crate) fn finish(mut self) -> Result<(TableProps, u64)> {
        self.flush_data_block()?;
        let filter_handle = if self.bloom_bits > 0 && self.props.entries > 0 {
            self.hash_pending();
            let bits = filter::build(&self.hashes, self.bloom_bits);
            self.writer.write_block(&bits, Compression::None)?
        } else {
            (0, 0)
        };
        let props = self.props.encode();
        let props_handle = self.writer.write_block(&props, Compression::None)?;
        let index_handle = self
            .writer
            .write_block(self.index.finish(), Compression::None)?;

        let mut footer = Vec::with_capacity(crate::format::FOOTER_SIZE);
        for (off, size) in [index_handle, filter_handle, props_handle] {
            put_u64(&mut footer, off);
            put_u64(&mut footer, size);
        }
        put_u32(&mut footer, SST_FORMAT_VERSION);
        let crc = crc32fast::hash(&footer);
        put_u32(&mut footer, crc);
        put_u64(&mut footer, SST_MAGIC);
        let w = &mut self.writer;
        w.out.extend_from_slice(&footer);
        w.offset += footer.len() as u64;
        w.file.append(&w.out)?;
        w.file.sync()?;
        log::debug!("wrote table {} ({} bytes)", self.path.display(), w.offset);
        Ok((self.props, w.offset))
    }
}

/// Frames blocks (compression, trailer) and buffers them into large appends.
struct BlockWriter {
    file: Arc<dyn WritableFile>,
    out: Vec<u8>,
    scratch: Vec<u8>,
    offset: u64,
}

impl BlockWriter {
    /// Writes a block and its trailer; returns (offset, stored size without trailer).
    fn write_block(&mut self, raw: &[u8], compression: Compression) -> Result<(u64, u64)> {
        let kind = compress(raw, compression, &mut self.scratch);
        let stored: &[u8] = if kind == COMPRESSION_NONE {
            raw
        } else {
            &self.scratch
        };
        let offset = self.offset;
        let mut h = crc32fast::Hasher::new();
        h.update(stored);
        h.update(&[kind]);
        self.out.extend_from_slice(stored);
        self.out.push(kind);
        put_u32(&mut self.out, h.finalize());
        let size = stored.len() as u64;
        self.offset += size + BLOCK_TRAILER_SIZE as u64;
        if self.out.len() >= WRITE_CHUNK {
            self.file.append(&self.out)?;
            self.out.clear();
        }
        Ok((offset, size))
    }
}
