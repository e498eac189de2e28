//! Namespaces, batch modes, conditional ops, transactions, TTL and watch.

mod common;

use std::sync::Arc;
use std::time::Duration;

use strata_kv::fs::MemFs;
use strata_kv::{Db, Durability, Error, Event, ManualClock, NamespaceOptions, Options, WriteBatch};

fn disk(fs: &MemFs) -> Options {
    Options::default()
        .durability(Durability::Buffered)
        .file_system(Arc::new(fs.clone()))
}

fn both() -> Vec<(&'static str, Db)> {
    let fs = MemFs::new();
    vec![
        ("disk", Db::open("/db", disk(&fs)).expect("open")),
        (
            "memory",
            Db::open_in_memory(Options::default()).expect("open"),
        ),
    ]
}

#[test]
fn namespaces_are_separate_key_spaces_and_batches_span_them_atomically() {
    for (name, db) in both() {
        let users = db.namespace("users").expect("ns");
        let orders = db.namespace("orders").expect("ns");
        users.put(b"1", b"alice").expect("put");
        orders.put(b"1", b"order-1").expect("put");
        db.put(b"1", b"default").expect("put");
        assert_eq!(
            users.get(b"1").expect("get").expect("v"),
            b"alice",
            "{name}"
        );
        assert_eq!(orders.get(b"1").expect("get").expect("v"), b"order-1");
        assert_eq!(db.get(b"1").expect("get").expect("v"), b"default");
        assert_eq!(
            db.namespaces().expect("list"),
            vec!["orders".to_string(), "users".to_string()]
        );
        assert_eq!(
            common::collect(users.iter()).len(),
            1,
            "iteration stays inside the namespace"
        );

        let mut b = WriteBatch::new();
        b.put_in(&users, b"2", b"bob");
        b.delete_in(&orders, b"1");
        b.put(b"2", b"default-2");
        db.write(b).expect("cross-namespace batch");
        assert_eq!(users.get(b"2").expect("get").expect("v"), b"bob");
        assert!(orders.get(b"1").expect("get").is_none());
        assert_eq!(db.get(b"2").expect("get").expect("v"), b"default-2");

        db.drop_namespace("orders").expect("drop");
        assert!(
            orders.put(b"x", b"y").is_err(),
            "{name}: a dropped namespace's handle fails"
        );
        let again = db.namespace("orders").expect("recreate");
        assert!(
            again.iter().next().is_none(),
            "{name}: a recreated namespace starts empty"
        );
    }
}

#[test]
fn namespace_options_persist_and_max_keys_is_a_hard_limit() {
    let fs = MemFs::new();
    {
        let db = Db::open("/db", disk(&fs)).expect("open");
        let ns = db
            .namespace_with("small", NamespaceOptions::default().max_keys(3))
            .expect("ns");
        for k in ["a", "b", "c"] {
            ns.put(k, b"v").expect("within the limit");
        }
        let err = ns.put(b"d", b"v").expect_err("past the limit");
        assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
        ns.put(b"a", b"overwrite").expect("overwriting still works");
        ns.delete(b"b").expect("delete");
        ns.put(b"d", b"v").expect("a freed slot can be used");
        assert!(ns.put(b"e", b"v").is_err());
    }
    let db = Db::open("/db", disk(&fs)).expect("reopen");
    let ns = db.namespace("small").expect("ns");
    assert_eq!(ns.options(), NamespaceOptions::default().max_keys(3));
    assert!(
        ns.put(b"e", b"v").is_err(),
        "limit and count survive reopen"
    );
    assert_eq!(common::collect(ns.iter()).len(), 3);
}

#[test]
fn a_best_effort_batch_applies_valid_ops_atomically_and_reports_the_rest() {
    for (name, db) in both() {
        db.put(b"exists", b"old").expect("put");
        let mut b = WriteBatch::new();
        b.put(b"ok1", b"1"); // 0
        b.put(vec![0u8; 64 * 1024 + 1], b"oversize key"); // 1
        b.update(b"missing", b"x"); // 2
        b.update(b"exists", b"new"); // 3
        b.delete(b"ok1-never"); // 4
        let report = db.write_best_effort(b).expect("best effort");
        assert_eq!(report.applied, 3, "{name}");
        let idx: Vec<usize> = report.errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![1, 2], "{name}");
        assert!(matches!(report.errors[0].1, Error::InvalidArgument { .. }));
        assert!(matches!(report.errors[1].1, Error::NotFound));
        assert_eq!(db.get(b"ok1").expect("get").expect("v"), b"1");
        assert_eq!(db.get(b"exists").expect("get").expect("v"), b"new");
        assert!(db.get(b"missing").expect("get").is_none());
        // All-or-nothing mode refuses the same batch whole.
        let mut b = WriteBatch::new();
        b.put(b"ok2", b"2");
        b.update(b"missing", b"x");
        assert!(matches!(db.write(b), Err(Error::NotFound)));
        assert!(db.get(b"ok2").expect("get").is_none());
    }
}

#[test]
fn conditional_ops_return_old_values_and_write_nothing_when_refused() {
    for (name, db) in both() {
        assert_eq!(
            db.insert_returning_old(b"k", b"1").expect("insert"),
            None,
            "{name}"
        );
        assert_eq!(
            db.insert_returning_old(b"k", b"2")
                .expect("insert")
                .expect("old"),
            b"1"
        );
        assert_eq!(db.update(b"k", b"3").expect("update"), b"2");
        assert!(matches!(db.update(b"nope", b"x"), Err(Error::NotFound)));
        assert!(db.get(b"nope").expect("get").is_none());
        assert_eq!(db.consume(b"k").expect("consume").expect("v"), b"3");
        assert!(db.get(b"k").expect("get").is_none());
        assert_eq!(db.consume(b"k").expect("consume"), None);
        assert!(
            db.compare_and_swap(b"c", None, Some(b"1"))
                .expect("cas")
                .is_ok()
        );
        let conflict = db
            .compare_and_swap(b"c", None, Some(b"x"))
            .expect("cas")
            .expect_err("conflict");
        assert_eq!(conflict.current.expect("current"), b"1");
        assert!(
            db.compare_and_swap(b"c", Some(b"1"), None)
                .expect("cas")
                .is_ok()
        );
        assert!(db.get(b"c").expect("get").is_none());
    }
}

#[test]
fn eight_threads_of_cas_increments_count_to_exactly_80_000() {
    for (name, db) in both() {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let mut retries = 0u64;
                    for _ in 0..10_000 {
                        loop {
                            let cur = db.get(b"counter").expect("get");
                            let n: u64 = cur.as_ref().map_or(0, |v| {
                                std::str::from_utf8(v).expect("utf8").parse().expect("n")
                            });
                            let next = (n + 1).to_string();
                            match db
                                .compare_and_swap(b"counter", cur.as_deref(), Some(next.as_bytes()))
                                .expect("cas")
                            {
                                Ok(()) => break,
                                Err(_) => retries += 1,
                            }
                        }
                    }
                    retries
                })
            })
            .collect();
        let retries: u64 = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        let v = db.get(b"counter").expect("get").expect("counter");
        assert_eq!(
            std::str::from_utf8(&v).expect("utf8"),
            "80000",
            "{name} ({retries} retries)"
        );
    }
}

#[test]
fn bank_transfers_in_transactions_keep_the_total_at_every_snapshot() {
    for (name, db) in both() {
        for a in 0..100 {
            db.put(format!("acct{a:03}"), 1000u64.to_le_bytes())
                .expect("put");
        }
        let read = |v: Option<strata_kv::Value>| {
            u64::from_le_bytes(v.expect("account").as_ref().try_into().expect("8"))
        };
        let workers: Vec<_> = (0..4u64)
            .map(|w| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(w);
                    let (mut done, mut conflicts) = (0, 0);
                    while done < 300 {
                        let (from, to) = (rng.u32(0..100), rng.u32(0..100));
                        if from == to {
                            continue;
                        }
                        let mut txn = db.transaction();
                        let a = read(txn.get(format!("acct{from:03}")).expect("get"));
                        let b = read(txn.get(format!("acct{to:03}")).expect("get"));
                        let amount = rng.u64(0..=a.min(50));
                        txn.put(format!("acct{from:03}"), (a - amount).to_le_bytes());
                        txn.put(format!("acct{to:03}"), (b + amount).to_le_bytes());
                        match txn.commit() {
                            Ok(()) => done += 1,
                            Err(Error::Conflict) => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    conflicts
                })
            })
            .collect();
        let checker = {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut checks = 0;
                for _ in 0..50 {
                    let snap = db.snapshot();
                    let total: u64 = (0..100)
                        .map(|a| read(snap.get(format!("acct{a:03}")).expect("get")))
                        .sum();
                    assert_eq!(total, 100_000, "total changed at a snapshot");
                    checks += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
                checks
            })
        };
        let conflicts: u64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
        assert_eq!(checker.join().expect("checker"), 50);
        let total: u64 = common::contents(&db)
            .iter()
            .map(|(_, v)| u64::from_le_bytes(v[..8].try_into().expect("8")))
            .sum();
        assert_eq!(
            total, 100_000,
            "{name}: final total ({conflicts} conflicts)"
        );
    }
}

#[test]
fn a_transaction_sees_its_own_writes_and_conflicts_on_a_key_changed_under_it() {
    for (name, db) in both() {
        db.put(b"a", b"1").expect("put");
        db.put(b"c", b"3").expect("put");
        let mut t = db.transaction();
        t.put(b"b", b"2");
        t.delete(b"c");
        let seen: Vec<_> = t
            .range(b"a".to_vec()..b"z".to_vec())
            .expect("range")
            .into_iter()
            .map(|(k, _)| k.to_vec())
            .collect();
        assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec()], "{name}");
        db.put(b"a", b"changed").expect("concurrent write");
        assert!(matches!(t.commit(), Err(Error::Conflict)), "{name}");
        assert!(
            db.get(b"b").expect("get").is_none(),
            "nothing of a conflicting commit is written"
        );
        let mut t = db.transaction();
        t.put(b"b", b"2");
        t.commit().expect("no conflict");
        assert_eq!(db.get(b"b").expect("get").expect("v"), b"2");
        let t = db.transaction();
        db.put(b"zz", b"x").expect("put");
        t.rollback();
    }
}

#[test]
fn ttl_entries_vanish_at_their_deadline_survive_reopen_and_leave_the_tables_on_compaction() {
    let fs = MemFs::new();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let opts = || disk(&fs).clock(clock.clone());
    {
        let db = Db::open("/db", opts()).expect("open");
        db.put_with_ttl(b"short", b"s", Duration::from_secs(10))
            .expect("put");
        db.put_with_ttl(b"long", b"l", Duration::from_secs(100))
            .expect("put");
        db.put(b"forever", b"f").expect("put");
        let ns = db
            .namespace_with(
                "session",
                NamespaceOptions::default().default_ttl(Duration::from_secs(5)),
            )
            .expect("ns");
        ns.put(b"token", b"t").expect("put");
        clock.advance(Duration::from_secs(4));
        assert!(db.get(b"short").expect("get").is_some());
        assert!(ns.get(b"token").expect("get").is_some());
        clock.advance(Duration::from_secs(2));
        assert!(
            ns.get(b"token").expect("get").is_none(),
            "default TTL applies to plain puts"
        );
        assert!(db.get(b"short").expect("get").is_some());
    }
    let db = Db::open("/db", opts()).expect("reopen");
    assert!(
        db.get(b"short").expect("get").is_some(),
        "deadline survives reopen"
    );
    clock.advance(Duration::from_secs(5));
    assert!(
        db.get(b"short").expect("get").is_none(),
        "invisible after the deadline"
    );
    assert!(!db.exists(b"short").expect("exists"));
    let keys: Vec<_> = common::contents(&db).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![b"forever".to_vec(), b"long".to_vec()]);
    db.compact().expect("compact");
    let entries_before: u64 = db.stats().levels.iter().map(|l| l.entries).sum();
    clock.advance(Duration::from_secs(200));
    db.compact().expect("compact again");
    let entries: u64 = db.stats().levels.iter().map(|l| l.entries).sum();
    assert_eq!(
        entries, 1,
        "only the key without TTL stays in the tables (was {entries_before})"
    );
}

#[test]
fn subscribers_see_their_prefix_in_commit_order_and_a_slow_one_lags() {
    for (name, db) in both() {
        let users = db.watch_prefix(b"user:");
        let orders = db.watch_prefix(b"order:");
        let all = db.watch_prefix(b"");
        let never_reads = db.watch_prefix(b"");
        let mut expected_users = Vec::new();
        let mut expected_orders = Vec::new();
        for i in 0..100u32 {
            db.put(format!("user:{i}"), format!("u{i}")).expect("put");
            expected_users.push(format!("user:{i}"));
            let mut b = WriteBatch::new();
            b.put(format!("order:{i}"), b"o");
            b.delete(format!("user:{i}"));
            db.write(b).expect("batch");
            expected_orders.push(format!("order:{i}"));
        }
        let drain = |s: &strata_kv::Subscriber| {
            let mut v = Vec::new();
            while let Some(e) = s.recv_timeout(Duration::from_millis(50)) {
                v.push(e);
            }
            v
        };
        let u = drain(&users);
        assert_eq!(u.len(), 200, "{name}");
        let mut last_seq = 0;
        for (i, e) in u.iter().enumerate() {
            let (key, seq, put) = match e {
                Event::Put { key, seq, .. } => (key, *seq, true),
                Event::Delete { key, seq } => (key, *seq, false),
                other => panic!("{name}: unexpected {other:?}"),
            };
            assert_eq!(key, expected_users[i / 2].as_bytes());
            assert_eq!(put, i % 2 == 0);
            assert!(seq > last_seq, "commit order");
            last_seq = seq;
        }
        let o = drain(&orders);
        let okeys: Vec<_> = o
            .iter()
            .map(|e| match e {
                Event::Put { key, .. } => String::from_utf8(key.to_vec()).expect("utf8"),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(okeys, expected_orders);
        assert_eq!(drain(&all).len(), 300);
        // A subscriber that never reads falls behind without slowing writers.
        for i in 0..(strata_kv::watch_capacity() as u32 + 10) {
            db.put(format!("flood:{i}"), b"x").expect("put");
        }
        let lagged = drain(&never_reads);
        assert!(
            lagged
                .iter()
                .any(|e| matches!(e, Event::Lagged(n) if *n > 0)),
            "{name}: no Lagged event"
        );
    }
}
