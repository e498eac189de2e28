//! Which versions a rewrite (flush or compaction) must keep.
//!
//! Live snapshots cut the sequence space into *stripes*: versions of a key
//! in the same stripe are indistinguishable to every reader, so only the
//! newest of them is kept. A tombstone (or an expired entry) is dropped
//! only at the bottommost level and only in the oldest stripe, where no
//! reader can see anything beneath it.

use crate::batch::ttl_expiry;
use crate::format::{KIND_DELETE, KIND_PUT_TTL};
use crate::key;

/// What to do with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Keep,
    Drop,
    /// Keep, but as a tombstone: an expired entry still hides older versions.
    KeepAsTombstone,
}

/// Feeds on entries in internal-key order and decides each one.
#[derive(Debug)]
pub(crate) struct EntryFilter {
    /// Live snapshot sequences, ascending.
    snapshots: Vec<u64>,
    bottommost: bool,
    now_ms: u64,
    /// Namespaces whose keys are garbage.
    dropped_ns: Vec<u32>,
    current_ukey: Vec<u8>,
    has_current: bool,
    /// Stripe of the last entry seen for `current_ukey`.
    last_stripe: usize,
}

impl EntryFilter {
    pub(crate) fn new(
        mut snapshots: Vec<u64>,
        bottommost: bool,
        now_ms: u64,
        dropped_ns: Vec<u32>,
    ) -> Self {
        snapshots.sort_unstable();
        EntryFilter {
            snapshots,
            bottommost,
            now_ms,
            dropped_ns,
            current_ukey: Vec::new(),
            has_current: false,
            last_stripe: 0,
        }
    }

    /// The number of snapshots older than `seq`: entries with equal stripes
    /// are seen by exactly the same readers.
    fn stripe(&self, seq: u64) -> usize {
        self.snapshots.partition_point(|&s| s < seq)
    }

    pub(crate) fn decide(&mut self, ikey: &[u8], value: &[u8]) -> Decision {
        let Some((ukey, trailer)) = key::split(ikey) else {
            return Decision::Keep;
        };
        if self.dropped_ns.contains(&key::ns_of(ukey)) {
            return Decision::Drop;
        }
        let stripe = self.stripe(key::seq_of(trailer));
        let first_of_key = !self.has_current || self.current_ukey != ukey;
        if first_of_key {
            self.current_ukey.clear();
            self.current_ukey.extend_from_slice(ukey);
            self.has_current = true;
        } else if stripe == self.last_stripe {
            // A newer version in the same stripe hides this one from everyone.
            return Decision::Drop;
        }
        self.last_stripe = stripe;
        let kind = key::kind_of(trailer);
        let expired = kind == KIND_PUT_TTL && ttl_expiry(value) <= self.now_ms;
        if kind == KIND_DELETE || expired {
            if self.bottommost && stripe == 0 {
                return Decision::Drop;
            }
            if expired {
                return Decision::KeepAsTombstone;
            }
        }
        Decision::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::KIND_PUT;

    fn ik(u: &[u8], seq: u64, kind: u8) -> Vec<u8> {
        let mut v = Vec::new();
        key::push_ikey(&mut v, u, seq, kind);
        v
    }

    #[test]
    fn keeps_newest_per_stripe() {
        // Snapshot at 5: versions 7 and 6 share the top stripe, 4 and 2 the bottom one.
        let mut f = EntryFilter::new(vec![5], false, 0, vec![]);
        let got: Vec<Decision> = [7, 6, 4, 2]
            .iter()
            .map(|&s| f.decide(&ik(b"k", s, KIND_PUT), b"v"))
            .collect();
        assert_eq!(
            got,
            [
                Decision::Keep,
                Decision::Drop,
                Decision::Keep,
                Decision::Drop
            ]
        );
        assert_eq!(f.decide(&ik(b"l", 3, KIND_PUT), b"v"), Decision::Keep);
    }

    #[test]
    fn tombstones_go_only_at_the_bottom_and_below_every_snapshot() {
        let mut f = EntryFilter::new(vec![], true, 0, vec![]);
        assert_eq!(f.decide(&ik(b"k", 9, KIND_DELETE), b""), Decision::Drop);
        assert_eq!(f.decide(&ik(b"k", 3, KIND_PUT), b"v"), Decision::Drop);
        let mut f = EntryFilter::new(vec![], false, 0, vec![]);
        assert_eq!(f.decide(&ik(b"k", 9, KIND_DELETE), b""), Decision::Keep);
        let mut f = EntryFilter::new(vec![4], true, 0, vec![]);
        assert_eq!(f.decide(&ik(b"k", 9, KIND_DELETE), b""), Decision::Keep);
        assert_eq!(f.decide(&ik(b"k", 3, KIND_PUT), b"v"), Decision::Keep);
    }

    #[test]
    fn expired_entries_become_tombstones_or_vanish() {
        let mut v = 100u64.to_le_bytes().to_vec();
        v.extend_from_slice(b"payload");
        let mut f = EntryFilter::new(vec![], false, 200, vec![]);
        assert_eq!(
            f.decide(&ik(b"k", 5, KIND_PUT_TTL), &v),
            Decision::KeepAsTombstone
        );
        let mut f = EntryFilter::new(vec![], true, 200, vec![]);
        assert_eq!(f.decide(&ik(b"k", 5, KIND_PUT_TTL), &v), Decision::Drop);
        let mut f = EntryFilter::new(vec![], true, 50, vec![]);
        assert_eq!(f.decide(&ik(b"k", 5, KIND_PUT_TTL), &v), Decision::Keep);
    }

    #[test]
    fn dropped_namespaces_vanish() {
        let mut f = EntryFilter::new(vec![], false, 0, vec![3]);
        let mut u = 3u32.to_be_bytes().to_vec();
        u.extend_from_slice(b"k");
        assert_eq!(f.decide(&ik(&u, 5, KIND_PUT), b"v"), Decision::Drop);
    }
}
