//! Single-engine benchmarks of strata-kv (the RocksDB comparison lives in
//! the benches/ crate).
//!
//! ```text
//! cargo run --release --example engine_bench -- fill-read [--num 1000000] [--dir DIR] [--cache-mb 64] [--warm-passes 1]
//! cargo run --release --example engine_bench -- fill-large [--num 5000000] [--dir DIR]
//! cargo run --release --example engine_bench -- memory [--num 1000000]
//! cargo run --release --example engine_bench -- memtable [--num 300000]
//! ```
//! `fill-read`: fillrandom of `num` keys (16-byte keys, 100-byte values that
//! compress to about half), flush, then readrandom and readseq with a warm
//! cache, one thread. `fill-large`: fillrandom with default options (writes
//! buffered, as db_bench's fillrandom), reporting throughput for each tenth
//! of the load, the longest single write, stall time, and write and space
//! amplification after the load. `memory`: the in-memory engine, one
//! thread: puts of `num` random keys, gets, the first full scan (which
//! orders the puts waiting in the point index) and a second one, then
//! overwrites and the snapshot after them (ordering alone). `memtable`:
//! puts of `num` keys into one memtable too large to flush, comparing the
//! process's resident memory growth (Linux `/proc/self/statm`) with the
//! bytes the memtable charges against `write_buffer_size`.

use std::time::{Duration, Instant};

use strata_kv::{Db, Durability, Options};

#[path = "common/flags.rs"]
mod flags;

use flags::{flag, parsed};

struct Args {
    mode: String,
    num: u64,
    dir: Option<std::path::PathBuf>,
    cache_mb: Option<usize>,
    /// Warm readrandom passes (each reported), to see the run-to-run spread.
    warm_passes: usize,
}

fn args() -> Args {
    let mode = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fill-read".into());
    let default_num = match mode.as_str() {
        "fill-large" => 5_000_000,
        "memtable" => 300_000,
        _ => 1_000_000,
    };
    Args {
        num: parsed("--num").unwrap_or(default_num),
        dir: flag("--dir").map(Into::into),
        cache_mb: parsed("--cache-mb"),
        warm_passes: parsed("--warm-passes").unwrap_or(1),
        mode,
    }
}

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(format!("{i:016}").as_bytes());
    k
}

/// 100 bytes: 50 pseudo-random, then 50 repeating, so blocks compress to about half.
fn value(i: u64, out: &mut [u8; 100]) {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for b in out.iter_mut().take(50) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    for (j, b) in out.iter_mut().enumerate().skip(50) {
        *b = b'a' + (j % 7) as u8;
    }
}

fn shuffled(n: u64, seed: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    fastrand::Rng::with_seed(seed).shuffle(&mut v);
    v
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn fill(db: &Db, order: &[u64], tenths: bool) -> (Duration, Duration) {
    let mut v = [0u8; 100];
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    let step = (order.len() / 10).max(1);
    let mut mark = Instant::now();
    for (n, &i) in order.iter().enumerate() {
        value(i, &mut v);
        let t = Instant::now();
        db.put(key(i), v).expect("put");
        slowest = slowest.max(t.elapsed());
        if tenths && (n + 1) % step == 0 {
            let now = Instant::now();
            println!(
                "  {:>3}%  {:>10.0} writes/s  (L0 files {}, stall so far {:.2}s)",
                (n + 1) * 100 / order.len(),
                rate(step as u64, now - mark),
                db.stats().levels[0].files,
                db.stats().stall_time.as_secs_f64()
            );
            mark = now;
        }
    }
    (start.elapsed(), slowest)
}

/// Scans every key, checking there are `num`; returns the time taken.
fn full_scan(db: &Db, num: u64) -> Duration {
    let start = Instant::now();
    let mut n = 0u64;
    for kv in db.iter() {
        let (k, _) = kv.expect("scan");
        n += u64::from(k.len() == 16);
    }
    assert_eq!(n, num);
    start.elapsed()
}

fn memory(a: &Args) {
    let db = Db::open_in_memory(Options::default()).expect("open");
    let order = shuffled(a.num, 1);
    let (took, _) = fill(&db, &order, false);
    println!("puts: {:.0} writes/s", rate(a.num, took));
    let start = Instant::now();
    for &i in &shuffled(a.num, 2) {
        assert!(db.get(key(i)).expect("get").is_some());
    }
    println!("gets: {:.0} reads/s", rate(a.num, start.elapsed()));
    for pass in ["first scan (orders the puts)", "second scan"] {
        let took = full_scan(&db, a.num);
        println!(
            "{pass}: {:.3}s, {:.0} entries/s",
            took.as_secs_f64(),
            rate(a.num, took)
        );
    }
    let (took, _) = fill(&db, &shuffled(a.num, 3), false);
    println!("overwrites: {:.0} writes/s", rate(a.num, took));
    let start = Instant::now();
    let snap = db.snapshot();
    let ordering = start.elapsed();
    println!(
        "snapshot after them: {:.3}s ({:.2} us per key ordered)",
        ordering.as_secs_f64(),
        ordering.as_secs_f64() * 1e6 / a.num as f64
    );
    drop(snap);
    let s = db.stats();
    println!(
        "orderings {} entries ordered {} memory {:.0} MiB",
        s.memory_orderings,
        s.memory_ordered_entries,
        s.memtable_bytes as f64 / (1 << 20) as f64
    );
}

/// Resident set size in bytes (Linux); 0 where `/proc` is missing.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn memtable(a: &Args) {
    let tmp =
        tempfile::tempdir_in(a.dir.clone().unwrap_or_else(std::env::temp_dir)).expect("tempdir");
    let opts = Options::default()
        .durability(Durability::Buffered)
        .write_buffer_size(4 << 30);
    let db = Db::open(tmp.path().join("db"), opts).expect("open");
    let order = shuffled(a.num, 1);
    let before = resident_bytes();
    fill(&db, &order, false);
    let grown = resident_bytes().saturating_sub(before) as f64;
    let charged = db.stats().memtable_bytes as f64;
    let n = a.num as f64;
    println!(
        "resident memory grew {:.1} MiB ({:.0} B per entry); the memtable charges {:.1} MiB ({:.0} B per entry): real / charged = {:.2}",
        grown / f64::from(1 << 20),
        grown / n,
        charged / f64::from(1 << 20),
        charged / n,
        grown / charged
    );
}

fn main() {
    let a = args();
    if a.mode == "memtable" {
        println!("engine_bench memtable num={}", a.num);
        memtable(&a);
        return;
    }
    if a.mode == "memory" {
        println!("engine_bench memory num={}", a.num);
        memory(&a);
        return;
    }
    let tmp =
        tempfile::tempdir_in(a.dir.clone().unwrap_or_else(std::env::temp_dir)).expect("tempdir");
    let path = tmp.path().join("db");
    let mut opts = Options::default().durability(Durability::Buffered);
    if let Some(mb) = a.cache_mb {
        opts = opts.block_cache_size(mb << 20);
    }
    if let Ok(r) = std::env::var("RESTART") {
        opts = opts.block_restart_interval(r.parse().expect("restart interval"));
    }
    println!(
        "engine_bench {} num={} dir={}",
        a.mode,
        a.num,
        path.display()
    );
    println!("options: {opts:?}");
    let db = Db::open(&path, opts).expect("open");
    let order = shuffled(a.num, 1);
    let logical = a.num * (16 + 100);
    match a.mode.as_str() {
        "fill-large" => {
            let (took, slowest) = fill(&db, &order, true);
            let s = db.stats();
            println!(
                "fillrandom: {:.0} writes/s over {:.1}s",
                rate(a.num, took),
                took.as_secs_f64()
            );
            println!("  longest single write: {:.3}s", slowest.as_secs_f64());
            println!("  stall time: {:.2}s", s.stall_time.as_secs_f64());
            println!(
                "  write amplification (flush+compaction / user bytes): {:.2}",
                s.write_amplification
            );
            println!(
                "  space amplification (table bytes / {} logical bytes): {:.2}  [engine estimate {:.2}]",
                logical,
                s.table_bytes as f64 / logical as f64,
                s.space_amplification
            );
            println!(
                "  flushes {} compactions {} trivial moves {}",
                s.flushes, s.compactions, s.trivial_moves
            );
            for (l, ls) in s.levels.iter().enumerate().filter(|(_, l)| l.files > 0) {
                println!(
                    "  L{l}: {} files, {:.1} MiB",
                    ls.files,
                    ls.bytes as f64 / (1 << 20) as f64
                );
            }
        }
        _ => {
            let (took, _) = fill(&db, &order, false);
            println!("fillrandom: {:.0} writes/s", rate(a.num, took));
            db.flush().expect("flush");
            // Let background compaction settle, as db_bench's read phases do after a load.
            let settle = Instant::now();
            while settle.elapsed() < Duration::from_secs(60)
                && db.stats().pending_compaction_bytes > 0
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            let reads = shuffled(a.num, 2);
            let passes = std::iter::once("readrandom (cold)")
                .chain(std::iter::repeat_n("readrandom (warm)", a.warm_passes));
            for pass in passes {
                let start = Instant::now();
                let mut found = 0u64;
                for &i in &reads {
                    if let Some(v) = db.get(key(i)).expect("get") {
                        found += u64::from(v.len() == 100);
                    }
                }
                assert_eq!(found, a.num, "every key reads back");
                println!("{pass}: {:.0} reads/s", rate(a.num, start.elapsed()));
            }
            for pass in ["readseq (cold)", "readseq (warm)"] {
                let took = full_scan(&db, a.num);
                println!("{pass}: {:.0} entries/s", rate(a.num, took));
            }
            let s = db.stats();
            println!(
                "levels: {:?}",
                s.levels.iter().map(|l| l.files).collect::<Vec<_>>()
            );
        }
    }
}
