//! `perfhost ui` and `perfhost run --web`: the real binary serving its page and Locust's API on
//! an ephemeral loopback port, driven over HTTP (with `curl` where Locust users would use it)
//! against a recording server — start, change users, pause, resume, reset, stop, a second
//! test; the Locust fields equal the JSON result; the token, the credentials and
//! `--read-only` guard control; no secret reaches an answer.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, http, ChildGuard, Mode, RecordingServer, TempDir};

/// A `perfhost ui` process and the port its page is on.
pub struct Ui {
    _child: ChildGuard,
    pub port: u16,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Ui {
    /// Starts `perfhost <args>` in `dir` and waits (≤ 60 s: plugins compile on a cold cache)
    /// for its "Web UI: http://127.0.0.1:PORT/" line.
    pub fn start(args: &[&str], dir: &std::path::Path, env: &[(&str, &str)]) -> Ui {
        let mut child = Command::new(env!("CARGO_BIN_EXE_perfhost"))
            .current_dir(dir)
            .args(args)
            .envs(env.iter().copied())
            .env_remove("LOAD_TEST_HOST")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("perfhost starts");
        let stderr = child.stderr.take().expect("stderr");
        let child = ChildGuard(child);
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    if let Some(rest) = line.split("Web UI: http://").nth(1) {
                        let _ = tx.send(rest.split('/').next().unwrap_or("").to_string());
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no `Web UI:` line; stderr: {:?}", lines.lock().unwrap()));
        let port = addr.rsplit(':').next().unwrap().parse().expect("a port");
        Ui {
            _child: child,
            port,
            stderr: lines,
        }
    }
}

pub fn get_json(port: u16, path: &str) -> Value {
    let (status, _, body) = http(port, "GET", path, &[], "");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn post(port: u16, path: &str) -> (u16, Value) {
    let (status, _, body) = http(port, "POST", path, &[], "");
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// `curl -d …` a form-encoded `POST /swarm`, as Locust's docs show.
fn curl_swarm(port: u16, fields: &[&str]) -> Value {
    let mut args = vec!["-s".to_string(), "--max-time".into(), "10".into()];
    for f in fields {
        args.push("-d".into());
        args.push(f.to_string());
    }
    args.push(format!("http://127.0.0.1:{port}/swarm"));
    let out = Command::new("curl")
        .args(&args)
        .output()
        .expect("curl runs");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("curl /swarm: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Polls `f` every 200 ms until it is true, for at most `limit`.
async fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn aggregated(port: u16) -> Value {
    let stats = get_json(port, "/stats/requests");
    stats["stats"]
        .as_array()
        .and_then(|rows| rows.last().cloned())
        .unwrap_or(Value::Null)
}

fn requests(port: u16) -> u64 {
    aggregated(port)["num_requests"].as_u64().unwrap_or(0)
}

fn state(port: u16) -> String {
    get_json(port, "/api/state")["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// The whole life of a test through the API, with the numbers checked against the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_starts_steers_and_stops_tests() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = TempDir::new("web-ui");
    let url = server.url();
    let secret = "tok-SECRET-4f1a";
    let ui = Ui::start(
        &[
            "ui",
            "--web-port",
            "0",
            "-H",
            &url,
            "-f",
            "burst_user",
            "--seed",
            "7",
        ],
        &dir.0,
        &[("API_TOKEN", secret), ("API_KEY", secret)],
    );
    let port = ui.port;
    assert_eq!(state(port), "ready");
    // Nothing runs: stopping and resetting are done (Locust answers so), not errors.
    assert_eq!(http(port, "GET", "/stop", &[], "").0, 200);
    // A name that only resolves here (DNS rebinding) gets nothing without a token.
    let (status, _, _) = http(
        port,
        "GET",
        "/api/state",
        &[("Host", "rebound.example:8089")],
        "",
    );
    assert_eq!(status, 403);
    let (status, _, page) = http(port, "GET", "/", &[], "");
    assert!(
        status == 200 && page.contains("id=\"start-form\""),
        "{page}"
    );
    let classes = get_json(port, "/api/state")["available_classes"].clone();
    assert_eq!(classes, serde_json::json!(["BurstUser"]));

    // Start from a form-encoded POST, as `curl -d` sends it.
    let started = curl_swarm(
        port,
        &["user_count=2", "spawn_rate=100", "run_time=60s", "host="],
    );
    assert_eq!(started["success"], true, "{started}");
    wait_for(Duration::from_secs(15), "requests", || requests(port) > 0).await;

    // More users mid-run.
    let moved = curl_swarm(port, &["user_count=5", "spawn_rate=100"]);
    assert_eq!(moved["success"], true, "{moved}");
    wait_for(Duration::from_secs(10), "5 users", || {
        get_json(port, "/stats/requests")["user_count"] == 5
    })
    .await;

    // Paused: nothing is sent (after the tasks in flight end and the board shows them).
    let (status, paused) = post(port, "/api/pause");
    assert_eq!(status, 200, "{paused}");
    assert_eq!(state(port), "paused");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = requests(port);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(requests(port), before, "requests were sent while paused");
    let (status, _) = post(port, "/api/resume");
    assert_eq!(status, 200);
    wait_for(Duration::from_secs(10), "requests after resume", || {
        requests(port) > before
    })
    .await;

    // Reset: the counts start over.
    let high = requests(port);
    let (status, _, body) = http(port, "GET", "/stats/reset", &[], "");
    assert_eq!(status, 200, "{body}");
    wait_for(Duration::from_secs(10), "the reset", || {
        requests(port) < high
    })
    .await;

    // Locust's fields equal the JSON result of the same moment (retried until no second
    // passes between the two reads).
    let mut matched = false;
    for _ in 0..20 {
        let locust = get_json(port, "/stats/requests");
        let result = get_json(port, "/api/result");
        let rows = locust["stats"].as_array().unwrap();
        let total = rows.last().unwrap();
        if total["num_requests"] != result["total"]["requests"] {
            continue;
        }
        assert_eq!(total["num_failures"], result["total"]["failures"]);
        for row in &rows[..rows.len() - 1] {
            let same = result["stats"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == row["name"] && s["method"] == row["method"])
                .unwrap_or_else(|| panic!("{} in the result", row["name"]));
            assert_eq!(row["num_requests"], same["requests"]);
            assert_eq!(row["median_response_time"], same["median_ms"]);
            assert_eq!(row["avg_response_time"], same["avg_ms"]);
            assert_eq!(row["max_response_time"], same["max_ms"]);
        }
        matched = true;
        break;
    }
    assert!(matched, "/stats/requests never matched /api/result");

    // Events: the state at once, then points and stats each second.
    let events = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        write!(
            stream,
            "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .unwrap();
        let mut seen = String::new();
        let until = Instant::now() + Duration::from_secs(6);
        let mut buf = [0u8; 8192];
        while Instant::now() < until && !seen.contains("event: point") {
            if let Ok(n) = stream.read(&mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        seen
    })
    .await
    .unwrap();
    assert!(
        events.contains("text/event-stream") && events.contains("event: state"),
        "{events}"
    );
    assert!(
        events.contains("event: point") && events.contains("event: stats"),
        "{events}"
    );
    let history = get_json(port, "/api/history");
    assert!(
        history["points"].as_array().unwrap().len() >= 3,
        "{history}"
    );

    // No secret in any answer.
    for path in [
        "/api/state",
        "/api/history",
        "/api/result",
        "/stats/requests",
        "/stats/report",
        "/metrics",
        "/exceptions",
        "/stats/failures/csv",
    ] {
        let (_, _, body) = http(port, "GET", path, &[], "");
        assert!(!body.contains(secret), "{path} shows the API token");
    }

    let (status, _, body) = http(port, "GET", "/stop", &[], "");
    assert_eq!(status, 200, "{body}");
    wait_for(Duration::from_secs(20), "stopped", || {
        state(port) == "stopped"
    })
    .await;

    // The final result is the one written to reports/, and /metrics counts the same.
    let result = get_json(port, "/api/result");
    let written: Vec<_> = std::fs::read_dir(dir.join("reports"))
        .expect("reports/")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(written.len(), 1);
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(written[0].path()).unwrap()).unwrap();
    assert_eq!(result["total"], file["total"]);
    let (_, _, metrics) = http(port, "GET", "/metrics", &[], "");
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string())))
        .expect("/metrics parses");
    let counted: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "perfhost_requests_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(
        counted as u64,
        result["total"]["requests"].as_u64().unwrap()
    );

    // Every download.
    for (path, starts) in [
        ("/stats/requests/csv", "Type,Name,Request Count"),
        ("/stats/failures/csv", "Method,Name,Error,Occurrences"),
        ("/exceptions/csv", "Count,Message,Traceback,Nodes"),
        ("/stats/requests_full_history/csv", "Timestamp,User Count"),
        ("/stats/report?download=1", "<!DOCTYPE html>"),
    ] {
        let (status, head, body) = http(port, "GET", path, &[], "");
        assert_eq!(status, 200, "{path}");
        assert!(
            body.starts_with(starts),
            "{path}: {}",
            &body[..body.len().min(120)]
        );
        assert!(
            head.contains("content-disposition: attachment"),
            "{path}: {head}"
        );
    }
    assert!(get_json(port, "/exceptions")["exceptions"].is_array());

    // A new test in the same session, against the same target.
    let again = curl_swarm(port, &["user_count=1", "spawn_rate=10", "run_time=1s"]);
    assert_eq!(again["success"], true, "{again}");
    wait_for(Duration::from_secs(20), "the second test", || {
        let s = get_json(port, "/api/state");
        s["run_id"] == 2 && s["state"] == "stopped"
    })
    .await;
    let errors: Vec<String> = ui
        .stderr
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("panicked"))
        .cloned()
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// Bad form fields are one message naming the field; nothing starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_swarm_names_the_field() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = TempDir::new("web-bad");
    let ui = Ui::start(
        &[
            "ui",
            "--web-port",
            "0",
            "-H",
            &server.url(),
            "-f",
            "burst_user",
        ],
        &dir.0,
        &[],
    );
    let answer = curl_swarm(ui.port, &["user_count=many"]);
    assert_eq!(answer["success"], false);
    assert!(
        answer["message"].as_str().unwrap().contains("user_count"),
        "{answer}"
    );
    let answer = curl_swarm(ui.port, &["user_count=1", "run_time=soon"]);
    assert!(
        answer["message"].as_str().unwrap().contains("run_time"),
        "{answer}"
    );
    let answer = curl_swarm(ui.port, &["user_count=1", "user_classes=NoSuchUser"]);
    assert_eq!(
        answer["success"], true,
        "classes are checked once plugins load"
    );
    wait_for(Duration::from_secs(20), "the refused test", || {
        let s = get_json(ui.port, "/api/state");
        s["state"] == "stopped"
            && s["message"]
                .as_str()
                .is_some_and(|m| m.contains("NoSuchUser"))
    })
    .await;
    assert_eq!(get_json(ui.port, "/stats/requests")["user_count"], 0);
}

/// Beyond loopback every request needs the token (or the credentials); `--read-only` refuses
/// control whatever is sent; a control request from another origin is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_needs_the_token_and_read_only_refuses_it() {
    let dir = TempDir::new("web-guard");
    let out = support::perfhost(&["ui", "--web-host", "0.0.0.0", "--web-port", "0"], &dir.0).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--web-token") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );

    let server = RecordingServer::start(Mode::Auditor).await;
    let url = server.url();
    let ui = Ui::start(
        &[
            "ui",
            "--web-host",
            "0.0.0.0",
            "--web-port",
            "0",
            "--web-token",
            "s3cret",
            "-H",
            &url,
            "-f",
            "burst_user",
        ],
        &dir.0,
        &[],
    );
    let port = ui.port;
    let swarm = "user_count=1&spawn_rate=10&run_time=1s";
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let (status, _, _) = http(port, "POST", "/swarm", &[form], swarm);
    assert_eq!(status, 401);
    assert_eq!(http(port, "GET", "/api/state", &[], "").0, 401);
    assert_eq!(http(port, "GET", "/stop", &[], "").0, 401);
    let bearer = ("Authorization", "Bearer s3cret");
    assert_eq!(http(port, "GET", "/api/state", &[bearer], "").0, 200);
    // A browser: the token once in the URL becomes a cookie.
    let (status, head, _) = http(port, "GET", "/?token=s3cret", &[], "");
    assert_eq!(status, 303);
    assert!(head.contains("set-cookie: perfhost_token=s3cret; httponly; samesite=strict"));
    let cookie = ("Cookie", "perfhost_token=s3cret");
    assert_eq!(http(port, "GET", "/api/state", &[cookie], "").0, 200);
    // Another site's page posting to this one is refused even with the cookie.
    let elsewhere = ("Origin", "http://elsewhere.example");
    let (status, _, _) = http(port, "POST", "/swarm", &[cookie, form, elsewhere], swarm);
    assert_eq!(status, 403);
    let (status, _, body) = http(port, "POST", "/swarm", &[bearer, form], swarm);
    assert_eq!(status, 200, "{body}");
    drop(ui);

    let ui = Ui::start(
        &[
            "ui",
            "--read-only",
            "--web-port",
            "0",
            "-H",
            &url,
            "-f",
            "burst_user",
        ],
        &dir.0,
        &[],
    );
    let (status, _, body) = http(ui.port, "POST", "/swarm", &[form], swarm);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read-only"), "{body}");
    for (method, path) in [
        ("GET", "/stop"),
        ("GET", "/stats/reset"),
        ("POST", "/api/pause"),
    ] {
        assert_eq!(http(ui.port, method, path, &[], "").0, 403, "{path}");
    }
    // Another method does not slip past: control is decided by the path.
    for (method, path) in [
        ("HEAD", "/stop"),
        ("OPTIONS", "/stop"),
        ("GET", "/api/pause"),
    ] {
        assert_eq!(
            http(ui.port, method, path, &[], "").0,
            405,
            "{method} {path}"
        );
    }
    assert_eq!(get_json(ui.port, "/api/state")["read_only"], true);
    assert_eq!(http(ui.port, "GET", "/", &[], "").0, 200);
    drop(ui);

    let ui = Ui::start(
        &[
            "ui",
            "--web-auth",
            "admin:pw",
            "--web-port",
            "0",
            "-H",
            &url,
            "-f",
            "burst_user",
        ],
        &dir.0,
        &[],
    );
    let (status, head, _) = http(ui.port, "GET", "/", &[], "");
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: basic"), "{head}");
    // admin:pw
    let basic = ("Authorization", "Basic YWRtaW46cHc=");
    assert_eq!(http(ui.port, "GET", "/", &[basic], "").0, 200);
    drop(ui);

    // web-host and web-port from locust.conf, as Locust reads them.
    let conf = TempDir::new("web-conf");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        conf.join("locust.conf"),
        format!("web-host = 127.0.0.1\nweb-port = {port}\n"),
    )
    .unwrap();
    let ui = Ui::start(&["ui", "-H", &url, "-f", "burst_user"], &conf.0, &[]);
    assert_eq!(ui.port, port);
    drop(ui);
    std::fs::write(conf.join("locust.conf"), "web-host = 0.0.0.0\n").unwrap();
    let out = support::perfhost(&["ui", "-H", &url], &conf.0).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--web-token"));
}

/// `perfhost run --web` starts at once and, with `--autoquit`, ends by itself with the run's
/// exit code and report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_web_starts_at_once_and_autoquits() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = TempDir::new("web-run");
    let out = exits_within(
        Duration::from_secs(60),
        &dir.0,
        &[
            "run",
            "--web",
            "--web-port",
            "0",
            "-H",
            &server.url(),
            "-f",
            "burst_user",
            "-u",
            "2",
            "-r",
            "100",
            "-t",
            "2s",
            "--autoquit",
            "1",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Web UI: http://127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("--autoquit"), "{stderr}");
    assert!(dir.join("reports").read_dir().unwrap().count() >= 1);
    assert!(server.seen().len() > 2);
}

/// Runs `perfhost <args>` in `dir`; it must exit by itself within `limit` (else it is killed
/// and the test fails).
async fn exits_within(
    limit: Duration,
    dir: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let child = Command::new(env!("CARGO_BIN_EXE_perfhost"))
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("perfhost starts");
    let pid = child.id();
    let waiter = tokio::task::spawn_blocking(move || child.wait_with_output());
    match tokio::time::timeout(limit, waiter).await {
        Ok(out) => out.unwrap().expect("perfhost's output"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("perfhost {args:?} did not exit within {limit:?}");
        }
    }
}

/// API_TOKEN goes only to the command line's target: a test whose host was typed into the
/// form is sent without it. An echoing target shows which requests carried the header (in a
/// cookie it sets; the value redacted in the failure samples).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_typed_into_the_form_gets_no_api_token() {
    let echo = crate::faults::FaultServer::start().await;
    let other = RecordingServer::start(Mode::Auditor).await;
    let dir = TempDir::new("web-token-host");
    let token = [("API_TOKEN", "tok-form-host-77")];
    let carried = |port: u16| {
        let result = get_json(port, "/api/result");
        let samples = result["failure_samples"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!samples.is_empty(), "the echo answered 500: samples kept");
        // The echo sets `session=<its Authorization header>`: `Bearer_[redacted]` when sent.
        samples
            .iter()
            .any(|s| s["headers"].to_string().contains("Bearer"))
    };
    for (cli_host, form_host, expect) in [
        (echo.url(), None, true),
        (other.url(), Some(echo.url()), false),
    ] {
        let ui = Ui::start(
            &[
                "ui",
                "--web-port",
                "0",
                "-H",
                &cli_host,
                "-f",
                "http_get",
                "--config-value",
                "path=/echo500",
            ],
            &dir.0,
            &token,
        );
        let mut fields = vec![
            "user_count=1".to_string(),
            "spawn_rate=10".into(),
            "run_time=1s".into(),
        ];
        if let Some(h) = &form_host {
            fields.push(format!("host={h}"));
        }
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        assert_eq!(curl_swarm(ui.port, &refs)["success"], true);
        wait_for(Duration::from_secs(20), "the test's end", || {
            state(ui.port) == "stopped"
        })
        .await;
        assert_eq!(
            carried(ui.port),
            expect,
            "-H {cli_host}, form host {form_host:?}: {}",
            get_json(ui.port, "/api/result")["failure_samples"]
        );
        assert!(!get_json(ui.port, "/api/result")
            .to_string()
            .contains("tok-form-host-77"));
    }
}
