//! `inspect`: the shape of the tree, file by file.

use super::{Db, DbInner};
use crate::error::Result;
use crate::format::{NS_PREFIX_SIZE, table_name};
use crate::key;
use crate::value::Value;

/// One table file, from [`Db::inspect`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TableInfo {
    /// The level it is on.
    pub level: usize,
    /// Its file name in the database directory.
    pub file: String,
    /// Bytes on disk.
    pub size: u64,
    /// Entries (every version and tombstone).
    pub entries: u64,
    /// Tombstones among them.
    pub tombstones: u64,
    /// Namespace id and user key of its smallest and largest entries.
    pub smallest: (u32, Value),
    /// See `smallest`.
    pub largest: (u32, Value),
    /// Sequence numbers it holds.
    pub smallest_seq: u64,
    /// See `smallest_seq`.
    pub largest_seq: u64,
    /// Data blocks before compression over data blocks as stored.
    pub compression_ratio: f64,
    /// Data blocks in the file.
    pub data_blocks: u64,
}

/// The shape of the database, from [`Db::inspect`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Inspection {
    /// Every live table, L0 first (newest first), then deeper levels in key order.
    pub tables: Vec<TableInfo>,
    /// Bytes in the active and immutable memtables.
    pub memtable_bytes: u64,
    /// Memtables waiting for flush.
    pub immutable_memtables: usize,
    /// The last visible sequence number.
    pub latest_sequence: u64,
    /// Levels holding files (index = level): (files, bytes).
    pub levels: Vec<(usize, u64)>,
}

fn split_ukey(ikey: &[u8]) -> (u32, Value) {
    let ukey = key::ukey_of(ikey);
    (
        key::ns_of(ukey),
        Value::from(ukey.get(NS_PREFIX_SIZE..).unwrap_or_default()),
    )
}

impl DbInner {
    pub(crate) fn inspect(&self) -> Result<Inspection> {
        self.check_open()?;
        let stats = self.stats();
        let sv = self.super_version.load_full();
        let mut out = Inspection {
            memtable_bytes: stats.memtable_bytes,
            immutable_memtables: stats.immutable_memtables,
            latest_sequence: stats.latest_sequence,
            levels: stats.levels.iter().map(|l| (l.files, l.bytes)).collect(),
            ..Inspection::default()
        };
        for (level, f) in sv.version.files() {
            let props = f.table()?.props();
            out.tables.push(TableInfo {
                level,
                file: table_name(f.number()),
                size: f.info.size,
                entries: f.info.entries,
                tombstones: f.info.tombstones,
                smallest: split_ukey(&f.info.smallest),
                largest: split_ukey(&f.info.largest),
                smallest_seq: f.info.smallest_seq,
                largest_seq: f.info.largest_seq,
                compression_ratio: if props.stored_data_bytes > 0 {
                    props.data_bytes as f64 / props.stored_data_bytes as f64
                } else {
                    1.0
                },
                data_blocks: props.data_blocks,
            });
        }
        Ok(out)
    }
}

impl Db {
    /// Levels, files, key and sequence ranges, sizes, entry counts and
    /// compression ratios of every live table.
    pub fn inspect(&self) -> Result<Inspection> {
        self.inner.inspect()
    }
}
