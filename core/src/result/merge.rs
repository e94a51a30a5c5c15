//! `perfhost merge`: the results of a sharded run (`--shard i/N`) into one result, exactly:
//! every row's histogram is the sum of the shards' histograms (HDR V2, lossless), counts are
//! summed, each second of the history adds the shards' intervals of that wall-clock second,
//! and thresholds are judged again on the merged numbers.

use std::collections::{BTreeMap, VecDeque};

use hdrhistogram::Histogram;

use crate::stats::{
    deserialize_histogram, endpoint_rows, new_histogram, EndpointStats, Entry, FailureGroup,
    HistoryEndpoint, HistoryPoint, Interval, Percentiles, RunView, RunningTotals, TaskErrorGroup,
    WINDOW_SECONDS,
};

use super::{RunResult, ShardMeta};

/// Why shard results cannot be merged; each message says what to give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// No result was given.
    #[error("no results to merge: give the shards' JSON results, e.g. perfhost merge reports/shard-*.json")]
    Empty,
    /// A result without `meta.shard`; holds its file.
    #[error(
        "{0}: not a shard's result (no meta.shard) — run each process with --shard INDEX/COUNT"
    )]
    NotShard(String),
    /// A shard of another plan, or of another shard count, than the first result.
    #[error("{file} is shard {index}/{count} of plan {hash}, but {first} is of plan {first_hash} with {first_count} shards — merge the shards of one run")]
    Mismatch {
        /// The result that does not match.
        file: String,
        /// Its shard index.
        index: usize,
        /// Its shard count.
        count: usize,
        /// Its plan hash, shortened.
        hash: String,
        /// The first result's file.
        first: String,
        /// The first result's plan hash, shortened.
        first_hash: String,
        /// The first result's shard count.
        first_count: usize,
    },
    /// Two results are the same shard.
    #[error("shard {index}/{count} appears twice: {a} and {b}")]
    Duplicate {
        /// The shard's index.
        index: usize,
        /// The shard count.
        count: usize,
        /// The first file of that shard.
        a: String,
        /// The second file of that shard.
        b: String,
    },
    /// Not every shard of the run was given.
    #[error("shard {missing} is missing (have {have} of {count}) — its process did not write a result: rerun it, or find its file")]
    Missing {
        /// The missing shards, as `i/N`.
        missing: String,
        /// The shard count.
        count: usize,
        /// The shards given, or `none`.
        have: String,
    },
    /// A row's histogram is not valid base64 HDR data.
    #[error("{file}: the histogram of `{row}` cannot be read (the file is damaged)")]
    Histogram {
        /// The result holding it.
        file: String,
        /// The row (`METHOD name`) whose histogram it is.
        row: String,
    },
    /// Together the shards exceed a cap no single run reaches.
    #[error("the shards hold more than {cap} {what} together — these are not the shards of one perfhost run")]
    TooMany {
        /// What there is too much of (`shards`, `stats rows`…).
        what: &'static str,
        /// The cap.
        cap: usize,
    },
}

/// Checks that `results` are every shard of one plan once; returns their shard ids in order.
fn check(results: &[(String, RunResult)]) -> Result<Vec<ShardMeta>, MergeError> {
    let (first_file, first) = results.first().ok_or(MergeError::Empty)?;
    let first = first
        .meta
        .shard
        .clone()
        .ok_or_else(|| MergeError::NotShard(first_file.clone()))?;
    let mut seen: BTreeMap<usize, &str> = BTreeMap::new();
    let mut metas = Vec::new();
    for (file, r) in results {
        let meta = r
            .meta
            .shard
            .clone()
            .ok_or_else(|| MergeError::NotShard(file.clone()))?;
        if meta.plan_hash != first.plan_hash || meta.count != first.count {
            return Err(MergeError::Mismatch {
                file: file.clone(),
                index: meta.index,
                count: meta.count,
                hash: crate::text::clip(&meta.plan_hash, 24),
                first: first_file.clone(),
                first_hash: crate::text::clip(&first.plan_hash, 24),
                first_count: first.count,
            });
        }
        if let Some(a) = seen.insert(meta.index, file) {
            return Err(MergeError::Duplicate {
                index: meta.index,
                count: meta.count,
                a: a.to_string(),
                b: file.clone(),
            });
        }
        metas.push(meta);
    }
    // `load_result` refused counts above MAX_SHARDS; a result built in memory is checked too.
    if first.count > crate::plan::MAX_SHARDS {
        return Err(MergeError::TooMany {
            what: "shards",
            cap: crate::plan::MAX_SHARDS,
        });
    }
    let missing: Vec<usize> = (0..first.count).filter(|i| !seen.contains_key(i)).collect();
    if !missing.is_empty() {
        let have: Vec<usize> = seen.keys().copied().collect();
        return Err(MergeError::Missing {
            missing: listed(&missing, |i| format!("{i}/{}", first.count)),
            count: first.count,
            have: if have.is_empty() {
                "none".into()
            } else {
                listed(&have, |i| i.to_string())
            },
        });
    }
    Ok(metas)
}

/// The first few of `items`, then how many more: one line even for 4,096 shards.
fn listed(items: &[usize], show: impl Fn(usize) -> String) -> String {
    const SHOWN: usize = 8;
    let mut text: Vec<String> = items.iter().take(SHOWN).map(|&i| show(i)).collect();
    if items.len() > SHOWN {
        text.push(format!("… {} more", items.len() - SHOWN));
    }
    text.join(", ")
}

/// A row of a result back as the statistics entry it was rendered from.
fn entry(file: &str, row: &EndpointStats) -> Result<Entry, MergeError> {
    let bad = || MergeError::Histogram {
        file: file.to_string(),
        row: crate::text::clip(format!("{} {}", row.method, row.name).trim(), 80),
    };
    let histogram = deserialize_histogram(&row.histogram).ok_or_else(bad)?;
    let corrected = match &row.corrected {
        Some(c) => Some(deserialize_histogram(&c.histogram).ok_or_else(bad)?),
        None => None,
    };
    Ok(Entry {
        histogram,
        corrected,
        requests: row.requests,
        failures: row.failures,
        content_bytes: (row.avg_content_bytes * row.requests as f64).round() as u64,
        sum_us: (row.avg_ms * 1000.0 * row.requests as f64).round() as u64,
        protocols: crate::stats::summary::protocol_array(&row.protocols),
    })
}

/// One result of all shards, in the same schema: every report renders from it.
pub fn merge(results: Vec<(String, RunResult)>) -> Result<RunResult, MergeError> {
    let metas = check(&results)?;
    let start = results
        .iter()
        .map(|(_, r)| r.meta.start_time)
        .fold(f64::INFINITY, f64::min);
    let end = results
        .iter()
        .map(|(_, r)| r.meta.end_time)
        .fold(0.0, f64::max);
    let seconds = (end - start).max(0.001);

    let mut all = Interval::default();
    let mut class_names: Vec<String> = Vec::new();
    let too_many = |what| MergeError::TooMany {
        what,
        cap: crate::stats::capped::MAX_ROWS,
    };
    for (file, r) in &results {
        for row in &r.stats {
            let key = (row.method.clone(), row.name.clone());
            if !all.entries.contains_key(&key)
                && all.entries.len() >= crate::stats::capped::MAX_ROWS
            {
                return Err(too_many("distinct rows"));
            }
            let e = entry(file, row)?;
            all.entries.entry(key).or_insert_with(Entry::new).add(&e);
        }
        for row in &r.classes {
            let e = entry(file, row)?;
            let i = match class_names.iter().position(|n| *n == row.name) {
                Some(i) => i,
                None if class_names.len() >= crate::stats::capped::MAX_ROWS => {
                    return Err(too_many("distinct classes"))
                }
                None => {
                    class_names.push(row.name.clone());
                    all.classes.push(Entry::new());
                    class_names.len() - 1
                }
            };
            all.classes[i].add(&e);
        }
    }
    let (stats, total) = endpoint_rows(&all, seconds);
    let classes = all
        .classes
        .iter()
        .zip(&class_names)
        .map(|(e, name)| EndpointStats::from_entry("", name, e, seconds))
        .collect();

    let first = &results[0].1;
    let view = RunView {
        interval: &all,
        class_names: &class_names,
        seconds,
    };
    let aborted_by = results.iter().find_map(|(_, r)| r.meta.aborted_by.clone());
    let thresholds = first
        .plan
        .thresholds
        .iter()
        .map(|t| {
            let mut result = crate::stats::thresholds::evaluate(t, &view);
            result.aborted_run = aborted_by.as_deref() == Some(t.text.as_str());
            result
        })
        .collect();

    let mut plan = first.plan.clone();
    plan.class_users.clear();
    for (_, r) in &results {
        for (name, n) in &r.plan.class_users {
            *plan.class_users.entry(name.clone()).or_insert(0) += n;
        }
    }
    let mut meta = first.meta.clone();
    meta.start_time = start;
    meta.end_time = end;
    meta.duration_s = seconds;
    meta.interrupted = results.iter().any(|(_, r)| r.meta.interrupted);
    meta.aborted_by = aborted_by;
    meta.shard = None;
    meta.merged_shards = Some(metas.len());

    let mut stopped_classes: Vec<String> = results
        .iter()
        .flat_map(|(_, r)| r.stopped_classes.iter().cloned())
        .collect();
    stopped_classes.sort();
    stopped_classes.dedup();
    // The busiest generator speaks for the run (a saturated shard is what matters).
    let generator = results
        .iter()
        .map(|(_, r)| &r.generator)
        .max_by(|a, b| a.max_cpu_percent.total_cmp(&b.max_cpu_percent))
        .cloned()
        .unwrap_or_default();
    Ok(RunResult {
        schema: first.schema.clone(),
        meta,
        plan,
        plugins: first.plugins.clone(),
        stats,
        total,
        failures: merge_failures(&results),
        failure_samples: results
            .iter()
            .flat_map(|(_, r)| r.failure_samples.iter().cloned())
            .collect(),
        task_errors: merge_task_errors(&results),
        denied_requests: results.iter().map(|(_, r)| r.denied_requests).sum(),
        stopped_classes,
        history: merge_history(&results)?,
        generator,
        classes,
        thresholds,
        memory: None,
        arrivals: merge_arrivals(&results),
    })
}

fn merge_failures(results: &[(String, RunResult)]) -> Vec<FailureGroup> {
    let mut groups: BTreeMap<(String, String, String), FailureGroup> = BTreeMap::new();
    for f in results.iter().flat_map(|(_, r)| &r.failures) {
        let key = (f.method.clone(), f.name.clone(), f.error.clone());
        match groups.get_mut(&key) {
            Some(g) => {
                g.occurrences += f.occurrences;
                g.first_seen = g.first_seen.min(f.first_seen);
                g.last_seen = g.last_seen.max(f.last_seen);
            }
            None => {
                groups.insert(key, f.clone());
            }
        }
    }
    let mut out: Vec<FailureGroup> = groups.into_values().collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.occurrences));
    out
}

fn merge_task_errors(results: &[(String, RunResult)]) -> Vec<TaskErrorGroup> {
    let mut groups: BTreeMap<(String, String), TaskErrorGroup> = BTreeMap::new();
    for e in results.iter().flat_map(|(_, r)| &r.task_errors) {
        let key = (e.location.clone(), e.message.clone());
        match groups.get_mut(&key) {
            Some(g) => {
                g.occurrences += e.occurrences;
                g.first_seen = g.first_seen.min(e.first_seen);
                g.last_seen = g.last_seen.max(e.last_seen);
            }
            None => {
                groups.insert(key, e.clone());
            }
        }
    }
    let mut out: Vec<TaskErrorGroup> = groups.into_values().collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.occurrences));
    out
}

/// Each wall-clock second of the run: the shards' points of that second added. Percentiles
/// are exact where every shard kept its interval histograms (shard runs do), else the highest
/// of the shards' (an upper bound).
fn merge_history(results: &[(String, RunResult)]) -> Result<Vec<HistoryPoint>, MergeError> {
    let mut seconds: BTreeMap<i64, Vec<&HistoryPoint>> = BTreeMap::new();
    for p in results.iter().flat_map(|(_, r)| &r.history) {
        let second = p.time.round() as i64;
        if seconds.len() >= crate::stats::capped::MAX_HISTORY_SECONDS
            && !seconds.contains_key(&second)
        {
            return Err(MergeError::TooMany {
                what: "seconds of history",
                cap: crate::stats::capped::MAX_HISTORY_SECONDS,
            });
        }
        seconds.entry(second).or_default().push(p);
    }
    let mut window: VecDeque<Histogram<u64>> = VecDeque::new();
    let mut cumulative = new_histogram();
    let (mut requests, mut failures) = (0u64, 0u64);
    let mut out = Vec::with_capacity(seconds.len());
    for (second, points) in seconds {
        let mut interval = new_histogram();
        let exact = points.iter().all(|p| {
            p.histogram
                .as_deref()
                .and_then(deserialize_histogram)
                .is_some_and(|h| interval.add(&h).is_ok())
        });
        // Per endpoint: exact where every shard kept the endpoint's histogram, else the
        // highest of the shards' percentiles.
        let mut endpoints: BTreeMap<(String, String), EndpointSecond> = BTreeMap::new();
        for e in points.iter().flat_map(|p| &p.endpoints) {
            let key = (e.name.clone(), e.method.clone());
            let h = e.histogram.as_deref().and_then(deserialize_histogram);
            match endpoints.get_mut(&key) {
                Some((m, sum)) => {
                    m.requests += e.requests;
                    m.failures += e.failures;
                    m.percentiles_ms = max_percentiles(&m.percentiles_ms, &e.percentiles_ms);
                    *sum = match (sum.take(), h) {
                        (Some(mut a), Some(b)) => a.add(&b).is_ok().then_some(a),
                        _ => None,
                    };
                }
                None => {
                    let mut e = e.clone();
                    e.window_ms = None;
                    endpoints.insert(key, (e, h));
                }
            }
        }
        let endpoints: Vec<HistoryEndpoint> = endpoints
            .into_values()
            .map(|(mut e, sum)| {
                if let Some(h) = sum {
                    e.percentiles_ms = Percentiles::of(&h);
                    e.histogram = Some(crate::stats::serialize_histogram(&h));
                } else {
                    e.histogram = None;
                }
                e
            })
            .collect();
        let sum = |f: fn(&HistoryPoint) -> f64| points.iter().map(|p| f(p)).sum::<f64>();
        let point_requests = points.iter().map(|p| p.requests).sum::<u64>();
        let point_failures = points.iter().map(|p| p.failures).sum::<u64>();
        requests += point_requests;
        failures += point_failures;
        let (percentiles_ms, window_ms, totals) = if exact {
            let _ = cumulative.add(&interval);
            window.push_back(interval.clone());
            if window.len() > WINDOW_SECONDS {
                window.pop_front();
            }
            let mut w = new_histogram();
            for h in &window {
                let _ = w.add(h);
            }
            let totals = RunningTotals {
                requests,
                failures,
                median_ms: cumulative.value_at_quantile(0.5) as f64 / 1000.0,
                avg_ms: cumulative.mean() / 1000.0,
                min_ms: cumulative.min() as f64 / 1000.0,
                max_ms: cumulative.max() as f64 / 1000.0,
                avg_content_bytes: 0.0,
            };
            (
                Percentiles::of(&interval),
                (!w.is_empty()).then(|| Percentiles::of(&w)),
                Some(totals),
            )
        } else {
            let highest = points
                .iter()
                .map(|p| p.percentiles_ms)
                .reduce(|a, b| max_percentiles(&a, &b))
                .unwrap_or_default();
            (highest, None, None)
        };
        out.push(HistoryPoint {
            time: second as f64,
            users: points.iter().map(|p| p.users).sum(),
            requests: point_requests,
            failures: point_failures,
            rps: sum(|p| p.rps),
            failures_per_s: sum(|p| p.failures_per_s),
            percentiles_ms,
            window_ms,
            histogram: exact.then(|| crate::stats::serialize_histogram(&interval)),
            endpoints,
            totals,
        });
    }
    Ok(out)
}

/// One endpoint's second, summed over the shards, with the sum of their histograms while
/// every shard has one.
type EndpointSecond = (HistoryEndpoint, Option<Histogram<u64>>);

fn max_percentiles(a: &Percentiles, b: &Percentiles) -> Percentiles {
    a.zip_max(b)
}

fn merge_arrivals(results: &[(String, RunResult)]) -> Option<crate::arrivals::ArrivalReport> {
    let reports: Vec<_> = results
        .iter()
        .filter_map(|(_, r)| r.arrivals.as_ref())
        .collect();
    let first = (*reports.first()?).clone();
    let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
    for r in &reports {
        for (class, n) in &r.dropped_by_class {
            *dropped.entry(class.clone()).or_insert(0) += n;
        }
    }
    Some(crate::arrivals::ArrivalReport {
        scheduled: reports.iter().map(|r| r.scheduled).sum(),
        completed: reports.iter().map(|r| r.completed).sum(),
        failed: reports.iter().map(|r| r.failed).sum(),
        dropped: reports.iter().map(|r| r.dropped).sum(),
        cancelled: reports.iter().map(|r| r.cancelled).sum(),
        dropped_by_class: dropped.into_iter().collect(),
        users: reports.iter().map(|r| r.users).sum(),
        max_users: reports.iter().map(|r| r.max_users).sum(),
        lag_p50_us: reports.iter().map(|r| r.lag_p50_us).max().unwrap_or(0),
        lag_p99_us: reports.iter().map(|r| r.lag_p99_us).max().unwrap_or(0),
        lag_max_us: reports.iter().map(|r| r.lag_max_us).max().unwrap_or(0),
        lag: Vec::new(),
        saturated_seconds: reports
            .iter()
            .map(|r| r.saturated_seconds)
            .max()
            .unwrap_or(0),
        ..first
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values recorded in N parts, each part through a result's serialized histogram, add up
    /// to the histogram of all values: the same counts at every value.
    #[test]
    fn histograms_recorded_in_parts_merge_to_the_whole() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let values: Vec<u64> = (0..50_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                50 + x % 2_000_000
            })
            .collect();
        let mut whole = new_histogram();
        for &v in &values {
            whole.record(v).unwrap();
        }
        for parts in [1usize, 2, 4, 7, 64] {
            let mut merged = new_histogram();
            for p in 0..parts {
                let mut part = new_histogram();
                for &v in values.iter().skip(p).step_by(parts) {
                    part.record(v).unwrap();
                }
                let text = crate::stats::serialize_histogram(&part);
                merged.add(deserialize_histogram(&text).unwrap()).unwrap();
            }
            assert_eq!(merged.len(), whole.len());
            assert!(
                whole
                    .iter_recorded()
                    .all(|v| merged.count_at(v.value_iterated_to()) == v.count_at_value()),
                "{parts} parts"
            );
            assert_eq!(Percentiles::of(&merged), Percentiles::of(&whole));
        }
    }
}
