//! An arbitrary sequence of operations on a database over the
//! fault-injecting file system, checked against a BTreeMap model: puts,
//! deletes, batches, snapshots, iteration, flush, compaction, reopen and
//! simulated power loss. Writes are synced, so every acknowledged write
//! must survive a power loss. The first input byte may choose the
//! in-memory mode instead (no files: reopen and power loss are skipped),
//! whose puts wait in a hash index until a snapshot or scan orders them.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use strata_kv::fs::FaultFs;
use strata_kv::{Db, Durability, Options, WriteBatch};

#[derive(Arbitrary, Debug)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Get(u8),
    Snapshot,
    CheckSnapshot(u8),
    Scan { reverse: bool, lo: u8, hi: u8 },
    Flush,
    Compact,
    Reopen,
    PowerLoss,
}

fn key(k: u8) -> Vec<u8> {
    format!("key{:03}", k % 64).into_bytes()
}

fn options(fs: &FaultFs) -> Options {
    Options::default()
        .durability(Durability::Sync)
        .file_system(Arc::new(fs.clone()))
        .write_buffer_size(4096)
        .block_size(256)
        .l0_compaction_trigger(2)
        .base_level_size(8192)
        .level_size_multiplier(2)
        .target_file_size(4096)
}

fuzz_target!(|input: (bool, Vec<Op>)| {
    let (in_memory, ops) = input;
    let fs = FaultFs::new();
    let mut db = if in_memory {
        Db::open_in_memory(Options::default()).expect("open in memory")
    } else {
        Db::open("/db", options(&fs)).expect("open")
    };
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut snapshots: Vec<(strata_kv::Snapshot, BTreeMap<Vec<u8>, Vec<u8>>)> = Vec::new();
    for op in ops.into_iter().take(200) {
        match op {
            Op::Put(k, v) => {
                let v: Vec<u8> = v.into_iter().take(300).collect();
                db.put(key(k), &v).expect("put");
                model.insert(key(k), v);
            }
            Op::Delete(k) => {
                db.delete(key(k)).expect("delete");
                model.remove(&key(k));
            }
            Op::Batch(items) => {
                let mut b = WriteBatch::new();
                for (k, v) in items.into_iter().take(20) {
                    match v {
                        Some(v) => {
                            let v: Vec<u8> = v.into_iter().take(100).collect();
                            b.put(key(k), &v);
                            model.insert(key(k), v);
                        }
                        None => {
                            b.delete(key(k));
                            model.remove(&key(k));
                        }
                    }
                }
                db.write(b).expect("batch");
            }
            Op::Get(k) => {
                let got = db.get(key(k)).expect("get").map(|v| v.to_vec());
                assert_eq!(got, model.get(&key(k)).cloned());
            }
            Op::Snapshot => {
                if snapshots.len() < 3 {
                    snapshots.push((db.snapshot(), model.clone()));
                }
            }
            Op::CheckSnapshot(i) => {
                if let Some((s, m)) = snapshots.get(i as usize % snapshots.len().max(1)) {
                    let got: Vec<(Vec<u8>, Vec<u8>)> = s
                        .iter()
                        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("scan"))
                        .collect();
                    let want: Vec<(Vec<u8>, Vec<u8>)> =
                        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    assert_eq!(got, want);
                }
            }
            Op::Scan { reverse, lo, hi } => {
                // Order the encoded keys: `key` wraps at 64, so numeric order is not key order.
                let (lo, hi) = (key(lo).min(key(hi)), key(lo).max(key(hi)));
                let it = db.range(lo.clone()..hi.clone());
                let mut got: Vec<(Vec<u8>, Vec<u8>)> = if reverse {
                    it.rev()
                        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("scan"))
                        .collect()
                } else {
                    it.map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("scan"))
                        .collect()
                };
                if reverse {
                    got.reverse();
                }
                let want: Vec<(Vec<u8>, Vec<u8>)> = model
                    .range(lo..hi)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, want);
            }
            Op::Flush => db.flush().expect("flush"),
            Op::Compact => db.compact().expect("compact"),
            Op::Reopen | Op::PowerLoss if in_memory => {}
            Op::Reopen => {
                snapshots.clear();
                db.close().expect("close");
                db = Db::open("/db", options(&fs)).expect("reopen");
            }
            Op::PowerLoss => {
                snapshots.clear();
                fs.power_loss();
                drop(db);
                fs.restart();
                db = Db::open("/db", options(&fs)).expect("reopen after power loss");
            }
        }
    }
    let got: Vec<(Vec<u8>, Vec<u8>)> = db
        .iter()
        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("scan"))
        .collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.into_iter().collect();
    assert_eq!(got, want);
});
