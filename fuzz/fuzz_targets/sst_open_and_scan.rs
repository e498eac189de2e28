//! Arbitrary bytes as a table file: open (footer, index, filter, properties)
//! and scan both ways, through mmap and through positioned reads. Errors
//! are expected; panics and wrong memory accesses are the bugs.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_kv::internals::sst_open_and_scan(data, true);
    let _ = strata_kv::internals::sst_open_and_scan(data, false);
});
