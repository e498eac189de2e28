//! The strata-kv demo: the async `KvStore` API on a persistent store in a
//! temporary directory (or, with `--memory`, on the in-memory store).
//!
//! ```text
//! cargo run --release --example kv_store            # PersistKvStore
//! cargo run --release --example kv_store -- --memory
//! ```

use std::sync::Arc;

use strata_kv::hash::{hash_key, hash_keys_batch, jump_consistent_hash};
use strata_kv::kv::{KvStore, MemoryKvStore, PersistKvStore};

fn show(v: &Option<Vec<u8>>) -> String {
    match v {
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        None => "None".to_owned(),
    }
}

async fn crud<S: KvStore>(store: &S) -> strata_kv::Result<()> {
    println!("\n1. Basic CRUD Operations");
    store.set("user:1001", b"Alice".to_vec()).await?;
    println!("   SET user:1001 = Alice");
    store.set("user:1002", b"Bob".to_vec()).await?;
    println!("   SET user:1002 = Bob");
    println!(
        "   GET user:1001 -> {}",
        show(&store.get("user:1001").await?)
    );
    store.set("user:1001", b"Alice Smith".to_vec()).await?;
    println!(
        "   UPDATE user:1001 = Alice Smith -> {}",
        show(&store.get("user:1001").await?)
    );
    println!(
        "   EXISTS user:1002 -> {}",
        store.exists("user:1002").await?
    );
    println!(
        "   EXISTS user:9999 -> {}",
        store.exists("user:9999").await?
    );
    store.delete("user:1002").await?;
    println!(
        "   DELETE user:1002 -> GET user:1002 = {}",
        show(&store.get("user:1002").await?)
    );
    Ok(())
}

async fn batches<S: KvStore>(store: &S) -> strata_kv::Result<()> {
    println!("\n2. Batch Operations");
    let pairs = vec![
        ("config:timeout", b"30s".to_vec()),
        ("config:retries", b"3".to_vec()),
        ("config:region", b"eu-west-1".to_vec()),
    ];
    store.batch_set(pairs).await?;
    println!("   BATCH SET 3 config keys (one atomic WAL record)");
    let keys = [
        "config:timeout",
        "config:retries",
        "config:region",
        "config:missing",
    ];
    let values = store.batch_get(&keys).await?;
    println!("   BATCH GET (one snapshot):");
    for (k, v) in keys.iter().zip(&values) {
        println!("     {k} = {}", show(v));
    }
    Ok(())
}

fn hashing() {
    println!("\n3. SIMD Hash Functions");
    println!(
        "   hash_key(\"session:abc123\") = {:#018x}",
        hash_key(b"session:abc123")
    );
    let shards: Vec<String> = (0..8).map(|i| format!("shard:{i}")).collect();
    let mut hashes = Vec::new();
    hash_keys_batch(&shards, &mut hashes);
    println!("   batch hashes for sharding across 4 partitions (jump consistent hash):");
    for (name, h) in shards.iter().zip(&hashes) {
        println!(
            "     {name} -> partition {} (hash {h:#018x})",
            jump_consistent_hash(*h, 4)
        );
    }
}

#[tokio::main]
async fn main() -> strata_kv::Result<()> {
    let memory = std::env::args().any(|a| a == "--memory");
    println!("=== Strata KV Store Demo ===");
    if memory {
        println!("(MemoryKvStore: in memory, no files)");
        let store = Arc::new(MemoryKvStore::new());
        crud(store.as_ref()).await?;
        batches(store.as_ref()).await?;
    } else {
        let dir = tempfile::tempdir()?;
        println!(
            "(PersistKvStore in {}, durable writes)",
            dir.path().display()
        );
        let store = Arc::new(PersistKvStore::open(dir.path()).await?);
        crud(store.as_ref()).await?;
        batches(store.as_ref()).await?;
    }
    hashing();
    Ok(())
}
