//! Opening a database: checks, locking, recovery from the manifest and the
//! WALs, and the first fresh WAL.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::Mutex;

use super::write::insert_batch;
use super::{Background, CommitQueue, DbInner, SuperVersion, WriterState};
use crate::batch::validate_batch;
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::format::{
    CURRENT_FILE, FileKind, LOG_KIND_WAL, manifest_name, parse_file_name, wal_name,
};
use crate::fs::{EntryKind, FileSystem, MemFs, read_file};
use crate::memtable::Memtable;
use crate::namespace::Registry;
use crate::options::Options;
use crate::snapshot::SnapshotList;
use crate::stats::Counters;
use crate::version::{TableCtx, VersionEdit, VersionSet, read_current};
use crate::wal::{LogItem, LogReader, LogWriter, WalRecovery};

fn new_inner(
    opts: Options,
    fs: Arc<dyn FileSystem>,
    ctx: Arc<TableCtx>,
    versions: Option<VersionSet>,
    in_memory: bool,
) -> DbInner {
    let (version, last_seq) = versions
        .as_ref()
        .map_or((Arc::default(), 0), |v| (v.current(), v.last_sequence()));
    DbInner {
        dir: ctx.dir.clone(),
        fs,
        in_memory,
        super_version: ArcSwap::from_pointee(SuperVersion {
            mem: Arc::new(Memtable::new(0)),
            imm: Vec::new(),
            version,
        }),
        sv_generation: AtomicU64::new(0),
        sv_update: Mutex::new(()),
        visible_seq: AtomicU64::new(last_seq),
        next_seq: AtomicU64::new(last_seq),
        point_index: in_memory.then(super::point_index::PointIndex::default),
        expiry_any_ttl: AtomicBool::new(false),
        expiry_writes: AtomicU64::new(0),
        expiry_sweeping: AtomicBool::new(false),
        snapshots: SnapshotList::default(),
        versions: versions.map(Mutex::new),
        table_ctx: ctx,
        writer: Mutex::new(WriterState::new(None, 0, last_seq)),
        queue: CommitQueue::default(),
        wal_file: Mutex::new(None),
        bg: Background::default(),
        poison: Mutex::new(None),
        poisoned: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        stats: Counters::default(),
        lock: Mutex::new(None),
        compact_pointers: Mutex::new(Default::default()),
        write_debt: Mutex::new(std::time::Duration::ZERO),
        namespaces: Registry::default(),
        has_limits: AtomicBool::new(false),
        watchers: Arc::default(),
        mem_lock: parking_lot::RwLock::new(()),
        ordering: Mutex::default(),
        emit_lock: Mutex::new(()),
        read_only_source: None,
        opts,
    }
}

pub(crate) fn open_in_memory(opts: Options) -> Result<Arc<DbInner>> {
    opts.validate()?;
    let fs: Arc<dyn FileSystem> = Arc::new(MemFs::new());
    let ctx = Arc::new(TableCtx {
        fs: Arc::clone(&fs),
        dir: Default::default(),
        cache: Arc::new(BlockCache::new(0, 4096)),
        use_mmap: false,
    });
    Ok(Arc::new(new_inner(opts, fs, ctx, None, true)))
}

pub(crate) fn open(dir: &Path, opts: Options) -> Result<Arc<DbInner>> {
    opts.validate()?;
    let fs = Arc::clone(&opts.file_system);
    match fs.kind(dir)? {
        Some(EntryKind::File) => {
            return Err(Error::invalid(format!(
                "{} is a file, not a database directory",
                dir.display()
            )));
        }
        None if !opts.create_if_missing => {
            return Err(Error::invalid(format!(
                "{} does not exist (and create_if_missing is off)",
                dir.display()
            )));
        }
        None => fs.create_dir_all(dir)?,
        Some(EntryKind::Dir) => {}
    }
    let names = fs.list(dir)?;
    check_directory(dir, &names, &opts)?;
    let lock = fs.lock(&dir.join(crate::format::LOCK_FILE))?;
    let names = fs.list(dir)?;
    let ctx = table_ctx(&fs, dir, &opts);
    let exists = names.iter().any(|n| n == CURRENT_FILE);
    let versions = if exists {
        VersionSet::recover(Arc::clone(&ctx), opts.max_manifest_size, &names)?
    } else {
        // Leftovers of a creation that crashed before CURRENT was written:
        // no write was ever acknowledged, so they hold nothing of value.
        for name in &names {
            if matches!(
                parse_file_name(name),
                Some(
                    FileKind::Manifest(_) | FileKind::Wal(_) | FileKind::Table(_) | FileKind::Temp
                )
            ) {
                fs.remove(&dir.join(name))?;
            }
        }
        VersionSet::create(Arc::clone(&ctx), opts.max_manifest_size)
    };
    let wals = live_wals(&names, versions.log_number());

    let inner = Arc::new(new_inner(opts, fs, ctx, Some(versions), false));
    *inner.lock.lock() = Some(lock);
    inner.recover(&wals)?;
    inner.remove_obsolete_files()?;
    inner.load_recorded_namespaces()?;
    Background::start(&inner)?;
    Ok(inner)
}

/// What table readers share: the file system, the directory, the block cache.
fn table_ctx(fs: &Arc<dyn FileSystem>, dir: &Path, opts: &Options) -> Arc<TableCtx> {
    Arc::new(TableCtx {
        fs: Arc::clone(fs),
        dir: dir.to_owned(),
        cache: Arc::new(BlockCache::new(opts.block_cache_size, opts.block_size)),
        use_mmap: opts.use_mmap,
    })
}

/// The WALs at or after `log_number` among the directory's `names`, oldest first.
fn live_wals(names: &[String], log_number: u64) -> Vec<u64> {
    let mut wals: Vec<u64> = names
        .iter()
        .filter_map(|n| match parse_file_name(n) {
            Some(FileKind::Wal(w)) if w >= log_number => Some(w),
            _ => None,
        })
        .collect();
    wals.sort_unstable();
    wals
}

/// The manifest CURRENT names and its length: what a read-only handle
/// compares to tell whether a writer changed the database under it.
pub(crate) fn manifest_fingerprint(fs: &dyn FileSystem, dir: &Path) -> Result<(u64, u64)> {
    let number = read_current(fs, dir)?;
    let len = fs.open(&dir.join(manifest_name(number)))?.len();
    Ok((number, len))
}

/// Opens an existing database without taking its lock and without writing
/// anything: the manifest is read, the WALs are replayed into memory (not
/// into tables), no background work starts, and every write is refused
/// with `Error::ReadOnly`. Another process may have the database open for
/// writing meanwhile; this handle then sees a prefix of its commits.
pub(crate) fn open_read_only(dir: &Path, opts: Options) -> Result<Arc<DbInner>> {
    opts.validate()?;
    let fs = Arc::clone(&opts.file_system);
    if fs.kind(dir)? != Some(EntryKind::Dir) {
        return Err(Error::invalid(format!(
            "no database directory at {}",
            dir.display()
        )));
    }
    let source = manifest_fingerprint(fs.as_ref(), dir).map_err(|e| match e {
        Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            Error::invalid(format!("no database in {}", dir.display()))
        }
        e => e,
    })?;
    let names = fs.list(dir)?;
    let ctx = table_ctx(&fs, dir, &opts);
    let versions = match VersionSet::recover(Arc::clone(&ctx), opts.max_manifest_size, &names) {
        Ok(v) => v,
        // A writer that flushed or compacted between the listing and the
        // manifest read makes the manifest name a table the listing lacks
        // (or drop one): a race, not damage, if the manifest moved.
        Err(e) if manifest_fingerprint(fs.as_ref(), dir).ok() != Some(source) => {
            log::debug!("read-only open raced a writer: {e}");
            return Err(Error::Conflict);
        }
        Err(e) => return Err(e),
    };
    let wals = live_wals(&names, versions.log_number());

    let mut inner = new_inner(opts, fs, ctx, Some(versions), false);
    inner.read_only_source = Some(source);
    *inner.poison.get_mut() = Some(Error::ReadOnly);
    *inner.poisoned.get_mut() = true;
    let inner = Arc::new(inner);
    if let Err(e) = inner.replay_read_only(&wals) {
        // A writer that flushed or compacted meanwhile can delete a WAL
        // between the listing and the replay: a race, not damage.
        return Err(if inner.source_changed() {
            Error::Conflict
        } else {
            e
        });
    }
    inner.load_recorded_namespaces()?;
    Ok(inner)
}

/// Refuses to open what is not a strata-kv database (or an empty directory
/// to create one in), before anything is written.
fn check_directory(dir: &Path, names: &[String], opts: &Options) -> Result<()> {
    let exists = names.iter().any(|n| n == CURRENT_FILE);
    if exists {
        if opts.error_if_exists {
            return Err(Error::invalid(format!(
                "a database already exists in {}",
                dir.display()
            )));
        }
        return Ok(());
    }
    let foreign: Vec<&str> = names
        .iter()
        .filter(|n| parse_file_name(n).is_none())
        .map(String::as_str)
        .take(3)
        .collect();
    if !foreign.is_empty() {
        return Err(Error::invalid(format!(
            "{} is not a strata-kv database and is not empty (it holds {}); refusing to write there",
            dir.display(),
            foreign.join(", ")
        )));
    }
    if !opts.create_if_missing {
        return Err(Error::invalid(format!(
            "no database in {} (and create_if_missing is off)",
            dir.display()
        )));
    }
    Ok(())
}

/// What WAL replay has built so far.
struct Replay {
    mem: Arc<Memtable>,
    last_seq: u64,
    edit: VersionEdit,
    /// PointInTime recovery met damage: discard everything after it.
    stopped: bool,
    ukey: Vec<u8>,
}

impl DbInner {
    /// Registers the namespaces the manifest records.
    fn load_recorded_namespaces(self: &Arc<Self>) -> Result<()> {
        let Some(versions) = &self.versions else {
            return Ok(());
        };
        let (records, dropped) = {
            let v = versions.lock();
            (v.namespace_records(), v.dropped_namespaces().to_vec())
        };
        self.load_namespaces(records, &dropped)
    }

    /// Read-only: replays the WALs into one memtable and publishes it.
    fn replay_read_only(&self, wals: &[u64]) -> Result<()> {
        let last_seq = self
            .versions
            .as_ref()
            .map_or(0, |v| v.lock().last_sequence());
        let mut replay = Replay {
            mem: Arc::new(Memtable::new(0)),
            last_seq,
            edit: VersionEdit::default(),
            stopped: false,
            ukey: Vec::new(),
        };
        for (i, &n) in wals.iter().enumerate() {
            if replay.stopped {
                break;
            }
            // A writer may be appending to the newest WAL while it is read,
            // and the read is not atomic: a stretch not yet written (zeros,
            // or half a record) can sit before bytes written since. Its
            // first damage is where this handle's view ends.
            let mode = if i + 1 == wals.len() {
                WalRecovery::PointInTime
            } else {
                self.opts.wal_recovery
            };
            self.replay_wal(n, &mut replay, mode)?;
        }
        self.visible_seq.store(replay.last_seq, Ordering::Release);
        self.update_super_version(|sv| SuperVersion {
            mem: Arc::clone(&replay.mem),
            imm: Vec::new(),
            version: Arc::clone(&sv.version),
        });
        Ok(())
    }

    /// Read-only: true if the database's manifest is no longer the one
    /// this handle was opened from (a writer flushed, compacted or
    /// changed a namespace since), or cannot be read.
    pub(crate) fn source_changed(&self) -> bool {
        match self.read_only_source {
            Some(source) => manifest_fingerprint(self.fs.as_ref(), &self.dir).ok() != Some(source),
            None => false,
        }
    }

    /// Replays the WALs into tables, writes a fresh manifest that records
    /// them, and starts a new WAL.
    fn recover(&self, wals: &[u64]) -> Result<()> {
        let versions = self
            .versions
            .as_ref()
            .ok_or_else(|| Error::invalid("recovery needs a version set"))?;
        let mut replay = Replay {
            mem: Arc::new(Memtable::new(0)),
            last_seq: versions.lock().last_sequence(),
            edit: VersionEdit::default(),
            stopped: false,
            ukey: Vec::new(),
        };
        for &n in wals {
            if replay.stopped {
                log::warn!("point-in-time recovery: discarding WAL {}", wal_name(n));
                continue;
            }
            self.replay_wal(n, &mut replay, self.opts.wal_recovery)?;
        }
        self.flush_replayed(&mut replay)?;

        let wal_number = versions.lock().new_file_number();
        replay.edit.log_number = Some(wal_number);
        replay.edit.last_sequence = Some(replay.last_seq);
        let version = versions.lock().log_and_apply(replay.edit)?;

        let path = self.dir.join(wal_name(wal_number));
        let file = self.fs.create(&path)?;
        self.reserve_wal(file.as_ref())?;
        let wal = LogWriter::new(Arc::clone(&file), wal_number, LOG_KIND_WAL)?;
        self.fs.sync_dir(&self.dir)?;
        *self.wal_file.lock() = Some(file);
        *self.writer.lock() = WriterState::new(Some(wal), wal_number, replay.last_seq);
        self.visible_seq.store(replay.last_seq, Ordering::Release);
        self.store_super_version(SuperVersion {
            mem: Arc::new(Memtable::new(wal_number)),
            imm: Vec::new(),
            version,
        });
        Ok(())
    }

    fn replay_wal(&self, number: u64, replay: &mut Replay, mode: WalRecovery) -> Result<()> {
        let path = self.dir.join(wal_name(number));
        let data = read_file(self.fs.as_ref(), &path)?;
        let mut reader = LogReader::new(data, number, LOG_KIND_WAL);
        while let Some(item) = reader.next_item() {
            let (offset, reason, torn) = match item {
                LogItem::Record { offset, data } => match validate_batch(&data, &path, offset) {
                    Ok((seq, count)) => {
                        if count > 0 && seq > replay.last_seq + 1 {
                            self.sequence_gap(&path, offset, replay, seq)?;
                            if replay.stopped {
                                return Ok(());
                            }
                        }
                        self.apply_replayed(replay, &data, seq, count)?;
                        continue;
                    }
                    Err(Error::Corruption { offset, reason, .. }) => (offset, reason, false),
                    Err(e) => return Err(e),
                },
                LogItem::Damage {
                    offset,
                    reason,
                    torn,
                } => (offset, reason.to_owned(), torn),
                LogItem::BadHeader { reason } => (0, reason, false),
            };
            match mode {
                WalRecovery::TolerateTornTail if torn => {
                    log::warn!(
                        "{}: cutting torn tail at {offset}: {reason}",
                        path.display()
                    );
                    return Ok(());
                }
                WalRecovery::TolerateTornTail | WalRecovery::AbsoluteConsistency => {
                    return Err(Error::corruption(&path, offset, reason));
                }
                WalRecovery::PointInTime => {
                    log::warn!(
                        "{}: stopping recovery at {offset}: {reason}",
                        path.display()
                    );
                    replay.stopped = true;
                    return Ok(());
                }
                WalRecovery::SkipAnyCorrupted => {
                    log::warn!("{}: skipping damage at {offset}: {reason}", path.display());
                }
            }
        }
        Ok(())
    }

    /// Sequence numbers run on without gaps across WALs: a gap means
    /// records were lost (say, a WAL deleted after a manifest edit that
    /// recovery then dropped as a torn tail, though it was durable).
    fn sequence_gap(&self, path: &Path, offset: u64, replay: &mut Replay, seq: u64) -> Result<()> {
        let reason = format!(
            "sequence jumps from {} to {seq}: earlier records are missing",
            replay.last_seq
        );
        match self.opts.wal_recovery {
            WalRecovery::SkipAnyCorrupted => {
                log::warn!("{}: {reason}", path.display());
                Ok(())
            }
            WalRecovery::PointInTime => {
                log::warn!(
                    "{}: stopping recovery at {offset}: {reason}",
                    path.display()
                );
                replay.stopped = true;
                Ok(())
            }
            _ => Err(Error::corruption(path, offset, reason)),
        }
    }

    fn apply_replayed(&self, replay: &mut Replay, rep: &Bytes, seq: u64, count: u32) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        insert_batch(&replay.mem, rep, seq, &mut replay.ukey);
        replay.last_seq = replay.last_seq.max(seq + u64::from(count) - 1);
        if replay.mem.approximate_bytes() >= self.opts.write_buffer_size
            && self.read_only_source.is_none()
        {
            self.flush_replayed(replay)?;
        }
        Ok(())
    }

    fn flush_replayed(&self, replay: &mut Replay) -> Result<()> {
        if replay.mem.is_empty() {
            return Ok(());
        }
        let mem = std::mem::replace(&mut replay.mem, Arc::new(Memtable::new(0)));
        let (files, bytes) = self.build_l0(&mem)?;
        self.stats.flush_bytes.fetch_add(bytes, Ordering::Relaxed);
        replay.edit.added.extend(files.into_iter().map(|f| (0, f)));
        Ok(())
    }

    /// Deletes files no version references: old WALs and manifests, tables
    /// orphaned by a crash, temporary files.
    pub(crate) fn remove_obsolete_files(&self) -> Result<()> {
        let Some(versions) = &self.versions else {
            return Ok(());
        };
        let (live, log_number, manifest) = {
            let v = versions.lock();
            let live: Vec<u64> = v.current().files().map(|(_, f)| f.number()).collect();
            (live, v.log_number(), v.manifest_number())
        };
        for name in self.fs.list(&self.dir)? {
            let obsolete = match parse_file_name(&name) {
                Some(FileKind::Wal(n)) => n < log_number,
                Some(FileKind::Table(n)) => !live.contains(&n),
                Some(FileKind::Manifest(n)) => Some(n) != manifest,
                Some(FileKind::Temp) => true,
                _ => false,
            };
            if obsolete {
                log::debug!("removing obsolete file {name}");
                self.fs.remove(&self.dir.join(&name))?;
            }
        }
        Ok(())
    }
}
