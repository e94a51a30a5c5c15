//! `perfhost bench` against a test server with a known service time: exact counts, the
//! server-observed concurrency, latencies against the server's own measurement, the health
//! gate, the JSON and its schema, custom and malformed suites, grading and `--fail-on`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::support;

/// What the server saw of one `/verify`.
#[derive(Debug, Clone)]
struct Hit {
    case: String,
    peer_port: u16,
    service_ms: f64,
}

/// A server whose `/verify` takes `delay` and counts what is in flight; `/health` answers
/// `health_status`.
struct DelayServer {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Most requests in flight at once, per case (the `case` query parameter).
    max_in_flight: Arc<Mutex<BTreeMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DelayServer {
    async fn start(delay: Duration, health_status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let max_in_flight = Arc::new(Mutex::new(BTreeMap::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (h, m) = (hits.clone(), max_in_flight.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let (h, m, in_flight) = (h.clone(), m.clone(), in_flight.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (h, m, in_flight) = (h.clone(), m.clone(), in_flight.clone());
                        async move {
                            let began = Instant::now();
                            let path = req.uri().path().to_string();
                            let case = req
                                .uri()
                                .query()
                                .and_then(|q| q.strip_prefix("case="))
                                .unwrap_or("")
                                .to_string();
                            let _ = req.into_body().collect().await;
                            let (status, body) = match path.as_str() {
                                "/health" => (health_status, "{}".to_string()),
                                "/verify" => {
                                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                                    {
                                        let mut m = m.lock().unwrap();
                                        let e = m.entry(case.clone()).or_insert(0);
                                        *e = (*e).max(now);
                                    }
                                    tokio::time::sleep(delay).await;
                                    in_flight.fetch_sub(1, Ordering::SeqCst);
                                    h.lock().unwrap().push(Hit {
                                        case,
                                        peer_port: peer.port(),
                                        service_ms: began.elapsed().as_secs_f64() * 1000.0,
                                    });
                                    (200, "{}".to_string())
                                }
                                _ => (404, "{}".to_string()),
                            };
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        DelayServer {
            addr,
            hits,
            max_in_flight,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for DelayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn write_suite(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("perfhost-bench-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A case of `http_get` on `/verify?case=NAME`, so the server tells cases apart.
fn case(name: &str, requests: u64, concurrency: usize, extra: &str) -> String {
    format!(
        "[[case]]\nname = \"{name}\"\nrequests = {requests}\nconcurrency = {concurrency}\nconfig = {{ path = \"/verify?case={name}\" }}\n{extra}\n"
    )
}

async fn bench(args: &[&str], dir: &std::path::Path) -> (Option<i32>, String, Value) {
    let json = dir.join("out.json");
    let _ = std::fs::remove_file(&json);
    let mut all: Vec<&str> = vec!["bench"];
    all.extend(args);
    let json_arg = json.display().to_string();
    all.extend(["-o", &json_arg]);
    let out = support::perfhost(&all, dir).await;
    let stderr =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let value = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (out.status.code(), stderr, value)
}

/// Each case's counts are exact, the server sees exactly the case's concurrency, latencies
/// cover the server's service time and add little, and without keep-alive every request has
/// a connection of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_are_exact_concurrent_and_timed_like_the_server() {
    let _serial = support::serial().await;
    let server = DelayServer::start(Duration::from_millis(20), 200).await;
    let suite = format!(
        "name = \"exact\"\nplugin = \"http_get\"\n{}{}{}",
        case("one", 20, 1, ""),
        case("five", 40, 5, "warmup = 5"),
        case("fresh", 12, 3, "keepalive = false"),
    );
    let path = write_suite("exact", &suite);
    let dir = path.parent().unwrap().to_path_buf();
    let (code, out, result) = bench(
        &["--url", &server.url(), "--suite", path.to_str().unwrap()],
        &dir,
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    let hits = server.hits.lock().unwrap().clone();
    let max = server.max_in_flight.lock().unwrap().clone();
    let cases = result["results"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for (c, (name, requests, concurrency)) in
        cases
            .iter()
            .zip([("one", 20u64, 1usize), ("five", 40, 5), ("fresh", 12, 3)])
    {
        let seen: Vec<&Hit> = hits.iter().filter(|h| h.case == name).collect();
        let warmup = if name == "five" { 5 } else { 0 };
        assert_eq!(seen.len() as u64, requests + warmup, "{name}: server count");
        assert_eq!(c["total_requests"], requests, "{name}");
        assert_eq!(c["successful_requests"], requests, "{name}");
        assert_eq!(
            max[name], concurrency,
            "{name}: most requests in flight at once"
        );
        // Every latency covers the service time; the median adds little to the server's.
        let mut service: Vec<f64> = seen.iter().map(|h| h.service_ms).collect();
        service.sort_by(f64::total_cmp);
        let server_median = service[service.len() / 2];
        let (min, p50) = (
            c["latency_min_ms"].as_f64().unwrap(),
            c["latency_p50_ms"].as_f64().unwrap(),
        );
        assert!(
            min >= 20.0,
            "{name}: min {min} ms below the 20 ms service time"
        );
        assert!(
            p50 - server_median < 25.0,
            "{name}: p50 {p50} ms vs the server's median {server_median} ms"
        );
    }
    let fresh: std::collections::BTreeSet<u16> = hits
        .iter()
        .filter(|h| h.case == "fresh")
        .map(|h| h.peer_port)
        .collect();
    assert_eq!(
        fresh.len(),
        12,
        "a new connection per request without keep-alive"
    );
    let kept: std::collections::BTreeSet<u16> = hits
        .iter()
        .filter(|h| h.case == "one")
        .map(|h| h.peer_port)
        .collect();
    assert_eq!(
        kept.len(),
        1,
        "one kept-alive connection for the sequential case"
    );
    assert_eq!(result["metadata"]["keepalive"], false);
    assert!(out.contains("a new connection per request"), "{out}");
}

/// The health gate: one line naming the URL and what went wrong, exit 3 — for a closed port
/// and for a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_gate_fails_cleanly() {
    let dir = std::env::temp_dir().join(format!("perfhost-bench-health-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let unhealthy = DelayServer::start(Duration::ZERO, 503).await;
    for (url, needle) in [
        (closed.clone(), "could not connect"),
        (unhealthy.url(), "answered 503"),
    ] {
        let (code, out, _) = bench(&["--url", &url], &dir).await;
        assert_eq!(code, Some(3), "{out}");
        let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{out}");
        assert!(
            errors[0].contains(&format!("{url}/health")) && errors[0].contains(needle),
            "{out}"
        );
    }
    assert!(
        unhealthy.hits.lock().unwrap().is_empty(),
        "nothing benchmarked"
    );
}

/// The JSON carries benchmark.py's fields and validates against docs/bench.schema.json; a
/// custom two-case suite runs exactly those two; the default suite is benchmark.py's seven.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_has_benchmark_py_fields_and_its_schema() {
    let server = DelayServer::start(Duration::from_millis(1), 200).await;
    let suite = format!(
        "name = \"two\"\nplugin = \"http_get\"\n{}{}",
        case("a", 6, 2, ""),
        case("b", 4, 1, "")
    );
    let path = write_suite("two", &suite);
    let dir = path.parent().unwrap().to_path_buf();
    let (code, out, result) = bench(
        &[
            "--url",
            &server.url(),
            "--suite",
            path.to_str().unwrap(),
            "--html",
            "b.html",
            "--markdown",
            "b.md",
        ],
        &dir,
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    let names: Vec<&str> = result["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    for field in [
        "name",
        "description",
        "total_requests",
        "successful_requests",
        "failed_requests",
        "duration_seconds",
        "requests_per_second",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "latency_min_ms",
        "latency_max_ms",
        "latency_avg_ms",
    ] {
        assert!(
            result["results"][0].get(field).is_some(),
            "results[].{field}"
        );
    }
    assert_eq!(result["metadata"]["api_url"], server.url());
    assert!(result["metadata"]["timestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let schema: Value = serde_json::from_str(include_str!("../../docs/bench.schema.json")).unwrap();
    support::check_schema(&result, &schema, "bench");
    let histogram = result["results"][0]["histogram"].as_str().unwrap();
    assert_eq!(
        perfhost_core::stats::deserialize_histogram(histogram)
            .unwrap()
            .len(),
        6,
        "the histogram holds every request"
    );
    let html = std::fs::read_to_string(dir.join("b.html")).unwrap();
    assert!(html.contains("<h1>perfhost bench: two</h1>") && html.contains("Cases"));
    let md = std::fs::read_to_string(dir.join("b.md")).unwrap();
    assert!(md.contains("| a | 2 | 6 |"), "{md}");

    // The built-in suite: benchmark.py's cases, in order (checked without sending: --url
    // points at a server that is only healthy).
    let suite = perfhost::bench::suite::load(None).unwrap();
    assert_eq!(suite.cases.len(), 7);
}

/// A malformed suite file is one line with file:line, exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_suite_is_one_line_with_its_place() {
    let path = write_suite("bad", "name = \"bad\"\nplugin = \"http_get\"\n[[case]]\nname = \"a\"\nrequests = 5\nconcurency = 2\n");
    let dir = path.parent().unwrap().to_path_buf();
    let (code, out, _) = bench(&["--suite", path.to_str().unwrap()], &dir).await;
    assert_eq!(code, Some(2), "{out}");
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(
        errors[0].contains("bad.toml:6") && errors[0].contains("concurency"),
        "{out}"
    );
}

/// A server slowed to 600 ms grades p50 "poor"; with --fail-on poor the bench exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_grades_poor_and_fails_the_gate() {
    let server = DelayServer::start(Duration::from_millis(600), 200).await;
    let suite = format!(
        "name = \"slow\"\nplugin = \"http_get\"\n{}\n[grading.latency]\np50 = {{ target = 200, acceptable = 500 }}\n",
        case("slow", 3, 1, "")
    );
    let path = write_suite("slow", &suite);
    let dir = path.parent().unwrap().to_path_buf();
    let (code, out, result) = bench(
        &["--url", &server.url(), "--suite", path.to_str().unwrap()],
        &dir,
    )
    .await;
    assert_eq!(
        code,
        Some(0),
        "without a gate, grades do not fail the bench: {out}"
    );
    assert_eq!(result["results"][0]["grades"]["p50"], "poor");
    assert_eq!(result["grading"]["worst"], "poor");
    let (code, out, _) = bench(
        &[
            "--url",
            &server.url(),
            "--suite",
            path.to_str().unwrap(),
            "--fail-on",
            "poor",
        ],
        &dir,
    )
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("graded poor"), "{out}");
}

/// `perfhost plugin bench` (the sandbox's cost, formerly `perfhost bench`): WASM and native
/// users of `bench_verify` and of `http_get` side by side, and any other plugin alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_bench_measures_the_sandbox() {
    let dir = std::env::temp_dir().join(format!("perfhost-plugin-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bench = async |plugin: &str| {
        let out = support::perfhost(
            &[
                "plugin",
                "bench",
                plugin,
                "--users",
                "4",
                "--duration",
                "1s",
                "--idle-users",
                "20",
            ],
            &dir,
        )
        .await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(
            text.contains("idle RSS per WASM user (20 users instantiated)"),
            "{text}"
        );
        text
    };
    // kind, users, requests, failures of each measured row.
    let rows = |text: &str| -> Vec<(String, u64, u64)> {
        text.lines()
            .filter_map(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                match cols.as_slice() {
                    [kind @ ("native" | "wasm"), "4", requests, failures, ..] => Some((
                        kind.to_string(),
                        requests.parse().ok()?,
                        failures.parse().ok()?,
                    )),
                    _ => None,
                }
            })
            .collect()
    };
    for twin in ["bench_verify", "http_get"] {
        let text = bench(twin).await;
        assert!(text.contains("wasm / native at 4 users"), "{text}");
        let measured = rows(&text);
        let kinds: Vec<&str> = measured.iter().map(|(k, ..)| k.as_str()).collect();
        assert_eq!(kinds, ["native", "wasm"], "{text}");
        // The twin does the same work: requests made, none failed, on either side.
        for (kind, requests, failures) in &measured {
            assert!(*requests > 0 && *failures == 0, "{twin} {kind}: {text}");
        }
    }
    let text = bench("auditor_benchmark").await;
    let measured = rows(&text);
    assert!(
        text.contains("auditor_benchmark") && !text.contains("wasm / native"),
        "{text}"
    );
    assert_eq!(measured.len(), 1, "{text}");
    assert_eq!(measured[0].0, "wasm", "{text}");
}
