//! The file system seam: every byte strata-kv reads or writes goes through
//! [`FileSystem`], so tests can swap the real disk for memory ([`MemFs`]) or
//! for a disk that fails and loses power on command ([`FaultFs`]).
//!
//! This is also the only place that syncs, renames and removes files.
//!
//! Concurrency: implementations are `Send + Sync`; a [`WritableFile`] may be
//! appended to by one thread while another calls `sync` on it (the periodic
//! syncer does), so its methods take `&self`.

mod fault;
mod mem;
mod real;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;

pub use fault::{FaultError, FaultFs, FaultOp};
pub use mem::MemFs;
pub use real::RealFs;

/// A file opened for appending. Appends reach the OS at once; `sync` makes
/// them durable (fdatasync).
pub trait WritableFile: Send + Sync + fmt::Debug {
    /// Appends all of `data` at the end of the file.
    fn append(&self, data: &[u8]) -> Result<()>;
    /// Makes every appended byte durable (fdatasync).
    fn sync(&self) -> Result<()>;
    /// `append`, then `sync`: what a synced write group does, which an
    /// implementation may serve differently (the real disk keeps the space
    /// ahead of such appends written; see `RealFs`).
    fn append_and_sync(&self, data: &[u8]) -> Result<()> {
        self.append(data)?;
        self.sync()
    }
    /// Reserves `len` bytes for the file on disk (the file reads as zeros
    /// past what was appended). A hint: the default does nothing.
    fn preallocate(&self, len: u64) -> Result<()> {
        let _ = len;
        Ok(())
    }
    /// As [`preallocate`](Self::preallocate), and appends that fit in the
    /// reserved space may be stores into a shared memory map instead of
    /// system calls. They must still reach the OS at once (a process crash
    /// keeps them) and `sync` must make them durable. The default only
    /// preallocates.
    fn preallocate_mapped(&self, len: u64) -> Result<()> {
        self.preallocate(len)
    }
}

/// A file opened for reading at any offset.
pub trait ReadableFile: Send + Sync + fmt::Debug {
    /// Length of the file in bytes when it was opened.
    fn len(&self) -> u64;
    /// True for an empty file.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` from `offset`; an error if the file ends first.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// The whole file as shared bytes: a memory map on a real disk.
    fn map(&self) -> Result<Bytes>;
}

/// Held while a directory is locked; dropping it releases the lock.
pub trait LockGuard: Send + Sync + fmt::Debug {}

/// The operations strata-kv needs from a file system.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates the directory and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> Result<()>;
    /// Creates (or truncates) `path` for appending.
    fn create(&self, path: &Path) -> Result<Arc<dyn WritableFile>>;
    /// Opens an existing file for reading.
    fn open(&self, path: &Path) -> Result<Arc<dyn ReadableFile>>;
    /// Atomically renames `from` to `to`, replacing `to`. Durable after `sync_dir`.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Removes a file. Durable after `sync_dir`.
    fn remove(&self, path: &Path) -> Result<()>;
    /// Names (not paths) of the entries in `dir`.
    fn list(&self, dir: &Path) -> Result<Vec<String>>;
    /// What is at `path`: `None` if nothing.
    fn kind(&self, path: &Path) -> Result<Option<EntryKind>>;
    /// Takes an exclusive lock on `path` (creating it); `Error::Locked` if already held.
    fn lock(&self, path: &Path) -> Result<Box<dyn LockGuard>>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// Makes `to` a second name of `from`'s contents: a hard link where the
    /// file system has them. The default copies.
    fn link_or_copy(&self, from: &Path, to: &Path) -> Result<()> {
        let data = self.open(from)?.map()?;
        let out = self.create(to)?;
        out.append(&data)?;
        out.sync()
    }
}

/// The type of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// Reads a whole file into memory.
pub(crate) fn read_file(fs: &dyn FileSystem, path: &Path) -> Result<Bytes> {
    fs.open(path)?.map()
}

/// Writes `data` to `path` through a temporary name: temp file, fsync,
/// rename, directory fsync. Readers see the old contents or the new, never a mix.
pub(crate) fn write_file_atomic(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    temp: &str,
    data: &[u8],
) -> Result<()> {
    let temp_path = dir.join(temp);
    let file = fs.create(&temp_path)?;
    file.append(data)?;
    file.sync()?;
    drop(file);
    fs.rename(&temp_path, &dir.join(name))?;
    fs.sync_dir(dir)
}
