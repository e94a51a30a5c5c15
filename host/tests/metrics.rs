//! `perfhost run --metrics-port`: live Prometheus metrics while a run goes — parsed with a
//! Prometheus text parser, counters equal to the run's result at the end, latency as
//! histograms, a token required beyond loopback — and Locust's `/stats/requests`.

use std::time::{Duration, Instant};

use perfhost_core::plan::MetricsPlan;

use crate::support::{self, Mode, RecordingServer};

/// GET `path` from 127.0.0.1:`port` (HTTP/1.0, so the body ends with the connection).
fn get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    support::try_http(port, "GET", path, &headers, "").map(|(status, _, body)| (status, body))
}

/// The value of the sample `name` whose labels include all of `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the Prometheus text parser reads /metrics")
}

/// A 3 s run of BurstUser against a server that fails /verify: /metrics answers while it goes
/// and, once the run is over (`linger`), its counters are the result's totals exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_live_and_end_equal_to_the_result() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::FailVerify).await;
    let port = support::free_port();
    let mut plan = support::plan(&server.url(), &["burst_user"]);
    plan.load = perfhost_core::plan::LoadShape::ramp(4, 100.0);
    plan.stop.run_time = Some(Duration::from_secs(3));
    plan.outputs.metrics = Some(MetricsPlan {
        addr: ([127, 0, 0, 1], port).into(),
        token: None,
        auth: None,
        read_only: false,
        linger: Duration::from_secs(5),
    });
    let run = tokio::spawn(async move { support::run(&plan).await });

    // While it runs: an answer that parses, with users.
    let started = Instant::now();
    let mut live = None;
    while started.elapsed() < Duration::from_secs(10) && live.is_none() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Some((200, text)) = tokio::task::spawn_blocking(move || get(port, "/metrics", None))
            .await
            .unwrap()
        {
            let scrape = parse(&text);
            if value(&scrape, "perfhost_users", &[]).unwrap_or(0.0) > 0.0 {
                live = Some(text);
            }
        }
    }
    let live = live.expect("/metrics answered with users while the run went");
    assert!(
        live.contains("# TYPE perfhost_request_duration_seconds histogram"),
        "{live}"
    );
    // Then the final numbers, marked finished, while the endpoint lingers.
    let mut last = String::new();
    let mut locust = None;
    while started.elapsed() < Duration::from_secs(20) {
        if let Some((200, text)) = tokio::task::spawn_blocking(move || get(port, "/metrics", None))
            .await
            .unwrap()
        {
            if text.lines().any(|l| l == "perfhost_run_finished 1") {
                last = text;
                locust = tokio::task::spawn_blocking(move || get(port, "/stats/requests", None))
                    .await
                    .unwrap();
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!last.is_empty(), "no final scrape");
    let result = run.await.unwrap();
    let scrape = parse(&last);
    let verify = [("method", "POST"), ("name", "/verify (burst)")];
    let row = result
        .stats
        .iter()
        .find(|s| s.name == "/verify (burst)")
        .expect("burst rows");
    assert_eq!(
        value(&scrape, "perfhost_requests_total", &verify),
        Some(row.requests as f64)
    );
    assert_eq!(
        value(
            &scrape,
            "perfhost_request_failures_total",
            &[
                ("method", "POST"),
                ("name", "/verify (burst)"),
                ("error", "HTTP 500")
            ]
        ),
        Some(row.failures as f64)
    );
    // The histogram: its count is the requests, its +Inf bucket too, buckets never decrease.
    let histogram = scrape
        .samples
        .iter()
        .find_map(|s| match &s.value {
            prometheus_parse::Value::Histogram(buckets)
                if s.metric == "perfhost_request_duration_seconds"
                    && s.labels.get("name") == Some("/verify (burst)") =>
            {
                Some(buckets.clone())
            }
            _ => None,
        })
        .expect("a latency histogram per endpoint");
    assert!(histogram.windows(2).all(|w| w[0].count <= w[1].count));
    assert_eq!(
        histogram.last().map(|b| b.count),
        Some(row.requests as f64),
        "{histogram:?}"
    );
    assert_eq!(
        value(&scrape, "perfhost_request_duration_seconds_count", &verify),
        Some(row.requests as f64)
    );
    assert!(result.total.requests > 0);
    // Locust's /stats/requests at the same moment: its field names, the same values.
    let (status, body) = locust.expect("/stats/requests answered");
    assert_eq!(status, 200);
    let locust: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(locust["state"], "stopped");
    let burst = locust["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "/verify (burst)")
        .expect("a row per endpoint");
    assert_eq!(burst["num_requests"], row.requests);
    assert_eq!(burst["num_failures"], row.failures);
    assert_eq!(
        burst["response_time_percentile_0.95"],
        row.percentile(perfhost_core::stats::Percentile::P95)
    );
    assert_eq!(burst["median_response_time"], row.median_ms);
    let last = locust["stats"].as_array().unwrap().last().unwrap();
    assert_eq!(last["name"], "Aggregated");
    assert_eq!(locust["fail_ratio"], 1.0);
    assert_eq!(locust["errors"][0]["error"], "HTTP 500");
    for field in [
        "current_rps",
        "current_fail_per_sec",
        "avg_response_time",
        "min_response_time",
        "max_response_time",
        "avg_content_length",
        "response_time_percentile_0.99",
    ] {
        assert!(burst.get(field).is_some(), "{field} in {burst}");
    }
    assert!(locust.get("total_rps").is_some() && locust.get("user_count").is_some());
}

/// Beyond loopback the endpoint needs a token: refused without one before the run; with one,
/// a request without it gets 401 and one with it the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_needs_a_token_beyond_loopback() {
    let dir = std::env::temp_dir();
    let out = support::perfhost(
        &[
            "run",
            "--metrics-port",
            "0",
            "--web-host",
            "0.0.0.0",
            "-t",
            "1s",
        ],
        &dir,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--web-token") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );

    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let port = support::free_port();
    let mut plan = support::plan(&server.url(), &["burst_user"]);
    plan.load = perfhost_core::plan::LoadShape::ramp(1, 100.0);
    plan.stop.run_time = Some(Duration::from_secs(2));
    plan.outputs.metrics = Some(MetricsPlan {
        addr: ([0, 0, 0, 0], port).into(),
        token: Some(perfhost_core::plan::Secret("s3cret".into())),
        auth: None,
        read_only: false,
        linger: Duration::from_secs(2),
    });
    let run = tokio::spawn(async move { support::run(&plan).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (without, with) = tokio::task::spawn_blocking(move || {
        (
            get(port, "/metrics", None),
            get(port, "/metrics", Some("s3cret")),
        )
    })
    .await
    .unwrap();
    assert_eq!(without.map(|(s, _)| s), Some(401));
    let (status, body) = with.expect("an answer with the token");
    assert_eq!(status, 200);
    assert!(body.contains("perfhost_users"), "{body}");
    run.await.unwrap();
}

/// A metrics port already in use is one line and exit 2, before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_metrics_port_is_refused_in_one_line() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = support::perfhost(
        &[
            "run",
            "-H",
            &server.url(),
            "--metrics-port",
            &port,
            "-t",
            "2s",
            "--no-report",
        ],
        &std::env::temp_dir(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("cannot serve metrics") && errors[0].contains("--metrics-port"),
        "{stderr}"
    );
    assert!(server.seen().is_empty(), "nothing was sent");
    drop(taken);
}
