//! Group commit shares fdatasync calls among concurrent synced writers, and
//! every acknowledged synced write survives a power loss.

use std::sync::Arc;
use std::time::Duration;

use strata_kv::fs::{FaultError, FaultFs, FaultOp};
use strata_kv::{Db, Durability, Options};

#[test]
fn eight_threads_of_synced_writes_share_fdatasyncs_and_survive_power_loss() {
    let fs = FaultFs::new();
    // A disk whose fdatasync takes 1 ms, like a fast SSD's.
    fs.set_sync_latency(Duration::from_millis(1));
    let opts = Options::default()
        .durability(Durability::Sync)
        .file_system(Arc::new(fs.clone()));
    let db = Db::open("/db", opts.clone()).expect("open");
    let syncs_before = fs.count(FaultOp::Sync);

    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    db.put(format!("t{t}:{i:03}"), format!("v{t}.{i}"))
                        .expect("synced put");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
    let syncs = fs.count(FaultOp::Sync) - syncs_before;
    eprintln!("{syncs} fdatasyncs");
    assert!(
        syncs < 1600 / 4,
        "{syncs} fdatasyncs for 1600 synced writes"
    );
    assert_eq!(db.stats().wal_syncs, syncs, "every WAL sync is counted");

    fs.power_loss();
    drop(db);
    fs.restart();
    let db = Db::open("/db", opts).expect("reopen after power loss");
    for t in 0..8 {
        for i in 0..200 {
            let v = db.get(format!("t{t}:{i:03}")).expect("get");
            assert_eq!(
                v.expect("acknowledged write lost"),
                format!("v{t}.{i}").as_bytes()
            );
        }
    }
    eprintln!("1600 synced writes took {syncs} fdatasyncs");
}

/// Closing while synced writers queue for the WAL: every writer returns
/// (its write acknowledged or refused with `Closed`), none waits forever,
/// and every acknowledged write is there after reopening.
#[test]
fn close_while_writers_queue_returns_every_writer_and_keeps_acknowledged_writes() {
    use strata_kv::Error;

    for round in 0..20u64 {
        let fs = FaultFs::new();
        fs.set_sync_latency(Duration::from_micros(200));
        let opts = Options::default()
            .durability(Durability::Sync)
            .file_system(Arc::new(fs.clone()));
        let db = Db::open("/db", opts.clone()).expect("open");
        let (done, finished) = std::sync::mpsc::channel();
        let acks = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let db = db.clone();
                let done = done.clone();
                let acks = Arc::clone(&acks);
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0u64.. {
                        match db.put(format!("{t}:{i}"), "v") {
                            Ok(()) => {
                                acked.push(i);
                                acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(Error::Closed) => break,
                            Err(e) => panic!("writer {t}: {e}"),
                        }
                    }
                    done.send((t, acked)).expect("report");
                })
            })
            .collect();
        drop(done);
        // Close once writes flow (a fixed delay alone let a loaded machine
        // close before the threads had run), a little later each round.
        let started = std::time::Instant::now();
        while acks.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "round {round}: no synced write acknowledged in 20 s"
            );
            std::thread::sleep(Duration::from_micros(100));
        }
        std::thread::sleep(Duration::from_millis(round % 7));
        db.close().expect("close");
        let mut acked = Vec::new();
        for _ in 0..8 {
            let report = finished
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("round {round}: a writer never returned after close"));
            acked.push(report);
        }
        for w in writers {
            w.join().expect("writer");
        }
        drop(db);
        let total: usize = acked.iter().map(|(_, w)| w.len()).sum();
        eprintln!("round {round}: {total} writes acknowledged before close");
        assert_eq!(
            total as u64,
            acks.load(std::sync::atomic::Ordering::Relaxed),
            "round {round}: the writers' reports disagree with their acknowledgements"
        );
        let db = Db::open("/db", opts).expect("reopen");
        for (t, writes) in acked {
            for i in writes {
                assert!(
                    db.get(format!("{t}:{i}")).expect("get").is_some(),
                    "round {round}: acknowledged write {t}:{i} lost"
                );
            }
        }
    }
}

/// Writers that stop after different numbers of synced writes: a leader
/// that waits for the last group's writers to come back must give up on
/// those that never do, and every writer of every group must be woken.
/// (A gathering leader's timer could wake it before its part of the
/// group's wake-up chain was in place; the writers after it then slept
/// forever.)
#[test]
fn writers_stopping_at_different_times_all_return_and_persist() {
    for round in 0..200u64 {
        let fs = FaultFs::new();
        fs.set_sync_latency(Duration::from_micros(50 + 50 * (round % 4)));
        let opts = Options::default()
            .durability(Durability::Sync)
            .file_system(Arc::new(fs.clone()));
        let db = Db::open("/db", opts.clone()).expect("open");
        let (done, finished) = std::sync::mpsc::channel();
        let threads = 2 + (round % 7) as usize;
        for t in 0..threads {
            let db = db.clone();
            let done = done.clone();
            let writes = 1 + (t as u64 * 7 + round) % 23;
            std::thread::spawn(move || {
                for i in 0..writes {
                    db.put(format!("{t}:{i}"), "v").expect("synced put");
                }
                done.send((t, writes)).expect("report");
            });
        }
        drop(done);
        let mut written = Vec::new();
        for _ in 0..threads {
            let report = finished
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("round {round}: a synced writer never returned"));
            written.push(report);
        }
        fs.power_loss();
        drop(db);
        fs.restart();
        let db = Db::open("/db", opts).expect("reopen after power loss");
        for (t, writes) in written {
            for i in 0..writes {
                assert!(
                    db.get(format!("{t}:{i}")).expect("get").is_some(),
                    "round {round}: acknowledged write {t}:{i} lost"
                );
            }
        }
    }
}

/// With `gather_synced_writers` (the default), writers released by one
/// synced group are waited for, so eight writers on a slow disk share
/// each fdatasync nearly all together; without it they split into
/// groups that alternate (about 4.8 writes per sync here). Both keep
/// every write. Gathering must reach 6 writes per sync in one of three
/// tries: a loaded machine may keep woken writers from coming back within
/// the 1 ms bound now and then, but never three times over.
#[test]
fn gathering_puts_returning_writers_into_one_group() {
    let mut best = [0.0f64; 2];
    for attempt in 0..3 {
        for (i, gather) in [false, true].into_iter().enumerate() {
            let fs = FaultFs::new();
            // Slow enough that a woken writer is back long before the wait ends.
            fs.set_sync_latency(Duration::from_millis(3));
            let opts = Options::default()
                .durability(Durability::Sync)
                .gather_synced_writers(gather)
                .file_system(Arc::new(fs.clone()));
            let db = Db::open("/db", opts).expect("open");
            let before = fs.count(FaultOp::Sync);
            let threads: Vec<_> = (0..8)
                .map(|t| {
                    let db = db.clone();
                    std::thread::spawn(move || {
                        for i in 0..40 {
                            db.put(format!("{t}:{i}"), "v").expect("synced put");
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("writer");
            }
            let syncs = fs.count(FaultOp::Sync) - before;
            for t in 0..8 {
                for i in 0..40 {
                    assert!(db.get(format!("{t}:{i}")).expect("get").is_some());
                }
            }
            eprintln!(
                "attempt {attempt}, gather {gather}: 320 synced writes took {syncs} fdatasyncs"
            );
            best[i] = best[i].max(320.0 / syncs as f64);
        }
        if best[1] >= 6.0 {
            return;
        }
    }
    panic!(
        "gathering: at best {:.1} writes per fdatasync (without: {:.1})",
        best[1], best[0]
    );
}

/// A panic inside a group's commit (here the file system's fdatasync; a
/// `FileSystem` implementation with a bug could do it) used to unwind
/// through the leader with leadership held, and every later writer waited
/// forever. Now the group fails with an error, the database turns
/// read-only, every writer returns, and what was acknowledged survives.
#[test]
fn a_panic_in_the_commit_path_fails_the_group_and_strands_no_writer() {
    for writers in [1usize, 6] {
        let fs = FaultFs::new();
        fs.set_sync_latency(Duration::from_micros(100));
        let opts = Options::default()
            .durability(Durability::Sync)
            .file_system(Arc::new(fs.clone()));
        let db = Db::open("/db", opts.clone()).expect("open");
        fs.fail_nth(FaultOp::Sync, 30, FaultError::Panic);
        let (done, finished) = std::sync::mpsc::channel();
        let mut handles = Vec::new();
        for t in 0..writers {
            let db = db.clone();
            let done = done.clone();
            handles.push(std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut failed = 0;
                for i in 0..40 {
                    match db.put(format!("{t}:{i}"), "v") {
                        Ok(()) => acked.push(i),
                        Err(_) => failed += 1,
                    }
                }
                done.send((t, acked, failed)).expect("report");
            }));
        }
        drop(done);
        let mut reports = Vec::new();
        for _ in 0..writers {
            reports.push(
                finished
                    .recv_timeout(Duration::from_secs(20))
                    .unwrap_or_else(|_| panic!("{writers} writers: one never returned")),
            );
        }
        // Each has returned; let their handles go before reopening.
        for h in handles {
            h.join().expect("writer");
        }
        let failed: usize = reports.iter().map(|r| r.2).sum();
        assert!(
            failed > 0,
            "{writers} writers: no write failed after the panic"
        );
        let err = db.put("after", "v").expect_err("writes after the panic");
        assert!(
            err.to_string().contains("panicked while committing"),
            "unexpected error: {err}"
        );
        // Reads go on.
        let (t, acked, _) = &reports[0];
        if let Some(i) = acked.first() {
            assert!(db.get(format!("{t}:{i}")).expect("read").is_some());
        }
        drop(db);
        fs.clear_faults();
        let db = Db::open("/db", opts).expect("reopen");
        for (t, acked, _) in reports {
            for i in acked {
                assert!(
                    db.get(format!("{t}:{i}")).expect("get").is_some(),
                    "{writers} writers: acknowledged write {t}:{i} lost"
                );
            }
        }
    }
}

/// Every kind of writer at once: async tasks writing buffered (which may
/// commit on their own thread) and committing transactions (which always
/// queue for the commit thread), writer threads synced and buffered, and
/// flushes holding the writer lock (which make an inline commit give up
/// and queue). Every writer returns within the bound (no one is left
/// waiting for a leader that went away) and every acknowledged write is
/// there after a clean reopen.
#[test]
fn async_and_thread_writers_of_both_durabilities_with_flushes_all_return() {
    use strata_kv::WriteBatch;
    use strata_kv::kv::PersistKvStore;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    for round in 0..20u64 {
        let fs = FaultFs::new();
        fs.set_sync_latency(Duration::from_micros(30 + 40 * (round % 3)));
        let opts = Options::default()
            .durability(Durability::Buffered)
            .write_buffer_size(64 << 10)
            .file_system(Arc::new(fs.clone()));
        let store = runtime
            .block_on(PersistKvStore::open_with("/db", opts.clone()))
            .expect("open");
        let store = Arc::new(store);
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let writes = 60 + round * 7;
        for t in 0..6u64 {
            let (store, done) = (Arc::clone(&store), done.clone());
            runtime.spawn(async move {
                for i in 0..writes {
                    let key = format!("task{t}:{i}");
                    if (i + t) % 5 == 0 {
                        let mut txn = store.transaction();
                        txn.put(&key, [t as u8; 80]);
                        txn.commit_async().await.expect("transaction");
                    } else {
                        let mut b = WriteBatch::new();
                        b.put(&key, [t as u8; 80]);
                        store.write(b).await.expect("buffered async write");
                    }
                }
                done.send(()).expect("report");
            });
        }
        for t in 0..3u64 {
            let (db, done) = (store.db().clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..writes {
                    let mut b = WriteBatch::new();
                    b.put(format!("thread{t}:{i}"), [9u8; 80]);
                    let durability = match i % 2 {
                        0 => Durability::Sync,
                        _ => Durability::Buffered,
                    };
                    db.write_with(b, durability).expect("thread write");
                }
                done.send(()).expect("report");
            });
        }
        let (db, flusher_done) = (store.db().clone(), done.clone());
        std::thread::spawn(move || {
            for _ in 0..5 {
                db.flush().expect("flush");
                std::thread::sleep(Duration::from_millis(2));
            }
            flusher_done.send(()).expect("report");
        });
        drop(done);
        for _ in 0..10 {
            finished
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("round {round}: a writer never returned"));
        }
        let db = store.db().clone();
        db.close().expect("close");
        let db = Db::open("/db", opts).expect("reopen");
        for i in 0..writes {
            let keys = (0..6)
                .map(|t| format!("task{t}:{i}"))
                .chain((0..3).map(|t| format!("thread{t}:{i}")));
            for key in keys {
                assert!(
                    db.get(&key).expect("get").is_some(),
                    "round {round}: {key} lost"
                );
            }
        }
    }
}
