//! The open workload model (`--rate`): arrivals at a fixed rate whatever the server does,
//! dropped arrivals when the pool is full, and the coordinated-omission-corrected latency
//! beside the service time — against a real server with 10 ms answers and a 1 s stall.

use std::time::Duration;

use perfhost_core::plan::{ArrivalPlan, RateStage};
use perfhost_core::result::RunResult;

use crate::support::{self, Mode, RecordingServer};

/// 10 ms answers; the server stops answering for the last second of every `every`.
fn stalling(every: u64) -> Mode {
    Mode::PeriodicStall {
        every: Duration::from_secs(every),
        stall: Duration::from_secs(1),
        service: Duration::from_millis(10),
    }
}

/// `per_s` arrivals per second of the built-in `http_get` on /health for `secs` seconds.
async fn open_run(url: &str, per_s: f64, secs: u64, max_users: usize) -> RunResult {
    let mut plan = support::plan(url, &["http_get"]);
    plan.config_values
        .insert("path".to_string(), "/health".to_string());
    plan.stop.run_time = Some(Duration::from_secs(secs));
    plan.arrivals = Some(ArrivalPlan {
        stages: vec![RateStage {
            per_s,
            duration: Duration::from_secs(secs),
        }],
        start_per_s: per_s,
        pre_allocated: 5.min(max_users),
        max_users,
        poisson: false,
        class_rates: Vec::new(),
    });
    support::run(&plan).await
}

fn ms(v: f64) -> String {
    format!("{v:.1} ms")
}

/// 100 arrivals/s for 30 s against a server with 10 ms answers that stalls for 1 s every 10 s:
/// the arrivals keep coming (3,000 ± 0.5%, every one accounted for), the service time stays
/// ~10 ms at the median, and the corrected p99 shows the stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_the_corrected_latency_and_arrivals_keep_their_rate() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(stalling(10)).await;
    let result = open_run(&server.url(), 100.0, 30, 300).await;
    let a = result
        .arrivals
        .as_ref()
        .expect("an open-model run reports its arrivals");
    assert!(
        (a.scheduled as f64 - 3000.0).abs() <= 15.0,
        "{} arrivals scheduled, expected 3000 ± 0.5%",
        a.scheduled
    );
    assert_eq!(
        a.completed + a.failed + a.dropped + a.cancelled,
        a.scheduled,
        "{a:?}"
    );
    assert_eq!((a.dropped, a.failed), (0, 0), "{a:?}");
    // Every arrival that completed sent one request.
    assert_eq!(result.total.requests, a.completed + a.failed, "{a:?}");
    let service_p50 = result.total.median_ms;
    let corrected = result.total.corrected.as_ref().expect("corrected latency");
    let corrected_p99 = corrected
        .percentiles_ms
        .get(perfhost_core::stats::Percentile::P99);
    eprintln!(
        "service p50 {}, p99 {}; corrected p99 {}; lag p99 {} µs; users {}",
        ms(service_p50),
        ms(result
            .total
            .percentile(perfhost_core::stats::Percentile::P99)),
        ms(corrected_p99),
        a.lag_p99_us,
        a.users
    );
    assert!(
        (9.0..40.0).contains(&service_p50),
        "service p50 {}",
        ms(service_p50)
    );
    assert!(
        corrected_p99 >= 500.0,
        "corrected p99 {}",
        ms(corrected_p99)
    );
    // The users a stall held: about a second of arrivals, not the 3,000 of the run.
    assert!(a.users >= 90 && a.users <= 300, "{} users", a.users);
    let console = perfhost::report::summary_table(&result);
    assert!(
        console.contains("Response time from the intended start")
            && console.contains("Arrivals at 100.0/s"),
        "{console}"
    );
}

/// With `--max-users 5` the stall (from 9 s to 10 s) holds every user: the arrivals that find
/// none free are dropped and counted, never silently lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_beyond_the_pool_are_dropped_and_counted() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(stalling(10)).await;
    let result = open_run(&server.url(), 100.0, 11, 5).await;
    let a = result.arrivals.as_ref().expect("arrivals");
    assert_eq!(a.users, 5, "{a:?}");
    // The stall holds all 5 users: ~95 arrivals have nowhere to go.
    assert!(a.dropped >= 50, "{a:?}");
    assert_eq!(
        a.dropped_by_class.iter().map(|(_, n)| n).sum::<u64>(),
        a.dropped
    );
    assert_eq!(
        a.completed + a.failed + a.dropped + a.cancelled,
        a.scheduled,
        "{a:?}"
    );
    let console = perfhost::report::summary_table(&result);
    assert!(console.contains("dropped arrivals of HttpGet"), "{console}");
    // The other reports carry them too: HTML, Markdown, and the two CSV files of their own.
    let html = perfhost::report::html::render(&result);
    assert!(html.contains("id=\"corrected\"") && html.contains("dropped arrivals of HttpGet"));
    let md = perfhost::report::markdown::render(&result);
    assert!(md.contains(&format!("**{} dropped**", a.dropped)), "{md}");
    let csv = perfhost::report::csv::arrivals_csv(&result).expect("arrivals CSV");
    assert!(
        csv.contains(&format!("dropped,HttpGet,{}", a.dropped)),
        "{csv}"
    );
    let corrected = perfhost::report::csv::corrected_stats_csv(&result).expect("corrected CSV");
    assert_eq!(
        corrected.lines().next(),
        perfhost::report::csv::stats_csv(&result).lines().next(),
        "the same headers as PREFIX_stats.csv"
    );
    // The JSON result carries them, as documented in the schema.
    let json = serde_json::to_value(&result).unwrap();
    assert_eq!(json["arrivals"]["dropped"], a.dropped);
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/result.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    support::check_schema(&json, &schema, "result");
}

/// The closed model on a schedule: 2 users pacing a request every 20 ms, against the same
/// stalls (one, from 9 s to 10 s, in a 12 s run). The service time hides the stall (only the requests caught in it are slow); the
/// latency from each task's intended start shows it, because after the stall the users catch
/// up on their schedule (wrk2's client) and every late start counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pacing_schedule_gets_the_same_correction() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(stalling(10)).await;
    let mut plan = support::plan(&server.url(), &[&support::fixture("fixture_pacing")]);
    plan.load = perfhost_core::plan::LoadShape::ramp(2, 100.0);
    plan.stop.run_time = Some(Duration::from_secs(12));
    plan.thresholds = ["p99 < 100ms", "service.p99 < 100ms"]
        .iter()
        .map(|t| perfhost_core::plan::parse_threshold(t).unwrap())
        .collect();
    let result = support::run(&plan).await;
    assert!(result.arrivals.is_none());
    let service_p99 = result
        .total
        .percentile(perfhost_core::stats::Percentile::P99);
    let corrected = result
        .total
        .corrected
        .as_ref()
        .expect("a pacing class has a schedule");
    let corrected_p99 = corrected
        .percentiles_ms
        .get(perfhost_core::stats::Percentile::P99);
    eprintln!(
        "{} requests, service p99 {}, corrected p99 {}",
        result.total.requests,
        ms(service_p99),
        ms(corrected_p99)
    );
    // 2 users × 50/s × 12 s, minus what the stall cost and the users caught up.
    assert!(result.total.requests >= 800, "{}", result.total.requests);
    assert!(service_p99 < 50.0, "service p99 {}", ms(service_p99));
    assert!(
        corrected_p99 >= 500.0,
        "corrected p99 {}",
        ms(corrected_p99)
    );
    // A threshold reads the corrected latency by default in such a run, and says so;
    // `service.` asks for the service time.
    let verdicts: Vec<(&str, bool)> = result
        .thresholds
        .iter()
        .map(|t| (t.latency.as_str(), t.passed))
        .collect();
    assert_eq!(verdicts, [("corrected", false), ("service", true)]);
    assert!(result.thresholds[0].describe().contains("(corrected)"));
}

/// The flags of the two models do not mix: each refusal is one line naming the flag to use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_flags_are_checked_before_the_run() {
    let dir = std::env::temp_dir();
    for (args, names) in [
        (vec!["run", "--rate", "100/s", "-u", "5"], "--max-users"),
        (vec!["run", "--rate", "fast"], "--rate"),
        (vec!["run", "--max-users", "5"], "--rate"),
        (vec!["run", "--rate", "10/s", "-n", "5"], "-t"),
        (
            vec!["run", "--rate", "10/s", "--arrivals", "bursty"],
            "poisson",
        ),
    ] {
        let out = support::perfhost(&args, &dir).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(names) && stderr.trim().lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }
}

/// A scenario file ramps arrival rates with `[[stages]] rate = …`; a stage that mixes the two
/// models is refused with its line.
#[test]
fn scenario_files_take_rate_stages() {
    let dir = std::env::temp_dir().join(format!("perfhost-rate-stages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ramp.toml");
    std::fs::write(
        &file,
        "name = \"ramp\"\nmax-users = 40\narrivals = \"poisson\"\n[[stages]]\nrate = \"10/s\"\nduration = \"5s\"\n[[stages]]\nrate = \"1200/m\"\nduration = \"10s\"\n",
    )
    .unwrap();
    let args = perfhost::settings::RunArgs {
        scenario: Some(file.to_string_lossy().into_owned()),
        host: Some("http://127.0.0.1:9".into()),
        ..Default::default()
    };
    let plan = perfhost::settings::resolve_args(&args).expect("valid scenario");
    let open = plan.arrivals.expect("rate stages make an open-model run");
    let rates: Vec<f64> = open.stages.iter().map(|s| s.per_s).collect();
    assert_eq!(rates, [10.0, 20.0]);
    assert_eq!(
        (open.start_per_s, open.max_users, open.poisson),
        (10.0, 40, true)
    );
    assert_eq!(plan.stop.run_time, Some(Duration::from_secs(15)));
    // 10/s for 5 s, then a ramp to 20/s over 10 s: 50 + 150 arrivals.
    assert_eq!(open.expected_arrivals(), 200.0);

    std::fs::write(
        &file,
        "name = \"mixed\"\n[[stages]]\nusers = 5\nduration = \"5s\"\n[[stages]]\nrate = \"10/s\"\nduration = \"5s\"\n",
    )
    .unwrap();
    let err = perfhost::settings::resolve_args(&args).expect_err("mixed stages");
    let text = err.to_string();
    assert!(
        text.contains("ramp.toml:") && text.contains("mixes `users` and `rate`"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A scenario's `[rates]` gives each class its own arrival rate (as k6 scenarios do); a class
/// that does not run is refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classes_get_their_own_rates() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = std::env::temp_dir().join(format!("perfhost-class-rates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rates.toml");
    std::fs::write(
        &file,
        "name = \"rates\"\nrun-time = \"3s\"\nplugins = [\"auditor_user\", \"burst_user\"]\n[rates]\nAuditorUser = \"20/s\"\nBurstUser = \"300/m\"\n[report]\nhtml = false\ncsv = false\n",
    )
    .unwrap();
    let args = perfhost::settings::RunArgs {
        scenario: Some(file.to_string_lossy().into_owned()),
        host: Some(server.url()),
        ..Default::default()
    };
    let mut plan = perfhost::settings::resolve_args(&args).expect("valid scenario");
    plan.seed = 42;
    plan.stop.stop_timeout = Duration::from_secs(2);
    let result = support::run(&plan).await;
    let a = result.arrivals.as_ref().expect("arrivals");
    assert_eq!(a.scheduled, 75, "{a:?}");
    assert_eq!(a.completed, 75, "{a:?}");
    let tasks = |class: &str| {
        result
            .classes
            .iter()
            .find(|c| c.name == class)
            .map_or(0, |c| c.requests)
    };
    // BurstUser's task is one /verify: exactly its 15 arrivals.
    assert_eq!(tasks("BurstUser"), 15);
    assert!(tasks("AuditorUser") >= 60, "{}", tasks("AuditorUser"));

    std::fs::write(
        &file,
        "name = \"rates\"\nrun-time = \"3s\"\nplugins = [\"burst_user\"]\n[rates]\nHeavyUser = \"5/s\"\n",
    )
    .unwrap();
    let out = support::perfhost(
        &[
            "run",
            "--scenario",
            file.to_str().unwrap(),
            "-H",
            &server.url(),
        ],
        &dir,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("rates: unknown user class `HeavyUser`"),
        "{stderr}"
    );
    assert!(
        server.seen().len() as u64 <= 100,
        "nothing sent by the refused run"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
