//! The serializable summary of recorded statistics: rows of the statistics table, failure and
//! task-error groups, history points. This is what the JSON result holds.

use base64::Engine as _;
use hdrhistogram::serialization::Serializer as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use std::collections::BTreeMap;

use super::record::Entry;
use crate::plan::Protocol;

/// A percentile every report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Percentile {
    /// The median.
    P50,
    /// The 66th percentile.
    P66,
    /// The 75th percentile.
    P75,
    /// The 80th percentile.
    P80,
    /// The 90th percentile.
    P90,
    /// The 95th percentile.
    P95,
    /// The 98th percentile.
    P98,
    /// The 99th percentile.
    P99,
    /// The 99.9th percentile.
    P99_9,
    /// The 99.99th percentile.
    P99_99,
    /// The maximum.
    P100,
}

impl Percentile {
    /// Every reported percentile, in report order (Locust's set).
    pub const ALL: [Percentile; 11] = [
        Percentile::P50,
        Percentile::P66,
        Percentile::P75,
        Percentile::P80,
        Percentile::P90,
        Percentile::P95,
        Percentile::P98,
        Percentile::P99,
        Percentile::P99_9,
        Percentile::P99_99,
        Percentile::P100,
    ];

    /// The percentile in percent (95.0).
    pub fn value(self) -> f64 {
        match self {
            Percentile::P50 => 50.0,
            Percentile::P66 => 66.0,
            Percentile::P75 => 75.0,
            Percentile::P80 => 80.0,
            Percentile::P90 => 90.0,
            Percentile::P95 => 95.0,
            Percentile::P98 => 98.0,
            Percentile::P99 => 99.0,
            Percentile::P99_9 => 99.9,
            Percentile::P99_99 => 99.99,
            Percentile::P100 => 100.0,
        }
    }

    /// As the JSON result and the CSV headers write it: `95`, `99.9`.
    pub fn label(self) -> &'static str {
        match self {
            Percentile::P50 => "50",
            Percentile::P66 => "66",
            Percentile::P75 => "75",
            Percentile::P80 => "80",
            Percentile::P90 => "90",
            Percentile::P95 => "95",
            Percentile::P98 => "98",
            Percentile::P99 => "99",
            Percentile::P99_9 => "99.9",
            Percentile::P99_99 => "99.99",
            Percentile::P100 => "100",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The reported percentiles of a histogram, in milliseconds. In JSON a list of
/// `[label, value]` pairs in report order (`[["50", 7.5], ["66", 10.4], …]`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Percentiles([f64; 11]);

impl Percentiles {
    /// The percentiles of a histogram of microseconds; all 0 when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let mut values = [0.0; 11];
        if !histogram.is_empty() {
            for p in Percentile::ALL {
                values[p.index()] = histogram.value_at_quantile(p.value() / 100.0) as f64 / 1000.0;
            }
        }
        Percentiles(values)
    }

    /// One percentile, in milliseconds.
    pub fn get(&self, p: Percentile) -> f64 {
        self.0[p.index()]
    }

    /// The higher of each pair: an upper bound for percentiles of two populations whose
    /// histograms are not at hand.
    pub fn zip_max(&self, other: &Self) -> Self {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0) {
            *a = a.max(b);
        }
        out
    }

    /// `self + other × weight`, percentile by percentile: a weighted mean built a part at a
    /// time (coarse history points of intervals whose histograms are gone).
    pub fn weighted_add(&self, other: &Self, weight: f64) -> Self {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0) {
            *a += b * weight;
        }
        out
    }

    /// Every percentile with its value, in report order.
    pub fn iter(&self) -> impl Iterator<Item = (Percentile, f64)> + '_ {
        Percentile::ALL.into_iter().map(|p| (p, self.get(p)))
    }
}

impl Serialize for Percentiles {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(|(p, v)| (p.label(), v)))
    }
}

impl<'de> Deserialize<'de> for Percentiles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs = Vec::<(String, f64)>::deserialize(d)?;
        let mut values = [0.0; 11];
        for (label, value) in pairs {
            if let Some(p) = Percentile::ALL.into_iter().find(|p| p.label() == label) {
                values[p.index()] = value;
            }
        }
        Ok(Percentiles(values))
    }
}

/// The counts and times every summary of an entry shares.
struct Basics {
    requests: u64,
    failures: u64,
    min_ms: f64,
    avg_ms: f64,
    max_ms: f64,
    median_ms: f64,
    avg_content_bytes: f64,
}

impl Basics {
    fn of(entry: &Entry) -> Self {
        let h = &entry.histogram;
        let ms = |us: u64| us as f64 / 1000.0;
        let n = entry.requests;
        let per_request = |total: u64| {
            if n == 0 {
                0.0
            } else {
                total as f64 / n as f64
            }
        };
        let (min_ms, max_ms, median_ms) = if h.is_empty() {
            (0.0, 0.0, 0.0)
        } else {
            (ms(h.min()), ms(h.max()), ms(h.value_at_quantile(0.5)))
        };
        Basics {
            requests: n,
            failures: entry.failures,
            min_ms,
            avg_ms: per_request(entry.sum_us) / 1000.0,
            max_ms,
            median_ms,
            avg_content_bytes: per_request(entry.content_bytes),
        }
    }
}

/// One row of the statistics table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndpointStats {
    /// The HTTP method, or a custom event's kind (`grpc`).
    pub method: String,
    /// The row's name: the request's name, or its path when it has none.
    pub name: String,
    /// Requests sent, failed ones included.
    pub requests: u64,
    /// Requests that failed (an error, HTTP 4xx/5xx, or the plugin's verdict).
    pub failures: u64,
    /// Fastest response time, in milliseconds (0 without requests).
    pub min_ms: f64,
    /// Mean response time, in milliseconds.
    pub avg_ms: f64,
    /// Slowest response time, in milliseconds.
    pub max_ms: f64,
    /// Median response time, in milliseconds.
    pub median_ms: f64,
    /// The reported percentiles of the response time, in milliseconds.
    pub percentiles_ms: Percentiles,
    /// Mean response body size, in bytes.
    pub avg_content_bytes: f64,
    /// Requests per second over the measured time.
    pub rps: f64,
    /// Failures per second over the measured time.
    pub failures_per_s: f64,
    /// The full histogram, HDR V2 + DEFLATE, base64 — re-renderable and mergeable.
    pub histogram: String,
    /// Response time from the intended start (coordinated-omission corrected), in runs with
    /// a schedule; the fields above are the service time, from the actual send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected: Option<CorrectedStats>,
    /// Responses by the HTTP they came over (`HTTP/1.1`, `HTTP/2`), those seen only; absent
    /// for rows without HTTP responses (custom events, requests that all failed to connect).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub protocols: BTreeMap<String, u64>,
}

/// A row's `protocols` from its entry's counts.
pub fn protocol_counts(counts: &[u64; 2]) -> BTreeMap<String, u64> {
    Protocol::ALL
        .into_iter()
        .filter(|p| counts[p.index()] > 0)
        .map(|p| (p.as_str().to_string(), counts[p.index()]))
        .collect()
}

/// An entry's counts from a row's `protocols` (names this version does not know are left out).
pub fn protocol_array(counts: &BTreeMap<String, u64>) -> [u64; 2] {
    let mut out = [0; 2];
    for p in Protocol::ALL {
        out[p.index()] = counts.get(p.as_str()).copied().unwrap_or(0);
    }
    out
}

/// The corrected latency of a row: from its task's intended start (its arrival in the open
/// model) to the response — what a client on that schedule would have waited.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CorrectedStats {
    /// Shortest corrected latency, in milliseconds.
    pub min_ms: f64,
    /// Mean corrected latency, in milliseconds.
    pub avg_ms: f64,
    /// Median corrected latency, in milliseconds.
    pub median_ms: f64,
    /// Longest corrected latency, in milliseconds.
    pub max_ms: f64,
    /// The reported percentiles of the corrected latency, in milliseconds.
    pub percentiles_ms: Percentiles,
    /// The corrected histogram, encoded as `EndpointStats::histogram`.
    pub histogram: String,
}

impl CorrectedStats {
    fn of(h: &Histogram<u64>) -> Self {
        CorrectedStats {
            min_ms: h.min() as f64 / 1000.0,
            avg_ms: h.mean() / 1000.0,
            median_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
            max_ms: h.max() as f64 / 1000.0,
            percentiles_ms: Percentiles::of(h),
            histogram: serialize_histogram(h),
        }
    }
}

impl EndpointStats {
    /// The row of `entry`, its rates over `seconds`.
    pub fn from_entry(method: &str, name: &str, entry: &Entry, seconds: f64) -> Self {
        let b = Basics::of(entry);
        let per_s = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        EndpointStats {
            method: method.to_string(),
            name: name.to_string(),
            requests: b.requests,
            failures: b.failures,
            min_ms: b.min_ms,
            avg_ms: b.avg_ms,
            max_ms: b.max_ms,
            median_ms: b.median_ms,
            percentiles_ms: Percentiles::of(&entry.histogram),
            avg_content_bytes: b.avg_content_bytes,
            rps: per_s(b.requests),
            failures_per_s: per_s(b.failures),
            histogram: serialize_histogram(&entry.histogram),
            corrected: entry.corrected.as_ref().map(CorrectedStats::of),
            protocols: protocol_counts(&entry.protocols),
        }
    }

    /// A reported percentile, in milliseconds.
    pub fn percentile(&self, p: Percentile) -> f64 {
        self.percentiles_ms.get(p)
    }
}

/// A histogram as HDR V2 + DEFLATE in base64 (empty if it cannot be encoded).
pub fn serialize_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    let mut serializer = hdrhistogram::serialization::V2DeflateSerializer::new();
    match serializer.serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
        Err(_) => String::new(),
    }
}

/// The histogram `serialize_histogram` wrote; `None` when the text is not one.
pub fn deserialize_histogram(text: &str) -> Option<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut &bytes[..])
        .ok()
}

/// A failure group (Locust's failures table).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailureGroup {
    /// The HTTP method, or a custom event's kind (`grpc`).
    pub method: String,
    /// The row's name: the request's name, or its path when it has none.
    pub name: String,
    /// The failure's message (`HTTP 503`, `timed out`, the plugin's reason).
    pub error: String,
    /// How many requests failed so.
    pub occurrences: u64,
    /// When it first happened, Unix seconds.
    pub first_seen: f64,
    /// When it last happened, Unix seconds.
    pub last_seen: f64,
}

/// A task error group (Locust's exceptions table).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskErrorGroup {
    /// `Class.task` where it happened.
    pub location: String,
    /// The error the task returned.
    pub message: String,
    /// How many task runs ended so.
    pub occurrences: u64,
    /// When it first happened, Unix seconds.
    pub first_seen: f64,
    /// When it last happened, Unix seconds.
    pub last_seen: f64,
}

/// One point of the per-interval history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryPoint {
    /// End of the interval, Unix seconds.
    pub time: f64,
    /// Users running at the end of the interval.
    pub users: u64,
    /// Requests in the interval, failed ones included.
    pub requests: u64,
    /// Requests failed in the interval.
    pub failures: u64,
    /// Requests per second in the interval.
    pub rps: f64,
    /// Failures per second in the interval.
    pub failures_per_s: f64,
    /// The interval's response-time percentiles, in milliseconds.
    pub percentiles_ms: Percentiles,
    /// Percentiles of the last `WINDOW_SECONDS` up to this point (charts draw these), `None`
    /// when the window holds no request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<Percentiles>,
    /// The interval's histogram (as `EndpointStats::histogram`), kept in shard runs so that
    /// `perfhost merge` adds the shards' intervals exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<String>,
    /// Per (method, name): requests, failures and percentiles in this interval.
    #[serde(deserialize_with = "crate::stats::capped::endpoints")]
    pub endpoints: Vec<HistoryEndpoint>,
    /// The whole run up to the end of this interval (absent in results of older versions).
    #[serde(default)]
    pub totals: Option<RunningTotals>,
}

/// Cumulative numbers of the run so far (Locust's "Total …" history columns).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunningTotals {
    /// Requests so far.
    pub requests: u64,
    /// Failed requests so far.
    pub failures: u64,
    /// Median response time so far, in milliseconds.
    pub median_ms: f64,
    /// Mean response time so far, in milliseconds.
    pub avg_ms: f64,
    /// Fastest response time so far, in milliseconds.
    pub min_ms: f64,
    /// Slowest response time so far, in milliseconds.
    pub max_ms: f64,
    /// Mean response body size so far, in bytes.
    pub avg_content_bytes: f64,
}

impl RunningTotals {
    pub(super) fn from_entry(e: &Entry) -> Self {
        Basics::of(e).into()
    }
}

impl From<Basics> for RunningTotals {
    fn from(b: Basics) -> Self {
        RunningTotals {
            requests: b.requests,
            failures: b.failures,
            median_ms: b.median_ms,
            avg_ms: b.avg_ms,
            min_ms: b.min_ms,
            max_ms: b.max_ms,
            avg_content_bytes: b.avg_content_bytes,
        }
    }
}

impl From<&EndpointStats> for RunningTotals {
    fn from(t: &EndpointStats) -> Self {
        RunningTotals {
            requests: t.requests,
            failures: t.failures,
            median_ms: t.median_ms,
            avg_ms: t.avg_ms,
            min_ms: t.min_ms,
            max_ms: t.max_ms,
            avg_content_bytes: t.avg_content_bytes,
        }
    }
}

/// One row's numbers in one history interval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryEndpoint {
    /// The HTTP method, or a custom event's kind (`grpc`).
    pub method: String,
    /// The row's name: the request's name, or its path when it has none.
    pub name: String,
    /// The row's requests in the interval.
    pub requests: u64,
    /// The row's failed requests in the interval.
    pub failures: u64,
    /// The row's response-time percentiles in the interval, in milliseconds.
    pub percentiles_ms: Percentiles,
    /// Over the last `WINDOW_SECONDS`, as `HistoryPoint::window_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<Percentiles>,
    /// This endpoint's histogram of the interval (shard runs and `--hlog`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<String>,
}
