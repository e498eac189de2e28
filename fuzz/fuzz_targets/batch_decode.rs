//! Arbitrary bytes as an encoded write batch (a WAL record's payload).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_kv::internals::batch_decode(data);
});
