//! The engine and `perfhost run` end to end against servers on 127.0.0.1.

use std::time::Duration;

use perfhost_core::plan::{LoadShape, Secret};

use crate::support::{self, Mode, RecordingServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classes_are_assigned_exactly_and_counts_add_up() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &["auditor_user", "burst_user", "heavy_user"]);
    plan.load = LoadShape::ramp(10, 100.0);
    plan.stop.run_time = Some(Duration::from_secs(3));
    let result = support::run(&plan).await;
    let classes: Vec<(String, usize)> = result.plan.class_users.clone().into_iter().collect();
    assert_eq!(
        classes,
        vec![
            ("AuditorUser".into(), 7),
            ("BurstUser".into(), 2),
            ("HeavyUser".into(), 1)
        ]
    );
    // What the server saw equals completed + failed (+ cancelled) as perfhost reports them.
    assert_eq!(server.seen().len() as u64, result.total.requests);
    assert_eq!(result.total.failures, 0);
    assert!(result.history.len() >= 2, "one history point per second");
    let duration = result.meta.duration_s;
    assert!(
        (2.9..6.0).contains(&duration),
        "run time stops the run ({duration})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iterations_stop_the_run() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &["burst_user"]);
    plan.load = LoadShape::ramp(3, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(9);
    let result = support::run(&plan).await;
    assert_eq!(result.total.requests, 9);
    assert_eq!(server.seen().len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_shows_its_failures_with_a_sample() {
    let server = RecordingServer::start(Mode::FailVerify).await;
    let mut plan = support::plan(&server.url(), &["burst_user"]);
    plan.load = LoadShape::ramp(2, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(6);
    let result = support::run(&plan).await;
    let row = result
        .stats
        .iter()
        .find(|s| s.name == "/verify (burst)")
        .expect("row");
    assert_eq!((row.requests, row.failures), (6, 6));
    assert!(result
        .failures
        .iter()
        .any(|f| f.name == "/verify (burst)" && f.occurrences == 6));
    let sample = result
        .failure_samples
        .first()
        .expect("a failing response kept as a sample");
    assert_eq!(sample.status, Some(500));
    assert!(sample.body.contains("internal_error"), "{}", sample.body);
    assert!(result.has_failures());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_ins_against_another_service_get_a_hint() {
    for (mode, hinted) in [(Mode::NotFound, true), (Mode::FailVerify, false)] {
        let server = RecordingServer::start(mode).await;
        let mut plan = support::plan(&server.url(), &["burst_user"]);
        plan.load = LoadShape::ramp(2, 10.0);
        plan.stop.run_time = None;
        plan.stop.iterations = Some(4);
        let result = support::run(&plan).await;
        assert_eq!(result.total.failures, 4, "{mode:?}");
        let hint = perfhost::report::wrong_target_hint(&result);
        assert_eq!(hint.is_some(), hinted, "{mode:?}: {hint:?}");
        if let Some(hint) = hint {
            assert!(
                hint.contains("--plugin http_get") && hint.contains(&server.url()),
                "{hint}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_open_files_limit_is_named_with_the_fix() {
    let server = RecordingServer::start(Mode::Auditor).await;
    // 30 users need 30 * 2 + 256 = 316 descriptors by perfhost's reckoning.
    for (limit, warned) in [(300, true), (400, false)] {
        let url = server.url();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("bash")
                .args(["-c", &format!("ulimit -n {limit} && exec \"$0\" \"$@\"")])
                .arg(env!("CARGO_BIN_EXE_perfhost"))
                .args([
                    "run", "-H", &url, "--plugin", "http_get", "-u", "30", "-n", "60",
                ])
                .args(["--config-value", "path=/health", "--no-report"])
                .output()
                .expect("perfhost runs")
        })
        .await
        .expect("the blocking task ends");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.contains("raise it with `ulimit -n 316`"),
            warned,
            "limit {limit}: {stderr}"
        );
        assert_eq!(output.status.code(), Some(0), "limit {limit}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_gives_timeouts_not_a_hung_run() {
    let server = RecordingServer::start(Mode::Stall).await;
    let mut plan = support::plan(&server.url(), &["burst_user"]);
    plan.load = LoadShape::ramp(2, 10.0);
    plan.stop.run_time = Some(Duration::from_secs(3));
    plan.client.request_timeout = Duration::from_millis(500);
    let result = support::run(&plan).await;
    assert!(
        result
            .failures
            .iter()
            .any(|f| f.error.contains("timed out")),
        "{:?}",
        result.failures
    );
    assert!(result.meta.duration_s < 10.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_is_reported_before_the_run() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let plan = support::plan(&url, &["burst_user"]);
    let err = perfhost::run(&plan, Default::default(), |_, _| {})
        .await
        .expect_err("unreachable");
    assert_eq!(err.exit_code(), perfhost::exit::UNREACHABLE);
    assert!(err.to_string().contains("unreachable"), "{err}");
}

/// SIGINT mid-run: exit 130 and a complete JSON result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_writes_the_result_and_exits_130() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = std::env::temp_dir().join(format!("perfhost-sigint-{}", std::process::id()));
    let json = dir.join("result.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_perfhost"))
        .args([
            "run",
            "-u",
            "4",
            "-t",
            "60s",
            "--plugin",
            "burst_user",
            "--config",
            "/dev/null",
            "-H",
            &server.url(),
            "--json-file",
        ])
        .arg(&json)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130));
    let result: perfhost_core::result::RunResult =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(result.meta.interrupted);
    assert!(result.total.requests > 0);
    assert_eq!(server.seen().len() as u64, result.total.requests);
}

/// No target anywhere: a demo server child appears, all three behaviours run, none is left.
#[test]
fn zero_config_run_uses_the_demo_server_and_leaves_no_child() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_perfhost"))
        .args([
            "run",
            "-u",
            "10",
            "-t",
            "4s",
            "--no-report",
            "--json",
            "--config",
            "/dev/null",
        ])
        .env_remove("LOAD_TEST_HOST")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stderr.contains("built-in demo server"), "{stderr}");
    for name in ["/verify (standard)", "/verify (burst)", "/verify (large)"] {
        assert!(stdout.contains(name), "{name} ran: {stdout}");
    }
    // The child is gone (its pid is printed on the "started" line).
    let pid: u32 = stderr
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .expect("pid printed");
    let alive = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        !alive.contains("demo-server"),
        "demo server {pid} still running"
    );
}

/// Each recorded latency ≥ the server's own service time for that request, and the median
/// difference is small (the probe plugin records `measured − server` per request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_latency_covers_the_server_time_and_adds_little() {
    let _serial = support::serial().await;
    let config = perfhost_demo::DemoConfig {
        latency: Some(perfhost_demo::LatencyRange {
            min: Duration::from_millis(2),
            max: Duration::from_millis(12),
        }),
        ..Default::default()
    };
    let server = perfhost_demo::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut plan = support::plan(&server.url(), &[&support::fixture("fixture_latency_probe")]);
    plan.load = LoadShape::ramp(4, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(200);
    let result = support::run(&plan).await;
    let overhead = result
        .stats
        .iter()
        .find(|s| s.method == "overhead")
        .expect("overhead events");
    assert_eq!(overhead.requests, 200);
    assert_eq!(
        overhead.failures, 0,
        "a latency below the server's own time: {:?}",
        result.failures
    );
    assert!(
        overhead.median_ms < 2.0,
        "median overhead {} ms",
        overhead.median_ms
    );
    server.shutdown().await;
}

/// Waits are honoured and each user keeps one connection (timestamps taken by the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_are_honoured_over_one_keep_alive_connection_per_user() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &[&support::fixture("fixture_sequential")]);
    plan.load = LoadShape::ramp(2, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(20);
    support::run(&plan).await;
    let seen = server.seen();
    let mut by_conn: std::collections::BTreeMap<u16, Vec<Duration>> = Default::default();
    for s in &seen {
        by_conn.entry(s.peer_port).or_default().push(s.at);
    }
    assert_eq!(by_conn.len(), 2, "one keep-alive connection per user");
    for times in by_conn.values() {
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            // constant(100): never sooner; later only by the scheduling slack of a busy machine.
            assert!(
                gap >= Duration::from_millis(99) && gap < Duration::from_millis(400),
                "gap {gap:?}"
            );
        }
    }
}

/// Users start at the spawn rate: first requests are 1/rate apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_start_at_the_spawn_rate() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &[&support::fixture("fixture_sequential")]);
    plan.load = LoadShape::ramp(5, 4.0);
    plan.stop.run_time = Some(Duration::from_millis(2500));
    support::run(&plan).await;
    let mut firsts: std::collections::BTreeMap<u16, Duration> = Default::default();
    for s in server.seen() {
        firsts.entry(s.peer_port).or_insert(s.at);
    }
    let mut starts: Vec<Duration> = firsts.into_values().collect();
    starts.sort();
    assert_eq!(starts.len(), 5);
    for pair in starts.windows(2) {
        let gap = (pair[1] - pair[0]).as_secs_f64();
        assert!(
            (0.15..0.40).contains(&gap),
            "spawn gap {gap:.3} s at 4 users/s"
        );
    }
}

/// A server that dies mid-run: connection errors, and the run still completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_gives_connection_errors() {
    let server = perfhost_demo::start(Default::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut plan = support::plan(&server.url(), &["burst_user"]);
    plan.load = LoadShape::ramp(3, 10.0);
    plan.stop.run_time = Some(Duration::from_secs(3));
    let run = tokio::spawn(async move { support::run(&plan).await });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    server.shutdown().await;
    let result = run.await.unwrap();
    assert!(result.total.requests > result.total.failures && result.total.failures > 0);
    assert!(
        result
            .failures
            .iter()
            .any(|f| f.error.contains("connection")),
        "connection errors expected: {:?}",
        result.failures
    );
}

/// --reset-stats drops what happened during the ramp-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_stats_drops_the_ramp_up() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &[&support::fixture("fixture_sequential")]);
    plan.load = LoadShape::ramp(3, 2.0);
    plan.stop.run_time = Some(Duration::from_secs(3));
    plan.reset_stats = true;
    let result = support::run(&plan).await;
    let seen = server.seen().len() as u64;
    assert!(
        result.total.requests > 0 && result.total.requests + 5 < seen,
        "{} recorded of {seen}",
        result.total.requests
    );
}

/// The log level from -L, from perfhost.toml or the environment decides what is logged: the
/// info line of --reset-stats shows at the default level and not at ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_level_decides_what_is_logged() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = std::env::temp_dir().join(format!("perfhost-loglevel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = server.url();
    let plugin = support::fixture("fixture_sequential");
    let base = [
        "run",
        "-H",
        &url,
        "--plugin",
        &plugin,
        "-u",
        "1",
        "-n",
        "3",
        "--reset-stats",
        "--no-report",
    ];
    let stderr = |args: &[&str]| {
        let args: Vec<String> = base.iter().chain(args).map(|a| a.to_string()).collect();
        let dir = dir.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = support::perfhost(&args, &dir).await;
            String::from_utf8_lossy(&out.stderr).into_owned()
        }
    };
    let info = "statistics reset";
    assert!(
        stderr(&[]).await.contains(info),
        "shown at the default level"
    );
    assert!(
        !stderr(&["-L", "ERROR"]).await.contains(info),
        "hidden with -L ERROR"
    );
    std::fs::write(dir.join("perfhost.toml"), "log-level = \"warning\"\n").unwrap();
    assert!(
        !stderr(&[]).await.contains(info),
        "hidden by log-level in perfhost.toml"
    );
    assert!(
        stderr(&["-L", "debug"]).await.contains(info),
        "the flag beats the file"
    );
}

/// The documented schema (docs/result.schema.json) names exactly the fields a real result has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_matches_its_documented_schema() {
    let server = RecordingServer::start(Mode::FailVerify).await;
    let mut plan = support::plan(&server.url(), &["burst_user"]);
    plan.load = LoadShape::ramp(1, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(2);
    // Thresholds of every scope, so their documented fields are checked too.
    plan.thresholds = [
        "p95 < 5s; abort-on-fail=1m",
        "'/verify (burst)':failures == 0",
        "class=BurstUser:rps > 0",
    ]
    .iter()
    .map(|t| perfhost_core::plan::parse_threshold(t).unwrap())
    .collect();
    let result = serde_json::to_value(support::run(&plan).await).unwrap();
    assert_eq!(result["thresholds"].as_array().unwrap().len(), 3);
    assert_eq!(result["classes"][0]["name"], "BurstUser");
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/result.schema.json")).unwrap();
    support::check_schema(&result, &schema, "result");
    assert_eq!(result["schema"], "perfhost-result/1");
}

/// --trace prints every request and response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_prints_requests_and_responses() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let url = server.url();
    let args = [
        "run",
        "-u",
        "1",
        "-n",
        "1",
        "--trace",
        "--no-report",
        "--plugin",
        "burst_user",
    ];
    let out = support::perfhost(
        &[&args[..], &["--config", "/dev/null", "-H", &url]].concat(),
        &std::env::temp_dir(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("--> POST /verify {\"answer\""), "{stderr}");
    assert!(stderr.contains("<-- HTTP/1.1 200"), "{stderr}");
}

/// A user about to wait 500 ms or more lets its connection rest (`--trace` says so), in the
/// closed model's waits (auditor_user: 1–3 s), in the open model's pool (one arrival a
/// second) and in a 1 s `sleep()`; a user that never waits (http_get) keeps its connection
/// whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_user_rests_its_connection() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let url = server.url();
    let rests = |args: Vec<String>| {
        let url = url.clone();
        async move {
            let common = [
                "--trace",
                "--no-report",
                "--config",
                "/dev/null",
                "--config-value",
                "path=/health",
                "-H",
            ];
            let out = support::perfhost(
                &[
                    &["run"][..],
                    &args.iter().map(String::as_str).collect::<Vec<_>>(),
                    &common,
                    &[&url],
                ]
                .concat(),
                &std::env::temp_dir(),
            )
            .await;
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(out.status.code(), Some(0), "{stderr}");
            (
                stderr
                    .matches("connection rests while the user waits")
                    .count(),
                stderr
                    .matches("connection rests while the user sleeps")
                    .count(),
            )
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let waits = args(&["-u", "1", "-n", "2", "--plugin", "auditor_user"]);
    assert!(rests(waits).await.0 >= 1, "a 1-3 s wait rests");
    let pool = args(&[
        "--rate",
        "1/s",
        "--pre-allocated-users",
        "1",
        "--max-users",
        "1",
        "-t",
        "2500ms",
        "--plugin",
        "http_get",
    ]);
    assert!(rests(pool).await.0 >= 1, "a second in the pool rests");
    // The sleeper fixture's user 0 sleeps 1 s between two requests inside its task.
    let sleeper = support::fixture("fixture_sleeper");
    let sleeps = args(&["-u", "1", "-t", "2s", "--plugin", &sleeper]);
    assert_eq!(rests(sleeps).await.1, 1, "a 1 s sleep() rests");
    let busy = args(&["-u", "1", "-n", "20", "--plugin", "http_get"]);
    assert_eq!(rests(busy).await, (0, 0), "no wait, no rest");
}

/// The generic built-in requests the configured path in a loop, like wrk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_get_requests_the_configured_path() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &["http_get"]);
    plan.load = LoadShape::ramp(2, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(10);
    plan.config_values
        .insert("path".into(), "/health?probe=1".into());
    let result = support::run(&plan).await;
    assert_eq!(result.total.requests, 10);
    assert_eq!(result.total.failures, 0);
    assert!(server
        .seen()
        .iter()
        .all(|s| s.method == "GET" && s.path == "/health?probe=1"));
}

/// API_KEY / API_TOKEN reach the server as headers (the demo rejects requests without them)
/// and never appear in the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_credentials_are_sent_and_never_reported() {
    // Without credentials the same server answers 401, so the checks with them are not vacuous.
    let cases = [
        (Some("k-secret-123"), None),
        (None, Some("k-secret-123")),
        (None, None),
    ];
    for (key, token) in cases {
        let config = perfhost_demo::DemoConfig {
            api_key: Some("k-secret-123".into()),
            ..Default::default()
        };
        let server = perfhost_demo::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut plan = support::plan(&server.url(), &["burst_user"]);
        plan.load = LoadShape::ramp(1, 10.0);
        plan.stop.run_time = None;
        plan.client.api_key = key.map(|k| Secret(k.to_string()));
        plan.client.api_token = token.map(|t| Secret(t.to_string()));
        let credentials = key.or(token).is_some();
        plan.stop.iterations = Some(if credentials { 3 } else { 1 });
        let result = support::run(&plan).await;
        if credentials {
            assert_eq!(
                (result.total.requests, result.total.failures),
                (3, 0),
                "{:?}",
                result.failures
            );
            let json = serde_json::to_string(&result).unwrap();
            assert!(!json.contains("k-secret-123"));
        } else {
            assert!(
                result.failures.iter().any(|f| f.error.contains("401")),
                "{:?}",
                result.failures
            );
        }
        server.shutdown().await;
    }
}
