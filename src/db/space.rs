//! The read/write API shared by [`Db`] (namespace 0) and [`Namespace`]:
//! one implementation, parameterised by the namespace.

use std::ops::RangeBounds;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use super::request::WriteRequest;
use super::{Db, DbInner};
use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::iter::Iter;
use crate::key;
use crate::namespace::NsMeta;
use crate::options::Durability;
use crate::value::Value;
use crate::watch::Subscriber;

/// Why a `compare_and_swap` did not swap: the key's value was not the one expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasConflict {
    /// The value the key holds (`None` if absent).
    pub current: Option<Value>,
}

/// What a best-effort batch did: how many ops were applied (atomically,
/// together) and which were refused, by index in the batch.
#[derive(Debug, Clone)]
pub struct BatchReport {
    /// Operations applied.
    pub applied: usize,
    /// Operations refused, with the reason, by their index in the batch.
    pub errors: Vec<(usize, Error)>,
}

/// One key space: a namespace id and its defaults.
pub(crate) struct Space<'a> {
    pub(crate) inner: &'a Arc<DbInner>,
    pub(crate) ns: u32,
    pub(crate) meta: Option<&'a NsMeta>,
}

/// A slot a prepare step fills for the caller.
type Slot<T> = Arc<Mutex<Option<T>>>;

impl Space<'_> {
    fn check(&self) -> Result<()> {
        match self.meta {
            Some(m) => m.check_live(),
            None => Ok(()),
        }
    }

    fn ukey(&self, key: &[u8]) -> Vec<u8> {
        key::ukey(self.ns, key)
    }

    /// Adds a put with the namespace's default TTL, if any.
    pub(crate) fn add_put(&self, batch: &mut WriteBatch, key: &[u8], value: &[u8]) {
        self.add_put_with(batch, key, value, self.meta.and_then(NsMeta::default_ttl));
    }

    fn add_put_with(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) {
        match ttl {
            Some(ttl) => batch.put_ttl_op(self.ns, key, value, ttl),
            None => batch.put_op(self.ns, key, value, None),
        }
    }

    fn durability(&self) -> Durability {
        self.inner.opts.durability
    }

    pub(crate) fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check()?;
        // Read once: the batch is sized for the op it will hold.
        let ttl = self.meta.and_then(NsMeta::default_ttl);
        let mut b = WriteBatch::for_one_op(self.ns, key.len(), Some(value.len()), ttl.is_some());
        self.add_put_with(&mut b, key, value, ttl);
        self.inner.write(b, self.durability()).map(|_| ())
    }

    pub(crate) fn put_with_ttl(&self, key: &[u8], value: &[u8], ttl: Duration) -> Result<()> {
        self.check()?;
        let mut b = WriteBatch::for_one_op(self.ns, key.len(), Some(value.len()), true);
        b.put_ttl_op(self.ns, key, value, ttl);
        self.inner.write(b, self.durability()).map(|_| ())
    }

    pub(crate) fn delete(&self, key: &[u8]) -> Result<()> {
        self.check()?;
        let mut b = WriteBatch::for_one_op(self.ns, key.len(), None, false);
        b.delete_op(self.ns, key);
        self.inner.write(b, self.durability()).map(|_| ())
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.check()?;
        self.inner.get(self.ns, key, None)
    }

    pub(crate) fn iter_range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        self.inner.iter_range(self.ns, range, None)
    }

    pub(crate) fn iter_prefix(&self, prefix: &[u8]) -> Iter {
        self.inner.iter_prefix(self.ns, prefix, None)
    }

    pub(crate) fn watch_prefix(&self, prefix: &[u8]) -> Subscriber {
        self.inner.watchers.subscribe(self.ns, prefix)
    }

    /// A write of `batch` with a prepare step that reads the current value
    /// of `key` and decides (possibly emptying the batch).
    fn conditional<T: Send + 'static>(
        &self,
        key: &[u8],
        batch: WriteBatch,
        decide: impl FnOnce(Option<Bytes>, &mut WriteBatch) -> Result<T> + Send + 'static,
    ) -> Result<Conditional<T>> {
        self.check()?;
        let ukey = self.ukey(key);
        let slot: Slot<T> = Arc::default();
        let out = Arc::clone(&slot);
        let mut req = WriteRequest::new(batch, self.durability());
        req.prepare = Some(Box::new(move |view, batch| {
            let current = view.value(&ukey)?;
            let decided = decide(current, batch)?;
            *out.lock() = Some(decided);
            Ok(())
        }));
        Ok(Conditional { req, slot })
    }

    pub(crate) fn insert_returning_old(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> Result<Conditional<Option<Value>>> {
        let mut b = WriteBatch::new();
        self.add_put(&mut b, key, value);
        self.conditional(key, b, |old, _| Ok(old.map(Value::from_bytes)))
    }

    pub(crate) fn update(&self, key: &[u8], value: &[u8]) -> Result<Conditional<Value>> {
        let mut b = WriteBatch::new();
        self.add_put(&mut b, key, value);
        self.conditional(key, b, |old, _| {
            old.map(Value::from_bytes).ok_or(Error::NotFound)
        })
    }

    pub(crate) fn consume(&self, key: &[u8]) -> Result<Conditional<Option<Value>>> {
        let mut b = WriteBatch::new();
        b.delete_op(self.ns, key);
        self.conditional(key, b, |old, batch| {
            if old.is_none() {
                batch.clear(); // nothing to delete
            }
            Ok(old.map(Value::from_bytes))
        })
    }

    pub(crate) fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Conditional<std::result::Result<(), CasConflict>>> {
        let mut b = WriteBatch::new();
        match new {
            Some(v) => self.add_put(&mut b, key, v),
            None => b.delete_op(self.ns, key),
        }
        let expected = expected.map(<[u8]>::to_vec);
        self.conditional(key, b, move |current, batch| {
            if current.as_deref() == expected.as_deref() {
                Ok(Ok(()))
            } else {
                batch.clear();
                Ok(Err(CasConflict {
                    current: current.map(Value::from_bytes),
                }))
            }
        })
    }
}

/// A conditional write ready to submit, and where its answer will be.
pub(crate) struct Conditional<T> {
    req: WriteRequest,
    slot: Slot<T>,
}

fn take<T>(slot: &Slot<T>) -> Result<T> {
    slot.lock()
        .take()
        .ok_or_else(|| Error::invalid("conditional write was not evaluated"))
}

impl<T: Send + 'static> Conditional<T> {
    /// Commits and waits.
    pub(crate) fn run(self, inner: &Arc<DbInner>) -> Result<T> {
        inner.submit(self.req)?;
        take(&self.slot)
    }

    /// Commits from async code, without blocking.
    pub(crate) fn run_async(
        self,
        inner: &Arc<DbInner>,
    ) -> impl std::future::Future<Output = Result<T>> + Send + 'static {
        let fut = inner.submit_async(self.req);
        let slot = self.slot;
        async move {
            fut.await?;
            take(&slot)
        }
    }
}

impl DbInner {
    /// A best-effort write: valid ops applied atomically, the rest reported.
    pub(crate) fn write_best_effort(
        self: &Arc<Self>,
        batch: WriteBatch,
        durability: Durability,
    ) -> Result<BatchReport> {
        let total = batch.len();
        let mut req = WriteRequest::new(batch, durability);
        req.best_effort = true;
        let done = self.submit(req)?;
        Ok(BatchReport {
            applied: total - done.rejected.len(),
            errors: done.rejected,
        })
    }
}

impl Db {
    pub(crate) fn space(&self) -> Space<'_> {
        Space {
            inner: &self.inner,
            ns: crate::batch::DEFAULT_NS,
            meta: None,
        }
    }

    /// Applies every valid op of `batch` atomically (one WAL record) and
    /// reports the others (over a size limit, an `update` of a missing key,
    /// a namespace at its key limit) by index.
    pub fn write_best_effort(&self, batch: WriteBatch) -> Result<BatchReport> {
        self.inner
            .write_best_effort(batch, self.inner.opts.durability)
    }

    /// Sets `key` to `value`, expiring `ttl` from now: then every read
    /// treats it as absent, and compaction drops it.
    pub fn put_with_ttl(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<()> {
        self.space().put_with_ttl(key.as_ref(), value.as_ref(), ttl)
    }

    /// Sets `key` and returns its previous value, atomically.
    pub fn insert_returning_old(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Option<Value>> {
        self.space()
            .insert_returning_old(key.as_ref(), value.as_ref())?
            .run(&self.inner)
    }

    /// Replaces the value of an existing `key`, returning the old one;
    /// `Error::NotFound` (and nothing written) if it is absent.
    pub fn update(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<Value> {
        self.space()
            .update(key.as_ref(), value.as_ref())?
            .run(&self.inner)
    }

    /// Removes `key` and returns its value, atomically.
    pub fn consume(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.space().consume(key.as_ref())?.run(&self.inner)
    }

    /// Sets (or, with `new == None`, deletes) `key` only if its value is
    /// `expected` (`None`: absent), atomically against every other writer.
    ///
    /// ```
    /// # fn main() -> strata_kv::Result<()> {
    /// let db = strata_kv::Db::open_in_memory(strata_kv::Options::default())?;
    /// assert!(db.compare_and_swap(b"n", None, Some(b"1"))?.is_ok());
    /// let conflict = db.compare_and_swap(b"n", None, Some(b"2"))?.unwrap_err();
    /// assert_eq!(conflict.current.as_deref(), Some(&b"1"[..]));
    /// # Ok(()) }
    /// ```
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), CasConflict>> {
        self.space()
            .compare_and_swap(key.as_ref(), expected, new)?
            .run(&self.inner)
    }

    /// Subscribes to the puts and deletes of keys starting with `prefix`,
    /// delivered in commit order after each commit.
    pub fn watch_prefix(&self, prefix: impl AsRef<[u8]>) -> Subscriber {
        self.space().watch_prefix(prefix.as_ref())
    }
}
