//! Statistics: HDR histograms per (method, name) and in total, failures grouped with samples,
//! task errors, and a per-interval history.
//!
//! - [`record`]: what the plugin host writes per request, one tally per worker thread;
//! - [`summary`]: the serializable rows, groups and history points of the JSON result;
//! - here: the run's merged statistics, folded in once a second.

pub mod capped;
pub mod history;
pub mod live;
pub mod record;
pub mod summary;
pub mod thresholds;

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

pub use record::{
    cap_message, new_histogram, Entry, FailureSample, Interval, RequestRecord, SampleBook, Tallies,
    Tally, MAX_MESSAGE_BYTES, SAMPLE_BODY_BYTES,
};
pub use summary::{
    deserialize_histogram, serialize_histogram, CorrectedStats, EndpointStats, FailureGroup,
    HistoryEndpoint, HistoryPoint, Percentile, Percentiles, RunningTotals, TaskErrorGroup,
};
pub use thresholds::{RunView, ThresholdResult};

/// The rows of `all` sorted by name then method, and the Aggregated row, over `seconds`.
pub fn endpoint_rows(all: &Interval, seconds: f64) -> (Vec<EndpointStats>, EndpointStats) {
    let mut rows: Vec<EndpointStats> = all
        .entries
        .iter()
        .map(|((method, name), e)| EndpointStats::from_entry(method, name, e, seconds))
        .collect();
    rows.sort_by(|a, b| (&a.name, &a.method).cmp(&(&b.name, &b.method)));
    let total = EndpointStats::from_entry("", "Aggregated", &all.total(), seconds);
    (rows, total)
}

/// Beyond this many distinct (method, name) rows, new names are recorded as `other`.
pub const MAX_NAMES: usize = 500;

/// Seconds since the Unix epoch, as a float.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The span of the percentile lines of charts: enough samples that a p95 is not a p99 (at
/// 10 req/s one second holds 10 samples, and its p95 equals its p99). Locust's window too.
pub const WINDOW_SECONDS: usize = 10;

/// The whole run, merged as it goes.
#[derive(Default)]
pub struct RunStats {
    /// Everything recorded so far, merged.
    pub all: Interval,
    /// Bounded for any run length: the last hour per second, older seconds in coarser points
    /// (`history::Downsampler`).
    pub history: Vec<HistoryPoint>,
    downsampler: history::Downsampler,
    /// Keep each interval's histogram in its history point (shard runs, for merging).
    pub interval_histograms: bool,
    warned_names: bool,
    /// The last `WINDOW_SECONDS` intervals' histograms (total first, then per endpoint), and
    /// their running sums: one add and one subtract per second, not ten merges.
    window: std::collections::VecDeque<WindowSlice>,
    window_total: Option<hdrhistogram::Histogram<u64>>,
    window_endpoints: HashMap<(String, String), hdrhistogram::Histogram<u64>>,
}

/// A window's histograms keep 2 significant digits (1% — a chart's line), an eighth of the
/// counters of the run's own: ten seconds of them per endpoint stay small.
fn window_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static bounds")
}

struct WindowSlice {
    total: hdrhistogram::Histogram<u64>,
    endpoints: Vec<((String, String), hdrhistogram::Histogram<u64>)>,
}

impl RunStats {
    /// `keep`: each history point carries its interval's histogram (shard runs, for merging).
    pub fn keeping_interval_histograms(keep: bool) -> Self {
        RunStats {
            interval_histograms: keep,
            ..Default::default()
        }
    }

    /// The statistics of a run so far, from its cumulative interval and history (a live
    /// reader's copy: the window is not kept).
    pub fn of(all: Interval, history: Vec<HistoryPoint>) -> Self {
        RunStats {
            all,
            history,
            ..Default::default()
        }
    }

    /// Folds one interval into the run and appends its history point.
    pub fn absorb(&mut self, mut interval: Interval, users: u64, seconds: f64) -> &HistoryPoint {
        self.cap_names(&mut interval);
        interval.cap_errors(&self.all);
        let total = interval.total();
        let mut endpoints: Vec<HistoryEndpoint> = interval
            .entries
            .iter()
            .map(|((method, name), e)| HistoryEndpoint {
                method: method.clone(),
                name: name.clone(),
                requests: e.requests,
                failures: e.failures,
                percentiles_ms: Percentiles::of(&e.histogram),
                window_ms: None,
                histogram: self
                    .interval_histograms
                    .then(|| serialize_histogram(&e.histogram)),
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
        let interval_percentiles = Percentiles::of(&total.histogram);
        let window_ms = self.slide_window(&interval, &total.histogram);
        for e in &mut endpoints {
            e.window_ms = self
                .window_endpoints
                .get(&(e.method.clone(), e.name.clone()))
                .filter(|h| !h.is_empty())
                .map(Percentiles::of);
        }
        self.all.merge(interval);
        let point = HistoryPoint {
            time: unix_now(),
            users,
            requests: total.requests,
            failures: total.failures,
            rps: per_s(total.requests),
            failures_per_s: per_s(total.failures),
            percentiles_ms: interval_percentiles,
            window_ms,
            histogram: self
                .interval_histograms
                .then(|| serialize_histogram(&total.histogram)),
            endpoints,
            totals: Some(RunningTotals::from_entry(&self.all.total())),
        };
        self.downsampler.push(&mut self.history, point);
        self.history.last().expect("just pushed")
    }

    /// Adds this interval to the window and drops the one that left it; the window's
    /// percentiles (`None` when it holds no request).
    fn slide_window(
        &mut self,
        interval: &Interval,
        total: &hdrhistogram::Histogram<u64>,
    ) -> Option<Percentiles> {
        let coarse = |h: &hdrhistogram::Histogram<u64>| {
            let mut c = window_histogram();
            let _ = c.add(h);
            c
        };
        let slice = WindowSlice {
            total: coarse(total),
            endpoints: interval
                .entries
                .iter()
                .filter(|(_, e)| e.requests > 0)
                .map(|(k, e)| (k.clone(), coarse(&e.histogram)))
                .collect(),
        };
        let sum = self.window_total.get_or_insert_with(window_histogram);
        let _ = sum.add(&slice.total);
        for (key, h) in &slice.endpoints {
            let _ = self
                .window_endpoints
                .entry(key.clone())
                .or_insert_with(window_histogram)
                .add(h);
        }
        self.window.push_back(slice);
        if self.window.len() > WINDOW_SECONDS {
            if let Some(old) = self.window.pop_front() {
                let _ = sum.subtract(&old.total);
                for (key, h) in &old.endpoints {
                    if let Some(e) = self.window_endpoints.get_mut(key) {
                        let _ = e.subtract(h);
                    }
                }
                self.window_endpoints.retain(|_, h| !h.is_empty());
            }
        }
        (!sum.is_empty()).then(|| Percentiles::of(sum))
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

    /// One row per user class (by its index; `names` gives each its name).
    pub fn class_stats(&self, names: &[String], seconds: f64) -> Vec<EndpointStats> {
        self.all
            .classes
            .iter()
            .zip(names)
            .map(|(e, name)| EndpointStats::from_entry("", name, e, seconds))
            .collect()
    }

    /// The rows sorted by name then method, and the Aggregated row, over `seconds`.
    pub fn endpoint_stats(&self, seconds: f64) -> (Vec<EndpointStats>, EndpointStats) {
        endpoint_rows(&self.all, seconds)
    }

    /// The failure groups, most frequent first.
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

    /// The task error groups, most frequent first.
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

    /// Forgets everything so far (`--reset-stats` once the ramp-up is done).
    pub fn reset(&mut self) {
        self.all = Interval::default();
        self.history.clear();
        self.downsampler.reset();
        self.window.clear();
        self.window_total = None;
        self.window_endpoints.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles equal a brute-force computation over the same samples within HDR precision.
    #[test]
    fn percentiles_match_brute_force() {
        let tally = Tally::default();
        let mut samples = Vec::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            // xorshift: a spread of latencies from 50 µs to ~2 s, heavy-tailed.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let us = 50 + (x % 1000) * (x % 1000) * 2;
            samples.push(us);
            tally.record(&RequestRecord {
                class: 0,
                method: "GET",
                name: "/x",
                latency_us: us,
                content_bytes: 10,
                error: None,
                lateness_us: None,
                protocol: None,
            });
        }
        samples.sort_unstable();
        let mut run = RunStats::default();
        run.absorb(tally.take(), 1, 1.0);
        let (rows, total) = run.endpoint_stats(1.0);
        assert_eq!(rows.len(), 1);
        assert_eq!(total.requests, 20_000);
        for p in Percentile::ALL {
            let rank = ((p.value() / 100.0) * samples.len() as f64).ceil().max(1.0) as usize;
            let exact = samples[rank.min(samples.len()) - 1] as f64 / 1000.0;
            let got = total.percentile(p);
            assert!(
                (got - exact).abs() <= exact * 0.001 + 0.001,
                "{p:?}: hdr {got} vs exact {exact}"
            );
        }
        let avg = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0;
        assert!((total.avg_ms - avg).abs() < 1e-9);
        assert_eq!(total.min_ms, samples[0] as f64 / 1000.0);
        // The serialized histogram round-trips.
        let h = deserialize_histogram(&total.histogram).expect("decodes");
        assert_eq!(h.len(), 20_000);
    }

    /// A failure sample is built only while the run keeps samples: three per name, fifty in all.
    #[test]
    fn samples_are_built_only_when_kept() {
        let tallies = Tallies::new(2, Default::default());
        let built = std::cell::Cell::new(0);
        for i in 0..200 {
            let name = format!("/n{}", i % 40);
            let rec = RequestRecord {
                class: 0,
                method: "GET",
                name: &name,
                latency_us: 10,
                content_bytes: 0,
                error: Some("HTTP 500"),
                lateness_us: None,
                protocol: None,
            };
            tallies.tally(i).record_failure(&rec, || {
                built.set(built.get() + 1);
                FailureSample {
                    method: "GET".into(),
                    name: name.clone(),
                    error: "HTTP 500".into(),
                    status: Some(500),
                    headers: Vec::new(),
                    body: String::new(),
                    time: 0.0,
                }
            });
        }
        let kept = tallies.samples().samples();
        assert_eq!(kept.len(), 50);
        assert_eq!(built.get(), 50, "every built sample was kept");
        assert_eq!(tallies.take_all().total().failures, 200);
    }

    /// A run far longer than its history's bound keeps the history bounded, and its totals,
    /// the history's counts and the last point's running totals exact.
    #[test]
    fn a_long_run_keeps_a_bounded_history_and_exact_totals() {
        let mut run = RunStats {
            downsampler: history::Downsampler::new(30, 20),
            ..Default::default()
        };
        let tally = Tally::default();
        for s in 0..2000u64 {
            for i in 0..(s % 5) {
                tally.record(&RequestRecord {
                    class: 0,
                    method: "GET",
                    name: "/x",
                    latency_us: 100 + i * 10,
                    content_bytes: 0,
                    error: None,
                    lateness_us: None,
                    protocol: None,
                });
            }
            run.absorb(tally.take(), 1, 1.0);
            assert!(run.history.len() <= 50, "{} points", run.history.len());
        }
        let expected: u64 = (0..2000u64).map(|s| s % 5).sum();
        let (_, total) = run.endpoint_stats(2000.0);
        assert_eq!(total.requests, expected);
        assert_eq!(
            run.history.iter().map(|p| p.requests).sum::<u64>(),
            expected
        );
        let last = run.history.last().unwrap().totals.as_ref().unwrap();
        assert_eq!(last.requests, expected);
    }

    #[test]
    fn names_beyond_the_cap_are_counted_as_other() {
        let tally = Tally::default();
        for i in 0..(MAX_NAMES + 20) {
            let name = format!("/item/{i}");
            tally.record(&RequestRecord {
                class: 0,
                method: "GET",
                name: &name,
                latency_us: 100,
                content_bytes: 0,
                error: None,
                lateness_us: None,
                protocol: None,
            });
        }
        let mut run = RunStats::default();
        run.absorb(tally.take(), 1, 1.0);
        let (rows, total) = run.endpoint_stats(1.0);
        assert_eq!(rows.len(), MAX_NAMES + 1);
        assert_eq!(total.requests as usize, MAX_NAMES + 20);
        assert!(rows.iter().any(|r| r.name == "other" && r.requests == 20));
    }
}
