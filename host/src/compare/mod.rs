//! `perfhost compare BASELINE CURRENT`: two results side by side — runs, benchmark suites, or
//! the Auditor suite's old benchmark.py files — per endpoint or case: p50, p95, p99,
//! throughput and failure ratio with their deltas and a verdict. Noise-aware: a latency
//! counts as regressed only beyond both the allowance and an absolute floor, and a
//! percentile only with enough requests behind it.

pub mod command;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bench::report::{BenchResult, BENCH_SCHEMA};
use crate::report::junit::{self, TestCase};
use crate::report::markdown::md_escape;
use crate::report::parse_result;
use perfhost_core::result::SCHEMA;
use perfhost_core::stats::Percentile;

/// Why a file cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{0}")]
    Read(#[from] perfhost_core::input::InputError),
    #[error("{} is not valid JSON: {message}", path.display())]
    Json { path: PathBuf, message: String },
    #[error("{} is not a perfhost run result, bench result or benchmark.py file: {why}", path.display())]
    Unknown { path: PathBuf, why: String },
    #[error("{0}")]
    Result(#[from] crate::report::ReportError),
}

/// The metrics compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    P50,
    P95,
    P99,
    Rps,
    FailRatio,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::P50,
        Metric::P95,
        Metric::P99,
        Metric::Rps,
        Metric::FailRatio,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::P50 => "p50",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::Rps => "rps",
            Metric::FailRatio => "fail_ratio",
        }
    }

    /// `p95`, `rps`, `failure-rate` … as a user writes them.
    pub fn parse(text: &str) -> Option<Metric> {
        Some(match text.trim() {
            "p50" | "median" => Metric::P50,
            "p95" => Metric::P95,
            "p99" => Metric::P99,
            "rps" | "throughput" => Metric::Rps,
            "fail_ratio" | "failure-rate" | "failures" => Metric::FailRatio,
            _ => return None,
        })
    }

    /// Requests a percentile needs to mean anything: p95 needs 20, p99 100.
    fn min_samples(self) -> u64 {
        match self {
            Metric::P50 => 2,
            Metric::P95 => 20,
            Metric::P99 => 100,
            _ => 1,
        }
    }
}

/// One endpoint's or case's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Row {
    pub requests: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub rps: f64,
    pub fail_ratio: f64,
}

impl Row {
    fn get(&self, m: Metric) -> f64 {
        match m {
            Metric::P50 => self.p50,
            Metric::P95 => self.p95,
            Metric::P99 => self.p99,
            Metric::Rps => self.rps,
            Metric::FailRatio => self.fail_ratio,
        }
    }
}

/// One file's rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub path: String,
    /// `run`, `bench` or `benchmark.py`.
    pub kind: &'static str,
    pub rows: BTreeMap<String, Row>,
}

fn ratio(failed: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        failed as f64 / total as f64
    }
}

/// Reads a run result, a bench result or a benchmark.py file.
pub fn load(path: &Path) -> Result<Side, CompareError> {
    let text = perfhost_core::input::read_to_string(path, perfhost_core::input::Kind::Result)?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| CompareError::Json {
        path: path.to_path_buf(),
        message: perfhost_core::text::clip(&e.to_string(), 160),
    })?;
    let unknown = |why: String| CompareError::Unknown {
        path: path.to_path_buf(),
        why,
    };
    let shown = path.display().to_string();
    match value.get("schema").and_then(|s| s.as_str()) {
        Some(SCHEMA) => {
            let result = parse_result(path, &text)?;
            let mut rows = BTreeMap::new();
            for s in result.stats.iter().chain(std::iter::once(&result.total)) {
                let key = if s.method.is_empty() {
                    s.name.clone()
                } else {
                    format!("{} {}", s.method, s.name)
                };
                rows.insert(
                    key,
                    Row {
                        requests: s.requests,
                        p50: s.percentile(Percentile::P50),
                        p95: s.percentile(Percentile::P95),
                        p99: s.percentile(Percentile::P99),
                        rps: s.rps,
                        fail_ratio: ratio(s.failures, s.requests),
                    },
                );
            }
            Ok(Side {
                path: shown,
                kind: "run",
                rows,
            })
        }
        Some(BENCH_SCHEMA) => {
            let bench: BenchResult = serde_json::from_value(value)
                .map_err(|e| unknown(perfhost_core::text::clip(&e.to_string(), 160)))?;
            let rows = bench
                .results
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        Row {
                            requests: c.total_requests,
                            p50: c.latency_p50_ms,
                            p95: c.latency_p95_ms,
                            p99: c.latency_p99_ms,
                            rps: c.requests_per_second,
                            fail_ratio: ratio(c.failed_requests, c.total_requests),
                        },
                    )
                })
                .collect();
            Ok(Side {
                path: shown,
                kind: "bench",
                rows,
            })
        }
        Some(other) => Err(unknown(format!(
            "its schema is `{}`; compare reads `{SCHEMA}` and `{BENCH_SCHEMA}`",
            perfhost_core::text::clip(other, 40)
        ))),
        None => {
            // benchmark.py: {"metadata": {...}, "results": [{name, total_requests, …}]}.
            let results = value
                .get("results")
                .and_then(|r| r.as_array())
                .ok_or_else(|| {
                    unknown("no \"schema\" and no benchmark.py \"results\" list".into())
                })?;
            let mut rows = BTreeMap::new();
            for r in results {
                let num = |k: &str| r.get(k).and_then(|v| v.as_f64());
                let (Some(name), Some(total), Some(failed)) = (
                    r.get("name").and_then(|n| n.as_str()),
                    num("total_requests"),
                    num("failed_requests"),
                ) else {
                    return Err(unknown(
                        "a benchmark.py result lacks name, total_requests or failed_requests"
                            .into(),
                    ));
                };
                rows.insert(
                    name.to_string(),
                    Row {
                        requests: total as u64,
                        p50: num("latency_p50_ms").unwrap_or(0.0),
                        p95: num("latency_p95_ms").unwrap_or(0.0),
                        p99: num("latency_p99_ms").unwrap_or(0.0),
                        rps: num("requests_per_second").unwrap_or(0.0),
                        fail_ratio: ratio(failed as u64, total as u64),
                    },
                );
            }
            Ok(Side {
                path: shown,
                kind: "benchmark.py",
                rows,
            })
        }
    }
}

/// How the comparison judges.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// A latency or throughput worse by more than this share regresses (0.10 = 10%).
    pub max_regression: f64,
    /// … and a latency only when it is also this many ms worse.
    pub min_delta_ms: f64,
    /// A failure ratio higher by more than this (0.01 = one percentage point) regresses.
    pub max_failure_increase: f64,
    /// Requests a percentile needs on both sides (`None`: p95 20, p99 100).
    pub min_samples: Option<u64>,
    pub metrics: Vec<Metric>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_regression: 0.10,
            min_delta_ms: 1.0,
            max_failure_increase: 0.01,
            min_samples: None,
            metrics: Metric::ALL.to_vec(),
        }
    }
}

/// A metric's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Ok,
    Improved,
    Regressed,
    /// Too few requests behind a percentile on a side.
    TooFewSamples,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Improved => "improved",
            Verdict::Regressed => "REGRESSED",
            Verdict::TooFewSamples => "too few samples",
        }
    }
}

/// One compared metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub row: String,
    pub metric: Metric,
    pub baseline: f64,
    pub current: f64,
    /// (current − baseline) / baseline, when the baseline is not 0.
    pub change: Option<f64>,
    pub verdict: Verdict,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub baseline: String,
    pub current: String,
    pub lines: Vec<Line>,
    /// Rows (endpoints or cases) in one file only.
    pub only_in_baseline: Vec<String>,
    pub only_in_current: Vec<String>,
}

impl Comparison {
    /// Metrics that got a verdict (not "too few samples").
    pub fn judged(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.verdict != Verdict::TooFewSamples)
            .count()
    }

    pub fn regressions(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.verdict == Verdict::Regressed)
            .count()
    }
}

fn judge(m: Metric, base: &Row, cur: &Row, rules: &Rules) -> Verdict {
    let (b, c) = (base.get(m), cur.get(m));
    match m {
        Metric::P50 | Metric::P95 | Metric::P99 => {
            let need = rules.min_samples.unwrap_or_else(|| m.min_samples());
            if base.requests < need || cur.requests < need {
                return Verdict::TooFewSamples;
            }
            if c > b * (1.0 + rules.max_regression) && c - b > rules.min_delta_ms {
                Verdict::Regressed
            } else if c < b * (1.0 - rules.max_regression) && b - c > rules.min_delta_ms {
                Verdict::Improved
            } else {
                Verdict::Ok
            }
        }
        Metric::Rps => {
            if c < b * (1.0 - rules.max_regression) {
                Verdict::Regressed
            } else if c > b * (1.0 + rules.max_regression) {
                Verdict::Improved
            } else {
                Verdict::Ok
            }
        }
        Metric::FailRatio => {
            if c - b > rules.max_failure_increase {
                Verdict::Regressed
            } else if b - c > rules.max_failure_increase {
                Verdict::Improved
            } else {
                Verdict::Ok
            }
        }
    }
}

/// Compares `current` with `baseline`.
pub fn compare(baseline: &Side, current: &Side, rules: &Rules) -> Comparison {
    let mut lines = Vec::new();
    for (key, base) in &baseline.rows {
        let Some(cur) = current.rows.get(key) else {
            continue;
        };
        for &m in &rules.metrics {
            let (b, c) = (base.get(m), cur.get(m));
            lines.push(Line {
                row: key.clone(),
                metric: m,
                baseline: b,
                current: c,
                change: (b != 0.0).then(|| (c - b) / b),
                verdict: judge(m, base, cur, rules),
            });
        }
    }
    Comparison {
        baseline: baseline.path.clone(),
        current: current.path.clone(),
        lines,
        only_in_baseline: baseline
            .rows
            .keys()
            .filter(|k| !current.rows.contains_key(*k))
            .cloned()
            .collect(),
        only_in_current: current
            .rows
            .keys()
            .filter(|k| !baseline.rows.contains_key(*k))
            .cloned()
            .collect(),
    }
}

fn value(m: Metric, v: f64) -> String {
    match m {
        Metric::FailRatio => format!("{:.2}%", v * 100.0),
        Metric::Rps => format!("{v:.2}/s"),
        _ => format!("{v:.1} ms"),
    }
}

fn change(l: &Line) -> String {
    match l.change {
        Some(c) => format!("{:+.1}%", c * 100.0),
        None if l.current == l.baseline => "±0".into(),
        None => "new".into(),
    }
}

/// The console table.
pub fn table(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "baseline: {}\ncurrent:  {}\n", c.baseline, c.current);
    let _ = writeln!(
        out,
        "{:<40} {:<10} {:>12} {:>12} {:>9}  verdict",
        "endpoint / case", "metric", "baseline", "current", "change"
    );
    for l in &c.lines {
        let _ = writeln!(
            out,
            "{:<40} {:<10} {:>12} {:>12} {:>9}  {}",
            l.row.chars().take(40).collect::<String>(),
            l.metric.name(),
            value(l.metric, l.baseline),
            value(l.metric, l.current),
            change(l),
            l.verdict.as_str()
        );
    }
    for k in &c.only_in_baseline {
        let _ = writeln!(out, "only in the baseline: {k}");
    }
    for k in &c.only_in_current {
        let _ = writeln!(out, "only in the current:  {k}");
    }
    let _ = writeln!(
        out,
        "\n{} regression(s) in {} compared metrics",
        c.regressions(),
        c.lines.len()
    );
    out
}

/// The Markdown table, for a pull-request comment.
pub fn markdown(c: &Comparison) -> String {
    let mut out = format!(
        "### perfhost compare — {}\n\n`{}` → `{}`\n\n| endpoint / case | metric | baseline | current | change | verdict |\n|---|---|---:|---:|---:|---|\n",
        if c.regressions() > 0 { "**REGRESSED**" } else { "no regression" },
        md_escape(&c.baseline),
        md_escape(&c.current)
    );
    for l in &c.lines {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            md_escape(&l.row),
            l.metric.name(),
            value(l.metric, l.baseline),
            value(l.metric, l.current),
            change(l),
            if l.verdict == Verdict::Regressed {
                "❌ regressed".to_string()
            } else {
                l.verdict.as_str().to_string()
            }
        );
    }
    for k in &c.only_in_baseline {
        let _ = writeln!(out, "\n- only in the baseline: {}", md_escape(k));
    }
    for k in &c.only_in_current {
        let _ = writeln!(out, "\n- only in the current: {}", md_escape(k));
    }
    out
}

/// JUnit: one test case per compared metric.
pub fn junit(c: &Comparison) -> String {
    let cases: Vec<TestCase> = c
        .lines
        .iter()
        .map(|l| TestCase {
            name: format!("{} {}", l.row, l.metric.name()),
            classname: "compare".into(),
            seconds: 0.0,
            failure: (l.verdict == Verdict::Regressed).then(|| {
                let m = format!(
                    "{} {}: {} → {} ({})",
                    l.row,
                    l.metric.name(),
                    value(l.metric, l.baseline),
                    value(l.metric, l.current),
                    change(l)
                );
                (m.clone(), m)
            }),
        })
        .collect();
    junit::document("perfhost compare", &cases)
}
