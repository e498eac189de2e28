//! What a change subscription costs writers: a 100k-put loop with no
//! subscriber, then with one that watches every key and never reads (it
//! falls behind, is marked lagged, and must not slow writers down).
//!
//! `cargo run --release --example watch_overhead`
//!
//! Runs alternate (none, watching, none, watching, ...) over 5 rounds on a
//! fresh database each; the medians and their ratio are printed.

use std::time::Instant;

use strata_kv::{Db, Durability, Options};

const WRITES: u32 = 100_000;

fn run(memory: bool, subscribe: bool) -> strata_kv::Result<f64> {
    let dir = tempfile::tempdir().map_err(|e| strata_kv::Error::Io(e.into()))?;
    let db = if memory {
        Db::open_in_memory(Options::default())?
    } else {
        Db::open(
            dir.path().join("db"),
            Options::default().durability(Durability::Buffered),
        )?
    };
    let subscriber = subscribe.then(|| db.watch_prefix(b"key"));
    let value = vec![b'v'; 100];
    let start = Instant::now();
    for i in 0..WRITES {
        db.put(format!("key{i:012}"), &value)?;
    }
    let secs = start.elapsed().as_secs_f64();
    if let Some(s) = &subscriber {
        // It never read: events past its queue's capacity were dropped, not
        // buffered without end, and it is told how many.
        let kept = strata_kv::watch_capacity();
        let events: Vec<_> = std::iter::from_fn(|| s.try_recv()).collect();
        assert_eq!(events.len(), kept + 1, "the queue, then one Lagged");
        let dropped = u64::from(WRITES) - kept as u64;
        assert_eq!(events.last(), Some(&strata_kv::Event::Lagged(dropped)));
    }
    db.close()?;
    Ok(f64::from(WRITES) / secs)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> strata_kv::Result<()> {
    for memory in [true, false] {
        let (mut plain, mut watched) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            plain.push(run(memory, false)?);
            watched.push(run(memory, true)?);
        }
        let (p, w) = (median(&mut plain), median(&mut watched));
        println!(
            "{:<22} no subscriber {:>9.0} puts/s | one lagging subscriber {:>9.0} puts/s | ratio {:.3}",
            if memory {
                "in memory:"
            } else {
                "on disk (buffered):"
            },
            p,
            w,
            w / p
        );
    }
    Ok(())
}
