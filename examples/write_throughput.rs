//! Write throughput: synced writes from 1, 4 and 16 concurrent writers
//! (group commit at work), and buffered writes, on the real disk.
//!
//! ```text
//! cargo run --release --example write_throughput [-- --seconds 3 --dir /path/on/the/disk/to/test]
//!     [--only-sync N] [--gather true|false] [--wal-mmap true|false] [--tasks true]
//! ```
//! `--only-sync N` runs only the synced row with N writers; `--gather false`
//! turns off `Options::gather_synced_writers` and `--wal-mmap false`
//! `Options::wal_mmap`, for comparing with and without. `--tasks true` makes
//! the writers async tasks on a two-worker tokio runtime, each awaiting
//! `PersistKvStore::write`, instead of threads calling `Db::put`.
//! Each configuration runs in a fresh database for the given time; keys are
//! 16 bytes, values 100 bytes. Figures go in docs/benchmarks.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strata_kv::kv::PersistKvStore;
use strata_kv::{Db, Durability, Options, WriteBatch};

#[path = "common/flags.rs"]
mod flags;

use flags::{flag, parsed};

fn run(
    dir: &std::path::Path,
    writers: usize,
    durability: Durability,
    secs: f64,
    gather: bool,
    wal_mmap: bool,
    tasks: bool,
) -> (f64, u64) {
    let path = dir.join(format!("w{writers}-{durability:?}"));
    let options = Options::default()
        .durability(durability)
        .gather_synced_writers(gather)
        .wal_mmap(wal_mmap);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    if tasks {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("runtime");
        let (db, start) = runtime.block_on(async {
            let store = PersistKvStore::open_with(&path, options)
                .await
                .expect("open");
            let start = Instant::now();
            let handles: Vec<_> = (0..writers)
                .map(|t| {
                    let (store, stop) = (store.clone(), Arc::clone(&stop));
                    tokio::spawn(async move {
                        let mut i = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            let mut b = WriteBatch::new();
                            b.put(format!("{t:04}{i:012}"), [7u8; 100]);
                            store.write(b).await.expect("write");
                            i += 1;
                        }
                        i
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            stop.store(true, Ordering::Relaxed);
            for h in handles {
                done.fetch_add(h.await.expect("writer task"), Ordering::Relaxed);
            }
            (store.db().clone(), start)
        });
        return finish(db, &path, &done, start);
    }
    let db = Db::open(&path, options).expect("open");
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|t| {
            let (db, stop, done) = (db.clone(), Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || {
                let value = [7u8; 100];
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{t:04}{i:012}");
                    db.put(key.as_bytes(), value).expect("put");
                    i += 1;
                }
                done.fetch_add(i, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer");
    }
    finish(db, &path, &done, start)
}

/// Closes the database and returns writes per second and fdatasyncs.
fn finish(db: Db, path: &std::path::Path, done: &AtomicU64, start: Instant) -> (f64, u64) {
    let elapsed = start.elapsed().as_secs_f64();
    let ops = done.load(Ordering::Relaxed);
    let syncs = db.stats().wal_syncs;
    db.close().expect("close");
    let _ = std::fs::remove_dir_all(path);
    (ops as f64 / elapsed, syncs)
}

fn main() {
    let secs: f64 = parsed("--seconds").unwrap_or(3.0);
    let base = flag("--dir").map(std::path::PathBuf::from);
    let gather: bool = parsed("--gather").unwrap_or(true);
    let wal_mmap: bool = parsed("--wal-mmap").unwrap_or(true);
    let tasks: bool = parsed("--tasks").unwrap_or(false);
    let tmp = tempfile::tempdir_in(base.unwrap_or_else(std::env::temp_dir)).expect("tempdir");
    println!(
        "write throughput, {secs} s per run, in {}, gather_synced_writers({gather}), wal_mmap({wal_mmap}), writers: {}",
        tmp.path().display(),
        if tasks { "async tasks" } else { "threads" }
    );
    println!(
        "{:<10} {:>8} {:>14} {:>12} {:>10}",
        "mode", "writers", "writes/s", "fdatasyncs", "per sync"
    );
    let mut single = 0.0;
    let only: Option<usize> = parsed("--only-sync");
    let configs = [
        (Durability::Sync, 1),
        (Durability::Sync, 4),
        (Durability::Sync, 16),
        (Durability::Buffered, 1),
        (Durability::Buffered, 4),
    ];
    for (durability, writers) in configs
        .into_iter()
        .filter(|(d, w)| only.is_none_or(|o| *d == Durability::Sync && *w == o))
    {
        let (rate, syncs) = run(
            tmp.path(),
            writers,
            durability,
            secs,
            gather,
            wal_mmap,
            tasks,
        );
        if durability == Durability::Sync && writers == 1 {
            single = rate;
        }
        let per_sync = if syncs > 0 {
            rate * secs / syncs as f64
        } else {
            0.0
        };
        println!(
            "{:<10} {:>8} {:>14.0} {:>12} {:>10.1}",
            format!("{durability:?}"),
            writers,
            rate,
            syncs,
            per_sync
        );
        if durability == Durability::Sync && writers == 16 && single > 0.0 {
            println!(
                "           16 synced writers / 1 synced writer = {:.1}x",
                rate / single
            );
        }
    }
}
