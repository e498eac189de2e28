//! strata-bench: strata-kv against RocksDB (and, in memory, DashMap) on
//! db_bench-style workloads, side by side on one machine.
//!
//! ```text
//! cargo run --release --manifest-path benches/Cargo.toml -- \
//!     [--engines strata,rocksdb] [--workloads fillrandom,readrandom,...] [--num 1000000] \
//!     [--key-size 16] [--value-size 100] [--threads 16] [--durability sync|buffered] \
//!     [--rounds 3] [--out DIR] [--quick]
//! ```
//! For each workload the engines alternate (A B A B ...) over the rounds,
//! each run in a fresh directory and its own child process, so peak RSS is
//! its own. The table reports medians; the JSON keeps every run.

mod engine;
mod memstore;
mod report;
mod workloads;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use serde::{Deserialize, Serialize};

use engine::{Engine, Rocks, Strata};

#[derive(Parser, Debug, Clone)]
#[command(about = "strata-kv vs RocksDB vs DashMap, db_bench style")]
pub struct Cli {
    /// Engines to compare on the disk workloads.
    #[arg(long, value_delimiter = ',', default_value = "strata,rocksdb")]
    engines: Vec<String>,
    /// Workloads to run (disk: fillseq fillrandom overwrite readrandom readmissing
    /// readseq readreverse seekrandom deleterandom readwhilewriting fillsync;
    /// in memory against DashMap: memset memget).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Keys per workload.
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Writers for fillsync, readers for readwhilewriting.
    #[arg(long, default_value_t = 16)]
    threads: usize,
    /// WAL sync mode of the fill and read workloads (fillsync always syncs).
    #[arg(long, default_value = "buffered")]
    durability: String,
    /// Runs per engine and workload.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Tokio task counts for the in-memory workloads.
    #[arg(long, value_delimiter = ',', default_value = "1,2,8")]
    mem_tasks: Vec<usize>,
    /// Where the JSON and SVG go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// 10k keys, one round: a smoke test that every workload runs and reads back right.
    #[arg(long)]
    quick: bool,
    #[arg(long, hide = true)]
    child: bool,
    #[arg(long, hide = true)]
    engine: Option<String>,
    #[arg(long, hide = true)]
    workload: Option<String>,
    #[arg(long, hide = true)]
    dir: Option<PathBuf>,
    #[arg(long, hide = true)]
    tasks: Option<usize>,
}

/// The settings both engines get.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub num: u64,
    pub key_size: usize,
    pub value_size: usize,
    pub threads: usize,
    pub sync: bool,
    pub write_buffer_size: usize,
    pub block_size: usize,
    pub block_cache_bytes: usize,
    pub bloom_bits_per_key: u32,
}

/// One run's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Measured {
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub write_amp: Option<f64>,
    pub space_amp: Option<f64>,
    pub stall_seconds: Option<f64>,
    pub peak_rss_mb: f64,
    /// Peak resident anonymous memory (heap, not file pages), sampled
    /// every 10 ms: a memory-mapped engine's VmHWM also counts the table
    /// pages it touched, which a pread engine keeps in the page cache.
    #[serde(default)]
    pub peak_anon_mb: f64,
    pub note: String,
}

fn settings(cli: &Cli) -> Settings {
    Settings {
        num: cli.num,
        key_size: cli.key_size,
        value_size: cli.value_size,
        threads: cli.threads,
        sync: cli.durability == "sync",
        write_buffer_size: 64 << 20,
        block_size: 4096,
        block_cache_bytes: 64 << 20,
        bloom_bits_per_key: 10,
    }
}

/// A field of /proc/self/status in KiB ("VmHWM:", "RssAnon:"), in MiB.
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix(field)).and_then(|l| {
                l.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Samples RssAnon every 10 ms until `finish`; the kernel keeps no peak
/// of it. Not stopped on an error path: the process exits then.
struct AnonPeak {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<f64>>,
}

impl AnonPeak {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = 0.0f64;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(status_mb("RssAnon:"));
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            peak.max(status_mb("RssAnon:"))
        });
        AnonPeak {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or(0.0)
    }
}

fn sst_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "sst"))
                .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

/// The child: one workload on one engine; prints `RESULT <json>`.
fn child(cli: &Cli) -> Result<Measured, String> {
    let anon = AnonPeak::start();
    let s = settings(cli);
    let workload = cli.workload.clone().ok_or("--workload")?;
    let engine_name = cli.engine.clone().ok_or("--engine")?;
    if workload == "memset" || workload == "memget" {
        let mut m = memstore::run(
            &engine_name,
            &workload,
            s.num,
            s.key_size,
            s.value_size,
            cli.tasks.unwrap_or(1),
        )?;
        m.peak_rss_mb = peak_rss_mb();
        m.peak_anon_mb = anon.finish();
        return Ok(m);
    }
    let dir = cli.dir.clone().ok_or("--dir")?;
    let engine: Box<dyn Engine> = match engine_name.as_str() {
        "strata" => Box::new(Strata::open(&dir, &s)?),
        "rocksdb" => Box::new(Rocks::open(&dir, &s)?),
        other => return Err(format!("unknown engine {other}")),
    };
    eprintln!("[{engine_name}] {}", engine.settings());
    let mut m = workloads::run(engine.as_ref(), &workload, &s)?;
    if matches!(workload.as_str(), "fillseq" | "fillrandom" | "overwrite") {
        let logical = (s.num * (s.key_size + s.value_size) as u64) as f64;
        m.space_amp = Some(sst_bytes(&dir) as f64 / logical);
    }
    m.stall_seconds = Some(engine.stall_seconds());
    // Both peaks taken while the engine is open, before it shuts down.
    m.peak_rss_mb = peak_rss_mb();
    m.peak_anon_mb = anon.finish();
    Ok(m)
}

/// One row of the comparison: a workload (with its task count) and the
/// runs of each engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub workload: String,
    pub engines: Vec<(String, Vec<Measured>)>,
}

fn spawn_child(
    cli: &Cli,
    engine: &str,
    workload: &str,
    tasks: Option<usize>,
) -> Result<Measured, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.arg("--child")
        .args(["--engine", engine, "--workload", workload])
        .args(["--num", &cli.num.to_string()])
        .args(["--key-size", &cli.key_size.to_string()])
        .args(["--value-size", &cli.value_size.to_string()])
        .args(["--threads", &cli.threads.to_string()])
        .args(["--durability", &cli.durability])
        .arg("--dir")
        .arg(dir.path().join("db"));
    if let Some(t) = tasks {
        cmd.args(["--tasks", &t.to_string()]);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{engine} {workload} failed: {stdout}{stderr}"));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| format!("{engine} {workload}: no result in {stdout}"))?;
    serde_json::from_str(line).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.child {
        return match child(&cli) {
            Ok(m) => {
                println!("RESULT {}", serde_json::to_string(&m).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("ERROR {e}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.quick {
        cli.num = 10_000;
        cli.rounds = 1;
    }
    if cli.workloads.is_empty() {
        cli.workloads = workloads::DISK_WORKLOADS
            .iter()
            .map(|s| s.to_string())
            .collect();
        cli.workloads
            .extend(["memset".to_string(), "memget".to_string()]);
    }
    let s = settings(&cli);
    println!(
        "strata-bench: num={} key={}B value={}B rounds={} durability={} threads={}",
        s.num, s.key_size, s.value_size, cli.rounds, cli.durability, s.threads
    );
    println!(
        "  both engines: write buffer {} MiB, block {} B, block cache {} MiB, bloom {} bits/key, LZ4, WAL on",
        s.write_buffer_size >> 20,
        s.block_size,
        s.block_cache_bytes >> 20,
        s.bloom_bits_per_key
    );
    println!(
        "  each engine's default way of writing its WAL: strata copies appends into a \
         shared map of the file, RocksDB makes a write call per batch"
    );
    let mut rows = Vec::new();
    let mut failed = false;
    for w in &cli.workloads {
        let (engines, variants): (Vec<String>, Vec<Option<usize>>) = if w.starts_with("mem") {
            (
                vec!["strata".into(), "dashmap".into()],
                cli.mem_tasks.iter().map(|t| Some(*t)).collect(),
            )
        } else {
            (cli.engines.clone(), vec![None])
        };
        for tasks in variants {
            let label = match tasks {
                Some(t) => format!("{w}/{t}t"),
                None => w.clone(),
            };
            let mut runs: Vec<(String, Vec<Measured>)> =
                engines.iter().map(|e| (e.clone(), Vec::new())).collect();
            for round in 0..cli.rounds {
                // A B A B: alternate which engine goes first.
                let mut order: Vec<usize> = (0..engines.len()).collect();
                if round % 2 == 1 {
                    order.reverse();
                }
                for i in order {
                    match spawn_child(&cli, &engines[i], w, tasks) {
                        Ok(m) => {
                            eprintln!(
                                "  {label:<22} {:<8} round {round}: {:>12.0} ops/s",
                                engines[i], m.ops_per_sec
                            );
                            runs[i].1.push(m);
                        }
                        Err(e) => {
                            eprintln!("ERROR {e}");
                            failed = true;
                        }
                    }
                }
            }
            rows.push(Row {
                workload: label,
                engines: runs,
            });
        }
    }
    let report = report::Report::new(&cli, &s, rows);
    report.print_table();
    if let Err(e) = report.save(&cli.out) {
        eprintln!("could not save results: {e}");
        failed = true;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
