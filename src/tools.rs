//! Offline inspection of single files: a table, a WAL, a manifest. What
//! `strata dump-sst`, `dump-wal` and `dump-manifest` print, as data.
//!
//! Each reader checks what it reads: damage is `Error::Corruption` naming
//! the file and the offset (for a WAL, damage is reported in the stream of
//! events instead, as recovery would see it). Nothing here opens a database
//! or takes its lock, so these work on a copy, or beside a running process.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{ops_of, ttl_expiry, validate_batch};
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::format::{
    COMPRESSION_LZ4, COMPRESSION_SNAPPY, EXPIRY_SIZE, KIND_DELETE, KIND_PUT_TTL, LOG_KIND_MANIFEST,
    LOG_KIND_WAL, NS_PREFIX_SIZE, manifest_name,
};
use crate::fs::{FileSystem, RealFs, read_file};
use crate::iter::InternalIterator;
use crate::key;
use crate::options::Compression;
use crate::sst::{Table, TableIter};
use crate::value::Value;
use crate::version::{VersionEdit, read_current};
use crate::wal::{LogItem, LogReader};

/// What a stored version says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A value.
    Put,
    /// A value that expires at `expiry_ms` (ms since the Unix epoch).
    PutWithTtl {
        /// When it expires.
        expiry_ms: u64,
    },
    /// A tombstone.
    Delete,
}

/// One stored version of a key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Entry {
    /// Namespace id (0 is the default namespace).
    pub namespace: u32,
    /// The user's key.
    pub key: Value,
    /// The version's sequence number.
    pub sequence: u64,
    /// Put, put with TTL, or tombstone.
    pub kind: EntryKind,
    /// The user's value (empty for a tombstone).
    pub value: Value,
}

impl Entry {
    fn new(ns: u32, key: &[u8], sequence: u64, kind: u8, stored: &[u8]) -> Entry {
        let (kind, value) = match kind {
            KIND_DELETE => (EntryKind::Delete, &[][..]),
            KIND_PUT_TTL => (
                EntryKind::PutWithTtl {
                    expiry_ms: ttl_expiry(stored),
                },
                stored.get(EXPIRY_SIZE..).unwrap_or_default(),
            ),
            _ => (EntryKind::Put, stored),
        };
        Entry {
            namespace: ns,
            key: Value::from(key),
            sequence,
            kind,
            value: Value::from(value),
        }
    }
}

/// A table's properties, from [`dump_table`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TableSummary {
    /// Bytes on disk.
    pub file_size: u64,
    /// Entries (every version and tombstone).
    pub entries: u64,
    /// Tombstones among them.
    pub tombstones: u64,
    /// Data blocks.
    pub data_blocks: u64,
    /// Data block bytes before compression.
    pub data_bytes: u64,
    /// Data block bytes as stored.
    pub stored_data_bytes: u64,
    /// Sequence numbers held.
    pub smallest_sequence: u64,
    /// See `smallest_sequence`.
    pub largest_sequence: u64,
    /// The compression the table was written with.
    pub compression: Compression,
    /// Earliest TTL expiry of any entry (ms since the Unix epoch), if any.
    pub earliest_expiry_ms: Option<u64>,
}

/// Reads the table at `path` end to end, checking every checksum, and
/// calls `visit` with each entry in key order. Returns its properties.
/// Damage is `Error::Corruption` with the file and offset.
pub fn dump_table(path: &Path, visit: &mut dyn FnMut(Entry)) -> Result<TableSummary> {
    let fs = RealFs;
    let file = fs.open(path)?;
    let file_size = file.len();
    let table = Arc::new(Table::open(
        file,
        path.to_path_buf(),
        0,
        Arc::new(BlockCache::new(4 << 20, 4096)),
        false,
    )?);
    // Every block's checksum first: damage stops the dump before any output
    // would be mistaken for the whole table.
    table.verify()?;
    let mut it = TableIter::new(Arc::clone(&table));
    it.seek_to_first();
    while it.valid() {
        let (ukey, trailer) = key::split(it.key())
            .ok_or_else(|| Error::corruption(path, 0, "table entry with a short key"))?;
        visit(Entry::new(
            key::ns_of(ukey),
            ukey.get(NS_PREFIX_SIZE..).unwrap_or_default(),
            key::seq_of(trailer),
            key::kind_of(trailer),
            &it.value(),
        ));
        it.next();
    }
    it.status()?;
    let p = table.props();
    Ok(TableSummary {
        file_size,
        entries: p.entries,
        tombstones: p.tombstones,
        data_blocks: p.data_blocks,
        data_bytes: p.data_bytes,
        stored_data_bytes: p.stored_data_bytes,
        smallest_sequence: p.smallest_seq,
        largest_sequence: p.largest_seq,
        compression: match p.compression {
            COMPRESSION_LZ4 => Compression::Lz4,
            COMPRESSION_SNAPPY => Compression::Snappy,
            _ => Compression::None,
        },
        earliest_expiry_ms: (p.min_expiry != 0).then_some(p.min_expiry),
    })
}

/// What [`dump_wal`] finds, in file order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum WalEvent {
    /// An intact write batch: its ops took `sequence`, `sequence + 1`, ...
    Batch {
        /// Where its record starts.
        offset: u64,
        /// The first op's sequence number.
        sequence: u64,
        /// The ops, each with its own sequence number.
        ops: Vec<Entry>,
    },
    /// Bytes that are not intact records. `torn` if nothing intact follows:
    /// the tail of a write cut short by a crash, which recovery drops.
    /// Otherwise recovery refuses the WAL (in the default mode).
    Damage {
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
        /// Nothing intact follows.
        torn: bool,
    },
}

/// Reads the WAL at `path`, calling `visit` for each batch and each damaged
/// stretch. A file that is not a WAL at all (bad header) is `Error::Corruption`.
pub fn dump_wal(path: &Path, visit: &mut dyn FnMut(WalEvent)) -> Result<()> {
    let data = read_file(&RealFs, path)?;
    let mut reader = LogReader::new(data, 0, LOG_KIND_WAL).any_number();
    while let Some(item) = reader.next_item() {
        match item {
            LogItem::Record { offset, data } => match validate_batch(&data, path, offset) {
                Ok((sequence, _)) => {
                    let ops = (sequence..)
                        .zip(ops_of(&data))
                        .filter_map(|(seq, op)| {
                            let op = op.ok()?;
                            Some(Entry::new(op.ns, op.key, seq, op.kind, op.value))
                        })
                        .collect();
                    visit(WalEvent::Batch {
                        offset,
                        sequence,
                        ops,
                    });
                }
                Err(Error::Corruption { reason, .. }) => visit(WalEvent::Damage {
                    offset,
                    reason,
                    torn: false,
                }),
                Err(e) => return Err(e),
            },
            LogItem::Damage {
                offset,
                reason,
                torn,
            } => visit(WalEvent::Damage {
                offset,
                reason: reason.to_owned(),
                torn,
            }),
            LogItem::BadHeader { reason } => return Err(Error::corruption(path, 0, reason)),
        }
    }
    Ok(())
}

/// A table as a manifest record names it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ManifestTable {
    /// Its level.
    pub level: usize,
    /// Its file number (`NNNNNN.sst`).
    pub number: u64,
    /// Bytes on disk.
    pub size: u64,
    /// Entries it holds.
    pub entries: u64,
    /// Sequence numbers it holds.
    pub smallest_sequence: u64,
    /// See `smallest_sequence`.
    pub largest_sequence: u64,
    /// (namespace, user key) of its first and last entries.
    pub smallest: (u32, Value),
    /// See `smallest`.
    pub largest: (u32, Value),
}

/// A namespace as a manifest record names it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ManifestNamespace {
    /// Its id.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// Key limit (0: none).
    pub max_keys: u64,
    /// Default TTL in ms (0: none).
    pub default_ttl_ms: u64,
}

/// One manifest record: a change to the set of live tables and counters.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ManifestEdit {
    /// Where the record starts.
    pub offset: u64,
    /// WALs below this number are no longer needed.
    pub log_number: Option<u64>,
    /// The next file number to hand out.
    pub next_file_number: Option<u64>,
    /// The last sequence number in tables.
    pub last_sequence: Option<u64>,
    /// Tables added.
    pub added: Vec<ManifestTable>,
    /// Tables removed: (level, file number).
    pub deleted: Vec<(usize, u64)>,
    /// Namespaces created or changed.
    pub namespaces: Vec<ManifestNamespace>,
    /// Namespaces dropped.
    pub dropped_namespaces: Vec<u32>,
}

fn split_ikey(ikey: &[u8]) -> (u32, Value) {
    let ukey = key::ukey_of(ikey);
    (
        key::ns_of(ukey),
        Value::from(ukey.get(NS_PREFIX_SIZE..).unwrap_or_default()),
    )
}

/// Reads the manifest CURRENT names in the database directory `dir`,
/// calling `visit` for each record. Returns the manifest's path. Any
/// damage is `Error::Corruption` (with file and offset).
pub fn dump_manifest(dir: &Path, visit: &mut dyn FnMut(ManifestEdit)) -> Result<PathBuf> {
    let fs = RealFs;
    let number = read_current(&fs, dir)?;
    let path = dir.join(manifest_name(number));
    let data = read_file(&fs, &path)?;
    let mut reader = LogReader::new(data, number, LOG_KIND_MANIFEST);
    while let Some(item) = reader.next_item() {
        match item {
            LogItem::Record { offset, data } => {
                let e = VersionEdit::decode(&data, &path, offset)?;
                visit(ManifestEdit {
                    offset,
                    log_number: e.log_number,
                    next_file_number: e.next_file_number,
                    last_sequence: e.last_sequence,
                    added: e
                        .added
                        .into_iter()
                        .map(|(level, f)| ManifestTable {
                            level,
                            number: f.number,
                            size: f.size,
                            entries: f.entries,
                            smallest_sequence: f.smallest_seq,
                            largest_sequence: f.largest_seq,
                            smallest: split_ikey(&f.smallest),
                            largest: split_ikey(&f.largest),
                        })
                        .collect(),
                    deleted: e.deleted,
                    namespaces: e
                        .namespaces
                        .into_iter()
                        .map(|n| ManifestNamespace {
                            id: n.id,
                            name: n.name,
                            max_keys: n.max_keys,
                            default_ttl_ms: n.default_ttl_ms,
                        })
                        .collect(),
                    dropped_namespaces: e.dropped_namespaces,
                });
            }
            // The manifest's last record may be torn by a crash; recovery drops it.
            LogItem::Damage { torn: true, .. } => {}
            LogItem::Damage { offset, reason, .. } => {
                return Err(Error::corruption(&path, offset, reason));
            }
            LogItem::BadHeader { reason } => return Err(Error::corruption(&path, 0, reason)),
        }
    }
    Ok(path)
}
