//! Reports rendered from a run's result (`perfhost_core::result`): the console summary, CSV,
//! HTML, Markdown, JUnit, charts, HDR logs and Prometheus text.

use std::fmt::Write as _;

use perfhost_core::plan::civil_from_days;
use perfhost_core::plugin::builtin::{self, Role};
use perfhost_core::result::memory::{Analysis, Verdict};
use perfhost_core::result::RunResult;
use perfhost_core::stats::{EndpointStats, Percentile};

pub mod charts;
pub mod command;
pub mod csv;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod locust_api;
pub mod markdown;
pub mod outcome;
pub(crate) mod output;
pub mod prometheus;

pub use csv::{CsvPaths, HistoryCsvWriter};
pub use outcome::{ReportError, Written};
pub use output::{load_result, parse_result, write_reports, ReportOutputs};

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

/// The end-of-run table, like Locust's.
/// The built-in behaviours speak the Auditor API. When every request they sent failed with
/// "no such endpoint" statuses, the target is most likely another service: say what to use.
pub fn wrong_target_hint(result: &RunResult) -> Option<String> {
    let speaks_auditor = |name: &str| builtin::find(name).is_some_and(|b| b.role == Role::Default);
    let only_builtins = !result.plugins.is_empty()
        && result
            .plugins
            .iter()
            .all(|p| p.source == "built-in" && speaks_auditor(&p.name));
    // The kept samples (the first failures of each request name) carry their status: every
    // one a 404, 405 or 501 says the target has no such route.
    let not_found = |status: Option<u16>| matches!(status, Some(404 | 405 | 501));
    let all_failed = result.total.requests > 0 && result.total.failures == result.total.requests;
    let no_route = !result.failure_samples.is_empty()
        && result.failure_samples.iter().all(|s| not_found(s.status));
    (only_builtins && all_failed && no_route).then(|| {
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
    rows: impl Iterator<Item = (&'a EndpointStats, &'a perfhost_core::stats::Percentiles)>,
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

/// The HTTP the run's responses came over: `HTTP/2`, or each protocol with its count when
/// the run mixed them; `None` without any response.
pub fn protocols_text(total: &EndpointStats) -> Option<String> {
    match total.protocols.len() {
        0 => None,
        1 => total.protocols.keys().next().cloned(),
        _ => Some(
            total
                .protocols
                .iter()
                .map(|(p, n)| format!("{p} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// Says so when a run mixed protocols (the server chose HTTP/1.1 for some connections and
/// HTTP/2 for others, or changed between them).
pub fn mixed_protocols_warning(total: &EndpointStats) -> Option<String> {
    if total.protocols.len() < 2 {
        return None;
    }
    protocols_text(total).map(|counts| {
        format!("The run mixed protocols ({counts} responses): the server did not choose the same HTTP for every connection.")
    })
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
    // HTTP/1.1 throughout is what a load tester is assumed to speak: said only otherwise.
    if let Some(protocols) = protocols_text(&result.total).filter(|p| p != "HTTP/1.1") {
        let _ = writeln!(out, "\nProtocol: {protocols}");
    }
    if let Some(warning) = mixed_protocols_warning(&result.total) {
        let _ = writeln!(out, "{warning}");
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
            let _ = writeln!(out, "\n{}", memory_line(a, &who));
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

/// The one-line summary of an analysis, for the console.
pub fn memory_line(a: &Analysis, who: &str) -> String {
    let verdict = match a.verdict {
        Verdict::Healthy => "healthy".to_string(),
        Verdict::Moderate => "MODERATE GROWTH (leak warning)".to_string(),
        Verdict::High => "HIGH GROWTH (leak warning)".to_string(),
        Verdict::TooShort => "too short to judge".to_string(),
    };
    format!(
        "Memory of {who}: RSS {:.1} → {:.1} MB (max {:.1}), growth {:+.2} MB/min after {:.0} s warm-up (R² {:.2}): {verdict}",
        a.rss.initial_mb, a.rss.final_mb, a.rss.max_mb, a.growth_rate_mb_per_min, a.warmup_seconds, a.growth_fit_r2
    )
}
