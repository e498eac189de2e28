//! An in-memory file system that also models durability.
//!
//! Each file remembers how many of its bytes were synced; each directory
//! entry remembers whether a directory sync made it durable. That model is
//! what [`FaultFs`](super::FaultFs) uses to simulate a power loss; used on its
//! own, `MemFs` is simply a fast, private disk for tests.
//!
//! Concurrency: one mutex guards the directory tree; each file's bytes have
//! their own mutex, so appends to different files do not contend.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{EntryKind, FileSystem, LockGuard, ReadableFile, WritableFile};
use crate::error::{Error, Result};

/// An in-memory file system. Clones share the same files.
#[derive(Debug, Clone, Default)]
pub struct MemFs {
    state: Arc<Mutex<MemState>>,
}

#[derive(Debug, Default)]
struct MemState {
    /// Bumped by every simulated power loss; handles from older generations fail.
    generation: u64,
    /// Between a power loss and `restart`, every operation fails.
    down: bool,
    names: BTreeMap<PathBuf, Arc<MemFile>>,
    durable_names: BTreeMap<PathBuf, Arc<MemFile>>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
}

#[derive(Debug)]
struct MemFile {
    generation: u64,
    data: Mutex<FileData>,
}

#[derive(Debug, Default, Clone)]
struct FileData {
    bytes: Vec<u8>,
    synced: usize,
}

fn dead_error(path: &Path) -> Error {
    Error::io_at(
        io::Error::other("file system is down (simulated power loss)"),
        path,
    )
}

fn not_found(path: &Path) -> Error {
    Error::io_at(io::Error::from(io::ErrorKind::NotFound), path)
}

impl MemFs {
    /// An empty in-memory file system.
    pub fn new() -> Self {
        Self::default()
    }

    fn check_alive(&self, generation: u64, path: &Path) -> Result<()> {
        let st = self.state.lock();
        if st.down || st.generation != generation {
            return Err(dead_error(path));
        }
        Ok(())
    }

    fn live_state(&self, path: &Path) -> Result<parking_lot::MutexGuard<'_, MemState>> {
        let st = self.state.lock();
        if st.down {
            return Err(dead_error(path));
        }
        Ok(st)
    }

    fn parent_exists(st: &MemState, path: &Path) -> bool {
        match path.parent() {
            None => true,
            Some(p) if p.as_os_str().is_empty() => true,
            Some(p) => st.dirs.contains(p),
        }
    }

    /// Simulates a power loss: from now until [`restart`](Self::restart) every
    /// operation fails, and what comes back is only what was durable: synced
    /// bytes, plus for each file up to `keep_unsynced(unsynced_len)` more bytes
    /// of its unsynced tail, under directory entries made durable by a
    /// directory sync.
    pub(crate) fn power_loss(&self, mut keep_unsynced: impl FnMut(usize) -> usize) {
        let mut st = self.state.lock();
        let generation = st.generation + 1;
        // Hard links share one file: keep that identity through the crash.
        let mut survivors: HashMap<*const MemFile, Arc<MemFile>> = HashMap::new();
        let mut names = BTreeMap::new();
        for (path, file) in &st.durable_names {
            let key = Arc::as_ptr(file);
            let survivor = survivors.entry(key).or_insert_with(|| {
                let data = file.data.lock();
                let unsynced = data.bytes.len() - data.synced;
                let keep = data.synced + keep_unsynced(unsynced).min(unsynced);
                let bytes = data.bytes.get(..keep).unwrap_or_default().to_vec();
                Arc::new(MemFile {
                    generation,
                    data: Mutex::new(FileData {
                        synced: bytes.len(),
                        bytes,
                    }),
                })
            });
            names.insert(path.clone(), Arc::clone(survivor));
        }
        st.generation = generation;
        st.down = true;
        st.durable_names = names.clone();
        st.names = names;
        st.locks.clear();
    }

    pub(crate) fn is_down(&self) -> bool {
        self.state.lock().down
    }

    /// Brings the file system back after [`power_loss`](Self::power_loss).
    pub(crate) fn restart(&self) {
        self.state.lock().down = false;
    }

    /// Flips one bit of a file in place (corruption tests). The change counts as durable.
    pub fn corrupt_byte(&self, path: &Path, offset: usize) -> Result<()> {
        let st = self.state.lock();
        let file = st.names.get(path).ok_or_else(|| not_found(path))?;
        let mut data = file.data.lock();
        let len = data.bytes.len();
        let byte = data
            .bytes
            .get_mut(offset)
            .ok_or_else(|| Error::invalid(format!("offset {offset} beyond length {len}")))?;
        *byte ^= 0x01;
        Ok(())
    }

    /// Cuts a file to `len` bytes (torn-write tests). The change counts as durable.
    pub fn truncate(&self, path: &Path, len: usize) -> Result<()> {
        let st = self.state.lock();
        let file = st.names.get(path).ok_or_else(|| not_found(path))?;
        let mut data = file.data.lock();
        data.bytes.truncate(len);
        data.synced = data.synced.min(len);
        Ok(())
    }

    /// The current length of a file, synced or not.
    pub fn file_len(&self, path: &Path) -> Result<usize> {
        let st = self.state.lock();
        let file = st.names.get(path).ok_or_else(|| not_found(path))?;
        let len = file.data.lock().bytes.len();
        Ok(len)
    }
}

#[derive(Debug)]
struct MemWritable {
    fs: MemFs,
    file: Arc<MemFile>,
    path: PathBuf,
}

impl WritableFile for MemWritable {
    fn append(&self, data: &[u8]) -> Result<()> {
        self.fs.check_alive(self.file.generation, &self.path)?;
        self.file.data.lock().bytes.extend_from_slice(data);
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.fs.check_alive(self.file.generation, &self.path)?;
        let mut d = self.file.data.lock();
        d.synced = d.bytes.len();
        Ok(())
    }
}

#[derive(Debug)]
struct MemReadable {
    bytes: Bytes,
    path: PathBuf,
}

impl ReadableFile for MemReadable {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(start..end))
            .ok_or_else(|| {
                Error::io_at(io::Error::from(io::ErrorKind::UnexpectedEof), &self.path)
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn map(&self) -> Result<Bytes> {
        Ok(self.bytes.clone())
    }
}

#[derive(Debug)]
struct MemLock {
    fs: MemFs,
    path: PathBuf,
    generation: u64,
}

impl LockGuard for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        let mut st = self.fs.state.lock();
        if st.generation == self.generation {
            st.locks.remove(&self.path);
        }
    }
}

impl FileSystem for MemFs {
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let mut st = self.live_state(dir)?;
        if st.names.contains_key(dir) {
            return Err(Error::io_at(
                io::Error::from(io::ErrorKind::AlreadyExists),
                dir,
            ));
        }
        for ancestor in dir.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                st.dirs.insert(ancestor.to_owned());
            }
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> Result<Arc<dyn WritableFile>> {
        let mut st = self.live_state(path)?;
        if !Self::parent_exists(&st, path) || st.dirs.contains(path) {
            return Err(not_found(path));
        }
        let file = Arc::new(MemFile {
            generation: st.generation,
            data: Mutex::new(FileData::default()),
        });
        st.names.insert(path.to_owned(), Arc::clone(&file));
        Ok(Arc::new(MemWritable {
            fs: self.clone(),
            file,
            path: path.to_owned(),
        }))
    }

    fn open(&self, path: &Path) -> Result<Arc<dyn ReadableFile>> {
        let st = self.live_state(path)?;
        let file = st.names.get(path).ok_or_else(|| not_found(path))?;
        let bytes = Bytes::copy_from_slice(&file.data.lock().bytes);
        Ok(Arc::new(MemReadable {
            bytes,
            path: path.to_owned(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = self.live_state(from)?;
        if !Self::parent_exists(&st, to) {
            return Err(not_found(to));
        }
        let file = st.names.remove(from).ok_or_else(|| not_found(from))?;
        st.names.insert(to.to_owned(), file);
        Ok(())
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let mut st = self.live_state(path)?;
        st.names
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let st = self.live_state(dir)?;
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let files = st.names.keys();
        let subdirs = st.dirs.iter();
        let mut out: Vec<String> = files
            .chain(subdirs)
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn kind(&self, path: &Path) -> Result<Option<EntryKind>> {
        let st = self.live_state(path)?;
        Ok(if st.dirs.contains(path) {
            Some(EntryKind::Dir)
        } else if st.names.contains_key(path) {
            Some(EntryKind::File)
        } else {
            None
        })
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn LockGuard>> {
        let mut st = self.live_state(path)?;
        if !Self::parent_exists(&st, path) {
            return Err(not_found(path));
        }
        if !st.locks.insert(path.to_owned()) {
            return Err(Error::Locked {
                path: path.to_owned(),
            });
        }
        if !st.names.contains_key(path) {
            let file = Arc::new(MemFile {
                generation: st.generation,
                data: Mutex::new(FileData::default()),
            });
            st.names.insert(path.to_owned(), file);
        }
        Ok(Box::new(MemLock {
            fs: self.clone(),
            path: path.to_owned(),
            generation: st.generation,
        }))
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let mut st = self.live_state(dir)?;
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        st.durable_names.retain(|p, _| !in_dir(p));
        let current: Vec<(PathBuf, Arc<MemFile>)> = st
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, f)| (p.clone(), Arc::clone(f)))
            .collect();
        st.durable_names.extend(current);
        Ok(())
    }

    fn link_or_copy(&self, from: &Path, to: &Path) -> Result<()> {
        let mut st = self.live_state(from)?;
        if !Self::parent_exists(&st, to) {
            return Err(not_found(to));
        }
        let file = st.names.get(from).cloned().ok_or_else(|| not_found(from))?;
        st.names.insert(to.to_owned(), file);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (MemFs, PathBuf) {
        let fs = MemFs::new();
        let dir = PathBuf::from("/db");
        fs.create_dir_all(&dir).expect("mkdir");
        (fs, dir)
    }

    #[test]
    fn power_loss_keeps_only_synced_bytes_under_durable_names() {
        let (fs, dir) = setup();
        let a = dir.join("a");
        let f = fs.create(&a).expect("create");
        f.append(b"hello").expect("append");
        f.sync().expect("sync");
        f.append(b" world").expect("append");
        fs.sync_dir(&dir).expect("sync dir");
        let b = dir.join("b");
        fs.create(&b).expect("create").sync().expect("sync");

        fs.power_loss(|_| 0);
        assert!(fs.open(&a).is_err(), "down until restart");
        assert!(f.append(b"zombie").is_err());
        fs.restart();
        assert!(f.append(b"zombie").is_err(), "old handles stay dead");
        assert_eq!(
            &fs.open(&a).expect("open").map().expect("map")[..],
            b"hello"
        );
        assert_eq!(fs.kind(&b).expect("kind"), None, "entry never made durable");
    }

    #[test]
    fn unsynced_rename_reverts_after_power_loss() {
        let (fs, dir) = setup();
        let (tmp, fin) = (dir.join("x.tmp"), dir.join("x"));
        let f = fs.create(&tmp).expect("create");
        f.append(b"data").expect("append");
        f.sync().expect("sync");
        fs.sync_dir(&dir).expect("sync dir");
        fs.rename(&tmp, &fin).expect("rename");
        fs.power_loss(|_| 0);
        fs.restart();
        assert_eq!(fs.kind(&fin).expect("kind"), None);
        assert_eq!(fs.kind(&tmp).expect("kind"), Some(EntryKind::File));
    }

    #[test]
    fn lock_is_exclusive_until_dropped() {
        let (fs, dir) = setup();
        let l = fs.lock(&dir.join("LOCK")).expect("lock");
        assert!(matches!(
            fs.lock(&dir.join("LOCK")),
            Err(Error::Locked { .. })
        ));
        drop(l);
        fs.lock(&dir.join("LOCK")).expect("relock");
    }
}
