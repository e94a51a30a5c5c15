//! What the demo server remembers: Prometheus metrics (same names, buckets and text format as
//! the real API's `prometheus_client` registry), the bounded result store behind
//! `/verifications/{id}`, and the running totals behind `/statistics`.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

/// `prometheus_client`'s default histogram buckets (used by `auditor_verify_latency_seconds`).
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// The real API's buckets for `auditor_confidence_score`.
const CONFIDENCE_BUCKETS: &[f64] = &[0.0, 0.2, 0.4, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0];

/// A lock-free histogram (non-cumulative counts; cumulated when rendered).
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_bits: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn observe(&self, value: f64) {
        let idx = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[idx].fetch_add(1, Ordering::Relaxed);
        let mut cur = self.sum_bits.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + value).to_bits();
            match self.sum_bits.compare_exchange_weak(
                cur,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => cur = seen,
            }
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str, created: f64) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(b) => py_float(*b),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{le}\"}} {}",
                py_float(cumulative as f64)
            );
        }
        let sum = f64::from_bits(self.sum_bits.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_count {}", py_float(cumulative as f64));
        let _ = writeln!(out, "{name}_sum {}", py_float(sum));
        let _ = writeln!(out, "# HELP {name}_created {help}");
        let _ = writeln!(out, "# TYPE {name}_created gauge");
        let _ = writeln!(out, "{name}_created {}", py_float(created));
    }
}

/// `prometheus_client`'s `floatToGoString`: Python's `repr(float)` (`3.0`, `0.005`), with
/// Go-style exponents for large values (`1.7e+09`).
fn py_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = if v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    };
    match s.find('.') {
        Some(dot) if v > 0.0 && dot > 6 => {
            let digits = format!("{}{}", &s[1..dot], &s[dot + 1..]);
            let mantissa = format!("{}.{digits}", &s[..1]);
            let mantissa = mantissa.trim_end_matches(['0', '.']);
            format!("{mantissa}e+0{}", dot - 1)
        }
        _ => s,
    }
}

/// The Prometheus side: counters and histograms with the real names.
pub struct Metrics {
    success: AtomicU64,
    error: AtomicU64,
    // prometheus_client only prints a label set once it has been used.
    success_seen: AtomicBool,
    error_seen: AtomicBool,
    latency: Histogram,
    confidence: Histogram,
    created: f64,
}

impl Metrics {
    /// New, empty metrics; `created` is the Unix time the registry was made.
    pub fn new(created: f64) -> Self {
        Metrics {
            success: AtomicU64::new(0),
            error: AtomicU64::new(0),
            success_seen: AtomicBool::new(false),
            error_seen: AtomicBool::new(false),
            latency: Histogram::new(LATENCY_BUCKETS),
            confidence: Histogram::new(CONFIDENCE_BUCKETS),
            created,
        }
    }

    /// A successful verification: its latency (seconds) and confidence.
    pub fn record_success(&self, latency_secs: f64, confidence: f64) {
        self.success.fetch_add(1, Ordering::Relaxed);
        self.success_seen.store(true, Ordering::Relaxed);
        self.confidence.observe(confidence);
        self.latency.observe(latency_secs);
    }

    /// A failed verification (500).
    pub fn record_error(&self) {
        self.error.fetch_add(1, Ordering::Relaxed);
        self.error_seen.store(true, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let help = "Total verification requests";
        let _ = writeln!(out, "# HELP auditor_verify_requests_total {help}");
        let _ = writeln!(out, "# TYPE auditor_verify_requests_total counter");
        let labels = [
            ("success", &self.success, &self.success_seen),
            ("error", &self.error, &self.error_seen),
        ];
        for (label, count, seen) in labels {
            if seen.load(Ordering::Relaxed) {
                let _ = writeln!(
                    out,
                    "auditor_verify_requests_total{{status=\"{label}\"}} {}",
                    py_float(count.load(Ordering::Relaxed) as f64)
                );
            }
        }
        let _ = writeln!(out, "# HELP auditor_verify_requests_created {help}");
        let _ = writeln!(out, "# TYPE auditor_verify_requests_created gauge");
        for (label, _, seen) in labels {
            if seen.load(Ordering::Relaxed) {
                let _ = writeln!(
                    out,
                    "auditor_verify_requests_created{{status=\"{label}\"}} {}",
                    py_float(self.created)
                );
            }
        }
        self.latency.render(
            &mut out,
            "auditor_verify_latency_seconds",
            "Verification request latency",
            self.created,
        );
        self.confidence.render(
            &mut out,
            "auditor_confidence_score",
            "Distribution of confidence scores",
            self.created,
        );
        out
    }
}

/// Totals for `/statistics`, over every verification since start (not just stored ones).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Statistics {
    /// Verifications answered with 200.
    pub total: u64,
    /// Sum of their confidence scores.
    pub confidence_sum: f64,
    /// Counts per trust label: verified, review, rejected.
    pub by_label: [u64; 3],
}

/// The `/statistics` body, in the real response model's field order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatisticsBody {
    total_verifications: u64,
    valid_verifications: u64,
    average_confidence: f64,
    by_label: ByLabel,
}

#[derive(Debug, Clone, serde::Serialize)]
struct ByLabel {
    verified: u64,
    review: u64,
    rejected: u64,
}

impl Statistics {
    /// The `/statistics` body (every verification stays valid: sources never change here).
    pub fn body(&self) -> StatisticsBody {
        let avg = if self.total == 0 {
            0.0
        } else {
            self.confidence_sum / self.total as f64
        };
        StatisticsBody {
            total_verifications: self.total,
            valid_verifications: self.total,
            average_confidence: avg,
            by_label: ByLabel {
                verified: self.by_label[0],
                review: self.by_label[1],
                rejected: self.by_label[2],
            },
        }
    }
}

/// Stored results keyed by their UUID, the oldest evicted beyond `capacity`.
pub struct Store {
    capacity: usize,
    inner: Mutex<StoreInner>,
}

#[derive(Default)]
struct StoreInner {
    map: HashMap<u128, Bytes>,
    order: VecDeque<u128>,
    stats: Statistics,
}

impl Store {
    /// An empty store keeping at most `capacity` results (0 keeps none).
    pub fn new(capacity: usize) -> Self {
        Store {
            capacity,
            inner: Mutex::new(StoreInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        // A panic while holding the lock cannot leave the map inconsistent: keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one verification and keeps its rendered record.
    pub fn insert(&self, id: u128, record: Bytes, confidence: f64, label: usize) {
        let mut inner = self.lock();
        inner.stats.total += 1;
        inner.stats.confidence_sum += confidence;
        if let Some(n) = inner.stats.by_label.get_mut(label) {
            *n += 1;
        }
        if self.capacity == 0 {
            return;
        }
        while inner.order.len() >= self.capacity {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.map.remove(&old);
                }
                None => break,
            }
        }
        inner.map.insert(id, record);
        inner.order.push_back(id);
    }

    /// A stored record.
    pub fn get(&self, id: u128) -> Option<Bytes> {
        self.lock().map.get(&id).cloned()
    }

    /// Running totals.
    pub fn statistics(&self) -> Statistics {
        self.lock().stats
    }

    /// How many records are held.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        assert_eq!(py_float(3.0), "3.0");
        assert_eq!(py_float(0.005), "0.005");
        assert_eq!(py_float(1.7e9), "1.7e+09");
        assert_eq!(py_float(1234567.0), "1.234567e+06");
    }

    #[test]
    fn store_evicts_oldest() {
        let s = Store::new(2);
        for id in 0..3u128 {
            s.insert(id, Bytes::from_static(b"{}"), 0.5, 2);
        }
        assert!(s.get(0).is_none());
        assert!(s.get(2).is_some());
        assert_eq!(s.statistics().total, 3);
    }
}
