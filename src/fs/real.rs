//! The real file system: std::fs, flock for locking, memmap2 for maps.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::{EntryKind, FileSystem, LockGuard, ReadableFile, WritableFile};
use crate::error::{Error, Result};

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl RealFs {
    /// The real file system.
    pub fn new() -> Self {
        RealFs
    }
}

#[derive(Debug)]
struct RealWritable {
    file: File,
    path: PathBuf,
}

impl WritableFile for RealWritable {
    fn append(&self, data: &[u8]) -> Result<()> {
        (&self.file)
            .write_all(data)
            .map_err(|e| Error::io_at(e, &self.path))
    }

    fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io_at(e, &self.path))
    }

    /// fallocate: on ext4 an fdatasync after an append into allocated
    /// space was measured a third faster than one that grows the file.
    fn preallocate(&self, len: u64) -> Result<()> {
        match rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => Ok(()),
            Err(e) => Err(Error::io_at(e.into(), &self.path)),
        }
    }
}

#[derive(Debug)]
struct RealReadable {
    file: File,
    path: PathBuf,
    len: u64,
}

impl ReadableFile for RealReadable {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Error::io_at(e, &self.path))
    }

    fn map(&self) -> Result<Bytes> {
        if self.len == 0 {
            return Ok(Bytes::new());
        }
        // SAFETY: strata-kv maps only files it wrote, finished and fsynced
        // (tables, read-only once renamed into place), and never writes or
        // truncates them again. Another process changing the file under the map
        // is outside what any memory-mapped reader can defend against; the
        // block checksums still turn such changes into `Error::Corruption`.
        #[expect(unsafe_code, reason = "memory-mapping an immutable table file")]
        let map =
            unsafe { memmap2::Mmap::map(&self.file) }.map_err(|e| Error::io_at(e, &self.path))?;
        Ok(Bytes::from_owner(map))
    }
}

#[derive(Debug)]
struct RealLock {
    _file: File,
}

impl LockGuard for RealLock {}

impl FileSystem for RealFs {
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io_at(e, dir))
    }

    fn create(&self, path: &Path) -> Result<Arc<dyn WritableFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io_at(e, path))?;
        Ok(Arc::new(RealWritable {
            file,
            path: path.to_owned(),
        }))
    }

    fn open(&self, path: &Path) -> Result<Arc<dyn ReadableFile>> {
        let file = File::open(path).map_err(|e| Error::io_at(e, path))?;
        let len = file.metadata().map_err(|e| Error::io_at(e, path))?.len();
        Ok(Arc::new(RealReadable {
            file,
            path: path.to_owned(),
            len,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| Error::io_at(e, from))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io_at(e, path))
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io_at(e, dir))? {
            let entry = entry.map_err(|e| Error::io_at(e, dir))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn kind(&self, path: &Path) -> Result<Option<EntryKind>> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Ok(Some(EntryKind::Dir)),
            Ok(_) => Ok(Some(EntryKind::File)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io_at(e, path)),
        }
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io_at(e, path))?;
        // flock locks belong to the open file description, so a second open
        // from this same process conflicts too.
        match file.try_lock() {
            Ok(()) => Ok(Box::new(RealLock { _file: file })),
            Err(TryLockError::WouldBlock) => Err(Error::Locked {
                path: path.to_owned(),
            }),
            Err(TryLockError::Error(e)) => Err(Error::io_at(e, path)),
        }
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io_at(e, dir))
    }

    fn link_or_copy(&self, from: &Path, to: &Path) -> Result<()> {
        match std::fs::hard_link(from, to) {
            Ok(()) => Ok(()),
            Err(_) => {
                std::fs::copy(from, to).map_err(|e| Error::io_at(e, from))?;
                File::open(to)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| Error::io_at(e, to))
            }
        }
    }
}
