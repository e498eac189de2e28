//! The async `KvStore` trait over both stores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_kv::fs::FaultFs;
use strata_kv::kv::{KvStore, MemoryKvStore, PersistKvStore};
use strata_kv::{Durability, Options};

async fn crud<S: KvStore>(store: &S) {
    store
        .set("user:1001", b"Alice".to_vec())
        .await
        .expect("set");
    store.set("user:1002", b"Bob".to_vec()).await.expect("set");
    assert_eq!(
        store.get("user:1001").await.expect("get"),
        Some(b"Alice".to_vec())
    );
    store
        .set("user:1001", b"Alice Smith".to_vec())
        .await
        .expect("update");
    assert_eq!(
        store.get("user:1001").await.expect("get"),
        Some(b"Alice Smith".to_vec())
    );
    assert!(store.exists("user:1002").await.expect("exists"));
    assert!(!store.exists("user:9999").await.expect("exists"));
    store.delete("user:1002").await.expect("delete");
    assert_eq!(store.get("user:1002").await.expect("get"), None);
    assert!(!store.exists("user:1002").await.expect("exists"));
}

async fn batches<S: KvStore>(store: &S) {
    let pairs = vec![
        ("config:a", b"1".to_vec()),
        ("config:b", b"2".to_vec()),
        ("config:c", Vec::new()),
    ];
    store.batch_set(pairs).await.expect("batch set");
    let got = store
        .batch_get(&["config:a", "config:missing", "config:c", "config:b"])
        .await
        .expect("batch get");
    assert_eq!(
        got,
        vec![
            Some(b"1".to_vec()),
            None,
            Some(Vec::new()),
            Some(b"2".to_vec())
        ]
    );
    assert_eq!(
        store.batch_get(&[]).await.expect("empty batch get"),
        Vec::<Option<Vec<u8>>>::new()
    );
}

async fn hundred_tasks<S: KvStore + 'static>(store: Arc<S>) {
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .set(&format!("task:{i:03}"), format!("v{i}").into_bytes())
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("join").expect("set");
    }
    let keys: Vec<String> = (0..100).map(|i| format!("task:{i:03}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = store.batch_get(&refs).await.expect("batch get");
    for (i, v) in got.into_iter().enumerate() {
        assert_eq!(v, Some(format!("v{i}").into_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_runs_the_trait_examples() {
    let store = Arc::new(MemoryKvStore::new());
    crud(store.as_ref()).await;
    batches(store.as_ref()).await;
    hundred_tasks(Arc::clone(&store)).await;
    assert!(store.db().get(b"task:042").expect("sync api").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_store_runs_the_trait_examples_and_keeps_them_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Arc::new(PersistKvStore::open(dir.path()).await.expect("open"));
        crud(store.as_ref()).await;
        batches(store.as_ref()).await;
        hundred_tasks(Arc::clone(&store)).await;
        // Push part of the data into tables so reads go to disk too.
        store.db().flush().expect("flush");
        store.set("after:flush", b"x".to_vec()).await.expect("set");
    }
    let store = PersistKvStore::open(dir.path()).await.expect("reopen");
    assert_eq!(
        store.get("user:1001").await.expect("get"),
        Some(b"Alice Smith".to_vec())
    );
    assert_eq!(store.get("user:1002").await.expect("get"), None);
    assert_eq!(
        store.get("after:flush").await.expect("get"),
        Some(b"x".to_vec())
    );
    let got = store
        .batch_get(&["config:a", "task:099", "config:missing"])
        .await
        .expect("batch get");
    assert_eq!(got, vec![Some(b"1".to_vec()), Some(b"v99".to_vec()), None]);
    store.close().await.expect("close");
}

/// On a single-threaded runtime, synced sets park on futures: the commit
/// thread runs every fdatasync, and a ticking task keeps ticking.
#[test]
fn synced_sets_never_block_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let fs = FaultFs::new();
    // Slow fdatasyncs make any blocking of the runtime thread visible.
    fs.set_sync_latency(Duration::from_millis(3));
    let runtime_thread = std::thread::current().id();
    let opts = Options::default()
        .durability(Durability::Sync)
        .file_system(Arc::new(fs.clone()));
    rt.block_on(async {
        let store = Arc::new(PersistKvStore::open_with("/db", opts).await.expect("open"));
        let syncs_before = fs.sync_threads();
        let (tick_tx, mut tick_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                if tick_tx.send(Instant::now()).is_err() {
                    return;
                }
            }
        });
        let start = Instant::now();
        let sets: Vec<_> = (0..1000)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.set(&format!("k{i:04}"), vec![7u8; 100]).await })
            })
            .collect();
        for s in sets {
            s.await.expect("join").expect("synced set");
        }
        let elapsed = start.elapsed();
        ticker.abort();
        let mut ticks = Vec::new();
        while let Ok(t) = tick_rx.try_recv() {
            if t >= start {
                ticks.push(t);
            }
        }
        let synced_here =
            fs.sync_threads().contains(&runtime_thread) && !syncs_before.contains(&runtime_thread);
        assert!(!synced_here, "an fdatasync ran on the runtime thread");
        // Ticks kept coming while 1,000 synced writes were in flight. (Loose
        // bounds: the machine may be busy; the check above is the exact one.)
        assert!(
            elapsed > Duration::from_millis(5),
            "writes took {elapsed:?}"
        );
        assert!(
            ticks.len() >= 3,
            "{} ticks in {elapsed:?}: the runtime stalled",
            ticks.len()
        );
        let max_gap = ticks
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        assert!(
            max_gap < Duration::from_millis(250),
            "the ticker stalled for {max_gap:?}"
        );
        for i in (0..1000).step_by(97) {
            assert!(store.get(&format!("k{i:04}")).await.expect("get").is_some());
        }
    });
}

/// The README's first command: the demo prints its three sections.
#[test]
fn the_kv_store_example_prints_its_three_sections() {
    let exe = std::env::current_exe().expect("test binary");
    let examples = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("examples");
    let demo = examples.join("kv_store");
    assert!(
        demo.exists(),
        "cargo test builds examples; {} is missing",
        demo.display()
    );
    for args in [&[][..], &["--memory"][..]] {
        let out = std::process::Command::new(&demo)
            .args(args)
            .output()
            .expect("run demo");
        assert!(
            out.status.success(),
            "demo {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf8");
        for needle in [
            "=== Strata KV Store Demo ===",
            "1. Basic CRUD Operations",
            "SET user:1001 = Alice",
            "UPDATE user:1001 = Alice Smith",
            "EXISTS user:9999 -> false",
            "2. Batch Operations",
            "config:missing = None",
            "3. SIMD Hash Functions",
            "hash_key(\"session:abc123\") = 0x9ed279b904f8d999",
            "-> partition",
        ] {
            assert!(
                text.contains(needle),
                "demo {args:?} output lacks {needle:?}:\n{text}"
            );
        }
    }
}

/// The rich API through the async stores: conditional ops, TTL, best-effort
/// batches, transactions and a watch read as a `Stream`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_stores_expose_the_rich_api() {
    use futures_core::Stream;
    use std::pin::Pin;
    let dir = tempfile::tempdir().expect("tempdir");
    let persist = PersistKvStore::open(dir.path()).await.expect("open");
    let memory = MemoryKvStore::new();
    for (name, conflict) in [
        (
            "persist",
            persist.compare_and_swap("c", None, Some(b"1")).await,
        ),
        (
            "memory",
            memory.compare_and_swap("c", None, Some(b"1")).await,
        ),
    ] {
        assert!(conflict.expect("cas").is_ok(), "{name}");
    }
    let again = persist
        .compare_and_swap("c", None, Some(b"2"))
        .await
        .expect("cas");
    assert_eq!(again.expect_err("conflict").current.expect("current"), b"1");
    assert_eq!(memory.get("c").await.expect("get"), Some(b"1".to_vec()));
    assert_eq!(
        persist
            .insert_returning_old("k", b"1".to_vec())
            .await
            .expect("insert"),
        None
    );
    assert_eq!(
        persist.update("k", b"2".to_vec()).await.expect("update"),
        b"1".to_vec()
    );
    assert!(matches!(
        persist.update("missing", b"x".to_vec()).await,
        Err(strata_kv::Error::NotFound)
    ));
    assert_eq!(
        persist.consume("k").await.expect("consume"),
        Some(b"2".to_vec())
    );
    persist
        .set_with_ttl("t", b"v".to_vec(), Duration::from_secs(3600))
        .await
        .expect("ttl");
    assert!(persist.exists("t").await.expect("exists"));

    let mut batch = strata_kv::WriteBatch::new();
    batch.put("a", "1");
    batch.update("absent", "x");
    let report = memory.write_best_effort(batch).await.expect("best effort");
    assert_eq!((report.applied, report.errors.len()), (1, 1));

    let mut txn = memory.transaction();
    txn.put("tx", "1");
    txn.commit_async().await.expect("commit");
    assert_eq!(memory.get("tx").await.expect("get"), Some(b"1".to_vec()));

    let ns = persist.namespace("async-ns").await.expect("namespace");
    ns.put("x", "y").expect("put");

    let mut sub = memory.watch_prefix("w:");
    memory.set("w:1", b"one".to_vec()).await.expect("set");
    let event = std::future::poll_fn(|cx| Pin::new(&mut sub).poll_next(cx)).await;
    match event {
        Some(strata_kv::Event::Put { key, value, .. }) => {
            assert_eq!(
                (key.to_vec(), value.to_vec()),
                (b"w:1".to_vec(), b"one".to_vec())
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Buffered writes from many tasks, through memtable switches (where a
/// write must queue for the commit thread instead of committing on the
/// task's thread), all read back, and all there after a clean reopen.
#[test]
fn buffered_async_writes_survive_memtable_switches_and_reopen() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let fs = FaultFs::new();
    let opts = || {
        Options::default()
            .durability(Durability::Buffered)
            .write_buffer_size(32 << 10)
            .file_system(Arc::new(fs.clone()))
    };
    let (tasks, each) = (4, 1500);
    let key = |t: usize, i: usize| format!("t{t}-{i:05}");
    rt.block_on(async {
        let store = Arc::new(
            PersistKvStore::open_with("/db", opts())
                .await
                .expect("open"),
        );
        let writers: Vec<tokio::task::JoinHandle<strata_kv::Result<()>>> = (0..tasks)
            .map(|t| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for i in 0..each {
                        store.set(&key(t, i), vec![t as u8; 100]).await?;
                        // Read-your-writes, whichever path the write took.
                        assert!(store.exists(&key(t, i)).await?, "{} missing", key(t, i));
                    }
                    Ok(())
                })
            })
            .collect();
        for w in writers {
            w.await.expect("join").expect("buffered sets");
        }
        // Only a queued write switches a full memtable: flushes show that
        // writes took that path too.
        let stats = store.db().stats();
        assert!(stats.flushes >= 3, "only {} flushes", stats.flushes);
        assert_eq!(stats.wal_syncs, 0, "a buffered write synced the WAL");
        Arc::into_inner(store)
            .expect("one owner")
            .close()
            .await
            .expect("close");
        let store = PersistKvStore::open_with("/db", opts())
            .await
            .expect("reopen");
        for t in 0..tasks {
            for i in 0..each {
                let v = store.get(&key(t, i)).await.expect("get");
                assert_eq!(v, Some(vec![t as u8; 100]), "{}", key(t, i));
            }
        }
    });
}

/// What survives a power loss of buffered async writes is a prefix of
/// their order, and a synced write makes everything before it durable.
#[test]
fn buffered_async_writes_lost_to_power_loss_are_a_suffix() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (total, synced_at) = (600, 400);
    for seed in 1..=4u64 {
        let fs = FaultFs::new();
        let opts = || {
            Options::default()
                .durability(Durability::Buffered)
                .file_system(Arc::new(fs.clone()))
        };
        rt.block_on(async {
            let store = PersistKvStore::open_with("/db", opts())
                .await
                .expect("open");
            // Interleaved: k0, a0, k1, a1, ... where the k's are written
            // through the sync API and the a's through the async one.
            for i in 0..total {
                let mut b = strata_kv::WriteBatch::new();
                b.put(format!("k{i:04}"), [1u8; 64]);
                let durability = if i == synced_at {
                    Durability::Sync
                } else {
                    Durability::Buffered
                };
                store.db().write_with(b, durability).expect("write");
                store
                    .set(&format!("a{i:04}"), vec![2u8; 64])
                    .await
                    .expect("set");
            }
            // Each file keeps a random part of its unsynced tail.
            fs.power_loss_torn(seed);
            drop(store);
            fs.restart();
            let store = PersistKvStore::open_with("/db", opts())
                .await
                .expect("reopen");
            let mut present = Vec::new();
            for i in 0..total {
                for k in [format!("k{i:04}"), format!("a{i:04}")] {
                    present.push(store.get(&k).await.expect("get").is_some());
                }
            }
            let kept = present.iter().take_while(|p| **p).count();
            assert!(
                present[kept..].iter().all(|p| !p),
                "seed {seed}: a write survived after one that was lost (first lost: {kept})"
            );
            assert!(
                kept > 2 * synced_at,
                "seed {seed}: {kept} writes survived; the synced one was number {}",
                2 * synced_at + 1
            );
        });
    }
}

/// A persistent store's buffered writes and cached reads complete without
/// waiting, so a task doing them in a loop must still yield now and then:
/// on a single-threaded runtime, a task spawned beside it gets to run
/// long before the loop ends.
#[test]
fn tight_loops_of_ready_writes_and_reads_yield_to_other_tasks() {
    use std::sync::atomic::{AtomicU64, Ordering};

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 5_000u64;
    rt.block_on(async {
        let opts = Options::default().durability(Durability::Buffered);
        let store = Arc::new(
            PersistKvStore::open_with(dir.path(), opts)
                .await
                .expect("open"),
        );
        for reading in [false, true] {
            let done = Arc::new(AtomicU64::new(0));
            let looping = {
                let (store, done) = (Arc::clone(&store), Arc::clone(&done));
                tokio::spawn(async move {
                    for i in 0..n {
                        let key = format!("k{i:05}");
                        match reading {
                            false => store.set(&key, vec![1u8; 32]).await.expect("set"),
                            true => assert!(store.get(&key).await.expect("get").is_some()),
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            };
            // Spawned second: on this runtime it runs only when the loop
            // yields.
            let seen = {
                let done = Arc::clone(&done);
                tokio::spawn(async move { done.load(Ordering::Relaxed) })
            };
            let seen = seen.await.expect("join");
            looping.await.expect("loop");
            assert!(
                seen < n,
                "reading: {reading}: the other task ran only after all {n} operations"
            );
        }
    });
}

/// Drops each write's future unpolled, then checks every write happened,
/// in call order (the update and the consume see the sets called before
/// them).
macro_rules! dropped_write_futures_still_write {
    ($store:expr) => {{
        let store = $store;
        drop(store.set("k1", b"one".to_vec()));
        drop(store.update("k1", b"two".to_vec()));
        drop(store.compare_and_swap("k2", None, Some(b"new")));
        drop(store.insert_returning_old("k3", b"three".to_vec()));
        drop(store.batch_set(vec![("k4", b"four".to_vec())]));
        drop(store.set("k5", b"five".to_vec()));
        drop(store.consume("k5"));
        store.set("last", b"x".to_vec()).await.expect("set");
        assert_eq!(store.get("k1").await.expect("get"), Some(b"two".to_vec()));
        assert_eq!(store.get("k2").await.expect("get"), Some(b"new".to_vec()));
        assert_eq!(store.get("k3").await.expect("get"), Some(b"three".to_vec()));
        assert_eq!(store.get("k4").await.expect("get"), Some(b"four".to_vec()));
        assert_eq!(store.get("k5").await.expect("get"), None);
    }};
}

/// A write is submitted when its method is called, not when its future is
/// polled: dropping the future does not cancel it (kv.rs module docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_submitted_when_called_and_dropping_the_future_keeps_them() {
    dropped_write_futures_still_write!(MemoryKvStore::new());
    for durability in [Durability::Sync, Durability::Buffered] {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = Options::default().durability(durability);
        let store = PersistKvStore::open_with(dir.path(), opts)
            .await
            .expect("open");
        dropped_write_futures_still_write!(store);
    }
}
