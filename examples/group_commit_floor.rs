//! The most any group commit can gain on this disk and these CPUs: a
//! group commit with no engine in it, against a lone synced writer.
//!
//! ```text
//! cargo run --release --example group_commit_floor [-- --writers 16 --cycles 4000 --rounds 3
//!     --work-us 0 --file zeros|fallocate|append --dir /path/on/the/disk]
//! ```
//! A round runs two loops on a fresh file. Alone: one thread appends a
//! 130-byte record and calls fdatasync, again and again (a lone synced
//! writer, which never sleeps on another thread). Grouped: `--writers`
//! threads do nothing but come back; when the last is back, a leader
//! appends one record for each in a single write, calls fdatasync and wakes
//! them all (a flat wake, one futex per thread), as a perfect group commit
//! would: every writer in every group, no queue, no memtable, no encoding.
//! `--file` says how the file is prepared: `zeros` (the default) writes
//! and syncs zeros first, so that appends overwrite written blocks inside
//! the file's size and fdatasync has no metadata to write; `fallocate`
//! reserves the space as the engine does for its WAL (the blocks are
//! allocated but unwritten, so a sync also records which became written);
//! `append` grows an empty file (each sync also records the new size).
//! `--work-us N` makes each writer spin N µs before coming back, standing
//! in for an engine's work per write. The ratio grouped / alone is the
//! ceiling for `write_throughput`'s "16 synced writers / 1 synced writer".

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

#[path = "common/flags.rs"]
mod flags;

use flags::{flag, parsed};

const RECORD: usize = 130;

/// How the test file is prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    Zeros,
    Fallocate,
    Append,
}

impl std::str::FromStr for Setup {
    type Err = String;

    fn from_str(s: &str) -> Result<Setup, String> {
        match s {
            "zeros" => Ok(Setup::Zeros),
            "fallocate" => Ok(Setup::Fallocate),
            "append" => Ok(Setup::Append),
            other => Err(format!(
                "--file {other}: expected zeros, fallocate or append"
            )),
        }
    }
}

/// What the leader and the writers share.
struct Group {
    /// Writers back since the last wake-up.
    back: AtomicUsize,
    /// Bumped by the leader each time it wakes the writers.
    epoch: AtomicU64,
    stop: AtomicBool,
    leader: Thread,
}

/// The test file, and where the next append goes.
struct Log {
    file: File,
    at: u64,
}

impl Log {
    /// A new file, prepared for `bytes` of appends as `setup` says.
    fn create(path: &Path, setup: Setup, bytes: usize) -> Log {
        let mut file = File::options()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path)
            .expect("open the test file");
        if setup == Setup::Fallocate {
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, bytes as u64)
                .expect("fallocate");
            file.sync_all().expect("sync the reservation");
        }
        if setup == Setup::Zeros {
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..bytes.div_ceil(zeros.len()) {
                file.write_all(&zeros).expect("prefill");
            }
            file.sync_all().expect("sync the prefill");
        }
        Log { file, at: 0 }
    }

    fn append(&mut self, data: &[u8]) {
        self.file.write_all_at(data, self.at).expect("write");
        self.at += data.len() as u64;
    }
}

/// Writes per second of one thread appending a record and syncing it.
fn alone(path: &Path, cycles: usize, setup: Setup) -> f64 {
    let mut log = Log::create(path, setup, RECORD * cycles);
    let record = [7u8; RECORD];
    let start = Instant::now();
    for _ in 0..cycles {
        log.append(&record);
        log.file.sync_data().expect("fdatasync");
    }
    cycles as f64 / start.elapsed().as_secs_f64()
}

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn writer(group: &Group, writers: usize, work: Duration) {
    let mut seen = group.epoch.load(Ordering::Acquire);
    loop {
        spin(work);
        if group.back.fetch_add(1, Ordering::AcqRel) + 1 == writers {
            group.leader.unpark();
        }
        loop {
            thread::park();
            let now = group.epoch.load(Ordering::Acquire);
            if now != seen {
                seen = now;
                break;
            }
        }
        if group.stop.load(Ordering::Acquire) {
            return;
        }
    }
}

/// Writes per second of `writers` threads committed in full groups.
fn grouped(path: &Path, writers: usize, cycles: usize, work: Duration, setup: Setup) -> f64 {
    let mut log = Log::create(path, setup, RECORD * writers * cycles);
    let group = Arc::new(Group {
        back: AtomicUsize::new(0),
        epoch: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        leader: thread::current(),
    });
    let handles: Vec<_> = (0..writers)
        .map(|_| {
            let group = Arc::clone(&group);
            thread::spawn(move || writer(&group, writers, work))
        })
        .collect();
    let threads: Vec<Thread> = handles.iter().map(|h| h.thread().clone()).collect();
    let records = vec![7u8; RECORD * writers];
    let mut start = Instant::now();
    for cycle in 0..=cycles {
        while group.back.load(Ordering::Acquire) < writers {
            thread::park();
        }
        if cycle == 0 {
            // Time from the moment every writer first came back.
            start = Instant::now();
        }
        group.back.store(0, Ordering::Release);
        if cycle == cycles {
            group.stop.store(true, Ordering::Release);
        } else {
            log.append(&records);
            log.file.sync_data().expect("fdatasync");
        }
        group.epoch.fetch_add(1, Ordering::AcqRel);
        for t in &threads {
            t.unpark();
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    for h in handles {
        h.join().expect("writer thread");
    }
    (writers * cycles) as f64 / elapsed
}

fn main() {
    let writers: usize = parsed("--writers").unwrap_or(16);
    let cycles: usize = parsed("--cycles").unwrap_or(4000);
    let rounds: usize = parsed("--rounds").unwrap_or(3);
    let work = Duration::from_micros(parsed("--work-us").unwrap_or(0));
    let setup: Setup = parsed("--file").unwrap_or(Setup::Zeros);
    let dir = flag("--dir").map(PathBuf::from);
    let tmp = tempfile::tempdir_in(dir.unwrap_or_else(std::env::temp_dir)).expect("tempdir");
    let path = tmp.path().join("floor.log");
    println!(
        "group commit floor in {}: {writers} writers, {cycles} syncs per loop, {} µs of work per write, file: {setup:?}",
        tmp.path().display(),
        work.as_micros()
    );
    println!(
        "{:>5} {:>16} {:>18} {:>8}",
        "round", "alone writes/s", "grouped writes/s", "ratio"
    );
    for round in 1..=rounds {
        let one = alone(&path, cycles, setup);
        let many = grouped(&path, writers, cycles, work, setup);
        println!("{round:>5} {one:>16.0} {many:>18.0} {:>7.1}x", many / one);
    }
}
