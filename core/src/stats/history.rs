//! The per-second history, bounded for any run length.
//!
//! The last [`FULL_SECONDS`] seconds are kept a point per second. Older seconds are folded
//! into coarse points of `width` seconds each, at most [`MAX_COARSE`] of them: when they are
//! full, pairs of them are merged and `width` doubles. A 30-day run keeps under
//! `FULL_SECONDS + MAX_COARSE` points (older points 1024 s wide), an hour-long run keeps
//! every second.
//!
//! A coarse point is exact in what it counts: its requests and failures are the sums of its
//! seconds, its rates their mean, its running totals those of its last second, and where the
//! seconds kept their histograms (shard runs, `--hlog`) its percentiles and histogram are the
//! merged ones. Without histograms its percentiles are the request-weighted means of its
//! seconds' (a chart's line, not a measurement). The run's totals and their histograms are
//! kept apart from the history (`RunStats::all`) and never downsampled.

use std::collections::BTreeMap;

use super::summary::{deserialize_histogram, serialize_histogram, Percentiles};
use super::{HistoryEndpoint, HistoryPoint};

/// Seconds kept at full resolution: the last hour.
pub(crate) const FULL_SECONDS: usize = 3600;
/// Coarse points kept for the seconds before (even: they are merged in pairs).
pub(crate) const MAX_COARSE: usize = 3600;

/// Keeps a history bounded as points are pushed (see the module).
#[derive(Debug, Clone)]
pub struct Downsampler {
    full: usize,
    max_coarse: usize,
    /// Points at the front of the history that are coarse.
    coarse: usize,
    /// Seconds per coarse point, and how many the last (the one filling) holds.
    width: usize,
    fill: usize,
}

impl Default for Downsampler {
    /// [`FULL_SECONDS`] and [`MAX_COARSE`], or `PERFHOST_HISTORY_SECONDS` for both (a
    /// smaller history for a machine short of memory, or to see the downsampling at work
    /// in a short run).
    fn default() -> Self {
        static FROM_ENV: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
        let seconds = FROM_ENV.get_or_init(|| {
            std::env::var("PERFHOST_HISTORY_SECONDS")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|&n| n >= 2)
        });
        match seconds {
            Some(n) => Downsampler::new(*n, *n),
            None => Downsampler::new(FULL_SECONDS, MAX_COARSE),
        }
    }
}

impl Downsampler {
    /// `full` seconds at full resolution, at most `max_coarse` (rounded up to even) older
    /// points.
    pub fn new(full: usize, max_coarse: usize) -> Self {
        Downsampler {
            full: full.max(1),
            max_coarse: (max_coarse.max(2) + 1) & !1,
            coarse: 0,
            width: 1,
            fill: 0,
        }
    }

    /// The most points a history holds.
    pub fn bound(&self) -> usize {
        self.full + self.max_coarse
    }

    /// Seconds per coarse point now (1 until the history outgrows its bound).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Appends `point` (one interval) and folds the oldest full-resolution second into the
    /// coarse points when there are more than `full`.
    pub fn push(&mut self, history: &mut Vec<HistoryPoint>, point: HistoryPoint) {
        history.push(point);
        if history.len() - self.coarse <= self.full {
            return;
        }
        let at = self.coarse;
        if self.coarse > 0 && self.fill < self.width {
            let second = history.remove(at);
            let bucket = &mut history[at - 1];
            *bucket = merge(&[(bucket.clone(), self.fill), (second, 1)]);
            self.fill += 1;
            return;
        }
        if self.coarse == self.max_coarse {
            // Every coarse point is full: merge them in pairs, each now twice as wide.
            let old: Vec<HistoryPoint> = history.drain(..self.coarse).collect();
            let pairs: Vec<HistoryPoint> = old
                .chunks(2)
                .map(|pair| {
                    let weighted: Vec<_> = pair.iter().map(|p| (p.clone(), self.width)).collect();
                    merge(&weighted)
                })
                .collect();
            self.coarse = pairs.len();
            self.width *= 2;
            history.splice(0..0, pairs);
        }
        // The second at `coarse` starts the next coarse point.
        self.coarse += 1;
        self.fill = 1;
    }

    /// Forgets the history's shape (`--reset-stats` clears it).
    pub fn reset(&mut self) {
        *self = Downsampler::new(self.full, self.max_coarse);
    }
}

/// One point for consecutive points, each with the seconds it covers: sums of counts, means
/// of rates, merged histograms where every point kept one, else request-weighted percentiles;
/// the window and the running totals are the last point's.
pub fn merge(points: &[(HistoryPoint, usize)]) -> HistoryPoint {
    let Some((last, _)) = points.last() else {
        return HistoryPoint {
            time: 0.0,
            users: 0,
            requests: 0,
            failures: 0,
            rps: 0.0,
            failures_per_s: 0.0,
            percentiles_ms: Percentiles::default(),
            window_ms: None,
            histogram: None,
            endpoints: Vec::new(),
            totals: None,
        };
    };
    let seconds: usize = points.iter().map(|(_, w)| w).sum::<usize>().max(1);
    let mean = |f: fn(&HistoryPoint) -> f64| {
        points.iter().map(|(p, w)| f(p) * *w as f64).sum::<f64>() / seconds as f64
    };
    let (percentiles_ms, histogram) = combine(
        points
            .iter()
            .map(|(p, _)| (p.requests, &p.percentiles_ms, p.histogram.as_deref())),
    );
    // Endpoints by (name, method), in the order the points list them (sorted).
    let mut endpoints: BTreeMap<(&str, &str), Vec<&HistoryEndpoint>> = BTreeMap::new();
    for (p, _) in points {
        for e in &p.endpoints {
            endpoints
                .entry((e.name.as_str(), e.method.as_str()))
                .or_default()
                .push(e);
        }
    }
    let endpoints = endpoints
        .into_values()
        .map(|seconds_of| {
            let first = seconds_of[0];
            let (percentiles_ms, histogram) = combine(
                seconds_of
                    .iter()
                    .map(|e| (e.requests, &e.percentiles_ms, e.histogram.as_deref())),
            );
            HistoryEndpoint {
                method: first.method.clone(),
                name: first.name.clone(),
                requests: seconds_of.iter().map(|e| e.requests).sum(),
                failures: seconds_of.iter().map(|e| e.failures).sum(),
                percentiles_ms,
                window_ms: last
                    .endpoints
                    .iter()
                    .find(|e| e.method == first.method && e.name == first.name)
                    .and_then(|e| e.window_ms),
                histogram,
            }
        })
        .collect();
    HistoryPoint {
        time: last.time,
        users: last.users,
        requests: points.iter().map(|(p, _)| p.requests).sum(),
        failures: points.iter().map(|(p, _)| p.failures).sum(),
        rps: mean(|p| p.rps),
        failures_per_s: mean(|p| p.failures_per_s),
        percentiles_ms,
        window_ms: last.window_ms,
        histogram,
        endpoints,
        totals: last.totals.clone(),
    }
}

/// The percentiles (and histogram) of several intervals: merged exactly when every interval
/// kept its histogram, else the request-weighted mean of their percentiles.
fn combine<'a>(
    parts: impl Iterator<Item = (u64, &'a Percentiles, Option<&'a str>)> + Clone,
) -> (Percentiles, Option<String>) {
    let mut merged = super::new_histogram();
    let exact = parts.clone().all(|(_, _, h)| {
        h.and_then(deserialize_histogram)
            .is_some_and(|h| merged.add(&h).is_ok())
    });
    if exact {
        return (Percentiles::of(&merged), Some(serialize_histogram(&merged)));
    }
    let requests: u64 = parts.clone().map(|(n, _, _)| n).sum();
    if requests == 0 {
        return (Percentiles::default(), None);
    }
    let mut out = Percentiles::default();
    for (n, p, _) in parts {
        out = out.weighted_add(p, n as f64 / requests as f64);
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Percentile, RunningTotals};

    /// A small histogram of `requests` values (the interval histograms' precision is not
    /// what these tests are about).
    fn histogram(second: u64, requests: u64) -> hdrhistogram::Histogram<u64> {
        let mut h = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2).unwrap();
        for i in 0..requests {
            h.record(1000 + (second * 7 + i) % 5000).unwrap();
        }
        h
    }

    fn point(second: u64, requests: u64, with_histogram: bool) -> HistoryPoint {
        let (percentiles, serialized) = if with_histogram {
            let h = histogram(second, requests);
            (Percentiles::of(&h), Some(serialize_histogram(&h)))
        } else {
            (Percentiles::default(), None)
        };
        let endpoint = |name: &str, n: u64| HistoryEndpoint {
            method: "GET".into(),
            name: name.into(),
            requests: n,
            failures: n / 10,
            percentiles_ms: percentiles,
            window_ms: None,
            histogram: serialized.clone(),
        };
        HistoryPoint {
            time: 1_000_000.0 + second as f64,
            users: 10,
            requests,
            failures: requests / 10,
            rps: requests as f64,
            failures_per_s: (requests / 10) as f64,
            percentiles_ms: percentiles,
            window_ms: None,
            histogram: serialized.clone(),
            endpoints: vec![endpoint("/a", requests)],
            totals: Some(RunningTotals {
                requests: second,
                ..Default::default()
            }),
        }
    }

    /// Any run length stays under the bound; counts stay exact; points stay in time order
    /// and the newest seconds stay whole.
    #[test]
    fn a_long_history_stays_bounded_and_exact() {
        let mut d = Downsampler::new(60, 40);
        let mut history = Vec::new();
        let (mut requests, mut failures) = (0, 0);
        for s in 0..100_000u64 {
            let p = point(s, s % 13, false);
            requests += p.requests;
            failures += p.failures;
            d.push(&mut history, p);
            assert!(
                history.len() <= d.bound(),
                "{} points at {s}",
                history.len()
            );
        }
        assert_eq!(history.iter().map(|p| p.requests).sum::<u64>(), requests);
        assert_eq!(history.iter().map(|p| p.failures).sum::<u64>(), failures);
        let endpoint: u64 = history
            .iter()
            .flat_map(|p| &p.endpoints)
            .map(|e| e.requests)
            .sum();
        assert_eq!(endpoint, requests);
        assert!(history.windows(2).all(|w| w[0].time < w[1].time));
        let last: Vec<f64> = history[history.len() - 60..]
            .iter()
            .map(|p| p.time)
            .collect();
        assert!(
            last.windows(2).all(|w| w[1] - w[0] == 1.0),
            "the last minute is whole"
        );
        assert_eq!(
            history.last().unwrap().totals.as_ref().unwrap().requests,
            99_999
        );
        assert!(d.width() >= 1024, "width {}", d.width());
    }

    /// Points that kept their histograms merge exactly.
    #[test]
    fn histograms_merge_exactly() {
        let points: Vec<_> = (0..8).map(|s| (point(s, 50 + s, true), 1)).collect();
        let merged = merge(&points);
        let h = deserialize_histogram(merged.histogram.as_deref().unwrap()).unwrap();
        assert_eq!(h.len(), merged.requests);
        assert_eq!(merged.percentiles_ms, Percentiles::of(&h));
        let e = &merged.endpoints[0];
        assert_eq!(
            deserialize_histogram(e.histogram.as_deref().unwrap())
                .unwrap()
                .len(),
            e.requests
        );
        assert!((merged.rps - points.iter().map(|(p, _)| p.rps).sum::<f64>() / 8.0).abs() < 1e-9);
        assert!(merged.percentiles_ms.get(Percentile::P99) > 0.0);
    }
}
