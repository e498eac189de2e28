//! The db_bench-style workloads, run by a child process against one engine.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::engine::Engine;
use crate::{Measured, Settings};

pub const DISK_WORKLOADS: [&str; 11] = [
    "fillseq",
    "fillrandom",
    "overwrite",
    "readrandom",
    "readmissing",
    "readseq",
    "readreverse",
    "seekrandom",
    "deleterandom",
    "readwhilewriting",
    "fillsync",
];

/// Keys are the index, zero-padded decimal, `key_size` bytes.
pub fn key(i: u64, size: usize) -> Vec<u8> {
    format!("{i:0size$}").into_bytes()
}

/// A key that no fill writes (same length, past the key space).
pub fn missing_key(i: u64, num: u64, size: usize) -> Vec<u8> {
    key(num + 1 + i, size)
}

/// Values are half pseudo-random, half repeated: they compress to about half.
pub fn value(i: u64, size: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|j| {
            if j < size / 2 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            } else {
                b'a' + (j % 7) as u8
            }
        })
        .collect()
}

fn shuffled(n: u64, seed: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    fastrand::Rng::with_seed(seed).shuffle(&mut v);
    v
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram")
}

/// Runs `f` over `items` on `threads` threads, timing each call.
fn timed<T: Sync>(
    threads: usize,
    items: &[T],
    f: &(dyn Fn(&T) -> Result<(), String> + Sync),
) -> Result<(f64, Histogram<u64>), String> {
    let chunk = items.len().div_ceil(threads.max(1));
    let start = Instant::now();
    let results: Vec<Result<Histogram<u64>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk.max(1))
            .map(|part| {
                scope.spawn(move || {
                    let mut h = hist();
                    for item in part {
                        let t = Instant::now();
                        f(item)?;
                        let _ = h.record(t.elapsed().as_nanos() as u64);
                    }
                    Ok(h)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut all = hist();
    for r in results {
        all.add(r?).map_err(|e| e.to_string())?;
    }
    Ok((secs, all))
}

fn fill(e: &dyn Engine, s: &Settings, order: &[u64]) -> Result<(f64, Histogram<u64>), String> {
    timed(1, order, &|&i| {
        e.put(&key(i, s.key_size), &value(i, s.value_size), s.sync)
    })
}

/// Untimed load of every key, then settle (flush, let compaction finish).
fn preload(e: &dyn Engine, s: &Settings) -> Result<(), String> {
    for i in shuffled(s.num, 1) {
        e.put(&key(i, s.key_size), &value(i, s.value_size), false)?;
    }
    e.settle()
}

fn measured(ops: u64, secs: f64, h: &Histogram<u64>) -> Measured {
    Measured {
        ops,
        seconds: secs,
        ops_per_sec: ops as f64 / secs,
        p50_us: h.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: h.value_at_quantile(0.99) as f64 / 1000.0,
        p999_us: h.value_at_quantile(0.999) as f64 / 1000.0,
        ..Measured::default()
    }
}

/// Runs one workload; the result carries throughput and latencies.
pub fn run(e: &dyn Engine, workload: &str, s: &Settings) -> Result<Measured, String> {
    let n = s.num;
    let ks = s.key_size;
    let vs = s.value_size;
    let logical = n * (ks + vs) as u64;
    let m = match workload {
        "fillseq" | "fillrandom" => {
            let order: Vec<u64> = if workload == "fillseq" {
                (0..n).collect()
            } else {
                shuffled(n, 1)
            };
            let (secs, h) = fill(e, s, &order)?;
            e.settle()?;
            let mut m = measured(n, secs, &h);
            m.write_amp = Some(e.background_write_bytes() as f64 / logical as f64);
            m
        }
        "overwrite" => {
            preload(e, s)?;
            let before = e.background_write_bytes();
            let order = shuffled(n, 7);
            let (secs, h) = fill(e, s, &order)?;
            e.settle()?;
            let mut m = measured(n, secs, &h);
            m.write_amp = Some((e.background_write_bytes() - before) as f64 / logical as f64);
            m
        }
        "readrandom" | "readmissing" => {
            preload(e, s)?;
            let order = shuffled(n, 3);
            let missing = workload == "readmissing";
            let (secs, h) = timed(1, &order, &|&i| {
                if missing {
                    match e.get(&missing_key(i, n, ks))? {
                        None => Ok(()),
                        Some(_) => Err(format!("found a missing key {i}")),
                    }
                } else {
                    match e.get(&key(i, ks))? {
                        Some(v) if v == value(i, vs) => Ok(()),
                        other => Err(format!(
                            "key {i}: wrong value ({} bytes)",
                            other.map_or(0, |v| v.len())
                        )),
                    }
                }
            })?;
            measured(n, secs, &h)
        }
        "readseq" | "readreverse" => {
            preload(e, s)?;
            let reverse = workload == "readreverse";
            let start = Instant::now();
            let mut expect = if reverse { n } else { 0 };
            let count = e.scan(reverse, &mut |k, v| {
                let i = if reverse {
                    expect -= 1;
                    expect
                } else {
                    expect += 1;
                    expect - 1
                };
                k == key(i, ks).as_slice() && v == value(i, vs).as_slice()
            })?;
            if count != n {
                return Err(format!("scan saw {count} of {n} entries"));
            }
            let secs = start.elapsed().as_secs_f64();
            Measured {
                ops: n,
                seconds: secs,
                ops_per_sec: n as f64 / secs,
                ..Measured::default()
            }
        }
        "seekrandom" => {
            preload(e, s)?;
            let seeks = (n / 10).max(1000);
            let order: Vec<u64> = shuffled(n, 5).into_iter().take(seeks as usize).collect();
            let (secs, h) = timed(1, &order, &|&i| {
                let got = e.seek_next(&key(i, ks), 10)?;
                let want = (n - i).min(11) as usize;
                if got == want {
                    Ok(())
                } else {
                    Err(format!("seek {i}: {got} entries, want {want}"))
                }
            })?;
            measured(order.len() as u64, secs, &h)
        }
        "deleterandom" => {
            preload(e, s)?;
            let order = shuffled(n, 9);
            let (secs, h) = timed(1, &order, &|&i| e.delete(&key(i, ks), s.sync))?;
            for &i in order.iter().step_by(997) {
                if e.get(&key(i, ks))?.is_some() {
                    return Err(format!("key {i} still there after delete"));
                }
            }
            measured(n, secs, &h)
        }
        "readwhilewriting" => {
            preload(e, s)?;
            let stop = AtomicBool::new(false);
            let written = AtomicU64::new(0);
            let readers = s.threads.max(1);
            let order = shuffled(n, 11);
            let start = Instant::now();
            let result = std::thread::scope(|scope| -> Result<Histogram<u64>, String> {
                let writer = scope.spawn(|| -> Result<(), String> {
                    let mut rng = fastrand::Rng::with_seed(13);
                    while !stop.load(Ordering::Relaxed) {
                        let i = rng.u64(0..n);
                        e.put(&key(i, ks), &value(i, vs), s.sync)?;
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                });
                let chunk = order.len().div_ceil(readers);
                let handles: Vec<_> = order
                    .chunks(chunk)
                    .map(|part| {
                        scope.spawn(move || -> Result<Histogram<u64>, String> {
                            let mut h = hist();
                            for &i in part {
                                let t = Instant::now();
                                match e.get(&key(i, ks))? {
                                    Some(v) if v == value(i, vs) => {}
                                    _ => return Err(format!("key {i} wrong while writing")),
                                }
                                let _ = h.record(t.elapsed().as_nanos() as u64);
                            }
                            Ok(h)
                        })
                    })
                    .collect();
                let mut all = hist();
                let mut err = None;
                for h in handles {
                    match h.join().unwrap_or_else(|_| Err("reader panicked".into())) {
                        Ok(h) => all.add(h).map_err(|e| e.to_string())?,
                        Err(e) => err = Some(e),
                    }
                }
                stop.store(true, Ordering::Relaxed);
                writer
                    .join()
                    .unwrap_or_else(|_| Err("writer panicked".into()))?;
                match err {
                    Some(e) => Err(e),
                    None => Ok(all),
                }
            });
            let h = result?;
            let mut m = measured(n, start.elapsed().as_secs_f64(), &h);
            m.note = format!("{} writes alongside", written.load(Ordering::Relaxed));
            m
        }
        "fillsync" => {
            let total = (n / 20).max(2000);
            let threads = s.threads.max(1);
            let order = shuffled(total, 17);
            let (secs, h) = timed(threads, &order, &|&i| {
                e.put(&key(i, ks), &value(i, vs), true)
            })?;
            for &i in order.iter().step_by(101) {
                if e.get(&key(i, ks))?.is_none() {
                    return Err(format!("synced key {i} missing"));
                }
            }
            let mut m = measured(total, secs, &h);
            m.note = format!("{threads} writers");
            m
        }
        other => return Err(format!("unknown workload {other}")),
    };
    Ok(m)
}
