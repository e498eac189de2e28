//! Creating, changing and dropping namespaces, and keeping their key counts.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Db, DbInner};
use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::namespace::{Namespace, NamespaceOptions, NsMeta};
use crate::snapshot::Snapshot;
use crate::version::{NamespaceRecord, VersionEdit};

impl DbInner {
    /// Records a namespace change in the manifest (nothing in memory mode).
    fn persist_namespaces(&self, created: Vec<NamespaceRecord>, dropped: Vec<u32>) -> Result<()> {
        let Some(versions) = &self.versions else {
            return Ok(());
        };
        if let Some(e) = self.poison_error() {
            return Err(e);
        }
        let edit = VersionEdit {
            namespaces: created,
            dropped_namespaces: dropped,
            ..VersionEdit::default()
        };
        let result = versions.lock().log_and_apply(edit);
        // The manifest's tail is unknown after a failed edit: as after a
        // failed flush, the database stops taking writes.
        if let Err(e) = &result {
            self.set_poison(e);
        }
        result.map(|_| ())
    }

    /// Counts a namespace's live keys with writes held off, so the count is exact.
    pub(crate) fn recount(self: &Arc<Self>, meta: &NsMeta) -> Result<()> {
        let _writer = self.writer.lock();
        // Writes held off, everything at or below `seq` readable.
        let (_exclusive, seq) = self.pin_exclusive();
        let _pin = Snapshot {
            inner: Arc::clone(self),
            seq,
        };
        let mut n = 0i64;
        for item in self.iter_range::<&[u8], _>(meta.id, .., Some(seq)) {
            item?;
            n += 1;
        }
        meta.count.store(n, Ordering::Release);
        Ok(())
    }

    fn refresh_has_limits(&self) {
        let any = !self.namespaces.limited().is_empty();
        self.has_limits.store(any, Ordering::Release);
    }

    /// Opens (creating if missing) a namespace; with `options`, sets them.
    pub(crate) fn open_namespace(
        self: &Arc<Self>,
        name: &str,
        options: Option<NamespaceOptions>,
    ) -> Result<Arc<NsMeta>> {
        self.check_open()?;
        let _g = self.namespaces.create.lock();
        if let Some(meta) = self.namespaces.get(name) {
            if let Some(o) = options
                && o != meta.options()
            {
                let had_limit = meta.max_keys().is_some();
                let record = self.namespaces.update(&meta, &o);
                self.persist_namespaces(vec![record], Vec::new())?;
                if o.max_keys.is_some() && !had_limit {
                    self.recount(&meta)?;
                }
                self.refresh_has_limits();
            }
            return Ok(meta);
        }
        let record = self
            .namespaces
            .new_record(name, &options.unwrap_or_default())?;
        self.persist_namespaces(vec![record.clone()], Vec::new())?;
        let meta = self.namespaces.register(&record);
        self.refresh_has_limits();
        Ok(meta)
    }

    pub(crate) fn drop_namespace(self: &Arc<Self>, name: &str) -> Result<()> {
        self.check_open()?;
        let _g = self.namespaces.create.lock();
        let meta = self
            .namespaces
            .unregister(name)
            .ok_or_else(|| Error::invalid(format!("no namespace {name:?}")))?;
        self.persist_namespaces(Vec::new(), vec![meta.id])?;
        self.refresh_has_limits();
        if self.in_memory {
            // No compaction will ever drop them: delete the keys now.
            let mut batch = WriteBatch::new();
            for item in self.iter_range::<&[u8], _>(meta.id, .., None) {
                let (k, _) = item?;
                batch.delete_op(meta.id, &k);
                if batch.len() >= 1024 {
                    self.write(std::mem::take(&mut batch), self.opts.durability)?;
                }
            }
            self.write(batch, self.opts.durability)?;
        }
        Ok(())
    }

    /// After recovery: registers the manifest's namespaces and counts the
    /// keys of those with a limit.
    pub(crate) fn load_namespaces(
        self: &Arc<Self>,
        records: Vec<NamespaceRecord>,
        dropped: &[u32],
    ) -> Result<()> {
        self.namespaces.reserve_ids(&records, dropped);
        for r in &records {
            self.namespaces.register(r);
        }
        for meta in self.namespaces.limited() {
            self.recount(&meta)?;
        }
        self.refresh_has_limits();
        Ok(())
    }
}

impl Db {
    /// The namespace called `name`, created (and recorded) if missing.
    pub fn namespace(&self, name: &str) -> Result<Namespace> {
        let meta = self.inner.open_namespace(name, None)?;
        Ok(Namespace {
            db: self.clone(),
            meta,
        })
    }

    /// The namespace called `name` with `options`, created if missing;
    /// an existing namespace takes the new options. Options persist.
    pub fn namespace_with(&self, name: &str, options: NamespaceOptions) -> Result<Namespace> {
        let meta = self.inner.open_namespace(name, Some(options))?;
        Ok(Namespace {
            db: self.clone(),
            meta,
        })
    }

    /// The names of every namespace, sorted.
    pub fn namespaces(&self) -> Result<Vec<String>> {
        self.inner.check_open()?;
        Ok(self.inner.namespaces.names())
    }

    /// Drops a namespace: its keys disappear at once (handles to it fail),
    /// and compaction reclaims their space.
    pub fn drop_namespace(&self, name: &str) -> Result<()> {
        self.inner.drop_namespace(name)
    }
}
