//! Recycled buffers for decompressed blocks.
//!
//! Once the block cache is full, every miss decompresses a block into a
//! new ~4 KiB buffer and evicts an older block, whose buffer is freed. The
//! evicted buffer is cold, and glibc's `free` of a cold 4 KiB chunk (which
//! bypasses the small-chunk thread cache and merges neighbours) took 7% of
//! a default-cache point read. Instead, the buffer of a dropped block goes
//! back to a small pool, and the next miss decompresses into it.
//!
//! Concurrency: each thread has its own pool, so no lock is taken. A buffer
//! returns to the pool of the thread that drops the block's last reference
//! (for the cache's evictions, the thread whose insert evicted it: the one
//! that reads). A pool holds at most `POOLED_PER_THREAD` buffers of at most
//! `MAX_POOLED_CAPACITY` bytes, outside the block cache's budget.

use std::cell::RefCell;

use bytes::Bytes;

/// Buffers kept per thread: 32 × ~4 KiB.
const POOLED_PER_THREAD: usize = 32;

/// Larger buffers (blocks of huge values, or tables with large blocks) are
/// freed, not kept: a pool holds at most 32 × 16 KiB.
const MAX_POOLED_CAPACITY: usize = 16 << 10;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer from this thread's pool, if it has one. Its contents are the
/// bytes of an earlier block: initialized, so it can be decompressed into
/// without zeroing it first.
pub(crate) fn take() -> Option<Vec<u8>> {
    POOL.try_with(|p| p.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
}

/// Block bytes whose buffer returns to a pool when the last reference drops.
pub(crate) fn into_bytes(buf: Vec<u8>) -> Bytes {
    Bytes::from_owner(Recycled(buf))
}

struct Recycled(Vec<u8>);

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if buf.capacity() > MAX_POOLED_CAPACITY {
            return;
        }
        // During thread exit the pool may be gone: the buffer is then freed.
        let _ = POOL.try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut()
                && p.len() < POOLED_PER_THREAD
            {
                p.push(buf);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_block_buffer_is_reused_and_the_pool_is_bounded() {
        while take().is_some() {}
        let bytes = into_bytes(vec![7u8; 4096]);
        let view = bytes.slice(10..20);
        drop(bytes);
        assert!(take().is_none(), "a slice still holds the buffer");
        drop(view);
        let buf = take().expect("returned to the pool");
        assert_eq!(buf.len(), 4096, "contents kept: no zeroing needed");
        assert!(take().is_none());

        drop(into_bytes(vec![0u8; MAX_POOLED_CAPACITY + 1]));
        assert!(take().is_none(), "large buffers are freed");

        let many: Vec<Bytes> = (0..POOLED_PER_THREAD + 5)
            .map(|_| into_bytes(vec![1u8; 100]))
            .collect();
        drop(many);
        let kept = std::iter::from_fn(take).count();
        assert_eq!(kept, POOLED_PER_THREAD);
    }
}
