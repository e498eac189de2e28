//! Power loss through the fault-injecting file system: what was synced
//! survives; with buffered writes, what survives is a prefix of commit order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_kv::fs::FaultFs;
use strata_kv::{Db, Durability, Options, WriteBatch};

fn opts(fs: &FaultFs, durability: Durability) -> Options {
    Options::default()
        .durability(durability)
        .file_system(Arc::new(fs.clone()))
        .write_buffer_size(32 << 10)
}

/// Batch `i` writes `width` keys, all with value `i`.
fn batch(prefix: &str, i: u64, width: u64) -> WriteBatch {
    let mut b = WriteBatch::new();
    for j in 0..width {
        b.put(format!("{prefix}:{j:02}"), i.to_le_bytes());
    }
    b
}

fn value_of(db: &Db, key: &str) -> Option<u64> {
    db.get(key)
        .expect("get")
        .map(|v| u64::from_le_bytes(v.as_ref().try_into().expect("8 bytes")))
}

/// Writers run until the power goes; every write acknowledged before it is there afterwards.
#[test]
fn synced_writes_acknowledged_before_power_loss_survive_it() {
    for round in 0..5u64 {
        let fs = FaultFs::new();
        fs.set_sync_latency(Duration::from_micros(200));
        let db = Db::open("/db", opts(&fs, Durability::Sync)).expect("open");
        let acked: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4u64)
            .map(|t| {
                let (db, acked, stop) = (db.clone(), Arc::clone(&acked), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if db.write(batch(&format!("t{t}"), i, 3)).is_err() {
                            break; // the power is gone
                        }
                        acked.lock().expect("lock").push((t, i));
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30 + 20 * round));
        fs.power_loss();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        drop(db);
        fs.restart();
        let db = Db::open("/db", opts(&fs, Durability::Sync)).expect("reopen");
        let acked = acked.lock().expect("lock").clone();
        assert!(!acked.is_empty());
        for t in 0..4u64 {
            let last_acked = acked.iter().filter(|(w, _)| *w == t).map(|(_, i)| *i).max();
            let values: Vec<Option<u64>> = (0..3)
                .map(|j| value_of(&db, &format!("t{t}:{j:02}")))
                .collect();
            assert!(
                values.windows(2).all(|w| w[0] == w[1]),
                "batch partly visible: {values:?}"
            );
            if let Some(last) = last_acked {
                let got = values[0].expect("acknowledged batch lost");
                // The one batch in flight when the power went may have landed too.
                assert!(
                    got == last || got == last + 1,
                    "writer {t}: acked {last}, found {got}"
                );
            }
        }
    }
}

/// Buffered writes: after a power loss keeping a random part of what was
/// not synced, the batches present are exactly the first k, whole.
#[test]
fn buffered_writes_surviving_power_loss_are_a_prefix_of_commit_order() {
    for seed in 0..20u64 {
        let fs = FaultFs::new();
        let db = Db::open("/db", opts(&fs, Durability::Buffered)).expect("open");
        let n = 200 + seed * 37;
        for i in 0..n {
            // Each batch overwrites the shared keys and adds one of its own.
            let mut b = batch("shared", i, 4);
            b.put(format!("own:{i:05}"), i.to_le_bytes());
            db.write(b).expect("write");
        }
        fs.power_loss_torn(seed);
        drop(db);
        fs.restart();
        let db = Db::open("/db", opts(&fs, Durability::Buffered)).expect("reopen");
        let present: Vec<bool> = (0..n)
            .map(|i| db.get(format!("own:{i:05}")).expect("get").is_some())
            .collect();
        let k = present.iter().take_while(|p| **p).count();
        assert!(present[k..].iter().all(|p| !p), "seed {seed}: not a prefix");
        eprintln!("seed {seed}: {k} of {n} batches survived");
        let shared: Vec<Option<u64>> = (0..4)
            .map(|j| value_of(&db, &format!("shared:{j:02}")))
            .collect();
        let expect = (k as u64).checked_sub(1);
        assert!(
            shared.iter().all(|v| *v == expect),
            "seed {seed}: shared {shared:?}, prefix {k}"
        );
    }
}
