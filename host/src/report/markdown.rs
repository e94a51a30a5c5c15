//! A compact Markdown summary for pull requests and CI job summaries.

use std::fmt::Write as _;

use crate::report::html::{fmt_duration, fmt_ms, percent, verdict};
use perfhost_core::result::RunResult;
use perfhost_core::stats::{EndpointStats, Percentile};

/// Rows of failures / task errors listed before "… and N more".
const MAX_LISTED: usize = 10;
/// Characters of an error message shown.
const MAX_MESSAGE: usize = 200;

/// Escapes text for a Markdown table cell or list item: Markdown punctuation gets a
/// backslash, and `<`, `>`, `&` become entities (GitHub renders inline HTML).
pub fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            // ESC, OSC and the other controls: shown, never passed to a terminal that
            // prints the file (`perfhost merge --markdown -`, `cat summary.md`).
            c if c.is_control() => {
                out.push_str(&perfhost_core::text::terminal_safe(&c.to_string()))
            }
            c => out.push(c),
        }
    }
    out
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn row(out: &mut String, s: &EndpointStats, method: &str, name: &str, bold: bool) {
    let name = if bold {
        format!("**{}**", md_escape(name))
    } else {
        md_escape(name)
    };
    let _ = writeln!(
        out,
        "| {} | {name} | {} | {} ({:.2}%) | {} | {} | {} | {} | {:.2} |",
        md_escape(method),
        s.requests,
        s.failures,
        percent(s.failures, s.requests),
        fmt_ms(s.avg_ms),
        fmt_ms(s.median_ms),
        fmt_ms(s.percentile(Percentile::P95)),
        fmt_ms(s.percentile(Percentile::P99)),
        s.rps
    );
}

/// The Markdown summary of a result.
pub fn render(result: &RunResult) -> String {
    let v = verdict(result);
    let m = &result.meta;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### perfhost: {} — {}",
        md_escape(&m.run_name),
        if v.passed { "**PASSED**" } else { "**FAILED**" }
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} · {} users · {} · seed {}{}",
        md_escape(&m.target),
        result.plan.users,
        fmt_duration(m.duration_s),
        m.seed,
        if m.interrupted { " · interrupted" } else { "" }
    );
    let _ = writeln!(out);
    for reason in &v.reasons {
        let _ = writeln!(out, "- {}", md_escape(reason));
    }
    if !v.reasons.is_empty() {
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "| Type | Name | # reqs | # fails | Avg (ms) | Median (ms) | p95 (ms) | p99 (ms) | req/s |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in &result.stats {
        row(&mut out, s, &s.method, &s.name, false);
    }
    row(&mut out, &result.total, "", "Aggregated", true);
    if let Some(c) = &result.total.corrected {
        let _ = writeln!(
            out,
            "\nFrom the intended start (coordinated-omission corrected): median {} ms, p95 {} ms, p99 {} ms, max {} ms; the table shows the service time.",
            fmt_ms(c.median_ms),
            fmt_ms(c.percentiles_ms.get(Percentile::P95)),
            fmt_ms(c.percentiles_ms.get(Percentile::P99)),
            fmt_ms(c.max_ms)
        );
    }
    if let Some(a) = &result.arrivals {
        let _ = writeln!(out, "\n{}. {}.", a.accounting(("**", "**")), a.lag_line());
    }
    if !result.thresholds.is_empty() {
        let _ = writeln!(out, "\n**Thresholds**\n");
        for t in &result.thresholds {
            let _ = writeln!(
                out,
                "- {} {}",
                if t.passed { "✅" } else { "❌" },
                md_escape(&t.describe())
            );
        }
    }
    if !result.failures.is_empty() {
        let _ = writeln!(out, "\n**Failures**\n");
        for f in result.failures.iter().take(MAX_LISTED) {
            let _ = writeln!(
                out,
                "- {} × {} {}: {}",
                f.occurrences,
                md_escape(&f.method),
                md_escape(&f.name),
                md_escape(&clip(&f.error, MAX_MESSAGE))
            );
        }
        if result.failures.len() > MAX_LISTED {
            let _ = writeln!(out, "- … and {} more", result.failures.len() - MAX_LISTED);
        }
    }
    if !result.task_errors.is_empty() {
        let _ = writeln!(out, "\n**Task errors**\n");
        for e in result.task_errors.iter().take(MAX_LISTED) {
            let _ = writeln!(
                out,
                "- {} × {}: {}",
                e.occurrences,
                md_escape(&e.location),
                md_escape(&clip(&e.message, MAX_MESSAGE))
            );
        }
        if result.task_errors.len() > MAX_LISTED {
            let _ = writeln!(
                out,
                "- … and {} more",
                result.task_errors.len() - MAX_LISTED
            );
        }
    }
    let mut notes = Vec::new();
    if result.denied_requests > 0 {
        notes.push(format!(
            "{} requests denied by the sandbox (outside the target origin)",
            result.denied_requests
        ));
    }
    if result.generator.generator_saturated {
        notes.push(format!(
            "perfhost's CPU peaked at {:.0}% of {} cores: the generator may have limited this run",
            result.generator.max_cpu_percent, result.generator.cores
        ));
    }
    if !notes.is_empty() {
        let _ = writeln!(out);
        for n in notes {
            let _ = writeln!(out, "> {}", md_escape(&n));
        }
    }
    out
}
