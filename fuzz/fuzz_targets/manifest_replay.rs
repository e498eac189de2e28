//! Arbitrary bytes as a manifest: read every record and decode it as a version edit.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_kv::internals::manifest_replay(data);
});
