//! Writes seed corpora for the fuzz targets, made by strata-kv itself: real
//! tables (each compression), WALs, manifests, blocks and batches from a
//! database this program builds, so fuzzing starts from valid files.
//!
//! `cargo run --features internals --example fuzz_seeds -- fuzz/corpus`

use std::path::{Path, PathBuf};

use strata_kv::internals;
use strata_kv::{Compression, Db, Durability, Options};

fn write_seed(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), data)
}

/// Files of `dir` whose names end with `suffix`.
fn files(dir: &Path, suffix: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.to_string_lossy().ends_with(suffix) {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

fn pairs(n: u64, value_len: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                internals::internal_key(format!("key{i:05}").as_bytes(), i + 1),
                vec![b'a' + (i % 26) as u8; value_len],
            )
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let mut count = 0usize;

    // Blocks: small and large restart intervals.
    for (i, n) in [1u64, 5, 40].into_iter().enumerate() {
        for interval in [1, 16] {
            let block = internals::block_encode(&pairs(n, 10), interval);
            write_seed(
                &out.join("block_decode"),
                &format!("block-{i}-{interval}"),
                &block,
            )?;
            count += 1;
        }
    }

    // Tables from the builder, every compression.
    for (name, c) in [
        ("none", Compression::None),
        ("lz4", Compression::Lz4),
        ("snappy", Compression::Snappy),
    ] {
        let table = internals::sst_build(&pairs(200, 40), c, 512)?;
        write_seed(
            &out.join("sst_open_and_scan"),
            &format!("table-{name}"),
            &table,
        )?;
        count += 1;
    }

    // Batches.
    for (i, n) in [1u64, 3, 20].into_iter().enumerate() {
        let plain: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
            .map(|j| (format!("k{j}").into_bytes(), format!("v{j}").into_bytes()))
            .collect();
        let batch = internals::batch_build(&plain, 100 + i as u64);
        write_seed(&out.join("batch_decode"), &format!("batch-{i}"), &batch)?;
        count += 1;
    }

    // A real database: its WAL, tables and manifest as the engine writes them.
    let dir = tempfile::tempdir()?;
    let db_dir = dir.path().join("db");
    {
        let db = Db::open(
            &db_dir,
            Options::default()
                .durability(Durability::Buffered)
                .write_buffer_size(16 << 10)
                .block_size(512),
        )?;
        let ns = db.namespace("seeds")?;
        for i in 0..600u32 {
            db.put(format!("key{i:05}"), format!("value-{i}"))?;
            if i % 7 == 0 {
                db.delete(format!("key{:05}", i / 2))?;
            }
            if i % 50 == 0 {
                ns.put_with_ttl(format!("t{i}"), b"ttl", std::time::Duration::from_secs(60))?;
            }
        }
        db.compact()?;
        for i in 0..40u32 {
            db.put(format!("tail{i}"), "in the WAL")?;
        }
        db.close()?;
    }
    for (suffix, target) in [(".wal", "wal_replay"), (".sst", "sst_open_and_scan")] {
        for (i, f) in files(&db_dir, suffix)?.iter().take(3).enumerate() {
            write_seed(
                &out.join(target),
                &format!("db-{i}{suffix}"),
                &std::fs::read(f)?,
            )?;
            count += 1;
        }
    }
    for f in files(&db_dir, "")? {
        if f.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("MANIFEST-"))
        {
            write_seed(
                &out.join("manifest_replay"),
                "db-manifest",
                &std::fs::read(&f)?,
            )?;
            count += 1;
        }
    }

    // Operation sequences: arbitrary bytes decode into operations.
    for i in 0..4u64 {
        let mut rng = fastrand::Rng::with_seed(i);
        let bytes: Vec<u8> = (0..256 << i).map(|_| rng.u8(..)).collect();
        write_seed(&out.join("db_ops_model"), &format!("ops-{i}"), &bytes)?;
        count += 1;
    }
    println!("{count} seeds written under {}", out.display());
    Ok(())
}
