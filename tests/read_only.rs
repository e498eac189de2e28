//! `Db::open_read_only`: beside a writer that holds the database, it sees
//! what had reached the WAL when it opened, writes nothing, refuses every
//! kind of write, and its checkpoints fail cleanly when the writer changes
//! the database under them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use strata_kv::{Db, Durability, Error, Options};

fn opts() -> Options {
    Options::default().durability(Durability::Buffered)
}

/// Every file in `dir` with its length.
fn files(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            let len = e.metadata().expect("metadata").len();
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect()
}

#[test]
fn a_read_only_handle_beside_a_writer_sees_its_wal_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("db");
    let writer = Db::open(&path, opts()).expect("open");
    for i in 0..500u32 {
        writer.put(format!("t{i:04}"), format!("{i}")).expect("put");
    }
    writer.flush().expect("flush");
    // These stay in the WAL only.
    for i in 0..200u32 {
        writer.put(format!("w{i:04}"), format!("{i}")).expect("put");
    }
    writer.delete(b"t0007").expect("delete");
    let before = files(&path);

    let ro = Db::open_read_only(&path, opts()).expect("open read-only beside the writer");
    assert_eq!(common::contents(&ro), common::contents(&writer));
    assert_eq!(ro.latest_sequence(), writer.latest_sequence());
    assert!(ro.get(b"t0007").expect("get").is_none());

    for refused in [
        ro.put(b"k", b"v"),
        ro.delete(b"t0001"),
        ro.flush(),
        ro.compact(),
        ro.namespace("new").map(|_| ()),
    ] {
        assert!(matches!(refused, Err(Error::ReadOnly)), "{refused:?}");
    }
    assert!(ro.verify().expect("verify").is_ok());

    // Later writes are not seen: the handle is a point in time.
    writer.put(b"later", b"x").expect("put");
    assert!(ro.get(b"later").expect("get").is_none());

    ro.close().expect("close");
    drop(ro);
    let mut after = files(&path);
    // Only the writer's WAL may have changed (its own last put); no table,
    // manifest or CURRENT did.
    after.retain(|name, _| before.contains_key(name));
    let wal_grew: Vec<_> = after
        .iter()
        .filter(|(name, len)| before.get(*name) != Some(len))
        .map(|(name, _)| name.clone())
        .collect();
    assert!(wal_grew.iter().all(|n| n.ends_with(".wal")), "{wal_grew:?}");
    assert_eq!(files(&path).len(), before.len(), "no file added or removed");
}

#[test]
fn a_read_only_checkpoint_fails_with_conflict_when_the_writer_flushes_meanwhile() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("db");
    let writer = Db::open(&path, opts()).expect("open");
    for i in 0..300u32 {
        writer.put(format!("k{i:04}"), format!("{i}")).expect("put");
    }
    writer.flush().expect("flush");
    writer.put(b"in-wal", b"1").expect("put");

    let ro = Db::open_read_only(&path, opts()).expect("open read-only");
    let good = tmp.path().join("good");
    let info = ro
        .checkpoint(&good)
        .expect("checkpoint with no writer activity");
    let copy = Db::open(&good, opts()).expect("open checkpoint");
    assert_eq!(copy.latest_sequence(), info.sequence);
    assert_eq!(common::contents(&copy), common::contents(&ro));

    // The writer flushes (a manifest edit): the handle's view of the files
    // is stale, and a checkpoint from it must not pretend otherwise.
    writer.put(b"more", b"2").expect("put");
    writer.flush().expect("flush");
    let stale = tmp.path().join("stale");
    assert!(matches!(ro.checkpoint(&stale), Err(Error::Conflict)));
    assert!(
        std::fs::read_dir(&stale).map_or(true, |mut d| d.next().is_none()),
        "a failed checkpoint leaves nothing behind"
    );
    // A fresh handle succeeds and sees the flushed write.
    let ro = Db::open_read_only(&path, opts()).expect("reopen read-only");
    ro.checkpoint(&stale).expect("checkpoint");
    let copy = Db::open(&stale, opts()).expect("open checkpoint");
    assert_eq!(copy.get(b"more").expect("get").as_deref(), Some(&b"2"[..]));
}

#[test]
fn opening_a_missing_database_read_only_fails_and_creates_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("absent");
    let err = Db::open_read_only(&path, opts()).expect_err("missing");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(!path.exists());
    std::fs::create_dir(&path).expect("mkdir");
    let err = Db::open_read_only(&path, opts()).expect_err("empty directory");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert_eq!(files(&path).len(), 0);
}

/// Read-only opens beside a writer that flushes and compacts all the time:
/// each one opens or reports `Conflict` (a race its caller retries), never
/// `Corruption`. A flush between the open's directory listing and its
/// manifest read once made the manifest name a table the listing lacked,
/// reported as a missing table (seen once in CI, through the CLI's
/// checkpoint test). That window is narrow: with the fix removed, 3,800
/// opens here never hit it, so this guards the behaviour in general, not
/// that race in particular.
#[test]
fn read_only_opens_racing_flushes_report_conflict_never_corruption() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("db");
    let db = Db::open(
        &path,
        Options::default()
            .durability(Durability::Buffered)
            .write_buffer_size(4 << 10)
            .target_file_size(4 << 10),
    )
    .expect("open");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                db.put(format!("k{:08}", i % 5_000), [b'v'; 100])
                    .expect("put");
                i += 1;
            }
        })
    };
    let (mut opened, mut conflicts) = (0, 0);
    for _ in 0..300 {
        match Db::open_read_only(&path, Options::default()) {
            Ok(ro) => {
                opened += 1;
                ro.close().expect("close");
            }
            Err(Error::Conflict) => conflicts += 1,
            Err(e) => panic!("read-only open beside a writer: {e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    eprintln!("{opened} opened, {conflicts} conflicts");
    assert!(opened > 0, "no read-only open succeeded");
}
