//! The disk's fdatasync latency, alone and with other threads waking up:
//! the floor under group commit, measured without the engine.
//!
//! ```text
//! cargo run --release --example sync_latency [-- --syncs 5000 --pairs 8 --dir /path/on/the/disk]
//! ```
//! One thread appends 130-byte records to a file and calls fdatasync after
//! each, as a lone synced writer does. It runs twice: alone, then while
//! `--pairs` pairs of threads wake each other through a condition variable
//! every ~100 µs, the scheduling traffic that the woken writers of a
//! group-commit cycle make. The appender does the same I/O both times; what
//! changes is only how busy the other vCPUs and the scheduler are.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[path = "common/flags.rs"]
mod flags;

use flags::{flag, parsed};

const RECORD: usize = 130;
const NAP: Duration = Duration::from_micros(100);

struct Args {
    syncs: usize,
    pairs: usize,
    dir: Option<PathBuf>,
}

fn args() -> Args {
    Args {
        syncs: parsed("--syncs").unwrap_or(5000),
        pairs: parsed("--pairs").unwrap_or(8),
        dir: flag("--dir").map(PathBuf::from),
    }
}

/// Two threads that take turns waking each other until `stop`.
fn ping_pong(stop: Arc<AtomicBool>) -> [JoinHandle<()>; 2] {
    let turn = Arc::new((Mutex::new(false), Condvar::new()));
    let side = |mine: bool| {
        let (turn, stop) = (Arc::clone(&turn), Arc::clone(&stop));
        std::thread::spawn(move || {
            let (flag, cv) = &*turn;
            while !stop.load(Ordering::Relaxed) {
                let mut t = flag.lock().expect("lock");
                while *t != mine && !stop.load(Ordering::Relaxed) {
                    t = cv
                        .wait_timeout(t, Duration::from_millis(5))
                        .expect("wait")
                        .0;
                }
                *t = !mine;
                cv.notify_one();
                drop(t);
                std::thread::sleep(NAP);
            }
        })
    };
    [side(true), side(false)]
}

/// Appends and syncs `syncs` records; returns the mean cycle and the sync
/// latencies' p50 / p90 / p99, in microseconds.
fn appender(file: &File, syncs: usize) -> (f64, [u128; 3]) {
    let record = [0x5a_u8; RECORD];
    let mut latencies = Vec::with_capacity(syncs);
    let start = Instant::now();
    for i in 0..syncs {
        file.write_at(&record, (i * RECORD) as u64).expect("write");
        let t = Instant::now();
        file.sync_data().expect("fdatasync");
        latencies.push(t.elapsed().as_micros());
    }
    let mean = start.elapsed().as_secs_f64() * 1e6 / syncs as f64;
    latencies.sort_unstable();
    let at = |q: usize| latencies.get(syncs * q / 100).copied().unwrap_or(0);
    (mean, [at(50), at(90), at(99)])
}

fn main() {
    let a = args();
    let tmp =
        tempfile::tempdir_in(a.dir.clone().unwrap_or_else(std::env::temp_dir)).expect("tempdir");
    println!(
        "sync latency, {} syncs of {RECORD}-byte appends per row, in {}",
        a.syncs,
        tmp.path().display()
    );
    println!("busy threads   cycle µs   sync p50   p90   p99");
    for pairs in [0, a.pairs, 0, a.pairs] {
        let file = File::create(tmp.path().join(format!("log-{pairs}"))).expect("create");
        let stop = Arc::new(AtomicBool::new(false));
        let busy: Vec<_> = (0..pairs)
            .flat_map(|_| ping_pong(Arc::clone(&stop)))
            .collect();
        let (mean, [p50, p90, p99]) = appender(&file, a.syncs);
        stop.store(true, Ordering::Relaxed);
        for h in busy {
            h.join().expect("join");
        }
        println!(
            "{:>12}   {mean:>8.1}   {p50:>8}   {p90:>3}   {p99:>3}",
            2 * pairs
        );
    }
}
