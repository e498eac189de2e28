//! The in-memory mode frees what overwrites and deletes replace, unless a
//! snapshot or iterator can still read it.

mod common;

use strata_kv::{Db, Options};

#[test]
fn overwrites_and_deletes_do_not_grow_memory() {
    let db = Db::open_in_memory(Options::default()).expect("open");
    for i in 0..100u32 {
        db.put(format!("k{i:03}"), vec![1u8; 100]).expect("put");
    }
    let base = db.stats().memtable_bytes;
    for round in 0..1000u32 {
        for i in 0..100u32 {
            db.put(format!("k{i:03}"), round.to_le_bytes().repeat(25))
                .expect("overwrite");
        }
    }
    let after = db.stats().memtable_bytes;
    assert!(
        after <= base * 2,
        "100k overwrites grew memory from {base} to {after} bytes"
    );
    for i in 0..100u32 {
        db.delete(format!("k{i:03}")).expect("delete");
    }
    assert!(
        db.stats().memtable_bytes < base / 10,
        "deletes freed nothing: {}",
        db.stats().memtable_bytes
    );
    assert_eq!(db.iter().count(), 0);
}

#[test]
fn snapshots_and_iterators_keep_the_versions_they_read() {
    let db = Db::open_in_memory(Options::default()).expect("open");
    for i in 0..50u32 {
        db.put(format!("k{i:02}"), b"v1").expect("put");
    }
    let snap = db.snapshot();
    let mut it = db.iter();
    let first = it.next().expect("item").expect("ok");
    assert_eq!(first.1, b"v1");
    for round in 0..20 {
        for i in 0..50u32 {
            db.put(format!("k{i:02}"), format!("v{}", round + 2))
                .expect("put");
        }
    }
    for i in 0..50u32 {
        db.delete(format!("k{i:02}")).expect("delete");
    }
    for i in 0..50u32 {
        assert_eq!(
            snap.get(format!("k{i:02}")).expect("get").expect("kept"),
            b"v1"
        );
    }
    let rest = common::collect(it);
    assert_eq!(rest.len(), 49);
    assert!(rest.iter().all(|(_, v)| v == b"v1"));
    assert_eq!(db.iter().count(), 0);
    drop(snap);
    // With nothing pinned, the next writes prune again.
    let held = db.stats().memtable_bytes;
    for i in 0..50u32 {
        db.put(format!("k{i:02}"), b"again").expect("put");
    }
    assert!(db.stats().memtable_bytes < held, "pruning resumed");
}
