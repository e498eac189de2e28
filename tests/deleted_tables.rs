//! A table file deleted by compaction gives its disk space back once no
//! reader holds it: blocks of it left in the block cache must not keep the
//! deleted file mapped.

#![cfg(target_os = "linux")]

use strata_kv::{Compression, Db, Durability, Options};

/// Mapped files of this process that were deleted, under `dir`.
fn deleted_mappings(dir: &std::path::Path) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    let dir = dir.to_string_lossy().into_owned();
    let mut found: Vec<String> = maps
        .lines()
        .filter(|l| l.contains(&dir) && l.ends_with("(deleted)"))
        .filter_map(|l| l.split_whitespace().nth(5).map(str::to_owned))
        .collect();
    found.dedup();
    found
}

#[test]
fn compacted_away_tables_are_unmapped_though_their_blocks_were_cached() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("db");
    // Uncompressed blocks of mapped tables are cached as views of the map.
    let opts = Options::default()
        .durability(Durability::Buffered)
        .compression(Compression::None)
        .use_mmap(true)
        .write_buffer_size(256 << 10)
        .target_file_size(128 << 10);
    let db = Db::open(&path, opts).expect("open");
    for round in 0..4u64 {
        for i in 0..2_000u64 {
            db.put(format!("key{i:06}"), format!("value {round} {i:0>80}"))
                .expect("put");
        }
        db.flush().expect("flush");
    }
    // Cache blocks of every table.
    for i in 0..2_000u64 {
        assert!(db.get(format!("key{i:06}")).expect("get").is_some());
    }
    db.compact().expect("compact");
    for i in (0..2_000u64).step_by(7) {
        let v = db.get(format!("key{i:06}")).expect("get").expect("present");
        assert_eq!(&v[..8], b"value 3 ");
    }
    let left = deleted_mappings(&path);
    assert!(
        left.is_empty(),
        "deleted tables still mapped after compaction: {left:?}"
    );
    db.close().expect("close");
}
