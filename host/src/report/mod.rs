//! The run's result (the canonical JSON artefact) and the console output rendered from it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::monitor::{GeneratorHealth, MemoryProfile};
use crate::plan::{Plan, Stage, Threshold};
use crate::plugin::PluginInfo;
use crate::stats::{
    EndpointStats, FailureGroup, FailureSample, HistoryPoint, Percentile, TaskErrorGroup,
    ThresholdResult,
};

pub mod bench;
pub mod charts;
pub mod compare;
pub mod csv;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod locust_api;
pub mod markdown;
pub mod merge;
pub(crate) mod output;
pub mod prometheus;

pub use csv::{CsvPaths, HistoryCsvWriter};
pub use output::{load_result, parse_result, write_reports, ReportError, ReportOutputs, Written};

/// Version of the JSON result schema (`docs/result.schema.json`).
pub const SCHEMA: &str = "perfhost-result/1";

/// Run metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMeta {
    pub run_name: String,
    pub target: String,
    pub perfhost_version: String,
    pub seed: u64,
    pub start_time: f64,
    pub end_time: f64,
    pub duration_s: f64,
    pub interrupted: bool,
    /// The threshold (as written) that stopped the run early (`abort-on-fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_by: Option<String>,
    /// This result is one shard of a run (`--shard`), for `perfhost merge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardMeta>,
    /// This result is `perfhost merge` of this many shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_shards: Option<usize>,
}

/// Which shard a result is, of how many, and of which plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub index: usize,
    pub count: usize,
    /// `runner::plan_hash`: equal for every shard of one plan.
    pub plan_hash: String,
}

/// The plan as it ran (no secrets).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanSummary {
    pub users: usize,
    pub spawn_rate: f64,
    pub run_time_s: Option<f64>,
    pub iterations: Option<u64>,
    pub user_classes: Vec<String>,
    pub class_users: BTreeMap<String, usize>,
    /// The scenario the plan came from, if any.
    #[serde(default)]
    pub scenario: Option<String>,
    /// The load shape's stages (users, duration in seconds).
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// Thresholds declared by the scenario.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
}

impl PlanSummary {
    /// What the result says of `plan`; `class_users` is how many users each class got.
    pub fn new(plan: &Plan, class_users: BTreeMap<String, usize>) -> Self {
        PlanSummary {
            users: plan.max_users(),
            spawn_rate: plan.load.spawn_rate(),
            run_time_s: plan.stop.run_time.map(|d| d.as_secs_f64()),
            iterations: plan.stop.iterations,
            user_classes: plan.classes.only.clone(),
            class_users,
            scenario: plan.scenario.as_ref().map(|s| s.name.clone()),
            stages: plan.load.stages.clone(),
            thresholds: plan.thresholds.clone(),
        }
    }
}

/// The canonical result of a run: every other report renders from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub schema: String,
    pub meta: RunMeta,
    pub plan: PlanSummary,
    #[serde(deserialize_with = "output::capped::listed")]
    pub plugins: Vec<PluginInfo>,
    #[serde(deserialize_with = "output::capped::rows")]
    pub stats: Vec<EndpointStats>,
    pub total: EndpointStats,
    #[serde(deserialize_with = "output::capped::listed")]
    pub failures: Vec<FailureGroup>,
    #[serde(deserialize_with = "output::capped::listed")]
    pub failure_samples: Vec<FailureSample>,
    #[serde(deserialize_with = "output::capped::listed")]
    pub task_errors: Vec<TaskErrorGroup>,
    /// Requests the sandbox refused because they left the target origin.
    pub denied_requests: u64,
    /// Classes stopped because their users kept trapping.
    #[serde(deserialize_with = "output::capped::listed")]
    pub stopped_classes: Vec<String>,
    #[serde(deserialize_with = "output::capped::history")]
    pub history: Vec<HistoryPoint>,
    pub generator: GeneratorHealth,
    /// Every request of each user class (one row per class: `name` is the class).
    #[serde(default, deserialize_with = "output::capped::classes")]
    pub classes: Vec<EndpointStats>,
    /// Each threshold's verdict, measured value and margin.
    #[serde(default, deserialize_with = "output::capped::listed")]
    pub thresholds: Vec<ThresholdResult>,
    /// The target's memory during the run (`--profile`; on by default for the built-in
    /// target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryProfile>,
    /// The open model's arrivals: scheduled, completed, failed, dropped, cancelled, and the
    /// dispatcher's lag (`--rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<crate::arrivals::ArrivalReport>,
}

impl RunResult {
    /// True when the run should exit 1: a failed request or a task error.
    pub fn has_failures(&self) -> bool {
        self.total.failures > 0 || !self.task_errors.is_empty() || !self.stopped_classes.is_empty()
    }

    /// The test verdict. With thresholds they decide (a 0.5% failure rate passes
    /// `failure-rate < 1%`), and a class stopped for trapping still fails; without, any failed
    /// request or task error fails the run, as in Locust.
    pub fn failed(&self) -> bool {
        if self.thresholds.is_empty() {
            self.has_failures()
        } else {
            self.thresholds.iter().any(|t| !t.passed) || !self.stopped_classes.is_empty()
        }
    }

    /// Writes the JSON result to `path` whole or not at all (temp file, fsync, rename): a
    /// collector polling the folder never reads half a result.
    pub fn write_json(&self, path: &Path) -> Result<(), crate::outfile::WriteError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| crate::outfile::WriteError::new(path, std::io::Error::other(e)))?;
        crate::outfile::write(path, text.as_bytes())
    }

    /// The stats part printed by `--json` (as Locust's `--json`: a list of rows).
    pub fn stats_json(&self) -> String {
        #[derive(Serialize)]
        struct Row<'a> {
            method: &'a str,
            name: &'a str,
            num_requests: u64,
            num_failures: u64,
            min_response_time: f64,
            max_response_time: f64,
            avg_response_time: f64,
            median_response_time: f64,
            p95_response_time: f64,
            p99_response_time: f64,
            avg_content_length: f64,
            rps: f64,
        }
        let rows: Vec<Row> = self
            .stats
            .iter()
            .map(|s| Row {
                method: &s.method,
                name: &s.name,
                num_requests: s.requests,
                num_failures: s.failures,
                min_response_time: s.min_ms,
                max_response_time: s.max_ms,
                avg_response_time: s.avg_ms,
                median_response_time: s.median_ms,
                p95_response_time: s.percentile(Percentile::P95),
                p99_response_time: s.percentile(Percentile::P99),
                avg_content_length: s.avg_content_bytes,
                rps: s.rps,
            })
            .collect();
        serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
    }
}

/// Local-time-free UTC timestamp `YYYYmmdd_HHMMSS`.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86400, secs % 86400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}_{:02}{:02}{:02}",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

pub(crate) use crate::plan::civil_from_days;

/// The end-of-run table, like Locust's.
/// The built-in behaviours speak the Auditor API. When every request they sent failed with
/// "no such endpoint" statuses, the target is most likely another service: say what to use.
pub fn wrong_target_hint(result: &RunResult) -> Option<String> {
    let auditor_builtins = ["auditor_user", "burst_user", "heavy_user"];
    let only_builtins = !result.plugins.is_empty()
        && result
            .plugins
            .iter()
            .all(|p| p.source == "built-in" && auditor_builtins.contains(&p.name.as_str()));
    let not_found = |error: &str| ["HTTP 404", "HTTP 405", "HTTP 501"].contains(&error);
    let all_failed = result.total.requests > 0 && result.total.failures == result.total.requests;
    (only_builtins && all_failed && result.failures.iter().all(|f| not_found(&f.error))).then(|| {
        format!(
            "hint: every request failed with 404/405/501 — the built-in behaviours speak the JuraGPT Auditor API (/health, /verify); for another service use `--plugin http_get --config-value path=/some/path` or a plugin of your own (docs/plugins.md). Target: {}",
            result.meta.target
        )
    })
}

/// A percentile table of the console summary: one row per (row, its percentiles).
fn percentile_table<'a>(
    out: &mut String,
    title: &str,
    rows: impl Iterator<Item = (&'a EndpointStats, &'a crate::stats::Percentiles)>,
) {
    let _ = writeln!(out, "{title}");
    let _ = write!(out, "{:<8} {:<32}", "Type", "Name");
    for p in Percentile::ALL {
        let _ = write!(out, " {:>7}", format!("{}%", p.label()));
    }
    let _ = writeln!(out, " {:>8}", "# reqs");
    for (s, percentiles) in rows {
        let _ = write!(out, "{:<8} {:<32}", s.method, truncate(&s.name, 32));
        for (_, v) in percentiles.iter() {
            let _ = write!(out, " {:>7.1}", v);
        }
        let _ = writeln!(out, " {:>8}", s.requests);
    }
}

pub fn summary_table(result: &RunResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<32} {:>8} {:>12} | {:>7} {:>7} {:>7} {:>7} | {:>8} {:>9}",
        "Type", "Name", "# reqs", "# fails", "Avg", "Min", "Max", "Med", "req/s", "failures/s"
    );
    let line = "-".repeat(118);
    let _ = writeln!(out, "{line}");
    let row = |out: &mut String, s: &EndpointStats| {
        let pct = if s.requests > 0 {
            s.failures as f64 * 100.0 / s.requests as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{:<8} {:<32} {:>8} {:>5}({:>5.2}%) | {:>7.1} {:>7.1} {:>7.1} {:>7.1} | {:>8.2} {:>9.2}",
            s.method,
            truncate(&s.name, 32),
            s.requests,
            s.failures,
            pct,
            s.avg_ms,
            s.min_ms,
            s.max_ms,
            s.median_ms,
            s.rps,
            s.failures_per_s
        );
    };
    for s in &result.stats {
        row(&mut out, s);
    }
    let _ = writeln!(out, "{line}");
    row(&mut out, &result.total);
    let _ = writeln!(out);
    let rows = || result.stats.iter().chain(std::iter::once(&result.total));
    percentile_table(
        &mut out,
        "Response time percentiles (ms)",
        rows().map(|s| (s, &s.percentiles_ms)),
    );
    if result.total.corrected.is_some() {
        percentile_table(
            &mut out,
            "\nResponse time from the intended start (ms, coordinated-omission corrected)",
            rows().filter_map(|s| s.corrected.as_ref().map(|c| (s, &c.percentiles_ms))),
        );
    }
    if let Some(a) = &result.arrivals {
        let _ = writeln!(out, "\n{}", a.accounting(("", "")));
        for line in a.dropped_lines() {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(out, "{}", a.lag_line());
    }
    if !result.failures.is_empty() {
        let _ = writeln!(out, "\nFailures");
        for f in &result.failures {
            let _ = writeln!(
                out,
                "{:>8}  {} {}: {}",
                f.occurrences,
                f.method,
                f.name,
                truncate(&f.error, 120)
            );
        }
    }
    if !result.task_errors.is_empty() {
        let _ = writeln!(out, "\nTask errors");
        for e in &result.task_errors {
            let _ = writeln!(
                out,
                "{:>8}  {}: {}",
                e.occurrences,
                e.location,
                truncate(&e.message, 120)
            );
        }
    }
    for class in &result.stopped_classes {
        let _ = writeln!(out, "\nStopped user class {class}");
    }
    if !result.thresholds.is_empty() {
        let _ = writeln!(out, "\nThresholds");
        for t in &result.thresholds {
            let _ = writeln!(
                out,
                "  {} {}",
                if t.passed { "✓" } else { "✗" },
                t.describe()
            );
        }
        if let Some(text) = &result.meta.aborted_by {
            let _ = writeln!(
                out,
                "  the run was stopped early by `{text}` (abort-on-fail)"
            );
        }
    }
    if result.denied_requests > 0 {
        let _ = writeln!(
            out,
            "\n{} requests denied by the sandbox (outside the target origin)",
            result.denied_requests
        );
    }
    if let Some(memory) = &result.memory {
        if let Some(a) = &memory.analysis {
            let who = format!(
                "the target (pid {}, {})",
                memory.metadata.target.pid, memory.metadata.target.found_by
            );
            let _ = writeln!(out, "\n{}", crate::monitor::leaks::summary_line(a, &who));
        }
    }
    if result.generator.generator_saturated {
        let _ = writeln!(
            out,
            "\nWARNING: perfhost's CPU peaked at {:.0}% of {} cores: the generator may have limited this run",
            result.generator.max_cpu_percent, result.generator.cores
        );
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
