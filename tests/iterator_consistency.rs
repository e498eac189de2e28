//! An iterator keeps the view it was opened with while flushes and
//! compactions replace the files underneath, and those files outlive it.

mod common;

use std::path::Path;
use std::sync::Arc;

use strata_kv::fs::{FaultFs, FileSystem};
use strata_kv::{Db, Durability, Options};

fn tables(fs: &FaultFs) -> Vec<String> {
    fs.list(Path::new("/db"))
        .expect("ls")
        .into_iter()
        .filter(|n| n.ends_with(".sst"))
        .collect()
}

#[test]
fn an_iterator_opened_before_a_flush_and_compaction_keeps_its_view_and_its_files() {
    let fs = FaultFs::new();
    let opts = Options::default()
        .durability(Durability::Buffered)
        .file_system(Arc::new(fs.clone()))
        .block_size(512);
    let db = Db::open("/db", opts).expect("open");
    for i in 0..300u32 {
        db.put(format!("a{i:03}"), format!("first {i}"))
            .expect("put");
    }
    db.flush().expect("flush");
    for i in 0..300u32 {
        db.put(format!("b{i:03}"), format!("memtable {i}"))
            .expect("put");
    }
    let before = tables(&fs);
    let mut forward = db.iter();
    let mut backward = db.iter().rev();
    let first = forward.next().expect("item").expect("ok");
    assert_eq!(&first.0[..], b"a000");

    // Overwrite everything, flush, compact: the old table goes from the version.
    for i in 0..300u32 {
        db.put(format!("a{i:03}"), b"second").expect("put");
        db.delete(format!("b{i:03}")).expect("delete");
    }
    db.flush().expect("flush");
    db.compact().expect("compact");
    let live: Vec<String> = tables(&fs);
    assert!(
        before.iter().any(|t| live.contains(t)),
        "files in use by iterators must stay"
    );

    let rest: Vec<_> = common::collect(forward.by_ref());
    assert_eq!(rest.len(), 599);
    for (k, v) in &rest {
        let k = std::str::from_utf8(k).expect("utf8");
        let i: u32 = k[1..].parse().expect("index");
        let want = if k.starts_with('a') {
            format!("first {i}")
        } else {
            format!("memtable {i}")
        };
        assert_eq!(v, want.as_bytes(), "{k}");
    }
    let back = common::collect(backward.by_ref());
    assert_eq!(back.len(), 600);
    assert_eq!(&back[0].0[..], b"b299");

    drop(forward);
    drop(backward);
    let after: Vec<String> = tables(&fs);
    assert!(
        before.iter().all(|t| !after.contains(t)),
        "obsolete tables deleted once released: {after:?}"
    );
    // The database itself shows the new state.
    assert_eq!(common::contents(&db).len(), 300);
    assert!(common::contents(&db).iter().all(|(_, v)| v == b"second"));
}
