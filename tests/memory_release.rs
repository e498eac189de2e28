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

const BUFFER: usize = 48 << 20;

/// Puts from another thread, as a pool or runtime would (glibc keeps the
/// freed chunks in that thread's arena), until the memtable holds `bytes`.
fn load(db: &Db, first: u64, bytes: u64) -> u64 {
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = first;
            while db.stats().memtable_bytes < bytes {
                db.put(format!("key{i:012}"), [i as u8; 100]).expect("put");
                i += 1;
            }
            i
        })
        .join()
        .expect("loader")
    })
}

/// Waits up to 10 s for resident anonymous memory to fall 16 MiB below
/// `from`; returns where it ended.
fn fell_from(from: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = rss_anon();
    while now + (16 << 20) > from && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        now = rss_anon();
    }
    now
}

#[test]
fn flushed_memtables_return_their_pages_even_when_an_iterator_held_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::default()
        .durability(Durability::Buffered)
        .write_buffer_size(BUFFER);
    let db = Db::open(dir.path(), opts).expect("open");

    // Flush holds the last reference: its trim returns the pages.
    let next = load(&db, 0, (BUFFER as u64) * 3 / 4);
    let full = rss_anon();
    db.flush().expect("flush");
    let now = fell_from(full);
    assert!(
        now + (16 << 20) <= full,
        "resident anonymous memory {} MiB with the memtable full, {} MiB after its flush",
        full >> 20,
        now >> 20
    );

    // An iterator keeps the memtable past its flush and frees it when
    // dropped, on this thread, with no trim after it.
    let next = load(&db, next, (BUFFER as u64) * 3 / 4);
    let held = db.iter();
    db.flush().expect("flush");
    drop(held);
    let freed_untrimmed = rss_anon();
    // The next flush's trim returns those pages, though an iterator holds
    // that flush's memtable too.
    load(&db, next, 2 << 20);
    let held = db.iter();
    db.flush().expect("flush");
    let now = fell_from(freed_untrimmed);
    assert!(
        now + (16 << 20) <= freed_untrimmed,
        "resident anonymous memory {} MiB after an iterator freed a flushed memtable, \
         {} MiB after the next flush",
        freed_untrimmed >> 20,
        now >> 20
    );
    drop(held);
    assert_eq!(
        db.get("key000000000007").expect("get").as_deref(),
        Some(&[7u8; 100][..])
    );
}
