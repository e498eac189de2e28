//! Damaged tables and manifests: reads and opens return
//! `Error::Corruption` naming the file, never a panic and never wrong data.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_kv::fs::{FaultFs, FileSystem};
use strata_kv::{Compression, Db, Durability, Error, Options};

fn opts(fs: &FaultFs, compression: Compression) -> Options {
    Options::default()
        .durability(Durability::Buffered)
        .file_system(Arc::new(fs.clone()))
        .compression(compression)
        .block_size(1024)
}

fn value(i: u32) -> Vec<u8> {
    format!("value {i} ").repeat(8).into_bytes()
}

/// One table with 500 keys, nothing in the WAL.
fn one_table(compression: Compression) -> (FaultFs, PathBuf) {
    let fs = FaultFs::new();
    let db = Db::open("/db", opts(&fs, compression)).expect("open");
    for i in 0..500u32 {
        db.put(format!("key{i:04}"), value(i)).expect("put");
    }
    db.flush().expect("flush");
    db.close().expect("close");
    let name = fs
        .list(Path::new("/db"))
        .expect("ls")
        .into_iter()
        .find(|n| n.ends_with(".sst"))
        .expect("a table");
    (fs, Path::new("/db").join(name))
}

/// Reads everything both ways; every answer is right or an error naming the table.
fn read_all(db: &Db, table: &Path) -> usize {
    let mut errors = 0;
    let mut check = |r: strata_kv::Result<()>| match r {
        Ok(()) => {}
        Err(Error::Corruption { file, .. }) => {
            assert_eq!(file, table);
            errors += 1;
        }
        Err(e) => panic!("unexpected error {e}"),
    };
    for i in 0..500u32 {
        check(db.get(format!("key{i:04}")).map(|v| {
            if let Some(v) = v {
                assert_eq!(v, value(i), "wrong data for key{i:04}");
            }
        }));
    }
    for rev in [false, true] {
        let it: Box<dyn Iterator<Item = _>> = if rev {
            Box::new(db.iter().rev())
        } else {
            Box::new(db.iter())
        };
        for item in it {
            check(item.map(|(k, v)| {
                let i: u32 = std::str::from_utf8(&k[3..])
                    .expect("utf8")
                    .parse()
                    .expect("index");
                assert_eq!(v, value(i), "wrong data in scan");
            }));
        }
    }
    errors
}

#[test]
fn a_flipped_byte_anywhere_in_a_table_is_corruption_or_harmless() {
    for compression in [Compression::None, Compression::Lz4] {
        let (fs, table) = one_table(compression);
        let len = fs.mem().file_len(&table).expect("len");
        let mut damaged_reads = 0;
        // About 250 bytes spread over the file, plus the footer and what precedes it.
        let offsets: Vec<usize> = (0..len)
            .step_by(len / 250 + 1)
            .chain(len.saturating_sub(120)..len)
            .collect();
        for &at in &offsets {
            fs.mem().corrupt_byte(&table, at).expect("flip");
            match Db::open("/db", opts(&fs, compression)) {
                Ok(db) => damaged_reads += usize::from(read_all(&db, &table) > 0),
                Err(e) => assert!(e.is_corruption(), "open failed with {e}"),
            }
            fs.mem().corrupt_byte(&table, at).expect("flip back");
        }
        assert!(
            damaged_reads > offsets.len() / 2,
            "{compression:?}: damage mostly went unnoticed"
        );
    }
}

#[test]
fn named_regions_report_corruption_with_file_and_offset() {
    let (fs, table) = one_table(Compression::None);
    let len = fs.mem().file_len(&table).expect("len");
    // The footer's magic, its checksum, and the first data block.
    for at in [len - 1, len - 10, 20] {
        fs.mem().corrupt_byte(&table, at).expect("flip");
        let result = Db::open("/db", opts(&fs, Compression::None)).and_then(|db| {
            let errors: Vec<_> = db.iter().filter_map(|r| r.err()).collect();
            db.get(b"key0000").map(|_| errors)
        });
        match result {
            Err(Error::Corruption { file, offset, .. }) => {
                assert_eq!(file, table);
                assert!(offset <= len as u64);
            }
            Ok(errors) => {
                let e = errors
                    .first()
                    .unwrap_or_else(|| panic!("byte {at}: damage unnoticed"));
                assert!(
                    matches!(e, Error::Corruption { file, .. } if *file == table),
                    "{e}"
                );
            }
            Err(e) => panic!("byte {at}: {e}"),
        }
        fs.mem().corrupt_byte(&table, at).expect("flip back");
    }
}

#[test]
fn a_damaged_manifest_record_fails_the_open() {
    let (fs, _) = one_table(Compression::None);
    let manifest = fs
        .list(Path::new("/db"))
        .expect("ls")
        .into_iter()
        .find(|n| n.starts_with("MANIFEST-"))
        .expect("manifest");
    let path = Path::new("/db").join(manifest);
    // Inside the snapshot edit (after the 28-byte header record).
    fs.mem().corrupt_byte(&path, 40).expect("flip");
    let err = Db::open("/db", opts(&fs, Compression::None)).expect_err("damaged manifest");
    match err {
        Error::Corruption { file, .. } => assert_eq!(file, path),
        e => panic!("expected corruption, got {e}"),
    }
}

#[test]
fn a_damaged_current_file_fails_the_open() {
    let (fs, _) = one_table(Compression::None);
    let current = Path::new("/db/CURRENT");
    for at in 0..fs.mem().file_len(current).expect("len") {
        fs.mem().corrupt_byte(current, at).expect("flip");
        let err = Db::open("/db", opts(&fs, Compression::None)).expect_err("damaged CURRENT");
        assert!(err.is_corruption(), "byte {at}: {err}");
        fs.mem().corrupt_byte(current, at).expect("flip back");
    }
    assert_eq!(
        common::contents(&Db::open("/db", opts(&fs, Compression::None)).expect("open")).len(),
        500
    );
}
