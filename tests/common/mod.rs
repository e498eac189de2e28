//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use strata_kv::{Db, Result, Value};

/// Collects an iterator of `Result<(Value, Value)>` into owned pairs.
pub fn collect(it: impl Iterator<Item = Result<(Value, Value)>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|kv| {
        let (k, v) = kv.expect("iteration error");
        (k.to_vec(), v.to_vec())
    })
    .collect()
}

/// Every pair of the database, in order.
pub fn contents(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    collect(db.iter())
}

/// A model map as a sorted vector of pairs.
pub fn model_pairs(m: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}
