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

/// Most lock shards. quick_cache's default, four per core, is 8 on two
/// cores: a reader preempted while it holds a shard's lock to insert a
/// block then stalls an eighth of all reads until it runs again.
const MAX_SHARDS: usize = 64;

/// Blocks of the configured size each shard has room for, at least. Each
/// shard gets an equal part of the budget and refuses an entry heavier
/// than about all of it, so large blocks need fewer, larger shards.
const MIN_BLOCKS_PER_SHARD: usize = 16;

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
    /// A cache holding up to `capacity` bytes of blocks of about
    /// `block_size` bytes; 0 disables caching.
    pub(crate) fn new(capacity: usize, block_size: usize) -> BlockCache {
        let block = block_size.max(4096);
        let shards = (capacity / block.saturating_mul(MIN_BLOCKS_PER_SHARD)).clamp(1, MAX_SHARDS);
        let cache = (capacity > 0).then(|| {
            let options = OptionsBuilder::new()
                .estimated_items_capacity((capacity / block).max(16))
                .weight_capacity(capacity as u64)
                // A power of two, as quick_cache rounds up to one.
                .shards(1 << shards.ilog2())
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
                    Cache::with_weighter((capacity / block).max(16), capacity as u64, ByCharge)
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

    /// Drops every cached block of table `table`: its file is being
    /// deleted. A block of a mapped table is a view of its map, and would
    /// otherwise keep the deleted file mapped, and its disk space taken,
    /// until evicted. Visits the whole cache (a shard at a time).
    pub(crate) fn evict_table(&self, table: u64) {
        if let Some(c) = &self.cache {
            c.retain(|&(t, _), _| t != table);
        }
    }

    /// Bytes currently charged.
    pub(crate) fn usage(&self) -> u64 {
        self.cache.as_ref().map_or(0, Cache::weight)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::sst::BlockBuilder;

    /// A block of about `len` bytes (one entry).
    fn block_of(len: usize) -> (Block, u64) {
        let mut b = BlockBuilder::new(16);
        b.add(b"key", &vec![7u8; len]);
        let bytes = Bytes::copy_from_slice(b.finish());
        let heap = bytes.len() as u64;
        (Block::new(bytes).expect("a block just built"), heap)
    }

    #[test]
    fn a_block_of_the_configured_size_fits_a_shard() {
        for (capacity, block_size) in [(64 << 20, 4096), (64 << 20, 1 << 20), (8 << 20, 256 << 10)]
        {
            let cache = BlockCache::new(capacity, block_size);
            let (block, heap) = block_of(block_size);
            cache.insert(1, 0, block, heap);
            assert!(
                cache.get(1, 0).is_some(),
                "a {block_size}-byte block in a {capacity}-byte cache was refused"
            );
        }
    }

    #[test]
    fn evicting_a_table_drops_its_blocks_only() {
        let cache = BlockCache::new(1 << 20, 4096);
        for table in [1, 2] {
            for offset in [0, 4096] {
                let (block, heap) = block_of(100);
                cache.insert(table, offset, block, heap);
            }
        }
        cache.evict_table(1);
        assert!(cache.get(1, 0).is_none() && cache.get(1, 4096).is_none());
        assert!(cache.get(2, 0).is_some() && cache.get(2, 4096).is_some());
    }

    #[test]
    fn small_blocks_spread_over_many_shards() {
        let cache = BlockCache::new(64 << 20, 4096);
        let shards = cache.cache.as_ref().map_or(0, Cache::num_shards);
        assert_eq!(shards, MAX_SHARDS);
    }
}
