//! The block cache: decompressed (or, without mmap, read) blocks shared by
//! every reader, bounded by a byte budget.
//!
//! Concurrency: sharded internally (quick_cache); any thread may get or insert.
//! Blocks are immutable and cheap to clone, so a hit hands out a shared copy.

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, OptionsBuilder, Weighter};

use crate::sst::Block;

/// Charge for a cached block's bookkeeping, on top of the heap bytes it
/// holds (none for a block that points into a memory map: its bytes belong
/// to the page cache, not to this budget, so this is all it is charged).
const BLOCK_BOOKKEEPING_CHARGE: u64 = 64;

/// Lock shards (quick_cache lowers the count for a small cache). Its
/// default, four per core, is 8 on two cores: a reader preempted while it
/// holds a shard's lock to insert a block then stalls an eighth of all
/// reads until it runs again.
const SHARDS: usize = 64;

#[derive(Clone)]
struct Entry {
    block: Block,
    charge: u64,
}

#[derive(Clone, Copy)]
struct ByCharge;

impl Weighter<(u64, u64), Entry> for ByCharge {
    fn weight(&self, _key: &(u64, u64), val: &Entry) -> u64 {
        val.charge
    }
}

/// Blocks keyed by (table number, block offset).
pub(crate) struct BlockCache {
    cache: Option<Cache<(u64, u64), Entry, ByCharge>>,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("weight", &self.cache.as_ref().map(Cache::weight))
            .finish()
    }
}

impl BlockCache {
    /// A cache holding up to `capacity` bytes; 0 disables caching.
    pub(crate) fn new(capacity: usize) -> BlockCache {
        let cache = (capacity > 0).then(|| {
            let options = OptionsBuilder::new()
                .estimated_items_capacity((capacity / 4096).max(16))
                .weight_capacity(capacity as u64)
                .shards(SHARDS)
                .build();
            match options {
                Ok(o) => Cache::with_options(
                    o,
                    ByCharge,
                    DefaultHashBuilder::default(),
                    DefaultLifecycle::default(),
                ),
                // `build` fails only for a capacity left unset; both are set.
                Err(_) => {
                    Cache::with_weighter((capacity / 4096).max(16), capacity as u64, ByCharge)
                }
            }
        });
        BlockCache { cache }
    }

    pub(crate) fn get(&self, table: u64, offset: u64) -> Option<Block> {
        self.cache.as_ref()?.get(&(table, offset)).map(|e| e.block)
    }

    /// Caches a block; `heap` is the memory its bytes hold of their own (a
    /// buffer's capacity; 0 for a view of a memory map, whose bytes belong
    /// to the page cache).
    pub(crate) fn insert(&self, table: u64, offset: u64, block: Block, heap: u64) {
        if let Some(c) = &self.cache {
            let charge = heap + BLOCK_BOOKKEEPING_CHARGE;
            c.insert((table, offset), Entry { block, charge });
        }
    }

    /// Bytes currently charged.
    pub(crate) fn usage(&self) -> u64 {
        self.cache.as_ref().map_or(0, Cache::weight)
    }
}
