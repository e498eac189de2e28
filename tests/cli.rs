//! The `strata` binary, run for real on databases the tests build.
//! Needs the `cli` feature: `cargo test --features cli --test cli`.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use strata_kv::{Db, Durability, Options};

fn strata() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.timeout(std::time::Duration::from_secs(120));
    c
}

fn run(args: &[&str]) -> Output {
    strata().args(args).output().expect("run strata")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Files in `dir` whose names end with `suffix`, sorted.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// A database with `n` keys in tables and a few in the WAL, plus a namespace.
fn build_db(dir: &Path, n: u32) {
    let db = Db::open(
        dir,
        Options::default()
            .durability(Durability::Buffered)
            .write_buffer_size(256 * 1024),
    )
    .expect("open");
    for i in 0..n {
        db.put(format!("key{i:07}"), format!("value-{i}"))
            .expect("put");
    }
    db.flush().expect("flush");
    let ns = db.namespace("users").expect("namespace");
    ns.put(b"alice", b"1").expect("put");
    ns.put(b"bob", b"2").expect("put");
    for i in 0..50u32 {
        db.put(format!("wal{i:03}"), "x".repeat(200)).expect("put");
    }
    db.close().expect("close");
}

#[test]
fn put_get_delete_scan_with_text_hex_json_and_namespaces() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("db");
    let d = path_str(&db);

    strata()
        .args([d, "--create", "put", "apple", "red"])
        .assert()
        .success();
    for (k, v) in [
        ("banana", "yellow"),
        ("cherry", "dark red"),
        ("date", "brown"),
    ] {
        strata().args([d, "put", k, v]).assert().success();
    }
    strata()
        .args([d, "get", "apple"])
        .assert()
        .success()
        .stdout("red\n");
    let missing = run(&[d, "get", "zucchini"]);
    assert_eq!(code(&missing), 1, "{}", stderr(&missing));
    assert!(stdout(&missing).is_empty());

    strata()
        .args([d, "scan"])
        .assert()
        .success()
        .stdout("apple\tred\nbanana\tyellow\ncherry\tdark red\ndate\tbrown\n");
    strata()
        .args([d, "scan", "--from", "b", "--to", "d", "--reverse"])
        .assert()
        .success()
        .stdout("cherry\tdark red\nbanana\tyellow\n");
    strata()
        .args([d, "scan", "--limit", "1", "--prefix", "c"])
        .assert()
        .success()
        .stdout("cherry\tdark red\n");

    strata().args([d, "delete", "banana"]).assert().success();
    assert_eq!(code(&run(&[d, "get", "banana"])), 1);

    // Hex both ways, including bytes that are not text.
    strata()
        .args([d, "--hex", "put", "ff00", "0001fe"])
        .assert()
        .success();
    strata()
        .args([d, "--hex", "get", "ff00"])
        .assert()
        .success()
        .stdout("0001fe\n");
    let o = run(&[d, "--json", "get", "apple"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["key"], "apple");
    assert_eq!(v["value"], "red");

    // Namespaces: separate key spaces; reading a missing one creates nothing.
    strata()
        .args([d, "-n", "users", "put", "apple", "a user"])
        .assert()
        .success();
    strata()
        .args([d, "--namespace", "users", "get", "apple"])
        .assert()
        .success()
        .stdout("a user\n");
    strata()
        .args([d, "get", "apple"])
        .assert()
        .success()
        .stdout("red\n");
    assert_eq!(code(&run(&[d, "-n", "nobody", "get", "apple"])), 1);
    let db = Db::open(&db, Options::default()).expect("open");
    assert_eq!(db.namespaces().expect("names"), vec!["users".to_owned()]);
}

#[test]
fn missing_database_is_never_created_and_usage_errors_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("nothing-here");
    let d = path_str(&db);
    for args in [
        vec![d, "get", "k"],
        vec![d, "put", "k", "v"],
        vec![d, "stats"],
    ] {
        let o = run(&args);
        assert_eq!(code(&o), 4, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("--create"), "{}", stderr(&o));
        assert!(!db.exists(), "{args:?} created the database");
    }
    assert_eq!(code(&run(&[d, "frobnicate"])), 2);
    assert_eq!(code(&run(&[d])), 2);
    assert_eq!(code(&run(&[d, "--create", "--hex", "put", "zz", "00"])), 2);
    assert_eq!(code(&run(&["dump-sst"])), 2);
    assert_eq!(code(&run(&["--help"])), 0);
}

#[test]
fn stats_inspect_verify_compact_and_dump_manifest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("db");
    build_db(&db, 20_000);
    let d = path_str(&db);

    let o = run(&[d, "--json", "stats"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stats: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(stats["table_bytes"].as_u64().expect("table_bytes") > 0);
    assert!(stats["latest_sequence"].as_u64().expect("seq") >= 20_052);

    let o = run(&[d, "--json", "inspect"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let before: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let tables = before["tables"].as_array().expect("tables").len();
    assert!(tables > 1, "{before}");

    let o = run(&[d, "verify"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("ok"), "{}", stdout(&o));
    assert!(stderr(&o).is_empty(), "no progress bar without a terminal");

    let o = run(&[d, "compact"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run(&[d, "--json", "inspect"]);
    let after: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let levels: Vec<u64> = after["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| t["level"].as_u64().expect("level"))
        .collect();
    assert!(!levels.is_empty());
    assert!(
        levels.iter().all(|&l| l > 0),
        "nothing left in L0 after compact: {levels:?}"
    );
    strata()
        .args([d, "get", "key0012345"])
        .assert()
        .success()
        .stdout("value-12345\n");

    let o = run(&["dump-manifest", d]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("+ L"), "{text}");
    assert!(text.contains("namespace 1 = \"users\""), "{text}");
    assert!(text.contains("MANIFEST-"), "{text}");
}

#[test]
fn export_then_import_into_a_fresh_database_gives_identical_contents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("db");
    build_db(&db, 5_000);
    let (d, dump) = (path_str(&db), tmp.path().join("dump"));
    let o = run(&[d, "--json", "export", path_str(&dump)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(report["entries"], 5_000 + 2 + 50);

    let fresh = tmp.path().join("fresh");
    let f = path_str(&fresh);
    let o = run(&[f, "--create", "import", path_str(&dump)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for ns in [None, Some("users")] {
        let scan = |db: &str| {
            let mut args = vec![db, "--hex", "scan"];
            if let Some(n) = ns {
                args.extend(["-n", n]);
            }
            let o = run(&args);
            assert_eq!(code(&o), 0, "{}", stderr(&o));
            stdout(&o)
        };
        let (a, b) = (scan(d), scan(f));
        assert!(!a.is_empty());
        assert_eq!(a, b, "namespace {ns:?}");
    }

    // A damaged dump is refused whole (exit 3) and changes nothing.
    let mut bytes = std::fs::read(&dump).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let bad = tmp.path().join("bad");
    std::fs::write(&bad, &bytes).expect("write");
    let other = tmp.path().join("other");
    let o = run(&[path_str(&other), "--create", "import", path_str(&bad)]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("offset"), "{}", stderr(&o));
    strata()
        .args([path_str(&other), "scan"])
        .assert()
        .success()
        .stdout("");
}

#[test]
fn checkpoint_opens_with_identical_contents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("db");
    build_db(&db, 3_000);
    let (d, cp) = (path_str(&db), tmp.path().join("cp"));
    let o = run(&[d, "--json", "checkpoint", path_str(&cp)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let seq = info["sequence"].as_u64().expect("sequence");
    let a = Db::open(&db, Options::default()).expect("open");
    let b = Db::open(&cp, Options::default()).expect("open checkpoint");
    assert_eq!(b.latest_sequence(), seq);
    assert_eq!(a.latest_sequence(), seq);
    assert_eq!(common::contents(&a), common::contents(&b));
    // A second checkpoint into the same (now non-empty) directory is refused.
    drop(a);
    drop(b);
    let o = run(&[d, "checkpoint", path_str(&cp)]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
}

/// The CLI opens the database read-only (no lock, nothing written) while
/// this process holds it open with writers and a flusher running: each
/// checkpoint is exactly the writes up to the sequence number it reports,
/// retried past the flushes that change the database under it.
#[test]
fn checkpoint_taken_by_the_cli_while_another_handle_writes_holds_exactly_its_sequence() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("db");
    let opts = || {
        Options::default()
            .durability(Durability::Buffered)
            .write_buffer_size(64 * 1024)
    };
    let db = Db::open(&path, opts()).expect("open");
    let load = common::WriterLoad::start(&db, std::time::Duration::from_millis(50));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut checkpoints = Vec::new();
    for n in 0..3 {
        let cp = tmp.path().join(format!("cp{n}"));
        let o = run(&[path_str(&path), "--json", "checkpoint", path_str(&cp)]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let info: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        // Attempts past the first were checkpoints a flush overlapped.
        eprintln!("checkpoint {n}: {info}");
        checkpoints.push((cp, info["sequence"].as_u64().expect("sequence")));
    }
    let written = load.stop();
    assert!(
        written.iter().all(|&n| n > 0),
        "writers made progress: {written:?}"
    );
    for (cp, seq) in checkpoints {
        assert!(seq > 0);
        let copy = Db::open(&cp, opts()).expect("open checkpoint");
        common::assert_checkpoint_is_a_prefix(&copy, seq, &written);
    }
    // Reads beside the writer work too, and see what it wrote.
    db.put(b"marker", b"here").expect("put");
    let o = run(&[path_str(&path), "get", "marker"]);
    assert_eq!((code(&o), stdout(&o).trim()), (0, "here"), "{}", stderr(&o));
    // Writes do not: the lock is held.
    let o = run(&[path_str(&path), "put", "k", "v"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
}

#[test]
fn dump_sst_and_dump_wal_read_files_and_name_corruption_with_its_offset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("db");
    build_db(&db, 2_000);

    let table = files_ending(&db, ".sst")
        .into_iter()
        .next()
        .expect("a table");
    let o = run(&["dump-sst", path_str(&table)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("put ns 0 key0000000 => value-0"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(text.contains("entries"), "summary line");
    let o = run(&["--json", "dump-sst", path_str(&table)]);
    let last = stdout(&o).lines().last().map(str::to_owned).expect("lines");
    let summary: serde_json::Value = serde_json::from_str(&last).expect("json");
    let entries = summary["summary"]["entries"].as_u64().expect("entries");
    assert_eq!(stdout(&o).lines().count() as u64, entries + 1);

    let wal = files_ending(&db, ".wal")
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a WAL");
    let o = run(&["dump-wal", path_str(&wal)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("put ns 0 wal049"), "{}", stdout(&o));

    // One flipped byte in the middle of each file.
    for (file, cmd) in [(&table, "dump-sst"), (&wal, "dump-wal")] {
        let mut bytes = std::fs::read(file).expect("read");
        // WALs are preallocated: aim inside the written part.
        let used = bytes.iter().rposition(|&b| b != 0).expect("data") + 1;
        let at = used / 3;
        bytes[at] ^= 0x55;
        let bad = tmp.path().join(format!(
            "bad-{}",
            file.file_name().expect("name").to_string_lossy()
        ));
        std::fs::write(&bad, &bytes).expect("write");
        let o = run(&[cmd, path_str(&bad)]);
        assert_eq!(code(&o), 3, "{cmd}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("offset"), "{cmd}: {err}");
        assert!(err.contains(path_str(&bad)), "{cmd} names the file: {err}");
    }
    let o = run(&["dump-sst", path_str(&tmp.path().join("no-such.sst"))]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
}

/// Runs `strata args` with a pseudo-terminal as its stdin, stdout and
/// stderr; returns everything it wrote and its exit code.
fn run_in_pty(args: &[&str]) -> (String, i32) {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use std::process::Stdio;

    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY,
        Mode::empty(),
    )
    .expect("open pty slave");
    let size = rustix::termios::Winsize {
        ws_row: 24,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&master, size).expect("window size");
    let slave = std::fs::File::from(slave);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("spawn in pty");
    let mut reader = std::fs::File::from(master);
    let collector = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // Reading ends with EIO once the child (the last slave holder) exits.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        all
    });
    let status = child.wait().expect("wait");
    let out = collector.join().expect("collector");
    (
        String::from_utf8_lossy(&out).into_owned(),
        status.code().unwrap_or(-1),
    )
}

#[test]
fn a_large_export_shows_a_progress_bar_on_a_terminal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("db");
    build_db(&db, 300_000);
    let dump = tmp.path().join("dump");
    let (out, code) = run_in_pty(&[path_str(&db), "export", path_str(&dump)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("export ["), "no progress bar drawn: {out:?}");
    assert!(out.contains("100%"), "the bar reaches its end: {out:?}");
    assert!(out.contains("entries"), "{out:?}");
    assert!(out.contains("exported 300052 entries"), "{out:?}");

    // Without a terminal: only the result, nothing on stderr.
    let o = run(&[path_str(&db), "export", path_str(&tmp.path().join("dump2"))]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}
