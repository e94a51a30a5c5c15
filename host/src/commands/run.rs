//! `perfhost run`: resolve the plan, load the plugins, start the demo target if no target was
//! named, run the engine, write the result and print the summary.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};

use crate::client::{ClientConfig, Target};
use crate::config::{Plan, RunArgs};
use crate::engine::{self, EngineOptions, Live, StopHandle};
use crate::exit;
use crate::plugin::data::DataSets;
use crate::plugin::{PluginSet, PluginSpec, RunEnv, RuntimeOptions};
use crate::report::{self, PlanSummary, RunMeta, RunResult};

/// Why a run could not start (exit 2 or 3).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Plugin(#[from] crate::plugin::PluginError),
    #[error("{0}")]
    Data(#[from] crate::plugin::data::DataError),
    #[error("{0}")]
    Usage(String),
    #[error("target {target} is unreachable: {why} — check -H/--host or LOAD_TEST_HOST, and that the server is running")]
    Unreachable { target: String, why: String },
    #[error("cannot start the built-in demo server: {0}")]
    Demo(String),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Unreachable { .. } | RunError::Demo(_) => exit::UNREACHABLE,
            _ => exit::USAGE,
        }
    }
}

/// A problem found once plugins are loaded, pinned to the scenario file's field when the value
/// came from a scenario.
fn in_scenario(plan: &Plan, field: &str, message: String) -> Option<RunError> {
    let sc = plan.scenario.as_ref()?;
    let line = match field {
        "plugins" => sc.plugins_line?,
        "user-classes" if !sc.user_classes.is_empty() => sc.classes_line?,
        _ => return None,
    };
    Some(RunError::Config(crate::config::ConfigError::Scenario(
        crate::scenario::ScenarioError {
            file: sc.source.clone(),
            line: Some(line),
            field: field.to_string(),
            message,
        },
    )))
}

/// Runs a resolved plan to its end (or until `stop`), returning the result.
pub async fn execute(
    plan: &Plan,
    stop: StopHandle,
    live: Arc<Live>,
    mut on_tick: impl FnMut(&crate::stats::HistoryPoint, Duration),
) -> Result<RunResult, RunError> {
    let specs = plan
        .plugins
        .iter()
        .map(|p| PluginSpec::resolve(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| in_scenario(plan, "plugins", e.to_string()).unwrap_or(RunError::Plugin(e)))?;
    let data = DataSets::load(&plan.data)?;
    let set = PluginSet::load(specs, RuntimeOptions::default()).await?;
    let classes = engine::select_classes_weighted(&set, &plan.user_classes, &plan.class_weights)
        .map_err(|e| {
            let field = if e.starts_with("weights") {
                "weights"
            } else {
                "user-classes"
            };
            in_scenario(plan, field, e.clone()).unwrap_or(RunError::Usage(e))
        })?;

    // No target named anywhere: the built-in demo server, as a child that never outlives us.
    let mut demo: Option<DemoChild> = None;
    let host = match &plan.host {
        Some(h) => h.clone(),
        None => {
            let child = DemoChild::start().map_err(RunError::Demo)?;
            eprintln!(
                "No target given (-H or LOAD_TEST_HOST): started the built-in demo server at {} (pid {})",
                child.url,
                child.child.id()
            );
            let url = child.url.clone();
            demo = Some(child);
            url
        }
    };
    let target = Arc::new(Target::parse(&host).map_err(|e| RunError::Usage(e.to_string()))?);
    wait_reachable(&target, demo.is_some()).await?;

    let mut headers = HeaderMap::new();
    if let Some(token) = &plan.api_token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            RunError::Usage("API_TOKEN contains characters not allowed in a header".into())
        })?;
        headers.insert(http::header::AUTHORIZATION, value);
    }
    if let Some(key) = &plan.api_key {
        let value = HeaderValue::from_str(key).map_err(|_| {
            RunError::Usage("API_KEY contains characters not allowed in a header".into())
        })?;
        headers.insert("x-api-key", value);
    }
    let tls = if target.scheme == "https" {
        let tls = crate::client::tls_config(plan.insecure, plan.ca_cert.as_deref());
        Some(Arc::new(tls.map_err(RunError::Usage)?))
    } else {
        None
    };
    let env = Arc::new(RunEnv {
        client: ClientConfig {
            target: target.clone(),
            default_headers: Arc::new(headers),
            timeout: plan.request_timeout,
            tls,
        },
        config_values: plan.config_values.clone().into_iter().collect(),
        data,
        seed: plan.seed,
        cpu_budget: plan.cpu_budget,
        memory_cap: plan.memory_cap,
        trace: plan.trace,
    });
    let plugins = set.plugins.clone();
    let options = EngineOptions {
        users: plan.users,
        spawn_rate: plan.spawn_rate,
        stages: plan.stages.clone(),
        run_time: plan.run_time,
        iterations: plan.iterations,
        stop_timeout: plan.stop_timeout,
        seed: plan.seed,
        reset_stats: plan.reset_stats,
        workers: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    let outcome = engine::run(
        Arc::new(set),
        env,
        classes,
        options,
        stop,
        live,
        &mut on_tick,
    )
    .await;
    drop(demo);

    let seconds = outcome.duration.as_secs_f64();
    let (stats, total) = outcome.stats.endpoint_stats(seconds);
    Ok(RunResult {
        schema: report::SCHEMA.into(),
        meta: RunMeta {
            run_name: plan.run_name.clone(),
            target: target.origin.clone(),
            perfhost_version: env!("CARGO_PKG_VERSION").into(),
            seed: plan.seed,
            start_time: outcome.started,
            end_time: outcome.ended,
            duration_s: seconds,
            interrupted: outcome.interrupted,
        },
        plan: PlanSummary {
            users: plan.users,
            spawn_rate: plan.spawn_rate,
            run_time_s: plan.run_time.map(|d| d.as_secs_f64()),
            iterations: plan.iterations,
            user_classes: plan.user_classes.clone(),
            class_users: outcome.class_users,
            scenario: plan.scenario.as_ref().map(|s| s.name.clone()),
            stages: plan.stages.clone(),
            thresholds: plan.thresholds.clone(),
        },
        plugins,
        stats,
        total,
        failures: outcome.stats.failure_groups(),
        failure_samples: outcome.stats.samples().to_vec(),
        task_errors: outcome.stats.task_error_groups(),
        denied_requests: outcome.stats.all.denied,
        stopped_classes: outcome.stopped_classes,
        history: outcome.stats.history,
        generator: outcome.generator,
    })
}

async fn wait_reachable(target: &Target, is_demo: bool) -> Result<(), RunError> {
    let attempts = if is_demo { 50 } else { 1 };
    let mut last = String::new();
    for _ in 0..attempts {
        match crate::client::probe(target, Duration::from_secs(5)).await {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(RunError::Unreachable {
        target: target.origin.clone(),
        why: last,
    })
}

/// The built-in demo server as a child process; killed and reaped on drop.
pub(crate) struct DemoChild {
    pub child: Child,
    pub url: String,
}

impl DemoChild {
    pub fn start() -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(exe);
        cmd.args(["demo-server", "--bind", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // If perfhost dies without cleaning up (SIGKILL), the kernel ends the child too.
        #[cfg(target_os = "linux")]
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(str::to_string);
        match (read, url) {
            (Ok(_), Some(url)) => Ok(DemoChild { child, url }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("it printed no address (got `{}`)", line.trim()))
            }
        }
    }
}

impl Drop for DemoChild {
    fn drop(&mut self) {
        // SIGTERM first so it shuts down cleanly; then make sure.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CLI entry: returns the exit code.
pub fn main(args: RunArgs) -> u8 {
    if args.scenario.as_deref() == Some("all") {
        return run_all(args);
    }
    let plan = match Plan::resolve(&args, &|k| std::env::var(k).ok()) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::USAGE;
        }
    };
    if args.print_config {
        print!("{}", plan.describe());
        return exit::OK;
    }
    if args.dry_run {
        print!("{}", plan.describe());
        let length = plan.run_time.unwrap_or(Duration::from_secs(60));
        println!(
            "
{}",
            crate::scenario::curve(&plan.shape(), length)
        );
        return exit::OK;
    }
    raise_fd_limit(plan.max_users());
    let runtime = match control_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let stop = StopHandle::default();
    runtime.block_on(async {
        interrupt_on_signal(&stop);
        match run_and_report(&plan, &args, stop).await {
            Ok((_, code)) => code,
            Err(code) => code,
        }
    })
}

/// Runs one plan, prints the summary and writes the reports; returns the result and the exit
/// code it deserves.
async fn run_and_report(
    plan: &Plan,
    args: &RunArgs,
    stop: StopHandle,
) -> Result<(RunResult, u8), u8> {
    let tty = std::io::stderr().is_terminal();
    let (total, users) = (plan.run_time, plan.max_users());
    // Report files of one run share a stem: reports/<run-name>_<YYYYmmdd_HHMMSS>.*
    let stem = std::path::PathBuf::from("reports").join(format!(
        "{}_{}",
        plan.run_name,
        report::timestamp()
    ));
    let csv_prefix = plan
        .csv
        .clone()
        .or_else(|| plan.report_csv.then(|| stem.clone()));
    let html = plan
        .html
        .clone()
        .or_else(|| plan.report_html.then(|| with_suffix(&stem, ".html")));
    // The history CSV is appended while the run goes, so a crash loses nothing.
    let mut history = match &csv_prefix {
        Some(prefix) => match report::HistoryCsvWriter::create(prefix) {
            Ok(writer) => Some(writer),
            Err(err) => {
                eprintln!("error: cannot write {}: {err}", prefix.display());
                return Err(exit::USAGE);
            }
        },
        None => None,
    };
    let result = execute(plan, stop, Arc::new(Live::default()), |point, elapsed| {
        status_line(point, elapsed, total, users, tty);
        if let Some(writer) = history.as_mut() {
            if let Err(err) = writer.append(point) {
                eprintln!("error: cannot write {}: {err}", writer.path().display());
            }
        }
    })
    .await;
    if tty {
        eprintln!();
    }
    let result = match result {
        Ok(result) => result,
        Err(err) => {
            eprintln!("error: {err}");
            return Err(err.exit_code());
        }
    };
    println!("{}", report::summary_table(&result));
    if let Some(hint) = report::wrong_target_hint(&result) {
        eprintln!("{hint}");
    }
    if args.json {
        println!("{}", result.stats_json());
    }
    let outputs = report::ReportOutputs {
        csv_prefix,
        html,
        ..Default::default()
    };
    if outputs.csv_prefix.is_some() || outputs.html.is_some() {
        match report::write_reports(&result, &outputs) {
            Ok(paths) => {
                for path in paths {
                    eprintln!("Report written to {}", path.display());
                }
            }
            Err(err) => eprintln!("error: {err}"),
        }
    }
    let path = args
        .json_file
        .clone()
        .or_else(|| (!args.no_report).then(|| with_suffix(&stem, ".json")));
    if let Some(path) = path {
        match result.write_json(&path) {
            Ok(()) => eprintln!("Result written to {}", path.display()),
            Err(err) => eprintln!("error: cannot write {}: {err}", path.display()),
        }
    }
    let code = if result.meta.interrupted {
        exit::INTERRUPTED
    } else if result.has_failures() {
        exit::TEST_FAILED
    } else {
        exit::OK
    };
    Ok((result, code))
}

/// `--scenario all`: smoke, baseline, stress and burst in order, a pause between, one summary.
fn run_all(args: RunArgs) -> u8 {
    let runtime = match control_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut plans = Vec::new();
    for name in crate::scenario::ALL {
        let scenario_args = RunArgs {
            scenario: Some(name.to_string()),
            json_file: None,
            ..args.clone()
        };
        match Plan::resolve(&scenario_args, &|k| std::env::var(k).ok()) {
            Ok(plan) => plans.push((plan, scenario_args)),
            Err(err) => {
                eprintln!("error: {err}");
                return exit::USAGE;
            }
        }
    }
    if args.dry_run || args.print_config {
        for (plan, _) in &plans {
            println!("== {} ==\n{}", plan.run_name, plan.describe());
        }
        return exit::OK;
    }
    raise_fd_limit(plans.iter().map(|(p, _)| p.max_users()).max().unwrap_or(1));
    let stop = StopHandle::default();
    runtime.block_on(async {
        interrupt_on_signal(&stop);
        let mut rows = Vec::new();
        let mut worst = exit::OK;
        for (i, (plan, scenario_args)) in plans.iter().enumerate() {
            if stop.is_stopping() {
                break;
            }
            if i > 0 {
                eprintln!(
                    "Pausing {} before {}…",
                    crate::config::format_duration(args.pause),
                    plan.run_name
                );
                tokio::select! {
                    _ = tokio::time::sleep(args.pause) => {}
                    _ = stop.stopped() => break,
                }
            }
            eprintln!("== scenario {} ==", plan.run_name);
            // The engine stops its own handle at the end of a run: give each run a fresh one
            // that a signal still reaches.
            let run_stop = StopHandle::default();
            let forward = {
                let (signals, run_stop) = (stop.clone(), run_stop.clone());
                tokio::spawn(async move {
                    signals.stopped().await;
                    run_stop.interrupt();
                })
            };
            let outcome = run_and_report(plan, scenario_args, run_stop).await;
            forward.abort();
            match outcome {
                Ok((result, code)) => {
                    worst = worst.max(code);
                    rows.push((plan.run_name.clone(), Some(result)));
                }
                Err(code) => {
                    worst = worst.max(code);
                    rows.push((plan.run_name.clone(), None));
                }
            }
        }
        println!("Summary of all scenarios");
        println!(
            "{:<10} {:>9} {:>9} {:>9} {:>9}  verdict",
            "scenario", "requests", "failures", "req/s", "p95 ms"
        );
        for (name, result) in rows {
            match result {
                Some(r) => println!(
                    "{:<10} {:>9} {:>9} {:>9.1} {:>9.1}  {}",
                    name,
                    r.total.requests,
                    r.total.failures,
                    r.total.rps,
                    r.total.percentile(95.0),
                    if r.has_failures() { "FAILED" } else { "passed" }
                ),
                None => println!("{name:<10} did not run"),
            }
        }
        if stop.was_interrupted() {
            exit::INTERRUPTED
        } else {
            worst
        }
    })
}

/// `reports/x_1` + `.json` (not `with_extension`: a run name may contain dots).
fn with_suffix(stem: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The runtime of a command's control loop (users run on the engine's own worker threads).
pub(crate) fn control_runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|err| {
            eprintln!("error: cannot start the runtime: {err}");
            exit::USAGE
        })
}

/// Ctrl-C / SIGTERM stop the run as interrupted (results are still written, exit 130).
fn interrupt_on_signal(stop: &StopHandle) {
    let stop = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("\nInterrupted: stopping users and writing results…");
        stop.interrupt();
    });
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

fn status_line(
    point: &crate::stats::HistoryPoint,
    elapsed: Duration,
    total: Option<Duration>,
    users: usize,
    tty: bool,
) {
    let p95 = point
        .percentiles_ms
        .0
        .iter()
        .find(|(l, _)| l == "95")
        .map(|(_, v)| *v)
        .unwrap_or(0.0);
    let bar = match total {
        Some(t) if !t.is_zero() => {
            let done = ((elapsed.as_secs_f64() / t.as_secs_f64()).min(1.0) * 20.0) as usize;
            format!("[{}{}] ", "#".repeat(done), "-".repeat(20 - done))
        }
        _ => String::new(),
    };
    let text = format!(
        "{bar}{:>5.0}s  users {}/{}  {:>8.1} req/s  failures {:>6.1}/s  p95 {:>7.1} ms",
        elapsed.as_secs_f64(),
        point.users,
        users,
        point.rps,
        point.failures_per_s,
        p95
    );
    let mut err = std::io::stderr().lock();
    if tty {
        let _ = write!(err, "\r{text}\x1b[K");
    } else if elapsed.as_secs().is_multiple_of(10) {
        let _ = writeln!(err, "{text}");
    }
    let _ = err.flush();
}

/// Raises the open-files limit to cover one connection per user (plus slack).
pub(crate) fn raise_fd_limit(users: usize) {
    let needed = (users as u64) * 2 + 256;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < needed {
            limit.rlim_cur = needed.min(limit.rlim_max);
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    if limit.rlim_cur < needed {
        eprintln!(
            "warning: the open-files limit ({}) is below what {users} users need ({needed}): raise it with `ulimit -n {needed}`",
            limit.rlim_cur
        );
    }
}
