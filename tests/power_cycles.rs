//! Power-loss cycles in-process through the fault-injecting file system.
//!
//! Each cycle opens the database, arms a power loss before a random future
//! file operation (so it lands mid-write, mid-flush, mid-compaction or
//! between a rename and its directory sync), sometimes injects random EIO
//! and ENOSPC too, writes batches with flushes and compactions mixed in
//! until the power goes, then reopens and checks: the cycle's batches are
//! a prefix of the ones written, every acknowledged synced batch is there,
//! no batch is partly visible, and earlier cycles are untouched.
//!
//! `STRATA_POWER_CYCLES` sets the number of cycles (default 60);
//! `STRATA_POWER_SEED` replays a run.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_kv::fs::FaultFs;
use strata_kv::{Db, Durability, Options, WriteBatch};

const WIDTH: usize = 3;

fn opts(fs: &FaultFs, durability: Durability) -> Options {
    Options::default()
        .durability(durability)
        .file_system(Arc::new(fs.clone()))
        .write_buffer_size(8 << 10)
        .block_size(512)
        .target_file_size(8 << 10)
        .base_level_size(32 << 10)
        .level_size_multiplier(4)
        .l0_compaction_trigger(2)
}

fn key(cycle: u64, batch: u64, j: usize) -> String {
    format!("c{cycle:05}:b{batch:04}:{j}")
}

/// Per cycle, per batch: how many of its keys are present.
fn census(db: &Db) -> BTreeMap<u64, BTreeMap<u64, usize>> {
    let mut out: BTreeMap<u64, BTreeMap<u64, usize>> = BTreeMap::new();
    for item in db.iter() {
        let (k, _) = item.expect("scan after recovery");
        let k = std::str::from_utf8(&k).expect("utf8");
        let mut parts = k.split(':');
        let c: u64 = parts
            .next()
            .and_then(|c| c[1..].parse().ok())
            .expect("cycle");
        let b: u64 = parts
            .next()
            .and_then(|b| b[1..].parse().ok())
            .expect("batch");
        *out.entry(c).or_default().entry(b).or_default() += 1;
    }
    out
}

#[test]
fn power_loss_at_random_points_keeps_synced_writes_and_a_prefix_of_the_rest() {
    let cycles: u64 = common::env_u64("STRATA_POWER_CYCLES").unwrap_or(60);
    let seed: u64 = common::env_u64("STRATA_POWER_SEED").unwrap_or_else(|| fastrand::u64(..));
    eprintln!("power-loss cycles: {cycles}, seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let fs = FaultFs::new();
    let mut settled: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut with_faults, mut torn_runs, mut synced_runs) = (0, 0, 0);
    for cycle in 0..cycles {
        let sync = rng.bool();
        let durability = if sync {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        let db = Db::open("/db", opts(&fs, durability)).expect("open");
        let torn = rng.bool().then(|| rng.u64(..));
        if rng.u32(0..4) == 0 {
            fs.fail_randomly(3_000, rng.u64(..));
            with_faults += 1;
        }
        fs.power_loss_after(rng.u64(1..600), torn);
        torn_runs += usize::from(torn.is_some());
        synced_runs += usize::from(sync);
        let mut acked: Option<u64> = None;
        for i in 0..150u64 {
            let mut b = WriteBatch::new();
            for j in 0..WIDTH {
                b.put(key(cycle, i, j), [i as u8; 40]);
            }
            if db.write(b).is_err() {
                break;
            }
            acked = Some(i);
            if i % 23 == 7 {
                let _ = db.flush();
            }
            if i % 53 == 11 {
                let _ = db.compact();
            }
        }
        if !fs.is_down() {
            fs.power_loss();
        }
        drop(db);
        fs.restart();
        fs.clear_faults();
        let db = Db::open("/db", opts(&fs, Durability::Sync)).expect("reopen after power loss");
        let c = census(&db);
        let empty = BTreeMap::new();
        let mine = c.get(&cycle).unwrap_or(&empty);
        for (b, n) in mine {
            assert_eq!(
                *n, WIDTH,
                "cycle {cycle} (seed {seed}): batch {b} partly visible"
            );
        }
        let present = mine.len() as u64;
        assert!(
            mine.keys().copied().eq(0..present),
            "cycle {cycle} (seed {seed}): not a prefix"
        );
        if sync && let Some(a) = acked {
            assert!(
                present > a,
                "cycle {cycle} (seed {seed}): synced batch {a} lost, {present} present"
            );
        }
        for (&old, &n) in &settled {
            let now = c.get(&old).map_or(0, |m| m.len() as u64);
            assert_eq!(
                now, n,
                "cycle {old} changed by the crash of cycle {cycle} (seed {seed})"
            );
        }
        settled.insert(cycle, present);
        db.close().expect("close");
    }
    eprintln!(
        "power-loss cycles passed: {cycles} ({synced_runs} synced, {torn_runs} with torn writes, {with_faults} with random EIO/ENOSPC), {} batches kept",
        settled.values().sum::<u64>()
    );
}
