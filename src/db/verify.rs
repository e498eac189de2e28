//! `verify`: read every live file end to end and check every checksum.

use std::sync::Arc;

use super::{Db, DbInner, Progress};
use crate::batch::validate_batch;
use crate::error::{Error, Result};
use crate::format::{
    FileKind, LOG_KIND_MANIFEST, LOG_KIND_WAL, manifest_name, parse_file_name, wal_name,
};
use crate::fs::read_file;
use crate::version::VersionEdit;
use crate::wal::{LogItem, LogReader};

/// What [`Db::verify`] checked and what it found damaged.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Live table files read end to end.
    pub tables: usize,
    /// Data blocks whose checksums were checked.
    pub blocks: u64,
    /// Table entries decoded.
    pub entries: u64,
    /// WAL files read.
    pub wals: usize,
    /// WAL records whose checksums and contents were checked.
    pub wal_records: u64,
    /// Manifest records checked.
    pub manifest_records: u64,
    /// Every problem found, each an `Error::Corruption` naming the file and offset.
    pub problems: Vec<Error>,
}

impl VerifyReport {
    /// True if nothing damaged was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl DbInner {
    fn verify_log(&self, number: u64, kind: u8, report: &mut VerifyReport) -> Result<()> {
        let name = if kind == LOG_KIND_WAL {
            wal_name(number)
        } else {
            manifest_name(number)
        };
        let path = self.dir.join(&name);
        let data = read_file(self.fs.as_ref(), &path)?;
        let mut reader = LogReader::new(data, number, kind);
        while let Some(item) = reader.next_item() {
            match item {
                LogItem::Record { offset, data } => {
                    let checked = if kind == LOG_KIND_WAL {
                        validate_batch(&data, &path, offset).map(|_| ())
                    } else {
                        VersionEdit::decode(&data, &path, offset).map(|_| ())
                    };
                    match checked {
                        Ok(()) if kind == LOG_KIND_WAL => report.wal_records += 1,
                        Ok(()) => report.manifest_records += 1,
                        Err(e) => report.problems.push(e),
                    }
                }
                // The live WAL's end is still being written: a torn tail there is no damage.
                LogItem::Damage { torn: true, .. } if kind == LOG_KIND_WAL => {}
                LogItem::Damage { offset, reason, .. } => {
                    report
                        .problems
                        .push(Error::corruption(&path, offset, reason));
                }
                LogItem::BadHeader { reason } => {
                    report.problems.push(Error::corruption(&path, 0, reason))
                }
            }
        }
        Ok(())
    }

    pub(crate) fn verify(self: &Arc<Self>, progress: Progress<'_>) -> Result<VerifyReport> {
        self.check_open()?;
        let mut report = VerifyReport::default();
        let Some(versions) = &self.versions else {
            return Ok(report); // memory mode: no files
        };
        let (version, manifest, log_number) = {
            let v = versions.lock();
            (v.current(), v.manifest_number(), v.log_number())
        };
        let total: u64 = version.files().map(|(_, f)| f.info.size).sum();
        let mut done = 0;
        for (_, file) in version.files() {
            report.tables += 1;
            match file.table().and_then(|t| t.verify()) {
                Ok((blocks, entries)) => {
                    report.blocks += blocks;
                    report.entries += entries;
                }
                Err(e) => report.problems.push(e),
            }
            done += file.info.size;
            progress(done, total);
        }
        if let Some(m) = manifest {
            self.verify_log(m, LOG_KIND_MANIFEST, &mut report)?;
        }
        for name in self.fs.list(&self.dir)? {
            if let Some(FileKind::Wal(n)) = parse_file_name(&name)
                && n >= log_number
            {
                report.wals += 1;
                self.verify_log(n, LOG_KIND_WAL, &mut report)?;
            }
        }
        Ok(report)
    }
}

impl Db {
    /// Reads every live table, the manifest and the WALs, checking every
    /// checksum and decoding every entry. Damage is reported, not returned
    /// as an error; `Err` means the check itself could not run.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.inner.verify(&mut |_, _| {})
    }

    /// [`verify`](Self::verify), calling `progress(table bytes checked, total)`.
    pub fn verify_with_progress(&self, progress: Progress<'_>) -> Result<VerifyReport> {
        self.inner.verify(progress)
    }
}
