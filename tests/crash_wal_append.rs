//! A process killed in the middle of a WAL append leaves a prefix of what
//! it appended, never a hole before later bytes.
//!
//! A child appends records of many sizes to log files through the real
//! file system's mapped appends (with a thread syncing every 200 µs, as the
//! periodic syncer does), every eighth append instead as a synced group's
//! (`append_and_sync`: a `write` call, with zeros written ahead of the
//! tail), while the parent SIGKILLs it at random moments. Each file must
//! then read as a prefix of the child's byte stream followed only by zeros
//! (the stream has no zero bytes). A `memcpy` into the map
//! failed within 0 to 28 cycles in each of eight runs: it may store an
//! append's end before its start, and recovery would read the hole as
//! corruption mid-WAL. The child reports whether its appends are mapped,
//! and the test insists on it where the engine maps (ext4, XFS, tmpfs).
//!
//! `STRATA_WAL_KILL_CYCLES` sets the number of kills (default 60). This
//! file has its own `main` (`harness = false`): the same binary is both
//! parent and child.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use strata_kv::fs::{FileSystem, RealFs, WritableFile};

const CHILD_DIR: &str = "STRATA_WAL_KILL_CHILD_DIR";
const CHILD_SEED: &str = "STRATA_WAL_KILL_CHILD_SEED";
/// Space reserved per file: crosses the 1 MiB map windows.
const RESERVED: u64 = 3 << 20;

/// The child's appends to file `file`: sizes and bytes, none of them zero.
fn appends(seed: u64, file: u64) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(seed ^ file.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut total = 0u64;
    std::iter::from_fn(move || {
        let n = match rng.u8(..8) {
            0 => rng.usize(1..64),
            1..=5 => rng.usize(64..8192),
            6 => 2000,
            _ => rng.usize(8192..300_000),
        };
        let n = n.min((RESERVED - total) as usize);
        if n == 0 {
            return None;
        }
        total += n as u64;
        Some((0..n).map(|_| rng.u8(1..)).collect())
    })
}

fn file_path(dir: &Path, file: u64) -> PathBuf {
    dir.join(format!("{file:06}.wal"))
}

/// True if this process has a file of `dir` mapped.
fn maps_a_file_in(dir: &Path) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .any(|l| l.contains(dir.to_string_lossy().as_ref()))
}

/// True where the engine maps WAL appends (ext4, XFS, tmpfs on Linux), so
/// the test must see a map there rather than pass on `write` calls alone.
fn maps_expected(dir: &Path) -> bool {
    const EXT4: u64 = 0xEF53;
    const XFS: u64 = 0x5846_5342;
    const TMPFS: u64 = 0x0102_1994;
    rustix::fs::statfs(dir)
        .ok()
        .and_then(|st| u64::try_from(st.f_type).ok())
        .is_some_and(|kind| matches!(kind, EXT4 | XFS | TMPFS))
}

fn child(dir: &Path, seed: u64) {
    let fs = RealFs::new();
    let parent = std::os::unix::process::parent_id();
    for file in 0u64.. {
        // Never outlive the parent: an orphan would fill the disk.
        if std::os::unix::process::parent_id() != parent {
            return;
        }
        let f: Arc<dyn WritableFile> = fs.create(&file_path(dir, file)).expect("create");
        f.preallocate_mapped(RESERVED).expect("preallocate");
        let syncing = Arc::clone(&f);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let syncer = std::thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = syncing.sync();
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        for (i, data) in appends(seed, file).enumerate() {
            if i % 8 == 7 {
                f.append_and_sync(&data).expect("append and sync");
            } else {
                f.append(&data).expect("append");
            }
            if file == 0 && i == 0 {
                let how = if maps_a_file_in(dir) {
                    "mapped"
                } else {
                    "written"
                };
                println!("STARTED {how}");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        syncer.join().expect("syncer");
    }
}

/// Checks every file the child made: the stream's prefix, then zeros.
/// `seed` is the child's; `replay` the run's (printed on failure).
fn check(dir: &Path, seed: u64, cycle: u64, replay: u64) {
    for file in 0u64.. {
        let path = file_path(dir, file);
        let Ok(bytes) = std::fs::read(&path) else {
            assert!(file > 0, "cycle {cycle}: the child made no file");
            return;
        };
        let stream: Vec<u8> = appends(seed, file).flatten().collect();
        let kept = bytes
            .iter()
            .zip(&stream)
            .take_while(|(a, b)| a == b)
            .count();
        let after = bytes.get(kept..).unwrap_or_default();
        if let Some(bad) = after.iter().position(|&b| b != 0) {
            panic!(
                "cycle {cycle}, {}: the first {kept} bytes are the stream's, then a byte \
                 at {} is neither the stream's nor zero (STRATA_WAL_KILL_SEED={replay})",
                path.display(),
                kept + bad
            );
        }
        std::fs::remove_file(&path).expect("remove");
    }
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let seed = std::env::var(CHILD_SEED)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        child(Path::new(&dir), seed);
        return;
    }
    let cycles: u64 = common::env_u64("STRATA_WAL_KILL_CYCLES").unwrap_or(60);
    let seed: u64 = common::env_u64("STRATA_WAL_KILL_SEED").unwrap_or_else(|| fastrand::u64(..));
    let probe = tempfile::tempdir().expect("tempdir");
    let mapping = maps_expected(probe.path());
    if !mapping {
        println!("WAL append kills: this file system gets no mapped appends; testing writes");
    }
    println!("WAL append kills: {cycles} cycles, seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let exe = std::env::current_exe().expect("current exe");
    for cycle in 0..cycles {
        let dir = tempfile::tempdir().expect("tempdir");
        let child_seed = rng.u64(..);
        let mut child = Command::new(&exe)
            .env(CHILD_DIR, dir.path())
            .env(CHILD_SEED, child_seed.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("child stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("child output");
        let expected = if mapping {
            "STARTED mapped"
        } else {
            "STARTED written"
        };
        assert_eq!(line.trim(), expected, "cycle {cycle}");
        std::thread::sleep(Duration::from_micros(rng.u64(0..20_000)));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap child");
        assert_eq!(
            status.signal(),
            Some(9),
            "cycle {cycle}: the child ended before the kill: {status}"
        );
        check(dir.path(), child_seed, cycle, seed);
    }
    println!("WAL append kills: {cycles} cycles passed");
}
