//! The live board in the Prometheus text exposition format (0.0.4), for `/metrics`: counters
//! per endpoint and per failure, latency as histograms (cumulative buckets a Prometheus can
//! aggregate across generators — percentile gauges cannot be), users, arrivals, generator CPU.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use perfhost_core::stats::live::Board;

/// Bucket bounds in seconds: 0.5 ms … 60 s, then `+Inf`.
const BUCKETS_S: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One histogram's buckets, sum and count; `labels` is `method="…",name="…"`.
fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram<u64>, sum_us: u64) {
    let mut counts = [0u64; BUCKETS_S.len()];
    for v in h.iter_recorded() {
        // HDR keeps values to 3 significant digits: its highest equivalent value decides.
        let seconds = h.highest_equivalent(v.value_iterated_to()) as f64 / 1e6;
        if let Some(i) = BUCKETS_S.iter().position(|&b| seconds <= b) {
            counts[i] += v.count_at_value();
        }
    }
    let mut cumulative = 0;
    for (bound, n) in BUCKETS_S.iter().zip(counts) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.len());
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.len());
}

/// `/metrics` of the run so far.
pub fn render(board: &Board) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let mut rows: Vec<_> = board.all.entries.iter().collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    let labels =
        |method: &str, name: &str| format!("method=\"{}\",name=\"{}\"", label(method), label(name));

    header(
        &mut out,
        "perfhost_requests_total",
        "counter",
        "Requests completed (failed ones included), per endpoint.",
    );
    for ((method, name), e) in &rows {
        let _ = writeln!(
            out,
            "perfhost_requests_total{{{}}} {}",
            labels(method, name),
            e.requests
        );
    }
    header(
        &mut out,
        "perfhost_request_failures_total",
        "counter",
        "Failed requests, per endpoint and error (HTTP status or transport error).",
    );
    let mut failures: Vec<_> = board.all.failure_counts().collect();
    failures.sort();
    for (method, name, error, n) in failures {
        let _ = writeln!(
            out,
            "perfhost_request_failures_total{{{},error=\"{}\"}} {n}",
            labels(method, name),
            label(error)
        );
    }
    header(
        &mut out,
        "perfhost_request_duration_seconds",
        "histogram",
        "Service time, from the actual send to the response.",
    );
    for ((method, name), e) in &rows {
        histogram(
            &mut out,
            "perfhost_request_duration_seconds",
            &labels(method, name),
            &e.histogram,
            e.sum_us,
        );
    }
    if rows.iter().any(|(_, e)| e.corrected.is_some()) {
        header(&mut out, "perfhost_request_corrected_duration_seconds", "histogram", "Response time from the intended start (coordinated-omission corrected), in runs with a schedule.");
        for ((method, name), e) in &rows {
            if let Some(c) = &e.corrected {
                let sum = (c.mean() * c.len() as f64) as u64;
                histogram(
                    &mut out,
                    "perfhost_request_corrected_duration_seconds",
                    &labels(method, name),
                    c,
                    sum,
                );
            }
        }
    }
    header(&mut out, "perfhost_users", "gauge", "Virtual users alive.");
    let _ = writeln!(out, "perfhost_users {}", board.users);
    header(
        &mut out,
        "perfhost_run_seconds",
        "gauge",
        "Seconds since the run started.",
    );
    let _ = writeln!(out, "perfhost_run_seconds {:.3}", board.elapsed_s);
    header(
        &mut out,
        "perfhost_run_finished",
        "gauge",
        "Whether the run has ended (then these are its final numbers).",
    );
    let _ = writeln!(out, "perfhost_run_finished {}", u8::from(board.finished));
    header(
        &mut out,
        "perfhost_generator_cpu_percent",
        "gauge",
        "perfhost's CPU in the last second, percent of one core.",
    );
    let _ = writeln!(
        out,
        "perfhost_generator_cpu_percent {:.1}",
        board.generator_cpu_percent
    );
    if let Some(a) = &board.arrivals {
        header(
            &mut out,
            "perfhost_arrivals_total",
            "counter",
            "Open-model arrivals, by outcome so far (scheduled counts every one).",
        );
        for (outcome, n) in [
            ("scheduled", a.scheduled),
            ("completed", a.completed),
            ("failed", a.failed),
        ] {
            let _ = writeln!(out, "perfhost_arrivals_total{{outcome=\"{outcome}\"}} {n}");
        }
        header(
            &mut out,
            "perfhost_arrivals_dropped_total",
            "counter",
            "Arrivals that found no free user with the pool full, per class.",
        );
        for (class, n) in &a.dropped_by_class {
            let _ = writeln!(
                out,
                "perfhost_arrivals_dropped_total{{class=\"{}\"}} {n}",
                label(class)
            );
        }
        header(
            &mut out,
            "perfhost_arrival_lag_p99_seconds",
            "gauge",
            "How late the dispatcher handed arrivals to users, p99 of the last second.",
        );
        let _ = writeln!(
            out,
            "perfhost_arrival_lag_p99_seconds {}",
            a.lag_p99_us as f64 / 1e6
        );
    }
    out
}
