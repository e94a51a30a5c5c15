//! Benchmark suites (`perfhost bench --suite FILE`): fixed request counts at fixed concurrency,
//! case by case, with the grading tables a team reads its results against. The Auditor
//! suite's `benchmark.py` is the built-in default (`scenarios/suites/auditor.toml`). Strict
//! parsing with `file:line: field` errors, as scenario files.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::settings::scenario::toml_error;
use perfhost_core::plan::FieldError;

/// The built-in suite: benchmark.py's seven cases and its README's tables.
pub const DEFAULT: &str = include_str!("../../../scenarios/suites/auditor.toml");
/// How the built-in suite is named in errors and results.
pub const DEFAULT_SOURCE: &str = "scenarios/suites/auditor.toml (built-in)";

/// One case: `requests` requests (plus `warmup` not counted) by `concurrency` users, each
/// sending its next request as soon as its last one completed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    /// Joins baselines (`perfhost compare`): keep it stable.
    pub name: String,
    pub description: String,
    pub requests: u64,
    pub concurrency: usize,
    pub warmup: u64,
    /// A built-in name or a `.wasm` path.
    pub plugin: String,
    /// The task to run (all of the class's tasks by weight when `None`).
    pub task: Option<String>,
    /// Values for the plugin (`ctx.config`).
    pub config: BTreeMap<String, String>,
    /// A kept-alive connection per user (`false`: a new connection per request, as
    /// benchmark.py's `requests.post` without a session).
    pub keepalive: bool,
}

/// "below `target` is target, below `acceptable` acceptable, else poor" (latency, ms).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub target: f64,
    pub acceptable: f64,
}

/// Latency bands by percentile.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyBands {
    pub p50: Option<Band>,
    pub p95: Option<Band>,
    pub p99: Option<Band>,
}

/// Throughput (req/s) at a concurrency: above `target` is target, above `acceptable`
/// acceptable, else poor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThroughputBand {
    pub concurrency: usize,
    pub target: f64,
    pub acceptable: f64,
}

/// The bottleneck indicators' limits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Bottlenecks {
    /// p99 / p50 above this: high variance.
    pub variance: f64,
    pub scaling_from: usize,
    pub scaling_to: usize,
    /// Throughput at `scaling_to` below this × that at `scaling_from`: poor scaling.
    pub scaling_min: f64,
}

impl Default for Bottlenecks {
    fn default() -> Self {
        Bottlenecks {
            variance: 5.0,
            scaling_from: 10,
            scaling_to: 50,
            scaling_min: 1.2,
        }
    }
}

/// What a suite's results are graded against.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grading {
    #[serde(default)]
    pub latency: LatencyBands,
    #[serde(default)]
    pub throughput: Vec<ThroughputBand>,
    #[serde(default)]
    pub bottlenecks: Bottlenecks,
}

/// A parsed, validated suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    pub description: String,
    /// A path, or `scenarios/suites/auditor.toml (built-in)`.
    pub source: String,
    /// Path of the health gate (`GET`, must answer 2xx); `None`: no gate.
    pub health: Option<String>,
    pub cases: Vec<Case>,
    pub grading: Grading,
    /// Line of each case's `plugin` / `task` (errors found once plugins are loaded).
    pub case_lines: Vec<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SuiteFile {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    plugin: Option<String>,
    task: Option<String>,
    #[serde(default = "default_health")]
    health: String,
    keepalive: Option<bool>,
    warmup: Option<u64>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    case: Vec<Spanned<CaseFile>>,
    #[serde(default)]
    grading: Grading,
}

fn default_health() -> String {
    "/health".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    name: String,
    #[serde(default)]
    description: String,
    requests: Spanned<i64>,
    concurrency: Spanned<i64>,
    warmup: Option<u64>,
    plugin: Option<String>,
    task: Option<String>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    keepalive: Option<bool>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The most warm-up requests a case may send before it is measured.
pub const MAX_WARMUP: u64 = 100_000;

/// Loads the suite at `path`, or the built-in one.
pub fn load(path: Option<&Path>) -> Result<Suite, FieldError> {
    match path {
        None => parse(DEFAULT_SOURCE, DEFAULT),
        Some(path) => {
            let file = path.display().to_string();
            let text =
                perfhost_core::input::read_to_string(path, perfhost_core::input::Kind::Suite)
                    .map_err(|e| FieldError {
                        file: file.clone(),
                        line: None,
                        field: "-".into(),
                        message: e.to_string(),
                    })?;
            parse(&file, &text)
        }
    }
}

/// Parses and validates suite text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Suite, FieldError> {
    let raw: SuiteFile = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
    let err = |offset: usize, field: &str, message: String| FieldError {
        file: file.to_string(),
        line: Some(line_of(text, offset)),
        field: field.to_string(),
        message,
    };
    if raw.case.is_empty() {
        return Err(FieldError {
            file: file.to_string(),
            line: None,
            field: "case".into(),
            message: "the suite has no [[case]] — add at least one".into(),
        });
    }
    let mut cases = Vec::new();
    let mut case_lines = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for spanned in &raw.case {
        let at = spanned.span().start;
        let c = spanned.get_ref();
        if c.name.trim().is_empty() {
            return Err(err(at, "case.name", "give every case a name".into()));
        }
        if !names.insert(c.name.clone()) {
            return Err(err(
                at,
                "case.name",
                format!(
                    "`{}` is used twice: baselines are joined on case names",
                    c.name
                ),
            ));
        }
        let requests = *c.requests.get_ref();
        if requests < 1 {
            return Err(err(
                c.requests.span().start,
                "case.requests",
                format!("{requests} — at least 1"),
            ));
        }
        let concurrency = *c.concurrency.get_ref();
        if concurrency < 1 {
            return Err(err(
                c.concurrency.span().start,
                "case.concurrency",
                format!("{concurrency} — at least 1"),
            ));
        }
        if concurrency > requests {
            return Err(err(
                c.concurrency.span().start,
                "case.concurrency",
                format!("{concurrency} users for {requests} requests — concurrency cannot exceed requests"),
            ));
        }
        let Some(plugin) = c.plugin.clone().or(raw.plugin.clone()) else {
            return Err(err(
                at,
                "case.plugin",
                "no plugin: set `plugin` on the case or the suite".into(),
            ));
        };
        let warmup = c.warmup.or(raw.warmup).unwrap_or(0);
        if warmup > MAX_WARMUP {
            return Err(err(
                at,
                "case.warmup",
                format!("{warmup} warm-up requests — at most {MAX_WARMUP} (a warm-up fills connection pools and caches; measure long runs with `requests`)"),
            ));
        }
        let mut config = raw.config.clone();
        config.extend(c.config.clone());
        cases.push(Case {
            name: c.name.clone(),
            description: c.description.clone(),
            requests: requests as u64,
            concurrency: concurrency as usize,
            warmup,
            plugin,
            task: c.task.clone().or(raw.task.clone()),
            config,
            keepalive: c.keepalive.or(raw.keepalive).unwrap_or(true),
        });
        case_lines.push(line_of(text, at));
    }
    let g = &raw.grading;
    for band in [g.latency.p50, g.latency.p95, g.latency.p99]
        .into_iter()
        .flatten()
    {
        if !(band.target > 0.0 && band.acceptable >= band.target) {
            return Err(FieldError {
                file: file.to_string(),
                line: None,
                field: "grading.latency".into(),
                message: format!(
                    "target {} ms must be > 0 and at most acceptable {} ms",
                    band.target, band.acceptable
                ),
            });
        }
    }
    for band in &g.throughput {
        if !(band.acceptable > 0.0 && band.target >= band.acceptable) {
            return Err(FieldError {
                file: file.to_string(),
                line: None,
                field: "grading.throughput".into(),
                message: format!(
                    "at concurrency {}: target {} req/s must be at least acceptable {} req/s > 0",
                    band.concurrency, band.target, band.acceptable
                ),
            });
        }
    }
    let health = raw.health.trim().to_string();
    Ok(Suite {
        name: raw.name.get_ref().trim().to_string(),
        description: raw.description.trim().to_string(),
        source: file.to_string(),
        health: (!health.is_empty()).then_some(health),
        cases,
        grading: raw.grading,
        case_lines,
    })
}

impl Suite {
    /// Keeps the suite's cases but sets one plugin for all of them (`perfhost bench --plugin`).
    pub fn with_plugin(mut self, plugin: &str) -> Self {
        for case in &mut self.cases {
            case.plugin = plugin.to_string();
            case.task = None;
        }
        self
    }

    /// Every case with a new connection per request (`--no-keepalive`).
    pub fn without_keepalive(mut self) -> Self {
        for case in &mut self.cases {
            case.keepalive = false;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_suite_is_benchmark_py() {
        let s = parse(DEFAULT_SOURCE, DEFAULT).unwrap();
        let table: Vec<(&str, u64, usize, &str)> = s
            .cases
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.requests,
                    c.concurrency,
                    c.config["num_sources"].as_str(),
                )
            })
            .collect();
        assert_eq!(
            table,
            [
                ("Single Request Latency", 50, 1, "3"),
                ("Sequential Throughput", 100, 1, "3"),
                ("Low Concurrency (10 threads)", 100, 10, "3"),
                ("Medium Concurrency (25 threads)", 100, 25, "3"),
                ("High Concurrency (50 threads)", 100, 50, "3"),
                ("Few Sources (1 source)", 100, 10, "1"),
                ("Many Sources (all sources)", 50, 10, "all"),
            ]
        );
        assert!(s
            .cases
            .iter()
            .all(|c| c.plugin == "auditor_benchmark" && c.keepalive));
        assert_eq!(s.health.as_deref(), Some("/health"));
        assert_eq!(
            s.grading.latency.p95,
            Some(Band {
                target: 500.0,
                acceptable: 1000.0
            })
        );
        assert_eq!(s.grading.throughput.len(), 3);
    }

    #[test]
    fn malformed_suites_name_file_line_and_field() {
        let e = |t: &str| parse("s.toml", t).unwrap_err().to_string();
        assert!(e("name = \"s\"\n").contains("no [[case]]"));
        assert!(e("name = \"s\"\nplugin = \"http_get\"\n[[case]]\nname = \"a\"\nrequests = 0\nconcurrency = 1\n").starts_with("s.toml:5: field `case.requests`"));
        assert!(e("name = \"s\"\nplugin = \"http_get\"\n[[case]]\nname = \"a\"\nrequests = 5\nconcurrency = 9\n").starts_with("s.toml:6: field `case.concurrency`"));
        assert!(
            e("name = \"s\"\n[[case]]\nname = \"a\"\nrequests = 5\nconcurrency = 1\n")
                .contains("no plugin")
        );
        assert!(e("name = \"s\"\nplugin = \"x\"\n[[case]]\nname = \"a\"\nrequests = 5\nconcurrency = 1\nthreads = 3\n").starts_with("s.toml:7: field `threads`"));
    }
}
