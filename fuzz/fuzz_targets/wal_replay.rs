//! Arbitrary bytes as a WAL: read every record (resynchronising after
//! damage) and check each as a write batch.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_kv::internals::wal_replay(data);
});
