//! The real file system: std::fs, flock for locking, memmap2 for maps.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

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

/// Appends go through a shared mapping of this many bytes at a time.
const APPEND_WINDOW: u64 = 1 << 20;

/// Synced appends keep at least this much of the reserved space ahead of
/// the tail written with zeros...
const ZERO_AHEAD: u64 = 512 << 10;

/// ...writing this many bytes of zeros at a time.
const ZERO_CHUNK: u64 = 1 << 20;

#[derive(Debug)]
struct RealWritable {
    file: File,
    path: PathBuf,
    tail: Mutex<Tail>,
}

/// Where the next append goes, and how.
#[derive(Debug, Default)]
struct Tail {
    /// Bytes appended so far: the offset of the next append.
    len: u64,
    /// Bytes reserved by `preallocate_mapped` (0: never map). Appends that
    /// fit are copied into a shared mapping of the file instead of written
    /// with a system call.
    reserved: u64,
    /// The mapped window and its offset in the file.
    window: Option<(u64, memmap2::MmapMut)>,
    /// Bytes reserved by fallocate (mapped or not).
    allocated: u64,
    /// Where the zeros `zero_ahead` wrote end (0: none written). Only
    /// synced appends move it; below the tail it means nothing.
    zeroed: u64,
}

impl RealWritable {
    /// Creates (or truncates) `path` for appending.
    fn create(path: &Path) -> Result<Self> {
        // Read access too: a shared writable mapping needs it.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io_at(e, path))?;
        Ok(RealWritable {
            file,
            path: path.to_owned(),
            tail: Mutex::new(Tail::default()),
        })
    }

    /// Reserves `len` bytes; false if the file system cannot.
    fn fallocate(&self, len: u64) -> Result<bool> {
        match rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => Ok(false),
            Err(e) => Err(Error::io_at(e.into(), &self.path)),
        }
    }

    /// Writes zeros into the reserved space ahead of the tail, a chunk at a
    /// time, so that it stays written at least `ZERO_AHEAD` bytes ahead.
    ///
    /// fallocate leaves its blocks *unwritten*: ext4 (and XFS) mark them
    /// written only once data reaches them, a metadata change that the
    /// next fdatasync must commit to the journal. Small synced appends
    /// enter a new 4 KiB block every few syncs, so without this every few
    /// fdatasyncs pay a journal commit; with it, one in a megabyte does.
    /// Measured on ext4 (docs/benchmarks.md, "Zeros ahead of the WAL's
    /// tail"): a 2 KiB append and fdatasync took 135–140 µs into unwritten
    /// blocks and 94–111 µs into written ones. Zeros past the tail read as
    /// the end of the log, as unwritten blocks do. The price: the synced
    /// part of a WAL is written twice, once as zeros.
    fn zero_ahead(&self, tail: &mut Tail) -> Result<()> {
        if tail.zeroed >= tail.allocated || tail.len + ZERO_AHEAD <= tail.zeroed {
            return Ok(());
        }
        let from = tail.zeroed.max(tail.len);
        let to = (from + ZERO_CHUNK).min(tail.allocated);
        if from < to {
            let zeros = vec![0; (to - from) as usize];
            self.file
                .write_all_at(&zeros, from)
                .map_err(|e| Error::io_at(e, &self.path))?;
        }
        tail.zeroed = to;
        Ok(())
    }

    /// Copies `data` to `at` through mapped windows; the caller checked it
    /// lies within the reserved space. Returns false if a window cannot be
    /// mapped (the caller then writes all of `data` with a system call).
    fn copy_mapped(&self, tail: &mut Tail, mut at: u64, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let covered = tail
                .window
                .as_ref()
                .is_some_and(|(start, map)| at >= *start && at < start + map.len() as u64);
            if !covered {
                let start = at - at % APPEND_WINDOW;
                let len = APPEND_WINDOW.min(tail.reserved - start);
                tail.window = None;
                // SAFETY: the file is this writer's own, opened read-write,
                // and `reserved` bytes of it were allocated by fallocate on
                // a file system that reserves blocks for it (ext4, XFS,
                // tmpfs; see `maps_safely`), so every page of the window is
                // inside the file and has its block: a store does not fault
                // for lack of space. strata-kv never truncates a file it is
                // appending to. What remains is outside any mapped writer's
                // control and is why `Options::wal_mmap(false)` exists: a
                // store that must read its page back from a failing disk, or
                // another process truncating the file, raises SIGBUS where
                // `write` would return an error. Readers of the same file
                // (recovery, `verify`, a read-only handle) only copy bytes
                // out and check every record's checksum, so a tail being
                // stored meanwhile reads as a torn or unwritten record.
                #[expect(unsafe_code, reason = "mapping the reserved tail of a log for appends")]
                let mapped = unsafe {
                    memmap2::MmapOptions::new()
                        .offset(start)
                        .len(len as usize)
                        .map_mut(&self.file)
                };
                match mapped {
                    Ok(map) => tail.window = Some((start, map)),
                    Err(e) => {
                        log::warn!("{}: appending without a map: {e}", self.path.display());
                        tail.reserved = 0;
                        return false;
                    }
                }
            }
            let Some((start, map)) = tail.window.as_mut() else {
                return false;
            };
            let from = (at - *start) as usize;
            let n = data.len().min(map.len() - from);
            let (head, rest) = data.split_at(n);
            let Some(dst) = map.get_mut(from..from + n) else {
                return false;
            };
            copy_in_order(dst, head);
            at += n as u64;
            data = rest;
        }
        true
    }
}

/// Copies `src` into `dst` (of the same length) front to back, so a
/// process killed during the copy leaves a prefix of it in the file, as an
/// interrupted `write` does. `memcpy` may store the end first (glibc copies
/// backwards for some alignments, and some sizes store their first bytes
/// last); a hole before intact records would then read as corruption in
/// the middle of the WAL rather than a torn tail.
///
/// Bytes up to an 8-byte boundary of `dst`, then aligned 8-byte words, then
/// the rest, all as volatile stores: the compiler neither reorders volatile
/// accesses among themselves nor merges or splits them, and an aligned word
/// store is one instruction on 64-bit targets. The CPU retires stores in
/// program order up to the kill. A torn store would lose less than 8 bytes,
/// less than the smallest WAL fragment (7 bytes of header and a batch).
fn copy_in_order(dst: &mut [u8], src: &[u8]) {
    let head = dst.as_ptr().align_offset(8).min(dst.len());
    let (dst_head, dst_words) = dst.split_at_mut(head);
    let (src_head, src_words) = src.split_at(head.min(src.len()));
    store_bytes(dst_head, src_head);
    let mut dst_words = dst_words.chunks_exact_mut(8);
    let mut src_words = src_words.chunks_exact(8);
    for (d, s) in (&mut dst_words).zip(&mut src_words) {
        let Ok(word) = <[u8; 8]>::try_from(s) else {
            break;
        };
        let word = u64::from_ne_bytes(word);
        // SAFETY: `d` is 8 bytes of `dst`, exclusively borrowed, starting at
        // an 8-byte boundary (`head` bytes were skipped to reach one, and
        // every chunk is 8 bytes), so the pointer is valid and aligned for
        // a u64 write.
        #[expect(
            unsafe_code,
            reason = "an aligned volatile word store, for store order"
        )]
        unsafe {
            d.as_mut_ptr().cast::<u64>().write_volatile(word);
        }
    }
    store_bytes(dst_words.into_remainder(), src_words.remainder());
}

/// Volatile byte stores, in order (see `copy_in_order`).
fn store_bytes(dst: &mut [u8], src: &[u8]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        // SAFETY: `d` is a valid, exclusive reference to one byte.
        #[expect(unsafe_code, reason = "a volatile byte store, for store order")]
        unsafe {
            std::ptr::write_volatile(d, s);
        }
    }
}

/// File systems on which fallocate reserves the blocks (so a store into
/// the reserved space never needs new space) and fdatasync writes back
/// pages dirtied through a shared map: ext4, XFS and tmpfs, on Linux.
/// (The magic number is shared with ext2/3, but those have no fallocate
/// for their files, so `preallocate_mapped` never gets this far there.)
/// Copy-on-write file systems (btrfs, ZFS) may need new blocks for any
/// store, and elsewhere POSIX defines only msync for mapped changes.
#[cfg(target_os = "linux")]
fn maps_safely(file: &File) -> bool {
    const EXT4: u64 = 0xEF53;
    const XFS: u64 = 0x5846_5342;
    const TMPFS: u64 = 0x0102_1994;
    rustix::fs::fstatfs(file)
        .ok()
        .and_then(|st| u64::try_from(st.f_type).ok())
        .is_some_and(|kind| matches!(kind, EXT4 | XFS | TMPFS))
}

#[cfg(not(target_os = "linux"))]
fn maps_safely(_file: &File) -> bool {
    false
}

impl WritableFile for RealWritable {
    /// Within the space `preallocate_mapped` reserved, appends are stores
    /// into a shared mapping: they are in the page cache at once (a process
    /// crash keeps them, as after `write`), without a system call per append.
    fn append(&self, data: &[u8]) -> Result<()> {
        let mut tail = self.tail.lock();
        let at = tail.len;
        let end = at + data.len() as u64;
        // If a window cannot be mapped, the system call writes it all,
        // rewriting any part already copied.
        let copied = end <= tail.reserved && self.copy_mapped(&mut tail, at, data);
        if !copied {
            self.file
                .write_all_at(data, at)
                .map_err(|e| Error::io_at(e, &self.path))?;
        }
        tail.len = end;
        Ok(())
    }

    /// A synced append is written with a system call, not stored through
    /// the map, and the space ahead of it is zero-filled (`zero_ahead`).
    /// With the space ahead written, an fdatasync after stores through the
    /// map was measured slower than after `write`; without it, both paid
    /// the journal commits that `zero_ahead` avoids.
    fn append_and_sync(&self, data: &[u8]) -> Result<()> {
        {
            let mut tail = self.tail.lock();
            let at = tail.len;
            self.file
                .write_all_at(data, at)
                .map_err(|e| Error::io_at(e, &self.path))?;
            tail.len = at + data.len() as u64;
            self.zero_ahead(&mut tail)?;
        }
        self.sync()
    }

    /// fdatasync writes back the pages dirtied through the mapping too
    /// (Linux keeps one page cache; msync(MS_SYNC) does the same sync).
    fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io_at(e, &self.path))
    }

    /// fallocate: on ext4 an fdatasync after an append into allocated
    /// space was measured a third faster than one that grows the file.
    fn preallocate(&self, len: u64) -> Result<()> {
        if self.fallocate(len)? {
            let mut tail = self.tail.lock();
            tail.allocated = tail.allocated.max(len);
        }
        Ok(())
    }

    /// Appends into the space fallocate reserved are copied into a mapped
    /// window (`APPEND_WINDOW` bytes, mapped in turn), on the file systems
    /// `maps_safely` names; elsewhere, or without fallocate, nothing is
    /// mapped: a store could fault for want of space.
    fn preallocate_mapped(&self, len: u64) -> Result<()> {
        if self.fallocate(len)? {
            let mut tail = self.tail.lock();
            tail.allocated = tail.allocated.max(len);
            if maps_safely(&self.file) {
                tail.reserved = tail.reserved.max(len);
            }
        }
        Ok(())
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
        // SAFETY: strata-kv maps tables, which it wrote, fsynced and renamed
        // into place and never writes or truncates again, and logs (WALs,
        // manifests) read whole for recovery or `verify`. A live WAL may
        // still be appended to while mapped here (by this process's writer
        // through its own map or `write`, or by another process): those
        // appends only change bytes past what the reader has validated, and
        // the log reader treats every byte as untrusted input, checking each
        // record's checksum and stopping at a torn or unwritten one. Another
        // process rewriting a file under the map is outside what any
        // memory-mapped reader can defend against; the checksums still turn
        // such changes into `Error::Corruption`.
        #[expect(unsafe_code, reason = "memory-mapping a table or log file")]
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
        Ok(Arc::new(RealWritable::create(path)?))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A new log, `000001.log` in a new directory, with `reserved` bytes
    /// preallocated for mapped appends or not.
    fn reserved_log(mapped: bool, reserved: u64) -> (tempfile::TempDir, RealWritable) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = RealWritable::create(&dir.path().join("000001.log")).expect("create");
        if mapped {
            file.preallocate_mapped(reserved).expect("preallocate");
        } else {
            file.preallocate(reserved).expect("preallocate");
        }
        (dir, file)
    }

    /// Appends chunks of awkward sizes (across window edges and past the
    /// reserved end), checking after each that a separate read of the file
    /// sees every byte: appends reach the OS at once, mapped or not, and
    /// synced appends (every fourth, if `synced`) among them.
    fn append_and_read_back(mapped: bool, synced: bool) {
        let reserved = 2 * APPEND_WINDOW + 4_000;
        let (dir, file) = reserved_log(mapped, reserved);
        let path = dir.path().join("000001.log");
        let maps = mapped && maps_safely(&file.file);
        if mapped && !maps {
            eprintln!("{}: no mapped appends on this file system", path.display());
        }
        let mut rng = fastrand::Rng::with_seed(7);
        let mut expected = Vec::new();
        while (expected.len() as u64) < reserved + APPEND_WINDOW / 2 {
            let n = match rng.u8(..4) {
                0 => 1,
                1 => rng.usize(1..200),
                2 => rng.usize(1..70_000),
                _ => rng.usize(APPEND_WINDOW as usize / 2..APPEND_WINDOW as usize * 2),
            };
            let chunk: Vec<u8> = (0..n).map(|_| rng.u8(1..)).collect();
            if synced && rng.u8(..4) == 0 {
                file.append_and_sync(&chunk).expect("append and sync");
            } else {
                file.append(&chunk).expect("append");
            }
            expected.extend_from_slice(&chunk);
            // Mapped while within the reserved space (the last window
            // stays mapped after appends go past it), where the file system
            // allows it; elsewhere (say, an overlay /tmp) both tests write.
            let window = file.tail.lock().window.is_some();
            if !maps || expected.len() as u64 <= reserved {
                assert_eq!(window, maps);
            }
            let on_disk = std::fs::read(&path).expect("read");
            assert!(on_disk.len() as u64 >= reserved.min(expected.len() as u64));
            assert_eq!(on_disk.get(..expected.len()), Some(&expected[..]));
            assert!(on_disk.iter().skip(expected.len()).all(|&b| b == 0));
        }
        file.sync().expect("sync");
        drop(file);
        assert_eq!(std::fs::read(&path).expect("read"), expected);
    }

    #[test]
    fn mapped_appends_reach_the_file_at_once() {
        append_and_read_back(true, false);
    }

    #[test]
    fn written_appends_reach_the_file_at_once() {
        append_and_read_back(false, false);
    }

    #[test]
    fn synced_appends_among_mapped_ones_reach_the_file_at_once() {
        append_and_read_back(true, true);
    }

    #[test]
    fn synced_appends_among_written_ones_reach_the_file_at_once() {
        append_and_read_back(false, true);
    }

    /// Small synced appends keep `ZERO_AHEAD` bytes ahead of the tail
    /// written (zeros), up to the reserved end and never past it, without
    /// touching what was appended.
    #[test]
    fn synced_appends_keep_zeros_ahead_of_the_tail() {
        for mapped in [true, false] {
            let reserved = 3 * ZERO_CHUNK + 1_000;
            let (dir, file) = reserved_log(mapped, reserved);
            let path = dir.path().join("000001.log");
            if file.tail.lock().allocated == 0 {
                eprintln!("{}: no fallocate on this file system", path.display());
                return;
            }
            let mut expected = Vec::new();
            let mut i = 0u8;
            while (expected.len() as u64) < reserved + 10_000 {
                i = i.wrapping_add(1).max(1);
                let chunk = vec![i; 2_200];
                if i.is_multiple_of(3) {
                    file.append(&chunk).expect("append");
                } else {
                    file.append_and_sync(&chunk).expect("append and sync");
                    let tail = file.tail.lock();
                    assert!(
                        tail.zeroed >= (tail.len + ZERO_AHEAD).min(reserved),
                        "written to {} of {reserved} with the tail at {}",
                        tail.zeroed,
                        tail.len
                    );
                    assert!(tail.zeroed <= reserved.max(tail.len));
                }
                expected.extend_from_slice(&chunk);
                if !i.is_multiple_of(64) {
                    continue;
                }
                let on_disk = std::fs::read(&path).expect("read");
                assert_eq!(on_disk.len() as u64, reserved.max(expected.len() as u64));
                assert_eq!(on_disk.get(..expected.len()), Some(&expected[..]));
                assert!(on_disk.iter().skip(expected.len()).all(|&b| b == 0));
            }
            drop(file);
            assert_eq!(std::fs::read(&path).expect("read"), expected);
        }
    }
}
