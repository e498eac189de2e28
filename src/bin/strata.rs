//! `strata`: look inside, check, back up and edit a strata-kv database from
//! the shell.
//!
//! ```text
//! strata <DB> put|get|delete|scan|stats|inspect|verify|compact|checkpoint|export|import ...
//! strata dump-sst <FILE> | dump-wal <FILE> | dump-manifest <DB>
//! ```
//!
//! Exit codes: 0 ok, 1 key (or namespace) not found, 2 usage, 3 corruption,
//! 4 any other error. A missing database is never created unless `--create`
//! is given. Commands that only read open the database read-only
//! (`Db::open_read_only`), so they write nothing and work beside a process
//! that has it open.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value as Json, json};
use strata_kv::tools::{self, Entry, EntryKind, WalEvent};
use strata_kv::{CheckpointInfo, Db, Error, Options};

const TOOL_COMMANDS: [&str; 3] = ["dump-sst", "dump-wal", "dump-manifest"];

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "Inspect, check, back up and edit a strata-kv database.",
    after_help = "Files on their own (no database is opened):\n  \
        strata dump-sst <FILE>       every entry of a table, checksums checked\n  \
        strata dump-wal <FILE>       every batch of a write-ahead log\n  \
        strata dump-manifest <DB>    every record of a database's manifest\n\n\
        Exit codes: 0 ok, 1 not found, 2 usage, 3 corruption, 4 other errors."
)]
struct DbCli {
    /// The database directory.
    db: PathBuf,
    #[command(subcommand)]
    command: DbCommand,
    /// Create the database if it does not exist (otherwise a missing
    /// database is an error).
    #[arg(long, global = true)]
    create: bool,
    /// The namespace for put, get, delete and scan (default: the default namespace).
    #[arg(long, short = 'n', global = true)]
    namespace: Option<String>,
    /// Keys and values are hex, on the command line and in the output.
    #[arg(long, global = true)]
    hex: bool,
    /// Print JSON (one object per line).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum DbCommand {
    /// Store VALUE under KEY (durably: the WAL is synced).
    Put {
        key: String,
        value: String,
        /// Expire the key after this many seconds.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Print the value of KEY (exit code 1 if missing).
    Get { key: String },
    /// Delete KEY (not an error if missing).
    Delete { key: String },
    /// Print keys and values in order.
    Scan {
        /// Only keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Only keys >= this.
        #[arg(long)]
        from: Option<String>,
        /// Only keys < this.
        #[arg(long)]
        to: Option<String>,
        /// Largest key first.
        #[arg(long)]
        reverse: bool,
        /// At most this many pairs.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Counters, amplification and sizes.
    Stats,
    /// Levels and tables: key and sequence ranges, sizes, compression.
    Inspect,
    /// Read every table, the manifest and the WALs, checking every checksum
    /// (exit code 3 if anything is damaged).
    Verify,
    /// Compact the whole key space down to the last level.
    Compact,
    /// Write a consistent copy of the database into DIR (missing or empty).
    Checkpoint { dir: PathBuf },
    /// Write every key of every namespace to a portable, checksummed dump.
    Export { file: PathBuf },
    /// Apply a dump made by `export` (checked whole before anything is written).
    Import { file: PathBuf },
}

#[derive(Parser, Debug)]
#[command(name = "strata")]
struct ToolCli {
    #[command(subcommand)]
    command: ToolCommand,
    /// Keys and values in hex.
    #[arg(long, global = true)]
    hex: bool,
    /// Print JSON (one object per line).
    #[arg(long, global = true)]
    json: bool,
}

// The variants are the command names (dump-sst, dump-wal, dump-manifest).
#[allow(clippy::enum_variant_names)]
#[derive(Subcommand, Debug)]
enum ToolCommand {
    /// Every entry of a table file, in order, then its properties.
    DumpSst { file: PathBuf },
    /// Every batch of a WAL file, with its sequence numbers.
    DumpWal { file: PathBuf },
    /// Every record of the manifest that DB's CURRENT names.
    DumpManifest { db: PathBuf },
}

/// Why the command failed, and so its exit code.
#[derive(Debug)]
enum Failure {
    NotFound(String),
    Usage(String),
    Db(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Db(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Db(Error::Io(Arc::new(e)))
    }
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::NotFound(_) | Failure::Db(Error::NotFound) => 1,
            Failure::Usage(_) => 2,
            Failure::Db(Error::Corruption { .. }) => 3,
            Failure::Db(_) => 4,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotFound(what) => write!(f, "{what}"),
            Failure::Usage(why) => write!(f, "{why}"),
            Failure::Db(e) => write!(f, "{e}"),
        }
    }
}

type Outcome = Result<(), Failure>;

/// How keys and values are read from the command line and printed.
#[derive(Debug, Clone, Copy)]
struct Style {
    hex: bool,
    json: bool,
}

impl Style {
    fn parse(self, s: &str) -> Result<Vec<u8>, Failure> {
        if self.hex {
            hex::decode(s).map_err(|e| Failure::Usage(format!("{s:?} is not hex: {e}")))
        } else {
            Ok(s.as_bytes().to_vec())
        }
    }

    fn show(self, b: &[u8]) -> String {
        if self.hex {
            hex::encode(b)
        } else {
            match std::str::from_utf8(b) {
                Ok(s) => s.to_owned(),
                Err(_) => b.escape_ascii().to_string(),
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let first_word = args
        .iter()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'));
    let is_tool = first_word.is_some_and(|w| TOOL_COMMANDS.iter().any(|t| w == *t));
    let outcome = if is_tool {
        match ToolCli::try_parse_from(&args) {
            Ok(cli) => run_tool(cli),
            Err(e) => return clap_exit(&e),
        }
    } else {
        match DbCli::try_parse_from(&args) {
            Ok(cli) => run_db(cli),
            Err(e) => return clap_exit(&e),
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("strata: {f}");
            ExitCode::from(f.exit_code())
        }
    }
}

/// Prints clap's message; usage errors exit 2, `--help` and `--version` 0.
fn clap_exit(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn open(cli: &DbCli) -> Result<Db, Failure> {
    let exists = cli.db.join("CURRENT").exists();
    if !exists && !cli.create {
        return Err(Failure::Db(Error::InvalidArgument {
            reason: format!(
                "no database at {} (use --create to make one)",
                cli.db.display()
            ),
        }));
    }
    if exists && cli.command.reads_only() {
        return Ok(open_read_only(&cli.db)?);
    }
    Ok(Db::open(
        &cli.db,
        Options::default().create_if_missing(cli.create),
    )?)
}

impl DbCommand {
    /// Commands that only read open the database read-only: they write
    /// nothing to it and work while another process has it open.
    fn reads_only(&self) -> bool {
        matches!(
            self,
            DbCommand::Get { .. }
                | DbCommand::Scan { .. }
                | DbCommand::Stats
                | DbCommand::Inspect
                | DbCommand::Verify
                | DbCommand::Export { .. }
                | DbCommand::Checkpoint { .. }
        )
    }
}

/// How often a read-only open or a checkpoint beside a live writer is
/// retried when the writer changes the database under it (see
/// `Db::open_read_only`).
const ATTEMPTS: u64 = 100;

fn open_read_only(path: &Path) -> strata_kv::Result<Db> {
    let mut attempt = 1;
    loop {
        match Db::open_read_only(path, Options::default()) {
            Err(Error::Conflict) if attempt < ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(5 * attempt));
            }
            r => return r,
        }
    }
}

/// A checkpoint of a database that another process may be writing: a
/// fresh read-only handle per attempt, until one sees no flush or
/// compaction happen while it copies.
fn checkpoint_with_retries(
    cli: &DbCli,
    first: &Db,
    dir: &Path,
) -> Result<(CheckpointInfo, u64), Failure> {
    let mut attempt = 1;
    let mut result = first.checkpoint(dir);
    while matches!(result, Err(Error::Conflict)) && attempt < ATTEMPTS {
        attempt += 1;
        std::thread::sleep(Duration::from_millis(5 * attempt));
        result = match open_read_only(&cli.db) {
            Ok(db) => {
                let r = db.checkpoint(dir);
                let _ = db.close();
                r
            }
            Err(e) => Err(e),
        };
    }
    Ok((result?, attempt))
}

fn run_db(cli: DbCli) -> Outcome {
    let style = Style {
        hex: cli.hex,
        json: cli.json,
    };
    let db = open(&cli)?;
    let result = run_db_command(&cli, &db, style);
    let closed = db.close();
    result?;
    Ok(closed?)
}

fn run_db_command(cli: &DbCli, db: &Db, style: Style) -> Outcome {
    match &cli.command {
        DbCommand::Put { key, value, ttl } => {
            let (k, v) = (style.parse(key)?, style.parse(value)?);
            let ttl = ttl.map(Duration::from_secs);
            match (&cli.namespace, ttl) {
                (Some(n), Some(t)) => db.namespace(n)?.put_with_ttl(k, v, t)?,
                (Some(n), None) => db.namespace(n)?.put(k, v)?,
                (None, Some(t)) => db.put_with_ttl(k, v, t)?,
                (None, None) => db.put(k, v)?,
            }
            Ok(())
        }
        DbCommand::Get { key } => {
            let k = style.parse(key)?;
            let found = match &cli.namespace {
                Some(n) => existing_namespace(db, n)?.get(&k)?,
                None => db.get(&k)?,
            };
            let v = found.ok_or_else(|| Failure::NotFound(format!("{key:?} not found")))?;
            if style.json {
                println!(
                    "{}",
                    json!({"key": style.show(&k), "value": style.show(&v)})
                );
            } else {
                let mut out = std::io::stdout().lock();
                if style.hex {
                    writeln!(out, "{}", hex::encode(&v))?;
                } else {
                    // The value's bytes as they are (they may not be text).
                    out.write_all(&v)?;
                    out.write_all(b"\n")?;
                }
            }
            Ok(())
        }
        DbCommand::Delete { key } => {
            let k = style.parse(key)?;
            match &cli.namespace {
                Some(n) => existing_namespace(db, n)?.delete(k)?,
                None => db.delete(k)?,
            }
            Ok(())
        }
        DbCommand::Scan {
            prefix,
            from,
            to,
            reverse,
            limit,
        } => scan(cli, db, style, prefix, from, to, *reverse, *limit),
        DbCommand::Stats => {
            print_stats(db, style);
            Ok(())
        }
        DbCommand::Inspect => inspect(db, style),
        DbCommand::Verify => verify(db, style),
        DbCommand::Compact => compact(db, style),
        DbCommand::Checkpoint { dir } => {
            let (info, attempts) = checkpoint_with_retries(cli, db, dir)?;
            report(
                style,
                json!({"dir": info.dir.display().to_string(), "sequence": info.sequence,
                    "linked_tables": info.linked_tables, "written_tables": info.written_tables,
                    "bytes": info.bytes, "attempts": attempts}),
                || {
                    format!(
                        "checkpoint {} at sequence {}: {} tables linked, {} written, {} bytes",
                        info.dir.display(),
                        info.sequence,
                        info.linked_tables,
                        info.written_tables,
                        info.bytes
                    )
                },
            );
            Ok(())
        }
        DbCommand::Export { file } => {
            let r = with_progress("export", "entries", |p| db.export_with_progress(file, p))?;
            report(
                style,
                json!({"file": file.display().to_string(), "sequence": r.sequence,
                    "namespaces": r.namespaces, "entries": r.entries, "bytes": r.bytes}),
                || {
                    format!(
                        "exported {} entries in {} namespaces (sequence {}) to {}: {} bytes",
                        r.entries,
                        r.namespaces + 1,
                        r.sequence,
                        file.display(),
                        r.bytes
                    )
                },
            );
            Ok(())
        }
        DbCommand::Import { file } => {
            let r = with_progress("import", "bytes", |p| db.import_with_progress(file, p))?;
            report(
                style,
                json!({"file": file.display().to_string(), "namespaces": r.namespaces,
                    "entries": r.entries, "expired": r.expired, "bytes": r.bytes}),
                || {
                    format!(
                        "imported {} entries ({} expired and skipped) in {} namespaces from {}",
                        r.entries,
                        r.expired,
                        r.namespaces + 1,
                        file.display()
                    )
                },
            );
            Ok(())
        }
    }
}

/// Prints `value` with `--json`, else the text `text` makes.
fn report(style: Style, value: Json, text: impl FnOnce() -> String) {
    if style.json {
        println!("{value}");
    } else {
        println!("{}", text());
    }
}

/// Runs `work`, drawing its progress callback as a bar (on a terminal).
fn with_progress<T>(
    what: &str,
    unit: &str,
    work: impl FnOnce(strata_kv::Progress<'_>) -> strata_kv::Result<T>,
) -> strata_kv::Result<T> {
    let bar = progress_bar(what, unit);
    let r = work(&mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish();
    r
}

/// A namespace that must already exist (reads never create one).
fn existing_namespace(db: &Db, name: &str) -> Result<strata_kv::Namespace, Failure> {
    if !db.namespaces()?.iter().any(|n| n == name) {
        return Err(Failure::NotFound(format!("no namespace {name:?}")));
    }
    Ok(db.namespace(name)?)
}

#[allow(clippy::too_many_arguments)]
fn scan(
    cli: &DbCli,
    db: &Db,
    style: Style,
    prefix: &Option<String>,
    from: &Option<String>,
    to: &Option<String>,
    reverse: bool,
    limit: Option<usize>,
) -> Outcome {
    let from = from.as_deref().map(|s| style.parse(s)).transpose()?;
    let to = to.as_deref().map(|s| style.parse(s)).transpose()?;
    let prefix = prefix.as_deref().map(|s| style.parse(s)).transpose()?;
    let lower = from.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included);
    let upper = to.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
    let bounds = (lower.clone(), upper.clone());
    let iter = match (&cli.namespace, &prefix) {
        (Some(n), Some(p)) => existing_namespace(db, n)?.prefix(p),
        (Some(n), None) => existing_namespace(db, n)?.range(bounds),
        (None, Some(p)) => db.prefix(p),
        (None, None) => db.range(bounds),
    };
    let in_bounds = |k: &[u8]| {
        let above = match &lower {
            std::ops::Bound::Included(f) => k >= f.as_slice(),
            _ => true,
        };
        let below = match &upper {
            std::ops::Bound::Excluded(t) => k < t.as_slice(),
            _ => true,
        };
        above && below
    };
    let items: Box<dyn Iterator<Item = strata_kv::Result<_>>> = if reverse {
        Box::new(iter.rev())
    } else {
        Box::new(iter)
    };
    let mut out = std::io::stdout().lock();
    let mut shown = 0usize;
    for item in items {
        if limit.is_some_and(|l| shown >= l) {
            break;
        }
        let (k, v) = item?;
        if !in_bounds(&k) {
            continue;
        }
        if style.json {
            writeln!(
                out,
                "{}",
                json!({"key": style.show(&k), "value": style.show(&v)})
            )?;
        } else {
            writeln!(out, "{}\t{}", style.show(&k), style.show(&v))?;
        }
        shown += 1;
    }
    Ok(())
}

fn print_stats(db: &Db, style: Style) {
    let s = db.stats();
    let levels: Vec<Json> = s
        .levels
        .iter()
        .enumerate()
        .filter(|(_, l)| l.files > 0)
        .map(|(i, l)| {
            json!({"level": i, "files": l.files, "bytes": l.bytes, "entries": l.entries,
                "tombstones": l.tombstones})
        })
        .collect();
    let v = json!({
        "latest_sequence": s.latest_sequence,
        "writes": s.writes,
        "user_bytes_written": s.user_bytes_written,
        "wal_bytes_written": s.wal_bytes_written,
        "wal_syncs": s.wal_syncs,
        "flushes": s.flushes,
        "compactions": s.compactions,
        "trivial_moves": s.trivial_moves,
        "write_amplification": s.write_amplification,
        "space_amplification": s.space_amplification,
        "stall_seconds": s.stall_time.as_secs_f64(),
        "pending_compaction_bytes": s.pending_compaction_bytes,
        "memtable_bytes": s.memtable_bytes,
        "immutable_memtables": s.immutable_memtables,
        "table_bytes": s.table_bytes,
        "block_cache_bytes": s.block_cache_bytes,
        "levels": levels,
    });
    if style.json {
        println!("{v}");
        return;
    }
    if let Json::Object(map) = &v {
        for (k, val) in map {
            if k != "levels" {
                println!("{k:<26} {val}");
            }
        }
    }
    for (i, l) in s.levels.iter().enumerate().filter(|(_, l)| l.files > 0) {
        println!(
            "L{i}: {} files, {} bytes, {} entries, {} tombstones",
            l.files, l.bytes, l.entries, l.tombstones
        );
    }
}

fn inspect(db: &Db, style: Style) -> Outcome {
    let ins = db.inspect()?;
    if style.json {
        let tables: Vec<Json> = ins
            .tables
            .iter()
            .map(|t| {
                json!({
                    "level": t.level, "file": t.file, "size": t.size, "entries": t.entries,
                    "tombstones": t.tombstones,
                    "smallest": {"namespace": t.smallest.0, "key": style.show(&t.smallest.1)},
                    "largest": {"namespace": t.largest.0, "key": style.show(&t.largest.1)},
                    "smallest_seq": t.smallest_seq, "largest_seq": t.largest_seq,
                    "compression_ratio": t.compression_ratio, "data_blocks": t.data_blocks,
                })
            })
            .collect();
        println!(
            "{}",
            json!({"latest_sequence": ins.latest_sequence, "memtable_bytes": ins.memtable_bytes,
                "immutable_memtables": ins.immutable_memtables, "tables": tables})
        );
        return Ok(());
    }
    println!(
        "latest sequence {}, memtables {} bytes ({} waiting for flush)",
        ins.latest_sequence, ins.memtable_bytes, ins.immutable_memtables
    );
    for (level, (files, bytes)) in ins.levels.iter().enumerate() {
        if *files > 0 {
            println!("L{level}: {files} files, {bytes} bytes");
        }
    }
    for t in &ins.tables {
        println!(
            "  L{} {} {} bytes, {} entries ({} tombstones), seq {}..={}, keys [{}:{} .. {}:{}], compression {:.2}x",
            t.level,
            t.file,
            t.size,
            t.entries,
            t.tombstones,
            t.smallest_seq,
            t.largest_seq,
            t.smallest.0,
            style.show(&t.smallest.1),
            t.largest.0,
            style.show(&t.largest.1),
            t.compression_ratio
        );
    }
    Ok(())
}

fn verify(db: &Db, style: Style) -> Outcome {
    let r = with_progress("verify", "bytes", |p| db.verify_with_progress(p))?;
    let problems: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
    if style.json {
        println!(
            "{}",
            json!({"ok": r.is_ok(), "tables": r.tables, "blocks": r.blocks, "entries": r.entries,
                "wals": r.wals, "wal_records": r.wal_records,
                "manifest_records": r.manifest_records, "problems": problems})
        );
    } else {
        println!(
            "checked {} tables ({} blocks, {} entries), {} WALs ({} records), {} manifest records",
            r.tables, r.blocks, r.entries, r.wals, r.wal_records, r.manifest_records
        );
        for p in &problems {
            println!("DAMAGED: {p}");
        }
        if r.is_ok() {
            println!("ok");
        }
    }
    match r.problems.into_iter().next() {
        Some(first) => Err(Failure::Db(first)),
        None => Ok(()),
    }
}

fn compact(db: &Db, style: Style) -> Outcome {
    let before = db.stats();
    let bar = spinner("compact");
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (db, bar, done) = (db.clone(), bar.clone(), Arc::clone(&done));
        let start = before.compaction_bytes_written;
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                let s = db.stats();
                bar.set_message(format!(
                    "compact: {} MiB written",
                    s.compaction_bytes_written.saturating_sub(start) >> 20
                ));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let r = db.compact();
    done.store(true, Ordering::Release);
    let _ = watcher.join();
    bar.finish_and_clear();
    r?;
    let after = db.stats();
    let written = after.compaction_bytes_written - before.compaction_bytes_written;
    if style.json {
        println!(
            "{}",
            json!({"bytes_written": written, "table_bytes": after.table_bytes,
                "levels": after.levels.iter().map(|l| l.files).collect::<Vec<_>>()})
        );
    } else {
        println!(
            "compacted: {written} bytes written, {} bytes in tables now",
            after.table_bytes
        );
    }
    Ok(())
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
fn progress_bar(what: &str, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    let template =
        format!("{{msg}} [{{bar:40}}] {{percent:>3}}% {{pos}}/{{len}} {unit} {{elapsed}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A spinner on stderr when it is a terminal (for work of unknown size).
fn spinner(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn run_tool(cli: ToolCli) -> Outcome {
    let style = Style {
        hex: cli.hex,
        json: cli.json,
    };
    match cli.command {
        ToolCommand::DumpSst { file } => dump_sst(&file, style),
        ToolCommand::DumpWal { file } => dump_wal(&file, style),
        ToolCommand::DumpManifest { db } => dump_manifest(&db, style),
    }
}

fn kind_name(kind: EntryKind) -> (&'static str, Option<u64>) {
    match kind {
        EntryKind::Put => ("put", None),
        EntryKind::PutWithTtl { expiry_ms } => ("put-ttl", Some(expiry_ms)),
        EntryKind::Delete => ("delete", None),
        _ => ("unknown", None),
    }
}

fn entry_json(e: &Entry, style: Style) -> Json {
    let (kind, expiry) = kind_name(e.kind);
    json!({"seq": e.sequence, "kind": kind, "namespace": e.namespace,
        "key": style.show(&e.key), "value": style.show(&e.value), "expiry_ms": expiry})
}

fn entry_line(e: &Entry, style: Style) -> String {
    let (kind, expiry) = kind_name(e.kind);
    let expiry = expiry.map(|x| format!(" expires@{x}")).unwrap_or_default();
    match e.kind {
        EntryKind::Delete => format!(
            "seq {} {kind} ns {} {}",
            e.sequence,
            e.namespace,
            style.show(&e.key)
        ),
        _ => format!(
            "seq {} {kind} ns {} {} => {}{expiry}",
            e.sequence,
            e.namespace,
            style.show(&e.key),
            style.show(&e.value)
        ),
    }
}

fn dump_sst(file: &Path, style: Style) -> Outcome {
    // Entries are gathered first: damage anywhere prints nothing but the error.
    let mut lines = Vec::new();
    let summary = tools::dump_table(file, &mut |e| {
        lines.push(if style.json {
            entry_json(&e, style).to_string()
        } else {
            entry_line(&e, style)
        });
    })?;
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")?;
    }
    let s = summary;
    let compression = format!("{:?}", s.compression);
    if style.json {
        writeln!(
            out,
            "{}",
            json!({"summary": {"file_size": s.file_size, "entries": s.entries,
                "tombstones": s.tombstones, "data_blocks": s.data_blocks,
                "data_bytes": s.data_bytes, "stored_data_bytes": s.stored_data_bytes,
                "smallest_seq": s.smallest_sequence, "largest_seq": s.largest_sequence,
                "compression": compression, "earliest_expiry_ms": s.earliest_expiry_ms}})
        )?;
    } else {
        writeln!(
            out,
            "-- {}: {} bytes, {} entries ({} tombstones), {} data blocks, {} -> {} bytes ({compression}), seq {}..={}",
            file.display(),
            s.file_size,
            s.entries,
            s.tombstones,
            s.data_blocks,
            s.data_bytes,
            s.stored_data_bytes,
            s.smallest_sequence,
            s.largest_sequence
        )?;
    }
    Ok(())
}

fn dump_wal(file: &Path, style: Style) -> Outcome {
    let mut out = std::io::stdout().lock();
    let mut first_damage: Option<Error> = None;
    let mut write_err = None;
    let mut batches = 0u64;
    tools::dump_wal(file, &mut |event| {
        let line = match event {
            WalEvent::Batch {
                offset,
                sequence,
                ops,
            } => {
                batches += 1;
                if style.json {
                    let ops: Vec<Json> = ops.iter().map(|e| entry_json(e, style)).collect();
                    json!({"offset": offset, "sequence": sequence, "ops": ops}).to_string()
                } else {
                    let mut s = format!("@{offset} batch seq {sequence}, {} ops", ops.len());
                    for e in &ops {
                        s.push_str("\n  ");
                        s.push_str(&entry_line(e, style));
                    }
                    s
                }
            }
            WalEvent::Damage {
                offset,
                reason,
                torn,
            } => {
                if torn {
                    eprintln!(
                        "strata: {}: torn tail at offset {offset} ({reason}): a write cut short, which recovery drops",
                        file.display()
                    );
                } else {
                    eprintln!(
                        "strata: {}: corruption at offset {offset}: {reason}",
                        file.display()
                    );
                    if first_damage.is_none() {
                        first_damage = Some(Error::Corruption {
                            file: file.to_path_buf(),
                            offset,
                            reason: reason.clone(),
                        });
                    }
                }
                if style.json {
                    json!({"offset": offset, "damage": reason, "torn": torn}).to_string()
                } else {
                    return;
                }
            }
            _ => return,
        };
        if let Err(e) = writeln!(out, "{line}") {
            write_err.get_or_insert(e);
        }
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    if !style.json {
        writeln!(out, "-- {}: {batches} intact batches", file.display())?;
    }
    match first_damage {
        Some(e) => Err(Failure::Db(e)),
        None => Ok(()),
    }
}

fn dump_manifest(db: &Path, style: Style) -> Outcome {
    let mut out = std::io::stdout().lock();
    let mut write_err = None;
    let path = tools::dump_manifest(db, &mut |e| {
        let line = if style.json {
            let added: Vec<Json> = e
                .added
                .iter()
                .map(|t| {
                    json!({"level": t.level, "number": t.number, "size": t.size,
                        "entries": t.entries, "smallest_seq": t.smallest_sequence,
                        "largest_seq": t.largest_sequence,
                        "smallest": {"namespace": t.smallest.0, "key": style.show(&t.smallest.1)},
                        "largest": {"namespace": t.largest.0, "key": style.show(&t.largest.1)}})
                })
                .collect();
            let namespaces: Vec<Json> = e
                .namespaces
                .iter()
                .map(|n| {
                    json!({"id": n.id, "name": n.name, "max_keys": n.max_keys,
                        "default_ttl_ms": n.default_ttl_ms})
                })
                .collect();
            json!({"offset": e.offset, "log_number": e.log_number,
                "next_file_number": e.next_file_number, "last_sequence": e.last_sequence,
                "added": added, "deleted": e.deleted, "namespaces": namespaces,
                "dropped_namespaces": e.dropped_namespaces})
            .to_string()
        } else {
            let mut s = format!("@{} edit", e.offset);
            if let Some(n) = e.log_number {
                s.push_str(&format!(" log_number={n}"));
            }
            if let Some(n) = e.next_file_number {
                s.push_str(&format!(" next_file={n}"));
            }
            if let Some(n) = e.last_sequence {
                s.push_str(&format!(" last_sequence={n}"));
            }
            for t in &e.added {
                s.push_str(&format!(
                    "\n  + L{} {:06}.sst {} bytes, {} entries, seq {}..={}, keys [{}:{} .. {}:{}]",
                    t.level,
                    t.number,
                    t.size,
                    t.entries,
                    t.smallest_sequence,
                    t.largest_sequence,
                    t.smallest.0,
                    style.show(&t.smallest.1),
                    t.largest.0,
                    style.show(&t.largest.1)
                ));
            }
            for (level, number) in &e.deleted {
                s.push_str(&format!("\n  - L{level} {number:06}.sst"));
            }
            for n in &e.namespaces {
                s.push_str(&format!(
                    "\n  namespace {} = {:?} (max_keys {}, default_ttl_ms {})",
                    n.id, n.name, n.max_keys, n.default_ttl_ms
                ));
            }
            for id in &e.dropped_namespaces {
                s.push_str(&format!("\n  dropped namespace {id}"));
            }
            s
        };
        if let Err(err) = writeln!(out, "{line}") {
            write_err.get_or_insert(err);
        }
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    if !style.json {
        writeln!(out, "-- {}", path.display())?;
    }
    Ok(())
}
