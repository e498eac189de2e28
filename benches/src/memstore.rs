//! The in-memory comparison: strata's MemoryKvStore against a DashMap
//! store behind the same async `KvStore` trait, driven by tokio tasks.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use hdrhistogram::Histogram;
use strata_kv::kv::{KvStore, MemoryKvStore};

use crate::Measured;
use crate::workloads::{key, value};

/// A DashMap behind the `KvStore` trait: the hash-map baseline.
#[derive(Default)]
pub struct DashMapStore {
    map: DashMap<String, Vec<u8>>,
}

impl KvStore for DashMapStore {
    fn get(&self, key: &str) -> impl Future<Output = strata_kv::Result<Option<Vec<u8>>>> + Send {
        let v = self.map.get(key).map(|v| v.clone());
        async move { Ok(v) }
    }

    fn set(&self, key: &str, value: Vec<u8>) -> impl Future<Output = strata_kv::Result<()>> + Send {
        self.map.insert(key.to_owned(), value);
        async { Ok(()) }
    }

    fn delete(&self, key: &str) -> impl Future<Output = strata_kv::Result<()>> + Send {
        self.map.remove(key);
        async { Ok(()) }
    }

    fn exists(&self, key: &str) -> impl Future<Output = strata_kv::Result<bool>> + Send {
        let e = self.map.contains_key(key);
        async move { Ok(e) }
    }

    fn batch_get(
        &self,
        keys: &[&str],
    ) -> impl Future<Output = strata_kv::Result<Vec<Option<Vec<u8>>>>> + Send {
        let v = keys
            .iter()
            .map(|k| self.map.get(*k).map(|v| v.clone()))
            .collect();
        async move { Ok(v) }
    }

    fn batch_set(
        &self,
        pairs: Vec<(&str, Vec<u8>)>,
    ) -> impl Future<Output = strata_kv::Result<()>> + Send {
        for (k, v) in pairs {
            self.map.insert(k.to_owned(), v);
        }
        async { Ok(()) }
    }
}

fn keys(n: u64, size: usize) -> Vec<String> {
    (0..n)
        .map(|i| String::from_utf8(key(i, size)).unwrap_or_default())
        .collect()
}

/// `memset` (fill every key) or `memget` (after a fill, read every key in
/// random order) with `tasks` tokio tasks on a 2-thread runtime.
pub fn run(
    store_name: &str,
    workload: &str,
    n: u64,
    key_size: usize,
    value_size: usize,
    tasks: usize,
) -> Result<Measured, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .map_err(|e| e.to_string())?;
    let names = Arc::new(keys(n, key_size));
    match store_name {
        "strata" => rt.block_on(drive(
            Arc::new(MemoryKvStore::new()),
            workload,
            names,
            value_size,
            tasks,
        )),
        "dashmap" => rt.block_on(drive(
            Arc::new(DashMapStore::default()),
            workload,
            names,
            value_size,
            tasks,
        )),
        other => Err(format!("unknown in-memory store {other}")),
    }
}

async fn drive<S: KvStore + 'static>(
    store: Arc<S>,
    workload: &str,
    names: Arc<Vec<String>>,
    value_size: usize,
    tasks: usize,
) -> Result<Measured, String> {
    let n = names.len();
    let values: Arc<Vec<Vec<u8>>> = Arc::new((0..n as u64).map(|i| value(i, value_size)).collect());
    let mut order: Vec<usize> = (0..n).collect();
    fastrand::Rng::with_seed(21).shuffle(&mut order);
    let order = Arc::new(order);
    let reading = workload == "memget";
    if reading {
        for (k, v) in names.iter().zip(values.iter()) {
            store.set(k, v.clone()).await.map_err(|e| e.to_string())?;
        }
    }
    let chunk = n.div_ceil(tasks.max(1));
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks.max(1))
        .map(|t| {
            let (store, names, values, order) = (
                Arc::clone(&store),
                Arc::clone(&names),
                Arc::clone(&values),
                Arc::clone(&order),
            );
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                    .map_err(|e| e.to_string())?;
                let lo = (t * chunk).min(n);
                let hi = ((t + 1) * chunk).min(n);
                for &i in &order[lo..hi] {
                    let t0 = Instant::now();
                    if reading {
                        let got = store.get(&names[i]).await.map_err(|e| e.to_string())?;
                        if got.as_deref() != Some(values[i].as_slice()) {
                            return Err(format!("memget: wrong value for key {i}"));
                        }
                    } else {
                        store
                            .set(&names[i], values[i].clone())
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    let _ = h.record(t0.elapsed().as_nanos() as u64);
                }
                Ok::<_, String>(h)
            })
        })
        .collect();
    let mut all =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())?;
    for h in handles {
        let h = h.await.map_err(|e| e.to_string())??;
        all.add(h).map_err(|e| e.to_string())?;
    }
    let secs = start.elapsed().as_secs_f64();
    if !reading {
        for &i in order.iter().step_by(997) {
            if store
                .get(&names[i])
                .await
                .map_err(|e| e.to_string())?
                .as_deref()
                != Some(values[i].as_slice())
            {
                return Err(format!("memset: key {i} wrong after the fill"));
            }
        }
    }
    Ok(Measured {
        ops: n as u64,
        seconds: secs,
        ops_per_sec: n as f64 / secs,
        p50_us: all.value_at_quantile(0.5) as f64 / 1000.0,
        p99_us: all.value_at_quantile(0.99) as f64 / 1000.0,
        p999_us: all.value_at_quantile(0.999) as f64 / 1000.0,
        note: format!("{tasks} tasks"),
        ..Measured::default()
    })
}
