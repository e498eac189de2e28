//! Namespaces: separate key spaces in one database, each with its own
//! options (a key limit, a default TTL), written atomically together
//! through one `WriteBatch`.
//!
//! Every stored key starts with its namespace id (4 bytes, big-endian;
//! `Db`'s own keys are namespace 0), so namespaces share the WAL, the
//! memtable and the tables. Names and options live in the manifest.
//!
//! Concurrency: the registry is guarded by a read-write lock; creating or
//! dropping a namespace takes `create` so ids are handed out once. A
//! namespace's options are atomics, read by the commit leader when it
//! checks `max_keys`; its live-key count is only changed by the leader.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::version::NamespaceRecord;

/// Settings of a namespace: a by-value builder like `Options`.
///
/// ```
/// use std::time::Duration;
/// let opts = strata_kv::NamespaceOptions::default()
///     .max_keys(10_000)
///     .default_ttl(Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceOptions {
    pub(crate) max_keys: Option<u64>,
    pub(crate) default_ttl: Option<Duration>,
}

impl NamespaceOptions {
    /// At most this many live keys: inserting a new key past it fails with
    /// `Error::LimitExceeded` (overwriting an existing key still works).
    #[must_use]
    pub fn max_keys(mut self, n: u64) -> Self {
        self.max_keys = Some(n);
        self
    }

    /// Plain puts into the namespace expire this long after they commit.
    #[must_use]
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    fn to_record(&self, id: u32, name: &str) -> NamespaceRecord {
        NamespaceRecord {
            id,
            name: name.to_owned(),
            max_keys: self.max_keys.unwrap_or(0),
            default_ttl_ms: self.default_ttl.map_or(0, |d| {
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
            }),
        }
    }
}

/// One namespace's shared state.
#[derive(Debug)]
pub(crate) struct NsMeta {
    pub(crate) id: u32,
    pub(crate) name: String,
    /// 0: no limit.
    max_keys: AtomicU64,
    /// 0: no default TTL.
    default_ttl_ms: AtomicU64,
    /// Live keys, kept while a limit is set.
    pub(crate) count: AtomicI64,
    pub(crate) dropped: AtomicBool,
}

impl NsMeta {
    fn new(record: &NamespaceRecord) -> Self {
        NsMeta {
            id: record.id,
            name: record.name.clone(),
            max_keys: AtomicU64::new(record.max_keys),
            default_ttl_ms: AtomicU64::new(record.default_ttl_ms),
            count: AtomicI64::new(0),
            dropped: AtomicBool::new(false),
        }
    }

    pub(crate) fn max_keys(&self) -> Option<u64> {
        let n = self.max_keys.load(Ordering::Acquire);
        (n > 0).then_some(n)
    }

    pub(crate) fn default_ttl(&self) -> Option<Duration> {
        let ms = self.default_ttl_ms.load(Ordering::Acquire);
        (ms > 0).then(|| Duration::from_millis(ms))
    }

    pub(crate) fn options(&self) -> NamespaceOptions {
        NamespaceOptions {
            max_keys: self.max_keys(),
            default_ttl: self.default_ttl(),
        }
    }

    fn set_options(&self, o: &NamespaceOptions) {
        let r = o.to_record(self.id, &self.name);
        self.max_keys.store(r.max_keys, Ordering::Release);
        self.default_ttl_ms
            .store(r.default_ttl_ms, Ordering::Release);
    }

    pub(crate) fn check_live(&self) -> Result<()> {
        if self.dropped.load(Ordering::Acquire) {
            return Err(Error::invalid(format!(
                "namespace {:?} was dropped",
                self.name
            )));
        }
        Ok(())
    }
}

/// The namespaces of one database.
#[derive(Debug)]
pub(crate) struct Registry {
    by_name: RwLock<HashMap<String, Arc<NsMeta>>>,
    by_id: RwLock<HashMap<u32, Arc<NsMeta>>>,
    next_id: AtomicU32,
    /// Held while creating, changing or dropping.
    pub(crate) create: Mutex<()>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            by_name: RwLock::default(),
            by_id: RwLock::default(),
            next_id: AtomicU32::new(1),
            create: Mutex::new(()),
        }
    }
}

impl Registry {
    /// Makes sure new ids come after every recorded or dropped one (ids are never reused).
    pub(crate) fn reserve_ids(&self, records: &[NamespaceRecord], dropped: &[u32]) {
        let highest = records
            .iter()
            .map(|r| r.id)
            .chain(dropped.iter().copied())
            .max()
            .unwrap_or(0);
        self.next_id.fetch_max(highest + 1, Ordering::AcqRel);
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<NsMeta>> {
        self.by_name.read().get(name).cloned()
    }

    pub(crate) fn by_id(&self, id: u32) -> Option<Arc<NsMeta>> {
        self.by_id.read().get(&id).cloned()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_name.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// Every live namespace, as the manifest would record it, by id.
    pub(crate) fn records(&self) -> Vec<NamespaceRecord> {
        let mut v: Vec<NamespaceRecord> = self
            .by_id
            .read()
            .values()
            .map(|m| m.options().to_record(m.id, &m.name))
            .collect();
        v.sort_by_key(|r| r.id);
        v
    }

    /// Namespaces that have a key limit.
    pub(crate) fn limited(&self) -> Vec<Arc<NsMeta>> {
        self.by_id
            .read()
            .values()
            .filter(|m| m.max_keys().is_some())
            .cloned()
            .collect()
    }

    /// A record for a new namespace (not yet registered).
    pub(crate) fn new_record(
        &self,
        name: &str,
        options: &NamespaceOptions,
    ) -> Result<NamespaceRecord> {
        check_name(name)?;
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        if id == u32::MAX {
            return Err(Error::LimitExceeded {
                reason: "no namespace ids left".into(),
            });
        }
        Ok(options.to_record(id, name))
    }

    pub(crate) fn register(&self, record: &NamespaceRecord) -> Arc<NsMeta> {
        let meta = Arc::new(NsMeta::new(record));
        self.by_name
            .write()
            .insert(record.name.clone(), Arc::clone(&meta));
        self.by_id.write().insert(record.id, Arc::clone(&meta));
        meta
    }

    pub(crate) fn update(&self, meta: &NsMeta, options: &NamespaceOptions) -> NamespaceRecord {
        meta.set_options(options);
        options.to_record(meta.id, &meta.name)
    }

    pub(crate) fn unregister(&self, name: &str) -> Option<Arc<NsMeta>> {
        let meta = self.by_name.write().remove(name)?;
        self.by_id.write().remove(&meta.id);
        meta.dropped.store(true, Ordering::Release);
        Some(meta)
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::invalid("a namespace name has 1 to 255 bytes"));
    }
    Ok(())
}

/// A named key space of a [`Db`](crate::Db), with the same read/write API.
///
/// Keys of different namespaces never collide; a [`WriteBatch`](crate::WriteBatch)
/// with `put_in`/`delete_in` writes several namespaces atomically.
///
/// ```
/// # fn main() -> strata_kv::Result<()> {
/// let db = strata_kv::Db::open_in_memory(strata_kv::Options::default())?;
/// let users = db.namespace("users")?;
/// users.put(b"1", b"Alice")?;
/// assert!(db.get(b"1")?.is_none()); // a different key space
/// assert_eq!(users.get(b"1")?.as_deref(), Some(&b"Alice"[..]));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Namespace {
    pub(crate) db: crate::Db,
    pub(crate) meta: Arc<NsMeta>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.meta.name)
            .field("options", &self.meta.options())
            .finish()
    }
}

impl Namespace {
    pub(crate) fn id(&self) -> u32 {
        self.meta.id
    }

    pub(crate) fn default_ttl(&self) -> Option<Duration> {
        self.meta.default_ttl()
    }

    fn space(&self) -> crate::db::Space<'_> {
        crate::db::Space {
            inner: &self.db.inner,
            ns: self.meta.id,
            meta: Some(&self.meta),
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// The namespace's current options.
    pub fn options(&self) -> NamespaceOptions {
        self.meta.options()
    }

    /// Sets `key` to `value` (expiring after the default TTL, if set).
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.space().put(key.as_ref(), value.as_ref())
    }

    /// Sets `key` to `value`, expiring `ttl` from now.
    pub fn put_with_ttl(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<()> {
        self.space().put_with_ttl(key.as_ref(), value.as_ref(), ttl)
    }

    /// Removes `key`.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        self.space().delete(key.as_ref())
    }

    /// The current value of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<crate::Value>> {
        self.space().get(key.as_ref())
    }

    /// True if `key` has a value.
    pub fn exists(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.get(key).map(|v| v.is_some())
    }

    /// Every key of the namespace, in order.
    pub fn iter(&self) -> crate::Iter {
        self.space().iter_range::<&[u8], _>(..)
    }

    /// The keys in `range`, in order.
    pub fn range<K: AsRef<[u8]>, R: std::ops::RangeBounds<K>>(&self, range: R) -> crate::Iter {
        self.space().iter_range(range)
    }

    /// The keys starting with `prefix`, in order.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> crate::Iter {
        self.space().iter_prefix(prefix.as_ref())
    }

    /// Sets `key` and returns its previous value, atomically.
    pub fn insert_returning_old(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Option<crate::Value>> {
        self.space()
            .insert_returning_old(key.as_ref(), value.as_ref())?
            .run(&self.db.inner)
    }

    /// Replaces the value of an existing `key`, returning the old one;
    /// `Error::NotFound` (and nothing written) if it is absent.
    pub fn update(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<crate::Value> {
        self.space()
            .update(key.as_ref(), value.as_ref())?
            .run(&self.db.inner)
    }

    /// Removes `key` and returns its value, atomically.
    pub fn consume(&self, key: impl AsRef<[u8]>) -> Result<Option<crate::Value>> {
        self.space().consume(key.as_ref())?.run(&self.db.inner)
    }

    /// Sets (or, with `new == None`, deletes) `key` only if its value is
    /// `expected` (`None`: absent), atomically against every other writer.
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), crate::CasConflict>> {
        self.space()
            .compare_and_swap(key.as_ref(), expected, new)?
            .run(&self.db.inner)
    }

    /// Subscribes to the puts and deletes of keys starting with `prefix`.
    pub fn watch_prefix(&self, prefix: impl AsRef<[u8]>) -> crate::Subscriber {
        self.space().watch_prefix(prefix.as_ref())
    }
}
