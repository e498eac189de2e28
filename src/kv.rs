//! Async stores for tokio: the [`KvStore`] trait over the in-memory engine
//! ([`MemoryKvStore`]) and the persistent one ([`PersistKvStore`]).
//!
//! No future here parks a runtime thread on disk I/O:
//! - Writes are handed to group commit; a dedicated commit thread appends
//!   to the WAL and runs fdatasync, and the future resolves when its batch
//!   is committed (and synced, under `Durability::Sync`). A write that asks
//!   for no fdatasync commits on the calling thread instead when nothing
//!   else is in flight and the memtable has room: a copy into the WAL's
//!   page cache and the memtable inserts, cheaper than the hand-off.
//! - Reads first try what needs no I/O: the memtables and blocks already in
//!   the block cache. A read that would open a table or read a block from
//!   disk moves to tokio's blocking pool (`spawn_blocking`). (With mmap, a
//!   cached block whose pages the OS has evicted can still fault; size the
//!   block cache and page cache accordingly.)
//! - A write is submitted when its method is called, not when the future
//!   is first polled: the future only reports the outcome. Dropping it does
//!   not cancel the write, and writes called one after another commit in
//!   that order, however their futures are awaited.
//! - On the persistent store, a write or read answered on the calling thread
//!   spends a unit of the task's tokio budget
//!   (`tokio::task::coop::consume_budget`), so a task doing them in a loop
//!   yields to the other tasks of its thread now and then, as it would on
//!   a socket. (The in-memory store, like any in-memory map, never yields.)
//!
//! ```
//! use std::sync::Arc;
//! use strata_kv::kv::{KvStore, MemoryKvStore};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> strata_kv::Result<()> {
//! let store = Arc::new(MemoryKvStore::new());
//! store.set("user:1", b"Alice".to_vec()).await?;
//! assert_eq!(store.get("user:1").await?, Some(b"Alice".to_vec()));
//! assert_eq!(store.batch_get(&["user:1", "user:2"]).await?, vec![Some(b"Alice".to_vec()), None]);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::time::Duration;

use smallvec::SmallVec;

use crate::batch::{DEFAULT_NS, WriteBatch};
use crate::db::request::WriteRequest;
use crate::db::{BatchReport, CasConflict, Db, DbInner};
use crate::error::{Error, Result};
use crate::format::KIND_PUT;
use crate::key;
use crate::namespace::{Namespace, NamespaceOptions};
use crate::options::Options;
use crate::txn::Transaction;
use crate::watch::Subscriber;

/// An async key-value store. Implemented by [`MemoryKvStore`] and
/// [`PersistKvStore`]; both are `Send + Sync` and meant to be shared through `Arc`.
pub trait KvStore: Send + Sync {
    /// The value of `key`, if any.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Sets `key` to `value`; resolves once the write is committed with the
    /// store's durability.
    fn set(&self, key: &str, value: Vec<u8>) -> impl Future<Output = Result<()>> + Send;
    /// Removes `key`.
    fn delete(&self, key: &str) -> impl Future<Output = Result<()>> + Send;
    /// True if `key` has a value.
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;
    /// The values of `keys`, in order, all read at one snapshot.
    fn batch_get(&self, keys: &[&str])
    -> impl Future<Output = Result<Vec<Option<Vec<u8>>>>> + Send;
    /// Sets every pair atomically (one WAL record).
    fn batch_set(&self, pairs: Vec<(&str, Vec<u8>)>) -> impl Future<Output = Result<()>> + Send;
}

/// Runs `f` on tokio's blocking pool when inside a runtime, else inline.
async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(f)
            .await
            .map_err(|e| Error::Io(Arc::new(std::io::Error::other(e.to_string()))))?,
        Err(_) => f(),
    }
}

/// Reads `ukeys` at one consistent point, without blocking the runtime.
async fn read_many(inner: Arc<DbInner>, ukeys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
    let to_vecs =
        |v: Vec<Option<bytes::Bytes>>| v.into_iter().map(|o| o.map(|b| b.to_vec())).collect();
    if inner.in_memory {
        // One key: a plain read. Several: from the point index at one
        // moment, or else at a pinned snapshot.
        if let [ukey] = ukeys.as_slice() {
            return Ok(vec![get_in_memory(&inner, ukey)?]);
        }
        if let Some(found) = inner.multi_get_latest(&ukeys) {
            return Ok(to_vecs(found));
        }
        // Writes raced the index read: read at a snapshot, which may first
        // order the puts waiting in the index (blocking work, off the runtime).
        let ordered = inner.point_index.as_ref().is_some_and(|i| i.all_ordered());
        let at_snapshot = move || {
            let snapshot = Db::snapshot_of(&inner);
            let sv = inner.super_version.load_full();
            let found = inner.multi_get(&ukeys, &sv, snapshot.sequence(), false)?;
            Ok(to_vecs(found.unwrap_or_default()))
        };
        if ordered {
            return at_snapshot();
        }
        return off_runtime(at_snapshot).await;
    }
    let (sv, seq) = inner.read_view();
    if let Some(found) = inner.multi_get(&ukeys, &sv, seq, true)? {
        // Answered without waiting: a yield point once the task's budget
        // is spent, so a task reading in a loop cannot starve its runtime
        // thread.
        tokio::task::coop::consume_budget().await;
        return Ok(to_vecs(found));
    }
    off_runtime(move || {
        let found = inner.multi_get(&ukeys, &sv, seq, false)?;
        Ok(to_vecs(found.unwrap_or_default()))
    })
    .await
}

/// A point read answered at once, or the future that will answer it.
enum PointRead<F> {
    Done(Result<Option<Vec<u8>>>),
    Pending(F),
}

/// A point read of the in-memory store (never blocks: no file to read).
fn get_in_memory(inner: &DbInner, ukey: &[u8]) -> Result<Option<Vec<u8>>> {
    let found = inner.get_found(ukey, None)?;
    // Only an entry with a time to live needs the clock.
    Ok(found
        .and_then(|f| match key::kind_of(f.trailer) {
            KIND_PUT => Some(f.value),
            _ => crate::db::resolve(f, inner.now_ms()),
        })
        .map(|b| b.to_vec()))
}

fn ukey_of(k: &str) -> Vec<u8> {
    key::ukey(DEFAULT_NS, k.as_bytes())
}

macro_rules! impl_kv_store {
    ($t:ty) => {
        impl KvStore for $t {
            fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
                let inner = &self.db.inner;
                // In memory nothing can block: answer now, with no reference
                // count or allocation beyond the value's copy.
                let read = match inner.in_memory {
                    true => {
                        let mut ukey: SmallVec<[u8; 64]> = SmallVec::new();
                        ukey.extend_from_slice(&DEFAULT_NS.to_be_bytes());
                        ukey.extend_from_slice(key.as_bytes());
                        PointRead::Done(get_in_memory(inner, &ukey))
                    }
                    false => PointRead::Pending(read_many(Arc::clone(inner), vec![ukey_of(key)])),
                };
                async move {
                    match read {
                        PointRead::Done(r) => r,
                        PointRead::Pending(fut) => Ok(fut.await?.pop().flatten()),
                    }
                }
            }

            fn set(&self, key: &str, value: Vec<u8>) -> impl Future<Output = Result<()>> + Send {
                let mut b = WriteBatch::new();
                b.put(key, value);
                self.write(b)
            }

            fn delete(&self, key: &str) -> impl Future<Output = Result<()>> + Send {
                let mut b = WriteBatch::new();
                b.delete(key);
                self.write(b)
            }

            fn exists(&self, key: &str) -> impl Future<Output = Result<bool>> + Send {
                let fut = self.get(key);
                async move { Ok(fut.await?.is_some()) }
            }

            fn batch_get(
                &self,
                keys: &[&str],
            ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>>> + Send {
                read_many(
                    Arc::clone(&self.db.inner),
                    keys.iter().map(|k| ukey_of(k)).collect(),
                )
            }

            fn batch_set(
                &self,
                pairs: Vec<(&str, Vec<u8>)>,
            ) -> impl Future<Output = Result<()>> + Send {
                let mut b = WriteBatch::new();
                for (k, v) in pairs {
                    b.put(k, v);
                }
                self.write(b)
            }
        }

        impl $t {
            /// The engine underneath, for the full synchronous API.
            pub fn db(&self) -> &Db {
                &self.db
            }

            /// Commits a batch without blocking the runtime.
            pub fn write(
                &self,
                batch: WriteBatch,
            ) -> impl Future<Output = Result<()>> + Send + 'static {
                let durability = self.db.inner.opts.durability;
                let fut = self.db.inner.write_async(batch, durability);
                async move { fut.await.map(|_| ()) }
            }

            /// Applies the valid ops of `batch` atomically and reports the rest.
            pub fn write_best_effort(
                &self,
                batch: WriteBatch,
            ) -> impl Future<Output = Result<BatchReport>> + Send + 'static {
                let total = batch.len();
                let mut req = WriteRequest::new(batch, self.db.inner.opts.durability);
                req.best_effort = true;
                let fut = self.db.inner.submit_async(req);
                async move {
                    let done = fut.await?;
                    Ok(BatchReport {
                        applied: total - done.rejected.len(),
                        errors: done.rejected,
                    })
                }
            }

            /// Sets `key` to `value`, expiring `ttl` after the write commits.
            pub fn set_with_ttl(
                &self,
                key: &str,
                value: Vec<u8>,
                ttl: Duration,
            ) -> impl Future<Output = Result<()>> + Send + 'static {
                let mut b = WriteBatch::new();
                b.put_with_ttl(key, value, ttl);
                self.write(b)
            }

            /// Sets `key` and returns its previous value, atomically.
            pub fn insert_returning_old(
                &self,
                key: &str,
                value: Vec<u8>,
            ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send + 'static {
                let fut = self
                    .db
                    .space()
                    .insert_returning_old(key.as_bytes(), &value)
                    .map(|c| c.run_async(&self.db.inner));
                async move { Ok(fut?.await?.map(|v| v.to_vec())) }
            }

            /// Replaces the value of an existing `key`, returning the old one
            /// (`Error::NotFound`, nothing written, if absent).
            pub fn update(
                &self,
                key: &str,
                value: Vec<u8>,
            ) -> impl Future<Output = Result<Vec<u8>>> + Send + 'static {
                let fut = self
                    .db
                    .space()
                    .update(key.as_bytes(), &value)
                    .map(|c| c.run_async(&self.db.inner));
                async move { Ok(fut?.await?.to_vec()) }
            }

            /// Removes `key` and returns its value, atomically.
            pub fn consume(
                &self,
                key: &str,
            ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send + 'static {
                let fut = self
                    .db
                    .space()
                    .consume(key.as_bytes())
                    .map(|c| c.run_async(&self.db.inner));
                async move { Ok(fut?.await?.map(|v| v.to_vec())) }
            }

            /// Sets (or, with `new == None`, deletes) `key` only if it holds `expected`.
            pub fn compare_and_swap(
                &self,
                key: &str,
                expected: Option<&[u8]>,
                new: Option<&[u8]>,
            ) -> impl Future<Output = Result<std::result::Result<(), CasConflict>>> + Send + 'static
            {
                let fut = self
                    .db
                    .space()
                    .compare_and_swap(key.as_bytes(), expected, new)
                    .map(|c| c.run_async(&self.db.inner));
                async move { fut?.await }
            }

            /// Subscribes to changes under `prefix`; the subscriber is a `Stream`.
            pub fn watch_prefix(&self, prefix: &str) -> Subscriber {
                self.db.watch_prefix(prefix)
            }

            /// The namespace `name` (created and recorded if missing, off the
            /// runtime). Its methods are the synchronous `Namespace` API.
            pub async fn namespace(&self, name: &str) -> Result<Namespace> {
                let (db, name) = (self.db.clone(), name.to_owned());
                off_runtime(move || db.namespace(&name)).await
            }

            /// `namespace` with options (applied to an existing namespace too).
            pub async fn namespace_with(
                &self,
                name: &str,
                options: NamespaceOptions,
            ) -> Result<Namespace> {
                let (db, name) = (self.db.clone(), name.to_owned());
                off_runtime(move || db.namespace_with(&name, options)).await
            }

            /// Begins an optimistic transaction; commit it with
            /// [`Transaction::commit_async`].
            pub fn transaction(&self) -> Transaction {
                self.db.transaction()
            }
        }
    };
}

/// The in-memory store: the engine's memtable with no WAL and no flush.
/// Reads and writes never touch a disk.
#[derive(Clone, Debug)]
pub struct MemoryKvStore {
    db: Db,
}

impl MemoryKvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::with_options(Options::default())
            .unwrap_or_else(|e| unreachable!("default options are valid: {e}"))
    }

    /// An empty store with custom options (durability and file settings are ignored).
    pub fn with_options(options: Options) -> Result<Self> {
        Ok(MemoryKvStore {
            db: Db::open_in_memory(options)?,
        })
    }
}

impl Default for MemoryKvStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The persistent store: the LSM engine in a directory, durable by default
/// (`Durability::Sync`: an acknowledged `set` survives power loss).
#[derive(Clone, Debug)]
pub struct PersistKvStore {
    db: Db,
}

impl PersistKvStore {
    /// Opens (creating if missing) the store in `path` with default options.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Options::default()).await
    }

    /// Opens the store in `path` with `options`. Recovery runs on the blocking pool.
    pub async fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        let path: PathBuf = path.as_ref().to_owned();
        let db = off_runtime(move || Db::open(path, options)).await?;
        Ok(PersistKvStore { db })
    }

    /// Closes the store (see [`Db::close`]).
    pub async fn close(self) -> Result<()> {
        let db = self.db;
        off_runtime(move || db.close()).await
    }
}

impl_kv_store!(MemoryKvStore);
impl_kv_store!(PersistKvStore);
