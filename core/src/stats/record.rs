//! Recording: what the plugin host writes on every request. Each worker thread owns a `Tally`
//! (an uncontended mutex) that its users record into; the collector takes every tally's
//! interval once a second and merges it, so there is no global lock per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::unix_now;
use crate::plan::{Protocol, Redactor};

/// Latencies are recorded in microseconds, 3 significant digits, up to one hour.
pub(crate) const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Failing responses kept as samples, per (method, name) and in total.
const SAMPLES_PER_NAME: usize = 3;
const MAX_SAMPLES: usize = 50;
/// Bytes of a failing response's body kept in its sample.
pub const SAMPLE_BODY_BYTES: usize = 2048;

/// An empty latency histogram: microseconds, 1 to [`MAX_LATENCY_US`], 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static bounds are valid")
}

/// A failing response kept for the report: what the server actually said.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailureSample {
    /// The HTTP method.
    pub method: String,
    /// The request's statistics name.
    pub name: String,
    /// Why it failed (`HTTP 500`, `timed out`, the plugin's reason).
    pub error: String,
    /// The HTTP status; `None` when no response came.
    pub status: Option<u16>,
    /// The response headers, in order.
    pub headers: Vec<(String, String)>,
    /// The first 2 KiB of the body, lossily decoded.
    pub body: String,
    /// When it failed, Unix seconds.
    pub time: f64,
}

/// Counts of one (method, name) row.
#[derive(Clone)]
pub struct Entry {
    /// Service time: from the actual send to the response.
    pub histogram: Histogram<u64>,
    /// Response time from the intended start (service time plus how late the request's task
    /// started against its schedule), for runs with a schedule: the open model's arrivals, or
    /// `constant-pacing` / `constant-throughput` waits. wrk2's coordinated-omission correction.
    pub corrected: Option<Histogram<u64>>,
    /// Requests, failed ones included.
    pub requests: u64,
    /// Failed requests.
    pub failures: u64,
    /// Response body bytes, summed.
    pub content_bytes: u64,
    /// Service times summed, in microseconds (for the mean).
    pub sum_us: u64,
    /// Responses by the HTTP they came over, in the order of `Protocol::ALL`.
    pub protocols: [u64; 2],
}

impl Default for Entry {
    fn default() -> Self {
        Self::new()
    }
}

impl Entry {
    /// No requests yet.
    pub fn new() -> Self {
        Entry {
            histogram: new_histogram(),
            corrected: None,
            requests: 0,
            failures: 0,
            content_bytes: 0,
            sum_us: 0,
            protocols: [0; 2],
        }
    }

    /// Counts one request.
    fn count(&mut self, rec: &RequestRecord<'_>) {
        self.requests += 1;
        self.content_bytes += rec.content_bytes;
        self.sum_us += rec.latency_us;
        if rec.error.is_some() {
            self.failures += 1;
        }
        if let Some(protocol) = rec.protocol {
            self.protocols[protocol.index()] += 1;
        }
        let _ = self
            .histogram
            .record(rec.latency_us.clamp(1, MAX_LATENCY_US));
        if let Some(late) = rec.lateness_us {
            let value = rec.latency_us.saturating_add(late).clamp(1, MAX_LATENCY_US);
            let _ = self
                .corrected
                .get_or_insert_with(new_histogram)
                .record(value);
        }
    }

    /// Adds `other`'s counts and histograms to these.
    pub fn add(&mut self, other: &Entry) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        if let Some(theirs) = &other.corrected {
            let _ = self.corrected.get_or_insert_with(new_histogram).add(theirs);
        }
        self.requests += other.requests;
        self.failures += other.failures;
        self.content_bytes += other.content_bytes;
        self.sum_us += other.sum_us;
        for (mine, theirs) in self.protocols.iter_mut().zip(other.protocols) {
            *mine += theirs;
        }
    }
}

/// How often something was seen, and when first and last.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    pub count: u64,
    pub first: f64,
    pub last: f64,
}

impl Seen {
    fn now() -> Self {
        let now = unix_now();
        Seen {
            count: 1,
            first: now,
            last: now,
        }
    }

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
    pub(super) failures: HashMap<(String, String, String), Seen>,
    pub(super) task_errors: HashMap<(String, String), Seen>,
    /// Requests the sandbox refused (another origin).
    pub denied: u64,
    /// Every request of each user class, by the class's index in the run.
    pub classes: Vec<Entry>,
}

const OTHER_ERRORS: &str = "other errors (too many distinct messages)";
const OTHER_TASK_ERRORS: &str = "other task errors (too many distinct messages)";

fn cap_distinct<K: std::hash::Hash + Eq + Clone>(
    known: &HashMap<K, Seen>,
    incoming: &mut HashMap<K, Seen>,
    other: impl Fn(&K) -> K,
) {
    let fresh: Vec<K> = incoming
        .keys()
        .filter(|k| !known.contains_key(*k))
        .cloned()
        .collect();
    let room = MAX_DISTINCT_ERRORS.saturating_sub(known.len());
    for key in fresh.into_iter().skip(room) {
        let replacement = other(&key);
        if replacement == key {
            continue;
        }
        if let Some(seen) = incoming.remove(&key) {
            merge_seen(incoming, replacement, seen);
        }
    }
}

fn merge_seen<K: std::hash::Hash + Eq>(into: &mut HashMap<K, Seen>, key: K, seen: Seen) {
    into.entry(key)
        .and_modify(|s| s.merge(seen))
        .or_insert(seen);
}

impl Interval {
    pub(super) fn merge(&mut self, other: Interval) {
        for (key, entry) in other.entries {
            match self.entries.get_mut(&key) {
                Some(mine) => mine.add(&entry),
                None => {
                    self.entries.insert(key, entry);
                }
            }
        }
        for (key, seen) in other.failures {
            merge_seen(&mut self.failures, key, seen);
        }
        for (key, seen) in other.task_errors {
            merge_seen(&mut self.task_errors, key, seen);
        }
        self.denied += other.denied;
        for (i, entry) in other.classes.into_iter().enumerate() {
            match self.classes.get_mut(i) {
                Some(mine) => mine.add(&entry),
                None => self.classes.push(entry),
            }
        }
    }

    /// Folds failure kinds and task errors that `run` does not know yet into one "other" entry
    /// each once `run` holds `MAX_DISTINCT_ERRORS` of them: a plugin inventing a new message
    /// per task cannot grow the result without bound.
    pub(super) fn cap_errors(&mut self, run: &Interval) {
        cap_distinct(&run.failures, &mut self.failures, |k| {
            (k.0.clone(), k.1.clone(), OTHER_ERRORS.to_string())
        });
        cap_distinct(&run.task_errors, &mut self.task_errors, |k| {
            (k.0.clone(), OTHER_TASK_ERRORS.to_string())
        });
    }

    /// Failed requests per (method, name, error), in no order.
    pub fn failure_counts(&self) -> impl Iterator<Item = (&str, &str, &str, u64)> {
        self.failures
            .iter()
            .map(|((m, n, e), seen)| (m.as_str(), n.as_str(), e.as_str(), seen.count))
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

/// The failure samples of a run, shared by every tally: a sample is built only when it will be
/// kept (a few per name, 50 in all), and once the book is full nothing is locked at all.
#[derive(Default)]
pub struct SampleBook {
    full: AtomicBool,
    samples: Mutex<Vec<FailureSample>>,
}

impl SampleBook {
    fn lock(&self) -> MutexGuard<'_, Vec<FailureSample>> {
        self.samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps the sample `make` builds, if (method, name) still has room.
    fn offer(
        &self,
        method: &str,
        name: &str,
        redactor: &Redactor,
        make: impl FnOnce() -> FailureSample,
    ) {
        if self.full.load(Ordering::Relaxed) {
            return;
        }
        let mut samples = self.lock();
        let same = samples
            .iter()
            .filter(|s| s.method == method && s.name == name)
            .count();
        if samples.len() < MAX_SAMPLES && same < SAMPLES_PER_NAME {
            let mut sample = make();
            sample.method = cap_name(&sample.method).into_owned();
            sample.name = cap_name(&sample.name).into_owned();
            // The error may quote the whole URL (a 10 MB data value in the path).
            sample.error = cap_message(&sample.error).into_owned();
            if !redactor.is_empty() {
                sample.error = redactor.redact(&sample.error).into_owned();
                sample.body = redactor.redact(&sample.body).into_owned();
                for (_, value) in &mut sample.headers {
                    *value = redactor.redact(value).into_owned();
                }
            }
            samples.push(sample);
        }
        if samples.len() >= MAX_SAMPLES {
            self.full.store(true, Ordering::Relaxed);
        }
    }

    /// The samples so far.
    pub fn samples(&self) -> Vec<FailureSample> {
        self.lock().clone()
    }

    /// Forgets every sample (`--reset-stats`).
    pub fn clear(&self) {
        self.lock().clear();
        self.full.store(false, Ordering::Relaxed);
    }
}

/// One request's outcome as the plugin host records it.
pub struct RequestRecord<'a> {
    /// The user class's index in the run (its row in `Interval::classes`).
    pub class: u32,
    /// The HTTP method, or a custom event's kind.
    pub method: &'a str,
    /// The statistics name (the path when the plugin gave none).
    pub name: &'a str,
    /// Service time, from the send to the last body byte, in microseconds.
    pub latency_us: u64,
    /// Response body size, in bytes.
    pub content_bytes: u64,
    /// `Some(message)` for a failure.
    pub error: Option<&'a str>,
    /// How late the request's task started against its schedule (`None`: no schedule).
    pub lateness_us: Option<u64>,
    /// The HTTP its response came over (`None`: no response, or a custom event).
    pub protocol: Option<Protocol>,
}

/// A worker thread's recording tally. Every text it records passes the run's `Redactor`, so
/// no configured secret reaches a report.
#[derive(Default)]
pub struct Tally {
    current: Mutex<Interval>,
    book: Arc<SampleBook>,
    redactor: Arc<Redactor>,
}

/// Longest text a plugin can make perfhost keep (a task error or failure reason): 2 KiB shows
/// any real message; a plugin echoing megabytes cannot blow up the result.
pub const MAX_MESSAGE_BYTES: usize = 2048;
/// Distinct failure kinds (method, name, error) and task errors kept per interval: beyond,
/// new ones are counted under one "other" entry.
pub const MAX_DISTINCT_ERRORS: usize = 500;

/// `text` cut to `MAX_MESSAGE_BYTES` (on a character boundary) with a marker saying how much
/// was cut.
pub fn cap_message(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_MESSAGE_BYTES {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!(
        "{}… [{} more bytes cut]",
        &text[..end],
        text.len() - end
    ))
}

/// Longest request name (or method) a row keeps: a name is a label for a table, and a value
/// used as one (a 50 MB field of a `--data` row) would otherwise be kept whole in the row,
/// its failures, its history and its samples.
pub(crate) const MAX_NAME_BYTES: usize = 256;
/// What ends a name cut at `MAX_NAME_BYTES`: the same for every cut, so names that share
/// their first 256 bytes share a row.
pub(crate) const NAME_CUT: &str = "… [name cut at 256 bytes]";

/// `name` cut to `MAX_NAME_BYTES` (on a character boundary) with `NAME_CUT` after it.
pub(crate) fn cap_name(name: &str) -> std::borrow::Cow<'_, str> {
    if name.len() <= MAX_NAME_BYTES {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut end = MAX_NAME_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}{NAME_CUT}", &name[..end]))
}

impl Tally {
    fn lock(&self) -> MutexGuard<'_, Interval> {
        // A panic while holding the lock leaves counts that are still valid numbers.
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one request.
    pub fn record(&self, rec: &RequestRecord<'_>) {
        let (method, name) = (cap_name(rec.method), cap_name(rec.name));
        let mut interval = self.lock();
        let key = RowKey(&method, &name);
        if !interval.entries.contains_key(&key) {
            interval
                .entries
                .insert((method.to_string(), name.to_string()), Entry::new());
        }
        let Some(entry) = interval.entries.get_mut(&key) else {
            return;
        };
        entry.count(rec);
        let class = rec.class as usize;
        if interval.classes.len() <= class {
            interval.classes.resize_with(class + 1, Entry::new);
        }
        interval.classes[class].count(rec);
        if let Some(error) = rec.error {
            let error = self.redactor.redact(error);
            let error = cap_message(&error);
            let key = (method.to_string(), name.to_string(), error.into_owned());
            if interval.failures.len() >= MAX_DISTINCT_ERRORS
                && !interval.failures.contains_key(&key)
            {
                let other = (
                    key.0,
                    key.1,
                    "other errors (too many distinct messages)".to_string(),
                );
                merge_seen(&mut interval.failures, other, Seen::now());
            } else {
                merge_seen(&mut interval.failures, key, Seen::now());
            }
        }
    }

    /// Records one failed request and offers a sample of it; `make` runs only if the sample
    /// is kept.
    pub fn record_failure(&self, rec: &RequestRecord<'_>, make: impl FnOnce() -> FailureSample) {
        self.record(rec);
        self.book.offer(
            &cap_name(rec.method),
            &cap_name(rec.name),
            &self.redactor,
            make,
        );
    }

    /// A task that ended with an error or a trap (Locust's exceptions), keyed by where and what.
    pub fn record_task_error(&self, location: &str, message: &str) {
        let message = self.redactor.redact(message);
        let mut key = (location.to_string(), cap_message(&message).into_owned());
        let mut interval = self.lock();
        if interval.task_errors.len() >= MAX_DISTINCT_ERRORS
            && !interval.task_errors.contains_key(&key)
        {
            key.1 = OTHER_TASK_ERRORS.to_string();
        }
        merge_seen(&mut interval.task_errors, key, Seen::now());
    }

    /// Counts one request the sandbox refused (another origin).
    pub fn record_denied(&self) {
        self.lock().denied += 1;
    }

    /// Takes what was recorded since the last call.
    pub fn take(&self) -> Interval {
        std::mem::take(&mut *self.lock())
    }
}

/// Every worker's tally; the collector reads them all.
#[derive(Clone)]
pub struct Tallies {
    /// One tally per worker thread.
    pub tallies: Arc<Vec<Arc<Tally>>>,
    book: Arc<SampleBook>,
}

impl Tallies {
    /// `count` tallies (at least one) that redact what `redactor` names.
    pub fn new(count: usize, redactor: Arc<Redactor>) -> Self {
        let book = Arc::new(SampleBook::default());
        let tallies = (0..count.max(1))
            .map(|_| {
                Arc::new(Tally {
                    current: Mutex::default(),
                    book: book.clone(),
                    redactor: redactor.clone(),
                })
            })
            .collect();
        Tallies {
            tallies: Arc::new(tallies),
            book,
        }
    }

    /// The tally of worker `index`.
    pub fn tally(&self, index: usize) -> Arc<Tally> {
        self.tallies[index % self.tallies.len()].clone()
    }

    /// Takes and merges what every tally recorded since the last call.
    pub fn take_all(&self) -> Interval {
        let mut merged = Interval::default();
        for tally in self.tallies.iter() {
            merged.merge(tally.take());
        }
        merged
    }

    /// The failure samples of the run.
    pub fn samples(&self) -> &SampleBook {
        &self.book
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_names_are_cut_where_rows_are_made() {
        assert_eq!(cap_name("/verify"), "/verify");
        let huge = format!("/health?user={}", "é".repeat(3_000_000));
        let tally = Tally::default();
        for error in [None, Some("HTTP 431")] {
            tally.record_failure(
                &RequestRecord {
                    class: 0,
                    method: "GET",
                    name: &huge,
                    latency_us: 10,
                    content_bytes: 0,
                    error,
                    lateness_us: None,
                    protocol: None,
                },
                || FailureSample {
                    method: "GET".into(),
                    name: huge.clone(),
                    error: "HTTP 431".into(),
                    status: Some(431),
                    headers: Vec::new(),
                    body: String::new(),
                    time: 0.0,
                },
            );
        }
        let interval = tally.take();
        assert_eq!(interval.entries.len(), 1, "one row for both requests");
        let ((_, name), entry) = interval.entries.iter().next().unwrap();
        assert_eq!(entry.requests, 2);
        assert!(
            name.len() <= MAX_NAME_BYTES + NAME_CUT.len(),
            "{}",
            name.len()
        );
        assert!(name.ends_with(NAME_CUT) && name.starts_with("/health?user=é"));
        for (_, n, _, _) in interval.failure_counts() {
            assert_eq!(n, name);
        }
        for sample in tally.book.samples() {
            assert_eq!(&sample.name, name);
        }
    }
}
