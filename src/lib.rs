//! strata-kv: a persistent LSM-tree key-value storage engine.
//!
//! Writes go to a checksummed write-ahead log with group commit, then to a
//! lock-free skiplist memtable; full memtables are flushed to immutable,
//! memory-mapped sorted tables (prefix-compressed blocks, LZ4 or Snappy,
//! bloom filters over a stable hash), which background compaction merges
//! level by level. The same engine runs purely in memory with
//! [`Db::open_in_memory`].
//!
//! ```
//! # fn main() -> strata_kv::Result<()> {
//! use strata_kv::{Db, Options, WriteBatch};
//! let db = Db::open_in_memory(Options::default())?;
//! db.put(b"a", b"1")?;
//! let mut batch = WriteBatch::new();
//! batch.put(b"b", b"2");
//! batch.delete(b"a");
//! db.write(batch)?;
//! let keys: Vec<_> = db.iter().map(|kv| kv.map(|(k, _)| k.to_vec())).collect::<Result<_, _>>()?;
//! assert_eq!(keys, vec![b"b".to_vec()]);
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::unwrap_used)]

mod batch;
mod cache;
mod clock;
mod coding;
mod compaction;
mod db;
mod error;
mod format;
pub mod fs;
pub mod hash;
#[cfg(feature = "internals")]
pub mod internals;
mod iter;
mod key;
pub mod kv;
mod memtable;
mod namespace;
mod options;
mod snapshot;
mod sst;
mod stats;
pub mod tools;
mod txn;
mod value;
mod version;
mod wal;
mod watch;

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

pub use batch::WriteBatch;
pub use clock::{Clock, ManualClock, SystemClock};
pub use db::{
    BatchReport, CasConflict, CheckpointInfo, Db, ExportReport, ImportReport, Inspection, Progress,
    TableInfo, VerifyReport,
};
pub use error::{Error, Result};
pub use iter::Iter;
pub use namespace::{Namespace, NamespaceOptions};
pub use options::{Compression, Durability, Options};
pub use snapshot::Snapshot;
pub use stats::{LevelStats, Stats};
pub use txn::Transaction;
pub use value::Value;
pub use wal::WalRecovery;
pub use watch::{Event, Subscriber, watch_capacity};
