//! Statistics: HDR histograms per (method, name) and in total, failures grouped with samples,
//! task errors, and a per-interval history.
//!
//! Recording is sharded: every worker thread owns a `Shard` (an uncontended mutex) that its
//! users record into; the collector takes each shard's interval once a second and merges it.
//! So there is no global lock per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::serialization::Serializer as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds, 3 significant digits, up to one hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Beyond this many distinct (method, name) rows, new names are recorded as `other`.
pub const MAX_NAMES: usize = 500;
/// Failing responses kept as samples, per (method, name) and in total.
const SAMPLES_PER_NAME: usize = 3;
const MAX_SAMPLES: usize = 50;
/// Bytes of a failing response's body kept in its sample.
pub const SAMPLE_BODY_BYTES: usize = 2048;
/// The percentiles every report shows.
pub const PERCENTILES: [f64; 11] = [
    50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0,
];

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static bounds are valid")
}

/// Seconds since the Unix epoch, as a float.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A failing response kept for the report: what the server actually said.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailureSample {
    pub method: String,
    pub name: String,
    pub error: String,
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    /// The first 2 KiB of the body, lossily decoded.
    pub body: String,
    pub time: f64,
}

/// Counts of one (method, name) row.
#[derive(Clone)]
pub struct Entry {
    pub histogram: Histogram<u64>,
    pub requests: u64,
    pub failures: u64,
    pub content_bytes: u64,
    pub sum_us: u64,
}

impl Entry {
    fn new() -> Self {
        Entry {
            histogram: new_histogram(),
            requests: 0,
            failures: 0,
            content_bytes: 0,
            sum_us: 0,
        }
    }

    fn add(&mut self, other: &Entry) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        self.requests += other.requests;
        self.failures += other.failures;
        self.content_bytes += other.content_bytes;
        self.sum_us += other.sum_us;
    }
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    count: u64,
    first: f64,
    last: f64,
}

impl Seen {
    fn merge(&mut self, other: Seen) {
        self.count += other.count;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
    }
}

/// A borrowed (method, name) key: hashes like the owned tuple, so a row is found without
/// allocating on the per-request path.
#[derive(Hash)]
struct RowKey<'a>(&'a str, &'a str);

impl hashbrown::Equivalent<(String, String)> for RowKey<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// What was recorded in one interval (or, merged, in the whole run).
#[derive(Default, Clone)]
pub struct Interval {
    /// Keyed by (method, name).
    pub entries: hashbrown::HashMap<(String, String), Entry>,
    failures: HashMap<(String, String, String), Seen>,
    task_errors: HashMap<(String, String), Seen>,
    samples: Vec<FailureSample>,
    /// Requests the sandbox refused (another origin).
    pub denied: u64,
}

impl Interval {
    fn merge(&mut self, other: Interval) {
        for (key, entry) in other.entries {
            match self.entries.get_mut(&key) {
                Some(mine) => mine.add(&entry),
                None => {
                    self.entries.insert(key, entry);
                }
            }
        }
        for (key, seen) in other.failures {
            self.failures
                .entry(key)
                .and_modify(|s| s.merge(seen))
                .or_insert(seen);
        }
        for (key, seen) in other.task_errors {
            self.task_errors
                .entry(key)
                .and_modify(|s| s.merge(seen))
                .or_insert(seen);
        }
        for sample in other.samples {
            push_sample(&mut self.samples, sample);
        }
        self.denied += other.denied;
    }

    /// The sum over all rows.
    pub fn total(&self) -> Entry {
        let mut total = Entry::new();
        for entry in self.entries.values() {
            total.add(entry);
        }
        total
    }
}

fn push_sample(samples: &mut Vec<FailureSample>, sample: FailureSample) {
    let same = samples
        .iter()
        .filter(|s| s.method == sample.method && s.name == sample.name)
        .count();
    if samples.len() < MAX_SAMPLES && same < SAMPLES_PER_NAME {
        samples.push(sample);
    }
}

/// One request's outcome as the plugin host records it.
pub struct RequestRecord<'a> {
    pub method: &'a str,
    pub name: &'a str,
    pub latency_us: u64,
    pub content_bytes: u64,
    /// `Some(message)` for a failure.
    pub error: Option<&'a str>,
}

/// A worker thread's recording shard.
#[derive(Default)]
pub struct Shard {
    current: Mutex<Interval>,
}

impl Shard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Interval> {
        // A panic while holding the lock leaves counts that are still valid numbers.
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record(&self, rec: &RequestRecord<'_>, sample: Option<FailureSample>) {
        let mut interval = self.lock();
        let key = RowKey(rec.method, rec.name);
        if !interval.entries.contains_key(&key) {
            interval
                .entries
                .insert((rec.method.to_string(), rec.name.to_string()), Entry::new());
        }
        let Some(entry) = interval.entries.get_mut(&key) else {
            return;
        };
        entry.requests += 1;
        entry.content_bytes += rec.content_bytes;
        entry.sum_us += rec.latency_us;
        let _ = entry
            .histogram
            .record(rec.latency_us.clamp(1, MAX_LATENCY_US));
        if rec.error.is_some() {
            entry.failures += 1;
        }
        if let Some(error) = rec.error {
            let now = unix_now();
            let key = (
                rec.method.to_string(),
                rec.name.to_string(),
                error.to_string(),
            );
            let seen = Seen {
                count: 1,
                first: now,
                last: now,
            };
            interval
                .failures
                .entry(key)
                .and_modify(|s| s.merge(seen))
                .or_insert(seen);
            if let Some(sample) = sample {
                push_sample(&mut interval.samples, sample);
            }
        }
    }

    /// A task that ended with an error or a trap (Locust's exceptions), keyed by where and what.
    pub fn record_task_error(&self, location: &str, message: &str) {
        let now = unix_now();
        let seen = Seen {
            count: 1,
            first: now,
            last: now,
        };
        self.lock()
            .task_errors
            .entry((location.to_string(), message.to_string()))
            .and_modify(|s| s.merge(seen))
            .or_insert(seen);
    }

    pub fn record_denied(&self) {
        self.lock().denied += 1;
    }

    /// Takes what was recorded since the last call.
    pub fn take(&self) -> Interval {
        std::mem::take(&mut *self.lock())
    }
}

/// Every worker's shard; the collector reads them all.
#[derive(Clone, Default)]
pub struct Shards(pub Arc<Vec<Arc<Shard>>>);

impl Shards {
    pub fn new(count: usize) -> Self {
        Shards(Arc::new(
            (0..count.max(1))
                .map(|_| Arc::new(Shard::default()))
                .collect(),
        ))
    }

    pub fn take_all(&self) -> Interval {
        let mut merged = Interval::default();
        for shard in self.0.iter() {
            merged.merge(shard.take());
        }
        merged
    }
}

// ---------- the serializable summary ----------

/// Percentiles of a histogram, in milliseconds, in the order of `PERCENTILES`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Percentiles(pub Vec<(String, f64)>);

fn percentile_label(p: f64) -> String {
    format!("{p}")
}

fn percentiles(histogram: &Histogram<u64>) -> Percentiles {
    Percentiles(
        PERCENTILES
            .iter()
            .map(|&p| {
                let us = if histogram.is_empty() {
                    0
                } else {
                    histogram.value_at_quantile(p / 100.0)
                };
                (percentile_label(p), us as f64 / 1000.0)
            })
            .collect(),
    )
}

/// One row of the statistics table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndpointStats {
    pub method: String,
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    pub min_ms: f64,
    pub avg_ms: f64,
    pub max_ms: f64,
    pub median_ms: f64,
    pub percentiles_ms: Percentiles,
    pub avg_content_bytes: f64,
    pub rps: f64,
    pub failures_per_s: f64,
    /// The full histogram, HDR V2 + DEFLATE, base64 — re-renderable and mergeable.
    pub histogram: String,
}

impl EndpointStats {
    pub fn from_entry(method: &str, name: &str, entry: &Entry, seconds: f64) -> Self {
        let h = &entry.histogram;
        let ms = |us: u64| us as f64 / 1000.0;
        let empty = h.is_empty();
        EndpointStats {
            method: method.to_string(),
            name: name.to_string(),
            requests: entry.requests,
            failures: entry.failures,
            min_ms: if empty { 0.0 } else { ms(h.min()) },
            avg_ms: if entry.requests == 0 {
                0.0
            } else {
                entry.sum_us as f64 / entry.requests as f64 / 1000.0
            },
            max_ms: if empty { 0.0 } else { ms(h.max()) },
            median_ms: if empty {
                0.0
            } else {
                ms(h.value_at_quantile(0.5))
            },
            percentiles_ms: percentiles(h),
            avg_content_bytes: if entry.requests == 0 {
                0.0
            } else {
                entry.content_bytes as f64 / entry.requests as f64
            },
            rps: if seconds > 0.0 {
                entry.requests as f64 / seconds
            } else {
                0.0
            },
            failures_per_s: if seconds > 0.0 {
                entry.failures as f64 / seconds
            } else {
                0.0
            },
            histogram: serialize_histogram(h),
        }
    }

    /// The percentile `p` (e.g. 95.0) in milliseconds.
    pub fn percentile(&self, p: f64) -> f64 {
        let label = percentile_label(p);
        self.percentiles_ms
            .0
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, v)| *v)
            .unwrap_or(0.0)
    }
}

pub fn serialize_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    let mut serializer = hdrhistogram::serialization::V2DeflateSerializer::new();
    match serializer.serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
        Err(_) => String::new(),
    }
}

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
    pub method: String,
    pub name: String,
    pub error: String,
    pub occurrences: u64,
    pub first_seen: f64,
    pub last_seen: f64,
}

/// A task error group (Locust's exceptions table).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskErrorGroup {
    /// `Class.task` where it happened.
    pub location: String,
    pub message: String,
    pub occurrences: u64,
    pub first_seen: f64,
    pub last_seen: f64,
}

/// One point of the per-interval history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryPoint {
    /// End of the interval, Unix seconds.
    pub time: f64,
    pub users: u64,
    pub requests: u64,
    pub failures: u64,
    pub rps: f64,
    pub failures_per_s: f64,
    pub percentiles_ms: Percentiles,
    /// Per (method, name): requests, failures and percentiles in this interval.
    pub endpoints: Vec<HistoryEndpoint>,
    /// The whole run up to the end of this interval (absent in results of older versions).
    #[serde(default)]
    pub totals: Option<RunningTotals>,
}

/// Cumulative numbers of the run so far (Locust's "Total …" history columns).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunningTotals {
    pub requests: u64,
    pub failures: u64,
    pub median_ms: f64,
    pub avg_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub avg_content_bytes: f64,
}

impl RunningTotals {
    fn from_entry(e: &Entry) -> Self {
        let h = &e.histogram;
        let ms = |us: u64| us as f64 / 1000.0;
        let n = e.requests;
        RunningTotals {
            requests: n,
            failures: e.failures,
            median_ms: if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(0.5))
            },
            avg_ms: if n == 0 {
                0.0
            } else {
                e.sum_us as f64 / n as f64 / 1000.0
            },
            min_ms: if h.is_empty() { 0.0 } else { ms(h.min()) },
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            avg_content_bytes: if n == 0 {
                0.0
            } else {
                e.content_bytes as f64 / n as f64
            },
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryEndpoint {
    pub method: String,
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    pub percentiles_ms: Percentiles,
}

/// The whole run, merged as it goes.
#[derive(Default)]
pub struct RunStats {
    pub all: Interval,
    pub history: Vec<HistoryPoint>,
    warned_names: bool,
}

impl RunStats {
    /// Folds one interval into the run and appends its history point.
    pub fn absorb(&mut self, mut interval: Interval, users: u64, seconds: f64) -> &HistoryPoint {
        self.cap_names(&mut interval);
        let total = interval.total();
        let mut endpoints: Vec<HistoryEndpoint> = interval
            .entries
            .iter()
            .map(|((method, name), e)| HistoryEndpoint {
                method: method.clone(),
                name: name.clone(),
                requests: e.requests,
                failures: e.failures,
                percentiles_ms: percentiles(&e.histogram),
            })
            .collect();
        endpoints.sort_by(|a, b| (&a.name, &a.method).cmp(&(&b.name, &b.method)));
        let per_s = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        let interval_percentiles = percentiles(&total.histogram);
        self.all.merge(interval);
        self.history.push(HistoryPoint {
            time: unix_now(),
            users,
            requests: total.requests,
            failures: total.failures,
            rps: per_s(total.requests),
            failures_per_s: per_s(total.failures),
            percentiles_ms: interval_percentiles,
            endpoints,
            totals: Some(RunningTotals::from_entry(&self.all.total())),
        });
        self.history.last().expect("just pushed")
    }

    /// Folds rows beyond `MAX_NAMES` into `other`.
    fn cap_names(&mut self, interval: &mut Interval) {
        let known = self.all.entries.len();
        let new_keys: Vec<(String, String)> = interval
            .entries
            .keys()
            .filter(|k| !self.all.entries.contains_key(*k))
            .cloned()
            .collect();
        if known + new_keys.len() <= MAX_NAMES {
            return;
        }
        let room = MAX_NAMES.saturating_sub(known);
        for key in new_keys.into_iter().skip(room) {
            if let Some(entry) = interval.entries.remove(&key) {
                let other = (key.0.clone(), "other".to_string());
                interval
                    .entries
                    .entry(other)
                    .or_insert_with(Entry::new)
                    .add(&entry);
            }
        }
        if !self.warned_names {
            self.warned_names = true;
            tracing::warn!(
                "more than {MAX_NAMES} distinct request names: the rest are counted as `other` — give requests a fixed name (e.g. \"/items/[id]\")"
            );
        }
    }

    pub fn endpoint_stats(&self, seconds: f64) -> (Vec<EndpointStats>, EndpointStats) {
        let mut rows: Vec<EndpointStats> = self
            .all
            .entries
            .iter()
            .map(|((method, name), e)| EndpointStats::from_entry(method, name, e, seconds))
            .collect();
        rows.sort_by(|a, b| (&a.name, &a.method).cmp(&(&b.name, &b.method)));
        let total = EndpointStats::from_entry("", "Aggregated", &self.all.total(), seconds);
        (rows, total)
    }

    pub fn failure_groups(&self) -> Vec<FailureGroup> {
        let mut groups: Vec<FailureGroup> = self
            .all
            .failures
            .iter()
            .map(|((method, name, error), s)| FailureGroup {
                method: method.clone(),
                name: name.clone(),
                error: error.clone(),
                occurrences: s.count,
                first_seen: s.first,
                last_seen: s.last,
            })
            .collect();
        groups.sort_by(|a, b| b.occurrences.cmp(&a.occurrences).then(a.name.cmp(&b.name)));
        groups
    }

    pub fn task_error_groups(&self) -> Vec<TaskErrorGroup> {
        let mut groups: Vec<TaskErrorGroup> = self
            .all
            .task_errors
            .iter()
            .map(|((location, message), s)| TaskErrorGroup {
                location: location.clone(),
                message: message.clone(),
                occurrences: s.count,
                first_seen: s.first,
                last_seen: s.last,
            })
            .collect();
        groups.sort_by(|a, b| {
            b.occurrences
                .cmp(&a.occurrences)
                .then(a.location.cmp(&b.location))
        });
        groups
    }

    pub fn samples(&self) -> &[FailureSample] {
        &self.all.samples
    }

    /// Forgets everything so far (`--reset-stats` once the ramp-up is done).
    pub fn reset(&mut self) {
        self.all = Interval::default();
        self.history.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles equal a brute-force computation over the same samples within HDR precision.
    #[test]
    fn percentiles_match_brute_force() {
        let shard = Shard::default();
        let mut samples = Vec::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            // xorshift: a spread of latencies from 50 µs to ~2 s, heavy-tailed.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let us = 50 + (x % 1000) * (x % 1000) * 2;
            samples.push(us);
            shard.record(
                &RequestRecord {
                    method: "GET",
                    name: "/x",
                    latency_us: us,
                    content_bytes: 10,
                    error: None,
                },
                None,
            );
        }
        samples.sort_unstable();
        let mut run = RunStats::default();
        run.absorb(shard.take(), 1, 1.0);
        let (rows, total) = run.endpoint_stats(1.0);
        assert_eq!(rows.len(), 1);
        assert_eq!(total.requests, 20_000);
        for &p in &PERCENTILES {
            let rank = ((p / 100.0) * samples.len() as f64).ceil().max(1.0) as usize;
            let exact = samples[rank.min(samples.len()) - 1] as f64 / 1000.0;
            let got = total.percentile(p);
            assert!(
                (got - exact).abs() <= exact * 0.001 + 0.001,
                "p{p}: hdr {got} vs exact {exact}"
            );
        }
        let avg = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0;
        assert!((total.avg_ms - avg).abs() < 1e-9);
        assert_eq!(total.min_ms, samples[0] as f64 / 1000.0);
        // The serialized histogram round-trips.
        let h = deserialize_histogram(&total.histogram).expect("decodes");
        assert_eq!(h.len(), 20_000);
    }

    #[test]
    fn names_beyond_the_cap_are_counted_as_other() {
        let shard = Shard::default();
        for i in 0..(MAX_NAMES + 20) {
            let name = format!("/item/{i}");
            shard.record(
                &RequestRecord {
                    method: "GET",
                    name: &name,
                    latency_us: 100,
                    content_bytes: 0,
                    error: None,
                },
                None,
            );
        }
        let mut run = RunStats::default();
        run.absorb(shard.take(), 1, 1.0);
        let (rows, total) = run.endpoint_stats(1.0);
        assert_eq!(rows.len(), MAX_NAMES + 1);
        assert_eq!(total.requests as usize, MAX_NAMES + 20);
        assert!(rows.iter().any(|r| r.name == "other" && r.requests == 20));
    }
}
