//! A cache-line prefetch hint, for searches whose next loads are known
//! before they are needed.

/// Asks the CPU to start loading the cache line holding `r`. Only a hint:
/// a no-op where the target has no prefetch instruction wired here.
#[inline(always)]
pub(super) fn prefetch<T: ?Sized>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    #[expect(unsafe_code, reason = "a prefetch hint")]
    // SAFETY: a prefetch reads nothing architecturally and cannot fault;
    // the pointer comes from a live reference anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            std::ptr::from_ref(r).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
