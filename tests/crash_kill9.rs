//! Crash safety by crashing: a child process writes synced batches and
//! reports each acknowledged one on stdout; the parent SIGKILLs it at a
//! random moment, reopens the database and checks that every acknowledged
//! batch is there and that no batch is partly visible.
//!
//! `STRATA_KILL9_CYCLES` sets the number of cycles (default 30);
//! `STRATA_KILL9_SEED` replays a run. This file has its own `main`
//! (`harness = false`): the same binary is both parent and child.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_kv::{Db, Options, WriteBatch};

const CHILD_DIR: &str = "STRATA_KILL9_CHILD_DIR";
const CHILD_CYCLE: &str = "STRATA_KILL9_CHILD_CYCLE";
const WIDTH: usize = 4;

fn key(cycle: u64, batch: u64, j: usize) -> String {
    format!("c{cycle:04}:b{batch:06}:{j}")
}

fn options() -> Options {
    // Small buffers so children also flush and compact while being killed.
    Options::default()
        .write_buffer_size(64 << 10)
        .target_file_size(64 << 10)
}

/// The child: write synced batches forever, acknowledging each on stdout.
fn child(dir: &str, cycle: u64) -> ! {
    let db = Db::open(dir, options()).expect("child open");
    let mut out = std::io::stdout().lock();
    let filler = vec![b'x'; 200];
    for i in 0u64.. {
        let mut b = WriteBatch::new();
        for j in 0..WIDTH {
            let mut v = i.to_le_bytes().to_vec();
            v.extend_from_slice(&filler);
            b.put(key(cycle, i, j), v);
        }
        db.write(b).expect("child write");
        writeln!(out, "ACK {i}").expect("stdout");
        out.flush().expect("stdout");
    }
    unreachable!()
}

/// Batches present per cycle, each batch with how many of its keys are present.
type Census = BTreeMap<u64, BTreeMap<u64, usize>>;

/// One scan of the reopened database.
fn census(db: &Db) -> Census {
    let mut out = Census::new();
    for item in db.iter() {
        let (k, _) = item.expect("scan");
        let k = std::str::from_utf8(&k).expect("utf8 key");
        let mut parts = k.split(':');
        let (Some(c), Some(b)) = (parts.next(), parts.next()) else {
            panic!("bad key {k}")
        };
        let c: u64 = c[1..].parse().expect("cycle");
        let b: u64 = b[1..].parse().expect("batch");
        *out.entry(c).or_default().entry(b).or_default() += 1;
    }
    out
}

/// Checks one cycle: batches `0..k` whole and nothing else, with
/// `k > last_acked`. Returns `k`.
fn check_cycle(census: &Census, cycle: u64, last_acked: Option<u64>) -> u64 {
    let empty = BTreeMap::new();
    let batches = census.get(&cycle).unwrap_or(&empty);
    for (b, n) in batches {
        assert_eq!(*n, WIDTH, "cycle {cycle}: batch {b} partly visible");
    }
    let present = batches.len() as u64;
    assert!(
        batches.keys().copied().eq(0..present),
        "cycle {cycle}: batches present are not a prefix"
    );
    if let Some(acked) = last_acked {
        assert!(
            present > acked,
            "cycle {cycle}: acknowledged batch {acked} lost ({present} present)"
        );
        assert!(
            present <= acked + 2,
            "cycle {cycle}: {present} present, only {acked} acknowledged"
        );
    }
    present
}

fn parent() {
    let cycles: u64 = std::env::var("STRATA_KILL9_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("STRATA_KILL9_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("kill -9 test: {cycles} cycles, seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let db_dir = dir.path().join("db");
    let exe = std::env::current_exe().expect("current exe");
    let mut settled: BTreeMap<u64, u64> = BTreeMap::new();
    let started = Instant::now();
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .env(CHILD_DIR, &db_dir)
            .env(CHILD_CYCLE, cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let acked: Arc<Mutex<Option<u64>>> = Arc::default();
        let seen = Arc::clone(&acked);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ACK ") {
                    *seen.lock().expect("lock") = n.parse().ok();
                }
            }
        });
        // Let it start writing, then kill it at a random moment.
        let wait_start = Instant::now();
        while acked.lock().expect("lock").is_none()
            && wait_start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..150)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap child");
        reader.join().expect("reader");
        let last_acked = *acked.lock().expect("lock");

        let db = Db::open(&db_dir, options()).expect("reopen after kill -9");
        let census = census(&db);
        let present = check_cycle(&census, cycle, last_acked);
        for (&c, &n) in &settled {
            assert_eq!(
                check_cycle(&census, c, None),
                n,
                "cycle {c} changed after a later crash"
            );
        }
        settled.insert(cycle, present);
        db.close().expect("close");
    }
    let total: u64 = settled.values().sum();
    println!(
        "kill -9 test: {cycles} cycles passed, {total} batches checked, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    if let (Ok(dir), Ok(cycle)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_CYCLE)) {
        child(&dir, cycle.parse().expect("cycle"));
    }
    parent();
}
