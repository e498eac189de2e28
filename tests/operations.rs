//! Checkpoints, export and import: copies that open as the same database.

mod common;

use std::sync::Arc;
use std::time::Duration;

use strata_kv::{Db, Durability, Error, ManualClock, NamespaceOptions, Options};

fn opts() -> Options {
    Options::default()
        .durability(Durability::Buffered)
        .write_buffer_size(64 * 1024)
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Every namespace's pairs (name, pairs), default namespace first.
fn everything(db: &Db) -> Vec<(String, Pairs)> {
    let mut out = vec![(String::new(), common::contents(db))];
    for name in db.namespaces().expect("namespaces") {
        let ns = db.namespace(&name).expect("namespace");
        out.push((name, common::collect(ns.iter())));
    }
    out
}

/// A database with data in tables on several levels, in memtables, in
/// two namespaces, with tombstones and TTLs.
fn populate(db: &Db) {
    for i in 0..3000u32 {
        db.put(
            format!("key{i:05}"),
            format!("value-{i}-{}", "x".repeat(40)),
        )
        .expect("put");
    }
    db.flush().expect("flush");
    db.compact().expect("compact");
    for i in (0..3000u32).step_by(7) {
        db.delete(format!("key{i:05}")).expect("delete");
    }
    db.flush().expect("flush");
    let users = db
        .namespace_with("users", NamespaceOptions::default().max_keys(10_000))
        .expect("namespace");
    for i in 0..500u32 {
        users
            .put(format!("u{i}"), format!("user {i}"))
            .expect("put");
    }
    db.put_with_ttl(b"session", b"abc", Duration::from_secs(3600))
        .expect("ttl put");
    // Left in the memtable: overwrites, deletes and new keys.
    for i in (0..3000u32).step_by(11) {
        db.put(format!("key{i:05}"), b"overwritten").expect("put");
    }
    db.delete(b"key00001").expect("delete");
}

#[test]
fn checkpoint_opens_with_identical_contents_at_its_sequence_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path().join("db"), opts()).expect("open");
    populate(&db);
    let before = everything(&db);
    let seq = db.latest_sequence();

    let cp = dir.path().join("checkpoint");
    let info = db.checkpoint(&cp).expect("checkpoint");
    assert_eq!(info.sequence, seq);
    assert!(info.linked_tables > 0, "tables are shared: {info:?}");
    assert!(info.written_tables > 0, "memtables are written: {info:?}");

    // Writes after the checkpoint stay out of it.
    db.put(b"after", b"x").expect("put");
    db.flush().expect("flush");
    db.compact().expect("compact"); // rewrites the tables the checkpoint links

    let copy = Db::open(&cp, opts()).expect("open checkpoint");
    assert_eq!(copy.latest_sequence(), seq);
    assert_eq!(everything(&copy), before);
    assert!(copy.get(b"after").expect("get").is_none());
    assert!(copy.verify().expect("verify").is_ok());
    // The checkpoint is a database of its own: it takes writes and survives reopen.
    copy.put(b"mine", b"1").expect("put");
    drop(copy);
    let copy = Db::open(&cp, opts()).expect("reopen checkpoint");
    assert_eq!(copy.get(b"mine").expect("get").as_deref(), Some(&b"1"[..]));
    assert!(db.get(b"mine").expect("get").is_none());
}

#[test]
fn checkpoint_taken_while_writers_run_holds_a_prefix_of_each_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path().join("db"), opts()).expect("open");
    let load = common::WriterLoad::start(&db, Duration::from_millis(5));
    std::thread::sleep(Duration::from_millis(150));
    let mut checkpoints = Vec::new();
    for n in 0..3 {
        let cp = dir.path().join(format!("cp{n}"));
        let info = db.checkpoint(&cp).expect("checkpoint");
        checkpoints.push((cp, info.sequence));
        std::thread::sleep(Duration::from_millis(50));
    }
    let written = load.stop();
    for (cp, seq) in checkpoints {
        common::assert_checkpoint_is_a_prefix(&Db::open(&cp, opts()).expect("open"), seq, &written);
    }
}

#[test]
fn checkpoint_refuses_a_non_empty_target_and_works_from_memory_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open_in_memory(Options::default()).expect("open");
    db.put(b"a", b"1").expect("put");
    db.namespace("n").expect("ns").put(b"b", b"2").expect("put");
    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).expect("mkdir");
    std::fs::write(occupied.join("file"), b"x").expect("write");
    assert!(matches!(
        db.checkpoint(&occupied),
        Err(Error::InvalidArgument { .. })
    ));

    let cp = dir.path().join("cp");
    let info = db.checkpoint(&cp).expect("checkpoint");
    let copy = Db::open(&cp, opts()).expect("open");
    assert_eq!(copy.latest_sequence(), info.sequence);
    assert_eq!(everything(&copy), everything(&db));
}

#[test]
fn export_then_import_into_a_fresh_database_gives_identical_contents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let o = || opts().clock(clock.clone());
    let db = Db::open(dir.path().join("a"), o()).expect("open");
    populate(&db);
    let cache = db
        .namespace_with(
            "cache",
            NamespaceOptions::default().default_ttl(Duration::from_secs(60)),
        )
        .expect("ns");
    cache.put(b"hot", b"1").expect("put");
    db.put_with_ttl(b"soon", b"gone", Duration::from_secs(10))
        .expect("put");
    db.put(b"", b"empty key").expect("put");
    db.put(b"\xff\x00binary", vec![0u8; 70_000]).expect("put");

    let dump = dir.path().join("dump.skv");
    let exported = db.export(&dump).expect("export");
    assert_eq!(exported.namespaces, 2);
    let total: usize = everything(&db).iter().map(|(_, p)| p.len()).sum();
    assert_eq!(exported.entries, total as u64);

    let fresh = Db::open(dir.path().join("b"), o()).expect("open");
    let imported = fresh.import(&dump).expect("import");
    assert_eq!(imported.entries, exported.entries);
    assert_eq!(imported.namespaces, 2);
    assert_eq!(imported.expired, 0);
    assert_eq!(everything(&fresh), everything(&db));
    let cache2 = fresh.namespace("cache").expect("ns");
    assert_eq!(
        cache2.options(),
        cache.options(),
        "namespace options travel"
    );

    // Expiry times travel as they were: both copies lose the same keys.
    clock.advance(Duration::from_secs(30));
    assert!(db.get(b"soon").expect("get").is_none());
    assert!(fresh.get(b"soon").expect("get").is_none());
    assert!(fresh.get(b"session").expect("get").is_some());
    clock.advance(Duration::from_secs(40));
    assert!(cache2.get(b"hot").expect("get").is_none());
    assert_eq!(everything(&fresh), everything(&db));

    // Importing after some TTLs ran out skips them and says so.
    let late = Db::open(dir.path().join("c"), o()).expect("open");
    let r = late.import(&dump).expect("import");
    assert_eq!(r.expired, 2);
    assert_eq!(r.entries, exported.entries - 2);
    assert_eq!(everything(&late), everything(&db));
}

#[test]
fn a_damaged_dump_is_rejected_whole_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path().join("a"), opts()).expect("open");
    let ns = db.namespace("n").expect("ns");
    for i in 0..200u32 {
        db.put(format!("k{i}"), format!("v{i}")).expect("put");
        ns.put(format!("k{i}"), format!("v{i}")).expect("put");
    }
    let dump = dir.path().join("dump");
    db.export(&dump).expect("export");
    let good = std::fs::read(&dump).expect("read");

    let target = Db::open(dir.path().join("b"), opts()).expect("open");
    let bad = dir.path().join("bad");
    let step = (good.len() / 97).max(1);
    let mut checked = 0;
    for at in (0..good.len()).step_by(step) {
        let mut data = good.clone();
        data[at] ^= 0x20;
        std::fs::write(&bad, &data).expect("write");
        match target.import(&bad) {
            Err(Error::Corruption { file, .. }) => assert_eq!(file, bad),
            other => panic!("flip at {at}: {other:?}"),
        }
        checked += 1;
    }
    for cut in [0, 10, good.len() / 2, good.len() - 1] {
        std::fs::write(&bad, &good[..cut]).expect("write");
        assert!(
            matches!(target.import(&bad), Err(Error::Corruption { .. })),
            "truncated to {cut}"
        );
    }
    let mut longer = good.clone();
    longer.push(0);
    std::fs::write(&bad, &longer).expect("write");
    assert!(matches!(target.import(&bad), Err(Error::Corruption { .. })));
    assert!(checked > 90);
    assert!(common::contents(&target).is_empty(), "nothing applied");
    assert!(target.namespaces().expect("names").is_empty());
    // The intact dump still imports.
    target.import(&dump).expect("import");
    assert_eq!(everything(&target), everything(&db));
}
