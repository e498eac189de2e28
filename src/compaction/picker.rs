//! The compaction picker: a pure function from a version and the options to
//! a decision. No I/O, no locks, so every decision is unit-tested here.
//!
//! Leveled compaction: L0 is compacted into L1 once it holds
//! `l0_compaction_trigger` files; level `i >= 1` is compacted into `i + 1`
//! once its bytes pass its target, `base_level_size * multiplier^(i-1)`.
//! The level with the highest score (size / target) goes first; within a
//! level, files are taken round-robin by key. A table dense with
//! tombstones (or holding expired entries) is compacted even when sizes do
//! not ask for it, as long as doing so makes progress.

use std::sync::Arc;

use crate::key;
use crate::version::{MAX_LEVELS, TableFile, Version};

/// What the picker needs from the options.
#[derive(Debug, Clone)]
pub(crate) struct PickerConfig {
    pub(crate) l0_trigger: usize,
    pub(crate) base_level_size: u64,
    pub(crate) multiplier: u64,
    pub(crate) tombstone_ratio: f64,
    /// Tables with fewer entries are never picked for tombstone density.
    pub(crate) min_tombstone_entries: u64,
}

impl PickerConfig {
    pub(crate) fn target_bytes(&self, level: usize) -> u64 {
        let mut t = self.base_level_size;
        for _ in 1..level {
            t = t.saturating_mul(self.multiplier);
        }
        t
    }
}

/// Why a compaction was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    L0Files,
    LevelSize,
    Tombstones,
    Expired,
    Manual,
}

/// The picker's decision.
#[derive(Debug, Clone)]
pub(crate) enum Pick {
    /// Move one file down a level without rewriting it.
    TrivialMove { level: usize, file: Arc<TableFile> },
    /// Merge `inputs` (from `level`) with `overlapping` (from
    /// `output_level`) into new files in `output_level`.
    Merge {
        level: usize,
        output_level: usize,
        inputs: Vec<Arc<TableFile>>,
        overlapping: Vec<Arc<TableFile>>,
        /// No deeper level holds any key in the range: tombstones may go.
        bottommost: bool,
        reason: Reason,
    },
}

/// Round-robin positions: per level, the largest key of the file last compacted.
pub(crate) type Pointers = [Vec<u8>; MAX_LEVELS];

/// How far over its target each level is (L0 counts files).
pub(crate) fn level_scores(version: &Version, cfg: &PickerConfig) -> Vec<(usize, f64)> {
    let mut scores = Vec::new();
    scores.push((
        0,
        version.levels[0].len() as f64 / cfg.l0_trigger.max(1) as f64,
    ));
    for level in 1..MAX_LEVELS - 1 {
        let bytes = version.level_bytes(level) as f64;
        scores.push((level, bytes / cfg.target_bytes(level) as f64));
    }
    scores
}

/// Bytes that compaction must rewrite before every level is within target
/// (an estimate, for backpressure).
pub(crate) fn pending_compaction_bytes(version: &Version, cfg: &PickerConfig) -> u64 {
    let mut pending = 0;
    if version.levels[0].len() >= cfg.l0_trigger {
        pending += version.level_bytes(0);
    }
    for level in 1..MAX_LEVELS - 1 {
        let bytes = version.level_bytes(level);
        let target = cfg.target_bytes(level);
        if bytes > target {
            // Each byte over target is merged into a level `multiplier` times larger.
            pending += (bytes - target).saturating_mul(cfg.multiplier + 1);
        }
    }
    pending
}

/// True if no level below `output_level` holds a key in `[lo, hi]`.
fn is_bottommost(version: &Version, output_level: usize, lo: &[u8], hi: &[u8]) -> bool {
    (output_level + 1..MAX_LEVELS).all(|l| version.overlapping(l, lo, hi).is_empty())
}

fn ukey_range(files: &[Arc<TableFile>]) -> (Vec<u8>, Vec<u8>) {
    let lo = files
        .iter()
        .map(|f| f.smallest_ukey())
        .min()
        .unwrap_or_default();
    let hi = files
        .iter()
        .map(|f| f.largest_ukey())
        .max()
        .unwrap_or_default();
    (lo.to_vec(), hi.to_vec())
}

/// Builds the merge of `inputs` at `level` into `output_level`.
pub(crate) fn merge_into(
    version: &Version,
    level: usize,
    output_level: usize,
    inputs: Vec<Arc<TableFile>>,
    reason: Reason,
) -> Pick {
    let (lo, hi) = ukey_range(&inputs);
    let overlapping = if output_level == level {
        Vec::new()
    } else {
        version.overlapping(output_level, &lo, &hi)
    };
    let mut all = inputs.clone();
    all.extend(overlapping.iter().cloned());
    let (lo, hi) = ukey_range(&all);
    Pick::Merge {
        level,
        output_level,
        bottommost: is_bottommost(version, output_level, &lo, &hi),
        inputs,
        overlapping,
        reason,
    }
}

/// Chooses the next compaction, or `None` if every level is within target.
/// `oldest_snapshot` is the oldest live snapshot's sequence, if any; `now_ms` the clock.
pub(crate) fn pick(
    version: &Version,
    cfg: &PickerConfig,
    pointers: &Pointers,
    oldest_snapshot: Option<u64>,
    now_ms: u64,
) -> Option<Pick> {
    let mut scores = level_scores(version, cfg);
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    if let Some(&(level, score)) = scores.first()
        && score >= 1.0
    {
        return Some(pick_level(version, pointers, level));
    }
    pick_garbage(version, cfg, oldest_snapshot, now_ms)
}

fn pick_level(version: &Version, pointers: &Pointers, level: usize) -> Pick {
    if level == 0 {
        let inputs = version.levels[0].clone();
        // A file sharing no key range with another L0 file or with L1 moves
        // down as it is, oldest first: what sequential loads produce.
        let alone = inputs.iter().rev().find(|f| {
            let (lo, hi) = (f.smallest_ukey(), f.largest_ukey());
            inputs
                .iter()
                .all(|g| Arc::ptr_eq(f, g) || g.largest_ukey() < lo || g.smallest_ukey() > hi)
                && version.overlapping(1, lo, hi).is_empty()
        });
        if let Some(file) = alone {
            return Pick::TrivialMove {
                level: 0,
                file: Arc::clone(file),
            };
        }
        return merge_into(version, 0, 1, inputs, Reason::L0Files);
    }
    let files = &version.levels[level];
    let pointer = &pointers[level];
    let file = files
        .iter()
        .find(|f| pointer.is_empty() || key::compare(&f.info.largest, pointer).is_gt())
        .or_else(|| files.first())
        .cloned();
    let Some(file) = file else {
        return merge_into(version, level, level + 1, Vec::new(), Reason::LevelSize);
    };
    if version
        .overlapping(level + 1, file.smallest_ukey(), file.largest_ukey())
        .is_empty()
    {
        return Pick::TrivialMove { level, file };
    }
    merge_into(version, level, level + 1, vec![file], Reason::LevelSize)
}

/// A table worth rewriting for the garbage it holds: dense tombstones or
/// expired entries, where the rewrite will actually drop them (or at least
/// push them a level down, which ends at the bottom).
fn pick_garbage(
    version: &Version,
    cfg: &PickerConfig,
    oldest_snapshot: Option<u64>,
    now_ms: u64,
) -> Option<Pick> {
    for level in 1..MAX_LEVELS {
        for f in &version.levels[level] {
            let info = &f.info;
            let dense = info.entries >= cfg.min_tombstone_entries
                && info.tombstones as f64 >= cfg.tombstone_ratio * info.entries as f64;
            let expired = info.min_expiry != 0 && info.min_expiry <= now_ms;
            if !dense && !expired {
                continue;
            }
            let reason = if dense {
                Reason::Tombstones
            } else {
                Reason::Expired
            };
            let below_snapshots = oldest_snapshot.is_none_or(|s| info.largest_seq < s);
            let bottom_here = is_bottommost(version, level, f.smallest_ukey(), f.largest_ukey());
            if bottom_here {
                // Rewriting in place drops what no snapshot can see.
                if below_snapshots && (dense || expired) {
                    return Some(merge_into(
                        version,
                        level,
                        level,
                        vec![Arc::clone(f)],
                        reason,
                    ));
                }
            } else if level + 1 < MAX_LEVELS {
                return Some(merge_into(
                    version,
                    level,
                    level + 1,
                    vec![Arc::clone(f)],
                    reason,
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::BlockCache;
    use crate::format::KIND_PUT;
    use crate::fs::MemFs;
    use crate::version::{FileInfo, TableCtx, VersionEdit};

    fn ctx() -> Arc<TableCtx> {
        Arc::new(TableCtx {
            fs: Arc::new(MemFs::new()),
            dir: "/".into(),
            cache: Arc::new(BlockCache::new(0, 4096)),
            use_mmap: false,
        })
    }

    fn ik(u: &str, seq: u64) -> Vec<u8> {
        let mut v = Vec::new();
        key::push_ikey(&mut v, u.as_bytes(), seq, KIND_PUT);
        v
    }

    fn file(number: u64, lo: &str, hi: &str, size: u64) -> FileInfo {
        FileInfo {
            number,
            size,
            smallest: ik(lo, 10),
            largest: ik(hi, 1),
            smallest_seq: 1,
            largest_seq: 10,
            entries: 100,
            ..FileInfo::default()
        }
    }

    fn version(files: Vec<(usize, FileInfo)>) -> Version {
        let edit = VersionEdit {
            added: files,
            ..VersionEdit::default()
        };
        Version::default().apply(&edit, &ctx()).0
    }

    fn cfg() -> PickerConfig {
        PickerConfig {
            l0_trigger: 4,
            base_level_size: 1000,
            multiplier: 10,
            tombstone_ratio: 0.5,
            min_tombstone_entries: 10,
        }
    }

    fn numbers(files: &[Arc<TableFile>]) -> Vec<u64> {
        let mut n: Vec<u64> = files.iter().map(|f| f.number()).collect();
        n.sort_unstable();
        n
    }

    const NO_POINTERS: Pointers = [const { Vec::new() }; MAX_LEVELS];

    #[test]
    fn nothing_to_do_below_every_trigger() {
        let v = version(vec![
            (0, file(1, "a", "c", 10)),
            (1, file(2, "a", "z", 500)),
        ]);
        assert!(pick(&v, &cfg(), &NO_POINTERS, None, 0).is_none());
    }

    #[test]
    fn l0_at_trigger_merges_all_of_l0_with_overlapping_l1() {
        let v = version(vec![
            (0, file(1, "a", "c", 10)),
            (0, file(2, "b", "d", 10)),
            (0, file(3, "c", "e", 10)),
            (0, file(4, "a", "b", 10)),
            (1, file(5, "a", "b", 100)),
            (1, file(6, "d", "f", 100)),
            (1, file(7, "x", "z", 100)),
        ]);
        let Some(Pick::Merge {
            level,
            output_level,
            inputs,
            overlapping,
            bottommost,
            reason,
        }) = pick(&v, &cfg(), &NO_POINTERS, None, 0)
        else {
            panic!("expected a merge");
        };
        assert_eq!((level, output_level, reason), (0, 1, Reason::L0Files));
        assert_eq!(numbers(&inputs), vec![1, 2, 3, 4]);
        assert_eq!(numbers(&overlapping), vec![5, 6]);
        assert!(bottommost);
    }

    #[test]
    fn l0_file_sharing_no_range_moves_down_trivially_oldest_first() {
        // Sequential loads: disjoint L0 files, and L1 elsewhere.
        let v = version(vec![
            (0, file(4, "g", "h", 10)),
            (0, file(3, "e", "f", 10)),
            (0, file(2, "c", "d", 10)),
            (0, file(1, "a", "b", 10)),
            (1, file(0, "x", "z", 100)),
        ]);
        let Some(Pick::TrivialMove { level, file: moved }) =
            pick(&v, &cfg(), &NO_POINTERS, None, 0)
        else {
            panic!("expected a trivial move");
        };
        assert_eq!((level, moved.number()), (0, 1));
        // The oldest overlaps a newer L0 file: the next disjoint one moves.
        let v = version(vec![
            (0, file(4, "a", "a", 10)),
            (0, file(3, "e", "f", 10)),
            (0, file(2, "c", "d", 10)),
            (0, file(1, "a", "b", 10)),
        ]);
        let Some(Pick::TrivialMove { file: moved, .. }) = pick(&v, &cfg(), &NO_POINTERS, None, 0)
        else {
            panic!("expected a trivial move");
        };
        assert_eq!(moved.number(), 2);
        // One overlapping L1: merge instead.
        let v = version(vec![
            (0, file(4, "g", "h", 10)),
            (0, file(3, "e", "f", 10)),
            (0, file(2, "c", "d", 10)),
            (0, file(1, "a", "b", 10)),
            (1, file(5, "a", "h", 100)),
        ]);
        assert!(matches!(
            pick(&v, &cfg(), &NO_POINTERS, None, 0),
            Some(Pick::Merge { .. })
        ));
    }

    #[test]
    fn oversized_level_moves_a_file_down_trivially_when_nothing_overlaps() {
        let v = version(vec![
            (1, file(1, "a", "c", 800)),
            (1, file(2, "d", "f", 800)),
        ]);
        let Some(Pick::TrivialMove { level, file }) = pick(&v, &cfg(), &NO_POINTERS, None, 0)
        else {
            panic!("expected a trivial move");
        };
        assert_eq!((level, file.number()), (1, 1));
        // The round-robin pointer moves on to the next file.
        let mut ptrs = NO_POINTERS;
        ptrs[1] = ik("c", 1);
        let Some(Pick::TrivialMove { file, .. }) = pick(&v, &cfg(), &ptrs, None, 0) else {
            panic!("expected a trivial move");
        };
        assert_eq!(file.number(), 2);
    }

    #[test]
    fn oversized_level_merges_into_overlapping_next_level_and_knows_it_is_not_bottommost() {
        let v = version(vec![
            (1, file(1, "a", "m", 2000)),
            (2, file(2, "k", "p", 100)),
            (3, file(3, "l", "l", 100)),
        ]);
        let Some(Pick::Merge {
            level,
            output_level,
            inputs,
            overlapping,
            bottommost,
            ..
        }) = pick(&v, &cfg(), &NO_POINTERS, None, 0)
        else {
            panic!("expected a merge");
        };
        assert_eq!((level, output_level), (1, 2));
        assert_eq!(
            (numbers(&inputs), numbers(&overlapping)),
            (vec![1], vec![2])
        );
        assert!(!bottommost, "level 3 holds a key in range");
    }

    #[test]
    fn highest_score_wins() {
        // L0 at 4/4 = 1.0, L1 at 5000/1000 = 5.0.
        let mut files: Vec<_> = (1..=4).map(|n| (0, file(n, "a", "b", 1))).collect();
        files.push((1, file(9, "c", "d", 5000)));
        files.push((2, file(10, "c", "d", 5)));
        let Some(Pick::Merge { level, .. }) = pick(&v_of(files), &cfg(), &NO_POINTERS, None, 0)
        else {
            panic!("expected a merge");
        };
        assert_eq!(level, 1);
    }

    fn v_of(files: Vec<(usize, FileInfo)>) -> Version {
        version(files)
    }

    #[test]
    fn tombstone_dense_tables_are_compacted_when_it_makes_progress() {
        let mut dense = file(1, "a", "c", 10);
        dense.tombstones = 80;
        // At the bottom and older than every snapshot: rewrite in place.
        let v = version(vec![(2, dense.clone())]);
        let Some(Pick::Merge {
            level,
            output_level,
            bottommost,
            reason,
            ..
        }) = pick(&v, &cfg(), &NO_POINTERS, None, 0)
        else {
            panic!("expected a merge");
        };
        assert_eq!((level, output_level, reason), (2, 2, Reason::Tombstones));
        assert!(bottommost);
        // A snapshot older than its tombstones: rewriting would keep them all.
        assert!(pick(&v, &cfg(), &NO_POINTERS, Some(5), 0).is_none());
        // Something below: push it down a level.
        let v = version(vec![(2, dense), (4, file(2, "b", "b", 10))]);
        let Some(Pick::Merge { output_level, .. }) = pick(&v, &cfg(), &NO_POINTERS, None, 0) else {
            panic!("expected a merge");
        };
        assert_eq!(output_level, 3);
        // Sparse tombstones are left alone.
        let mut sparse = file(3, "a", "c", 10);
        sparse.tombstones = 10;
        assert!(pick(&version(vec![(1, sparse)]), &cfg(), &NO_POINTERS, None, 0).is_none());
    }

    #[test]
    fn expired_entries_trigger_a_rewrite() {
        let mut f = file(1, "a", "c", 10);
        f.min_expiry = 500;
        let v = version(vec![(1, f)]);
        assert!(
            pick(&v, &cfg(), &NO_POINTERS, None, 100).is_none(),
            "not expired yet"
        );
        let Some(Pick::Merge { reason, .. }) = pick(&v, &cfg(), &NO_POINTERS, None, 600) else {
            panic!("expected a merge");
        };
        assert_eq!(reason, Reason::Expired);
    }

    #[test]
    fn pending_bytes_count_what_is_over_target() {
        let v = version(vec![
            (1, file(1, "a", "c", 1500)),
            (2, file(2, "a", "c", 100)),
        ]);
        assert_eq!(pending_compaction_bytes(&v, &cfg()), 500 * 11);
    }
}
