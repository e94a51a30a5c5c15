//! Results that must not vanish or land elsewhere, and interrupted and long runs (hardening
//! round 2, issue 30 items 5, 7–11 and 17): run names that are paths, outputs that cannot be
//! written (exit 6), two runs of one name in one second, a comparison of nothing, SIGTERM to
//! `perfhost local`, and `perfhost bench` interrupted in its warm-up. Every run is the
//! perfhost binary against a demo server on 127.0.0.1, bounded in requests and time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    self, demo_url as demo, perfhost_text as perfhost, Mode, RecordingServer, TempDir,
};

/// Every file under `dir`, recursively, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Item 5: a run name that is a path is refused from the command line and from a scenario
/// (one line, exit 2, nothing written); a result file carrying one is merged into a plain
/// file name inside reports/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_name_never_chooses_a_path() {
    let root = TempDir::new("run-name");
    let work = root.join("a/b/c/work");
    std::fs::create_dir_all(&work).unwrap();
    let (_demo, url) = demo(&[]);
    for name in ["../../../x", "/tmp/perfhost-abs-run-name", "a/b", ".."] {
        let (code, out) = perfhost(
            &[
                "run",
                "-H",
                &url,
                "--plugin",
                "http_get",
                "-n",
                "2",
                "--run-name",
                name,
            ],
            &work,
        )
        .await;
        assert_eq!(code, Some(2), "{name}: {out}");
        assert!(out.contains("cannot name report files"), "{out}");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "{out}"
        );
    }
    std::fs::write(
        work.join("s.toml"),
        "name = \"s\"\nusers = 1\nrun-time = \"1s\"\n[report]\nname = \"../../escape\"\n",
    )
    .unwrap();
    let (code, out) = perfhost(&["run", "--scenario", "s.toml", "-H", &url], &work).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("the scenario's [report] name"), "{out}");
    assert!(out.contains("cannot name report files"), "{out}");
    assert!(!Path::new("/tmp/perfhost-abs-run-name.json").exists());
    assert_eq!(files_under(&root.0), vec!["a/b/c/work/s.toml".to_string()]);

    // A shard result whose run name was edited into a path: merge writes inside reports/.
    let (code, out) = perfhost(
        &[
            "run",
            "-H",
            &url,
            "--plugin",
            "http_get",
            "-n",
            "4",
            "--shard",
            "0/1",
            "--json-file",
            "shard.json",
        ],
        &work,
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    let mut result: Value = support::read_json(&work.join("shard.json"));
    result["meta"]["run_name"] = Value::from("../../../escaped");
    std::fs::write(work.join("shard.json"), result.to_string()).unwrap();
    let (code, out) = perfhost(&["merge", "shard.json"], &work).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("is not a plain file name"), "{out}");
    assert!(
        work.join("reports/.._.._.._escaped_merged.json").is_file(),
        "{out}"
    );
    let outside: Vec<String> = files_under(&root.0)
        .into_iter()
        .filter(|f| !f.starts_with("a/b/c/work/"))
        .collect();
    assert!(
        outside.is_empty(),
        "written outside the work folder: {outside:?}"
    );
}

/// Item 7: outputs that cannot be written — a full device (/dev/full) and a folder that is a
/// file — each get one line naming the file and the OS error; every other output is still
/// written; no `Report:` line for an HTML that was not; exit 6. The same for report, merge,
/// compare, bench and profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_cannot_be_written_exits_6() {
    let dir = TempDir::new("lost");
    let (demo_guard, url) = demo(&[]);
    std::fs::write(dir.join("afile"), "not a folder").unwrap();
    let (code, out) = perfhost(
        &[
            "run",
            "-H",
            &url,
            "--plugin",
            "http_get",
            "-n",
            "10",
            "--json-file",
            "/dev/full",
            "--html",
            "afile/r.html",
            "--csv",
            "ok/c",
            "--junit",
            "ok/j.xml",
            "--hlog",
            "afile/h.hlog",
        ],
        &dir.0,
    )
    .await;
    assert_eq!(code, Some(6), "{out}");
    assert!(
        out.contains("cannot write /dev/full: No space left on device"),
        "{out}"
    );
    assert!(out.contains("cannot write afile/r.html"), "{out}");
    assert!(
        out.contains("cannot write afile/h.hlog: File exists"),
        "{out}"
    );
    assert!(
        !out.contains("Report: "),
        "no Report: line for a lost HTML: {out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("error")).count(),
        3,
        "{out}"
    );
    for written in ["ok/c_stats.csv", "ok/c_stats_history.csv", "ok/j.xml"] {
        assert!(dir.join(written).is_file(), "{written}: {out}");
    }
    // No temp file is left behind.
    assert!(
        files_under(&dir.0).iter().all(|f| !f.ends_with(".tmp")),
        "{:?}",
        files_under(&dir.0)
    );

    // The same run, every output writable: exit 0 and the Report: line.
    let (code, out) = perfhost(
        &[
            "run",
            "-H",
            &url,
            "--plugin",
            "http_get",
            "-n",
            "10",
            "--json-file",
            "r.json",
            "--html",
            "r.html",
            "--hlog",
            "r.hlog",
        ],
        &dir.0,
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Report: r.html"), "{out}");

    // A shard result to merge and a suite to bench, then each command with one output on a
    // full device and one writable: exit 6, the error named, the writable one still written.
    let (code, out) = perfhost(
        &[
            "run",
            "-H",
            &url,
            "--plugin",
            "http_get",
            "-n",
            "4",
            "--shard",
            "0/1",
            "--json-file",
            "s.json",
        ],
        &dir.0,
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    std::fs::write(
        dir.join("suite.toml"),
        "name = \"tiny\"\nplugin = \"http_get\"\n[[case]]\nname = \"one\"\nrequests = 4\nconcurrency = 1\n",
    )
    .unwrap();
    let lost_one: [(&[&str], &str); 4] = [
        (
            &[
                "report",
                "r.json",
                "--html",
                "/dev/full",
                "--markdown",
                "r.md",
            ],
            "r.md",
        ),
        (
            &[
                "compare",
                "r.json",
                "r.json",
                "--junit",
                "/dev/full",
                "--markdown",
                "c.md",
            ],
            "c.md",
        ),
        (
            &[
                "merge",
                "s.json",
                "--json-file",
                "/dev/full",
                "--html",
                "m.html",
            ],
            "m.html",
        ),
        (
            &[
                "bench",
                "--url",
                &url,
                "--suite",
                "suite.toml",
                "-o",
                "/dev/full",
                "--markdown",
                "b.md",
            ],
            "b.md",
        ),
    ];
    for (args, kept) in lost_one {
        let (code, out) = perfhost(args, &dir.0).await;
        assert_eq!(code, Some(6), "{args:?}: {out}");
        assert!(
            out.contains("cannot write /dev/full") && dir.join(kept).is_file(),
            "{args:?}: {out}"
        );
    }

    let pid = demo_guard.0.id().to_string();
    let (code, out) = perfhost(
        &[
            "profile",
            "--pid",
            &pid,
            "-H",
            &url,
            "--duration",
            "1s",
            "--interval",
            "200ms",
            "--output",
            "afile/p",
        ],
        &dir.0,
    )
    .await;
    assert_eq!(code, Some(6), "{out}");
    assert!(out.contains("cannot write afile/p.json"), "{out}");
}

/// Item 8: three runs of one name started in the same second keep three results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_one_name_in_one_second_keep_every_result() {
    let _serial = support::serial().await;
    let dir = TempDir::new("same-second");
    let (_demo, url) = demo(&[]);
    let args = [
        "run",
        "-H",
        &url,
        "--plugin",
        "http_get",
        "-n",
        "3",
        "--run-name",
        "same",
    ];
    let runs = (0..3).map(|_| support::perfhost(&args, &dir.0));
    for out in futures_util::future::join_all(runs).await {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let results: Vec<String> = files_under(&dir.join("reports"))
        .into_iter()
        .filter(|f| f.ends_with(".json"))
        .collect();
    assert_eq!(results.len(), 3, "{results:?}");
    for file in &results {
        assert!(file.starts_with("same_"), "{file}");
        let result = support::read_json(&dir.join("reports").join(file));
        assert_eq!(result["total"]["requests"], 3, "{file}");
    }
    // No claim is left behind.
    assert!(
        files_under(&dir.0).iter().all(|f| !f.ends_with(".claim")),
        "{:?}",
        files_under(&dir.0)
    );
}

/// Item 9: a comparison that compared nothing fails (exit 2) in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comparison_of_nothing_fails() {
    let dir = TempDir::new("compare-nothing");
    std::fs::write(dir.join("run.json"), include_bytes!("fixtures/result.json")).unwrap();
    std::fs::write(
        dir.join("bench.json"),
        r#"{"metadata":{"api_url":"x","timestamp":"t"},"results":[{"name":"only here","description":"","total_requests":200,"successful_requests":200,"failed_requests":0,"duration_seconds":1.0,"requests_per_second":50.0,"latency_p50_ms":50.0,"latency_p95_ms":50.5,"latency_p99_ms":51.0,"latency_min_ms":50.0,"latency_max_ms":52.0,"latency_avg_ms":50.2}]}"#,
    )
    .unwrap();
    let (code, out) = perfhost(&["compare", "run.json", "bench.json"], &dir.0).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("nothing was compared"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{out}"
    );
    // The same file against itself compares and passes.
    let (code, out) = perfhost(&["compare", "run.json", "run.json"], &dir.0).await;
    assert_eq!(code, Some(0), "{out}");
}

/// The pids of `pid`'s children.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a child this test started and has not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Waits for `child` at most `limit`; its output.
fn wait_output(child: std::process::Child, limit: Duration) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("output"),
        Err(_) => {
            signal(pid, libc::SIGKILL);
            panic!("did not end within {limit:?}");
        }
    }
}

fn local(url: &str, dir: &Path, users: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_perfhost"))
        .current_dir(dir)
        .args(["local", "--shards", "2", "--start-delay", "2s", "-H", url])
        .args(["--plugin", "http_get", "--config-value", "path=/health"])
        .args(["-u", users, "-t", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("perfhost local")
}

/// A recording server whose every answer takes 20 ms.
async fn slow_server() -> RecordingServer {
    RecordingServer::start(Mode::PeriodicStall {
        every: Duration::from_secs(3600),
        stall: Duration::ZERO,
        service: Duration::from_millis(20),
    })
    .await
}

/// Item 10: SIGTERM to `perfhost local` is Ctrl-C: the shards stop (the server sees no more
/// requests), what they wrote is merged, exit 130; a shard killed with SIGKILL is named as
/// killed by signal 9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_local_stops_the_shards_and_merges() {
    let _serial = support::serial().await;
    let dir = TempDir::new("local-term");
    let server = slow_server().await;
    let child = local(&server.url(), &dir.0, "4");
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let shards = children_of(pid);
    assert_eq!(shards.len(), 2, "two shards run: {shards:?}");
    let sent = Instant::now();
    signal(pid, libc::SIGTERM);
    let out = tokio::task::block_in_place(|| wait_output(child, Duration::from_secs(40)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(sent.elapsed() < Duration::from_secs(30), "{stderr}");
    assert!(
        stderr.contains("Interrupted: stopping the 2 of 2 shards"),
        "{stderr}"
    );
    assert!(!stderr.contains("exited with"), "{stderr}");
    for shard in shards {
        assert!(
            !Path::new(&format!("/proc/{shard}")).exists(),
            "shard {shard} still runs"
        );
    }
    let merged = support::read_json(&support::local_run_dir(&dir.0).join("merged.json"));
    assert_eq!(merged["meta"]["interrupted"], true);
    assert_eq!(merged["meta"]["merged_shards"], 2);
    // Every request the server answered is in the merged result, and none comes any more.
    let seen = server.seen().len();
    assert!(seen > 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.seen().len(), seen, "requests after the stop");
    // In-flight requests of the stop end as they may: at most one per user apart.
    let counted = merged["total"]["requests"].as_u64().unwrap();
    assert!(
        counted <= seen as u64 && counted + 4 >= seen as u64,
        "{counted} of {seen}"
    );

    // A shard killed by SIGKILL: named as such (not as "exited with 130"); merge then names
    // the missing shard.
    let dir = TempDir::new("local-kill");
    let child = local(&server.url(), &dir.0, "2");
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let shards = children_of(pid);
    assert_eq!(shards.len(), 2, "{shards:?}");
    signal(shards[1], libc::SIGKILL);
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(pid, libc::SIGINT);
    let out = tokio::task::block_in_place(|| wait_output(child, Duration::from_secs(40)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("was killed by signal 9 (SIGKILL"),
        "{stderr}"
    );
    assert!(!stderr.contains("exited with 130"), "{stderr}");
    assert!(stderr.contains("is missing"), "{stderr}");
    assert_eq!(out.status.code(), Some(130), "{stderr}");
}

/// Item 17: `perfhost bench` stops in a case's warm-up on SIGTERM (exit 130, the result still
/// written), and a warm-up beyond the maximum is refused in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_honours_signals_in_its_warm_up() {
    let _serial = support::serial().await;
    let dir = TempDir::new("bench-warmup");
    let (_demo, url) = demo(&["--latency", "50ms"]);
    std::fs::write(
        dir.join("huge.toml"),
        "name = \"huge\"\nplugin = \"http_get\"\n[[case]]\nname = \"one\"\nrequests = 4\nconcurrency = 1\nwarmup = 1000000000000\n",
    )
    .unwrap();
    let (code, out) = perfhost(&["bench", "--url", &url, "--suite", "huge.toml"], &dir.0).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("at most 100000"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{out}"
    );

    std::fs::write(
        dir.join("long.toml"),
        "name = \"long\"\nplugin = \"http_get\"\n[[case]]\nname = \"one\"\nrequests = 4\nconcurrency = 2\nwarmup = 100000\n[[case]]\nname = \"two\"\nrequests = 4\nconcurrency = 1\n",
    )
    .unwrap();
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let child = Command::new(env!("CARGO_BIN_EXE_perfhost"))
            .current_dir(&dir.0)
            .args([
                "bench",
                "--url",
                &url,
                "--suite",
                "long.toml",
                "-o",
                "out.json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let sent = Instant::now();
        signal(child.id(), sig);
        let out = tokio::task::block_in_place(|| wait_output(child, Duration::from_secs(30)));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert!(
            sent.elapsed() < Duration::from_secs(15),
            "{:?}: {stderr}",
            sent.elapsed()
        );
        let result = support::read_json(&dir.join("out.json"));
        assert_eq!(result["metadata"]["interrupted"], true);
        assert_eq!(
            result["results"].as_array().unwrap().len(),
            0,
            "nothing was measured"
        );
    }
}
