//! The result of `perfhost bench` (a benchmark suite) and its renderers: the console summary,
//! Markdown and HTML. The JSON keeps benchmark.py's field names under `results` and
//! `metadata`, so a team's old baselines still read; grading and histograms come on top
//! (schema `docs/bench.schema.json`).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::report::html::{esc, fmt_ms, CSS};
use crate::report::junit::{document, TestCase};
use crate::report::markdown::md_escape;
use perfhost_core::stats::{FailureGroup, Percentiles};

/// Version of the bench result schema (`docs/bench.schema.json`).
pub const BENCH_SCHEMA: &str = "perfhost-bench/1";

pub use perfhost_core::plan::Grade as Level;

/// The grades of one case (absent where the suite has no table).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseGrades {
    pub p50: Option<Level>,
    pub p95: Option<Level>,
    pub p99: Option<Level>,
    pub throughput: Option<Level>,
}

impl CaseGrades {
    /// The worst grade of the case.
    pub fn worst(&self) -> Option<Level> {
        [self.p50, self.p95, self.p99, self.throughput]
            .into_iter()
            .flatten()
            .max()
    }
}

/// One case, with benchmark.py's field names first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub name: String,
    pub description: String,
    pub total_requests: u64,
    pub successful_requests: u64,
    pub failed_requests: u64,
    pub duration_seconds: f64,
    pub requests_per_second: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_min_ms: f64,
    pub latency_max_ms: f64,
    pub latency_avg_ms: f64,
    /// perfhost's additions.
    pub concurrency: usize,
    pub keepalive: bool,
    pub warmup_requests: u64,
    pub plugin: String,
    pub percentiles_ms: Percentiles,
    /// HDR V2 + DEFLATE, base64 (mergeable, comparable).
    pub histogram: String,
    pub failures: Vec<FailureGroup>,
    pub grades: CaseGrades,
}

/// What `metadata` says (benchmark.py's `api_url` and `timestamp`, and more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchMeta {
    pub api_url: String,
    /// ISO 8601, UTC.
    pub timestamp: String,
    pub suite: String,
    pub suite_source: String,
    pub perfhost_version: String,
    pub seed: u64,
    /// Every case kept its connections alive (benchmark.py did not: a new one per request).
    pub keepalive: bool,
    pub interrupted: bool,
}

/// Over all cases, as benchmark.py's "Overall Statistics".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overall {
    pub total_requests: u64,
    pub successful_requests: u64,
    pub success_percent: f64,
    pub mean_requests_per_second: f64,
    pub mean_latency_p50_ms: f64,
    pub mean_latency_p95_ms: f64,
}

/// The grading of the suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteGrading {
    /// The worst grade of any case (`None`: the suite has no tables).
    pub worst: Option<Level>,
    /// Bottleneck indicators that fired, one line each.
    pub bottlenecks: Vec<String>,
}

/// The canonical result of `perfhost bench`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    pub schema: String,
    pub metadata: BenchMeta,
    pub results: Vec<CaseResult>,
    pub overall: Overall,
    pub grading: SuiteGrading,
}

impl BenchResult {
    /// A failed request in any case.
    pub fn has_failures(&self) -> bool {
        self.results.iter().any(|c| c.failed_requests > 0)
    }

    /// Writes the JSON result whole or not at all (`perfhost_core::outfile::write`).
    pub fn write_json(&self, path: &Path) -> Result<(), perfhost_core::outfile::WriteError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| perfhost_core::outfile::WriteError::new(path, std::io::Error::other(e)))?;
        perfhost_core::outfile::write(path, text.as_bytes())
    }
}

fn grade(level: Option<Level>) -> &'static str {
    level.map(Level::as_str).unwrap_or("-")
}

/// The console summary: a table of the cases, the overall statistics and the grading.
pub fn summary(result: &BenchResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<34} {:>5} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  grade",
        "case", "conc", "reqs", "fails", "req/s", "min", "p50", "p95", "p99", "max"
    );
    let _ = writeln!(out, "{}", "-".repeat(120));
    for c in &result.results {
        let _ = writeln!(
            out,
            "{:<34} {:>5} {:>6} {:>6} {:>8.2} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {}",
            truncate(&c.name, 34),
            c.concurrency,
            c.total_requests,
            c.failed_requests,
            c.requests_per_second,
            c.latency_min_ms,
            c.latency_p50_ms,
            c.latency_p95_ms,
            c.latency_p99_ms,
            c.latency_max_ms,
            grade(c.grades.worst())
        );
    }
    let o = &result.overall;
    let _ = writeln!(out, "\nOverall statistics");
    let _ = writeln!(out, "  total requests       {}", o.total_requests);
    let _ = writeln!(
        out,
        "  total successful     {} ({:.1}%)",
        o.successful_requests, o.success_percent
    );
    let _ = writeln!(
        out,
        "  mean throughput      {:.2} req/s",
        o.mean_requests_per_second
    );
    let _ = writeln!(
        out,
        "  mean p50 latency     {:.1} ms",
        o.mean_latency_p50_ms
    );
    let _ = writeln!(
        out,
        "  mean p95 latency     {:.1} ms",
        o.mean_latency_p95_ms
    );
    let _ = writeln!(
        out,
        "  connections          {}",
        if result.metadata.keepalive {
            "kept alive per user"
        } else {
            "a new connection per request in some cases (benchmark.py's way)"
        }
    );
    let _ = writeln!(
        out,
        "\nGrading: {}",
        result
            .grading
            .worst
            .map(|l| format!("worst case grade {}", l.as_str()))
            .unwrap_or_else(|| "no tables in the suite".into())
    );
    for c in &result.results {
        let g = &c.grades;
        if g.worst().is_some() {
            let _ = writeln!(
                out,
                "  {:<34} p50 {:<10} p95 {:<10} p99 {:<10} throughput {}",
                truncate(&c.name, 34),
                grade(g.p50),
                grade(g.p95),
                grade(g.p99),
                grade(g.throughput)
            );
        }
    }
    if result.grading.bottlenecks.is_empty() {
        let _ = writeln!(out, "Bottlenecks: none flagged");
    } else {
        let _ = writeln!(out, "Bottlenecks:");
        for b in &result.grading.bottlenecks {
            let _ = writeln!(out, "  - {b}");
        }
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

/// The Markdown summary, for a pull request.
pub fn markdown(result: &BenchResult) -> String {
    let mut out = String::new();
    let m = &result.metadata;
    let _ = writeln!(out, "### perfhost bench: {}\n", md_escape(&m.suite));
    let _ = writeln!(
        out,
        "{} · {} · worst grade **{}**\n",
        md_escape(&m.api_url),
        md_escape(&m.timestamp),
        grade(result.grading.worst)
    );
    let _ = writeln!(
        out,
        "| case | conc | requests | failed | req/s | p50 ms | p95 ms | p99 ms | grade |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for c in &result.results {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} | {} |",
            md_escape(&c.name),
            c.concurrency,
            c.total_requests,
            c.failed_requests,
            c.requests_per_second,
            fmt_ms(c.latency_p50_ms),
            fmt_ms(c.latency_p95_ms),
            fmt_ms(c.latency_p99_ms),
            grade(c.grades.worst())
        );
    }
    let o = &result.overall;
    let _ = writeln!(
        out,
        "\n{} requests, {:.1}% successful, mean {:.2} req/s, mean p50 {} ms, mean p95 {} ms.",
        o.total_requests,
        o.success_percent,
        o.mean_requests_per_second,
        fmt_ms(o.mean_latency_p50_ms),
        fmt_ms(o.mean_latency_p95_ms)
    );
    for b in &result.grading.bottlenecks {
        let _ = writeln!(out, "- ⚠ {}", md_escape(b));
    }
    out
}

/// The self-contained HTML page of a suite.
pub fn html(result: &BenchResult) -> String {
    let m = &result.metadata;
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>perfhost bench — {}</title>\n<style>{CSS}\n.g-target{{color:var(--ok);font-weight:600}}\
         .g-acceptable{{color:var(--warn);font-weight:600}}.g-poor{{color:var(--bad);font-weight:600}}</style>\n</head>\n<body>\n<main>\n",
        esc(&m.suite)
    );
    let _ = write!(
        h,
        "<h1>perfhost bench: {}</h1>\n<p class=\"sub\">{} · {} · {}</p>\n",
        esc(&m.suite),
        esc(&m.api_url),
        esc(&m.timestamp),
        esc(&m.suite_source)
    );
    let failed = result.has_failures();
    let _ = writeln!(
        h,
        "<div class=\"verdict {}\"><strong>{}</strong>worst grade: {}</div>",
        if failed { "fail" } else { "pass" },
        if failed {
            "FAILED REQUESTS"
        } else {
            "ALL REQUESTS SUCCEEDED"
        },
        esc(grade(result.grading.worst))
    );
    let cell = |l: Option<Level>| match l {
        Some(l) => format!("<td class=\"g-{0}\">{0}</td>", l.as_str()),
        None => "<td>-</td>".into(),
    };
    h.push_str("<h2>Cases</h2><div class=\"scroll\"><table><thead><tr><th class=\"l\">Case</th><th>Concurrency</th><th>Requests</th><th>Failed</th><th>Duration s</th><th>req/s</th><th>Min</th><th>Avg</th><th>p50</th><th>p95</th><th>p99</th><th>Max</th><th>p50</th><th>p95</th><th>p99</th><th>Throughput</th></tr></thead><tbody>\n");
    for c in &result.results {
        let _ = writeln!(
            h,
            "<tr><td class=\"name\">{}<br><span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td{}>{}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}{}{}{}</tr>",
            esc(&c.name),
            esc(&c.description),
            c.concurrency,
            c.total_requests,
            if c.failed_requests > 0 { " class=\"bad\"" } else { "" },
            c.failed_requests,
            c.duration_seconds,
            c.requests_per_second,
            fmt_ms(c.latency_min_ms),
            fmt_ms(c.latency_avg_ms),
            fmt_ms(c.latency_p50_ms),
            fmt_ms(c.latency_p95_ms),
            fmt_ms(c.latency_p99_ms),
            fmt_ms(c.latency_max_ms),
            cell(c.grades.p50),
            cell(c.grades.p95),
            cell(c.grades.p99),
            cell(c.grades.throughput)
        );
    }
    h.push_str("</tbody></table></div>\n<p class=\"muted\">Latencies in milliseconds, from the exact histograms; the last four columns are the grades against the suite's tables.</p>\n");
    let o = &result.overall;
    let _ = writeln!(
        h,
        "<h2>Overall</h2><div class=\"meta\"><div><b>Requests</b>{}</div><div><b>Successful</b>{} ({:.1}%)</div><div><b>Mean throughput</b>{:.2} req/s</div><div><b>Mean p50</b>{} ms</div><div><b>Mean p95</b>{} ms</div><div><b>Connections</b>{}</div></div>",
        o.total_requests,
        o.successful_requests,
        o.success_percent,
        o.mean_requests_per_second,
        fmt_ms(o.mean_latency_p50_ms),
        fmt_ms(o.mean_latency_p95_ms),
        if m.keepalive { "kept alive per user" } else { "a new connection per request" }
    );
    h.push_str("<h2>Bottlenecks</h2>\n");
    if result.grading.bottlenecks.is_empty() {
        h.push_str("<p>None flagged.</p>\n");
    } else {
        for b in &result.grading.bottlenecks {
            let _ = writeln!(h, "<div class=\"warn\">{}</div>", esc(b));
        }
    }
    let failures: Vec<(&str, &FailureGroup)> = result
        .results
        .iter()
        .flat_map(|c| c.failures.iter().map(move |f| (c.name.as_str(), f)))
        .collect();
    if !failures.is_empty() {
        h.push_str("<h2>Failures</h2><table><thead><tr><th class=\"l\">Case</th><th class=\"l\">Request</th><th class=\"l\">Error</th><th>Occurrences</th></tr></thead><tbody>\n");
        for (case, f) in failures {
            let _ = writeln!(
                h,
                "<tr><td class=\"name\">{}</td><td class=\"name\">{} {}</td><td class=\"msg\">{}</td><td>{}</td></tr>",
                esc(case),
                esc(&f.method),
                esc(&f.name),
                esc(&f.error),
                f.occurrences
            );
        }
        h.push_str("</tbody></table>\n");
    }
    let _ = write!(
        h,
        "<footer>Written by perfhost {} from the bench result (schema {}). Times are UTC.</footer>\n</main>\n</body>\n</html>\n",
        esc(&m.perfhost_version),
        esc(&result.schema)
    );
    h
}

/// A benchmark: one case per benchmark case (failed requests, or a grade at or below `gate`).
pub fn junit(result: &BenchResult, gate: Option<perfhost_core::plan::Grade>) -> String {
    let cases: Vec<TestCase> = result
        .results
        .iter()
        .map(|c| {
            let graded_out = gate.zip(c.grades.worst()).is_some_and(|(g, w)| w >= g);
            let failure = if c.failed_requests > 0 {
                Some((
                    format!(
                        "{} of {} requests failed",
                        c.failed_requests, c.total_requests
                    ),
                    c.failures
                        .iter()
                        .map(|f| format!("{} × {}", f.occurrences, f.error))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ))
            } else if graded_out {
                Some((
                    format!(
                        "graded {} (p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, {:.2} req/s)",
                        c.grades.worst().map(|g| g.as_str()).unwrap_or("-"),
                        c.latency_p50_ms,
                        c.latency_p95_ms,
                        c.latency_p99_ms,
                        c.requests_per_second
                    ),
                    String::new(),
                ))
            } else {
                None
            };
            TestCase {
                name: c.name.clone(),
                classname: format!("bench.{}", result.metadata.suite),
                seconds: c.duration_seconds,
                failure,
            }
        })
        .collect();
    document(&format!("perfhost bench {}", result.metadata.suite), &cases)
}
