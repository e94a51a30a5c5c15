//! Locust-compatible CSV files: `PREFIX_stats.csv`, `PREFIX_stats_history.csv`,
//! `PREFIX_failures.csv` and `PREFIX_exceptions.csv`, byte for byte in Locust 2.x's layout
//! (headers, row order, `\r\n` line ends, Python's number formatting and CSV quoting).
//!
//! Reference: Locust 2.47.0 (`locust/stats.py`, `StatsCSV` and `StatsCSVFileWriter`); a real
//! Locust run's files are kept in `host/tests/fixtures/locust-2.47.0/`. Decisions where perfhost
//! differs are in `docs/reports.md`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use perfhost_core::result::RunResult;
use perfhost_core::stats::{EndpointStats, HistoryPoint, Percentile, Percentiles, RunningTotals};

/// `PREFIX_stats.csv` columns before the percentiles.
const STATS_COLUMNS: [&str; 11] = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
];

/// `PREFIX_stats_history.csv` columns before the percentiles.
const HISTORY_COLUMNS: [&str; 6] = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
];

/// `PREFIX_stats_history.csv` columns after the percentiles.
const HISTORY_TOTAL_COLUMNS: [&str; 7] = [
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
];

/// Locust 2.47's failures columns (it has written First Seen / Last Seen since 2.4x).
const FAILURES_COLUMNS: [&str; 6] = [
    "Method",
    "Name",
    "Error",
    "Occurrences",
    "First Seen",
    "Last Seen",
];

const EXCEPTIONS_COLUMNS: [&str; 4] = ["Count", "Message", "Traceback", "Nodes"];

/// What Locust writes in the Nodes column of a standalone (not distributed) run.
const LOCAL_NODE: &str = "local";

/// Python's `csv.writer` line terminator.
const EOL: &str = "\r\n";

/// The four file names for a `--csv PREFIX` (`PREFIX_stats.csv`, …), as Locust names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvPaths {
    pub stats: PathBuf,
    pub history: PathBuf,
    pub failures: PathBuf,
    pub exceptions: PathBuf,
    /// Only for runs with a schedule / open-model runs.
    pub corrected: PathBuf,
    pub arrivals: PathBuf,
}

impl CsvPaths {
    pub fn new(prefix: &Path) -> Self {
        let with = |suffix: &str| {
            let mut name = OsString::from(prefix.as_os_str());
            name.push(suffix);
            PathBuf::from(name)
        };
        CsvPaths {
            stats: with("_stats.csv"),
            history: with("_stats_history.csv"),
            failures: with("_failures.csv"),
            exceptions: with("_exceptions.csv"),
            corrected: with("_stats_corrected.csv"),
            arrivals: with("_arrivals.csv"),
        }
    }

    pub fn all(&self) -> [&Path; 4] {
        [&self.stats, &self.history, &self.failures, &self.exceptions]
    }
}

// ---------- Python formatting ----------

/// A float as Python's `repr` (and so `csv.writer`) prints it: `3.0`, `0.1`, `1e-05`, `1e+16`.
pub fn py_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // `{:e}` gives the shortest round-trip digits, like Python's repr.
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{v}");
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    }
}

/// Locust's `bucket_response_time`: the response time rounded to about two significant digits
/// (Python's round-half-even), which is what its median and percentile columns show.
pub fn bucket_ms(ms: f64) -> i64 {
    let unit = if ms < 100.0 {
        1.0
    } else if ms < 1000.0 {
        10.0
    } else if ms < 10_000.0 {
        100.0
    } else {
        1000.0
    };
    ((ms / unit).round_ties_even() * unit) as i64
}

/// Locust's median column: the bucketed median, kept within [min, max] (then a float).
fn median_field(median_ms: f64, min_ms: f64, max_ms: f64, requests: u64) -> String {
    if requests == 0 {
        return "0".into();
    }
    let bucketed = bucket_ms(median_ms);
    if bucketed as f64 > max_ms {
        py_float(max_ms)
    } else if (bucketed as f64) < min_ms {
        py_float(min_ms)
    } else {
        bucketed.to_string()
    }
}

/// Locust writes `min_response_time or 0`: an int 0 when there is none (or it is 0.0).
fn min_field(min_ms: f64, requests: u64) -> String {
    if requests == 0 || min_ms == 0.0 {
        "0".into()
    } else {
        py_float(min_ms)
    }
}

/// A float that Locust leaves as the int 0 while nothing was recorded.
fn float_or_int_zero(v: f64, requests: u64) -> String {
    if requests == 0 {
        "0".into()
    } else {
        py_float(v)
    }
}

fn percentile_fields(p: &Percentiles, requests: u64) -> Vec<String> {
    p.iter()
        .map(|(_, ms)| {
            if requests == 0 {
                "N/A".to_string()
            } else {
                bucket_ms(ms).to_string()
            }
        })
        .collect()
}

/// `50%`, `66%`, … `99.99%`, `100%`, as Locust's `get_readable_percentiles`.
fn percentile_headers() -> Vec<String> {
    Percentile::ALL
        .iter()
        .map(|p| format!("{}%", p.label()))
        .collect()
}

/// Python `csv.writer` (QUOTE_MINIMAL): quote a field holding `,`, `"`, `\r` or `\n`; double
/// the quotes inside.
pub fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn csv_row<S: AsRef<str>>(fields: impl IntoIterator<Item = S>) -> String {
    let mut line = fields
        .into_iter()
        .map(|f| csv_field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str(EOL);
    line
}

pub use perfhost_core::plan::utc_timestamp;

// ---------- PREFIX_stats.csv ----------

pub fn stats_header() -> String {
    csv_row(
        STATS_COLUMNS
            .iter()
            .map(|s| s.to_string())
            .chain(percentile_headers()),
    )
}

/// Request count, failure count, median, average, min, max and average content size, formatted
/// as Locust writes them (the same seven columns in stats and history files).
fn count_and_time_fields(t: &RunningTotals) -> [String; 7] {
    let n = t.requests;
    [
        n.to_string(),
        t.failures.to_string(),
        median_field(t.median_ms, t.min_ms, t.max_ms, n),
        py_float(if n == 0 { 0.0 } else { t.avg_ms }),
        min_field(t.min_ms, n),
        float_or_int_zero(t.max_ms, n),
        float_or_int_zero(t.avg_content_bytes, n),
    ]
}

fn stats_row(method: &str, name: &str, s: &EndpointStats) -> String {
    let n = s.requests;
    let mut fields = vec![method.to_string(), name.to_string()];
    fields.extend(count_and_time_fields(&RunningTotals::from(s)));
    fields.extend([py_float(s.rps), py_float(s.failures_per_s)]);
    fields.extend(percentile_fields(&s.percentiles_ms, n));
    csv_row(fields)
}

/// `PREFIX_stats.csv`: one row per (method, name) sorted by name then method (Locust sorts its
/// `(name, method)` keys), then the Aggregated row with an empty Type.
pub fn stats_csv(result: &RunResult) -> String {
    let mut rows: Vec<&EndpointStats> = result.stats.iter().collect();
    rows.sort_by(|a, b| (&a.name, &a.method).cmp(&(&b.name, &b.method)));
    let mut out = stats_header();
    for s in rows {
        out.push_str(&stats_row(&s.method, &s.name, s));
    }
    out.push_str(&stats_row("", "Aggregated", &result.total));
    out
}

/// `PREFIX_stats_corrected.csv`, for runs with a schedule: `PREFIX_stats.csv`'s rows and
/// headers with the times from each request's intended start (the coordinated-omission
/// corrected latency) in place of the service time. `None` without a schedule.
pub fn corrected_stats_csv(result: &RunResult) -> Option<String> {
    result.total.corrected.as_ref()?;
    let corrected = |s: &EndpointStats| {
        let mut s = s.clone();
        if let Some(c) = s.corrected.take() {
            (s.min_ms, s.avg_ms, s.median_ms, s.max_ms) =
                (c.min_ms, c.avg_ms, c.median_ms, c.max_ms);
            s.percentiles_ms = c.percentiles_ms;
        }
        s
    };
    let mut rows: Vec<EndpointStats> = result.stats.iter().map(corrected).collect();
    rows.sort_by(|a, b| (&a.name, &a.method).cmp(&(&b.name, &b.method)));
    let mut out = stats_header();
    for s in &rows {
        out.push_str(&stats_row(&s.method, &s.name, s));
    }
    out.push_str(&stats_row("", "Aggregated", &corrected(&result.total)));
    Some(out)
}

/// `PREFIX_arrivals.csv`, for open-model runs: what became of the arrivals (dropped ones
/// per class) and the dispatcher's lag. `None` for the closed model.
pub fn arrivals_csv(result: &RunResult) -> Option<String> {
    let a = result.arrivals.as_ref()?;
    let mut out = csv_row(["Metric", "Class", "Value"]);
    for (metric, value) in [
        ("scheduled", a.scheduled),
        ("completed", a.completed),
        ("failed", a.failed),
        ("dropped", a.dropped),
        ("cancelled", a.cancelled),
    ] {
        out.push_str(&csv_row([
            metric.to_string(),
            String::new(),
            value.to_string(),
        ]));
    }
    for (class, n) in &a.dropped_by_class {
        out.push_str(&csv_row([
            "dropped".to_string(),
            class.clone(),
            n.to_string(),
        ]));
    }
    for (metric, value) in [
        ("users", a.users as u64),
        ("max_users", a.max_users as u64),
        ("lag_p50_us", a.lag_p50_us),
        ("lag_p99_us", a.lag_p99_us),
        ("lag_max_us", a.lag_max_us),
        ("saturated_seconds", a.saturated_seconds),
    ] {
        out.push_str(&csv_row([
            metric.to_string(),
            String::new(),
            value.to_string(),
        ]));
    }
    Some(out)
}

// ---------- PREFIX_failures.csv / PREFIX_exceptions.csv ----------

pub fn failures_header() -> String {
    csv_row(FAILURES_COLUMNS)
}

/// `PREFIX_failures.csv`, in the result's order (most frequent first). Locust orders them by
/// a hash of the key, which carries no meaning.
pub fn failures_csv(result: &RunResult) -> String {
    let mut out = failures_header();
    for f in &result.failures {
        out.push_str(&csv_row([
            f.method.clone(),
            f.name.clone(),
            f.error.clone(),
            f.occurrences.to_string(),
            utc_timestamp(f.first_seen),
            utc_timestamp(f.last_seen),
        ]));
    }
    out
}

pub fn exceptions_header() -> String {
    csv_row(EXCEPTIONS_COLUMNS)
}

/// `PREFIX_exceptions.csv`: task errors in the order they were first seen (as Locust's dict of
/// exceptions). A WASM task has no Python traceback: the Traceback column holds where it
/// happened (`Class.task`).
pub fn exceptions_csv(result: &RunResult) -> String {
    let mut errors: Vec<_> = result.task_errors.iter().collect();
    errors.sort_by(|a, b| {
        a.first_seen
            .total_cmp(&b.first_seen)
            .then_with(|| a.location.cmp(&b.location))
            .then_with(|| a.message.cmp(&b.message))
    });
    let mut out = exceptions_header();
    for e in errors {
        out.push_str(&csv_row([
            e.occurrences.to_string(),
            e.message.clone(),
            e.location.clone(),
            LOCAL_NODE.to_string(),
        ]));
    }
    out
}

// ---------- PREFIX_stats_history.csv ----------

pub fn history_header() -> String {
    csv_row(
        HISTORY_COLUMNS
            .iter()
            .map(|s| s.to_string())
            .chain(percentile_headers())
            .chain(HISTORY_TOTAL_COLUMNS.iter().map(|s| s.to_string())),
    )
}

/// Share of an interval's requests each reported percentile stands for, in report order
/// (the value at p50 stands for the lower half, p66 for (50, 66], …).
fn percentile_masses() -> [f64; Percentile::ALL.len()] {
    let mut masses = [0.0; Percentile::ALL.len()];
    let mut below = 0.0;
    for (i, p) in Percentile::ALL.iter().enumerate() {
        masses[i] = (p.value() - below) / 100.0;
        below = p.value();
    }
    masses
}

/// The run so far, folded from history points: exact counts and max; the cumulative median,
/// average and min are estimated from the per-interval percentiles (a point carries no
/// cumulative histogram). The last row of a file rendered from a whole result is exact.
#[derive(Debug, Default, Clone)]
struct HistoryTotals {
    requests: u64,
    failures: u64,
    max_ms: f64,
    /// Response time (µs) → how many requests it stands for.
    sketch: BTreeMap<u64, f64>,
}

/// One row's interval figures: the aggregate of a point, or one endpoint of it.
struct RowData<'a> {
    time: f64,
    users: u64,
    method: &'a str,
    name: &'a str,
    rps: f64,
    failures_per_s: f64,
    requests: u64,
    failures: u64,
    percentiles: &'a Percentiles,
    totals: Option<RunningTotals>,
}

impl<'a> RowData<'a> {
    fn of_point(point: &'a HistoryPoint) -> Self {
        RowData {
            time: point.time,
            users: point.users,
            method: "",
            name: "Aggregated",
            rps: point.rps,
            failures_per_s: point.failures_per_s,
            requests: point.requests,
            failures: point.failures,
            percentiles: &point.percentiles_ms,
            totals: point.totals.clone(),
        }
    }

    /// The rows of one point's endpoints (`--csv-full-history`); their rates from the
    /// interval's length, which the aggregate's rate gives.
    fn of_endpoints(point: &'a HistoryPoint) -> impl Iterator<Item = RowData<'a>> {
        let seconds = if point.rps > 0.0 {
            point.requests as f64 / point.rps
        } else {
            1.0
        };
        point.endpoints.iter().map(move |e| RowData {
            time: point.time,
            users: point.users,
            method: &e.method,
            name: &e.name,
            rps: e.requests as f64 / seconds,
            failures_per_s: e.failures as f64 / seconds,
            requests: e.requests,
            failures: e.failures,
            percentiles: &e.percentiles_ms,
            totals: None,
        })
    }
}

/// The running totals of the history rows: the aggregate's, and with `--csv-full-history`
/// each endpoint's.
#[derive(Debug, Default, Clone)]
struct HistoryBook {
    full: bool,
    aggregate: HistoryTotals,
    endpoints: BTreeMap<(String, String), HistoryTotals>,
}

impl HistoryBook {
    fn new(full: bool) -> Self {
        HistoryBook {
            full,
            ..Default::default()
        }
    }

    /// The rows of one point: each endpoint's first when full, then the Aggregated one.
    fn rows(&mut self, point: &HistoryPoint, exact: Option<&EndpointStats>) -> String {
        let mut out = String::new();
        if self.full {
            for row in RowData::of_endpoints(point) {
                let totals = self
                    .endpoints
                    .entry((row.method.to_string(), row.name.to_string()))
                    .or_default();
                totals.add(&row);
                out.push_str(&totals.row(&row, None));
            }
        }
        let row = RowData::of_point(point);
        self.aggregate.add(&row);
        out.push_str(&self.aggregate.row(&row, exact));
        out
    }
}

impl HistoryTotals {
    fn add(&mut self, point: &RowData<'_>) {
        self.requests += point.requests;
        self.failures += point.failures;
        if point.requests == 0 {
            return;
        }
        let n = point.requests as f64;
        for (mass, (pct, ms)) in percentile_masses().iter().zip(point.percentiles.iter()) {
            let us = (ms.max(0.0) * 1000.0).round() as u64;
            *self.sketch.entry(us).or_insert(0.0) += mass * n;
            if pct == Percentile::P100 {
                self.max_ms = self.max_ms.max(ms);
            }
        }
    }

    /// (median, average, min) estimated from the sketch, in ms.
    fn estimates(&self) -> (f64, f64, f64) {
        let total: f64 = self.sketch.values().sum();
        if total <= 0.0 {
            return (0.0, 0.0, 0.0);
        }
        let mut seen = 0.0;
        let mut median = 0.0;
        for (&us, &mass) in &self.sketch {
            seen += mass;
            if seen >= total * 0.5 {
                median = us as f64 / 1000.0;
                break;
            }
        }
        let avg = self
            .sketch
            .iter()
            .map(|(&us, &mass)| us as f64 / 1000.0 * mass)
            .sum::<f64>()
            / total;
        let min = self
            .sketch
            .keys()
            .next()
            .map(|&us| us as f64 / 1000.0)
            .unwrap_or(0.0);
        (median, avg, min)
    }

    /// Row for `point` (already added); `exact` replaces the estimates (the run's final total).
    fn row(&self, point: &RowData<'_>, exact: Option<&EndpointStats>) -> String {
        let mut fields = vec![
            (point.time.max(0.0).floor() as i64).to_string(),
            point.users.to_string(),
            point.method.to_string(),
            point.name.to_string(),
            format!("{:.6}", point.rps),
            format!("{:.6}", point.failures_per_s),
        ];
        // Locust: N/A until the first request; then the percentiles of the current window.
        fields.extend(point.percentiles.iter().map(|(_, ms)| {
            if self.requests == 0 {
                "N/A".to_string()
            } else if point.requests == 0 {
                "0".to_string()
            } else {
                bucket_ms(ms).to_string()
            }
        }));
        // Exact totals: the run's final row, else those the point carries (newer results).
        let exact = exact
            .map(RunningTotals::from)
            .or_else(|| point.totals.clone());
        match exact {
            Some(t) => fields.extend(count_and_time_fields(&t)),
            None => {
                let n = self.requests;
                let (median, avg, min) = self.estimates();
                fields.extend([
                    n.to_string(),
                    self.failures.to_string(),
                    median_field(median, min, self.max_ms, n),
                    py_float(if n == 0 { 0.0 } else { avg }),
                    min_field(min, n),
                    float_or_int_zero(self.max_ms, n),
                    // Not in a history point: unknown until the final row.
                    "0".to_string(),
                ]);
            }
        }
        csv_row(fields)
    }
}

/// `PREFIX_stats_history.csv` of a whole result: one Aggregated row per history point (as
/// Locust without `--csv-full-history`; with `full`, each endpoint's row first); the last
/// Aggregated row's totals are the run's exact totals.
pub fn history_csv(result: &RunResult, full: bool) -> String {
    let mut out = history_header();
    let mut book = HistoryBook::new(full);
    let last = result.history.len().saturating_sub(1);
    for (i, point) in result.history.iter().enumerate() {
        let exact = (i == last).then_some(&result.total);
        out.push_str(&book.rows(point, exact));
    }
    out
}

/// Appends `PREFIX_stats_history.csv` rows while a run goes: the header at `create`, one row
/// per `append` (flushed at once, so a crash loses nothing).
pub struct HistoryCsvWriter {
    file: File,
    path: PathBuf,
    book: HistoryBook,
}

impl HistoryCsvWriter {
    /// Creates (truncates) `PREFIX_stats_history.csv` and writes its header.
    pub fn create(prefix: &Path, full: bool) -> std::io::Result<Self> {
        let path = CsvPaths::new(prefix).history;
        create_parent(&path)?;
        std::fs::write(&path, history_header())?;
        // Append mode: rows always land at the end, even if the file was rewritten meanwhile.
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        Ok(HistoryCsvWriter {
            file,
            path,
            book: HistoryBook::new(full),
        })
    }

    /// Writes the row of one interval and flushes it.
    pub fn append(&mut self, point: &HistoryPoint) -> std::io::Result<()> {
        let rows = self.book.rows(point, None);
        self.file.write_all(rows.as_bytes())?;
        self.file.flush()
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

pub(crate) fn create_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python_repr() {
        for (v, py) in [
            (0.0, "0.0"),
            (1.0, "1.0"),
            (79.0, "79.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (4.17653816668917, "4.17653816668917"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123456789012345.0, "123456789012345.0"),
            (2.5e20, "2.5e+20"),
        ] {
            assert_eq!(py_float(v), py, "{v}");
        }
    }

    #[test]
    fn buckets_round_half_even_like_python() {
        assert_eq!(bucket_ms(0.5), 0);
        assert_eq!(bucket_ms(1.5), 2);
        assert_eq!(bucket_ms(2.5), 2);
        assert_eq!(bucket_ms(99.4), 99);
        assert_eq!(bucket_ms(147.0), 150);
        assert_eq!(bucket_ms(125.0), 120);
        assert_eq!(bucket_ms(3432.0), 3400);
        assert_eq!(bucket_ms(58760.0), 59000);
    }

    #[test]
    fn fields_are_quoted_like_python_csv() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("<b>x</b> 'q'"), "<b>x</b> 'q'");
    }

    #[test]
    fn utc_timestamps_match_locust() {
        assert_eq!(utc_timestamp(1795786330.7), "2026-11-27T13:32:10Z");
        assert_eq!(utc_timestamp(0.0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn median_is_clamped_to_min_and_max() {
        assert_eq!(median_field(0.3, 0.25, 0.4, 3), "0.25");
        assert_eq!(median_field(3.2, 0.9, 50.0, 3), "3");
        assert_eq!(median_field(0.0, 0.0, 0.0, 0), "0");
    }
}
