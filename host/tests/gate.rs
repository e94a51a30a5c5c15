//! The CI gate: thresholds (verdicts, exit codes, abort-on-fail), `perfhost compare` (with
//! JUnit checked by an XML parser), Locust's flags and locust.conf, and the documented
//! GitHub Actions workflow, whose `run:` steps are run here against the demo server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::faults::FaultServer;
use crate::support::{self, demo_url as demo, perfhost_text as perfhost};

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("perfhost-gate-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A server taking 600 ms fails `p95<500ms` with exit 1, saying by how much; with
/// abort-on-fail the run stops long before its run time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_fails_its_threshold_and_can_abort_the_run() {
    let faults = FaultServer::start().await;
    let d = dir("slow");
    let url = faults.url();
    let base = [
        "run",
        "-H",
        url.as_str(),
        "--plugin",
        "http_get",
        "--config-value",
        "path=/slow600",
        "-u",
        "2",
    ];
    let mut args: Vec<&str> = base.to_vec();
    args.extend([
        "-t",
        "3s",
        "--threshold",
        "p95<500ms",
        "--threshold",
        "failure-rate<1%",
        "--json-file",
        "a.json",
    ]);
    let (code, out) = perfhost(&args, &d).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("p95<500ms: 6") && out.contains("FAILED by 1"),
        "{out}"
    );
    let result = read_json(&d.join("a.json"));
    let t = &result["thresholds"][0];
    assert_eq!(t["passed"], false);
    assert!(
        t["measured"].as_f64().unwrap() >= 600.0 && t["margin"].as_f64().unwrap() <= -100.0,
        "{t}"
    );
    assert_eq!(result["thresholds"][1]["passed"], true, "no request failed");

    let mut args: Vec<&str> = base.to_vec();
    args.extend([
        "-t",
        "60s",
        "--threshold",
        "p95<500ms; abort-on-fail=2s",
        "--json-file",
        "b.json",
    ]);
    let started = std::time::Instant::now();
    let (code, out) = perfhost(&args, &d).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped early: {:?}",
        started.elapsed()
    );
    let result = read_json(&d.join("b.json"));
    assert_eq!(result["meta"]["aborted_by"], "p95<500ms; abort-on-fail=2s");
    assert_eq!(result["thresholds"][0]["aborted_run"], true);
    assert!(result["meta"]["duration_s"].as_f64().unwrap() < 15.0);
}

/// With ≥ 1,000 requests: an error rate of 0.5% passes `failure-rate < 1%` (exit 0), 5% fails
/// it (exit 1) — the verdict and the measured value in the JSON, not only the exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_rate_threshold_decides_the_exit_code() {
    let d = dir("rate");
    for (rate, passes) in [("0.005", true), ("0.05", false)] {
        let (_server, url) = demo(&["--error-rate", rate, "--seed", "7"]);
        let json = format!("rate-{rate}.json");
        let (code, out) = perfhost(
            &[
                "run",
                "-H",
                &url,
                "--plugin",
                "auditor_benchmark",
                "-u",
                "10",
                "-n",
                "4000",
                "--threshold",
                "failure-rate < 1%",
                "--json-file",
                &json,
                "--no-report",
            ],
            &d,
        )
        .await;
        let result = read_json(&d.join(&json));
        let t = &result["thresholds"][0];
        let measured = t["measured"].as_f64().unwrap();
        assert_eq!(result["total"]["requests"], 4000);
        assert!(
            result["total"]["failures"].as_u64().unwrap() > 0,
            "errors were injected"
        );
        assert_eq!(t["passed"], passes, "{rate}: measured {measured}");
        assert_eq!(code, Some(if passes { 0 } else { 1 }), "{rate}: {out}");
        let expected: f64 = rate.parse().unwrap();
        assert!(
            (measured - expected).abs() < expected * 0.5 + 0.002,
            "{rate}: measured {measured}"
        );
    }
}

/// `compare` on two recorded results, the second 20% slower at p95: exit 1 at a 10% allowance,
/// 0 at 60% (a loaded machine adds milliseconds to the live runs' p95: +27% was seen); an
/// endpoint on one side only is listed; the JUnit file parses as XML with the right test and
/// failure counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_finds_a_20_percent_regression() {
    let _serial = support::serial().await;
    let d = dir("compare");
    let (_fast, fast) = demo(&["--latency", "50ms"]);
    let (_slow, slow) = demo(&["--latency", "60ms"]);
    let (code, out) = perfhost(
        &[
            "run",
            "-H",
            &fast,
            "--plugin",
            "http_get",
            "--config-value",
            "path=/health",
            "-u",
            "4",
            "-n",
            "200",
            "--json-file",
            "base.json",
            "--no-report",
        ],
        &d,
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = perfhost(
        &[
            "run",
            "-H",
            &slow,
            "--plugin",
            "http_get",
            "--plugin",
            "burst_user",
            "--config-value",
            "path=/health",
            "-u",
            "6",
            "-n",
            "300",
            "--json-file",
            "cur.json",
            "--no-report",
        ],
        &d,
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = perfhost(
        &[
            "compare",
            "base.json",
            "cur.json",
            "--metric",
            "p95",
            "--max-regression",
            "10%",
            "--junit",
            "c.xml",
            "--markdown",
            "c.md",
        ],
        &d,
    )
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("GET /health") && out.contains("REGRESSED"),
        "{out}"
    );
    assert!(
        out.contains("only in the current:  POST /verify (burst)"),
        "{out}"
    );
    let xml = std::fs::read_to_string(d.join("c.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit is well-formed XML");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(
        cases.len(),
        2,
        "GET /health and Aggregated, p95 each: {xml}"
    );
    assert_eq!(suite.attribute("tests"), Some("2"));
    assert_eq!(
        suite.attribute("failures"),
        Some(failures.to_string().as_str())
    );
    assert!(failures >= 1, "{xml}");
    assert!(std::fs::read_to_string(d.join("c.md"))
        .unwrap()
        .contains("❌ regressed"));
    let (code, out) = perfhost(
        &[
            "compare",
            "base.json",
            "cur.json",
            "--metric",
            "p95",
            "--max-regression",
            "60%",
        ],
        &d,
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    // A benchmark.py file is a baseline too.
    std::fs::write(
        d.join("old.json"),
        r#"{"metadata":{"api_url":"x","timestamp":"t"},"results":[{"name":"GET /health","description":"","total_requests":200,"successful_requests":200,"failed_requests":0,"duration_seconds":1.0,"requests_per_second":50.0,"latency_p50_ms":50.0,"latency_p95_ms":50.5,"latency_p99_ms":51.0,"latency_min_ms":50.0,"latency_max_ms":52.0,"latency_avg_ms":50.2}]}"#,
    )
    .unwrap();
    let (code, out) = perfhost(&["compare", "old.json", "cur.json", "--metric", "p95"], &d).await;
    assert_eq!(code, Some(1), "{out}");
}

/// A Locust command line works with `locust -f x.py` replaced by `perfhost run`: -f with a
/// .wasm, --headless, --only-summary, --exit-code-on-error, --csv-full-history, and the
/// Auditor suite's locust.conf read as Locust reads it (every key of it understood).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locust_flags_and_locust_conf_work() {
    let d = dir("locust");
    // The Auditor suite's locust.conf, pointed at a closed port.
    let conf =
        "# Target host\nhost = http://127.0.0.1:1\n\n# Web UI settings\nweb-host = 0.0.0.0\n\
                web-port = 8089\n\nusers = 50\nspawn-rate = 5\n# run-time = 5m\nloglevel = INFO\n\
                # expect-workers = 4\n";
    std::fs::write(d.join("locust.conf"), conf).unwrap();
    let (code, out) = perfhost(&["run", "--print-config"], &d).await;
    assert_eq!(code, Some(0), "{out}");
    let row = |key: &str| -> Vec<String> {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} row in {out}"));
        line.split_whitespace().map(String::from).collect()
    };
    assert_eq!(row("host")[1], "http://127.0.0.1:1", "{out}");
    // Each value names the line of locust.conf it came from.
    assert_eq!(
        row("users")[1..],
        ["50", "(file", "locust.conf:8)"],
        "{out}"
    );
    assert_eq!(
        row("spawn-rate")[1..],
        ["5/s", "(file", "locust.conf:9)"],
        "{out}"
    );
    // web-host and web-port are the web UI's (perfhost ui); the rest is commented out.
    assert!(
        !out.contains("ignores"),
        "no key of this file is ignored: {out}"
    );

    let faults = FaultServer::start().await;
    let url = faults.url();
    let wasm = support::fixture("http_get");
    let (code, out) = perfhost(
        &[
            "run",
            "--headless",
            "-f",
            &wasm,
            "-H",
            &url,
            "--config-value",
            "path=/missing",
            "-u",
            "1",
            "-n",
            "3",
            "--only-summary",
            "--exit-code-on-error",
            "3",
            "--csv",
            "out",
            "--csv-full-history",
            "--no-report",
        ],
        &d,
    )
    .await;
    assert_eq!(code, Some(3), "the fault server 404s every request: {out}");
    assert!(
        !out.contains("users 1/1"),
        "no status line with --only-summary: {out}"
    );
    let history = std::fs::read_to_string(d.join("out_stats_history.csv")).unwrap();
    assert!(
        history.lines().any(|l| l.contains(",Aggregated,")),
        "{history}"
    );
    assert!(
        history.lines().any(|l| l.contains(",GET,")),
        "a row per endpoint with --csv-full-history: {history}"
    );
    let (code, out) = perfhost(&["run", "-f", "locustfile.py", "-n", "1"], &d).await;
    assert_eq!(code, Some(2));
    assert!(out.contains("locustfile.py is a Locust file"), "{out}");
    let (code, out) = perfhost(&["run", "--help"], &d).await;
    assert_eq!(code, Some(0));
    for needle in [
        "API_TOKEN",
        "API_KEY",
        "http_get",
        "bench_verify",
        "--threshold",
    ] {
        assert!(out.contains(needle), "run --help names {needle}");
    }
}

/// The documented GitHub Actions workflow is valid YAML, and its `run:` steps (the `uses:`
/// steps aside) pass against the demo server: bench, smoke with thresholds, compare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_ci_workflow_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/ci");
    let workflow = std::fs::read_to_string(root.join("github-actions.yml")).unwrap();
    let gitlab = std::fs::read_to_string(root.join("gitlab-ci.yml")).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&workflow).expect("valid YAML");
    yaml_rust2::YamlLoader::load_from_str(&gitlab).expect("the GitLab job is valid YAML");
    let job = &docs[0]["jobs"]["perfhost"];
    let steps = job["steps"].as_vec().expect("steps");
    assert!(steps.iter().any(|s| s["uses"]
        .as_str()
        .is_some_and(|u| u.starts_with("actions/upload-artifact"))));

    let d = dir("workflow");
    // What the workflow's `uses:` steps would have done: perfhost in ./bin.
    std::fs::create_dir_all(d.join("bin")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_perfhost"), d.join("bin/perfhost")).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let github_path = d.join("github_path");
    std::fs::write(&github_path, "").unwrap();
    let mut path = std::env::var("PATH").unwrap_or_default();
    let mut ran = 0;
    let mut baseline_made = false;
    for step in steps {
        let Some(script) = step["run"].as_str() else {
            continue;
        };
        if script.contains("perfhost compare") && !baseline_made {
            // A baseline, as a team would have committed from an earlier run.
            std::fs::create_dir_all(d.join("perf-baseline")).unwrap();
            std::fs::copy(
                d.join("reports/smoke.json"),
                d.join("perf-baseline/smoke.json"),
            )
            .unwrap();
            baseline_made = true;
        }
        let mut step_cmd = Command::new("bash");
        step_cmd
            .args(["-e", "-c", &script.replace("8888", &port.to_string())])
            .current_dir(&d)
            .env("PATH", &path)
            .env("API_URL", format!("http://127.0.0.1:{port}"))
            .env("SMOKE_TIME", "4s")
            .env("GITHUB_PATH", &github_path);
        let out = tokio::task::spawn_blocking(move || step_cmd.output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "step `{}` failed: {}{}",
            step["name"].as_str().unwrap_or(script),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // $GITHUB_PATH: what a step appends is on the PATH of the next ones.
        for dir in std::fs::read_to_string(&github_path).unwrap().lines() {
            if !path.split(':').any(|p| p == dir) {
                path = format!("{dir}:{path}");
            }
        }
        ran += 1;
    }
    let _ = Command::new("pkill")
        .args(["-f", &format!("demo-server --bind 127.0.0.1:{port}")])
        .status();
    assert_eq!(ran, 6, "every run: step ran");
    for file in [
        "bench.json",
        "bench-junit.xml",
        "smoke.json",
        "smoke-junit.xml",
        "compare.md",
        "compare-junit.xml",
        "smoke.html",
    ] {
        assert!(d.join("reports").join(file).exists(), "{file}");
    }
    let smoke = read_json(&d.join("reports/smoke.json"));
    assert!(
        smoke["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["passed"] == true),
        "the smoke preset passes its thresholds against the demo server: {}",
        smoke["thresholds"]
    );
    let junit = std::fs::read_to_string(d.join("reports/smoke-junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .count(),
        3,
        "{junit}"
    );
}
