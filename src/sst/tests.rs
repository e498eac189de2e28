//! Table round trips: build tables and read every key back through every
//! access path.
#![expect(clippy::indexing_slicing, reason = "tests index fixtures they built")]

use std::path::Path;
use std::sync::Arc;

use super::{Table, TableBuilder, TableIter};
use crate::cache::BlockCache;
use crate::format::{KIND_DELETE, KIND_PUT};
use crate::fs::{FileSystem, MemFs};
use crate::hash::hash_key;
use crate::iter::InternalIterator;
use crate::key;
use crate::options::{Compression, Options};
use crate::sst::Probe;

fn ikey(i: u32) -> Vec<u8> {
    let mut v = Vec::new();
    let kind = if i % 7 == 3 { KIND_DELETE } else { KIND_PUT };
    key::push_ikey(
        &mut v,
        format!("key{:06}", i * 2).as_bytes(),
        u64::from(i) + 1,
        kind,
    );
    v
}

fn value(i: u32) -> Vec<u8> {
    format!("value-{i}-")
        .repeat((i % 5) as usize + 1)
        .into_bytes()
}

fn build(entries: &[(Vec<u8>, Vec<u8>)], opts: &Options, cache: usize) -> Arc<Table> {
    let fs = MemFs::new();
    fs.create_dir_all(Path::new("/t")).expect("mkdir");
    let path = Path::new("/t/000001.sst");
    let file = fs.create(path).expect("create");
    let mut b = TableBuilder::new(file, path.to_owned(), opts);
    for (k, v) in entries {
        b.add(k, v).expect("add");
    }
    let (props, size) = b.finish().expect("finish");
    assert_eq!(props.entries, entries.len() as u64);
    let file = fs.open(path).expect("open");
    assert_eq!(file.len(), size);
    let table = Table::open(
        file,
        path.to_owned(),
        1,
        Arc::new(BlockCache::new(cache, 4096)),
        cache.is_multiple_of(2),
    )
    .expect("open table");
    Arc::new(table)
}

fn entries(n: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n).map(|i| (ikey(i), value(i))).collect()
}

fn configs() -> Vec<(Options, usize)> {
    let mut out = Vec::new();
    for c in [Compression::None, Compression::Lz4, Compression::Snappy] {
        for (block, restart) in [(256, 1), (1024, 16), (4096, 3)] {
            // Even cache sizes read through mmap, odd ones through pread.
            for cache in [0usize, 1 << 20, (1 << 20) + 1] {
                let o = Options::default()
                    .compression(c)
                    .block_size(block)
                    .block_restart_interval(restart);
                out.push((o, cache));
            }
        }
    }
    out
}

#[test]
fn every_key_reads_back_and_absent_keys_do_not() {
    let data = entries(2000);
    for (opts, cache) in configs() {
        let t = build(&data, &opts, cache);
        for (i, (k, v)) in data.iter().enumerate() {
            let (ukey, trailer) = key::split(k).expect("ikey");
            let target = key::seek_key(ukey, key::seq_of(trailer));
            match t.get(&target, ukey, hash_key(ukey), false).expect("get") {
                Probe::Found(f) => {
                    assert_eq!(f.trailer, trailer, "{i}");
                    assert_eq!(&f.value[..], &v[..], "{i}");
                }
                other => panic!("key {i} not found: {other:?} ({opts:?})"),
            }
            // Below its sequence the version is invisible.
            let before = key::seek_key(ukey, key::seq_of(trailer) - 1);
            assert!(matches!(
                t.get(&before, ukey, hash_key(ukey), false).expect("get"),
                Probe::Absent
            ));
            let absent = format!("key{:06}", i * 2 + 1).into_bytes();
            let target = key::seek_key(&absent, u64::MAX >> 8);
            assert!(matches!(
                t.get(&target, &absent, hash_key(&absent), false)
                    .expect("get"),
                Probe::Absent
            ));
        }
    }
}

#[test]
fn seeks_land_on_every_key_and_between_keys_in_both_directions() {
    let data = entries(700);
    for (opts, cache) in configs() {
        let t = build(&data, &opts, cache);
        let mut it = TableIter::new(Arc::clone(&t));
        for i in 0..data.len() {
            it.seek(&data[i].0);
            assert_eq!(it.key(), &data[i].0[..]);
            // Between key i-1 and key i: a key with an odd number.
            let between = {
                let ukey = match i {
                    0 => "kea".to_owned(),
                    _ => format!("key{:06}", i * 2 - 1),
                };
                let mut v = Vec::new();
                key::push_ikey(&mut v, ukey.as_bytes(), 1, KIND_PUT);
                v
            };
            it.seek(&between);
            assert_eq!(it.key(), &data[i].0[..], "seek between before {i}");
            it.seek_for_prev(&data[i].0);
            assert_eq!(it.key(), &data[i].0[..]);
            it.seek_for_prev(&between);
            if i == 0 {
                assert!(!it.valid());
            } else {
                assert_eq!(
                    it.key(),
                    &data[i - 1].0[..],
                    "seek_for_prev between before {i}"
                );
            }
        }
        let mut past = b"zzz".to_vec();
        past.extend_from_slice(&[0; 8]);
        it.seek(&past);
        assert!(!it.valid());
        it.seek_for_prev(&past);
        assert_eq!(it.key(), &data[data.len() - 1].0[..]);
        it.status().expect("no error");
    }
}

#[test]
fn full_scans_cross_block_boundaries_forward_and_reverse() {
    let data = entries(3000);
    for (opts, cache) in configs() {
        let t = build(&data, &opts, cache);
        assert!(t.data_blocks() > 5, "want many blocks");
        let mut it = TableIter::new(Arc::clone(&t));
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            assert_eq!(it.key(), &data[n].0[..]);
            assert_eq!(&it.value()[..], &data[n].1[..]);
            it.next();
            n += 1;
        }
        assert_eq!(n, data.len());
        it.seek_to_last();
        while it.valid() {
            n -= 1;
            assert_eq!(it.key(), &data[n].0[..]);
            it.prev();
        }
        assert_eq!(n, 0);
    }
}

#[test]
fn an_empty_table_opens_and_holds_nothing() {
    let t = build(&[], &Options::default(), 0);
    let mut it = TableIter::new(Arc::clone(&t));
    it.seek_to_first();
    assert!(!it.valid());
    it.seek_to_last();
    assert!(!it.valid());
    let target = key::seek_key(b"k", 5);
    assert!(matches!(
        t.get(&target, b"k", hash_key(b"k"), false).expect("get"),
        Probe::Absent
    ));
}

#[test]
fn a_table_holding_one_64_mib_value() {
    let big: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut k = Vec::new();
    key::push_ikey(&mut k, b"big", 1, KIND_PUT);
    for c in [Compression::None, Compression::Lz4] {
        let t = build(
            &[(k.clone(), big.clone())],
            &Options::default().compression(c),
            0,
        );
        let target = key::seek_key(b"big", 1);
        match t
            .get(&target, b"big", hash_key(b"big"), false)
            .expect("get")
        {
            Probe::Found(f) => assert!(f.value[..] == big[..], "{c:?}"),
            other => panic!("{other:?}"),
        }
    }
}
