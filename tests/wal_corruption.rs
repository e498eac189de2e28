//! Damaged WAL files: damage before the tail fails the open (by default),
//! a torn last record loses only that record, and the tolerant recovery
//! modes do what they say.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_kv::fs::{FaultFs, FileSystem};
use strata_kv::{Db, Durability, Error, Options, WalRecovery};

fn opts(fs: &FaultFs) -> Options {
    Options::default()
        .durability(Durability::Sync)
        .file_system(Arc::new(fs.clone()))
}

/// A database whose WAL holds ten one-key records, closed without a flush.
fn ten_records() -> (FaultFs, PathBuf) {
    let fs = FaultFs::new();
    let db = Db::open("/db", opts(&fs)).expect("open");
    for i in 0..10 {
        db.put(format!("k{i}"), format!("value-{i}")).expect("put");
    }
    db.close().expect("close");
    let wal = fs
        .list(Path::new("/db"))
        .expect("ls")
        .into_iter()
        .find(|n| n.ends_with(".wal"))
        .expect("a WAL");
    (fs, Path::new("/db").join(wal))
}

fn present(db: &Db) -> Vec<usize> {
    (0..10)
        .filter(|i| db.get(format!("k{i}")).expect("get").is_some())
        .collect()
}

/// The header record is 7 + 21 bytes; each data record is 7 bytes of
/// fragment header and a batch of 12 + 1 + 1 + 1 + 2 + 1 + 7 bytes.
const FIRST_RECORD: usize = 28;
const RECORD_LEN: usize = 7 + 25;

#[test]
fn any_flipped_byte_in_an_older_record_fails_the_open_naming_file_and_offset() {
    for byte in 0..RECORD_LEN {
        let (fs, wal) = ten_records();
        let at = FIRST_RECORD + 2 * RECORD_LEN + byte; // inside the third record
        fs.mem().corrupt_byte(&wal, at).expect("flip");
        match Db::open("/db", opts(&fs)) {
            Err(Error::Corruption {
                file,
                offset,
                reason,
            }) => {
                assert_eq!(file, wal, "byte {byte}");
                assert_eq!(
                    offset as usize,
                    FIRST_RECORD + 2 * RECORD_LEN,
                    "byte {byte}: {reason}"
                );
            }
            other => panic!("byte {byte}: expected corruption, got {other:?}"),
        }
    }
}

#[test]
fn a_truncated_last_record_loses_only_that_record() {
    for cut in 1..RECORD_LEN {
        let (fs, wal) = ten_records();
        let len = fs.mem().file_len(&wal).expect("len");
        fs.mem().truncate(&wal, len - cut).expect("truncate");
        let db = Db::open("/db", opts(&fs)).expect("open with torn tail");
        assert_eq!(present(&db), (0..9).collect::<Vec<_>>(), "cut {cut}");
        db.put(b"after", b"recovery").expect("writes continue");
        db.close().expect("close");
        let db = Db::open("/db", opts(&fs)).expect("second open");
        assert_eq!(present(&db).len(), 9);
        assert!(db.get(b"after").expect("get").is_some());
    }
}

#[test]
fn tolerant_modes_skip_or_stop_at_damage_and_strict_mode_refuses_a_torn_tail() {
    let third = FIRST_RECORD + 2 * RECORD_LEN + 10;

    let (fs, wal) = ten_records();
    fs.mem().corrupt_byte(&wal, third).expect("flip");
    let db = Db::open("/db", opts(&fs).wal_recovery(WalRecovery::PointInTime)).expect("open");
    assert_eq!(
        present(&db),
        vec![0, 1],
        "point in time keeps what precedes the damage"
    );
    drop(db);

    let (fs, wal) = ten_records();
    fs.mem().corrupt_byte(&wal, third).expect("flip");
    let db = Db::open("/db", opts(&fs).wal_recovery(WalRecovery::SkipAnyCorrupted)).expect("open");
    assert_eq!(
        present(&db),
        vec![0, 1, 3, 4, 5, 6, 7, 8, 9],
        "skip drops only the damaged record"
    );
    drop(db);

    let (fs, wal) = ten_records();
    let len = fs.mem().file_len(&wal).expect("len");
    fs.mem().truncate(&wal, len - 3).expect("truncate");
    let err = Db::open(
        "/db",
        opts(&fs).wal_recovery(WalRecovery::AbsoluteConsistency),
    )
    .expect_err("absolute consistency refuses a torn tail");
    assert!(err.is_corruption(), "{err}");
}

#[test]
fn zero_filled_space_after_the_last_record_is_a_torn_tail() {
    let (fs, wal) = ten_records();
    let data = fs.read(&wal).expect("read");
    let rewritten = fs.create(&wal).expect("create");
    rewritten.append(&data).expect("copy");
    rewritten.append(&vec![0u8; 4096]).expect("zeros");
    rewritten.sync().expect("sync");
    let db = Db::open("/db", opts(&fs)).expect("open");
    assert_eq!(present(&db).len(), 10);
}
