//! Basic behaviour of the public API, on disk and in memory.

mod common;

use std::sync::Arc;

use strata_kv::fs::{FaultFs, FileSystem};
use strata_kv::{Db, Durability, Error, Options, WriteBatch};

fn engines() -> Vec<(&'static str, Db, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = Db::open(
        dir.path(),
        Options::default().durability(Durability::Buffered),
    )
    .expect("open");
    let mem = Db::open_in_memory(Options::default()).expect("open in memory");
    vec![("disk", disk, Some(dir)), ("memory", mem, None)]
}

#[test]
fn put_get_delete_and_overwrite() {
    for (name, db, _dir) in engines() {
        assert_eq!(db.get(b"k").expect("get"), None, "{name}");
        db.put(b"k", b"v1").expect("put");
        db.put(b"k", b"v2").expect("put");
        assert_eq!(
            db.get(b"k").expect("get").expect("present"),
            b"v2",
            "{name}"
        );
        assert!(db.exists(b"k").expect("exists"));
        db.delete(b"k").expect("delete");
        assert_eq!(db.get(b"k").expect("get"), None, "{name}");
        db.put(b"", b"empty key is allowed").expect("put empty key");
        assert_eq!(
            db.get(b"").expect("get").expect("present"),
            b"empty key is allowed"
        );
        db.put(b"empty value", b"").expect("put empty value");
        assert_eq!(db.get(b"empty value").expect("get").expect("present"), b"");
    }
}

#[test]
fn batches_apply_together_and_limits_reject_the_whole_batch() {
    for (name, db, _dir) in engines() {
        let mut b = WriteBatch::new();
        b.put(b"a", b"1");
        b.put(b"b", b"2");
        b.delete(b"a");
        assert_eq!(b.len(), 3);
        db.write(b).expect("write");
        assert_eq!(db.get(b"a").expect("get"), None, "{name}");
        assert_eq!(db.get(b"b").expect("get").expect("b"), b"2");

        let mut bad = WriteBatch::new();
        bad.put(b"c", b"3");
        bad.put(vec![7u8; 64 * 1024 + 1], b"x");
        let err = db.write(bad).expect_err("oversize key");
        assert!(
            matches!(err, Error::InvalidArgument { .. }),
            "{name}: {err}"
        );
        assert_eq!(
            db.get(b"c").expect("get"),
            None,
            "nothing of the batch is written"
        );
        db.put(vec![7u8; 64 * 1024], b"max key")
            .expect("64 KiB key is allowed");
        let err = db
            .put(b"big", vec![0u8; (1 << 30) + 1])
            .expect_err("oversize value");
        assert!(matches!(err, Error::InvalidArgument { .. }));
        assert_eq!(db.get(b"big").expect("get"), None);
    }
}

#[test]
fn iterators_are_ordered_bounded_and_double_ended() {
    for (name, db, _dir) in engines() {
        for k in ["a", "b", "ba", "bb", "c", "d"] {
            db.put(k, k.to_uppercase()).expect("put");
        }
        db.delete("c").expect("delete");
        fn keys(
            it: impl Iterator<Item = strata_kv::Result<(strata_kv::Value, strata_kv::Value)>>,
        ) -> Vec<String> {
            common::collect(it)
                .into_iter()
                .map(|(k, _)| String::from_utf8(k).expect("utf8"))
                .collect()
        }
        assert_eq!(keys(db.iter()), ["a", "b", "ba", "bb", "d"], "{name}");
        assert_eq!(keys(db.iter().rev()), ["d", "bb", "ba", "b", "a"]);
        assert_eq!(
            keys(db.range(b"b".to_vec()..b"d".to_vec())),
            ["b", "ba", "bb"]
        );
        assert_eq!(
            keys(db.range(b"b".to_vec()..=b"d".to_vec()).rev()),
            ["d", "bb", "ba", "b"]
        );
        assert_eq!(keys(db.range(b"bz".to_vec()..)), ["d"]);
        assert_eq!(keys(db.prefix(b"b")), ["b", "ba", "bb"]);
        assert_eq!(keys(db.prefix(b"b").rev()), ["bb", "ba", "b"]);
        // Both ends at once meet in the middle without repeating.
        let mut it = db.iter();
        let mut seen = Vec::new();
        loop {
            match it.next() {
                Some(kv) => seen.push(kv.expect("kv").0.to_vec()),
                None => break,
            }
            match it.next_back() {
                Some(kv) => seen.push(kv.expect("kv").0.to_vec()),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen.len(), 5, "{name}: {seen:?}");
        seen.dedup();
        assert_eq!(seen.len(), 5);
    }
}

#[test]
fn snapshots_do_not_see_later_writes() {
    for (name, db, _dir) in engines() {
        db.put(b"x", b"old").expect("put");
        db.put(b"y", b"kept").expect("put");
        let snap = db.snapshot();
        db.put(b"x", b"new").expect("put");
        db.delete(b"y").expect("delete");
        db.put(b"z", b"later").expect("put");
        assert_eq!(snap.get(b"x").expect("get").expect("x"), b"old", "{name}");
        assert_eq!(snap.get(b"y").expect("get").expect("y"), b"kept");
        assert_eq!(snap.get(b"z").expect("get"), None);
        let keys: Vec<_> = common::collect(snap.iter())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(db.get(b"x").expect("get").expect("x"), b"new");
    }
}

#[test]
fn reopen_keeps_data_and_a_second_open_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = || Options::default().durability(Durability::Buffered);
    {
        let db = Db::open(dir.path(), opts()).expect("open");
        db.put(b"persist", b"me").expect("put");
        let second = Db::open(dir.path(), opts()).expect_err("second open");
        assert!(matches!(second, Error::Locked { .. }), "{second}");
        db.close().expect("close");
        assert!(matches!(db.get(b"persist"), Err(Error::Closed)));
        assert!(matches!(db.put(b"a", b"b"), Err(Error::Closed)));
    }
    let db = Db::open(dir.path(), opts()).expect("reopen");
    assert_eq!(db.get(b"persist").expect("get").expect("value"), b"me");
}

#[test]
fn bad_input_gives_clear_errors_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"hello").expect("write");
    let err = Db::open(&file, Options::default()).expect_err("file as dir");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");

    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::write(foreign.join("photo.jpg"), b"jpeg").expect("write");
    let err = Db::open(&foreign, Options::default()).expect_err("foreign dir");
    assert!(
        err.to_string().contains("not a strata-kv database"),
        "{err}"
    );
    let names: Vec<_> = std::fs::read_dir(&foreign)
        .expect("ls")
        .map(|e| e.expect("e").file_name())
        .collect();
    assert_eq!(names.len(), 1, "nothing written: {names:?}");

    let err = Db::open(
        dir.path().join("missing"),
        Options::default().create_if_missing(false),
    )
    .expect_err("missing");
    assert!(matches!(err, Error::InvalidArgument { .. }));
    assert!(!dir.path().join("missing").exists());

    let err = Db::open(dir.path().join("new"), Options::default().block_size(0))
        .expect_err("bad options");
    assert!(err.to_string().contains("block_size"), "{err}");
    assert!(
        !dir.path().join("new").exists(),
        "bad options write nothing"
    );
}

#[test]
fn runs_on_an_in_memory_file_system() {
    let fs = FaultFs::new();
    let opts = Options::default().file_system(Arc::new(fs.clone()));
    let db = Db::open("/db", opts.clone()).expect("open");
    db.put(b"k", b"v").expect("put");
    db.close().expect("close");
    let names = fs.list(std::path::Path::new("/db")).expect("ls");
    assert!(names.iter().any(|n| n.ends_with(".wal")), "{names:?}");
    let db = Db::open("/db", opts).expect("reopen");
    assert_eq!(db.get(b"k").expect("get").expect("v"), b"v");
}

#[test]
fn inspect_describes_every_table() {
    let fs = FaultFs::new();
    let db = Db::open(
        "/db",
        Options::default()
            .durability(Durability::Buffered)
            .file_system(Arc::new(fs)),
    )
    .expect("open");
    for i in 0..1000u32 {
        db.put(format!("key{i:04}"), b"value value value value")
            .expect("put");
    }
    db.flush().expect("flush");
    db.compact().expect("compact");
    db.put(b"zzz", b"new").expect("put");
    db.flush().expect("flush");
    let i = db.inspect().expect("inspect");
    assert!(i.tables.len() >= 2);
    let entries: u64 = i.tables.iter().map(|t| t.entries).sum();
    assert_eq!(entries, 1001);
    let l0 = i.tables.iter().find(|t| t.level == 0).expect("an L0 table");
    assert_eq!(l0.smallest.1, b"zzz");
    let deep = i
        .tables
        .iter()
        .find(|t| t.level > 0)
        .expect("a deeper table");
    assert_eq!(
        (deep.smallest.0, deep.smallest.1.to_vec()),
        (0, b"key0000".to_vec())
    );
    assert!(
        deep.compression_ratio > 1.5,
        "repetitive values compress: {}",
        deep.compression_ratio
    );
    assert!(deep.largest_seq >= deep.smallest_seq && deep.smallest_seq >= 1);
}
