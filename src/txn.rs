//! Optimistic transactions: reads at a snapshot, writes buffered, and a
//! commit that succeeds only if nothing the transaction read or wrote was
//! committed by someone else after it began.
//!
//! The check runs in the commit leader against the newest version of each
//! key, atomically with the write, so two conflicting transactions can
//! never both commit.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeBounds;

use crate::batch::{DEFAULT_NS, WriteBatch};
use crate::db::{Db, request::WriteRequest};
use crate::error::{Error, Result};
use crate::key;
use crate::namespace::Namespace;
use crate::snapshot::Snapshot;
use crate::value::Value;

/// An optimistic transaction from [`Db::transaction`].
///
/// ```
/// # fn main() -> strata_kv::Result<()> {
/// let db = strata_kv::Db::open_in_memory(strata_kv::Options::default())?;
/// db.put(b"a", b"10")?;
/// let mut txn = db.transaction();
/// let a = txn.get(b"a")?.expect("a");
/// txn.put(b"b", a);
/// txn.commit()?; // Error::Conflict if "a" or "b" changed since the transaction began
/// # Ok(()) }
/// ```
pub struct Transaction {
    db: Db,
    snapshot: Snapshot,
    /// (namespace, key) -> new value, `None` for a delete.
    writes: BTreeMap<(u32, Vec<u8>), Option<Vec<u8>>>,
    reads: BTreeSet<(u32, Vec<u8>)>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("sequence", &self.snapshot.sequence())
            .field("writes", &self.writes.len())
            .field("reads", &self.reads.len())
            .finish()
    }
}

impl Transaction {
    pub(crate) fn begin(db: &Db) -> Transaction {
        Transaction {
            snapshot: db.snapshot(),
            db: db.clone(),
            writes: BTreeMap::new(),
            reads: BTreeSet::new(),
        }
    }

    /// The sequence number the transaction reads at.
    pub fn sequence(&self) -> u64 {
        self.snapshot.sequence()
    }

    fn read(&mut self, ns: u32, key: &[u8]) -> Result<Option<Value>> {
        let k = (ns, key.to_vec());
        if let Some(v) = self.writes.get(&k) {
            return Ok(v.as_ref().map(|v| Value::from(v.as_slice())));
        }
        self.reads.insert(k);
        self.db.inner.get(ns, key, Some(self.snapshot.sequence()))
    }

    /// The value of `key`: the transaction's own write, else as of its start.
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.read(DEFAULT_NS, key.as_ref())
    }

    /// `get` in a namespace.
    pub fn get_in(&mut self, ns: &Namespace, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        ns.meta.check_live()?;
        self.read(ns.id(), key.as_ref())
    }

    /// Buffers a put, applied at commit.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.writes.insert(
            (DEFAULT_NS, key.as_ref().to_vec()),
            Some(value.as_ref().to_vec()),
        );
    }

    /// `put` in a namespace.
    pub fn put_in(&mut self, ns: &Namespace, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.writes.insert(
            (ns.id(), key.as_ref().to_vec()),
            Some(value.as_ref().to_vec()),
        );
    }

    /// Buffers a delete, applied at commit.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.writes
            .insert((DEFAULT_NS, key.as_ref().to_vec()), None);
    }

    /// `delete` in a namespace.
    pub fn delete_in(&mut self, ns: &Namespace, key: impl AsRef<[u8]>) {
        self.writes.insert((ns.id(), key.as_ref().to_vec()), None);
    }

    /// The pairs in `range`, in order: the transaction's own writes over
    /// its snapshot. Every key returned counts as read. (Keys inserted into
    /// the range by others are not detected: the check is per key.)
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(
        &mut self,
        range: R,
    ) -> Result<Vec<(Value, Value)>> {
        use std::ops::Bound;
        let owned = |b: Bound<&K>| b.map(|k| k.as_ref().to_vec());
        let (lo, hi) = (owned(range.start_bound()), owned(range.end_bound()));
        let inside = |k: &[u8]| {
            let above = match &lo {
                Bound::Included(l) => k >= l.as_slice(),
                Bound::Excluded(l) => k > l.as_slice(),
                Bound::Unbounded => true,
            };
            let below = match &hi {
                Bound::Included(h) => k <= h.as_slice(),
                Bound::Excluded(h) => k < h.as_slice(),
                Bound::Unbounded => true,
            };
            above && below
        };
        let mut merged: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
        for item in self.snapshot.range((lo.clone(), hi.clone())) {
            let (k, v) = item?;
            merged.insert(k.to_vec(), v);
        }
        for ((ns, k), v) in &self.writes {
            if *ns != DEFAULT_NS || !inside(k) {
                continue;
            }
            match v {
                Some(v) => merged.insert(k.clone(), Value::from(v.as_slice())),
                None => merged.remove(k),
            };
        }
        for k in merged.keys() {
            self.reads.insert((DEFAULT_NS, k.clone()));
        }
        Ok(merged
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect())
    }

    /// Applies the writes atomically, unless a key read or written was
    /// committed by someone else since the transaction began: then
    /// `Error::Conflict` and nothing is written.
    pub fn commit(self) -> Result<()> {
        let inner = std::sync::Arc::clone(&self.db.inner);
        match self.into_request() {
            Some(req) => inner.submit(req).map(|_| ()),
            None => Ok(()),
        }
    }

    /// `commit` from async code: resolves when committed, never blocking the runtime.
    pub fn commit_async(self) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let inner = std::sync::Arc::clone(&self.db.inner);
        let fut = self.into_request().map(|req| inner.submit_async(req));
        async move {
            match fut {
                Some(f) => f.await.map(|_| ()),
                None => Ok(()),
            }
        }
    }

    /// The commit's write: the buffered ops plus the conflict check.
    /// `None` for a read-only transaction (its snapshot was consistent).
    fn into_request(self) -> Option<WriteRequest> {
        if self.writes.is_empty() {
            return None;
        }
        let start = self.snapshot.sequence();
        let inner = &self.db.inner;
        let mut batch = WriteBatch::new();
        for ((ns, k), v) in &self.writes {
            match v {
                Some(v) => {
                    let ttl = (*ns != DEFAULT_NS)
                        .then(|| inner.namespaces.by_id(*ns))
                        .flatten()
                        .and_then(|m| m.default_ttl());
                    match ttl {
                        Some(ttl) => batch.put_ttl_op(*ns, k, v, ttl),
                        None => batch.put_op(*ns, k, v, None),
                    }
                }
                None => batch.delete_op(*ns, k),
            }
        }
        let touched: Vec<Vec<u8>> = self
            .reads
            .iter()
            .chain(self.writes.keys())
            .map(|(ns, k)| key::ukey(*ns, k))
            .collect();
        let mut req = WriteRequest::new(batch, inner.opts.durability);
        req.prepare = Some(Box::new(move |view, _| {
            for ukey in &touched {
                if view.latest_seq(ukey)?.is_some_and(|seq| seq > start) {
                    return Err(Error::Conflict);
                }
            }
            Ok(())
        }));
        Some(req)
    }

    /// Discards the transaction (dropping it does the same).
    pub fn rollback(self) {}
}

impl Db {
    /// Begins an optimistic transaction at a snapshot of now.
    pub fn transaction(&self) -> Transaction {
        Transaction::begin(self)
    }
}
