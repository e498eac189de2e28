//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use strata_kv::{Db, Result, Value};

/// A number from the environment (a long run's cycle count, a seed to
/// replay); `None` if unset or not a number.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// Collects an iterator of `Result<(Value, Value)>` into owned pairs.
pub fn collect(it: impl Iterator<Item = Result<(Value, Value)>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|kv| {
        let (k, v) = kv.expect("iteration error");
        (k.to_vec(), v.to_vec())
    })
    .collect()
}

/// Every pair of the database, in order.
pub fn contents(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    collect(db.iter())
}

/// A model map as a sorted vector of pairs.
pub fn model_pairs(m: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Four writer threads, each writing batches of two keys (`w{w}:{i:08}` and
/// its `:twin`, both valued `i`) in order, plus a thread flushing every
/// `flush_every`, until stopped.
pub struct WriterLoad {
    stop: Arc<AtomicBool>,
    writers: Vec<JoinHandle<u32>>,
    flusher: JoinHandle<()>,
}

impl WriterLoad {
    pub fn start(db: &Db, flush_every: Duration) -> WriterLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let writers = (0..4)
            .map(|w| {
                let (db, stop) = (db.clone(), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut i = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let mut b = strata_kv::WriteBatch::new();
                        b.put(format!("w{w}:{i:08}"), format!("{i}"));
                        b.put(format!("w{w}:{i:08}:twin"), format!("{i}"));
                        db.write(b).expect("write");
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        let flusher = {
            let (db, stop) = (db.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    db.flush().expect("flush");
                    std::thread::sleep(flush_every);
                }
            })
        };
        WriterLoad {
            stop,
            writers,
            flusher,
        }
    }

    /// Stops every thread; returns how many batches each writer wrote.
    pub fn stop(self) -> Vec<u32> {
        self.stop.store(true, Ordering::Relaxed);
        let written = self
            .writers
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect();
        self.flusher.join().expect("flusher");
        written
    }
}

/// Checks that `copy`, a checkpoint at sequence `seq` of a database loaded
/// by a [`WriterLoad`] from empty, holds exactly the writes up to `seq`: for
/// each writer a whole-batch prefix of what it wrote, `seq` keys in all.
pub fn assert_checkpoint_is_a_prefix(copy: &Db, seq: u64, written: &[u32]) {
    assert_eq!(copy.latest_sequence(), seq);
    for t in copy.inspect().expect("inspect").tables {
        assert!(
            t.largest_seq <= seq,
            "holds writes after the checkpoint: {t:?}"
        );
    }
    let pairs = contents(copy);
    let mut keys_total = 0u64;
    for (w, &total) in written.iter().enumerate() {
        let prefix = format!("w{w}:");
        let mine: Vec<_> = pairs
            .iter()
            .filter(|(k, _)| k.starts_with(prefix.as_bytes()))
            .collect();
        assert_eq!(mine.len() % 2, 0, "writer {w}: a batch is split");
        let n = (mine.len() / 2) as u32;
        assert!(n <= total);
        // Keys sort as i, i:twin, i+1, ...: check they are exactly 0..n.
        for i in 0..n {
            let (k, v) = mine[2 * i as usize];
            assert_eq!(
                k,
                format!("w{w}:{i:08}").as_bytes(),
                "writer {w} gap at {i}"
            );
            assert_eq!(v, i.to_string().as_bytes());
            let (k2, _) = mine[2 * i as usize + 1];
            assert_eq!(k2, format!("w{w}:{i:08}:twin").as_bytes());
        }
        keys_total += mine.len() as u64;
    }
    // Each key took one sequence number: the checkpoint holds exactly the
    // writes up to its sequence number.
    assert_eq!(keys_total, seq);
}
