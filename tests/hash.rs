//! The stable hash: batch (SIMD lanes where the CPU has them) and scalar agree.

use strata_kv::hash::{hash_key, hash_keys_batch, hash_keys_scalar, jump_consistent_hash};

#[test]
fn batch_and_scalar_hashes_agree_on_100k_random_keys_of_0_to_300_bytes() {
    let mut rng = fastrand::Rng::with_seed(2026);
    let keys: Vec<Vec<u8>> = (0..100_000)
        .map(|_| {
            let len = rng.usize(0..=300);
            (0..len).map(|_| rng.u8(..)).collect()
        })
        .collect();
    let (mut batch, mut scalar) = (Vec::new(), Vec::new());
    hash_keys_batch(&keys, &mut batch);
    hash_keys_scalar(&keys, &mut scalar);
    assert_eq!(batch.len(), keys.len());
    assert!(batch == scalar, "batch and scalar hashes differ");
    // Keys of one length class together (the lanes' best case), too.
    let same: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| format!("user:{i:011}").into_bytes())
        .collect();
    hash_keys_batch(&same, &mut batch);
    assert!(same.iter().zip(&batch).all(|(k, h)| hash_key(k) == *h));
}

#[test]
fn jump_hash_spreads_keys_evenly() {
    let mut counts = [0u32; 8];
    for i in 0..80_000u32 {
        counts[jump_consistent_hash(hash_key(&i.to_le_bytes()), 8) as usize] += 1;
    }
    assert!(
        counts.iter().all(|&c| (9_000..11_000).contains(&c)),
        "{counts:?}"
    );
}
