//! The HTML report: one self-contained file (inline CSS, inline SVG charts, no scripts, no
//! network fetches) that opens from disk, reads on a laptop screen and prints.
//!
//! Every string a plugin or the target chose (names, errors, messages, headers, bodies) goes
//! through `esc`, so a request named `<script>` is shown as text.

use std::fmt::Write as _;

use crate::report::charts::{self, Chart, ChartKind};
use perfhost_core::result::RunResult;
use perfhost_core::stats::{EndpointStats, Percentile};

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Pass or fail, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub passed: bool,
    pub reasons: Vec<String>,
}

/// The run's verdict (`RunResult::failed`): with thresholds, the failed ones; without, a failed
/// request, a task error or a stopped class.
pub fn verdict(result: &RunResult) -> Verdict {
    let mut reasons = Vec::new();
    let total = &result.total;
    if !result.thresholds.is_empty() {
        for t in result.thresholds.iter().filter(|t| !t.passed) {
            reasons.push(t.describe());
        }
        if let Some(text) = &result.meta.aborted_by {
            reasons.push(format!(
                "the run was stopped early by `{text}` (abort-on-fail)"
            ));
        }
        for class in &result.stopped_classes {
            reasons.push(format!(
                "user class {class} was stopped (its users kept trapping)"
            ));
        }
        return Verdict {
            passed: !result.failed(),
            reasons,
        };
    }
    if total.failures > 0 {
        reasons.push(format!(
            "{} of {} requests failed ({:.2}%)",
            total.failures,
            total.requests,
            percent(total.failures, total.requests)
        ));
    }
    let task_errors: u64 = result.task_errors.iter().map(|e| e.occurrences).sum();
    if task_errors > 0 {
        reasons.push(format!("{task_errors} task errors"));
    }
    for class in &result.stopped_classes {
        reasons.push(format!(
            "user class {class} was stopped (its users kept trapping)"
        ));
    }
    let passed = !result.failed() && reasons.is_empty();
    Verdict { passed, reasons }
}

pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Milliseconds with precision that fits their size.
pub(crate) fn fmt_ms(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `2026-11-27 13:34:22 UTC`.
pub(crate) fn utc_datetime(unix: f64) -> String {
    let t = super::csv::utc_timestamp(unix);
    t.replace('T', " ").replace('Z', " UTC")
}

pub(crate) fn fmt_duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let total = s.round() as u64;
        let (h, m, sec) = (total / 3600, (total % 3600) / 60, total % 60);
        if h > 0 {
            format!("{h}h{m:02}m{sec:02}s")
        } else {
            format!("{m}m{sec:02}s")
        }
    }
}

pub(crate) const CSS: &str = r#"
:root { --fg:#1d2329; --muted:#5b6670; --line:#d9dee3; --bg:#ffffff; --alt:#f5f7f9;
        --ok:#1f7a3a; --okbg:#e6f4ea; --bad:#b3261e; --badbg:#fce8e6; --warnbg:#fff4d6; --warn:#7a5300; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
       color:var(--fg); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:20px 24px 48px; }
h1 { font-size:22px; margin:0 0 4px; }
h2 { font-size:17px; margin:28px 0 10px; padding-bottom:4px; border-bottom:1px solid var(--line); }
h3 { font-size:14px; margin:16px 0 6px; }
.sub { color:var(--muted); margin:0 0 14px; }
.meta { display:grid; grid-template-columns:repeat(auto-fill,minmax(210px,1fr)); gap:6px 18px; margin:12px 0; }
.meta div { border-left:3px solid var(--line); padding:2px 8px; }
.meta b { display:block; font-size:11px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); font-weight:600; }
.verdict { border-radius:6px; padding:12px 16px; margin:14px 0; font-size:15px; }
.verdict.pass { background:var(--okbg); color:var(--ok); border:1px solid #b7dfc3; }
.verdict.fail { background:var(--badbg); color:var(--bad); border:1px solid #f3c1bc; }
.verdict strong { font-size:18px; margin-right:8px; }
.verdict ul { margin:6px 0 0; padding-left:22px; color:var(--fg); }
.warn { background:var(--warnbg); color:var(--warn); border:1px solid #f0dc9c; border-radius:6px; padding:8px 12px; margin:8px 0; }
table { border-collapse:collapse; width:100%; margin:6px 0 12px; font-variant-numeric:tabular-nums; }
th, td { border-bottom:1px solid var(--line); padding:5px 8px; text-align:right; vertical-align:top; }
th { background:var(--alt); font-weight:600; white-space:nowrap; }
td.l, th.l { text-align:left; }
td.name { text-align:left; word-break:break-word; }
td.msg { text-align:left; word-break:break-word; max-width:560px; }
tbody tr:nth-child(even) { background:#fafbfc; }
tfoot td { font-weight:600; border-top:2px solid var(--fg); }
td.bad { color:var(--bad); font-weight:600; }
.scroll { overflow-x:auto; }
.charts { display:grid; grid-template-columns:repeat(auto-fit,minmax(460px,1fr)); gap:14px; }
figure { margin:0; min-width:0; }
figure.wide { grid-column:1 / -1; }
figure svg { width:100%; height:auto; display:block; border:1px solid var(--line); border-radius:4px; }
.sample { border:1px solid var(--line); border-radius:6px; margin:10px 0; }
.sample header { background:var(--alt); padding:6px 10px; font-weight:600; word-break:break-word; }
.sample .body { padding:6px 10px; }
pre { background:#f6f8fa; border:1px solid var(--line); border-radius:4px; padding:8px; margin:6px 0;
      white-space:pre-wrap; word-break:break-all; max-height:260px; overflow:auto; font-size:12px; }
.muted { color:var(--muted); }
footer { margin-top:32px; color:var(--muted); font-size:12px; }
@media print {
  body { font-size:11px; }
  main { max-width:none; padding:0; }
  h2 { break-after:avoid; }
  .charts { display:block; }
  figure { margin:0 0 12px; }
  figure, .sample, tr, .verdict { break-inside:avoid; }
  pre { max-height:none; overflow:visible; }
  .scroll { overflow:visible; }
}
"#;

/// The whole report as one HTML document.
pub fn render(result: &RunResult) -> String {
    let charts = charts::charts(result);
    render_with_charts(result, &charts)
}

pub fn render_with_charts(result: &RunResult, charts: &[Chart]) -> String {
    let meta = &result.meta;
    let mut h = String::with_capacity(256 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>perfhost report — {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&meta.run_name)
    );
    let _ = write!(
        h,
        "<h1>perfhost report: {}</h1>\n<p class=\"sub\">{} · {} → {} · {}</p>\n",
        esc(&meta.run_name),
        esc(&meta.target),
        esc(&utc_datetime(meta.start_time)),
        esc(&utc_datetime(meta.end_time)),
        esc(&fmt_duration(meta.duration_s))
    );
    verdict_section(&mut h, result);
    summary_section(&mut h, result);
    warnings_section(&mut h, result);
    stats_section(&mut h, result);
    charts_section(&mut h, charts);
    percentiles_section(&mut h, result);
    failures_section(&mut h, result);
    task_errors_section(&mut h, result);
    samples_section(&mut h, result);
    thresholds_section(&mut h, result);
    memory_section(&mut h, result);
    health_section(&mut h, result);
    plan_section(&mut h, result);
    let _ = write!(
        h,
        "<footer>Written by perfhost {} from the run's JSON result (schema {}). Times are UTC; response times in milliseconds.</footer>\n</main>\n</body>\n</html>\n",
        esc(env!("CARGO_PKG_VERSION")),
        esc(&result.schema)
    );
    h
}

fn verdict_section(h: &mut String, result: &RunResult) {
    let v = verdict(result);
    let (class, word) = if v.passed {
        ("pass", "PASSED")
    } else {
        ("fail", "FAILED")
    };
    let _ = write!(
        h,
        "<section id=\"verdict\" class=\"verdict {class}\"><strong>{word}</strong>"
    );
    if v.passed {
        let _ = write!(
            h,
            "no failed requests, no task errors, no stopped user classes"
        );
    }
    if !v.reasons.is_empty() {
        h.push_str("<ul>");
        for r in &v.reasons {
            let _ = write!(h, "<li>{}</li>", esc(r));
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>\n");
}

fn summary_section(h: &mut String, result: &RunResult) {
    let m = &result.meta;
    let t = &result.total;
    let mut items: Vec<(&str, String)> = vec![
        ("Requests", t.requests.to_string()),
        (
            "Failures",
            format!("{} ({:.2}%)", t.failures, percent(t.failures, t.requests)),
        ),
        ("Throughput", format!("{:.2} req/s", t.rps)),
        ("Median / p95 / p99", {
            format!(
                "{} / {} / {} ms",
                fmt_ms(t.median_ms),
                fmt_ms(t.percentile(Percentile::P95)),
                fmt_ms(t.percentile(Percentile::P99))
            )
        }),
        ("Users", result.plan.users.to_string()),
        ("Duration", fmt_duration(m.duration_s)),
        ("Seed", m.seed.to_string()),
        ("perfhost", m.perfhost_version.clone()),
    ];
    // Results of versions before protocols were counted have none: nothing is said then.
    if let Some(protocols) = super::protocols_text(t) {
        items.insert(5, ("Protocol", protocols));
    }
    h.push_str("<section id=\"summary\" class=\"meta\">");
    for (k, v) in items {
        let _ = write!(h, "<div><b>{}</b>{}</div>", esc(k), esc(&v));
    }
    h.push_str("</section>\n");
}

fn warnings_section(h: &mut String, result: &RunResult) {
    let mut warnings = Vec::new();
    if result.meta.interrupted {
        warnings.push(
            "The run was interrupted (Ctrl-C / SIGTERM): the numbers cover it up to then."
                .to_string(),
        );
    }
    if result.generator.generator_saturated {
        warnings.push(format!(
            "perfhost's CPU peaked at {:.0}% of {} cores: the load generator, not the target, may have limited this run.",
            result.generator.max_cpu_percent, result.generator.cores
        ));
    }
    for class in &result.stopped_classes {
        warnings.push(format!(
            "User class {class} was stopped because its users kept trapping."
        ));
    }
    warnings.extend(super::mixed_protocols_warning(&result.total));
    if result.denied_requests > 0 {
        warnings.push(format!(
            "{} requests were denied by the sandbox because they left the target origin.",
            result.denied_requests
        ));
    }
    if warnings.is_empty() {
        return;
    }
    h.push_str("<section id=\"warnings\">");
    for w in warnings {
        let _ = write!(h, "<div class=\"warn\">{}</div>", esc(&w));
    }
    h.push_str("</section>\n");
}

fn stats_row(h: &mut String, s: &EndpointStats, method: &str, name: &str) {
    let fail_class = if s.failures > 0 { " class=\"bad\"" } else { "" };
    let _ = writeln!(
        h,
        "<tr><td class=\"l\">{}</td><td class=\"name\">{}</td><td>{}</td><td{fail_class}>{}</td><td{fail_class}>{:.2}%</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.0}</td></tr>",
        esc(method),
        esc(name),
        s.requests,
        s.failures,
        percent(s.failures, s.requests),
        fmt_ms(s.avg_ms),
        fmt_ms(s.min_ms),
        fmt_ms(s.max_ms),
        fmt_ms(s.median_ms),
        fmt_ms(s.percentile(Percentile::P90)),
        fmt_ms(s.percentile(Percentile::P95)),
        fmt_ms(s.percentile(Percentile::P99)),
        s.rps,
        s.failures_per_s,
        s.avg_content_bytes
    );
}

fn stats_section(h: &mut String, result: &RunResult) {
    h.push_str(
        "<section id=\"stats\"><h2>Requests</h2><div class=\"scroll\"><table id=\"stats-table\">\
         <thead><tr><th class=\"l\">Type</th><th class=\"l\">Name</th><th># reqs</th><th># fails</th><th>fail %</th>\
         <th>Avg</th><th>Min</th><th>Max</th><th>Median</th><th>p90</th><th>p95</th><th>p99</th>\
         <th>req/s</th><th>failures/s</th><th>Avg size (B)</th></tr></thead>\n<tbody>\n",
    );
    for s in &result.stats {
        stats_row(h, s, &s.method, &s.name);
    }
    h.push_str("</tbody>\n<tfoot>\n");
    stats_row(h, &result.total, "", "Aggregated");
    h.push_str("</tfoot></table></div><p class=\"muted\">Response times in ms.</p></section>\n");
}

fn charts_section(h: &mut String, charts: &[Chart]) {
    h.push_str("<section id=\"charts\"><h2>Charts</h2>\n<div class=\"charts\">\n");
    for chart in charts {
        let wide = matches!(chart.kind, ChartKind::Distribution { .. });
        match chart.to_svg() {
            Ok(svg) => {
                let _ = writeln!(
                    h,
                    "<figure id=\"chart-{}\"{}>{}</figure>",
                    chart.id,
                    if wide { " class=\"wide\"" } else { "" },
                    inline_svg(&svg, chart)
                );
            }
            Err(e) => {
                let _ = writeln!(
                    h,
                    "<div class=\"warn\">The {} chart could not be drawn: {}</div>",
                    esc(chart.title()),
                    esc(&e)
                );
            }
        }
    }
    h.push_str("</div></section>\n");
}

/// Makes plotters' standalone SVG scale with the page and label it for screen readers.
fn inline_svg(svg: &str, chart: &Chart) -> String {
    let (w, hgt) = chart.size();
    let body = svg
        .find("<svg")
        .map(|i| &svg[i..])
        .unwrap_or(svg)
        .trim_end();
    let fixed = format!("<svg width=\"{w}\" height=\"{hgt}\" ");
    let responsive = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"{}\" preserveAspectRatio=\"xMidYMid meet\" ",
        esc(chart.title())
    );
    body.replacen(&fixed, &responsive, 1)
}

fn percentiles_section(h: &mut String, result: &RunResult) {
    h.push_str("<section id=\"percentiles\"><h2>Response-time percentiles (ms)</h2><div class=\"scroll\"><table><thead><tr><th class=\"l\">Type</th><th class=\"l\">Name</th>");
    for p in Percentile::ALL {
        let _ = write!(h, "<th>{}%</th>", p.label());
    }
    h.push_str("<th># reqs</th></tr></thead><tbody>\n");
    let row = |h: &mut String, s: &EndpointStats, method: &str, name: &str| {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"name\">{}</td>",
            esc(method),
            esc(name)
        );
        for (_, ms) in s.percentiles_ms.iter() {
            let _ = write!(h, "<td>{}</td>", fmt_ms(ms));
        }
        let _ = writeln!(h, "<td>{}</td></tr>", s.requests);
    };
    for s in &result.stats {
        row(h, s, &s.method, &s.name);
    }
    h.push_str("</tbody><tfoot>");
    row(h, &result.total, "", "Aggregated");
    h.push_str("</tfoot></table></div></section>\n");
    corrected_section(h, result);
}

/// The percentiles of the service-vs-corrected table.
const CORRECTED_COLUMNS: [Percentile; 6] = [
    Percentile::P50,
    Percentile::P90,
    Percentile::P95,
    Percentile::P99,
    Percentile::P99_9,
    Percentile::P100,
];

/// Runs with a schedule: the latency from each request's intended start beside the service
/// time, and the open model's arrivals.
fn corrected_section(h: &mut String, result: &RunResult) {
    if result.total.corrected.is_none() && result.arrivals.is_none() {
        return;
    }
    h.push_str("<section id=\"corrected\"><h2>From the intended start (coordinated-omission corrected, ms)</h2>");
    h.push_str("<p class=\"sub\">Service time runs from the actual send; the corrected time from when the request's task was meant to start (its arrival, or its place on a pacing schedule), so a stall shows in it even when the generator could not send during it.</p>");
    if result.total.corrected.is_some() {
        h.push_str("<div class=\"scroll\"><table><thead><tr><th class=\"l\">Type</th><th class=\"l\">Name</th><th class=\"l\">Latency</th>");
        for p in CORRECTED_COLUMNS {
            let _ = write!(h, "<th>{}%</th>", p.label());
        }
        h.push_str("</tr></thead><tbody>\n");
        let named = result.stats.iter().map(|s| (s, s.name.as_str()));
        for (s, name) in named.chain(std::iter::once((&result.total, "Aggregated"))) {
            let Some(c) = &s.corrected else { continue };
            for (label, pct) in [
                ("service", &s.percentiles_ms),
                ("corrected", &c.percentiles_ms),
            ] {
                let _ = write!(
                    h,
                    "<tr><td class=\"l\">{}</td><td class=\"name\">{}</td><td class=\"l\">{label}</td>",
                    esc(&s.method),
                    esc(name)
                );
                for p in CORRECTED_COLUMNS {
                    let _ = write!(h, "<td>{}</td>", fmt_ms(pct.get(p)));
                }
                h.push_str("</tr>\n");
            }
        }
        h.push_str("</tbody></table></div>");
    }
    if let Some(a) = &result.arrivals {
        let _ = write!(
            h,
            "<p>{}. {}.</p>",
            a.accounting(("<b>", "</b>")),
            a.lag_line()
        );
        for line in a.dropped_lines() {
            let _ = write!(h, "<p>{}.</p>", esc(&line));
        }
    }
    h.push_str("</section>\n");
}

fn failures_section(h: &mut String, result: &RunResult) {
    h.push_str("<section id=\"failures\"><h2>Failures</h2>");
    if result.failures.is_empty() {
        h.push_str("<p class=\"muted\">No failed requests.</p></section>\n");
        return;
    }
    h.push_str("<div class=\"scroll\"><table><thead><tr><th>Occurrences</th><th class=\"l\">Method</th><th class=\"l\">Name</th><th class=\"l\">Error</th><th class=\"l\">First seen</th><th class=\"l\">Last seen</th></tr></thead><tbody>\n");
    for f in &result.failures {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"name\">{}</td><td class=\"msg\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            f.occurrences,
            esc(&f.method),
            esc(&f.name),
            esc(&f.error),
            esc(&utc_datetime(f.first_seen)),
            esc(&utc_datetime(f.last_seen))
        );
    }
    h.push_str("</tbody></table></div></section>\n");
}

fn task_errors_section(h: &mut String, result: &RunResult) {
    h.push_str("<section id=\"task-errors\"><h2>Task errors</h2>");
    if result.task_errors.is_empty() {
        h.push_str("<p class=\"muted\">No task errors.</p></section>\n");
        return;
    }
    h.push_str("<div class=\"scroll\"><table><thead><tr><th>Occurrences</th><th class=\"l\">Where</th><th class=\"l\">Message</th><th class=\"l\">First seen</th><th class=\"l\">Last seen</th></tr></thead><tbody>\n");
    for e in &result.task_errors {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"name\">{}</td><td class=\"msg\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            e.occurrences,
            esc(&e.location),
            esc(&e.message),
            esc(&utc_datetime(e.first_seen)),
            esc(&utc_datetime(e.last_seen))
        );
    }
    h.push_str("</tbody></table></div></section>\n");
}

fn samples_section(h: &mut String, result: &RunResult) {
    if result.failure_samples.is_empty() {
        return;
    }
    h.push_str("<section id=\"samples\"><h2>Failure samples</h2><p class=\"muted\">What the server answered for some failing requests (a few per name; body: the first 2 KiB).</p>\n");
    // Samples with a response first: they say more than connection errors.
    let mut samples: Vec<_> = result.failure_samples.iter().collect();
    samples.sort_by_key(|s| s.status.is_none());
    for s in samples {
        let status = s
            .status
            .map(|c| format!("HTTP {c}"))
            .unwrap_or_else(|| "no response".into());
        let mut title = format!("{} {} — {status}", s.method, s.name);
        if s.error != status {
            title.push_str(" — ");
            title.push_str(&s.error);
        }
        let _ = write!(
            h,
            "<div class=\"sample\"><header>{}</header><div class=\"body\"><div class=\"muted\">{} · {}</div>",
            esc(&title),
            esc(&utc_datetime(s.time)),
            if s.headers.is_empty() {
                "no headers".to_string()
            } else {
                format!("{} headers", s.headers.len())
            }
        );
        if !s.headers.is_empty() {
            h.push_str("<pre class=\"headers\">");
            for (k, v) in &s.headers {
                let _ = writeln!(h, "{}: {}", esc(k), esc(v));
            }
            h.push_str("</pre>");
        }
        if s.body.is_empty() {
            h.push_str("<div class=\"muted\">empty body</div>");
        } else {
            let _ = write!(h, "<pre class=\"body\">{}</pre>", esc(&s.body));
        }
        h.push_str("</div></div>\n");
    }
    h.push_str("</section>\n");
}

fn health_section(h: &mut String, result: &RunResult) {
    let g = &result.generator;
    let avg = if g.cpu_percent.is_empty() {
        0.0
    } else {
        g.cpu_percent.iter().sum::<f64>() / g.cpu_percent.len() as f64
    };
    let max_lag = g.tick_lag_ms.iter().copied().fold(0.0_f64, f64::max);
    let _ = writeln!(
        h,
        "<section id=\"health\"><h2>Load generator</h2><table><tbody>\
         <tr><th class=\"l\">Cores</th><td class=\"l\">{}</td></tr>\
         <tr><th class=\"l\">perfhost CPU</th><td class=\"l\">average {avg:.0}%, peak {:.0}% (of one core)</td></tr>\
         <tr><th class=\"l\">Collector lag</th><td class=\"l\">max {max_lag:.1} ms</td></tr>\
         <tr><th class=\"l\">Saturated</th><td class=\"l\">{}</td></tr>\
         <tr><th class=\"l\">Denied requests</th><td class=\"l\">{}</td></tr>\
         <tr><th class=\"l\">Stopped user classes</th><td class=\"l\">{}</td></tr>\
         </tbody></table></section>",
        g.cores,
        g.max_cpu_percent,
        if g.generator_saturated {
            "yes — the generator may have limited the run"
        } else {
            "no"
        },
        result.denied_requests,
        if result.stopped_classes.is_empty() {
            "none".to_string()
        } else {
            esc(&result.stopped_classes.join(", "))
        }
    );
}

fn thresholds_section(h: &mut String, result: &RunResult) {
    if result.thresholds.is_empty() {
        return;
    }
    h.push_str("<section id=\"thresholds\"><h2>Thresholds</h2><table><thead><tr><th class=\"l\">Threshold</th><th>Measured</th><th>Limit</th><th>Margin</th><th class=\"l\">Verdict</th></tr></thead><tbody>\n");
    for t in &result.thresholds {
        let shown = |v: f64| {
            if t.metric == perfhost_core::metric::Metric::FailRatio {
                format!("{:.2}%", v * 100.0)
            } else {
                format!("{}{}", fmt_ms(v), t.unit)
            }
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"name\">{}</td><td>{}</td><td>{} {}</td><td>{}</td><td class=\"l{}\">{}</td></tr>",
            esc(&t.text),
            t.measured.map(shown).unwrap_or_else(|| "no data".into()),
            esc(t.op.as_str()),
            shown(t.limit),
            t.margin.map(shown).unwrap_or_else(|| "-".into()),
            if t.passed { "" } else { " bad" },
            if t.passed {
                "passed"
            } else if t.aborted_run {
                "FAILED (stopped the run)"
            } else {
                "FAILED"
            }
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn memory_section(h: &mut String, result: &RunResult) {
    let Some(memory) = &result.memory else {
        return;
    };
    let t = &memory.metadata.target;
    let _ = write!(
        h,
        "<section id=\"memory\"><h2>Memory of the server under test</h2><p class=\"sub\">pid {} ({}), found by {}{}; a sample every {} s</p>",
        t.pid,
        esc(&t.command),
        esc(&t.found_by),
        if t.children { ", children summed in" } else { "" },
        memory.metadata.interval
    );
    match &memory.analysis {
        Some(a) => {
            let verdict = match a.verdict {
                perfhost_core::result::memory::Verdict::Healthy => "healthy",
                perfhost_core::result::memory::Verdict::Moderate => {
                    "moderate growth — leak warning"
                }
                perfhost_core::result::memory::Verdict::High => "high growth — leak warning",
                perfhost_core::result::memory::Verdict::TooShort => "too short to judge",
            };
            let _ = writeln!(
                h,
                "<table><tbody><tr><th class=\"l\">Verdict</th><td class=\"l{}\">{verdict}</td></tr>\
                 <tr><th class=\"l\">RSS</th><td class=\"l\">initial {:.1} MB, final {:.1} MB, min {:.1}, max {:.1}, average {:.1}</td></tr>\
                 <tr><th class=\"l\">Growth</th><td class=\"l\">{:+.2} MB/min (least squares after {:.0} s warm-up, R² {:.2})</td></tr>\
                 <tr><th class=\"l\">VMS</th><td class=\"l\">{:.1} → {:.1} MB</td></tr>\
                 <tr><th class=\"l\">Threads, open files</th><td class=\"l\">{} → {}, {} → {}</td></tr></tbody></table>",
                if a.verdict.is_warning() { " bad" } else { "" },
                a.rss.initial_mb,
                a.rss.final_mb,
                a.rss.min_mb,
                a.rss.max_mb,
                a.rss.avg_mb,
                a.growth_rate_mb_per_min,
                a.warmup_seconds,
                a.growth_fit_r2,
                a.vms.initial_mb,
                a.vms.final_mb,
                a.threads.initial,
                a.threads.last,
                a.fds.initial,
                a.fds.last
            );
            for flag in &a.flags {
                let _ = writeln!(h, "<div class=\"warn\">{}</div>", esc(flag));
            }
        }
        None => h.push_str("<p>No sample was taken.</p>"),
    }
    h.push_str("<p class=\"muted\">Its charts are with the others above.</p></section>\n");
}

/// A plan value as text: scalars as they are, maps as `k: v, …`, lists joined with `; `.
fn plan_value(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "—".into(),
        Value::Object(o) if o.is_empty() => "—".into(),
        Value::Array(a) => a.iter().map(plan_value).collect::<Vec<_>>().join("; "),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}: {}", plan_value(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn plan_section(h: &mut String, result: &RunResult) {
    h.push_str("<section id=\"plan\"><h2>Plan</h2><table><tbody>\n");
    // Rendered from the serialized plan so fields added later show up without a change here.
    if let Ok(serde_json::Value::Object(plan)) = serde_json::to_value(&result.plan) {
        for (key, value) in &plan {
            let _ = writeln!(
                h,
                "<tr><th class=\"l\">{}</th><td class=\"msg\">{}</td></tr>",
                esc(&key.replace('_', " ")),
                esc(&plan_value(value))
            );
        }
    }
    let _ = writeln!(
        h,
        "<tr><th class=\"l\">target</th><td class=\"msg\">{}</td></tr><tr><th class=\"l\">seed</th><td class=\"msg\">{}</td></tr>",
        esc(&result.meta.target),
        result.meta.seed
    );
    h.push_str("</tbody></table>\n");
    if !result.plugins.is_empty() {
        h.push_str("<h3>Plugins</h3><div class=\"scroll\"><table><thead><tr><th class=\"l\">Plugin</th><th class=\"l\">Source</th><th class=\"l\">Contract</th><th class=\"l\">Classes (weight: tasks)</th><th class=\"l\">sha256</th></tr></thead><tbody>\n");
        for p in &result.plugins {
            let classes = p
                .classes
                .iter()
                .map(|c| {
                    let tasks = c
                        .tasks
                        .iter()
                        .map(|t| format!("{}×{}", t.name, t.weight))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!("{} ({}: {tasks})", c.name, c.weight)
                })
                .collect::<Vec<_>>()
                .join("; ");
            let _ = writeln!(
                h,
                "<tr><td class=\"name\">{}</td><td class=\"msg\">{}</td><td class=\"l\">{}</td><td class=\"msg\">{}</td><td class=\"l\"><code>{}</code></td></tr>",
                esc(&p.name),
                esc(&p.source),
                esc(&p.contract),
                esc(&classes),
                esc(p.sha256.get(..12).unwrap_or(&p.sha256))
            );
        }
        h.push_str("</tbody></table></div>\n");
    }
    h.push_str("</section>\n");
}
