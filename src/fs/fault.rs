//! A file system that fails and loses power on command.
//!
//! [`FaultFs`] wraps a [`MemFs`]: it can fail the Nth write, sync, rename or
//! directory sync with EIO or ENOSPC, fail them at random, count them, and
//! simulate a power loss that drops every byte not yet synced and every
//! directory entry not yet made durable by a directory sync.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use super::{EntryKind, FileSystem, LockGuard, MemFs, ReadableFile, WritableFile};
use crate::error::{Error, Result};

/// An operation the fault plan can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// An append to a file.
    Write,
    /// A file sync (fdatasync).
    Sync,
    /// A rename.
    Rename,
    /// A directory sync.
    SyncDir,
}

impl FaultOp {
    fn index(self) -> usize {
        match self {
            FaultOp::Write => 0,
            FaultOp::Sync => 1,
            FaultOp::Rename => 2,
            FaultOp::SyncDir => 3,
        }
    }
}

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// EIO: nothing of the operation happened.
    Eio,
    /// ENOSPC: on a write, the first half of the bytes landed before the error.
    Enospc,
    /// The operation panics, as a `FileSystem` implementation with a bug
    /// might; nothing of it happened.
    Panic,
}

impl FaultError {
    fn to_error(self, op: FaultOp, path: &Path) -> Error {
        let (code, what) = match self {
            FaultError::Eio => (libc_eio(), "injected EIO"),
            FaultError::Enospc => (libc_enospc(), "injected ENOSPC"),
            FaultError::Panic => panic!("injected panic on {op:?} of {}", path.display()),
        };
        let err = io::Error::from_raw_os_error(code);
        Error::io_at(
            io::Error::new(err.kind(), format!("{what} on {op:?}")),
            path,
        )
    }
}

const fn libc_eio() -> i32 {
    5
}

const fn libc_enospc() -> i32 {
    28
}

#[derive(Debug, Default)]
struct Plan {
    /// Mutating operations left before a power loss, and the seed of its
    /// torn writes (`None`: drop every unsynced byte).
    crash_after: Option<(u64, Option<u64>)>,
    /// (operation, operations of that kind still to pass before the failing one, error).
    nth: Vec<(FaultOp, u64, FaultError)>,
    /// Probability in parts per million and the generator deciding.
    random: Option<(u32, SplitMix64)>,
}

/// A tiny deterministic generator (SplitMix64) so fault runs replay from a seed.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[derive(Debug, Default)]
struct FaultState {
    plan: Mutex<Plan>,
    counts: [AtomicU64; 4],
    /// Microseconds every file sync takes (a disk's fdatasync latency).
    sync_latency_us: AtomicU64,
    /// Threads that have called a file sync.
    sync_threads: Mutex<Vec<std::thread::ThreadId>>,
}

impl FaultState {
    /// Counts one `op` and says whether (and how) it must fail.
    fn check(&self, op: FaultOp) -> Option<FaultError> {
        if let Some(c) = self.counts.get(op.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let mut plan = self.plan.lock();
        let mut fired = None;
        plan.nth.retain_mut(|(o, left, err)| {
            if *o != op || fired.is_some() {
                return true;
            }
            if *left == 0 {
                fired = Some(*err);
                false
            } else {
                *left -= 1;
                true
            }
        });
        if fired.is_some() {
            return fired;
        }
        let (ppm, rng) = plan.random.as_mut()?;
        if rng.below(1_000_000) < u64::from(*ppm) {
            Some(if rng.below(2) == 0 {
                FaultError::Eio
            } else {
                FaultError::Enospc
            })
        } else {
            None
        }
    }
}

/// An in-memory file system that injects faults and simulates power loss.
/// Clones share the same files and plan.
#[derive(Debug, Clone, Default)]
pub struct FaultFs {
    mem: MemFs,
    state: Arc<FaultState>,
}

impl FaultFs {
    /// A fresh, empty, healthy file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// The in-memory file system underneath (to corrupt or truncate files directly).
    pub fn mem(&self) -> &MemFs {
        &self.mem
    }

    /// Makes the `n`th (1-based) future `op` fail with `error`.
    pub fn fail_nth(&self, op: FaultOp, n: u64, error: FaultError) {
        self.state
            .plan
            .lock()
            .nth
            .push((op, n.saturating_sub(1), error));
    }

    /// Loses power just before the `n`th (1-based) future mutating operation
    /// (create, append, sync, rename, remove, directory sync): so a crash can
    /// land anywhere, mid-flush or between a rename and its directory sync.
    /// With `torn_seed`, files keep a random part of their unsynced tails.
    /// The operation fails, as does everything after, until [`restart`](Self::restart).
    pub fn power_loss_after(&self, n: u64, torn_seed: Option<u64>) {
        self.state.plan.lock().crash_after = Some((n.max(1), torn_seed));
    }

    /// True once a power loss has happened and before the restart.
    pub fn is_down(&self) -> bool {
        self.mem.is_down()
    }

    /// Counts a mutating operation toward a planned power loss.
    fn step(&self, path: &Path) -> Result<()> {
        let fire = {
            let mut plan = self.state.plan.lock();
            match &mut plan.crash_after {
                Some((left, seed)) if *left <= 1 => {
                    let seed = *seed;
                    plan.crash_after = None;
                    Some(seed)
                }
                Some((left, _)) => {
                    *left -= 1;
                    None
                }
                None => None,
            }
        };
        if let Some(seed) = fire {
            match seed {
                Some(s) => self.power_loss_torn(s),
                None => self.power_loss(),
            }
            return Err(Error::io_at(
                io::Error::other("power lost (simulated)"),
                path,
            ));
        }
        Ok(())
    }

    /// Makes every write, sync, rename and directory sync fail with
    /// probability `ppm` per million, EIO or ENOSPC, decided by a generator seeded with `seed`.
    pub fn fail_randomly(&self, ppm: u32, seed: u64) {
        self.state.plan.lock().random = Some((ppm, SplitMix64::new(seed)));
    }

    /// Makes every file sync take `latency`, as a real disk's fdatasync does
    /// (group commit has something to amortise).
    pub fn set_sync_latency(&self, latency: std::time::Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.state.sync_latency_us.store(us, Ordering::Relaxed);
    }

    /// The threads that have called a file sync (fdatasync) so far.
    pub fn sync_threads(&self) -> Vec<std::thread::ThreadId> {
        self.state.sync_threads.lock().clone()
    }

    /// Removes every planned fault.
    pub fn clear_faults(&self) {
        *self.state.plan.lock() = Plan::default();
    }

    /// How many times `op` was attempted since this file system was made.
    pub fn count(&self, op: FaultOp) -> u64 {
        self.state
            .counts
            .get(op.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Simulates a power loss: every byte not synced and every directory
    /// entry not made durable is gone. Until [`restart`](Self::restart) every
    /// operation fails, so the dying database can write nothing more; drop it,
    /// then restart and reopen.
    pub fn power_loss(&self) {
        self.mem.power_loss(|_| 0);
    }

    /// Like [`power_loss`](Self::power_loss), but each file keeps a random
    /// prefix of its unsynced tail, as a disk that wrote part of its cache would.
    pub fn power_loss_torn(&self, seed: u64) {
        let mut rng = SplitMix64::new(seed);
        self.mem.power_loss(|unsynced| {
            let n = u64::try_from(unsynced).unwrap_or(u64::MAX);
            usize::try_from(rng.below(n.saturating_add(1))).unwrap_or(unsynced)
        });
    }

    /// Brings the file system back up after a power loss.
    pub fn restart(&self) {
        self.mem.restart();
    }

    fn check(&self, op: FaultOp, path: &Path) -> Result<()> {
        match self.state.check(op) {
            Some(err) => Err(err.to_error(op, path)),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct FaultWritable {
    inner: Arc<dyn WritableFile>,
    fs: FaultFs,
    path: std::path::PathBuf,
}

impl WritableFile for FaultWritable {
    fn append(&self, data: &[u8]) -> Result<()> {
        self.fs.step(&self.path)?;
        match self.fs.state.check(FaultOp::Write) {
            None => self.inner.append(data),
            Some(err) => {
                if err == FaultError::Enospc {
                    let half = data.get(..data.len() / 2).unwrap_or_default();
                    self.inner.append(half)?;
                }
                Err(err.to_error(FaultOp::Write, &self.path))
            }
        }
    }

    fn sync(&self) -> Result<()> {
        self.fs.step(&self.path)?;
        self.fs.check(FaultOp::Sync, &self.path)?;
        {
            let me = std::thread::current().id();
            let mut threads = self.fs.state.sync_threads.lock();
            if !threads.contains(&me) {
                threads.push(me);
            }
        }
        let us = self.fs.state.sync_latency_us.load(Ordering::Relaxed);
        if us > 0 {
            std::thread::sleep(std::time::Duration::from_micros(us));
        }
        self.inner.sync()
    }
}

impl FileSystem for FaultFs {
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.mem.create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> Result<Arc<dyn WritableFile>> {
        self.step(path)?;
        let inner = self.mem.create(path)?;
        Ok(Arc::new(FaultWritable {
            inner,
            fs: self.clone(),
            path: path.to_owned(),
        }))
    }

    fn open(&self, path: &Path) -> Result<Arc<dyn ReadableFile>> {
        self.mem.open(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.step(from)?;
        self.check(FaultOp::Rename, from)?;
        self.mem.rename(from, to)
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.step(path)?;
        self.mem.remove(path)
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        self.mem.list(dir)
    }

    fn kind(&self, path: &Path) -> Result<Option<EntryKind>> {
        self.mem.kind(path)
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        self.mem.lock(path)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.step(dir)?;
        self.check(FaultOp::SyncDir, dir)?;
        self.mem.sync_dir(dir)
    }

    fn link_or_copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.mem.link_or_copy(from, to)
    }
}

impl FaultFs {
    /// Reads a whole file (test helper).
    pub fn read(&self, path: &Path) -> Result<Bytes> {
        self.mem.open(path)?.map()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn nth_sync_fails_once_and_counts() {
        let fs = FaultFs::new();
        let dir = PathBuf::from("/d");
        fs.create_dir_all(&dir).expect("mkdir");
        let f = fs.create(&dir.join("f")).expect("create");
        fs.fail_nth(FaultOp::Sync, 2, FaultError::Eio);
        f.sync().expect("first sync passes");
        assert!(matches!(f.sync(), Err(Error::Io(_))));
        f.sync().expect("third sync passes");
        assert_eq!(fs.count(FaultOp::Sync), 3);
    }

    #[test]
    fn enospc_write_lands_half() {
        let fs = FaultFs::new();
        let dir = PathBuf::from("/d");
        fs.create_dir_all(&dir).expect("mkdir");
        let path = dir.join("f");
        let f = fs.create(&path).expect("create");
        fs.fail_nth(FaultOp::Write, 1, FaultError::Enospc);
        let err = f.append(b"12345678").expect_err("injected");
        let Error::Io(io) = err else {
            panic!("expected Io")
        };
        assert_eq!(io.raw_os_error(), None, "message-wrapped");
        assert_eq!(fs.mem().file_len(&path).expect("len"), 4);
    }
}
