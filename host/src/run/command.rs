//! `perfhost run`: resolve the plan, run it (`perfhost::run`), print the summary and write the
//! reports.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exit;
use crate::failure::{Failure, Lost};
use crate::process::{control_runtime, forward_signals, interrupt_on_signal, raise_fd_limit};
use crate::report;
use crate::run::Steering;
use crate::settings::{self, RunArgs};
use perfhost_core::engine::StopHandle;
use perfhost_core::plan::{format_duration, Plan};
use perfhost_core::result::RunResult;
use perfhost_core::stats::{HistoryPoint, Percentile};

/// The CLI entry: the run's verdict, or why it could not run or lost an output.
pub fn main(args: RunArgs) -> Result<u8, Failure> {
    if args.scenario.as_deref() == Some("all") {
        return run_all(args);
    }
    let plan = settings::resolve(&args, &|k| std::env::var(k).ok())?;
    crate::logging::set_level(&plan.log_level);
    if args.print_config {
        crate::out!("{}", settings::describe(&plan));
        return Ok(exit::OK);
    }
    if args.dry_run {
        // A dry run checks what the real run would: memory, plugins, classes and weights.
        dry_check(&plan)?;
        crate::out!("{}", settings::describe(&plan));
        let length = plan
            .stop
            .run_time
            .unwrap_or(plan.load.duration().max(Duration::from_secs(60)));
        match &plan.arrivals {
            Some(open) => {
                crate::outln!("\n{}", crate::settings::scenario::rate_curve(open, length))
            }
            None => crate::outln!("\n{}", crate::settings::scenario::curve(&plan.load, length)),
        }
        return Ok(exit::OK);
    }
    perfhost_core::run::check_memory(&plan).map_err(crate::RunError::from)?;
    raise_fd_limit(plan.max_users());
    let runtime = control_runtime()?;
    let stop = StopHandle::default();
    runtime.block_on(async {
        interrupt_on_signal(&stop);
        let (_, verdict) = run_and_report(&plan, stop, Steering::default()).await?;
        verdict
    })
}

/// What `--dry-run` checks before printing the plan: what the run checks before it starts.
fn dry_check(plan: &Plan) -> Result<(), crate::RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| perfhost_core::plugin::PluginError::Engine(e.to_string()))
        .map_err(perfhost_core::run::RunError::from)?;
    runtime.block_on(perfhost_core::run::check(plan))?;
    Ok(())
}

/// Runs one plan, prints the summary and writes the reports; returns the result and the
/// verdict it deserves (or, when an output was lost, the failure naming each one), or why the
/// run could not start.
pub(crate) async fn run_and_report(
    plan: &Plan,
    stop: StopHandle,
    steering: Steering,
) -> Result<(RunResult, Result<u8, Failure>), Failure> {
    let tty = std::io::stderr().is_terminal();
    let (total, users) = (plan.stop.run_time, plan.max_users());
    let out = &plan.outputs;
    // Report files of one run share a stem: reports/<run-name>_<YYYYmmdd_HHMMSS>.*, claimed
    // for this run (a second run of the name in the same second gets `…-2`). Held until the
    // reports are written.
    let default_files = (out.scenario_csv && out.csv.is_none())
        || (out.scenario_html && out.html.is_none())
        || (out.json_file.is_none() && !out.no_report);
    let claim = if default_files {
        let base = format!("{}_{}", out.report_name, report::timestamp());
        let claim = perfhost_core::outfile::claim_stem(Path::new("reports"), &base)
            .map_err(|err| Failure::of(exit::USAGE, &err))?;
        Some(claim)
    } else {
        None
    };
    let stem = claim
        .as_ref()
        .map_or_else(|| PathBuf::from("reports").join("run"), |c| c.stem.clone());
    let csv_prefix = out
        .csv
        .clone()
        .or_else(|| out.scenario_csv.then(|| stem.clone()));
    let html = out
        .html
        .clone()
        .or_else(|| out.scenario_html.then(|| with_suffix(&stem, ".html")));
    // The history CSV is appended while the run goes, so a crash loses nothing.
    let mut history = match &csv_prefix {
        Some(prefix) => match report::HistoryCsvWriter::create(prefix, out.csv_full_history) {
            Ok(writer) => Some(writer),
            Err(err) => {
                return Err(Failure::usage(format_args!(
                    "cannot write {}: {err}",
                    prefix.display()
                ))
                .because(&err));
            }
        },
        None => None,
    };
    let mut history_failed = false;
    let result = crate::run::run_steered(plan, stop, steering, |point, elapsed| {
        if !out.only_summary {
            status_line(point, elapsed, total, users, tty);
        }
        if out.print_stats && elapsed.as_secs() > 0 && elapsed.as_secs().is_multiple_of(10) {
            print_stats(point, elapsed);
        }
        if let Some(writer) = history.as_mut().filter(|_| !history_failed) {
            if let Err(err) = writer.append(point) {
                // Once: the whole file is written again at the end (and fails loudly there).
                history_failed = true;
                crate::errln!(
                    "warning: cannot append to {}: {err} — it is written again when the run ends",
                    writer.path().display()
                );
            }
        }
    })
    .await;
    if tty && !out.only_summary {
        crate::errln!();
    }
    let result = match result {
        Ok(result) => result,
        Err(err) => {
            // Nothing ran (a RunError comes before the first request): no empty history file.
            if let Some(writer) = history {
                let _ = std::fs::remove_file(writer.path());
            }
            return Err(err.into());
        }
    };
    crate::outln!("{}", report::summary_table(&result));

    if let Some(hint) = report::wrong_target_hint(&result) {
        crate::errln!("{hint}");
    }
    if out.json {
        crate::outln!("{}", result.stats_json());
    }
    let outputs = report::ReportOutputs {
        csv_prefix,
        csv_full_history: out.csv_full_history,
        html: html.clone(),
        junit: out.junit.clone(),
        ..Default::default()
    };
    // Every output is written that can be; each one lost is named, and the run exits 6.
    let mut lost = Lost::default();
    let mut html_written = false;
    if !outputs.is_empty() {
        let written = report::write_reports(&result, &outputs);
        written.announce("Report written to", &mut lost);
        html_written = html.as_ref().is_some_and(|h| written.wrote(h));
    }
    let path = out
        .json_file
        .clone()
        .or_else(|| (!out.no_report).then(|| with_suffix(&stem, ".json")));
    if let Some(path) = path {
        match result.write_json(&path) {
            Ok(()) => crate::errln!("Result written to {}", path.display()),
            Err(err) => lost.add(&err),
        }
    }
    if let Some(path) = &out.hlog {
        match report::hlog::write(&result, path) {
            Ok(()) => crate::errln!("Interval log written to {}", path.display()),
            Err(err) => lost.add(&err),
        }
    }
    drop(claim);
    if let Some(html) = html.filter(|_| html_written) {
        // As scenarios.sh ended: where to look.
        crate::errln!("Report: {}", html.display());
    }
    let mut code = exit_code(&result, out.exit_code_on_error);
    // A shard's own verdict is not the run's: a scheduler that fails a Job or an array on it
    // would judge each part alone. `perfhost merge` judges the whole.
    if let Some(shard) = plan.shard.filter(|s| s.count > 1) {
        if code == exit::TEST_FAILED || (code == out.exit_code_on_error && result.failed()) {
            crate::errln!(
                "Shard {}/{}: its own numbers fail; the run is judged on the merged result (perfhost merge), so this shard exits 0",
                shard.index,
                shard.count
            );
            code = exit::OK;
        }
    }
    Ok((result, lost.or_verdict(code)))
}

/// The exit code a result deserves, by the README's precedence: interrupted (130), then the
/// test verdict (thresholds when there are any, else the failure rule with
/// `--exit-code-on-error`), then a leak warning (4).
pub fn exit_code(result: &RunResult, on_error: u8) -> u8 {
    if result.meta.interrupted {
        exit::INTERRUPTED
    } else if result.failed() {
        if result.thresholds.is_empty() {
            on_error
        } else {
            exit::TEST_FAILED
        }
    } else if leak_warning(result) {
        exit::LEAK
    } else {
        exit::OK
    }
}

/// `--print-stats`: the last interval's rows, every 10 s.
fn print_stats(point: &HistoryPoint, elapsed: Duration) {
    crate::outln!(
        "\n{:<8} {:<40} {:>8} {:>8} {:>9} {:>9}   at {:.0}s, {} users",
        "Type",
        "Name",
        "reqs/s",
        "fails/s",
        "p50 ms",
        "p95 ms",
        elapsed.as_secs_f64(),
        point.users
    );
    let seconds = if point.rps > 0.0 {
        point.requests as f64 / point.rps
    } else {
        1.0
    };
    for e in &point.endpoints {
        crate::outln!(
            "{:<8} {:<40} {:>8.1} {:>8.1} {:>9.1} {:>9.1}",
            e.method,
            e.name.chars().take(40).collect::<String>(),
            e.requests as f64 / seconds,
            e.failures as f64 / seconds,
            e.percentiles_ms.get(Percentile::P50),
            e.percentiles_ms.get(Percentile::P95)
        );
    }
    crate::outln!(
        "{:<8} {:<40} {:>8.1} {:>8.1} {:>9.1} {:>9.1}",
        "",
        "Aggregated",
        point.rps,
        point.failures_per_s,
        point.percentiles_ms.get(Percentile::P50),
        point.percentiles_ms.get(Percentile::P95)
    );
}

/// A leak warning from a profile that was asked for (`--profile*`): exit 4.
fn leak_warning(result: &RunResult) -> bool {
    result.memory.as_ref().is_some_and(|m| {
        m.metadata.explicit && m.analysis.as_ref().is_some_and(|a| a.verdict.is_warning())
    })
}

/// `--scenario all`: smoke, baseline, stress and burst in order, a pause between, one summary.
/// A scenario that fails does not stop the next: the failures are named together at the end,
/// with the worst code of all.
fn run_all(args: RunArgs) -> Result<u8, Failure> {
    let runtime = control_runtime()?;
    let mut plans = Vec::new();
    for name in crate::settings::scenario::ALL {
        let scenario_args = RunArgs {
            scenario: Some(name.to_string()),
            json_file: None,
            ..args.clone()
        };
        plans.push(settings::resolve(&scenario_args, &|k| {
            std::env::var(k).ok()
        })?);
    }
    if let Some(plan) = plans.first() {
        crate::logging::set_level(&plan.log_level);
    }
    if args.dry_run || args.print_config {
        for plan in &plans {
            crate::outln!(
                "== {} ==\n{}",
                plan.outputs.run_name,
                settings::describe(plan)
            );
        }
        return Ok(exit::OK);
    }
    raise_fd_limit(plans.iter().map(Plan::max_users).max().unwrap_or(1));
    let stop = StopHandle::default();
    runtime.block_on(async {
        interrupt_on_signal(&stop);
        let mut rows = Vec::new();
        let mut worst = exit::OK;
        let mut failed: Option<Failure> = None;
        for (i, plan) in plans.iter().enumerate() {
            if stop.is_stopping() {
                break;
            }
            if i > 0 {
                crate::errln!(
                    "Pausing {} before {}…",
                    format_duration(args.pause),
                    plan.outputs.run_name
                );
                tokio::select! {
                    _ = tokio::time::sleep(args.pause) => {}
                    _ = stop.stopped() => break,
                }
            }
            crate::errln!("== scenario {} ==", plan.outputs.run_name);
            // The engine stops its own handle at the end of a run: give each run a fresh one
            // that a signal still reaches.
            let run_stop = StopHandle::default();
            let forward = forward_signals(&stop, &run_stop);
            let outcome = run_and_report(plan, run_stop, Steering::default()).await;
            forward.abort();
            let (result, verdict) = match outcome {
                Ok((result, verdict)) => (Some(result), verdict),
                Err(failure) => (None, Err(failure)),
            };
            rows.push((plan.outputs.run_name.clone(), result));
            match verdict {
                Ok(code) => worst = worst.max(code),
                Err(failure) => {
                    worst = worst.max(failure.code());
                    failed = Some(match failed {
                        Some(earlier) => earlier.and(failure),
                        None => failure,
                    });
                }
            }
        }
        crate::outln!("Summary of all scenarios");
        crate::outln!(
            "{:<10} {:>9} {:>9} {:>9} {:>9}  verdict",
            "scenario",
            "requests",
            "failures",
            "req/s",
            "p95 ms"
        );
        for (name, result) in rows {
            match result {
                Some(r) => crate::outln!(
                    "{:<10} {:>9} {:>9} {:>9.1} {:>9.1}  {}",
                    name,
                    r.total.requests,
                    r.total.failures,
                    r.total.rps,
                    r.total.percentile(Percentile::P95),
                    if r.failed() { "FAILED" } else { "passed" }
                ),
                None => crate::outln!("{name:<10} did not run"),
            }
        }
        let code = if stop.was_interrupted() {
            exit::INTERRUPTED
        } else {
            worst
        };
        match failed {
            Some(failure) => Err(failure.with_code(code)),
            None => Ok(code),
        }
    })
}

/// `reports/x_1` + `.json` (not `with_extension`: a run name may contain dots).
fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

fn status_line(
    point: &HistoryPoint,
    elapsed: Duration,
    total: Option<Duration>,
    users: usize,
    tty: bool,
) {
    let p95 = point.percentiles_ms.get(Percentile::P95);
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
