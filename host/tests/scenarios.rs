//! Scenario presets, load shapes and `--scenario all`, against servers on 127.0.0.1.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use perfhost::settings::{self, RunArgs};
use perfhost_core::plan::Plan;

use crate::support::{self, Mode, RecordingServer};

fn scenario_plan(name: &str) -> Plan {
    let args = RunArgs {
        scenario: Some(name.into()),
        config: Some(PathBuf::from("/dev/null")),
        ..Default::default()
    };
    settings::resolve(&args, &|_| None).unwrap()
}

#[test]
fn presets_resolve_to_the_suite_table() {
    let all = ["AuditorUser", "BurstUser", "HeavyUser"];
    // name, users, spawn rate, run time (s), classes (empty: all three)
    let table: [(&str, usize, f64, u64, &[&str]); 8] = [
        ("smoke", 10, 2.0, 60, &[]),
        ("baseline", 50, 5.0, 300, &["AuditorUser"]),
        ("stress", 200, 20.0, 300, &[]),
        ("spike", 500, 100.0, 120, &[]),
        ("burst", 100, 50.0, 180, &["BurstUser"]),
        ("heavy", 50, 5.0, 300, &["HeavyUser"]),
        ("endurance", 100, 10.0, 1800, &["AuditorUser"]),
        ("soak", 75, 5.0, 7200, &["AuditorUser"]),
    ];
    for (name, users, rate, secs, classes) in table {
        let plan = scenario_plan(name);
        assert_eq!(plan.max_users(), users, "{name} users");
        assert_eq!(plan.load.spawn_rate(), rate, "{name} spawn rate");
        assert_eq!(
            plan.stop.run_time,
            Some(Duration::from_secs(secs)),
            "{name} run time"
        );
        assert_eq!(plan.classes.only, classes, "{name} classes");
        assert_eq!(plan.outputs.run_name, name);
        if classes.is_empty() {
            assert_eq!(
                plan.plugins,
                ["auditor_user", "burst_user", "heavy_user"],
                "{name}: all three ({all:?})"
            );
        }
    }
    // spike ramps at 100/s to 500, holds, and drops.
    let spike = scenario_plan("spike").load;
    assert_eq!(spike.target(Duration::from_secs(1)), 100);
    assert_eq!(spike.target(Duration::from_secs(60)), 500);
    assert!(spike.target(Duration::from_millis(119_000)) < 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_preset_runs_shortened_without_failures() {
    let server = perfhost_demo::start(Default::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    for (name, _) in perfhost::settings::scenario::PRESETS {
        let args = RunArgs {
            scenario: Some(name.into()),
            run_time: Some(Duration::from_secs(3)),
            host: Some(server.url()),
            config: Some(PathBuf::from("/dev/null")),
            seed: Some(7),
            ..Default::default()
        };
        let plan = settings::resolve(&args, &|_| None).unwrap();
        let result = support::run(&plan).await;
        assert!(result.total.requests > 0, "{name} sent requests");
        assert_eq!(result.total.failures, 0, "{name}: {:?}", result.failures);
        assert!(
            result.task_errors.is_empty(),
            "{name}: {:?}",
            result.task_errors
        );
        assert_eq!(result.plan.scenario.as_deref(), Some(name));
    }
    server.shutdown().await;
}

/// Users sampled each second follow the stages within one spawn step, up and down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_follow_the_stages_up_and_down() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = std::env::temp_dir().join(format!("perfhost-stages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shape.toml");
    let plugin = support::fixture("fixture_sequential");
    std::fs::write(
        &file,
        format!(
            "name = \"shape\"\nplugins = [\"{plugin}\"]\n\n[[stages]]\nusers = 8\nduration = \"4s\"\n\n[[stages]]\nusers = 8\nduration = \"2s\"\n\n[[stages]]\nusers = 0\nduration = \"4s\"\n"
        ),
    )
    .unwrap();
    let args = RunArgs {
        scenario: Some(file.display().to_string()),
        host: Some(server.url()),
        config: Some(PathBuf::from("/dev/null")),
        ..Default::default()
    };
    let plan = settings::resolve(&args, &|_| None).unwrap();
    assert_eq!(plan.max_users(), 8);
    let shape = plan.load.clone();
    let result = support::run(&plan).await;
    assert!(result.history.len() >= 8, "{} points", result.history.len());
    let mut peak = 0;
    for point in &result.history {
        let t = Duration::from_secs_f64((point.time - result.meta.start_time).max(0.0));
        let expected = shape.target(t.min(Duration::from_millis(9_999))) as i64;
        // One spawn step: the shape moves 2 users per second here.
        assert!(
            (point.users as i64 - expected).abs() <= 2,
            "at {t:?}: {} users, shape says {expected}",
            point.users
        );
        peak = peak.max(point.users);
    }
    assert_eq!(peak, 8);
    assert!(result.history.last().unwrap().users <= 2, "ramped down");
    assert_eq!(result.total.failures, 0);
}

/// `--scenario all` runs smoke, baseline, stress and burst in order, one report per scenario.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_runs_the_four_scenarios_in_order() {
    let server = perfhost_demo::start(Default::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("perfhost-all-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = server.url();
    let args = [
        "run",
        "--scenario",
        "all",
        "--run-time",
        "2s",
        "--pause",
        "1s",
        "--config",
        "/dev/null",
        "-H",
        &url,
    ];
    let out = support::perfhost(&args, &dir).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout
        .split("Summary of all scenarios")
        .nth(1)
        .expect("one summary at the end");
    let order: Vec<usize> = ["smoke", "baseline", "stress", "burst"]
        .iter()
        .map(|n| summary.find(n).expect(n))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {summary}");
    let mut reports: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(dir.join("reports"))
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.metadata().unwrap().modified().unwrap(),
                e.file_name().to_string_lossy().into_owned(),
            )
        })
        .collect();
    reports.sort();
    // Each scenario wrote what scenarios.sh wrote: the HTML report and the CSV family beside
    // its JSON result (smoke's named smoke_test_…, as scenarios.sh named it).
    for json in reports.iter().filter(|(_, n)| n.ends_with(".json")) {
        let stem = json.1.trim_end_matches(".json");
        for suffix in [
            ".html",
            "_stats.csv",
            "_stats_history.csv",
            "_failures.csv",
            "_exceptions.csv",
        ] {
            let file = format!("{stem}{suffix}");
            assert!(
                reports.iter().any(|(_, n)| *n == file),
                "{file}: {reports:?}"
            );
        }
    }
    assert!(
        reports.iter().any(|(_, n)| n.starts_with("smoke_test_")),
        "{reports:?}"
    );
    let names: Vec<&str> = reports
        .iter()
        .filter(|(_, n)| n.ends_with(".json"))
        .map(|(_, n)| n.split('_').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["smoke", "baseline", "stress", "burst"],
        "{reports:?}"
    );
    server.shutdown().await;
}

/// Malformed scenario files: one line naming file, line and field; exit 2.
#[test]
fn malformed_scenarios_exit_2_with_one_line() {
    let dir = std::env::temp_dir().join(format!("perfhost-bad-scenarios-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "unknown_field",
            "name = \"x\"\nusers = 3\ncolour = \"red\"\n",
            ":3: field `colour`",
        ),
        (
            "wrong_type",
            "name = \"x\"\nusers = \"many\"\n",
            ":2: field `users`",
        ),
        (
            "negative_users",
            "name = \"x\"\n\nusers = -4\n",
            ":3: field `users`",
        ),
        (
            "bad_duration",
            "name = \"x\"\nrun-time = \"soon\"\n",
            ":2: field `run-time`",
        ),
        (
            "unknown_class",
            "name = \"x\"\nuser-classes = [\"GhostUser\"]\n",
            ":2: field `user-classes`",
        ),
        (
            "missing_plugin",
            "name = \"x\"\nplugins = [\"/nowhere/missing.wasm\"]\n",
            ":2: field `plugins`",
        ),
    ];
    for (name, text, expected) in cases {
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_perfhost"))
            .args([
                "run",
                "--no-report",
                "--config",
                "/dev/null",
                "-H",
                "http://127.0.0.1:9",
                "--scenario",
            ])
            .arg(&file)
            .current_dir(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        // A run refused before its first request leaves no report file behind.
        let left: Vec<_> = std::fs::read_dir(dir.join("reports"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{name}: {left:?}");
        assert_eq!(stderr.trim().lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}.toml{expected}")),
            "{name}: {stderr}"
        );
    }
}
