//! Compaction: choosing what to merge (`picker`, a pure function), merging
//! it (`job`), and the two pieces flush shares with it: which entries
//! survive a rewrite ([`EntryFilter`]) and how outputs are cut into tables
//! ([`OutputTables`]). Also the write backpressure computed from how far
//! compaction lags behind.

mod filter;
mod job;
mod output;
pub(crate) mod picker;

use std::time::Duration;

pub(crate) use filter::{Decision, EntryFilter};
pub(crate) use output::OutputTables;
pub(crate) use picker::{Pick, PickerConfig, Pointers};

use crate::db::{DbInner, SuperVersion};

/// What a writer should do before committing, given compaction debt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Pressure {
    None,
    /// Slow down: this write should take at least this much longer.
    Delay(Duration),
    /// Stop until compaction catches up.
    Stop,
}

/// Writes slow from this rate at the soft limit...
const MAX_DELAYED_RATE: f64 = 64.0 * 1024.0 * 1024.0;
/// ...towards this one at the hard limit (bytes per second).
const MIN_DELAYED_RATE: f64 = 256.0 * 1024.0;

impl DbInner {
    pub(crate) fn picker_config(&self) -> PickerConfig {
        PickerConfig {
            l0_trigger: self.opts.l0_compaction_trigger,
            base_level_size: self.opts.base_level_size,
            multiplier: self.opts.level_size_multiplier,
            tombstone_ratio: self.opts.tombstone_compaction_ratio,
            min_tombstone_entries: 16,
        }
    }

    /// The next compaction to run, if any.
    pub(crate) fn pick_compaction(&self) -> Option<Pick> {
        if self.in_memory {
            return None;
        }
        let version = std::sync::Arc::clone(&self.super_version.load().version);
        let pointers = self.compact_pointers.lock().clone();
        picker::pick(
            &version,
            &self.picker_config(),
            &pointers,
            self.snapshots.oldest(),
            self.now_ms(),
        )
    }

    /// Backpressure for a write of `bytes`: a delay that grows smoothly
    /// from the soft limits (L0 files, pending compaction bytes) to the hard
    /// ones, where writes stop.
    pub(crate) fn write_pressure(&self, sv: &SuperVersion, bytes: usize) -> Pressure {
        let o = &self.opts;
        let l0 = sv.version.levels[0].len();
        let pending = picker::pending_compaction_bytes(&sv.version, &self.picker_config());
        if l0 >= o.l0_stop_trigger || pending >= o.hard_pending_compaction_bytes {
            return Pressure::Stop;
        }
        let l0_frac = if l0 >= o.l0_slowdown_trigger {
            (l0 - o.l0_slowdown_trigger + 1) as f64
                / (o.l0_stop_trigger - o.l0_slowdown_trigger + 1) as f64
        } else {
            0.0
        };
        let pending_frac = if pending >= o.soft_pending_compaction_bytes {
            let span = (o.hard_pending_compaction_bytes - o.soft_pending_compaction_bytes).max(1);
            (pending - o.soft_pending_compaction_bytes) as f64 / span as f64
        } else {
            0.0
        };
        let frac = l0_frac.max(pending_frac).min(1.0);
        if frac <= 0.0 {
            return Pressure::None;
        }
        let rate = MAX_DELAYED_RATE * (1.0 - frac).powi(2) + MIN_DELAYED_RATE;
        Pressure::Delay(Duration::from_secs_f64(bytes.max(1) as f64 / rate))
    }
}
