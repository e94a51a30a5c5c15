//! The plugin runtime with real components built from `plugins/`: the built-in behaviours, the
//! sandbox (hostile fixtures), contract checks and the compile cache.

use std::time::Duration;

use perfhost_core::plan::LoadShape;
use perfhost_core::plugin::{PluginError, PluginSet, PluginSpec, RuntimeOptions, World};

use crate::support::{self, fixture, Mode, RecordingServer};

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// ±3σ binomial tolerance around the expected share.
fn assert_share(name: &str, hits: usize, total: usize, p: f64) {
    let expected = total as f64 * p;
    let sigma = (total as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (hits as f64 - expected).abs() <= 3.0 * sigma + 1.0,
        "{name}: {hits} of {total}, expected {expected:.1} ± {:.1}",
        3.0 * sigma
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditor_user_sends_the_suite_requests_in_the_declared_proportions() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &["auditor_user"]);
    plan.load = LoadShape::ramp(150, 1000.0);
    plan.stop.run_time = Some(Duration::from_secs(7));
    let result = support::run(&plan).await;
    assert_eq!(result.total.failures, 0, "{:?}", result.failures);
    let seen = server.seen();
    // on_start: one GET /health per user.
    let health = seen
        .iter()
        .filter(|s| s.method == "GET" && s.path == "/health")
        .count();
    assert!(
        health >= 150,
        "every user checks /health on start ({health})"
    );
    let verifies: Vec<serde_json::Value> = seen
        .iter()
        .filter(|s| s.path == "/verify")
        .map(|s| json(&s.body))
        .collect();
    for v in &verifies {
        assert!(
            v["answer"].as_str().is_some_and(|a| !a.is_empty()),
            "answer in {v}"
        );
        assert!(
            v["sources"].as_array().is_some_and(|s| !s.is_empty()),
            "sources in {v}"
        );
    }
    // Task weights 10/3/2/1/1: standard (3 sources, 0.75), many (4), strict (0.85 + strict_mode).
    let strict = verifies.iter().filter(|v| v["strict_mode"] == true).count();
    let many = verifies
        .iter()
        .filter(|v| v["sources"].as_array().map(|s| s.len()) == Some(4))
        .count();
    let standard = verifies
        .iter()
        .filter(|v| v["threshold"] == 0.75 && v["sources"].as_array().map(|s| s.len()) == Some(3))
        .count();
    let metrics = seen.iter().filter(|s| s.path == "/metrics").count();
    let tasks = verifies.len() + metrics + (health - 150);
    assert!(tasks > 200, "enough tasks to judge proportions ({tasks})");
    assert_share("standard", standard, tasks, 10.0 / 17.0);
    assert_share("many sources", many, tasks, 3.0 / 17.0);
    assert_share("strict", strict, tasks, 2.0 / 17.0);
    assert_share("metrics", metrics, tasks, 1.0 / 17.0);
    let names: Vec<&str> = result.stats.iter().map(|s| s.name.as_str()).collect();
    for name in [
        "/verify (standard)",
        "/verify (many sources)",
        "/verify (strict mode)",
        "/health",
        "/metrics",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_request_stream() {
    let mut streams = Vec::new();
    for _ in 0..2 {
        let server = RecordingServer::start(Mode::Auditor).await;
        let mut plan = support::plan(&server.url(), &["burst_user"]);
        plan.load = LoadShape::ramp(1, 10.0);
        plan.stop.run_time = None;
        plan.stop.iterations = Some(12);
        let result = support::run(&plan).await;
        assert_eq!(result.total.requests, 12);
        streams.push(server.seen());
    }
    let requests = |seen: &[support::Seen]| {
        seen.iter()
            .map(|s| (s.method.clone(), s.path.clone(), s.body.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(requests(&streams[0]), requests(&streams[1]));
    let distinct: std::collections::HashSet<&str> =
        streams[0].iter().map(|s| s.body.as_str()).collect();
    assert!(distinct.len() > 1, "the seeded random varies the bodies");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_user_counts_429_as_success_and_heavy_user_sends_all_sources() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &["heavy_user"]);
    plan.load = LoadShape::ramp(3, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(3);
    let result = support::run(&plan).await;
    assert_eq!(
        result
            .stats
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        vec!["/verify (large)"]
    );
    let max_sources = server
        .seen()
        .iter()
        .map(|s| json(&s.body)["sources"].as_array().map_or(0, |a| a.len()))
        .max();
    assert!(
        max_sources >= Some(5),
        "heavy user sends every source ({max_sources:?})"
    );
}

/// Each hostile plugin runs beside a well-behaved class; the host survives and says what happened.
async fn hostile(
    name: &str,
    tweak: impl FnOnce(&mut perfhost_core::plan::Plan),
) -> (perfhost_core::result::RunResult, RecordingServer) {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &[&fixture(name)]);
    plan.load = LoadShape::ramp(4, 10.0);
    plan.stop.run_time = Some(Duration::from_secs(4));
    tweak(&mut plan);
    let result = support::run(&plan).await;
    let good = result
        .stats
        .iter()
        .find(|s| s.name == "/health")
        .map_or(0, |s| s.requests);
    assert!(
        good > 5,
        "{name}: the Good class kept running ({good} requests)"
    );
    (result, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_stopped_at_the_cpu_budget() {
    let (result, _s) = hostile("fixture_infinite_loop", |p| {
        p.limits.cpu_budget = Duration::from_millis(200)
    })
    .await;
    assert!(
        support::task_error(&result, "CPU budget").is_some(),
        "{:?}",
        result.task_errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_is_stopped_at_the_cap() {
    let (result, _s) = hostile("fixture_memory_bomb", |p| p.limits.memory_cap = 16 << 20).await;
    assert!(
        support::task_error(&result, "memory cap of 16 MiB").is_some(),
        "{:?}",
        result.task_errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_recorded_with_its_message() {
    let (result, _s) = hostile("fixture_panic", |_| {}).await;
    assert!(
        support::task_error(&result, "fixture panic: boom").is_some(),
        "{:?}",
        result.task_errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_has_no_files_env_or_sockets() {
    let (result, _s) = hostile("fixture_read_file", |_| {}).await;
    let err = support::task_error(&result, "/etc/passwd").expect("task error about the read");
    assert!(
        !err.message.contains("root:"),
        "no file content leaked: {}",
        err.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_another_origin_are_denied_and_counted() {
    let (result, server) = hostile("fixture_other_origin", |_| {}).await;
    assert!(result.denied_requests > 0);
    assert!(
        result.failures.iter().any(|f| f.error.contains("denied")),
        "{:?}",
        result.failures
    );
    assert!(server.seen().iter().all(|s| !s.path.contains("example")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_that_traps_on_start_is_stopped_and_others_run_on() {
    let (result, _s) = hostile("fixture_trap_on_start", |p| {
        p.stop.run_time = Some(Duration::from_secs(6))
    })
    .await;
    assert_eq!(
        result.stopped_classes.len(),
        1,
        "{:?}",
        result.stopped_classes
    );
    assert!(result.stopped_classes[0].starts_with("Hostile"));
    // Each trap ends the class's instance, which is re-created after the wait time (100 ms):
    // a handful of restarts, never a hot loop.
    let restarts = result
        .task_errors
        .iter()
        .filter(|e| e.location == "Hostile.instance")
        .map(|e| e.occurrences)
        .sum::<u64>();
    assert!((5..=80).contains(&restarts), "{restarts} restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_classes_follow_next_task() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &[&fixture("fixture_sequential")]);
    plan.load = LoadShape::ramp(1, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(6);
    support::run(&plan).await;
    let steps: Vec<String> = server.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        steps,
        ["0", "1", "2", "0", "1", "2"].map(|n| format!("/health?step={n}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_of_a_class_share_one_instance_per_core() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &[&fixture("fixture_shared_instance")]);
    plan.load = LoadShape::ramp(6, 100.0);
    plan.stop.run_time = Some(Duration::from_secs(2));
    support::run(&plan).await;
    // Each user reports the how-manyth user of its instance it was (a global counter there).
    let mut nth: Vec<u32> = server
        .seen()
        .iter()
        .filter_map(|s| s.path.split("nth=").nth(1)?.parse().ok())
        .collect();
    nth.sort_unstable();
    assert_eq!(nth.len(), 6, "{nth:?}");
    let instances = nth.iter().filter(|&&n| n == 1).count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        (1..=cores).contains(&instances),
        "{instances} instances: {nth:?}"
    );
    assert_eq!(
        nth.iter().max(),
        Some(&(6u32.div_ceil(instances as u32))),
        "{nth:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_data_is_handed_out_once_in_unique_mode() {
    let dir = tempdir();
    let file = dir.join("users.csv");
    std::fs::write(&file, "name,city\nanna,berlin\nbob,koeln\ncarl,bonn\n").unwrap();
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &[&fixture("fixture_data")]);
    plan.load = LoadShape::ramp(2, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(5);
    plan.data = vec![format!("users={}:unique", file.display())];
    let result = support::run(&plan).await;
    let mut users: Vec<String> = server
        .seen()
        .iter()
        .filter_map(|s| s.path.split("user=").nth(1).map(str::to_string))
        .collect();
    users.sort();
    assert_eq!(users, ["anna", "bob", "carl"]);
    assert!(
        support::task_error(&result, "exhausted").is_some(),
        "{:?}",
        result.task_errors
    );
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "perfhost-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_components_are_rejected_with_one_clear_line() {
    let dir = tempdir();
    let options = || RuntimeOptions { cache_dir: None };
    let load = |path: std::path::PathBuf| async move {
        let spec = PluginSpec::resolve(path.to_str().unwrap())?;
        PluginSet::load(vec![spec], options()).await
    };
    let corrupt = dir.join("corrupt.wasm");
    std::fs::write(&corrupt, b"this is not wasm").unwrap();
    assert!(matches!(load(corrupt).await, Err(PluginError::NotWasm(_))));
    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    assert!(matches!(load(core).await, Err(PluginError::CoreModule(_))));
    let truncated = dir.join("truncated.wasm");
    let bytes = std::fs::read(fixture("fixture_panic")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        load(truncated).await,
        Err(PluginError::Invalid { .. })
    ));
    match load(fixture("fixture_other_version").into()).await {
        Err(err @ PluginError::Version { .. }) => {
            let text = err.to_string();
            assert!(
                text.contains("perfhost:plugin@0.2.0") && text.contains("perfhost:plugin@0.1.0"),
                "{text}"
            );
            assert!(!text.contains('\n'));
        }
        other => panic!(
            "expected a version error, got {:?}",
            other.map(|s| s.plugins.len())
        ),
    }
}

#[test]
fn the_cli_exits_2_on_a_bad_plugin() {
    let dir = tempdir();
    let bad = dir.join("broken.wasm");
    std::fs::write(&bad, b"garbage").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_perfhost"))
        .args(["run", "-H", "http://127.0.0.1:9", "--no-report", "--plugin"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("broken") && stderr.contains("not a WebAssembly"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk() {
    let dir = tempdir();
    let options = || RuntimeOptions {
        cache_dir: Some(dir.clone()),
    };
    let first = PluginSet::load(vec![PluginSpec::resolve("burst_user").unwrap()], options())
        .await
        .unwrap();
    assert!(!first.plugins[0].from_cache);
    let second = PluginSet::load(vec![PluginSpec::resolve("burst_user").unwrap()], options())
        .await
        .unwrap();
    assert!(second.plugins[0].from_cache);
    assert_eq!(first.plugins[0].classes, second.plugins[0].classes);
    assert_eq!(second.plugins[0].classes[0].name, "BurstUser");
    assert_eq!(second.plugins[0].classes[0].weight, 2);
}

#[test]
fn inspect_shows_classes_and_export_writes_a_loadable_file() {
    let exe = env!("CARGO_BIN_EXE_perfhost");
    let out = std::process::Command::new(exe)
        .args(["plugin", "inspect", "auditor_user"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for needle in [
        "perfhost:plugin@0.2.4",
        "AuditorUser (weight 7, wait between 1000–3000 ms)",
        "verify_standard",
        "weight  10 (59%)",
        "perfhost:plugin/host@0.2.4",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    let dir = tempdir();
    let file = dir.join("copy.wasm");
    let out = std::process::Command::new(exe)
        .args(["plugin", "export", "heavy_user", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        perfhost_core::plugin::builtin::bytes("heavy_user").unwrap()
    );
    let out = std::process::Command::new(exe)
        .args(["plugin", "inspect", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["classes"][0]["name"], "HeavyUser");
    let out = std::process::Command::new(exe)
        .args(["plugin", "inspect"])
        .arg(fixture("fixture_other_version"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("perfhost:plugin@0.2.0") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
}

/// Plugins built from the frozen text of each released contract (fixtures/contract_0_2_0 in
/// the async world, fixtures/contract_0_2_2 in the sync world it added, fixtures/contract_0_2_3
/// with its `sleep`) load and run on this 0.2.x host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_built_against_released_contracts_still_run() {
    let server = RecordingServer::start(Mode::Auditor).await;
    for (name, version, world) in [
        ("fixture_contract_0_2_0", "0.2.0", World::Plugin),
        ("fixture_contract_0_2_2", "0.2.2", World::PluginSync),
        ("fixture_contract_0_2_3", "0.2.3", World::Plugin),
    ] {
        let seen = server.seen().len();
        let mut plan = support::plan(&server.url(), &[&fixture(name)]);
        plan.load = LoadShape::ramp(2, 10.0);
        plan.stop.run_time = None;
        plan.stop.iterations = Some(10);
        let result = support::run(&plan).await;
        let info = &result.plugins[0];
        assert_eq!(
            info.contract,
            format!("perfhost:plugin@{version}"),
            "{name}"
        );
        assert_eq!(info.world, world, "{name}");
        assert_eq!(
            (result.total.requests, result.total.failures),
            (10, 0),
            "{name}"
        );
        assert!(
            result.task_errors.is_empty(),
            "{name}: {:?}",
            result.task_errors
        );
        assert_eq!(server.seen().len() - seen, 10, "{name}");
    }
}

/// Plugin binaries compiled by earlier toolchains and kept as they were built
/// (tests/fixtures/compiled, README there): CI rebuilds every other plugin from source, so
/// only these notice a wasmtime upgrade that stops loading plugins users already have.
/// Each runs 24 task runs against the demo server with no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_plugins_of_earlier_releases_still_run() {
    let srv = perfhost_demo::start(
        perfhost_demo::DemoConfig::default(),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("demo server starts");
    let url = format!("http://{}", srv.addr());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compiled");
    // (file, the contract it was built against, the world it targets)
    let binaries = [
        ("rust_0_2_0_contract_fixture.wasm", "0.2.0", World::Plugin),
        ("rust_0_2_1_http_get.wasm", "0.2.1", World::Plugin),
        ("rust_0_2_2_burst_user.wasm", "0.2.2", World::Plugin),
        ("python_0_2_2_burst_user.wasm", "0.2.2", World::Plugin),
        (
            "js_qjs_0_2_2_burst_user_sync.wasm",
            "0.2.2",
            World::PluginSync,
        ),
        ("c_0_2_2_burst_user_sync.wasm", "0.2.2", World::PluginSync),
    ];
    for (file, version, world) in binaries {
        let path = dir.join(file);
        let mut plan = support::plan(&url, &[&path.to_string_lossy()]);
        plan.load = LoadShape::ramp(3, 100.0);
        plan.stop.run_time = None;
        plan.stop.iterations = Some(24);
        plan.config_values.insert("path".into(), "/health".into());
        let result = support::run(&plan).await;
        let info = &result.plugins[0];
        assert_eq!(
            info.contract,
            format!("perfhost:plugin@{version}"),
            "{file}"
        );
        assert_eq!(info.world, world, "{file}");
        assert!(result.total.requests >= 24, "{file}: {:?}", result.total);
        assert_eq!(result.total.failures, 0, "{file}: {:?}", result.failures);
        assert!(
            result.task_errors.is_empty(),
            "{file}: {:?}",
            result.task_errors
        );
    }
    srv.shutdown().await;
}
