//! A buffered async write with nothing else in flight commits on the
//! calling thread: handing it to the commit thread and back would cost two
//! thread wake-ups per write. Seen from outside: the commit thread
//! (`strata-commit`) is never started; a synced async write starts it.
//! (Alone in its file: the count of threads is per process.)
#![cfg(target_os = "linux")]

use strata_kv::kv::{KvStore, PersistKvStore};
use strata_kv::{Durability, Options};

fn commit_threads() -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "strata-commit")
        .count()
}

#[test]
fn lone_buffered_async_writes_never_start_the_commit_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    rt.block_on(async {
        let buffered = Options::default().durability(Durability::Buffered);
        let store = PersistKvStore::open_with(dir.path(), buffered)
            .await
            .expect("open");
        for i in 0..500 {
            store
                .set(&format!("k{i:03}"), vec![3u8; 100])
                .await
                .expect("set");
        }
        assert_eq!(
            commit_threads(),
            0,
            "a buffered write started the commit thread"
        );
        store.close().await.expect("close");

        let synced = Options::default().durability(Durability::Sync);
        let store = PersistKvStore::open_with(dir.path(), synced)
            .await
            .expect("reopen");
        assert_eq!(store.get("k499").await.expect("get"), Some(vec![3u8; 100]));
        store.set("synced", b"yes".to_vec()).await.expect("set");
        assert_eq!(
            commit_threads(),
            1,
            "a synced write runs on the commit thread"
        );
        store.close().await.expect("close");
    });
}
