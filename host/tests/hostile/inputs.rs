//! Round 2 of the hardening (issue 30, items 13-16, 18-20): unbounded file inputs, hostile
//! merge inputs, terminal escapes from result files, huge request names, and settings from
//! the environment — each against real files, real processes and a real server on loopback.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run_measuring_rss, shard_result};
use crate::support::{self, fixture, Mode, RecordingServer};

/// A fresh folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("perfhost-r2-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn perfhost(args: &[&str], dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_perfhost"));
    cmd.args(args).current_dir(dir).env_remove("PERFHOST_LOG");
    cmd
}

/// 200 MB: what the issue allows a refused file input.
const RSS_LIMIT_KIB: u64 = 200 * 1024;

/// Item 13: every file input on /dev/zero (and a shard file linked to it, and a FIFO with no
/// writer) is refused at once with one line, in well under 200 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_inputs_on_dev_zero_stay_small() {
    let dir = temp_dir("devzero");
    std::fs::create_dir_all(dir.join("results")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("results/shard-0.json")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("fifo.conf").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let closed = "http://127.0.0.1:9";
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "--scenario", "/dev/zero", "--dry-run"],
        vec!["run", "--config", "/dev/zero", "--dry-run"],
        vec!["run", "--config", "fifo.conf", "--dry-run"],
        vec!["run", "--data", "x=/dev/zero", "-n", "1", "-H", closed],
        vec!["run", "-f", "/dev/zero", "--dry-run"],
        vec!["bench", "--suite", "/dev/zero", "-H", closed],
        vec!["report", "/dev/zero"],
        vec!["merge", "/dev/zero"],
        vec!["compare", "/dev/zero", "/dev/zero"],
        vec!["plugin", "inspect", "/dev/zero"],
        vec!["scenario", "show", "/dev/zero"],
        vec!["k8s", "collect", "--from", "results"],
        vec!["slurm", "collect", "--from", "results"],
    ];
    for args in cases {
        let cmd = perfhost(&args, &dir);
        let (code, peak_kib, stderr) = tokio::task::spawn_blocking(move || run_measuring_rss(cmd))
            .await
            .unwrap();
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("is a character device") || stderr.contains("is a FIFO"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            peak_kib < RSS_LIMIT_KIB,
            "{args:?}: peak RSS {peak_kib} KiB"
        );
    }
}

/// Item 14: `merge` of hostile results — 10^12 shards, 100,000 rows, a 150 MB schema string,
/// a 20 MB string where a number belongs — exits 2 with one short line, in bounded memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_merge_inputs_are_refused_in_one_short_line() {
    let _serial = support::serial().await;
    let dir = temp_dir("merge");
    let write = |name: &str, value: &serde_json::Value| {
        std::fs::write(dir.join(name), value.to_string()).unwrap();
    };
    write("count.json", &shard_result(0, 1_000_000_000_000, "h"));
    let mut rows = shard_result(0, 1, "h");
    let mut row = rows["stats"][0].clone();
    row["histogram"] = "".into();
    rows["stats"] = (0..100_000)
        .map(|i| {
            let mut row = row.clone();
            row["name"] = format!("/r{i}").into();
            row
        })
        .collect();
    write("rows.json", &rows);
    drop(rows);
    let mut schema = shard_result(0, 1, "h");
    schema["schema"] = "S".repeat(150 << 20).into();
    write("schema.json", &schema);
    drop(schema);
    let mut number = shard_result(0, 1, "h");
    number["total"]["requests"] = "9".repeat(20 << 20).into();
    write("number.json", &number);
    drop(number);
    for (file, needle, limit_kib) in [
        ("count.json", "shard 0/1000000000000", RSS_LIMIT_KIB),
        ("rows.json", "more than 1000 stats rows", RSS_LIMIT_KIB),
        // The file itself is 150 MB; the point is the line, not the reading.
        ("schema.json", "its schema is `SSSS", 400 * 1024),
        ("number.json", "invalid type: string \"9999", RSS_LIMIT_KIB),
    ] {
        let cmd = perfhost(&["merge", file], &dir);
        let (code, peak_kib, stderr) = tokio::task::spawn_blocking(move || run_measuring_rss(cmd))
            .await
            .unwrap();
        assert_eq!(code, 2, "{file}: {}", &stderr[..stderr.len().min(500)]);
        assert!(
            stderr.contains(needle),
            "{file}: {}",
            &stderr[..stderr.len().min(500)]
        );
        assert!(
            stderr.len() < 600 && stderr.lines().count() == 1,
            "{file}: {} bytes of error",
            stderr.len()
        );
        assert!(peak_kib < limit_kib, "{file}: peak RSS {peak_kib} KiB");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 14: a shard result with 300,000 seconds of history (the issue's 5 GB case) merges
/// in bounded memory or is refused — never gigabytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_history_merges_in_bounded_memory() {
    let _serial = support::serial().await;
    let dir = temp_dir("history");
    std::fs::write(dir.join("shard-0.json"), super::long_history(300_000)).unwrap();
    let cmd = perfhost(
        &["merge", "shard-0.json", "--json-file", "merged.json"],
        &dir,
    );
    let (code, peak_kib, stderr) = tokio::task::spawn_blocking(move || run_measuring_rss(cmd))
        .await
        .unwrap();
    eprintln!("300,000 seconds of history: exit {code}, peak RSS {peak_kib} KiB");
    assert!(code == 0 || code == 1 || code == 2, "{stderr}");
    assert!(peak_kib < 1024 * 1024, "peak RSS {peak_kib} KiB");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 15: a row named with ESC sequences (clear screen, OSC window title), BEL and a C1
/// CSI reaches no terminal raw: `merge --markdown -`, `compare` and `report` show escapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_escapes_in_results_are_shown_not_sent() {
    let dir = temp_dir("escapes");
    let evil = "/x\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\r";
    for i in 0..2 {
        let mut r = shard_result(i, 2, "h");
        r["stats"][0]["name"] = evil.into();
        std::fs::write(dir.join(format!("shard-{i}.json")), r.to_string()).unwrap();
    }
    let raw = |text: &str| text.contains(['\u{1b}', '\u{7}', '\u{9b}']) || text.contains("m\r");
    for args in [
        &[
            "merge",
            "shard-0.json",
            "shard-1.json",
            "--markdown",
            "-",
            "--json-file",
            "merged.json",
        ][..],
        &["compare", "shard-0.json", "shard-1.json", "--markdown", "-"][..],
        &["report", "shard-0.json"][..],
    ] {
        let out = support::perfhost(args, &dir).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{args:?}: {stderr}"
        );
        assert!(
            !raw(&stdout) && !raw(&stderr),
            "{args:?} printed raw controls"
        );
        assert!(
            stdout.contains("\\x1b[2J") || stdout.contains("\\\\x1b\\[2J"),
            "{args:?}: the name is shown escaped: {stdout}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 16: a 10 MB `--data` value used as the request name keeps rows, failures, history
/// and samples small: names are cut at 256 bytes where the rows are made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_request_name_is_cut_where_rows_are_made() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = temp_dir("bigname");
    let value = "n".repeat(10 << 20);
    std::fs::write(dir.join("users.csv"), format!("name\n{value}\n")).unwrap();
    drop(value);
    let url = server.url();
    let plugin = fixture("fixture_data");
    let cmd = perfhost(
        &[
            "run",
            "-H",
            &url,
            "--plugin",
            &plugin,
            "--data",
            "users=users.csv",
            "-u",
            "1",
            "-n",
            "3",
            "--request-timeout",
            "5s",
            "--json-file",
            "out.json",
            "--no-report",
        ],
        &dir,
    );
    let (code, peak_kib, stderr) = tokio::task::spawn_blocking(move || run_measuring_rss(cmd))
        .await
        .unwrap();
    assert!(
        code == 0 || code == 1,
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    let size = std::fs::metadata(dir.join("out.json")).unwrap().len();
    assert!(size < 500_000, "a result of {size} bytes");
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out.json")).unwrap()).unwrap();
    let names = result["stats"]
        .as_array()
        .unwrap()
        .iter()
        .chain(result["failure_samples"].as_array().unwrap())
        .chain(result["failures"].as_array().unwrap())
        .map(|r| r["name"].as_str().unwrap_or("").to_string())
        .chain(
            result["history"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p["endpoints"].as_array().unwrap().clone())
                .map(|e| e["name"].as_str().unwrap_or("").to_string()),
        );
    let mut cut = 0;
    for name in names {
        assert!(name.len() <= 300, "a name of {} bytes", name.len());
        cut += usize::from(name.ends_with("[name cut at 256 bytes]"));
    }
    assert!(
        cut > 0,
        "the long name was recorded, cut: {}",
        result["stats"]
    );
    eprintln!("10 MB request name: result {size} bytes, peak RSS {peak_kib} KiB");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 20: the settings the issue found unread from the environment write their files and
/// shape the run: PERFHOST_JSON_FILE, _HTML, _CSV, _JUNIT, _PLUGINS, _USER_CLASSES,
/// _THRESHOLDS, _ITERATIONS, _ONLY_SUMMARY, _EXIT_CODE_ON_ERROR (the unit test
/// `settings::tests::each_environment_variable_is_read` walks every one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_the_environment() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = temp_dir("env");
    let url = server.url();
    let out = perfhost(&["run", "-H", &url, "-u", "1"], &dir)
        .env("PERFHOST_PLUGINS", "burst_user")
        .env("PERFHOST_USER_CLASSES", "BurstUser")
        .env("PERFHOST_ITERATIONS", "3")
        .env("PERFHOST_JSON_FILE", "env.json")
        .env("PERFHOST_HTML", "env.html")
        .env("PERFHOST_CSV", "env")
        .env("PERFHOST_JUNIT", "env.xml")
        .env("PERFHOST_THRESHOLDS", "p95<60s, failure-rate<100%")
        .env("PERFHOST_ONLY_SUMMARY", "true")
        .env("PERFHOST_EXIT_CODE_ON_ERROR", "7")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for file in ["env.json", "env.html", "env_stats.csv", "env.xml"] {
        assert!(dir.join(file).is_file(), "{file} was not written: {stderr}");
    }
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("env.json")).unwrap()).unwrap();
    assert_eq!(result["total"]["requests"].as_u64(), Some(3));
    assert_eq!(result["thresholds"].as_array().map(Vec::len), Some(2));
    assert!(
        result["plugins"].to_string().contains("burst_user"),
        "{}",
        result["plugins"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 20: `perfhost local --json-file FILE` writes the merged result there (also given
/// among the run flags), and PERFHOST_HTML makes the merged report, not one per shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_writes_the_merged_result_where_json_file_says() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = temp_dir("local-json");
    let url = server.url();
    let out = perfhost(
        &[
            "local",
            "--shards",
            "2",
            "--start-delay",
            "3s",
            "-H",
            &url,
            "-f",
            "burst_user",
            "-u",
            "2",
            "-n",
            "4",
            "--json-file",
            "merged-here.json",
        ],
        &dir,
    )
    .env("PERFHOST_HTML", "merged.html")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let merged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("merged-here.json")).unwrap()).unwrap();
    assert_eq!(merged["meta"]["merged_shards"], 2);
    assert_eq!(merged["total"]["requests"].as_u64(), Some(4));
    assert!(dir.join("merged.html").is_file(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
