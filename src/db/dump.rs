//! Export and import: a portable, checksummed dump of one snapshot of the
//! whole database, every namespace included. The format is in
//! docs/format.md ("Export dump"); constants are in `format.rs`.
//!
//! Import checks the whole dump (every checksum, the counts in the end
//! record, that nothing follows it) before it writes anything.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Db, DbInner};
use crate::batch::{DEFAULT_NS, WriteBatch};
use crate::coding::{Decoder, put_u32, put_u64, put_varint};
use crate::error::{Error, Result};
use crate::format::{
    DUMP_FORMAT_VERSION, DUMP_HEADER_SIZE, DUMP_MAGIC, DUMP_RECORD_END, DUMP_RECORD_ENTRY,
    DUMP_RECORD_HEADER_SIZE, DUMP_RECORD_NAMESPACE, MAX_KEY_SIZE, MAX_VALUE_SIZE,
};
use crate::namespace::NamespaceOptions;

/// What [`Db::export`] wrote.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ExportReport {
    /// The snapshot's sequence number.
    pub sequence: u64,
    /// Named namespaces in the dump (the default namespace is not counted).
    pub namespaces: usize,
    /// Live keys written, all namespaces.
    pub entries: u64,
    /// Size of the dump file.
    pub bytes: u64,
}

/// What [`Db::import`] applied.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ImportReport {
    /// Named namespaces created or updated.
    pub namespaces: usize,
    /// Keys written.
    pub entries: u64,
    /// Keys skipped because their TTL ran out since the export.
    pub expired: u64,
    /// Size of the dump file.
    pub bytes: u64,
}

/// A callback told `(done, total)` as long work proceeds. `total` is an
/// estimate for export (entries) and exact for import and verify (bytes).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// A namespace as the dump records it.
struct DumpNamespace {
    id: u32,
    name: String,
    max_keys: u64,
    default_ttl_ms: u64,
}

/// Ops per import batch; batches are also cut at `IMPORT_BATCH_BYTES`.
const IMPORT_BATCH_OPS: usize = 1024;
const IMPORT_BATCH_BYTES: usize = 4 << 20;

/// Writes records, keeping the running checksum the end record carries.
struct DumpWriter {
    out: BufWriter<File>,
    path: PathBuf,
    running: crc32fast::Hasher,
    bytes: u64,
    record: Vec<u8>,
}

impl DumpWriter {
    fn record(&mut self, kind: u8, body: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        let mut rec = std::mem::take(&mut self.record);
        rec.clear();
        rec.extend_from_slice(&[0; DUMP_RECORD_HEADER_SIZE]);
        rec.push(kind);
        body(&mut rec);
        let payload_len = rec.len() - DUMP_RECORD_HEADER_SIZE;
        let len =
            u32::try_from(payload_len).map_err(|_| Error::invalid("dump record over 4 GiB"))?;
        let crc = crc32fast::hash(&rec[DUMP_RECORD_HEADER_SIZE..]);
        rec[..4].copy_from_slice(&len.to_le_bytes());
        rec[4..8].copy_from_slice(&crc.to_le_bytes());
        self.running.update(&rec);
        self.out
            .write_all(&rec)
            .map_err(|e| Error::io_at(e, &self.path))?;
        self.bytes += rec.len() as u64;
        self.record = rec;
        Ok(())
    }
}

/// Reads and checks records one by one.
struct DumpReader {
    input: BufReader<File>,
    path: PathBuf,
    offset: u64,
    running: crc32fast::Hasher,
    buf: Vec<u8>,
}

/// One record, checked.
enum Record {
    Namespace(DumpNamespace),
    Entry {
        ns: u32,
        expiry: Option<u64>,
        key_len: usize,
    },
    End {
        namespaces: u64,
        entries: u64,
    },
}

impl DumpReader {
    fn open(path: &Path) -> Result<(DumpReader, u64)> {
        let file = File::open(path).map_err(|e| Error::io_at(e, path))?;
        let len = file.metadata().map_err(|e| Error::io_at(e, path))?.len();
        let mut r = DumpReader {
            input: BufReader::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            offset: 0,
            running: crc32fast::Hasher::new(),
            buf: Vec::new(),
        };
        let mut header = [0u8; DUMP_HEADER_SIZE];
        if !r.read_exact(&mut header)? {
            return Err(r.bad(0, "too short for a dump header"));
        }
        let body = &header[..DUMP_HEADER_SIZE - 4];
        let mut h = Decoder::new(&header);
        let magic = h.u64();
        let version = h.u32();
        let _flags = h.u32();
        let _sequence = h.u64();
        let _created = h.u64();
        let crc = h.u32();
        if magic != Some(DUMP_MAGIC) {
            return Err(r.bad(0, "not a strata-kv dump (bad magic)"));
        }
        if crc != Some(crc32fast::hash(body)) {
            return Err(r.bad(0, "dump header checksum mismatch"));
        }
        if version != Some(DUMP_FORMAT_VERSION) {
            return Err(r.bad(8, format!("unsupported dump format version {version:?}")));
        }
        Ok((r, len))
    }

    fn bad(&self, offset: u64, reason: impl Into<String>) -> Error {
        Error::corruption(&self.path, offset, reason)
    }

    /// Fills `buf`; false at a clean end of file before any byte.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            match self.input.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(self.bad(self.offset + got as u64, "dump ends mid-record")),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io_at(e, &self.path)),
            }
        }
        self.offset += got as u64;
        Ok(true)
    }

    /// The next record (its payload stays in `buf`); `None` at end of file.
    fn next(&mut self) -> Result<Option<Record>> {
        let at = self.offset;
        let mut head = [0u8; DUMP_RECORD_HEADER_SIZE];
        if !self.read_exact(&mut head)? {
            return Ok(None);
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let limit = 1 + 4 + 8 + 10 + MAX_KEY_SIZE + MAX_VALUE_SIZE;
        if len == 0 || len > limit {
            return Err(self.bad(at, format!("bad dump record length {len}")));
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(len, 0);
        let complete = self.read_exact(&mut buf)?;
        if !complete || crc32fast::hash(&buf) != crc {
            self.buf = buf;
            return Err(self.bad(at, "dump record checksum mismatch"));
        }
        // The end record's running checksum covers the records before it.
        let running_before = self.running.clone().finalize();
        self.running.update(&head);
        self.running.update(&buf);
        let parsed = parse_record(&buf, running_before);
        self.buf = buf;
        parsed
            .ok_or_else(|| self.bad(at, "malformed dump record"))
            .map(Some)
    }
}

/// An entry record's fixed part: kind, namespace id, expiry (then a varint
/// key length, the key and the value).
const ENTRY_FIXED: usize = 1 + 4 + 8;

fn parse_record(buf: &[u8], running_before: u32) -> Option<Record> {
    let mut r = Decoder::new(buf);
    match r.u8()? {
        DUMP_RECORD_NAMESPACE => {
            let id = r.u32()?;
            let max_keys = r.u64()?;
            let default_ttl_ms = r.u64()?;
            let name = std::str::from_utf8(r.bytes(r.remaining())?).ok()?;
            (id != DEFAULT_NS).then(|| {
                Record::Namespace(DumpNamespace {
                    id,
                    name: name.to_owned(),
                    max_keys,
                    default_ttl_ms,
                })
            })
        }
        DUMP_RECORD_ENTRY => {
            let ns = r.u32()?;
            let expiry = r.u64()?;
            let key_len = r.length()?;
            (key_len <= MAX_KEY_SIZE && r.remaining() >= key_len).then_some(Record::Entry {
                ns,
                expiry: (expiry != 0).then_some(expiry),
                key_len,
            })
        }
        DUMP_RECORD_END => {
            let namespaces = r.u64()?;
            let entries = r.u64()?;
            let running = r.u32()?;
            (r.is_empty() && running == running_before).then_some(Record::End {
                namespaces,
                entries,
            })
        }
        _ => None,
    }
}

impl DbInner {
    pub(crate) fn export(
        self: &Arc<Self>,
        path: &Path,
        progress: Progress<'_>,
    ) -> Result<ExportReport> {
        self.check_open()?;
        let snapshot = Db::snapshot_of(self);
        let seq = snapshot.sequence();
        let namespaces = {
            let mut v: Vec<(u32, String, NamespaceOptions)> = self
                .namespaces
                .names()
                .into_iter()
                .filter_map(|n| self.namespaces.get(&n))
                .map(|m| (m.id, m.name.clone(), m.options()))
                .collect();
            v.sort_by_key(|(id, _, _)| *id);
            v
        };
        // Every version in the tables and memtables: an upper bound.
        let estimate = {
            let sv = self.super_version.load();
            let tables: u64 = sv.version.files().map(|(_, f)| f.info.entries).sum();
            let mems = std::iter::once(&sv.mem)
                .chain(&sv.imm)
                .map(|m| m.entries() as u64);
            tables + mems.sum::<u64>()
        };

        let temp = temp_path(path);
        let file = File::create(&temp).map_err(|e| Error::io_at(e, &temp))?;
        let mut w = DumpWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            path: temp.clone(),
            running: crc32fast::Hasher::new(),
            bytes: 0,
            record: Vec::new(),
        };
        let result = (|| {
            let mut header = Vec::with_capacity(DUMP_HEADER_SIZE);
            put_u64(&mut header, DUMP_MAGIC);
            put_u32(&mut header, DUMP_FORMAT_VERSION);
            put_u32(&mut header, 0);
            put_u64(&mut header, seq);
            put_u64(&mut header, self.now_ms());
            let crc = crc32fast::hash(&header);
            put_u32(&mut header, crc);
            w.out
                .write_all(&header)
                .map_err(|e| Error::io_at(e, &temp))?;
            w.bytes += header.len() as u64;

            for (id, name, o) in &namespaces {
                w.record(DUMP_RECORD_NAMESPACE, |b| {
                    put_u32(b, *id);
                    put_u64(b, o.max_keys.unwrap_or(0));
                    put_u64(
                        b,
                        o.default_ttl
                            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    );
                    b.extend_from_slice(name.as_bytes());
                })?;
            }
            let mut entries = 0u64;
            let ids = std::iter::once(DEFAULT_NS).chain(namespaces.iter().map(|(id, _, _)| *id));
            for ns in ids {
                let mut it = self.iter_range::<&[u8], _>(ns, .., Some(seq));
                while let Some(item) = it.next() {
                    let (k, v) = item?;
                    let expiry = it.last_expiry().unwrap_or(0);
                    w.record(DUMP_RECORD_ENTRY, |b| {
                        put_u32(b, ns);
                        put_u64(b, expiry);
                        put_varint(b, k.len() as u64);
                        b.extend_from_slice(&k);
                        b.extend_from_slice(&v);
                    })?;
                    entries += 1;
                    if entries.is_multiple_of(4096) {
                        progress(entries, estimate.max(entries));
                    }
                }
            }
            let running = w.running.clone().finalize();
            w.record(DUMP_RECORD_END, |b| {
                put_u64(b, namespaces.len() as u64);
                put_u64(b, entries);
                put_u32(b, running);
            })?;
            progress(entries, entries);
            let file = w
                .out
                .into_inner()
                .map_err(|e| Error::io_at(e.into_error(), &temp))?;
            file.sync_all().map_err(|e| Error::io_at(e, &temp))?;
            std::fs::rename(&temp, path).map_err(|e| Error::io_at(e, path))?;
            sync_parent(path)?;
            Ok(ExportReport {
                sequence: seq,
                namespaces: namespaces.len(),
                entries,
                bytes: w.bytes,
            })
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    /// Reads the whole dump, checking it; returns its namespaces and counts.
    fn check_dump(path: &Path, progress: Progress<'_>) -> Result<(Vec<DumpNamespace>, u64, u64)> {
        let (mut r, len) = DumpReader::open(path)?;
        let mut namespaces: Vec<DumpNamespace> = Vec::new();
        let mut entries = 0u64;
        loop {
            let at = r.offset;
            match r.next()? {
                None => return Err(r.bad(at, "dump ends without its end record")),
                Some(Record::Namespace(ns)) => {
                    if namespaces
                        .iter()
                        .any(|n| n.id == ns.id || n.name == ns.name)
                    {
                        return Err(r.bad(at, format!("namespace {:?} listed twice", ns.name)));
                    }
                    namespaces.push(ns);
                }
                Some(Record::Entry { ns, .. }) => {
                    if ns != DEFAULT_NS && !namespaces.iter().any(|n| n.id == ns) {
                        return Err(r.bad(at, format!("entry in undeclared namespace {ns}")));
                    }
                    entries += 1;
                    if entries.is_multiple_of(4096) {
                        progress(r.offset, len);
                    }
                }
                Some(Record::End {
                    namespaces: n,
                    entries: e,
                }) => {
                    if n != namespaces.len() as u64 || e != entries {
                        return Err(r.bad(
                            at,
                            format!(
                                "end record counts {n} namespaces and {e} entries, dump holds {} and {entries}",
                                namespaces.len()
                            ),
                        ));
                    }
                    let mut rest = [0u8; 1];
                    if r.read_exact(&mut rest)? {
                        return Err(r.bad(r.offset - 1, "bytes after the end record"));
                    }
                    return Ok((namespaces, entries, len));
                }
            }
        }
    }

    pub(crate) fn import(
        self: &Arc<Self>,
        path: &Path,
        progress: Progress<'_>,
    ) -> Result<ImportReport> {
        self.check_open()?;
        // Pass 1 reports the first half of the progress, pass 2 the second.
        let (namespaces, _, len) = Self::check_dump(path, &mut |d, t| progress(d / 2, t))?;

        let mut ids = vec![(DEFAULT_NS, DEFAULT_NS)];
        for ns in &namespaces {
            let mut o = NamespaceOptions::default();
            if ns.max_keys != 0 {
                o = o.max_keys(ns.max_keys);
            }
            if ns.default_ttl_ms != 0 {
                o = o.default_ttl(std::time::Duration::from_millis(ns.default_ttl_ms));
            }
            let meta = self.open_namespace(&ns.name, Some(o))?;
            ids.push((ns.id, meta.id));
        }

        let (mut r, _) = DumpReader::open(path)?;
        let mut report = ImportReport {
            namespaces: namespaces.len(),
            bytes: len,
            ..ImportReport::default()
        };
        let mut batch = WriteBatch::new();
        let now = self.now_ms();
        while let Some(rec) = r.next()? {
            let Record::Entry {
                ns,
                expiry,
                key_len,
            } = rec
            else {
                continue;
            };
            if expiry.is_some_and(|e| e <= now) {
                report.expired += 1;
                continue;
            }
            let target = ids
                .iter()
                .find(|(from, _)| *from == ns)
                .map_or(DEFAULT_NS, |(_, to)| *to);
            let (k, v) = r.entry_after_len(key_len);
            batch.put_op(target, k, v, expiry);
            report.entries += 1;
            if batch.len() >= IMPORT_BATCH_OPS || batch.size_in_bytes() >= IMPORT_BATCH_BYTES {
                self.write(std::mem::take(&mut batch), self.opts.durability)?;
                progress(len / 2 + r.offset / 2, len);
            }
        }
        self.write(batch, self.opts.durability)?;
        progress(len, len);
        Ok(report)
    }
}

impl DumpReader {
    /// Key and value of the entry just read, whose key length is `key_len`.
    fn entry_after_len(&self, key_len: usize) -> (&[u8], &[u8]) {
        // kind, ns, expiry, then the varint length itself.
        let mut r = Decoder::new(&self.buf[ENTRY_FIXED..]);
        let _ = r.length();
        let start = ENTRY_FIXED + r.position();
        let body = &self.buf[start..];
        body.split_at(key_len.min(body.len()))
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes a rename in `path`'s directory durable (a no-op where directories
/// cannot be opened).
fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        dir.sync_all().map_err(|e| Error::io_at(e, parent))?;
    }
    Ok(())
}

impl Db {
    /// Writes every live key of every namespace, as of one snapshot, to a
    /// portable dump at `path` (written to `path.tmp`, synced, then renamed).
    /// TTLs travel as absolute expiry times.
    pub fn export(&self, path: impl AsRef<Path>) -> Result<ExportReport> {
        self.inner.export(path.as_ref(), &mut |_, _| {})
    }

    /// [`export`](Self::export), calling `progress(entries done, estimated total)`.
    pub fn export_with_progress(
        &self,
        path: impl AsRef<Path>,
        progress: Progress<'_>,
    ) -> Result<ExportReport> {
        self.inner.export(path.as_ref(), progress)
    }

    /// Applies a dump made by [`export`](Self::export): creates its
    /// namespaces (setting their options) and writes its keys, overwriting
    /// keys that exist. The whole dump is checked first; a damaged dump
    /// gives `Error::Corruption` and changes nothing. Keys are written in
    /// batches, so a crash during the import can leave part of it applied.
    /// Keys whose TTL ran out since the export are skipped and counted.
    pub fn import(&self, path: impl AsRef<Path>) -> Result<ImportReport> {
        self.inner.import(path.as_ref(), &mut |_, _| {})
    }

    /// [`import`](Self::import), calling `progress(bytes done, total bytes)`.
    pub fn import_with_progress(
        &self,
        path: impl AsRef<Path>,
        progress: Progress<'_>,
    ) -> Result<ImportReport> {
        self.inner.import(path.as_ref(), progress)
    }
}
