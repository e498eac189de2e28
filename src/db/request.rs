//! A write as the commit leader sees it: a batch, its durability, and what
//! must hold when it commits (a prepare step, `update` ops whose keys must
//! exist, namespace key limits), evaluated against the latest state.
//!
//! Conditional writes are atomic against every other write because the
//! leader evaluates them (in memory mode, under the exclusive write lock)
//! with every earlier write visible, including the earlier batches of its
//! own group (`StateView::overlay`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{DbInner, SuperVersion, resolve};
use crate::batch::{WriteBatch, ops_of};
use crate::error::{Error, Result};
use crate::format::{KIND_DELETE, MAX_SEQUENCE};
use crate::key;
use crate::memtable::Found;
use crate::options::Durability;

/// Runs in the leader before the batch is written; may read the state,
/// fill in the batch, or refuse (its error goes back to the writer).
pub(crate) type Prepare = Box<dyn FnOnce(&StateView<'_>, &mut WriteBatch) -> Result<()> + Send>;

/// One write on its way to the commit leader.
pub(crate) struct WriteRequest {
    pub(crate) batch: WriteBatch,
    pub(crate) durability: Durability,
    /// Apply the valid ops and report the rest, instead of all-or-nothing.
    pub(crate) best_effort: bool,
    pub(crate) prepare: Option<Prepare>,
}

impl WriteRequest {
    pub(crate) fn new(batch: WriteBatch, durability: Durability) -> Self {
        WriteRequest {
            batch,
            durability,
            best_effort: false,
            prepare: None,
        }
    }

    /// True if the leader must look at the state to commit this write.
    pub(crate) fn needs_state(&self, inner: &DbInner) -> bool {
        self.prepare.is_some() || self.batch.has_conditions() || inner.touches_limited(&self.batch)
    }
}

/// What a committed write returns.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    /// Sequence number of the last op written (the published sequence if none).
    pub(crate) last_seq: u64,
    /// Ops left out of a best-effort batch, by index, with the reason.
    pub(crate) rejected: Vec<(usize, Error)>,
}

/// The latest state, as the leader sees it: everything committed before
/// this group, plus the batches of this group accepted so far.
pub(crate) struct StateView<'a> {
    inner: &'a DbInner,
    sv: Arc<SuperVersion>,
    now_ms: u64,
    /// ukey -> newest version written earlier in this group.
    overlay: HashMap<Vec<u8>, Found>,
}

impl<'a> StateView<'a> {
    pub(crate) fn new(inner: &'a DbInner) -> Self {
        StateView {
            sv: inner.super_version.load_full(),
            now_ms: inner.now_ms(),
            inner,
            overlay: HashMap::new(),
        }
    }

    /// The newest version of `ukey` (value, tombstone or expired put).
    pub(crate) fn latest(&self, ukey: &[u8]) -> Result<Option<Found>> {
        if let Some(f) = self.overlay.get(ukey) {
            return Ok(Some(f.clone()));
        }
        if let Some(index) = &self.inner.point_index {
            // In memory, writes held off: the index has every key's newest
            // version, except tombstones it forgot, which the skiplist keeps
            // while a snapshot (say, a transaction's) may need them.
            return Ok(index
                .get(ukey)
                .or_else(|| self.sv.mem.get(ukey, MAX_SEQUENCE)));
        }
        self.sv.get(ukey, MAX_SEQUENCE)
    }

    /// The current value of `ukey`, if it has one (expired entries have none).
    pub(crate) fn value(&self, ukey: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.latest(ukey)?.and_then(|f| resolve(f, self.now_ms)))
    }

    pub(crate) fn exists(&self, ukey: &[u8]) -> Result<bool> {
        self.value(ukey).map(|v| v.is_some())
    }

    /// Sequence of the newest version of `ukey`; `u64::MAX` if written in this group.
    pub(crate) fn latest_seq(&self, ukey: &[u8]) -> Result<Option<u64>> {
        if self.overlay.contains_key(ukey) {
            return Ok(Some(u64::MAX));
        }
        Ok(self.latest(ukey)?.map(|f| key::seq_of(f.trailer)))
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Makes an accepted batch's writes visible to the rest of the group.
    fn absorb(&mut self, batch: &WriteBatch) {
        let rep = Bytes::copy_from_slice(batch.rep());
        for op in ops_of(&rep) {
            let Ok(op) = op else { break };
            let ukey = key::ukey(op.ns, op.key);
            let found = Found {
                trailer: key::trailer(MAX_SEQUENCE, op.kind),
                value: rep.slice(op.value_range),
            };
            self.overlay.insert(ukey, found);
        }
    }
}

impl DbInner {
    /// True if the batch writes to a namespace with a key limit.
    pub(crate) fn touches_limited(&self, batch: &WriteBatch) -> bool {
        if !self.has_limits.load(Ordering::Acquire) {
            return false;
        }
        ops_of(batch.rep()).filter_map(|op| op.ok()).any(|op| {
            op.ns != 0
                && self
                    .namespaces
                    .by_id(op.ns)
                    .is_some_and(|m| m.max_keys().is_some())
        })
    }

    /// Evaluates a request against `view`: runs its prepare step, checks its
    /// `update` ops and namespace limits. Returns the batch to write (the
    /// valid ops, for best effort) and the ops refused. All-or-nothing
    /// requests fail with the first refusal.
    pub(crate) fn evaluate(
        &self,
        view: &mut StateView<'_>,
        req: &mut WriteRequest,
    ) -> Result<(WriteBatch, Vec<(usize, Error)>)> {
        let mut batch = req.batch.take();
        if let Some(prepare) = req.prepare.take() {
            prepare(view, &mut batch)?;
        }
        batch.stamp_expiries(|| view.now_ms());
        let mut refused: Vec<(usize, Error)> = batch.take_invalid();
        let mut drop_positions = Vec::new();
        if batch.has_conditions() || self.touches_limited(&batch) {
            // Walk the ops in order, each seeing the ones before it.
            let mut local: HashMap<Vec<u8>, bool> = HashMap::new();
            let mut deltas: HashMap<u32, i64> = HashMap::new();
            let rep = batch.rep().to_vec();
            for (pos, op) in ops_of(&rep).enumerate() {
                let Ok(op) = op else { break };
                let ukey = key::ukey(op.ns, op.key);
                let exists = match local.get(&ukey) {
                    Some(e) => *e,
                    None => view.exists(&ukey)?,
                };
                let refuse = |e: Error| (batch.index_of(pos), e);
                if batch.must_exist().contains(&pos) && !exists {
                    refused.push(refuse(Error::NotFound));
                    drop_positions.push(pos);
                    continue;
                }
                let puts = op.kind != KIND_DELETE;
                let limit = (op.ns != 0)
                    .then(|| self.namespaces.by_id(op.ns))
                    .flatten()
                    .and_then(|m| m.max_keys().map(|max| (m, max)));
                if let Some((meta, max)) = limit {
                    let delta = deltas.entry(op.ns).or_insert(0);
                    let count = meta.count.load(Ordering::Acquire) + *delta;
                    if puts && !exists && count >= max as i64 {
                        refused.push(refuse(Error::LimitExceeded {
                            reason: format!(
                                "namespace {:?} holds its maximum of {max} keys",
                                meta.name
                            ),
                        }));
                        drop_positions.push(pos);
                        continue;
                    }
                    *delta += i64::from(puts) - i64::from(exists);
                }
                local.insert(ukey, puts);
            }
            if !req.best_effort
                && let Some((_, e)) = refused.first()
            {
                return Err(e.clone());
            }
            if !drop_positions.is_empty() {
                batch = batch.without(&drop_positions);
            }
            for (ns, delta) in deltas {
                if let Some(meta) = self.namespaces.by_id(ns) {
                    meta.count.fetch_add(delta, Ordering::AcqRel);
                }
            }
        } else if !req.best_effort
            && let Some((_, e)) = refused.first()
        {
            return Err(e.clone());
        }
        view.absorb(&batch);
        refused.sort_by_key(|(i, _)| *i);
        Ok((batch, refused))
    }

    /// `evaluate` for a request that needs no look at the state.
    pub(crate) fn evaluate_plain(
        &self,
        req: &mut WriteRequest,
    ) -> Result<(WriteBatch, Vec<(usize, Error)>)> {
        let mut batch = req.batch.take();
        batch.stamp_expiries(|| self.now_ms());
        let refused = batch.take_invalid();
        if !req.best_effort
            && let Some((_, e)) = refused.first()
        {
            return Err(e.clone());
        }
        Ok((batch, refused))
    }
}
