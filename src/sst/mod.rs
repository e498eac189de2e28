//! Sorted string tables: immutable files of sorted internal keys.
//!
//! ```text
//! table := data_block* | filter_block | props_block | index_block | footer
//! each block is followed by a trailer: compression u8 | crc32 u32
//! ```
//! See `docs/format.md` for every byte.

mod block;
mod buffers;
mod builder;
mod compress;
pub(crate) mod filter;
mod index;
mod prefetch;
mod props;
mod table;
#[cfg(test)]
mod tests;

pub(crate) use block::Block;
#[cfg(any(test, feature = "internals"))]
pub(crate) use block::BlockBuilder;
#[cfg(feature = "internals")]
pub(crate) use block::BlockIter;
pub(crate) use builder::TableBuilder;
pub(crate) use table::{Probe, Table, TableIter};
