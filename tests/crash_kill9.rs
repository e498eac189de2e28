//! Crash safety by crashing: the kill -9 stress test.
//!
//! A child process runs writer threads, each doing a random mix of puts,
//! deletes and multi-key batches (some synced, some buffered) on its own
//! keys, while one of them also flushes and compacts; the last writer is an
//! async task instead, writing buffered through `PersistKvStore::write`
//! (which commits on its own thread when nothing else is in flight, and
//! through the commit thread otherwise). Every operation is
//! acknowledged on stdout once it returns. The parent SIGKILLs the child at
//! a random moment, reopens the database and checks each writer's keys
//! against a model: the state must be exactly the model after every
//! acknowledged operation, plus perhaps the one in flight, whole or not at
//! all. (A process crash loses nothing handed to the OS, so buffered writes
//! must survive too; power loss is `power_cycles.rs`.) The next cycle
//! continues on the same database, so damage would show later as well.
//!
//! The operations are a pure function of (seed, cycle, writer): the parent
//! regenerates them rather than trusting the child's report of them.
//!
//! `STRATA_KILL9_CYCLES` sets the number of cycles (default 30);
//! `STRATA_KILL9_SEED` replays a run. This file has its own `main`
//! (`harness = false`): the same binary is both parent and child.
//! Long run: `STRATA_KILL9_CYCLES=1000 cargo test --release --test crash_kill9`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_kv::kv::PersistKvStore;
use strata_kv::{Db, Durability, Options, WriteBatch};

const CHILD_DIR: &str = "STRATA_KILL9_CHILD_DIR";
const CHILD_CYCLE: &str = "STRATA_KILL9_CHILD_CYCLE";
const CHILD_SEED: &str = "STRATA_KILL9_CHILD_SEED";
const WRITERS: usize = 4;
/// The writer that is an async task (the others are threads).
const ASYNC_WRITER: usize = WRITERS - 1;
/// Keys per writer: small, so operations overwrite and delete each other's work.
const KEYS: u32 = 400;

fn options(cycle: u64) -> Options {
    // Small buffers so children also flush and compact while being killed.
    // Odd cycles append to the WAL with write calls instead of through the
    // map, so both ways of appending are crashed.
    Options::default()
        .write_buffer_size(64 << 10)
        .target_file_size(64 << 10)
        .wal_mmap(cycle.is_multiple_of(2))
}

fn key(writer: usize, k: u32) -> String {
    format!("w{writer}:k{k:04}")
}

/// One operation of a writer. Flushes and compactions change nothing visible.
#[derive(Debug, Clone)]
enum Op {
    Put(u32, Vec<u8>),
    Delete(u32),
    /// Puts (`Some`) and deletes (`None`), all or nothing.
    Batch(Vec<(u32, Option<Vec<u8>>)>),
    Flush,
    Compact(u32, u32),
}

/// The operations of `writer` in `cycle`, with each one's durability.
struct Ops {
    rng: fastrand::Rng,
    cycle: u64,
    writer: usize,
    index: u64,
}

impl Ops {
    fn new(seed: u64, cycle: u64, writer: usize) -> Ops {
        let mixed = seed ^ cycle.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (writer as u64) << 56;
        Ops {
            rng: fastrand::Rng::with_seed(mixed),
            cycle,
            writer,
            index: 0,
        }
    }

    fn value(&mut self) -> Vec<u8> {
        let mut v = format!("c{}w{}i{}:", self.cycle, self.writer, self.index).into_bytes();
        let filler = self.rng.usize(0..300);
        v.resize(v.len() + filler, b'a' + (self.index % 26) as u8);
        v
    }

    fn next_op(&mut self) -> (Op, Durability) {
        let durability = if self.rng.u8(..4) == 0 {
            Durability::Buffered
        } else {
            Durability::Sync
        };
        let roll = self.rng.u32(..100);
        let op = match roll {
            0..=44 => {
                let k = self.rng.u32(..KEYS);
                Op::Put(k, self.value())
            }
            45..=64 => Op::Delete(self.rng.u32(..KEYS)),
            65..=96 => {
                let n = self.rng.usize(2..8);
                let ops = (0..n)
                    .map(|_| {
                        let k = self.rng.u32(..KEYS);
                        let v = (self.rng.u8(..4) != 0).then(|| self.value());
                        (k, v)
                    })
                    .collect();
                Op::Batch(ops)
            }
            // Only writer 0 flushes and compacts; for the others these are puts.
            97 if self.writer == 0 => Op::Flush,
            98 | 99 if self.writer == 0 => {
                let a = self.rng.u32(..KEYS);
                let b = self.rng.u32(a..KEYS);
                Op::Compact(a, b)
            }
            _ => {
                let k = self.rng.u32(..KEYS);
                Op::Put(k, self.value())
            }
        };
        self.index += 1;
        (op, durability)
    }
}

type Model = BTreeMap<u32, Vec<u8>>;

fn apply(model: &mut Model, op: &Op) {
    match op {
        Op::Put(k, v) => {
            model.insert(*k, v.clone());
        }
        Op::Delete(k) => {
            model.remove(k);
        }
        Op::Batch(ops) => {
            for (k, v) in ops {
                match v {
                    Some(v) => model.insert(*k, v.clone()),
                    None => model.remove(k),
                };
            }
        }
        Op::Flush | Op::Compact(..) => {}
    }
}

/// The write `op` makes (`None` for a flush or a compaction).
fn batch_of(writer: usize, op: &Op) -> Option<WriteBatch> {
    let mut b = WriteBatch::new();
    match op {
        Op::Put(k, v) => b.put(key(writer, *k), v),
        Op::Delete(k) => b.delete(key(writer, *k)),
        Op::Batch(ops) => {
            for (k, v) in ops {
                match v {
                    Some(v) => b.put(key(writer, *k), v),
                    None => b.delete(key(writer, *k)),
                }
            }
        }
        Op::Flush | Op::Compact(..) => return None,
    }
    Some(b)
}

fn execute(db: &Db, writer: usize, op: &Op, durability: Durability) {
    match (op, batch_of(writer, op)) {
        (_, Some(b)) => db.write_with(b, durability).map(|_| ()).expect("write"),
        (Op::Flush, None) => db.flush().expect("flush"),
        (Op::Compact(a, b), None) => db
            .compact_range(key(writer, *a)..=key(writer, *b))
            .expect("compact"),
        (_, None) => unreachable!("only flushes and compactions write nothing"),
    }
}

/// Writes one acknowledgement line.
fn ack(out: &Mutex<std::io::Stdout>, writer: usize, i: u64) {
    let mut o = out.lock().expect("stdout lock");
    writeln!(o, "ACK {writer} {i}").expect("stdout");
    o.flush().expect("stdout");
}

/// The child: writers run their operations forever, acknowledging each.
fn child(dir: &str, seed: u64, cycle: u64) -> ! {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // The store's own durability is the async writer's; the threads choose
    // per write.
    let opened = PersistKvStore::open_with(dir, options(cycle).durability(Durability::Buffered));
    let store = runtime.block_on(opened).expect("child open");
    let db = store.db().clone();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let mut handles: Vec<_> = (0..ASYNC_WRITER)
        .map(|w| {
            let (db, out) = (db.clone(), Arc::clone(&out));
            std::thread::spawn(move || {
                let mut ops = Ops::new(seed, cycle, w);
                for i in 0u64.. {
                    let (op, durability) = ops.next_op();
                    execute(&db, w, &op, durability);
                    ack(&out, w, i);
                }
            })
        })
        .collect();
    handles.push(std::thread::spawn(move || {
        runtime.block_on(async {
            let w = ASYNC_WRITER;
            let mut ops = Ops::new(seed, cycle, w);
            for i in 0u64.. {
                let (op, _) = ops.next_op();
                let b = batch_of(w, &op).expect("only writer 0 flushes or compacts");
                store.write(b).await.expect("async write");
                ack(&out, w, i);
            }
        })
    }));
    for h in handles {
        let _ = h.join();
    }
    unreachable!("writers never stop")
}

/// Each writer's keys as the reopened database has them.
fn observed(db: &Db) -> Vec<Model> {
    let mut out = vec![Model::new(); WRITERS];
    for item in db.iter() {
        let (k, v) = item.expect("scan");
        let k = std::str::from_utf8(&k).expect("utf8 key");
        let (w, n) = k
            .strip_prefix('w')
            .and_then(|r| r.split_once(":k"))
            .expect("key shape");
        let w: usize = w.parse().expect("writer");
        out[w].insert(n.parse().expect("key number"), v.to_vec());
    }
    out
}

fn parent() {
    let cycles: u64 = common::env_u64("STRATA_KILL9_CYCLES").unwrap_or(30);
    let seed: u64 = common::env_u64("STRATA_KILL9_SEED").unwrap_or_else(|| fastrand::u64(..));
    println!("kill -9 stress: {cycles} cycles, {WRITERS} writers, seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let db_dir = dir.path().join("db");
    let exe = std::env::current_exe().expect("current exe");
    let mut models = vec![Model::new(); WRITERS];
    let (mut acked_total, mut in_flight_applied) = (0u64, 0u64);
    let started = Instant::now();
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .env(CHILD_DIR, &db_dir)
            .env(CHILD_CYCLE, cycle.to_string())
            .env(CHILD_SEED, seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        // Operations acknowledged per writer (last index + 1).
        let acked: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(vec![0; WRITERS]));
        let seen = Arc::clone(&acked);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split(' ');
                if let (Some("ACK"), Some(w), Some(i)) = (parts.next(), parts.next(), parts.next())
                {
                    let (w, i): (usize, u64) = (w.parse().expect("w"), i.parse().expect("i"));
                    seen.lock().expect("lock")[w] = i + 1;
                }
            }
        });
        // Let it start writing, then kill it at a random moment.
        let wait_start = Instant::now();
        while acked.lock().expect("lock").iter().all(|&n| n == 0)
            && wait_start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..200)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap child");
        reader.join().expect("reader");
        let acked = acked.lock().expect("lock").clone();

        let db = Db::open(&db_dir, options(cycle)).expect("reopen after kill -9");
        let seen = observed(&db);
        for w in 0..WRITERS {
            let mut ops = Ops::new(seed, cycle, w);
            let mut model = models[w].clone();
            for _ in 0..acked[w] {
                apply(&mut model, &ops.next_op().0);
            }
            if seen[w] == model {
                models[w] = model;
                continue;
            }
            // The operation in flight at the kill may have committed.
            let (next, _) = ops.next_op();
            apply(&mut model, &next);
            assert!(
                seen[w] == model,
                "seed {seed} cycle {cycle} writer {w}: after {} acknowledged operations the \
                 state is neither that prefix nor the next (in flight: {next:?})",
                acked[w]
            );
            models[w] = model;
            in_flight_applied += 1;
        }
        acked_total += acked.iter().sum::<u64>();
        if cycle % 10 == 9 || cycle + 1 == cycles {
            let report = db.verify().expect("verify");
            assert!(report.is_ok(), "cycle {cycle}: {:?}", report.problems);
        }
        db.close().expect("close");
    }
    println!(
        "kill -9 stress: {cycles} cycles passed, {acked_total} acknowledged operations checked, \
         {in_flight_applied} in-flight operations found committed, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    if let (Ok(dir), Ok(cycle), Ok(seed)) = (
        std::env::var(CHILD_DIR),
        std::env::var(CHILD_CYCLE),
        std::env::var(CHILD_SEED),
    ) {
        child(
            &dir,
            seed.parse().expect("seed"),
            cycle.parse().expect("cycle"),
        );
    }
    parent();
}
