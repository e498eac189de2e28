//! Log files: the write-ahead log and the manifest share one framing.
//!
//! A log is a sequence of 32 KiB blocks holding fragments
//! (`crc32 | length u16 | type | payload`); a record too large for the
//! rest of a block is split into FIRST, MIDDLE.. and LAST fragments. The
//! first record of every log names the file: magic, version, kind, number.
//! See `docs/format.md` for the byte layout and the recovery rules.

mod reader;
mod writer;

pub(crate) use reader::{LogItem, LogReader};
pub(crate) use writer::LogWriter;

/// How recovery treats a damaged write-ahead log.
///
/// A *torn tail* is damage after which nothing valid follows in that file:
/// what a crash in the middle of an append leaves behind (a partial record,
/// zero-filled space). Damage *before the tail* is anything followed by a
/// valid record: it cannot come from a crash, only from a bad disk or a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WalRecovery {
    /// The default. A torn tail is cut off (its records were never fully
    /// written); damage before the tail fails the open with `Error::Corruption`.
    #[default]
    TolerateTornTail,
    /// Any damage, even a torn tail, fails the open. For logs that were closed cleanly.
    AbsoluteConsistency,
    /// Replay stops at the first damage of any kind, and every record after
    /// it (in that log and in later logs) is discarded. The database opens in
    /// the consistent state of the last intact record: a prefix of commit order.
    PointInTime,
    /// Damaged records are skipped and every intact record is replayed. Keeps
    /// the most data, but the result may not be any state the database was in.
    SkipAnyCorrupted,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{LOG_BLOCK_SIZE, LOG_KIND_WAL};
    use crate::fs::{FileSystem, MemFs};
    use std::path::{Path, PathBuf};

    fn write_log(records: &[Vec<u8>]) -> (MemFs, PathBuf) {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new("/d")).expect("mkdir");
        let path = PathBuf::from("/d/000001.wal");
        let file = fs.create(&path).expect("create");
        let mut w = LogWriter::new(file, 1, LOG_KIND_WAL).expect("writer");
        let mut buf = Vec::new();
        for r in records {
            w.encode_record(r, &mut buf);
        }
        w.append(&buf).expect("append");
        (fs, path)
    }

    fn read_all(fs: &MemFs, path: &Path) -> Vec<LogItem> {
        let data = fs.open(path).expect("open").map().expect("map");
        let mut r = LogReader::new(data, 1, LOG_KIND_WAL);
        let mut out = Vec::new();
        while let Some(item) = r.next_item() {
            out.push(item);
        }
        out
    }

    fn records(items: &[LogItem]) -> Vec<Vec<u8>> {
        items
            .iter()
            .filter_map(|i| match i {
                LogItem::Record { data, .. } => Some(data.to_vec()),
                _ => None,
            })
            .collect()
    }

    fn sample() -> Vec<Vec<u8>> {
        vec![
            b"small".to_vec(),
            vec![7u8; LOG_BLOCK_SIZE * 3 + 11], // spans four blocks
            Vec::new(),
            vec![1u8; LOG_BLOCK_SIZE - 7 - 30], // leaves a trailer too small for a header
            b"after padding".to_vec(),
        ]
    }

    #[test]
    fn records_round_trip_across_blocks() {
        let recs = sample();
        let (fs, path) = write_log(&recs);
        let items = read_all(&fs, &path);
        assert_eq!(records(&items), recs);
        assert!(items.iter().all(|i| matches!(i, LogItem::Record { .. })));
    }

    #[test]
    fn every_truncation_is_a_torn_tail_keeping_a_prefix() {
        let recs = vec![b"one".to_vec(), vec![9u8; 40_000], b"three".to_vec()];
        let (fs, path) = write_log(&recs);
        let len = fs.file_len(&path).expect("len");
        for cut in (0..len).step_by(997).chain([len - 1, len - 5]) {
            let (fs2, p2) = write_log(&recs);
            fs2.truncate(&p2, cut).expect("truncate");
            let items = read_all(&fs2, &p2);
            let got = records(&items);
            assert!(recs.starts_with(&got), "cut {cut}: not a prefix");
            for i in &items {
                if let LogItem::Damage { torn, .. } = i {
                    assert!(*torn, "cut {cut}: truncation must read as a torn tail");
                }
            }
        }
    }

    #[test]
    fn flipped_byte_before_the_tail_is_not_torn() {
        let recs = vec![
            b"first record".to_vec(),
            b"second".to_vec(),
            b"third".to_vec(),
        ];
        let (fs, path) = write_log(&recs);
        // Inside the first data record's payload: header record is 7 + 21 bytes.
        fs.corrupt_byte(&path, 28 + 7 + 3).expect("flip");
        let items = read_all(&fs, &path);
        let damage: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                LogItem::Damage { torn, offset, .. } => Some((*torn, *offset)),
                _ => None,
            })
            .collect();
        assert_eq!(damage, vec![(false, 28)]);
        assert_eq!(
            records(&items),
            recs[1..].to_vec(),
            "reader resyncs after damage"
        );
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let recs = vec![b"a".to_vec(), b"b".to_vec()];
        let (fs, path) = write_log(&recs);
        let file = fs.create(Path::new("/d/z.wal")).expect("create");
        let data = fs.open(&path).expect("open").map().expect("map");
        file.append(&data).expect("copy");
        file.append(&[0u8; 5000]).expect("zeros");
        let items = read_all(&fs, Path::new("/d/z.wal"));
        assert_eq!(records(&items), recs);
        assert!(matches!(
            items.last(),
            Some(LogItem::Damage { torn: true, .. })
        ));
    }

    #[test]
    fn wrong_header_is_reported() {
        let (fs, path) = write_log(&[b"x".to_vec()]);
        let data = fs.open(&path).expect("open").map().expect("map");
        let mut r = LogReader::new(data, 2, LOG_KIND_WAL);
        assert!(matches!(r.next_item(), Some(LogItem::BadHeader { .. })));
    }
}
