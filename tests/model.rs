//! Model tests: seeded random sequences of operations against a BTreeMap.
//!
//! Each configuration runs several seeds. Operations: put, delete, batch,
//! snapshot (checked later against a copy of the model), point reads,
//! forward / reverse / bounded / prefix iteration, flush and reopen.
//! A failure prints the seed; rerun one with `STRATA_MODEL_SEED=<seed>`.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use strata_kv::fs::MemFs;
use strata_kv::{Compression, Db, Durability, Options, Snapshot, WriteBatch};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

struct Harness {
    rng: fastrand::Rng,
    db: Db,
    model: Model,
    snapshots: Vec<(Snapshot, Model)>,
    reopen: Option<Box<dyn Fn() -> Db>>,
    /// Compactions run by databases already closed.
    compactions: u64,
}

impl Harness {
    fn key(&mut self) -> Vec<u8> {
        match self.rng.u32(0..20) {
            0 => Vec::new(),
            1 => {
                let n = self.rng.usize(1..40);
                (0..n).map(|_| self.rng.u8(..)).collect()
            }
            _ => format!("k{:03}", self.rng.u32(0..300)).into_bytes(),
        }
    }

    fn value(&mut self) -> Vec<u8> {
        let len = match self.rng.u32(0..50) {
            0 => self.rng.usize(1000..20_000),
            1 => 0,
            _ => self.rng.usize(1..120),
        };
        let seed = self.rng.u8(..);
        (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
    }

    fn bound(&mut self) -> Bound<Vec<u8>> {
        match self.rng.u32(0..3) {
            0 => Bound::Unbounded,
            1 => Bound::Included(self.key()),
            _ => Bound::Excluded(self.key()),
        }
    }

    fn check_iterators(&mut self, which: Option<usize>) {
        let lower = self.bound();
        let upper = self.bound();
        let reverse = self.rng.bool();
        let (model, got) = {
            let (model, snap) = match which {
                Some(i) => (&self.snapshots[i].1, Some(&self.snapshots[i].0)),
                None => (&self.model, None),
            };
            let range = (lower.clone(), upper.clone());
            let bad_range = matches!((&lower, &upper), (Bound::Included(l) | Bound::Excluded(l), Bound::Included(u) | Bound::Excluded(u)) if l > u)
                || matches!((&lower, &upper), (Bound::Excluded(l), Bound::Excluded(u)) if l == u);
            if bad_range {
                return;
            }
            let want: Vec<_> = model
                .range::<Vec<u8>, _>(range.clone())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let it = match snap {
                Some(s) => s.range(range),
                None => self.db.range(range),
            };
            let got = if reverse {
                common::collect(it.rev())
            } else {
                common::collect(it)
            };
            let mut want = want;
            if reverse {
                want.reverse();
            }
            (want, got)
        };
        assert_eq!(
            got.len(),
            model.len(),
            "range {lower:?}..{upper:?} rev={reverse} snapshot={which:?}"
        );
        assert!(
            got == model,
            "range {lower:?}..{upper:?} rev={reverse} snapshot={which:?}"
        );
    }

    fn check_prefix(&mut self) {
        let p = self.key();
        let p = p[..p.len().min(self.rng.usize(0..4))].to_vec();
        let want: Vec<_> = self
            .model
            .iter()
            .filter(|(k, _)| k.starts_with(&p))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(common::collect(self.db.prefix(&p)), want, "prefix {p:?}");
    }

    fn step(&mut self, can_flush: bool) {
        match self.rng.u32(0..100) {
            0..=39 => {
                let (k, v) = (self.key(), self.value());
                self.db.put(&k, &v).expect("put");
                self.model.insert(k, v);
            }
            40..=49 => {
                let k = self.key();
                self.db.delete(&k).expect("delete");
                self.model.remove(&k);
            }
            50..=59 => {
                let mut b = WriteBatch::new();
                for _ in 0..self.rng.usize(1..12) {
                    let k = self.key();
                    if self.rng.u32(0..4) == 0 {
                        b.delete(&k);
                        self.model.remove(&k);
                    } else {
                        let v = self.value();
                        b.put(&k, &v);
                        self.model.insert(k, v);
                    }
                }
                self.db.write(b).expect("batch");
            }
            60..=74 => {
                let k = self.key();
                let got = self.db.get(&k).expect("get").map(|v| v.to_vec());
                if got != self.model.get(&k).cloned() && std::env::var("STRATA_MODEL_DEBUG").is_ok()
                {
                    let scan = common::collect(self.db.range(k.clone()..=k.clone()));
                    eprintln!(
                        "get mismatch for {k:?}: scan finds {} entries; stats {:?}",
                        scan.len(),
                        self.db.stats().levels
                    );
                }
                assert_eq!(got, self.model.get(&k).cloned(), "get {k:?}");
            }
            75..=80 => self.check_iterators(None),
            81..=82 => self.check_prefix(),
            83..=85 => {
                if self.snapshots.len() < 4 {
                    let s = self.db.snapshot();
                    self.snapshots.push((s, self.model.clone()));
                } else {
                    let i = self.rng.usize(0..self.snapshots.len());
                    self.snapshots.swap_remove(i);
                }
            }
            86..=90 if !self.snapshots.is_empty() => {
                let i = self.rng.usize(0..self.snapshots.len());
                let k = self.key();
                let got = self.snapshots[i]
                    .0
                    .get(&k)
                    .expect("snapshot get")
                    .map(|v| v.to_vec());
                assert_eq!(
                    got,
                    self.snapshots[i].1.get(&k).cloned(),
                    "snapshot get {k:?}"
                );
                self.check_iterators(Some(i));
            }
            91 if can_flush => self.db.flush().expect("flush"),
            92 if self.reopen.is_some() => {
                self.snapshots.clear();
                self.compactions += self.db.stats().compactions;
                self.db.close().expect("close");
                self.db = (self.reopen.as_ref().expect("reopen"))();
            }
            93 if can_flush && self.rng.u32(0..4) == 0 => {
                self.db.compact().expect("compact");
                if std::env::var("STRATA_MODEL_DEBUG").is_ok() {
                    self.check_all();
                }
            }
            _ => {}
        }
    }

    fn check_all(&self) {
        assert!(
            common::contents(&self.db) == common::model_pairs(&self.model),
            "full scan"
        );
        let mut rev = common::collect(self.db.iter().rev());
        rev.reverse();
        assert!(rev == common::model_pairs(&self.model), "full reverse scan");
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("STRATA_MODEL_SEED") {
        Ok(s) => vec![s.parse().expect("STRATA_MODEL_SEED is a number")],
        Err(_) => vec![1, 2, 3],
    }
}

/// Runs the model for each seed. `location` makes a fresh place per seed
/// and returns how to open (and reopen) the database there.
/// Returns how many compactions ran, all seeds together.
fn run(
    name: &str,
    steps: usize,
    location: impl Fn() -> Opener,
    reopen: bool,
    can_flush: bool,
) -> u64 {
    run_until(name, steps, location, reopen, can_flush, 0)
}

/// `run`, and past `steps`, more steps (up to three times as many) until
/// at least `min_compactions` compactions ran, all seeds together:
/// compactions run in the background, so how many a fixed number of
/// steps sees depends on the machine's load.
fn run_until(
    name: &str,
    steps: usize,
    location: impl Fn() -> Opener,
    reopen: bool,
    can_flush: bool,
    min_compactions: u64,
) -> u64 {
    let mut compactions = 0;
    let seeds = seeds();
    let per_seed = min_compactions.div_ceil(seeds.len().max(1) as u64);
    for seed in seeds {
        let opener: Rc<Opener> = Rc::new(location());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let o = Rc::clone(&opener);
            let mut h = Harness {
                rng: fastrand::Rng::with_seed(seed),
                db: opener(),
                model: Model::new(),
                snapshots: Vec::new(),
                reopen: reopen.then(|| Box::new(move || o()) as Box<dyn Fn() -> Db>),
                compactions: 0,
            };
            for _ in 0..steps {
                h.step(can_flush);
            }
            let mut extra = 0;
            while h.compactions + h.db.stats().compactions < per_seed && extra < 3 * steps {
                h.step(can_flush);
                extra += 1;
            }
            h.check_all();
            if let Some(r) = &h.reopen {
                h.snapshots.clear();
                h.compactions += h.db.stats().compactions;
                h.db.close().expect("close");
                h.db = r();
                h.check_all();
            }
            h.compactions + h.db.stats().compactions
        }));
        match result {
            Ok(n) => compactions += n,
            Err(e) => {
                eprintln!("model test {name} failed with seed {seed}");
                std::panic::resume_unwind(e);
            }
        }
    }
    compactions
}

type Opener = Box<dyn Fn() -> Db>;

/// A fresh in-memory file system per seed, opened with `opts` on top.
fn on_mem_fs(opts: impl Fn() -> Options + Clone + 'static) -> impl Fn() -> Opener {
    move || {
        let fs = MemFs::new();
        let opts = opts.clone();
        Box::new(move || {
            let o = opts()
                .durability(Durability::Buffered)
                .file_system(Arc::new(fs.clone()));
            Db::open("/db", o).expect("open")
        })
    }
}

#[test]
fn model_in_memory_mode() {
    run(
        "in-memory",
        3000,
        || Box::new(|| Db::open_in_memory(Options::default()).expect("open")),
        false,
        false,
    );
}

#[test]
fn model_on_disk_with_reopen() {
    run(
        "disk",
        3000,
        || {
            let dir = tempfile::tempdir().expect("tempdir");
            Box::new(move || {
                let p = dir.path().join("db");
                Db::open(&p, Options::default().durability(Durability::Buffered)).expect("open")
            })
        },
        true,
        true,
    );
}

/// Data crosses many flushes: 64 KiB write buffers, once per compression.
#[test]
fn model_with_small_write_buffers_each_compression() {
    for compression in [Compression::None, Compression::Lz4, Compression::Snappy] {
        run(
            &format!("64k buffers {compression:?}"),
            4000,
            on_mem_fs(move || {
                Options::default()
                    .write_buffer_size(64 << 10)
                    .compression(compression)
                    .block_size(1024)
            }),
            true,
            true,
        );
    }
}

/// Tiny buffers and level targets: thousands of flushes and compactions,
/// with snapshots held across them, reopens and deletes, per compression.
#[test]
fn model_with_constant_compaction_each_compression() {
    for compression in [Compression::None, Compression::Lz4, Compression::Snappy] {
        let compactions = run_until(
            &format!("compaction {compression:?}"),
            12_000,
            on_mem_fs(move || {
                Options::default()
                    .write_buffer_size(8 << 10)
                    .compression(compression)
                    .block_size(512)
                    .l0_compaction_trigger(2)
                    .l0_slowdown_trigger(4)
                    .l0_stop_trigger(8)
                    .base_level_size(16 << 10)
                    .level_size_multiplier(2)
                    .target_file_size(8 << 10)
            }),
            true,
            true,
            1000,
        );
        if std::env::var("STRATA_MODEL_SEED").is_err() {
            assert!(
                compactions >= 1000,
                "{compression:?}: only {compactions} compactions ran"
            );
        }
    }
}
