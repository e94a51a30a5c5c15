//! Sharded runs on this machine: `perfhost local --shards 4` against a recording server (the
//! merged count is the server's own count, the merged histograms the shards' sum), `perfhost
//! merge` refusing a missing, duplicate or foreign shard in one line, and the start barrier's
//! exit 5.

use std::path::Path;

use serde_json::Value;

use crate::support::{self, Mode, RecordingServer, TempDir};

fn json(path: &Path) -> Value {
    support::read_json(path)
}

fn histogram(text: &Value) -> hdrhistogram::Histogram<u64> {
    perfhost_core::stats::deserialize_histogram(text.as_str().unwrap()).expect("a histogram")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_local_shards_merge_to_the_servers_count() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = TempDir::new("shards");
    let out = support::perfhost(
        &[
            "local",
            "--shards",
            "4",
            "--start-delay",
            "4s",
            "-H",
            &server.url(),
            "-f",
            "burst_user",
            "-u",
            "8",
            "-r",
            "100",
            "-t",
            "3s",
            "--seed",
            "5",
        ],
        &dir.0,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let local = support::local_run_dir(&dir.0);
    let merged = json(&local.join("merged.json"));
    assert_eq!(merged["meta"]["merged_shards"], 4);
    // Every request the server answered is in the merged result, once.
    let seen = server.seen().len() as u64;
    assert_eq!(merged["total"]["requests"].as_u64().unwrap(), seen);
    assert_eq!(merged["plan"]["class_users"]["BurstUser"], 8);

    // Each row's merged histogram is the sum of the shards' histograms, exactly.
    let shards: Vec<Value> = (0..4)
        .map(|i| json(&local.join(format!("shard-{i}.json"))))
        .collect();
    let mut users = 0;
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(s["meta"]["shard"]["index"], i);
        assert_eq!(
            s["meta"]["shard"]["plan_hash"],
            shards[0]["meta"]["shard"]["plan_hash"]
        );
        users += s["plan"]["class_users"]["BurstUser"].as_u64().unwrap();
    }
    assert_eq!(users, 8, "the shards' users add up to the plan's");
    for row in merged["stats"].as_array().unwrap() {
        let mut sum = perfhost_core::stats::new_histogram();
        for s in &shards {
            if let Some(r) = s["stats"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == row["name"] && r["method"] == row["method"])
            {
                sum.add(histogram(&r["histogram"])).unwrap();
            }
        }
        let merged_h = histogram(&row["histogram"]);
        assert_eq!(merged_h.len(), sum.len());
        assert!(sum
            .iter_recorded()
            .all(|v| merged_h.count_at(v.value_iterated_to()) == v.count_at_value()));
        assert_eq!(row["requests"].as_u64().unwrap(), merged_h.len());
    }
    // The history adds the shards' seconds: its requests are the total.
    let in_history: u64 = merged["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(in_history, seen);

    // merge: a missing shard (as when its process was killed), a duplicate, a foreign one.
    let files: Vec<String> = (0..4)
        .map(|i| local.join(format!("shard-{i}.json")).display().to_string())
        .collect();
    let merge = |args: &[&str]| {
        let mut all = vec!["merge"];
        all.extend_from_slice(args);
        let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        let dir = dir.0.clone();
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            support::perfhost(&refs, &dir).await
        }
    };
    let out = merge(&[&files[0], &files[1], &files[3]]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("shard 2/4 is missing") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    let out = merge(&[&files[0], &files[1], &files[1], &files[2], &files[3]]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard 1/4 appears twice"));
    let mut foreign = shards[3].clone();
    foreign["meta"]["shard"]["plan_hash"] = "0123456789abcdef".into();
    let foreign_file = dir.join("foreign.json");
    std::fs::write(&foreign_file, foreign.to_string()).unwrap();
    let foreign_file = foreign_file.display().to_string();
    let out = merge(&[&files[0], &files[1], &files[2], &foreign_file]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("merge the shards of one run"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hlog = dir.join("merged.hlog").display().to_string();
    let out = merge(&[&files[3], &files[1], &files[0], &files[2], "--hlog", &hlog]).await;
    assert_eq!(out.status.code(), Some(0));
    let (all, _) = read_hlog(Path::new(&hlog));
    assert_eq!(all, seen, "the merged interval log counts every request");
}

/// Counts in an interval log, read with the hdrhistogram crate's reader: untagged, and per
/// tag.
fn read_hlog(path: &Path) -> (u64, std::collections::BTreeMap<String, u64>) {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let bytes = std::fs::read(path).expect("the .hlog");
    let mut deserializer = Deserializer::new();
    let (mut untagged, mut tagged) = (0u64, std::collections::BTreeMap::new());
    for entry in IntervalLogIterator::new(&bytes) {
        let LogEntry::Interval(interval) = entry.expect("a valid log line") else {
            continue;
        };
        let raw = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            interval.encoded_histogram(),
        )
        .unwrap();
        let h: hdrhistogram::Histogram<u64> = deserializer
            .deserialize(&mut std::io::Cursor::new(raw))
            .unwrap();
        match interval.tag() {
            None => untagged += h.len(),
            Some(tag) => *tagged.entry(tag.as_str().to_string()).or_insert(0) += h.len(),
        }
    }
    (untagged, tagged)
}

/// `perfhost run --hlog`: the log reads back with the hdrhistogram crate to the run's counts,
/// in total and per endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_log_reads_back_to_the_results_counts() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = TempDir::new("hlog");
    let out = support::perfhost(
        &[
            "run",
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
            "--hlog",
            "run.hlog",
            "--json-file",
            "run.json",
        ],
        &dir.0,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = json(&dir.join("run.json"));
    let (all, tagged) = read_hlog(&dir.join("run.hlog"));
    assert_eq!(all, result["total"]["requests"].as_u64().unwrap());
    for row in result["stats"].as_array().unwrap() {
        let tag = perfhost::report::hlog::tag_of(
            row["method"].as_str().unwrap(),
            row["name"].as_str().unwrap(),
        );
        assert_eq!(tagged.get(&tag).copied(), row["requests"].as_u64(), "{tag}");
    }
}

/// A shard that is ready only after `--start-at` sends nothing and exits 5, saying by how much.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_shard_exits_5_and_sends_nothing() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = TempDir::new("barrier");
    let out = support::perfhost(
        &[
            "run",
            "-H",
            &server.url(),
            "-f",
            "burst_user",
            "-t",
            "1s",
            "--shard",
            "1/2",
            "--start-at",
            "2026-01-01T00:00:00Z",
        ],
        &dir.0,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("shard 1/2 was ready") && stderr.contains("after --start-at"),
        "{stderr}"
    );
    assert!(server.seen().is_empty(), "a late shard sent requests");
    let out = support::perfhost(&["run", "--shard", "4/4", "-t", "1s"], &dir.0).await;
    assert_eq!(out.status.code(), Some(2));
    let out = support::perfhost(&["run", "--start-at", "noon", "-t", "1s"], &dir.0).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
}

/// `perfhost local --shards 4` against the built-in demo server: the merged /verify requests
/// are what the server itself counted (its /metrics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_match_the_demo_servers_own_count() {
    let _serial = support::serial().await;
    let (_demo, addr) = support::demo_child(&[]);
    let dir = TempDir::new("shards-demo");
    let url = format!("http://{addr}");
    let out = support::perfhost(
        &[
            "local",
            "--shards",
            "4",
            "--start-delay",
            "4s",
            "-H",
            &url,
            "-f",
            "burst_user",
            "-u",
            "8",
            "-r",
            "100",
            "-t",
            "3s",
        ],
        &dir.0,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local = support::local_run_dir(&dir.0);
    let merged = json(&local.join("merged.json"));
    let verify = support::verify_requests(&merged);
    let counted = support::demo_verify_count(addr);
    assert!(verify > 0);
    assert_eq!(verify, counted, "merged /verify vs the server's own count");
}

/// A shard killed mid-run writes no result: `perfhost merge` of the others names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_shard_is_named_by_merge() {
    // Three load processes at once: not beside the timing-sensitive tests.
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = TempDir::new("shards-kill");
    let url = server.url();
    let start = perfhost_core::plan::utc_timestamp((perfhost_core::stats::unix_now() + 3.0).ceil());
    let mut shards: Vec<support::ChildGuard> = (0..3)
        .map(|i| {
            support::ChildGuard(
                std::process::Command::new(env!("CARGO_BIN_EXE_perfhost"))
                    .current_dir(&dir.0)
                    .args([
                        "run",
                        "-H",
                        &url,
                        "-f",
                        "burst_user",
                        "-u",
                        "3",
                        "-r",
                        "100",
                    ])
                    .args([
                        "-t",
                        "4s",
                        "--shard",
                        &format!("{i}/3"),
                        "--start-at",
                        &start,
                    ])
                    .args(["--json-file", &format!("shard-{i}.json")])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    shards[1].0.kill().unwrap();
    for s in &mut shards {
        let _ = tokio::task::block_in_place(|| s.0.wait());
    }
    assert!(
        !dir.join("shard-1.json").exists(),
        "the killed shard wrote no result"
    );
    assert!(dir.join("shard-0.json").exists() && dir.join("shard-2.json").exists());
    let out = support::perfhost(&["merge", "shard-0.json", "shard-2.json"], &dir.0).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("shard 1/3 is missing"), "{stderr}");
}

/// The demo server's own service-time histogram (`auditor_verify_latency_seconds`, µs):
/// cumulative bucket bounds and counts, and the mean.
struct ServiceTimes {
    buckets: Vec<(f64, f64)>,
    mean_us: f64,
}

impl ServiceTimes {
    fn scrape(addr: std::net::SocketAddr) -> Self {
        let (_, _, text) = support::http(addr.port(), "GET", "/metrics", &[], "");
        let value = |line: &str| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
        let mut buckets = Vec::new();
        let (mut sum, mut count) = (0.0, 0.0);
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("auditor_verify_latency_seconds_bucket{le=\"") {
                let le = rest.split('"').next().unwrap();
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse::<f64>().unwrap() * 1e6
                };
                buckets.push((bound, value(line)));
            } else if line.starts_with("auditor_verify_latency_seconds_sum ") {
                sum = value(line);
            } else if line.starts_with("auditor_verify_latency_seconds_count ") {
                count = value(line);
            }
        }
        assert!(count > 0.0, "the server measured no verification: {text}");
        ServiceTimes {
            buckets,
            mean_us: sum / count * 1e6,
        }
    }

    /// The service time at quantile `q`, interpolated inside its bucket (as Prometheus'
    /// `histogram_quantile` does).
    fn quantile(&self, q: f64) -> f64 {
        let total = self.buckets.last().unwrap().1;
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(bound, cumulative) in &self.buckets {
            if cumulative >= rank && cumulative > lower.1 {
                if bound.is_infinite() {
                    return lower.0;
                }
                return lower.0 + (bound - lower.0) * (rank - lower.1) / (cumulative - lower.1);
            }
            lower = (bound, cumulative);
        }
        lower.0
    }
}

/// A sharded run measures what one process measures: against a server whose service time
/// is 20–60 ms, the merged p50/p90/p99 equal a single-process run's within a tolerance taken
/// from the servers' own histograms — how far sampling moves a quantile of n requests
/// (4 standard errors of its rank, read off the service-time distribution) plus each run's
/// client-side overhead (its mean latency minus the server's mean service time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_percentiles_agree_with_a_single_process_run() {
    let _serial = support::serial().await;
    let flags = [
        "-f",
        "auditor_benchmark",
        "-u",
        "8",
        "-r",
        "100",
        "-t",
        "4s",
        "--seed",
        "9",
    ];
    let dir = TempDir::new("shards-percentiles");
    let latency = ["--latency", "20ms..60ms", "--seed", "3"];

    let (single_demo, single_addr) = support::demo_child(&latency);
    let url = format!("http://{single_addr}");
    let mut args = vec!["run", "-H", &url, "--json-file", "single.json"];
    args.extend_from_slice(&flags);
    let out = support::perfhost(&args, &dir.0).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let single_server = ServiceTimes::scrape(single_addr);
    drop(single_demo);

    let (sharded_demo, sharded_addr) = support::demo_child(&latency);
    let url = format!("http://{sharded_addr}");
    let mut args = vec!["local", "--shards", "4", "--start-delay", "4s", "-H", &url];
    args.extend_from_slice(&flags);
    let out = support::perfhost(&args, &dir.0).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sharded_server = ServiceTimes::scrape(sharded_addr);
    drop(sharded_demo);

    let single = histogram(&json(&dir.join("single.json"))["total"]["histogram"]);
    let merged =
        histogram(&json(&support::local_run_dir(&dir.0).join("merged.json"))["total"]["histogram"]);
    let n = single.len().min(merged.len()) as f64;
    assert!(n >= 200.0, "too few requests to compare: {n}");
    let overhead = (single.mean() - single_server.mean_us).abs()
        + (merged.mean() - sharded_server.mean_us).abs();
    for q in [0.5, 0.9, 0.99] {
        let spread = 4.0 * (q * (1.0 - q) / n).sqrt();
        let sampling = single_server.quantile((q + spread).min(1.0))
            - single_server.quantile((q - spread).max(0.0));
        let tolerance = sampling + overhead;
        let (a, b) = (
            single.value_at_quantile(q) as f64,
            merged.value_at_quantile(q) as f64,
        );
        eprintln!(
            "p{}: single {a} µs, merged {b} µs, tolerance {tolerance:.0} µs",
            q * 100.0
        );
        assert!(
            (a - b).abs() <= tolerance,
            "p{}: single {a} µs, merged {b} µs, tolerance {tolerance:.0} µs (sampling {sampling:.0}, overhead {overhead:.0})",
            q * 100.0
        );
    }
}

/// A shard whose own numbers fail its threshold exits 0 — a scheduler would otherwise fail
/// the Job or the array on one part — and says so; `perfhost merge` judges the whole and
/// exits 1. The same run unsharded exits 1 (the threshold does fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_shard_exits_0_and_merge_judges_the_whole() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = TempDir::new("shards-verdict");
    let url = server.url();
    let run = |shard: Option<&str>, json: &str| {
        let mut args: Vec<String> = [
            "run",
            "-H",
            &url,
            "-f",
            "burst_user",
            "-u",
            "2",
            "-r",
            "100",
            "-t",
            "2s",
            "--threshold",
            "rps>1000000",
            "--no-report",
            "--json-file",
            json,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(shard) = shard {
            args.extend(["--shard".to_string(), shard.to_string()]);
        }
        let dir = dir.0.clone();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            support::perfhost(&refs, &dir).await
        }
    };
    let out = run(None, "whole.json").await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..2 {
        let out = run(Some(&format!("{i}/2")), &format!("shard-{i}.json")).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains(&format!("Shard {i}/2: its own numbers fail")),
            "{stderr}"
        );
        let shard = json(&dir.join(&format!("shard-{i}.json")));
        assert!(shard["total"]["requests"].as_u64().unwrap() > 0);
    }
    let out = support::perfhost(
        &[
            "merge",
            "shard-0.json",
            "shard-1.json",
            "--json-file",
            "merged.json",
        ],
        &dir.0,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let merged = json(&dir.join("merged.json"));
    assert_eq!(merged["meta"]["merged_shards"], 2);
}
