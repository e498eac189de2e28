//! Micro-benchmarks of strata-kv's hot parts, through the `internals`
//! feature: memtable insert/get, block encode/decode, bloom build/probe,
//! WAL append, and key hashing (SIMD batch against scalar).
//!
//! `cargo bench --manifest-path benches/Cargo.toml --bench micro`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use strata_kv::hash;
use strata_kv::internals::{self, Memtable, WalWriter};

const N: u64 = 10_000;

fn key(i: u64) -> Vec<u8> {
    format!("{i:016}").into_bytes()
}

fn shuffled(n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    fastrand::Rng::with_seed(5).shuffle(&mut v);
    v
}

fn memtable(c: &mut Criterion) {
    let order = shuffled(N);
    let value = Bytes::from(vec![b'v'; 100]);
    let mut g = c.benchmark_group("memtable");
    g.throughput(Throughput::Elements(N));
    g.bench_function("insert 10k random", |b| {
        b.iter_batched(
            Memtable::default,
            |m| {
                for (seq, &i) in order.iter().enumerate() {
                    m.insert(&key(i), seq as u64 + 1, value.clone());
                }
                m
            },
            BatchSize::LargeInput,
        )
    });
    let m = Memtable::default();
    for (seq, &i) in order.iter().enumerate() {
        m.insert(&key(i), seq as u64 + 1, value.clone());
    }
    let keys: Vec<Vec<u8>> = shuffled(N).into_iter().map(key).collect();
    g.bench_function("get 10k random (hits)", |b| {
        b.iter(|| {
            for k in &keys {
                black_box(m.get(k, u64::MAX >> 8));
            }
        })
    });
    g.finish();
}

fn entries(n: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| (internals::internal_key(&key(i), i + 1), vec![b'v'; 100]))
        .collect()
}

fn block(c: &mut Criterion) {
    // About one 4 KiB block.
    let e = entries(32);
    let encoded = internals::block_encode(&e, 16);
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Elements(e.len() as u64));
    g.bench_function("encode 32 entries", |b| {
        b.iter(|| black_box(internals::block_encode(&e, 16)))
    });
    g.bench_function("decode + walk 32 entries", |b| {
        b.iter(|| black_box(internals::block_decode(&encoded)))
    });
    g.finish();
}

fn bloom(c: &mut Criterion) {
    let hashes: Vec<u64> = (0..N).map(|i| hash::hash_key(&key(i))).collect();
    let filter = Bytes::from(internals::bloom_build(&hashes, 10));
    let absent: Vec<u64> = (N..2 * N).map(|i| hash::hash_key(&key(i))).collect();
    let mut g = c.benchmark_group("bloom");
    g.throughput(Throughput::Elements(N));
    g.bench_function("build 10k keys, 10 bits/key", |b| {
        b.iter(|| black_box(internals::bloom_build(&hashes, 10)))
    });
    g.bench_function("probe 10k absent keys", |b| {
        b.iter(|| {
            for &h in &absent {
                black_box(internals::bloom_probe(&filter, h));
            }
        })
    });
    g.finish();
}

fn wal(c: &mut Criterion) {
    let batch = internals::batch_build(&[(key(1), vec![b'v'; 100])], 1);
    let mut g = c.benchmark_group("wal");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("append 1000 one-put batches (in-memory file)", |b| {
        b.iter_batched(
            || WalWriter::new().expect("wal"),
            |mut w| {
                for _ in 0..1000 {
                    w.append(&batch).expect("append");
                }
                w
            },
            BatchSize::LargeInput,
        )
    });
    // On the real disk (the system temp directory), no sync: what one
    // buffered write's append costs, through the map or a write call. Each
    // setup makes a new file and unlinks it at once (the open file stays
    // usable), so no two writers share a file and none piles up on disk.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = 0u64;
    for (mapped, name) in [
        (true, "append 1000 one-put batches (real file, mapped)"),
        (
            false,
            "append 1000 one-put batches (real file, write calls)",
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    files += 1;
                    let path = dir.path().join(format!("{files:06}.wal"));
                    let w = WalWriter::on_disk(&path, 4 << 20, mapped).expect("wal");
                    std::fs::remove_file(&path).expect("unlink");
                    w
                },
                |mut w| {
                    for _ in 0..1000 {
                        w.append(&batch).expect("append");
                    }
                    w
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..N).map(key).collect();
    let mut out = Vec::with_capacity(keys.len());
    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Elements(N));
    g.bench_function("batch (SIMD where available) 10k 16-byte keys", |b| {
        b.iter(|| {
            out.clear();
            hash::hash_keys_batch(&keys, &mut out);
            black_box(&out);
        })
    });
    g.bench_function("scalar 10k 16-byte keys", |b| {
        b.iter(|| {
            out.clear();
            hash::hash_keys_scalar(&keys, &mut out);
            black_box(&out);
        })
    });
    g.finish();
}

criterion_group!(benches, memtable, block, bloom, wal, hashing);
criterion_main!(benches);
