//! A flushed memtable's memory goes back to the OS, not only to the heap.
//!
//! Alone in its file: it reads the whole process's resident memory, which
//! other tests running beside it in one process would disturb.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::time::{Duration, Instant};

use strata_kv::{Db, Durability, Options};

/// Resident anonymous memory of this process, in bytes.
fn rss_anon() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("RssAnon in /proc/self/status");
    kib * 1024
}

#[test]
fn a_flushed_memtable_returns_its_pages_to_the_os() {
    const BUFFER: usize = 48 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::default()
        .durability(Durability::Buffered)
        .write_buffer_size(BUFFER);
    let db = Db::open(dir.path(), opts).expect("open");
    // Written from another thread, as a pool or runtime would: glibc keeps
    // the freed chunks in that thread's arena.
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u64;
            while db.stats().memtable_bytes < (BUFFER as u64) * 3 / 4 {
                db.put(format!("key{i:012}"), [i as u8; 100]).expect("put");
                i += 1;
            }
        });
    });
    let full = rss_anon();
    db.flush().expect("flush");
    // The flush thread frees the memtable after it signals the flush done.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = rss_anon();
    while now + (16 << 20) > full && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        now = rss_anon();
    }
    assert!(
        now + (16 << 20) <= full,
        "resident anonymous memory {} MiB with the memtable full, {} MiB after its flush",
        full >> 20,
        now >> 20
    );
    assert_eq!(
        db.get("key000000000007").expect("get").as_deref(),
        Some(&[7u8; 100][..])
    );
}
