//! The two disk engines behind one interface, configured alike.

use std::path::Path;

use rocksdb::statistics::Ticker;

use crate::Settings;

/// What a workload needs from an engine.
pub trait Engine: Send + Sync {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String>;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    fn delete(&self, key: &[u8], sync: bool) -> Result<(), String>;
    /// Counts entries scanned forward (or backward), checking each with `check`.
    fn scan(
        &self,
        reverse: bool,
        check: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<u64, String>;
    /// Seeks to `key` and reads up to `nexts` entries after it; returns how many were read.
    fn seek_next(&self, key: &[u8], nexts: usize) -> Result<usize, String>;
    /// Writes the memtable out and waits for background compaction to settle.
    fn settle(&self) -> Result<(), String>;
    /// Bytes written by flushes and compactions so far.
    fn background_write_bytes(&self) -> u64;
    /// Time writers spent stalled, in seconds.
    fn stall_seconds(&self) -> f64;
    fn settings(&self) -> String;
}

pub struct Strata {
    db: strata_kv::Db,
    described: String,
}

impl Strata {
    pub fn open(dir: &Path, s: &Settings) -> Result<Self, String> {
        let opts = strata_kv::Options::default()
            .durability(if s.sync {
                strata_kv::Durability::Sync
            } else {
                strata_kv::Durability::Buffered
            })
            .write_buffer_size(s.write_buffer_size)
            .block_size(s.block_size)
            .block_cache_size(s.block_cache_bytes)
            .bloom_bits_per_key(s.bloom_bits_per_key)
            .compression(strata_kv::Compression::Lz4)
            .l0_compaction_trigger(4)
            .base_level_size(256 << 20)
            .target_file_size(64 << 20)
            .max_background_jobs(2);
        let described = format!(
            "write_buffer_size={} max_write_buffers=2 block_size={} block_cache={} bloom_bits_per_key={} compression=LZ4 \
             L0 triggers 4/20/36 base_level_size=256MiB target_file_size=64MiB max_background_jobs=2 WAL on, sync={}",
            s.write_buffer_size, s.block_size, s.block_cache_bytes, s.bloom_bits_per_key, s.sync
        );
        let db = strata_kv::Db::open(dir, opts).map_err(|e| e.to_string())?;
        Ok(Strata { db, described })
    }
}

impl Engine for Strata {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String> {
        let mut b = strata_kv::WriteBatch::new();
        b.put(key, value);
        let d = if sync {
            strata_kv::Durability::Sync
        } else {
            strata_kv::Durability::Buffered
        };
        self.db.write_with(b, d).map_err(|e| e.to_string())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.db
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| e.to_string())
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<(), String> {
        let mut b = strata_kv::WriteBatch::new();
        b.delete(key);
        let d = if sync {
            strata_kv::Durability::Sync
        } else {
            strata_kv::Durability::Buffered
        };
        self.db.write_with(b, d).map_err(|e| e.to_string())
    }

    fn scan(
        &self,
        reverse: bool,
        check: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<u64, String> {
        let mut n = 0;
        let mut visit =
            |item: strata_kv::Result<(strata_kv::Value, strata_kv::Value)>| -> Result<(), String> {
                let (k, v) = item.map_err(|e| e.to_string())?;
                if !check(&k, &v) {
                    return Err(format!("wrong entry during scan at {k:?}"));
                }
                n += 1;
                Ok(())
            };
        if reverse {
            for item in self.db.iter().rev() {
                visit(item)?;
            }
        } else {
            for item in self.db.iter() {
                visit(item)?;
            }
        }
        Ok(n)
    }

    fn seek_next(&self, key: &[u8], nexts: usize) -> Result<usize, String> {
        let mut n = 0;
        for item in self.db.range(key.to_vec()..).take(nexts + 1) {
            item.map_err(|e| e.to_string())?;
            n += 1;
        }
        Ok(n)
    }

    fn settle(&self) -> Result<(), String> {
        self.db.flush().map_err(|e| e.to_string())?;
        let start = std::time::Instant::now();
        while self.db.stats().pending_compaction_bytes > 0 && start.elapsed().as_secs() < 120 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(())
    }

    fn background_write_bytes(&self) -> u64 {
        let s = self.db.stats();
        s.flush_bytes_written + s.compaction_bytes_written
    }

    fn stall_seconds(&self) -> f64 {
        self.db.stats().stall_time.as_secs_f64()
    }

    fn settings(&self) -> String {
        self.described.clone()
    }
}

pub struct Rocks {
    db: rocksdb::DB,
    opts: rocksdb::Options,
    write_sync: rocksdb::WriteOptions,
    write_async: rocksdb::WriteOptions,
    described: String,
}

impl Rocks {
    pub fn open(dir: &Path, s: &Settings) -> Result<Self, String> {
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_size(s.block_size);
        let cache = rocksdb::Cache::new_lru_cache(s.block_cache_bytes);
        table.set_block_cache(&cache);
        table.set_bloom_filter(f64::from(s.bloom_bits_per_key), false);
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.set_block_based_table_factory(&table);
        opts.set_write_buffer_size(s.write_buffer_size);
        opts.set_max_write_buffer_number(2);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_level_zero_file_num_compaction_trigger(4);
        opts.set_level_zero_slowdown_writes_trigger(20);
        opts.set_level_zero_stop_writes_trigger(36);
        opts.set_max_bytes_for_level_base(256 << 20);
        opts.set_target_file_size_base(64 << 20);
        opts.set_max_background_jobs(2);
        opts.enable_statistics();
        let db = rocksdb::DB::open(&opts, dir).map_err(|e| e.to_string())?;
        let mut write_sync = rocksdb::WriteOptions::default();
        write_sync.set_sync(true);
        let mut write_async = rocksdb::WriteOptions::default();
        write_async.set_sync(false);
        let described = format!(
            "write_buffer_size={} max_write_buffer_number=2 block_size={} block_cache={} (LRU) bloom_bits_per_key={} compression=LZ4 \
             L0 triggers 4/20/36 max_bytes_for_level_base=256MiB target_file_size_base=64MiB max_background_jobs=2 WAL on, sync={}",
            s.write_buffer_size, s.block_size, s.block_cache_bytes, s.bloom_bits_per_key, s.sync
        );
        Ok(Rocks {
            db,
            opts,
            write_sync,
            write_async,
            described,
        })
    }
}

impl Engine for Rocks {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String> {
        let o = if sync {
            &self.write_sync
        } else {
            &self.write_async
        };
        self.db.put_opt(key, value, o).map_err(|e| e.to_string())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.db
            .get_pinned(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| e.to_string())
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<(), String> {
        let o = if sync {
            &self.write_sync
        } else {
            &self.write_async
        };
        self.db.delete_opt(key, o).map_err(|e| e.to_string())
    }

    fn scan(
        &self,
        reverse: bool,
        check: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<u64, String> {
        let mut it = self.db.raw_iterator();
        if reverse {
            it.seek_to_last();
        } else {
            it.seek_to_first();
        }
        let mut n = 0;
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if !check(k, v) {
                return Err(format!("wrong entry during scan at {k:?}"));
            }
            n += 1;
            if reverse {
                it.prev();
            } else {
                it.next();
            }
        }
        it.status().map_err(|e| e.to_string())?;
        Ok(n)
    }

    fn seek_next(&self, key: &[u8], nexts: usize) -> Result<usize, String> {
        let mut it = self.db.raw_iterator();
        it.seek(key);
        let mut n = 0;
        while it.valid() && n <= nexts {
            n += 1;
            it.next();
        }
        it.status().map_err(|e| e.to_string())?;
        Ok(n)
    }

    fn settle(&self) -> Result<(), String> {
        self.db.flush().map_err(|e| e.to_string())?;
        let start = std::time::Instant::now();
        loop {
            let pending = self
                .db
                .property_int_value("rocksdb.estimate-pending-compaction-bytes")
                .map_err(|e| e.to_string())?
                .unwrap_or(0);
            let running = self
                .db
                .property_int_value("rocksdb.num-running-compactions")
                .map_err(|e| e.to_string())?
                .unwrap_or(0);
            if (pending == 0 && running == 0) || start.elapsed().as_secs() >= 120 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn background_write_bytes(&self) -> u64 {
        self.opts.get_ticker_count(Ticker::FlushWriteBytes)
            + self.opts.get_ticker_count(Ticker::CompactWriteBytes)
    }

    fn stall_seconds(&self) -> f64 {
        self.opts.get_ticker_count(Ticker::StallMicros) as f64 / 1e6
    }

    fn settings(&self) -> String {
        self.described.clone()
    }
}
