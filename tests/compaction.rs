//! Compaction: deleted data leaves the disk, failures poison without losing
//! anything acknowledged, and readers never see a key go back in time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strata_kv::fs::{FaultError, FaultFs, FaultOp};
use strata_kv::{Db, Durability, Error, Options};

fn small(fs: &FaultFs) -> Options {
    Options::default()
        .durability(Durability::Buffered)
        .file_system(Arc::new(fs.clone()))
        .write_buffer_size(256 << 10)
        .target_file_size(256 << 10)
        .base_level_size(1 << 20)
}

#[test]
fn deleting_every_key_and_compacting_shrinks_the_tables_below_5_percent_of_peak() {
    let fs = FaultFs::new();
    let db = Db::open("/db", small(&fs)).expect("open");
    let mut rng = fastrand::Rng::with_seed(7);
    let mut peak = 0;
    for i in 0..200_000u32 {
        let value: Vec<u8> = (0..100).map(|_| rng.u8(..)).collect();
        db.put(format!("key{i:08}"), value).expect("put");
        if i % 20_000 == 0 {
            peak = peak.max(db.stats().table_bytes);
        }
    }
    db.flush().expect("flush");
    peak = peak.max(db.stats().table_bytes);
    for i in 0..200_000u32 {
        db.delete(format!("key{i:08}")).expect("delete");
    }
    db.flush().expect("flush");
    peak = peak.max(db.stats().table_bytes);
    db.compact().expect("compact");
    let after = db.stats().table_bytes;
    assert!(peak > 10 << 20, "peak {peak}");
    assert!(
        after * 20 < peak,
        "tables hold {after} bytes after compaction, peak was {peak}"
    );
    assert_eq!(db.iter().count(), 0);
}

/// Two flushed tables in L0 (automatic compaction is held off), nothing in memory.
fn loaded(fs: &FaultFs) -> Db {
    let db = Db::open("/db", held_in_l0(fs)).expect("open");
    for i in 0..20_000u32 {
        db.put(format!("key{i:06}"), format!("value {i}"))
            .expect("put");
    }
    db.flush().expect("flush");
    for i in (0..20_000u32).step_by(3) {
        db.put(format!("key{i:06}"), format!("newer {i}"))
            .expect("put");
    }
    db.flush().expect("flush");
    db
}

fn held_in_l0(fs: &FaultFs) -> Options {
    small(fs)
        .write_buffer_size(4 << 20)
        .l0_compaction_trigger(100)
        .l0_slowdown_trigger(100)
        .l0_stop_trigger(100)
}

fn expected(i: u32) -> String {
    if i.is_multiple_of(3) {
        format!("newer {i}")
    } else {
        format!("value {i}")
    }
}

fn check_all(db: &Db) {
    for i in (0..20_000u32).step_by(7) {
        let v = db.get(format!("key{i:06}")).expect("get").expect("present");
        assert_eq!(v, expected(i).as_bytes());
    }
    assert_eq!(db.iter().count(), 20_000);
}

#[test]
fn a_failed_compaction_write_or_sync_poisons_writes_keeps_reads_and_loses_nothing() {
    for (op, error) in [
        (FaultOp::Write, FaultError::Eio),
        (FaultOp::Write, FaultError::Enospc),
        (FaultOp::Sync, FaultError::Eio),
    ] {
        let fs = FaultFs::new();
        let db = loaded(&fs);
        // Nothing is left to flush, so the next write or sync is the compaction's.
        fs.fail_nth(op, 1, error);
        let err = db.compact().expect_err("compaction must fail");
        assert!(matches!(err, Error::Io(_)), "{op:?}: {err}");
        let write = db
            .put(b"after", b"failure")
            .expect_err("writes are refused");
        assert!(
            matches!(write, Error::Io(_)),
            "writes return the error: {write}"
        );
        check_all(&db);
        drop(db);
        let db = Db::open("/db", held_in_l0(&fs)).expect("reopen");
        check_all(&db);
        db.put(b"after", b"reopen").expect("writes work again");
    }
}

#[test]
fn a_failed_background_flush_poisons_and_reopen_recovers_from_the_wal() {
    let fs = FaultFs::new();
    let db = Db::open("/db", small(&fs).durability(Durability::Sync)).expect("open");
    fs.fail_nth(FaultOp::Sync, 40, FaultError::Eio);
    let mut acked = 0u32;
    for i in 0..50_000u32 {
        match db.put(format!("key{i:06}"), [b'x'; 64]) {
            Ok(()) => acked = i + 1,
            Err(_) => break,
        }
    }
    assert!(acked < 50_000, "the injected failure stopped the writes");
    assert!(db.put(b"more", b"x").is_err());
    assert!(db.get(b"key000000").expect("reads work").is_some());
    drop(db);
    let db = Db::open("/db", small(&fs)).expect("reopen");
    for i in 0..acked {
        assert!(
            db.get(format!("key{i:06}")).expect("get").is_some(),
            "acknowledged key{i:06} lost"
        );
    }
}

/// Per key: whether each version is a delete (a writer records a version
/// here before writing it) and the last version it had acknowledged.
/// Version 0 means never written; values carry their version.
struct History {
    kinds: Vec<parking_lot::Mutex<Vec<bool>>>,
    acked: Vec<AtomicU64>,
}

fn parse(v: &[u8]) -> u64 {
    std::str::from_utf8(v)
        .expect("utf8")
        .split(':')
        .nth(1)
        .expect("version")
        .parse()
        .expect("number")
}

/// What a read of key `k` may return, given the version acknowledged before
/// the read began (`floor`): that version or a later one, and absent only
/// if that version or a later one (perhaps still in flight) is a delete.
fn check_read(history: &History, k: usize, floor: u64, got: Option<&[u8]>) {
    let kinds = history.kinds[k].lock();
    let is_delete = |v: u64| v == 0 || kinds[v as usize - 1];
    match got {
        Some(v) => {
            let n = parse(v);
            assert!(
                n >= floor,
                "key {k}: read version {n}, but {floor} was acknowledged first (resurrected)"
            );
            assert!(
                n as usize <= kinds.len(),
                "key {k}: version {n} from the future"
            );
            assert!(!is_delete(n), "key {k}: a value for a delete version");
        }
        None => assert!(
            (floor..=kinds.len() as u64).any(is_delete),
            "key {k}: missing, though version {floor} put it and nothing deleted it since"
        ),
    }
}

#[test]
fn readers_and_iterators_never_see_a_key_missing_or_resurrected_while_compactions_run() {
    let fs = FaultFs::new();
    let opts = small(&fs)
        .write_buffer_size(32 << 10)
        .target_file_size(16 << 10)
        .base_level_size(64 << 10)
        .level_size_multiplier(4)
        .l0_compaction_trigger(2);
    let db = Db::open("/db", opts).expect("open");
    let stats = race_readers_and_writers(&db, |db| db.stats().compactions >= 50);
    assert!(
        stats.compactions >= 10,
        "only {} compactions ran",
        stats.compactions
    );
}

/// The same race in memory, where writers prune the versions they replace.
#[test]
fn readers_and_iterators_never_see_a_key_missing_or_resurrected_while_memory_is_pruned() {
    let db = Db::open_in_memory(Options::default()).expect("open");
    let stats = race_readers_and_writers(&db, |db| db.stats().writes >= 200_000);
    assert!(stats.writes > 1000);
}

/// Two writers and two readers (point reads and slow live iterators) for
/// up to four seconds or until `enough`; panics on any read that breaks
/// its key's history.
fn race_readers_and_writers(db: &Db, enough: impl Fn(&Db) -> bool) -> strata_kv::Stats {
    const KEYS: usize = 400;
    let history = Arc::new(History {
        kinds: (0..KEYS)
            .map(|_| parking_lot::Mutex::new(Vec::new()))
            .collect(),
        acked: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (db, history, stop) = (db.clone(), Arc::clone(&history), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(w as u64);
                let padding = "p".repeat(100);
                while !stop.load(Ordering::Relaxed) {
                    let k = rng.usize(0..KEYS / 2) * 2 + w; // writers own disjoint keys
                    let delete = rng.u32(0..4) == 0;
                    let version = {
                        let mut kinds = history.kinds[k].lock();
                        kinds.push(delete);
                        kinds.len() as u64
                    };
                    let key = format!("key{k:04}");
                    if delete {
                        db.delete(&key).expect("delete");
                    } else {
                        db.put(&key, format!("{key}:{version}:{padding}"))
                            .expect("put");
                    }
                    history.acked[k].store(version, Ordering::Release);
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (db, history, stop) = (db.clone(), Arc::clone(&history), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(100 + r);
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if rng.u32(0..50) == 0 {
                        // A live iterator, read slowly while compactions go on.
                        let floors: Vec<u64> = history
                            .acked
                            .iter()
                            .map(|a| a.load(Ordering::Acquire))
                            .collect();
                        let mut seen = vec![false; KEYS];
                        for (i, item) in db.iter().enumerate() {
                            let (k, v) = item.expect("scan");
                            let k: usize = std::str::from_utf8(&k[3..])
                                .expect("utf8")
                                .parse()
                                .expect("key");
                            seen[k] = true;
                            check_read(&history, k, floors[k], Some(&v));
                            if i % 50 == 0 {
                                std::thread::sleep(Duration::from_micros(200));
                            }
                        }
                        for k in 0..KEYS {
                            if !seen[k] {
                                check_read(&history, k, floors[k], None);
                            }
                        }
                    } else {
                        let k = rng.usize(0..KEYS);
                        let floor = history.acked[k].load(Ordering::Acquire);
                        let got = db.get(format!("key{k:04}")).expect("get");
                        check_read(&history, k, floor, got.as_deref());
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) && !enough(db) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let reads: u64 = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    assert!(reads > 100, "{reads} reads");
    db.stats()
}

#[test]
fn compaction_reads_its_inputs_without_filling_the_block_cache() {
    let fs = FaultFs::new();
    let db = Db::open("/db", small(&fs)).expect("open");
    // 7,919 is prime to 60,000: every key once, in scattered order.
    let key = |i: u32| format!("key{:08}", (i * 7_919) % 60_000);
    for i in 0..60_000u32 {
        db.put(key(i), expected(i)).expect("put");
    }
    db.compact().expect("compact");
    let stats = db.stats();
    assert!(
        stats.compactions > 0,
        "the load must have merged tables: {stats:?}"
    );
    assert_eq!(
        stats.block_cache_bytes, 0,
        "nothing but compaction has read a block, and it must cache none"
    );
    assert_eq!(
        db.get(key(7)).expect("get").as_deref(),
        Some(expected(7).as_bytes())
    );
    assert!(
        db.stats().block_cache_bytes > 0,
        "a user read caches its block"
    );
}
