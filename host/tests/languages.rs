//! Plugins from other toolchains: the sync world, a sync-lifted plugin of the async world, and
//! the example plugins in Python, JavaScript and C (built by `plugins/examples/build.sh`)
//! against the Rust `BurstUser`.

use std::path::PathBuf;
use std::time::Duration;

use perfhost_core::plan::LoadShape;
use perfhost_core::plugin::World;
use perfhost_core::result::RunResult;
use perfhost_demo::{self as demo, DemoConfig};

use crate::support::{self, fixture, Mode, RecordingServer};

/// 20 users for `secs` seconds of plugin `path` against `url`.
async fn twenty_users(url: &str, path: &str, secs: u64) -> RunResult {
    let mut plan = support::plan(url, &[path]);
    plan.load = LoadShape::ramp(20, 1000.0);
    plan.stop.run_time = Some(Duration::from_secs(secs));
    support::run(&plan).await
}

/// HTTP requests per second of the run's measured window (the probe's custom `overhead`
/// events are not requests).
fn rate(result: &RunResult) -> f64 {
    let requests: u64 = result
        .stats
        .iter()
        .filter(|s| s.method == "POST")
        .map(|s| s.requests)
        .sum();
    requests as f64 / result.meta.duration_s.max(0.001)
}

/// A sync plugin's blocking `send` holds only its own user: against a 200 ms server, 20 sync
/// users make at least 80% of the requests 20 async users make (each user its own instance),
/// whether the plugin targets the sync world or lifts the async world's functions sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_plugins_keep_their_users_concurrent() {
    let _serial = support::serial().await;
    let srv = demo::start(
        DemoConfig {
            latency: Some(demo::knobs::parse_latency("200ms").expect("latency")),
            ..DemoConfig::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("demo server starts");
    let url = format!("http://{}", srv.addr());

    // Each sync plugin beside an async one that does the same: the Rust SDK's latency probe
    // (a request 5 ms apart, as the two Rust fixtures) and the Rust BurstUser (as the C one).
    let probe = fixture("fixture_latency_probe");
    let mut pairs = vec![
        (
            probe.clone(),
            fixture("fixture_sync_world"),
            World::PluginSync,
        ),
        (probe, fixture("fixture_sync_lifted"), World::Plugin),
    ];
    if let Some(c) = example("burst_user_c_lifted.wasm") {
        pairs.push(("burst_user".to_string(), c, World::Plugin));
    }
    for (reference, path, world) in pairs {
        let baseline = twenty_users(&url, &reference, 3).await;
        let info = &baseline.plugins[0];
        assert_eq!(
            (info.world, info.users_per_instance > 1),
            (World::Plugin, true)
        );
        assert!(info.sync_calls.is_empty(), "{:?}", info.sync_calls);
        let async_rate = rate(&baseline);
        // 20 users: ~97 req/s for the probe, ~40 for BurstUser (its 100–500 ms waits).
        assert!(async_rate > 25.0, "{reference} made {async_rate:.1} req/s");

        let result = twenty_users(&url, &path, 3).await;
        let info = &result.plugins[0];
        assert_eq!(info.world, world, "{path}");
        assert_eq!(info.users_per_instance, 1, "{path}");
        if world == World::Plugin {
            // Named from the component's canonical options.
            for call in ["send", "run-task"] {
                assert!(
                    info.sync_calls.iter().any(|c| c == call),
                    "{path}: {:?}",
                    info.sync_calls
                );
            }
        }
        assert_eq!(result.total.failures, 0, "{path}: {:?}", result.failures);
        let sync_rate = rate(&result);
        assert!(
            sync_rate >= 0.8 * async_rate,
            "{path}: {sync_rate:.1} req/s against {reference}'s {async_rate:.1}"
        );
        eprintln!("{path}: {sync_rate:.1} req/s, async {reference}: {async_rate:.1}");
    }
    srv.shutdown().await;
}

/// The example plugins, or `None` (with a notice) when they were not built; in CI they must be.
pub(crate) fn example(file: &str) -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/examples")
        .join(file);
    if path.is_file() {
        return Some(path.to_string_lossy().into_owned());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: CI must build the example plugins (plugins/examples/install-toolchains.sh, then plugins/examples/build.sh)",
        path.display()
    );
    eprintln!(
        "notice: {} not built, its checks are skipped (plugins/examples/build.sh builds it)",
        path.display()
    );
    None
}

const EXAMPLES: [&str; 9] = [
    "burst_user_py.wasm",
    "burst_user_qjs.wasm",
    "burst_user_sm.wasm",
    "burst_user_c.wasm",
    "burst_user_c_lifted.wasm",
    "visitor_py_sdk.wasm",
    "auditor_py_sdk.wasm",
    "visitor_c_sdk.wasm",
    "visitor_js_sdk.wasm",
];

/// The bodies one user sends in `iterations` tasks (seed 42).
async fn bodies_of_one_user(plugin: &str, iterations: u64) -> Vec<String> {
    bodies_of_one_user_of(&[plugin], iterations).await
}

async fn bodies_of_one_user_of(plugins: &[&str], iterations: u64) -> Vec<String> {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), plugins);
    plan.load = LoadShape::ramp(1, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(iterations);
    let result = support::run(&plan).await;
    assert_eq!(
        result.total.failures, 0,
        "{plugins:?}: {:?}",
        result.failures
    );
    server.seen().into_iter().map(|s| s.body).collect()
}

/// Each example is the Rust `BurstUser` again: the same class, the same bodies in the same
/// order for the same seed, and under 20 concurrent users against the demo server the same
/// mix (all `POST /verify (burst)`, every body valid and verified, no failure) with a request
/// count within 15% of Rust's (the 100–500 ms waits set the rate: 20 users make ~65 req/s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_plugins_send_what_the_rust_burst_user_sends() {
    let examples: Vec<String> = EXAMPLES
        .iter()
        .filter(|f| f.starts_with("burst_user"))
        .filter_map(|f| example(f))
        .collect();
    if examples.is_empty() {
        return;
    }
    let _serial = support::serial().await;
    let rust_bodies = bodies_of_one_user("burst_user", 6).await;
    assert_eq!(rust_bodies.len(), 6);
    for body in &rust_bodies {
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        assert_eq!(json["sources"].as_array().map(Vec::len), Some(2), "{body}");
        assert_eq!(json["threshold"], 0.75);
    }
    // The concurrent runs go to the demo server, which validates every /verify body (422
    // otherwise) and counts what it answered.
    let demo = demo::start(DemoConfig::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("demo server starts");
    let url = format!("http://{}", demo.addr());
    let rust = twenty_users(&url, "burst_user", 4).await;
    for plugin in &examples {
        let info = &rust.plugins[0];
        let bodies = bodies_of_one_user(plugin, 6).await;
        assert_eq!(
            bodies, rust_bodies,
            "{plugin} sends other bodies than the Rust BurstUser"
        );

        let before = demo.stats();
        let result = twenty_users(&url, plugin, 4).await;
        let after = demo.stats();
        let theirs = &result.plugins[0];
        assert_eq!(theirs.classes, info.classes, "{plugin}");
        // Python awaits `send` (users share an instance); the rest block, one user each.
        let (world, shared) = if plugin.ends_with("_py.wasm") {
            (World::Plugin, true)
        } else if plugin.ends_with("_lifted.wasm") {
            (World::Plugin, false)
        } else {
            (World::PluginSync, false)
        };
        assert_eq!(
            (
                theirs.world,
                theirs.users_per_instance > 1,
                theirs.sync_calls.is_empty()
            ),
            (world, shared, world == World::PluginSync || shared),
            "{plugin}: {:?}",
            theirs.sync_calls
        );
        assert_eq!(result.total.failures, 0, "{plugin}: {:?}", result.failures);
        assert!(
            result.task_errors.is_empty(),
            "{plugin}: {:?}",
            result.task_errors
        );
        let names: Vec<(&str, &str)> = result
            .stats
            .iter()
            .map(|s| (s.method.as_str(), s.name.as_str()))
            .collect();
        assert_eq!(names, [("POST", "/verify (burst)")], "{plugin}");
        // Every request reached the server as a valid /verify body and was verified.
        assert_eq!(
            after.requests - before.requests,
            result.total.requests,
            "{plugin}"
        );
        assert_eq!(
            after.verified - before.verified,
            result.total.requests,
            "{plugin}"
        );
        assert_eq!(after.invalid, before.invalid, "{plugin}");
        let (ours, rusts) = (result.total.requests as f64, rust.total.requests as f64);
        assert!(
            (ours - rusts).abs() <= 0.15 * rusts,
            "{plugin}: {ours} requests against Rust's {rusts}"
        );
    }
    demo.shutdown().await;
}

/// Memory planning counts what one instance of the plugin measured: 40,000 users of a sync
/// plugin (an instance each, ~2 MiB) are refused before the run, naming the instances.
#[tokio::test]
async fn a_sync_plugin_that_would_not_fit_is_refused_before_the_run() {
    let dir = std::env::temp_dir();
    let plugin = fixture("fixture_sync_world");
    let out = support::perfhost(
        &[
            "run",
            "--plugin",
            &plugin,
            "-u",
            "40000",
            "-H",
            "http://127.0.0.1:9",
            "--dry-run",
        ],
        &dir,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("40000 users need about")
            && stderr.contains("instances of fixture_sync_world (one per user)")
            && stderr.contains("--force")
            && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    // The same users of the async Rust plugin share instances and pass the check.
    let out = support::perfhost(
        &[
            "run",
            "--plugin",
            &fixture("fixture_latency_probe"),
            "-u",
            "40000",
            "-H",
            "http://127.0.0.1:9",
            "--dry-run",
        ],
        &dir,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The two-task `Visitor` of the Python SDK (plugins/examples/python-sdk: Locust's shape —
/// `@task(3)`/`@task`, `between(1, 3)` in seconds, `async with … catch_response=True`) and of
/// the C SDK (plugins/examples/c-sdk: `ph_send()`, `PH_USER`, `PH_TASK`) comes out as the same
/// class, weights and request names as the Rust example, and the verdicts follow the rules (a
/// 404 item is a failure by the default rule, a healthy /health a success).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_and_c_sdks_write_the_two_task_user() {
    for file in ["visitor_py_sdk.wasm", "visitor_c_sdk.wasm"] {
        if let Some(plugin) = example(file) {
            visitor_runs_as_in_rust(&plugin).await;
        }
    }
}

async fn visitor_runs_as_in_rust(plugin: &str) {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &[plugin]);
    plan.load = LoadShape::ramp(20, 1000.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(60);
    let result = support::run(&plan).await;
    let class = &result.plugins[0].classes[0];
    assert_eq!(class.name, "Visitor");
    let tasks: Vec<(&str, u32)> = class
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t.weight))
        .collect();
    assert_eq!(tasks, [("health", 3), ("item", 1)], "{plugin}");
    assert!(result.task_errors.is_empty(), "{:?}", result.task_errors);
    let stat = |name: &str| result.stats.iter().find(|s| s.name == name).cloned();
    let health = stat("/health").expect("/health requests");
    let items = stat("/items/[id]").map_or((0, 0), |s| (s.requests, s.failures));
    assert_eq!(health.requests + items.0, 60);
    assert_eq!(health.failures, 0);
    assert_eq!(items.0, items.1, "every /items/[id] is a 404");
    assert!(
        (30..=56).contains(&health.requests),
        "{} of 60 tasks were health, expected ~45",
        health.requests
    );
    assert!(server
        .seen()
        .iter()
        .all(|s| s.path == "/health" || s.path.starts_with("/items/")));
}

/// The Auditor suite's three classes written with the Python SDK
/// (plugins/examples/python-sdk/auditor.py) are the Rust built-ins again: the same classes,
/// weights, waits and tasks; the same bodies in the same order for one seed; and against the
/// demo server with 30 users the same request names, no failure and a request count within 20%.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_auditor_users_match_the_built_ins() {
    let Some(plugin) = example("auditor_py_sdk.wasm") else {
        return;
    };
    let _serial = support::serial().await;
    let built_ins = ["auditor_user", "burst_user", "heavy_user"];
    assert_eq!(
        bodies_of_one_user_of(&[&plugin], 8).await,
        bodies_of_one_user_of(&built_ins, 8).await
    );
    let demo = demo::start(DemoConfig::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("demo server starts");
    let url = format!("http://{}", demo.addr());
    let thirty = |plugins: Vec<String>| {
        let url = url.clone();
        async move {
            let plugins: Vec<&str> = plugins.iter().map(String::as_str).collect();
            let mut plan = support::plan(&url, &plugins);
            plan.load = LoadShape::ramp(30, 1000.0);
            plan.stop.run_time = Some(Duration::from_secs(6));
            support::run(&plan).await
        }
    };
    let rust = thirty(built_ins.iter().map(|p| p.to_string()).collect()).await;
    let python = thirty(vec![plugin.clone()]).await;
    let classes =
        |r: &RunResult| -> Vec<_> { r.plugins.iter().flat_map(|p| p.classes.clone()).collect() };
    assert_eq!(classes(&python), classes(&rust));
    assert_eq!(python.total.failures, 0, "{:?}", python.failures);
    assert!(python.task_errors.is_empty(), "{:?}", python.task_errors);
    let names = |r: &RunResult| -> std::collections::BTreeSet<String> {
        r.stats
            .iter()
            .map(|s| format!("{} {}", s.method, s.name))
            .collect()
    };
    // A name drawn rarely (metrics: 1 in 17 AuditorUser tasks) may be missing from one run.
    let (ours, theirs) = (names(&python), names(&rust));
    assert!(
        ours.iter().all(|n| theirs.contains(n)) || theirs.len() < 7,
        "{ours:?} vs {theirs:?}"
    );
    let (p, r) = (python.total.requests as f64, rust.total.requests as f64);
    assert!(
        (p - r).abs() <= 0.2 * r,
        "{p} requests against the built-ins' {r}"
    );
    demo.shutdown().await;
}

/// `perfhost plugin new` makes a project that builds with its own script and runs unchanged:
/// Rust always (the toolchain that builds perfhost builds it), Python, JavaScript and C when
/// componentize-py, jco and wit-bindgen/clang are installed (always in CI). Each runs 6 tasks against a local server with no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_new_projects_build_and_run_unchanged() {
    // The Rust build takes both cores for a minute: not beside the timing-sensitive tests.
    let _serial = support::serial().await;
    let root = std::env::temp_dir().join(format!("perfhost-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let mut langs = vec!["rust"];
    if example("burst_user_py.wasm").is_some() {
        langs.push("python");
    }
    if example("burst_user_qjs.wasm").is_some() {
        langs.push("js");
    }
    if example("burst_user_c.wasm").is_some() {
        langs.push("c");
    }
    for lang in langs {
        let name = format!("new_{lang}_user");
        let project = root.join(&name);
        let out = support::perfhost(
            &[
                "plugin",
                "new",
                &name,
                "--lang",
                lang,
                "--dir",
                project.to_str().unwrap(),
            ],
            &root,
        )
        .await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result = build_and_run_project(&project, &name, lang).await;
        assert_eq!(
            result.plugins[0].classes[0].name,
            format!("New{}User", capitalised(lang))
        );
        if lang == "js" && example("plain_get_async_js_sdk.wasm").is_some() {
            // The same script made async (k6's `http.asyncRequest`): build.sh builds it for
            // the async world, and its users share an instance.
            let file = project.join(format!("{name}.js"));
            let script = std::fs::read_to_string(&file).unwrap();
            let made_async = script
                .replace("export default function", "export default async function")
                .replace(
                    "http.get(\"/health\", ",
                    "await http.asyncRequest(\"GET\", \"/health\", null, ",
                );
            assert_ne!(script, made_async);
            std::fs::write(&file, made_async).unwrap();
            let result = build_and_run_project(&project, &name, "js (async)").await;
            let info = &result.plugins[0];
            assert_eq!(
                (info.world, info.users_per_instance > 1),
                (World::Plugin, true)
            );
        }
    }
    // A second `new` into the same folder, or a bad name, is refused with one line.
    let again = support::perfhost(
        &[
            "plugin",
            "new",
            "new_rust_user",
            "--dir",
            root.join("new_rust_user").to_str().unwrap(),
        ],
        &root,
    )
    .await;
    assert_eq!(again.status.code(), Some(2));
    let bad = support::perfhost(&["plugin", "new", "Bad-Name"], &root).await;
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        bad.status.code() == Some(2) && stderr.contains("lower-case"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// Runs a `plugin new` project's own build script (with nothing of this test's cargo
/// environment), then 6 tasks of its plugin against a local server: no failure, no task error.
async fn build_and_run_project(project: &std::path::Path, name: &str, lang: &str) -> RunResult {
    let script = project.join("build.sh");
    let built = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(script);
        for (key, _) in std::env::vars() {
            if key.starts_with("CARGO_") && key != "CARGO_HOME" {
                cmd.env_remove(key);
            }
        }
        cmd.output().expect("bash runs")
    })
    .await
    .unwrap();
    assert!(
        built.status.success(),
        "{lang}: build.sh failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let wasm = project.join(format!("{name}.wasm"));
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &[wasm.to_str().unwrap()]);
    plan.load = LoadShape::ramp(2, 100.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(6);
    let result = support::run(&plan).await;
    // HTTP rows only: the JavaScript project's `check` adds a row of its own per task.
    let requests: u64 = result
        .stats
        .iter()
        .filter(|s| s.method != "check")
        .map(|s| s.requests)
        .sum();
    assert_eq!((requests, result.total.failures), (6, 0), "{lang}");
    assert!(
        result.task_errors.is_empty(),
        "{lang}: {:?}",
        result.task_errors
    );
    result
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or(String::new(), |c| {
        c.to_ascii_uppercase().to_string() + chars.as_str()
    })
}

/// The JavaScript SDK's k6 shape (plugins/examples/js-sdk/health_check.js): one iteration of
/// the default function per task, `check()` rows that fail when their predicate does, the
/// default rule on the request itself, `group()` rows, `sleep()` at the iteration's end; and the two-task user (visitor.js) with the seeded `Math.random`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_sdk_runs_k6_shaped_scripts() {
    if let Some(visitor) = example("visitor_js_sdk.wasm") {
        // The two-task user as k6 writes it: one default function choosing with Math.random,
        // which is the user's seeded generator — 60 iterations give the Rust mix (3:1).
        let server = RecordingServer::start(Mode::Auditor).await;
        let mut plan = support::plan(&server.url(), &[&visitor]);
        plan.load = LoadShape::ramp(20, 1000.0);
        plan.stop.run_time = None;
        plan.stop.iterations = Some(60);
        let result = support::run(&plan).await;
        assert!(result.task_errors.is_empty(), "{:?}", result.task_errors);
        let count = |method: &str, name: &str| {
            result
                .stats
                .iter()
                .find(|s| s.method == method && s.name == name)
                .map_or((0, 0), |s| (s.requests, s.failures))
        };
        let health = count("GET", "/health");
        let items = count("GET", "/items/[id]");
        assert_eq!(health.0 + items.0, 60);
        assert_eq!(count("check", "status is healthy"), (health.0, 0));
        assert_eq!(items.0, items.1, "every /items/[id] is a 404");
        assert!(
            (30..=56).contains(&health.0),
            "{} of 60 were health",
            health.0
        );
    }
    let Some(plugin) = example("health_check_js_sdk.wasm") else {
        return;
    };
    for (mode, failing) in [(Mode::Auditor, false), (Mode::NotFound, true)] {
        let server = RecordingServer::start(mode).await;
        let mut plan = support::plan(&server.url(), &[&plugin]);
        plan.load = LoadShape::ramp(2, 100.0);
        plan.stop.run_time = None;
        plan.stop.iterations = Some(10);
        let result = support::run(&plan).await;
        assert_eq!(result.plugins[0].classes[0].name, "HealthChecker");
        assert!(result.task_errors.is_empty(), "{:?}", result.task_errors);
        let row = |method: &str, name: &str| {
            let s = result
                .stats
                .iter()
                .find(|s| s.method == method && s.name == name)
                .unwrap_or_else(|| panic!("no {method} {name} in {:?}", result.stats));
            (s.requests, s.failures)
        };
        let failures = if failing { 10 } else { 0 };
        assert_eq!(row("GET", "/health"), (10, failures), "{mode:?}");
        // Checks inside group("service") are named after it; the group is a row of its own.
        assert_eq!(
            row("check", "service::status is 200"),
            (10, failures),
            "{mode:?}"
        );
        assert_eq!(
            row("check", "service::is healthy"),
            (10, failures),
            "{mode:?}"
        );
        assert_eq!(row("group", "::service"), (10, 0), "{mode:?}");
        // Only the path of the script's absolute URL was sent, to the run's target.
        assert!(server.seen().iter().all(|s| s.path == "/health"));
        // sleep(0.1) ends each iteration: a user's 5 iterations take at least 4 of them.
        let seen = server.seen();
        let span = seen.last().unwrap().at - seen.first().unwrap().at;
        assert!(span >= Duration::from_millis(350), "{span:?}");
    }
}

/// The JavaScript SDK's async form (`export default async function`, k6's
/// `http.asyncRequest`): built for the async world, its users share an instance; one user sends
/// the same requests with the same bodies as the sync form of the same script
/// (auditor_user.js), and 20 users of it run the Auditor mix with its check rows and no task
/// error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_sdk_async_form_shares_an_instance_and_sends_what_the_sync_form_sends() {
    let (Some(sync), Some(shared)) = (
        example("auditor_user_js_sdk.wasm"),
        example("auditor_user_async_js_sdk.wasm"),
    ) else {
        return;
    };
    // Two iterations each: the on-start /health, then two tasks with 1–3 s sleeps after them.
    // The locustfile's structure check fails on the Auditor's real shape, in both forms alike.
    let one_user = |plugin: String| async move {
        let server = RecordingServer::start(Mode::Auditor).await;
        let mut plan = support::plan(&server.url(), &[&plugin]);
        plan.load = LoadShape::ramp(1, 10.0);
        plan.stop.run_time = None;
        plan.stop.iterations = Some(2);
        let result = support::run(&plan).await;
        assert!(result.task_errors.is_empty(), "{:?}", result.task_errors);
        let sent: Vec<_> = server
            .seen()
            .into_iter()
            .map(|s| (s.path, s.body))
            .collect();
        (sent, result.total.failures)
    };
    let (mine, failures) = one_user(shared.clone()).await;
    assert_eq!(mine.len(), 3, "{mine:?}");
    // The SDK's own UTF-8 encoder (QuickJS has no TextEncoder): every answer has a `§` or an
    // `ü`, and arrives as the JSON text it was.
    let verifies: Vec<_> = mine.iter().filter(|(path, _)| path == "/verify").collect();
    assert!(!verifies.is_empty(), "{mine:?}");
    for (path, body) in verifies {
        let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        let answer = json["answer"].as_str().unwrap_or_default();
        assert!(
            answer.contains('§') || answer.contains("Würde"),
            "{path}: {answer}"
        );
    }
    assert_eq!((mine, failures), one_user(sync).await);

    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &[&shared]);
    plan.load = LoadShape::ramp(20, 1000.0);
    plan.stop.run_time = Some(Duration::from_secs(3));
    let result = support::run(&plan).await;
    let info = &result.plugins[0];
    assert_eq!(
        (
            info.world,
            info.users_per_instance > 1,
            info.sync_calls.len()
        ),
        (World::Plugin, true, 0),
        "{:?}",
        info.sync_calls
    );
    assert!(result.task_errors.is_empty(), "{:?}", result.task_errors);
    let row = |method: &str, name: &str| {
        result
            .stats
            .iter()
            .find(|s| s.method == method && s.name == name)
            .map_or(0, |s| s.requests)
    };
    // Every user's on-start /health at least, and the weighted tasks after it.
    assert!(row("GET", "/health") >= 20, "{:?}", result.stats);
    let verifies = row("POST", "/verify (standard)")
        + row("POST", "/verify (many sources)")
        + row("POST", "/verify (strict mode)");
    assert!(verifies >= 10, "{:?}", result.stats);
    assert_eq!(
        row("check", "standard verify structure"),
        row("POST", "/verify (standard)")
    );
}

/// `sleep` waits where it is called, and only for its user, in both worlds: the first user
/// sends `/health?first`, sleeps 1 s, sends `/health?second`; the other users keep sending
/// `/health?other` every ~20 ms meanwhile (timestamps taken by the test server). The async
/// world's `fixture_sleeper` (Rust SDK), `sleep_between_py_sdk` (Python SDK) and
/// `sleep_between_async_js_sdk` (the JS SDK's async form: awaited and k6's plain `sleep()`),
/// whose users share an instance, and the sync world's `sleep_between_js_sdk` (k6's
/// `sleep()`: one instance per user).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_spaces_its_users_requests_and_no_one_elses() {
    let _serial = support::serial().await;
    let mut plugins = vec![support::fixture("fixture_sleeper")];
    plugins.extend(example("sleep_between_py_sdk.wasm"));
    plugins.extend(example("sleep_between_js_sdk.wasm"));
    plugins.extend(example("sleep_between_async_js_sdk.wasm"));
    for plugin in plugins {
        let server = RecordingServer::start(Mode::Auditor).await;
        let mut plan = support::plan(&server.url(), &[&plugin]);
        plan.load = LoadShape::ramp(3, 100.0);
        plan.stop.run_time = Some(Duration::from_millis(1800));
        let result = support::run(&plan).await;
        assert_eq!(result.total.failures, 0, "{plugin}: {:?}", result.failures);
        assert!(
            result.task_errors.is_empty(),
            "{plugin}: {:?}",
            result.task_errors
        );
        let seen = server.seen();
        let at = |path: &str| {
            let mut hits = seen.iter().filter(|s| s.path == path).map(|s| s.at);
            let first = hits.next().unwrap_or_else(|| panic!("{plugin}: no {path}"));
            assert!(hits.next().is_none(), "{plugin}: {path} twice");
            first
        };
        let (first, second) = (at("/health?first"), at("/health?second"));
        let slept = second - first;
        assert!(
            (Duration::from_millis(1000)..Duration::from_millis(1500)).contains(&slept),
            "{plugin}: /first to /second: {slept:?}"
        );
        // The other two users were not held: requests all through the second, no long gap.
        let mut others: Vec<_> = seen
            .iter()
            .filter(|s| s.path == "/health?other" && s.at > first && s.at < second)
            .map(|s| s.at)
            .collect();
        others.sort();
        // …and each of them did sleep 20 ms between its requests (the async JS form's plain
        // `sleep(0.02)` is waited out before the next request): two users, 1–1.5 s, so at most
        // ~150; without the sleeps they would send thousands.
        assert!(
            (20..=200).contains(&others.len()),
            "{plugin}: {} others during the sleep",
            others.len()
        );
        let gap = others.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(
            gap < Duration::from_millis(300),
            "{plugin}: a gap of {gap:?}"
        );
    }
}

/// The Rust SDK's shorthands: a class without `NAME` is named after its type, and
/// `task!(Self::health, 3)` / `task!(Self::item)` after their methods (weights 3 and 1) —
/// the two-task example of docs/plugins.md, run against a local server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_names_classes_and_tasks_after_the_code() {
    let server = RecordingServer::start(Mode::Auditor).await;
    let mut plan = support::plan(&server.url(), &[&fixture("two_tasks")]);
    plan.load = LoadShape::ramp(2, 100.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(4);
    let result = support::run(&plan).await;
    let class = &result.plugins[0].classes[0];
    assert_eq!((class.name.as_str(), class.weight), ("Visitor", 1));
    let tasks: Vec<(&str, u32)> = class
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t.weight))
        .collect();
    assert_eq!(tasks, [("health", 3), ("item", 1)]);
    assert_eq!(result.total.requests, 4);
    assert!(result.task_errors.is_empty(), "{:?}", result.task_errors);
}

/// `plugins/examples/build.sh` names what to install when a toolchain is missing (exit 3) and
/// refuses an unknown language (exit 2), each in one line.
#[test]
fn the_examples_build_script_names_what_is_missing() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/examples/build.sh");
    let run = |lang: &str| {
        std::process::Command::new("bash")
            .arg(&script)
            .arg(lang)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("PERFHOST_TOOLS", "/nonexistent/perfhost-tools")
            .output()
            .expect("bash runs")
    };
    if std::path::Path::new("/usr/bin/componentize-py").exists() {
        return; // installed system-wide: nothing is missing to report
    }
    let missing = run("python");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("`componentize-py` not found") && stderr.contains("install it with"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let unknown = run("cobol");
    assert_eq!(unknown.status.code(), Some(2));
}
