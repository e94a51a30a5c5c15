//! What a threshold reads and how it compares: a metric (a statistic of a timing, a rate or a
//! count) and an operator, parsed once from the names perfhost, Locust and k6 users write.
//!
//! The metric is an open set. A new timing (connect, TLS, waiting, first event, …) is a
//! variant of [`Timing`] with its row in [`TIMINGS`], and the histogram it reads in
//! `stats::thresholds`; its statistics, names and units come with it.
//!
//! Grammar of a metric (the part of a threshold before its operator):
//!
//! ```text
//! METRIC  := [LATENCY "."] (TIMING "." STAT | STAT | RATE | COUNT)
//! LATENCY := "service" | "corrected"
//! TIMING  := "http_req_duration" | "duration"           (see TIMINGS)
//! STAT    := "avg" | "min" | "max" | "med" | "median" | "p" N | "p(" N ")"   (0 < N ≤ 100)
//! RATE    := "failure-rate" | "failure_rate" | "fail-ratio" | "fail_ratio" | "error-rate"
//!          | "http_req_failed" [".rate"] | "rps" | "http_reqs.rate"
//! COUNT   := "requests" | "http_reqs" [".count"] | "failures"
//! ```
//!
//! A bare STAT reads the request's whole duration, as it always has (`p95 < 500ms`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A comparison of the measured value with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==` (within 1e-9)
    Eq,
}

impl Op {
    /// Every operator, the two-character ones first (the order a parser must try them in).
    pub const ALL: [Op; 5] = [Op::Le, Op::Ge, Op::Eq, Op::Lt, Op::Gt];

    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
        }
    }

    /// Whether `measured` satisfies `measured OP limit`.
    pub fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Gt => measured > limit,
            Op::Ge => measured >= limit,
            Op::Eq => (measured - limit).abs() < 1e-9,
        }
    }

    /// How far `measured` is from failing (positive) or past the limit (negative).
    pub fn margin(self, measured: f64, limit: f64) -> f64 {
        match self {
            Op::Lt | Op::Le => limit - measured,
            Op::Gt | Op::Ge => measured - limit,
            Op::Eq => -(measured - limit).abs(),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Op> for String {
    fn from(op: Op) -> String {
        op.as_str().to_string()
    }
}

impl TryFrom<String> for Op {
    type Error = String;
    fn try_from(text: String) -> Result<Op, String> {
        Op::ALL
            .into_iter()
            .find(|op| op.as_str() == text)
            .ok_or_else(|| format!("unknown operator `{text}` (use <, <=, >, >= or ==)"))
    }
}

/// A timing of a request whose statistics a threshold can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// From sending the request to the end of its response (k6's `http_req_duration`).
    Duration,
}

/// Every timing: the name perfhost stores it under, and every name a user may write for it.
pub const TIMINGS: [(Timing, &str, &[&str]); 1] = [(
    Timing::Duration,
    "duration",
    &["duration", "http_req_duration"],
)];

impl Timing {
    /// The name it is stored under in a result.
    pub fn name(self) -> &'static str {
        TIMINGS
            .iter()
            .find(|(t, _, _)| *t == self)
            .map_or("duration", |(_, name, _)| name)
    }

    fn named(text: &str) -> Option<Timing> {
        TIMINGS
            .iter()
            .find(|(_, _, names)| names.contains(&text))
            .map(|(t, _, _)| *t)
    }
}

/// A statistic of a timing's histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// The mean.
    Avg,
    /// The fastest.
    Min,
    /// The slowest.
    Max,
    /// The 50th percentile, written `median` (or k6's `med`).
    Median,
    /// A percentile, 0 < N ≤ 100: `p95`, `p99.9`, k6's `p(95)`.
    Percentile(f64),
}

impl Stat {
    fn parse(text: &str) -> Option<Stat> {
        Some(match text {
            "avg" => Stat::Avg,
            "min" => Stat::Min,
            "max" => Stat::Max,
            "median" | "med" => Stat::Median,
            p => {
                let n = p.strip_prefix("p(").and_then(|p| p.strip_suffix(')'));
                let n: f64 = n.or_else(|| p.strip_prefix('p'))?.parse().ok()?;
                (n > 0.0 && n <= 100.0).then_some(Stat::Percentile(n))?
            }
        })
    }
}

/// What a threshold reads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Metric {
    /// A statistic of a timing, in milliseconds.
    Time(Timing, Stat),
    /// Failed requests as a fraction of all (written `failure-rate < 1%`).
    FailRatio,
    /// Requests per second over the run.
    Rps,
    /// Requests, a count.
    Requests,
    /// Failed requests, a count.
    Failures,
}

/// Why a metric's name is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// No metric of that name.
    #[error("unknown metric `{0}` (use p50 … p99.99, avg, min, max, median, failure-rate, fail_ratio, rps, requests, failures, or k6's http_req_duration.p(95), http_req_failed, http_reqs)")]
    Unknown(String),
    /// A timing named without the statistic to read of it.
    #[error("`{0}` needs a statistic: write e.g. {0}.p(95) or {0}.avg")]
    NoStat(String),
    /// A k6 metric perfhost does not measure.
    #[error("k6's `{name}` has no counterpart here: {instead}")]
    NotMeasured {
        /// As written.
        name: String,
        /// What to use.
        instead: &'static str,
    },
}

impl Metric {
    /// The metric a name stands for (`p95`, `p(95)`, `failure-rate`, `http_req_duration.med`,
    /// …), without a latency prefix.
    pub fn parse(text: &str) -> Result<Metric, MetricError> {
        let unknown = || MetricError::Unknown(text.to_string());
        Ok(match text {
            "failure-rate"
            | "failure_rate"
            | "fail-ratio"
            | "fail_ratio"
            | "error-rate"
            | "http_req_failed"
            | "http_req_failed.rate" => Metric::FailRatio,
            "rps" | "http_reqs.rate" => Metric::Rps,
            "requests" | "http_reqs" | "http_reqs.count" => Metric::Requests,
            "failures" => Metric::Failures,
            "iterations" | "iterations.count" | "iterations.rate" => {
                return Err(MetricError::NotMeasured {
                    name: text.to_string(),
                    instead: "a task is counted as its requests — use requests or rps",
                })
            }
            "checks" | "checks.rate" => {
                return Err(MetricError::NotMeasured {
                    name: text.to_string(),
                    instead: "a failed check is a failed request — use failure-rate",
                })
            }
            // `TIMING.STAT` when the part before the first dot is a timing (`p99.9` is not).
            _ => match text
                .split_once('.')
                .and_then(|(timing, stat)| Some((Timing::named(timing)?, stat)))
            {
                Some((timing, stat)) => {
                    Metric::Time(timing, Stat::parse(stat).ok_or_else(unknown)?)
                }
                None if Timing::named(text).is_some() => {
                    return Err(MetricError::NoStat(text.to_string()))
                }
                None => Metric::Time(Timing::Duration, Stat::parse(text).ok_or_else(unknown)?),
            },
        })
    }

    /// A statistic of a timing (milliseconds), not a rate or a count.
    pub fn is_time(self) -> bool {
        matches!(self, Metric::Time(..))
    }

    /// The percentile a time metric reads (`median` is 50), if it is one.
    pub fn percentile(self) -> Option<f64> {
        match self {
            Metric::Time(_, Stat::Percentile(p)) => Some(p),
            Metric::Time(_, Stat::Median) => Some(50.0),
            _ => None,
        }
    }

    /// The unit its values are in, for display: ` ms`, `/s` or nothing.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Time(..) => " ms",
            Metric::Rps => "/s",
            Metric::FailRatio | Metric::Requests | Metric::Failures => "",
        }
    }
}

/// The name a result stores: `p95`, `avg`, `fail_ratio`, … for the request's duration (as
/// results always have), `TIMING.STAT` for another timing.
impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Time(timing, stat) => {
                if *timing != Timing::Duration {
                    write!(f, "{}.", timing.name())?;
                }
                match stat {
                    Stat::Avg => f.write_str("avg"),
                    Stat::Min => f.write_str("min"),
                    Stat::Max => f.write_str("max"),
                    Stat::Median => f.write_str("median"),
                    Stat::Percentile(p) => write!(f, "p{p}"),
                }
            }
            Metric::FailRatio => f.write_str("fail_ratio"),
            Metric::Rps => f.write_str("rps"),
            Metric::Requests => f.write_str("requests"),
            Metric::Failures => f.write_str("failures"),
        }
    }
}

impl From<Metric> for String {
    fn from(metric: Metric) -> String {
        metric.to_string()
    }
}

impl TryFrom<String> for Metric {
    type Error = MetricError;
    fn try_from(text: String) -> Result<Metric, MetricError> {
        Metric::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_as_its_metric_and_stores_as_before() {
        let duration = |s| Metric::Time(Timing::Duration, s);
        for (written, metric, stored) in [
            ("p95", duration(Stat::Percentile(95.0)), "p95"),
            ("p(99.9)", duration(Stat::Percentile(99.9)), "p99.9"),
            (
                "http_req_duration.p(95)",
                duration(Stat::Percentile(95.0)),
                "p95",
            ),
            ("http_req_duration.med", duration(Stat::Median), "median"),
            ("duration.avg", duration(Stat::Avg), "avg"),
            ("median", duration(Stat::Median), "median"),
            ("max", duration(Stat::Max), "max"),
            ("failure-rate", Metric::FailRatio, "fail_ratio"),
            ("http_req_failed", Metric::FailRatio, "fail_ratio"),
            ("http_req_failed.rate", Metric::FailRatio, "fail_ratio"),
            ("http_reqs", Metric::Requests, "requests"),
            ("http_reqs.rate", Metric::Rps, "rps"),
            ("failures", Metric::Failures, "failures"),
        ] {
            let parsed = Metric::parse(written).unwrap_or_else(|e| panic!("{written}: {e}"));
            assert_eq!(parsed, metric, "{written}");
            assert_eq!(parsed.to_string(), stored, "{written}");
            // What a result stores reads back as the same metric.
            assert_eq!(Metric::parse(stored), Ok(metric), "{stored}");
        }
    }

    #[test]
    fn unknown_names_and_operators_are_refused() {
        for bad in [
            "latency",
            "p0",
            "p101",
            "p(x)",
            "http_req_duration.p(200)",
            "waiting.p95",
        ] {
            assert_eq!(
                Metric::parse(bad),
                Err(MetricError::Unknown(bad.into())),
                "{bad}"
            );
        }
        assert!(matches!(
            Metric::parse("http_req_duration"),
            Err(MetricError::NoStat(_))
        ));
        assert!(matches!(
            Metric::parse("checks"),
            Err(MetricError::NotMeasured { .. })
        ));
        assert!(Op::try_from("=<".to_string()).is_err());
        assert_eq!(Op::try_from("<=".to_string()), Ok(Op::Le));
        // A result with an unknown operator does not load as one that compares with `==`.
        assert!(serde_json::from_str::<Op>("\"~\"").is_err());
        assert_eq!(serde_json::to_string(&Op::Ge).unwrap(), "\">=\"");
    }

    #[test]
    fn operators_hold_and_measure_their_margin() {
        assert!(Op::Lt.holds(1.0, 2.0) && !Op::Lt.holds(2.0, 2.0) && Op::Le.holds(2.0, 2.0));
        assert!(Op::Gt.holds(3.0, 2.0) && Op::Ge.holds(2.0, 2.0) && Op::Eq.holds(2.0, 2.0));
        assert_eq!(Op::Lt.margin(1.5, 2.0), 0.5);
        assert_eq!(Op::Gt.margin(1.5, 2.0), -0.5);
        assert_eq!(Op::Eq.margin(1.5, 2.0), -0.5);
    }
}
