//! Background work: flush and compaction workers, the periodic WAL syncer,
//! and the waiting that writers and `flush`/`compact` calls do on them.
//!
//! Concurrency: `state` guards the job flags; `cv` is notified whenever the
//! super-version changes, a job ends, or the database is poisoned or closed,
//! so every waiter re-checks its condition. At most one flush and one
//! compaction run at a time; flush is always picked first.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::{DbInner, SuperVersion};
use crate::error::{Error, Result};
use crate::options::Durability;

#[derive(Default)]
struct BgState {
    shutdown: bool,
    flushing: bool,
    compacting: bool,
    /// Bumped on every notification, so waiters can tell something changed.
    generation: u64,
}

/// The background scheduler.
#[derive(Default)]
pub(crate) struct Background {
    state: Mutex<BgState>,
    cv: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background").finish_non_exhaustive()
    }
}

enum Job {
    Flush,
    Compact(crate::compaction::Pick),
}

impl Background {
    /// Starts the workers (and the periodic syncer, if that durability is chosen).
    pub(crate) fn start(inner: &Arc<DbInner>) -> Result<()> {
        let mut threads = inner.bg.threads.lock();
        for i in 0..inner.opts.max_background_jobs {
            let db = Arc::clone(inner);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("strata-bg-{i}"))
                    .spawn(move || worker(&db))?,
            );
        }
        if let Durability::Periodic(every) = inner.opts.durability {
            let db = Arc::clone(inner);
            threads.push(
                std::thread::Builder::new()
                    .name("strata-sync".into())
                    .spawn(move || periodic_sync(&db, every))?,
            );
        }
        Ok(())
    }

    /// Wakes every waiter to re-check its condition.
    pub(crate) fn notify_all(&self) {
        self.state.lock().generation += 1;
        self.cv.notify_all();
    }

    /// Waits until something changes (or `timeout` passes).
    pub(crate) fn wait_for_change(&self, timeout: Duration) {
        let mut s = self.state.lock();
        let seen = s.generation;
        if !s.shutdown {
            self.cv
                .wait_while_for(&mut s, |s| s.generation == seen && !s.shutdown, timeout);
        }
    }

    /// Waits until `done` holds for the current super-version (or the
    /// database fails or closes).
    pub(crate) fn wait_until(
        &self,
        inner: &DbInner,
        done: impl Fn(&SuperVersion) -> bool,
    ) -> Result<()> {
        loop {
            if done(&inner.super_version.load()) {
                return Ok(());
            }
            inner.check_open()?;
            if let Some(e) = inner.poison_error() {
                return Err(e);
            }
            self.wait_for_change(Duration::from_millis(100));
        }
    }

    /// Takes the compaction slot for a manual compaction (waiting for a
    /// background one to finish).
    pub(crate) fn acquire_compaction(&self, inner: &DbInner) -> Result<()> {
        let mut s = self.state.lock();
        while s.compacting {
            drop(s);
            inner.check_open()?;
            if let Some(e) = inner.poison_error() {
                return Err(e);
            }
            s = self.state.lock();
            if s.compacting {
                self.cv.wait_for(&mut s, Duration::from_millis(100));
            }
        }
        s.compacting = true;
        Ok(())
    }

    pub(crate) fn release_compaction(&self) {
        {
            let mut s = self.state.lock();
            s.compacting = false;
            s.generation += 1;
        }
        self.cv.notify_all();
    }

    /// Stops the workers after their current job and waits for them.
    pub(crate) fn shutdown(&self) {
        self.state.lock().shutdown = true;
        self.cv.notify_all();
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        let me = std::thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

fn next_job(inner: &DbInner) -> Option<Job> {
    let bg = &inner.bg;
    let mut s = bg.state.lock();
    loop {
        if s.shutdown {
            return None;
        }
        if inner.poison_error().is_none() {
            if !s.flushing && inner.needs_flush() {
                s.flushing = true;
                return Some(Job::Flush);
            }
            if !s.compacting
                && let Some(picked) = inner.pick_compaction()
            {
                s.compacting = true;
                return Some(Job::Compact(picked));
            }
        }
        bg.cv.wait_for(&mut s, Duration::from_millis(500));
    }
}

fn worker(inner: &Arc<DbInner>) {
    while let Some(job) = next_job(inner) {
        let (result, flush) = match job {
            Job::Flush => (inner.flush_oldest(), true),
            Job::Compact(picked) => (inner.run_compaction(picked), false),
        };
        if let Err(e) = result
            && !matches!(e, Error::Closed)
        {
            inner.set_poison(&e);
        }
        {
            let mut s = inner.bg.state.lock();
            if flush {
                s.flushing = false;
            } else {
                s.compacting = false;
            }
            s.generation += 1;
        }
        inner.bg.cv.notify_all();
    }
}

fn periodic_sync(inner: &Arc<DbInner>, every: Duration) {
    loop {
        {
            let mut s = inner.bg.state.lock();
            if !s.shutdown {
                inner.bg.cv.wait_while_for(&mut s, |s| !s.shutdown, every);
            }
            if s.shutdown {
                return;
            }
        }
        let file = inner.wal_file.lock().clone();
        if let Some(f) = file {
            match f.sync() {
                Ok(()) => {
                    inner.stats.wal_syncs.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => inner.set_poison(&e),
            }
        }
    }
}
