//! A table's block index, decoded once and kept resident: each data block's
//! last key and handle, and a search structure laid out for the CPU cache.
//!
//! The search runs on 8-byte integers, not keys: each block's last user key
//! contributes the big-endian 8 bytes that follow the prefix every key of
//! the table shares. Those integers sit in Eytzinger order (a binary tree
//! stored breadth first: position k's children are 2k and 2k + 1), so the
//! first levels of every search share a few hot cache lines, and the node
//! three levels below the current one lies in a single line that is
//! prefetched while the search walks down to it. On a 1M-key table (about
//! 28k blocks) a search is some 15 dependent loads; in sorted order each of
//! the deeper ones missed the cache in turn.
//!
//! Concurrency: built once when the table opens, read-only afterwards.
#![deny(clippy::indexing_slicing)]

use super::prefetch::prefetch;
use crate::key;

/// Eight search integers: one 64-byte cache line.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Line([u64; 8]);

/// The search integers in Eytzinger order, positions 1..=n (0 unused), and
/// for each position the block it stands for.
#[derive(Debug, Default)]
struct Eytzinger {
    lines: Vec<Line>,
    block_at: Vec<u32>,
}

impl Eytzinger {
    fn build(sorted: &[u64]) -> Eytzinger {
        let n = sorted.len();
        let mut out = Eytzinger {
            lines: vec![Line::default(); n / 8 + 1],
            block_at: vec![0; n + 1],
        };
        // In-order walk of positions 1..=n hands out the sorted values in turn.
        let mut next = 0;
        let mut stack = Vec::new();
        let mut k = 1;
        while k <= n || !stack.is_empty() {
            if k <= n {
                stack.push(k);
                k *= 2;
                continue;
            }
            let Some(at) = stack.pop() else { break };
            if let (Some(slot), Some(&v)) = (out.slot_mut(at), sorted.get(next)) {
                *slot = v;
            }
            if let Some(b) = out.block_at.get_mut(at) {
                *b = next as u32;
            }
            next += 1;
            k = 2 * at + 1;
        }
        out
    }

    fn slot_mut(&mut self, k: usize) -> Option<&mut u64> {
        self.lines.get_mut(k / 8)?.0.get_mut(k % 8)
    }

    fn get(&self, k: usize) -> Option<u64> {
        self.lines.get(k / 8)?.0.get(k % 8).copied()
    }

    /// The first block whose integer is >= `p` (`n` if none), and that integer.
    fn lower_bound(&self, p: u64) -> (usize, Option<u64>) {
        let n = self.block_at.len().saturating_sub(1);
        let mut k = 1;
        let mut found = None;
        while let Some(x) = self.get(k).filter(|_| k <= n) {
            // Positions 8k..8k+8, three levels down, share line k.
            if let Some(line) = self.lines.get(k) {
                prefetch(line);
            }
            if x >= p {
                found = Some(x);
            }
            k = 2 * k + usize::from(x < p);
        }
        // The answer is where the walk last went left: drop the right turns
        // taken after it, then that left turn.
        k >>= k.trailing_ones() + 1;
        match self.block_at.get(k) {
            Some(&b) if k > 0 => (b as usize, found),
            _ => (n, None),
        }
    }
}

/// 8 bytes of `ukey` after `skip`, big-endian, zero-padded: ordered like
/// the user keys themselves (never out of order, sometimes equal).
fn prefix_after(ukey: &[u8], skip: usize) -> u64 {
    let mut b = [0u8; 8];
    let rest = ukey.get(skip..).unwrap_or_default();
    let n = rest.len().min(8);
    if let (Some(dst), Some(src)) = (b.get_mut(..n), rest.get(..n)) {
        dst.copy_from_slice(src);
    }
    u64::from_be_bytes(b)
}

/// Each data block's last key, stored back to back, and its handle; plus the
/// search structure, built by `seal`.
#[derive(Debug, Default)]
pub(super) struct BlockIndex {
    keys: Vec<u8>,
    ends: Vec<usize>,
    handles: Vec<(u64, u64)>,
    /// The user-key prefix common to every key of the table.
    common: Vec<u8>,
    search: Option<Eytzinger>,
}

impl BlockIndex {
    pub(super) fn len(&self) -> usize {
        self.handles.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    pub(super) fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).copied().unwrap_or(0)
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.keys.get(start..end).unwrap_or_default()
    }

    /// (offset, size) of data block `i`.
    pub(super) fn handle(&self, i: usize) -> Option<(u64, u64)> {
        self.handles.get(i).copied()
    }

    pub(super) fn push(&mut self, last_key: &[u8], offset: u64, size: u64) {
        self.keys.extend_from_slice(last_key);
        self.ends.push(self.keys.len());
        self.handles.push((offset, size));
    }

    /// Builds the search structure once every key is in (in order: the
    /// decoder checks). The common prefix comes from the index's own first
    /// and last keys, so every key it searches shares it whatever the
    /// properties block claims (a smallest key that disagreed with the
    /// index used to make the integers unsorted).
    pub(super) fn seal(&mut self) {
        let first = key::ukey_of(self.key(0));
        let last = key::ukey_of(self.key(self.len().saturating_sub(1)));
        let common = first.iter().zip(last).take_while(|(a, b)| a == b).count();
        self.common = first.get(..common).unwrap_or_default().to_vec();
        let sorted: Vec<u64> = (0..self.len()).map(|i| self.prefix(i)).collect();
        self.search = Some(Eytzinger::build(&sorted));
    }

    fn prefix(&self, i: usize) -> u64 {
        prefix_after(key::ukey_of(self.key(i)), self.common.len())
    }

    /// The first block whose last key is >= `target`.
    pub(super) fn find(&self, target: &[u8]) -> usize {
        let full_search = |lo: usize, hi: usize| {
            let (mut lo, mut hi) = (lo, hi);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if key::compare(self.key(mid), target).is_lt() {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        let ukey = key::ukey_of(target);
        let Some(search) = self
            .search
            .as_ref()
            .filter(|_| ukey.starts_with(&self.common))
        else {
            return full_search(0, self.len());
        };
        let p = prefix_after(ukey, self.common.len());
        let (lo, at_lo) = search.lower_bound(p);
        // Every block before `lo` ends below the target, and a block whose
        // integer is greater ends above it, so only a run of equal integers
        // needs whole keys. Runs are usually empty or one block long: gallop
        // to the run's end instead of searching the rest of the index.
        if at_lo != Some(p) {
            return lo;
        }
        let equal = |i: usize| i < self.len() && self.prefix(i) == p;
        let mut bound = 1;
        while equal(lo + bound) {
            bound *= 2;
        }
        let (mut a, mut b) = (lo + bound / 2, (lo + bound).min(self.len()));
        while a + 1 < b {
            let mid = a + (b - a) / 2;
            if equal(mid) {
                a = mid;
            } else {
                b = mid;
            }
        }
        full_search(lo, a + 1)
    }
}

#[cfg(test)]
#[expect(clippy::indexing_slicing, reason = "tests index fixtures they built")]
mod tests {
    use super::{BlockIndex, Eytzinger};
    use crate::format::KIND_PUT;
    use crate::key;

    fn ikey(ukey: &[u8], seq: u64) -> Vec<u8> {
        let mut v = Vec::new();
        key::push_ikey(&mut v, ukey, seq, KIND_PUT);
        v
    }

    /// The Eytzinger lower bound agrees with `partition_point` for every
    /// size up to a few tree levels and every probe value, duplicates
    /// included.
    #[test]
    fn lower_bound_agrees_with_partition_point() {
        for n in 0..70u64 {
            let sorted: Vec<u64> = (0..n).map(|i| 10 + 2 * (i / 3)).collect();
            let e = Eytzinger::build(&sorted);
            for p in 0..(2 * n + 14) {
                let want = sorted.partition_point(|&x| x < p);
                let (got, value) = e.lower_bound(p);
                assert_eq!(got, want, "n {n} p {p}");
                assert_eq!(value, sorted.get(want).copied(), "n {n} p {p}");
            }
        }
    }

    /// The search prefix once came from the properties block's smallest
    /// key: one that disagreed with the index (CRC-valid, but written
    /// wrong) made the integers unsorted and lookups miss keys that exist.
    #[test]
    fn regression_the_search_prefix_comes_from_the_index_keys() {
        let mut index = BlockIndex::default();
        for (i, u) in [b"aaz", b"abc", b"abz"].iter().enumerate() {
            index.push(&ikey(*u, 5), i as u64 * 10, 10);
        }
        index.seal();
        assert_eq!(
            index.common, b"a",
            "the first and last index keys share only \"a\""
        );
        for (target, want) in [(&b"abd"[..], 2), (b"aaa", 0), (b"abc", 1), (b"zz", 3)] {
            assert_eq!(index.find(&ikey(target, 5)), want, "{target:?}");
        }
    }

    /// Index searches agree with a linear scan, including long runs of
    /// blocks whose 8-byte search integers are equal (keys that differ only
    /// past the prefix window) and targets outside the common prefix.
    #[test]
    fn find_agrees_with_a_linear_scan_across_equal_prefix_runs() {
        let mut ukeys: Vec<Vec<u8>> = Vec::new();
        for group in 0..5u8 {
            let run = [1usize, 2, 3, 40, 7][usize::from(group)];
            for i in 0..run {
                // "t/" common, then 8 bytes equal within a group, then a suffix.
                ukeys.push(format!("t/grp{group}____{i:04}").into_bytes());
            }
        }
        ukeys.push(b"t/grp9".to_vec());
        let mut index = BlockIndex::default();
        for (i, u) in ukeys.iter().enumerate() {
            index.push(&ikey(u, 100), i as u64 * 10, 10);
        }
        index.seal();
        let mut targets: Vec<Vec<u8>> = ukeys.clone();
        targets.extend(ukeys.iter().map(|u| [u.as_slice(), b"\0"].concat()));
        targets.extend(ukeys.iter().map(|u| u[..u.len() - 1].to_vec()));
        targets.extend([b"".to_vec(), b"a".to_vec(), b"t/".to_vec(), b"u".to_vec()]);
        for t in &targets {
            for seq in [1, 100, 1000] {
                let target = ikey(t, seq);
                let expect = (0..index.len())
                    .find(|&i| key::compare(index.key(i), &target).is_ge())
                    .unwrap_or(index.len());
                assert_eq!(
                    index.find(&target),
                    expect,
                    "target {:?} seq {seq}",
                    String::from_utf8_lossy(t)
                );
            }
        }
    }
}
