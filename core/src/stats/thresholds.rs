//! Evaluating thresholds on the exact histograms: at the end of a run, and every second for
//! those that abort the run when they fail.

use serde::{Deserialize, Serialize};

use super::record::{Entry, Interval};
use crate::metric::{Metric, Op, Stat};
use crate::plan::{Threshold, ThresholdScope};

/// One threshold's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// As written.
    pub text: String,
    /// The metric, stored normalised (`p95`, `fail_ratio`, `rps`…): `Threshold::metric`.
    pub metric: Metric,
    /// The comparison: `<`, `<=`, `>`, `>=` or `==`.
    pub op: Op,
    /// The limit, in the metric's unit (ms, a fraction, per second, a count).
    pub limit: f64,
    /// What the run measured (`None`: no request matched the scope).
    pub measured: Option<f64>,
    /// The rule held (false also when no request matched).
    pub passed: bool,
    /// How far from failing (positive) or past the limit (negative), in the metric's unit.
    pub margin: Option<f64>,
    /// ` ms`, `/s` or empty.
    pub unit: String,
    /// Which requests the metric was measured on.
    pub scope: ThresholdScope,
    /// This threshold stopped the run early.
    #[serde(default)]
    pub aborted_run: bool,
    /// The latency a time metric read: `service` or `corrected` (empty for counts and rates).
    #[serde(default)]
    pub latency: String,
}

impl ThresholdResult {
    /// `p95 < 500ms: 812.3 ms — FAILED by 312.3 ms` (with `(corrected)` when it read the
    /// corrected latency).
    pub fn describe(&self) -> String {
        let text = if self.latency == "corrected" {
            format!("{} (corrected)", self.text)
        } else {
            self.text.clone()
        };
        let shown = |v: f64| {
            if self.metric == Metric::FailRatio {
                format!("{:.2}%", v * 100.0)
            } else {
                format!("{v:.1}{}", self.unit)
            }
        };
        match (self.measured, self.margin) {
            (Some(m), Some(margin)) if self.passed => {
                format!(
                    "{}: {} — passed ({} to spare)",
                    text,
                    shown(m),
                    shown(margin.abs())
                )
            }
            (Some(m), Some(margin)) => {
                format!("{}: {} — FAILED by {}", text, shown(m), shown(margin.abs()))
            }
            _ => format!("{text}: no request matched — FAILED"),
        }
    }
}

/// The statistics a threshold can look at.
pub struct RunView<'a> {
    /// The run's recorded statistics, merged.
    pub interval: &'a Interval,
    /// Class names by class index (`Interval::classes`).
    pub class_names: &'a [String],
    /// The measured time, in seconds (the denominator of `rps`).
    pub seconds: f64,
}

/// The histogram a time metric reads: as asked, else the corrected one when there is one.
fn latency_of<'a>(
    t: &Threshold,
    entry: &'a Entry,
) -> (&'a hdrhistogram::Histogram<u64>, &'static str) {
    match (t.latency.as_deref(), &entry.corrected) {
        (Some("service"), _) | (None, None) => (&entry.histogram, "service"),
        (_, Some(corrected)) => (corrected, "corrected"),
        // Asked for the corrected latency of a run without a schedule: it is the service time.
        (Some(_), None) => (&entry.histogram, "service"),
    }
}

fn value_of(t: &Threshold, entry: &Entry, seconds: f64) -> Option<f64> {
    let (h, kind) = latency_of(t, entry);
    let ms = |us: u64| us as f64 / 1000.0;
    Some(match t.metric {
        Metric::Requests => entry.requests as f64,
        Metric::Failures => entry.failures as f64,
        Metric::FailRatio => {
            if entry.requests == 0 {
                0.0
            } else {
                entry.failures as f64 / entry.requests as f64
            }
        }
        Metric::Rps => {
            if seconds > 0.0 {
                entry.requests as f64 / seconds
            } else {
                0.0
            }
        }
        _ if entry.requests == 0 => return None,
        // The one timing so far is the request's duration: `latency_of` picked its histogram.
        Metric::Time(_, Stat::Avg) if kind == "corrected" => h.mean() / 1000.0,
        Metric::Time(_, Stat::Avg) => entry.sum_us as f64 / entry.requests as f64 / 1000.0,
        Metric::Time(_, Stat::Min) => ms(h.min()),
        Metric::Time(_, Stat::Max) => ms(h.max()),
        Metric::Time(..) => ms(h.value_at_quantile(t.metric.percentile()? / 100.0)),
    })
}

/// The entry a threshold's scope selects.
fn scoped(t: &Threshold, view: &RunView<'_>) -> Option<Entry> {
    match &t.scope {
        ThresholdScope::All => Some(view.interval.total()),
        ThresholdScope::Endpoint { method, name } => {
            let mut found: Option<Entry> = None;
            for ((m, n), e) in &view.interval.entries {
                if n == name && method.as_ref().is_none_or(|want| want == m) {
                    match &mut found {
                        Some(f) => f.add(e),
                        None => found = Some(e.clone()),
                    }
                }
            }
            found
        }
        ThresholdScope::Class { name } => {
            let index = view
                .class_names
                .iter()
                .position(|c| c.eq_ignore_ascii_case(name))?;
            view.interval.classes.get(index).cloned()
        }
    }
}

/// One threshold's verdict on `view`.
pub fn evaluate(t: &Threshold, view: &RunView<'_>) -> ThresholdResult {
    let entry = scoped(t, view);
    let measured = entry.as_ref().and_then(|e| value_of(t, e, view.seconds));
    let latency = match &entry {
        Some(e) if t.metric.is_time() => latency_of(t, e).1.to_string(),
        _ => String::new(),
    };
    let passed = measured.is_some_and(|m| t.holds(m));
    let margin = measured.map(|m| t.op.margin(m, t.value));
    ThresholdResult {
        text: t.text.clone(),
        metric: t.metric,
        op: t.op,
        limit: t.value,
        measured,
        passed,
        margin,
        unit: t.metric.unit().to_string(),
        scope: t.scope.clone(),
        aborted_run: false,
        latency,
    }
}
