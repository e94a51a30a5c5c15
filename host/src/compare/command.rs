//! `perfhost compare BASELINE CURRENT`: the CI regression gate over two results.

use std::path::PathBuf;

use crate::compare::{self, Metric, Rules};
use crate::exit;
use crate::failure::{Failure, Lost};

/// Options of `perfhost compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The baseline: a run result, a bench result, or a benchmark.py JSON file.
    #[arg(value_name = "BASELINE.json")]
    pub baseline: PathBuf,
    /// The current result to judge.
    #[arg(value_name = "CURRENT.json")]
    pub current: PathBuf,
    /// How much worse a latency or the throughput may be before it counts as a regression:
    /// 10%, 0.1.
    #[arg(long = "max-regression", default_value = "10%", value_parser = parse_share)]
    pub max_regression: f64,
    /// A latency regresses only when it is also this much worse (so jitter does not fail CI).
    #[arg(long = "min-delta", default_value = "1ms", value_parser = parse_ms)]
    pub min_delta_ms: f64,
    /// How much the failure ratio may rise, in percentage points: 1%, 0.01.
    #[arg(long = "max-failure-increase", default_value = "1%", value_parser = parse_share)]
    pub max_failure_increase: f64,
    /// Requests a percentile needs on both sides [default: p95 20, p99 100].
    #[arg(long = "min-samples", value_name = "N")]
    pub min_samples: Option<u64>,
    /// The metrics to compare (repeatable or comma-separated): p50, p95, p99, rps, fail_ratio
    /// [default: all].
    #[arg(long = "metric", value_delimiter = ',', value_parser = parse_metric)]
    pub metrics: Vec<Metric>,
    /// Also write the table as Markdown (`-` prints it), for a pull-request comment.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Also write JUnit XML: one test case per compared metric.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

fn parse_share(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    value
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("`{text}` is not a share — use e.g. 10% or 0.1"))
}

fn parse_ms(text: &str) -> Result<f64, String> {
    perfhost_core::plan::parse_threshold(&format!("max < {text}"))
        .map(|t| t.value)
        .map_err(|_| format!("`{text}` is not a time — use e.g. 1ms, 0.5ms, 2s"))
}

fn parse_metric(text: &str) -> Result<Metric, String> {
    Metric::parse(text)
        .ok_or_else(|| format!("`{text}` is not a metric — use p50, p95, p99, rps or fail_ratio"))
}

/// The CLI entry: 0 without regression, 1 with one, 2 when a file cannot be read or nothing
/// could be compared, 6 when `--markdown`/`--junit` could not be written.
pub fn main(args: CompareArgs) -> Result<u8, Failure> {
    let load = |path: &PathBuf| compare::load(path);
    let (baseline, current) = match (load(&args.baseline), load(&args.current)) {
        (Ok(b), Ok(c)) => (b, c),
        (Err(err), _) | (_, Err(err)) => return Err(Failure::of(exit::USAGE, &err)),
    };
    let rules = Rules {
        max_regression: args.max_regression,
        min_delta_ms: args.min_delta_ms,
        max_failure_increase: args.max_failure_increase,
        min_samples: args.min_samples,
        metrics: if args.metrics.is_empty() {
            Metric::ALL.to_vec()
        } else {
            args.metrics.clone()
        },
    };
    let comparison = compare::compare(&baseline, &current, &rules);
    crate::out!("{}", compare::table(&comparison));
    let mut lost = Lost::default();
    let mut write = |path: &PathBuf, text: String| {
        if path.as_os_str() == "-" {
            crate::out!("{text}");
            return;
        }
        if let Err(err) = perfhost_core::outfile::write(path, text.as_bytes()) {
            lost.add(&err);
        }
    };
    if let Some(path) = &args.markdown {
        write(path, compare::markdown(&comparison));
    }
    if let Some(path) = &args.junit {
        write(path, compare::junit(&comparison));
    }
    // A gate that judged nothing must not pass: no row in common, or too few samples for
    // every metric asked for.
    let judged = comparison.judged();
    if judged == 0 {
        return Err(lost.before(Failure::usage(format_args!(
            "nothing was compared: {} — compare two results of the same kind (run with run, bench with bench) that share endpoints or cases, with enough requests (--min-samples)",
            if comparison.lines.is_empty() {
                "the two files have no endpoint or case in common"
            } else {
                "every metric had too few samples"
            }
        ))));
    }
    lost.or_verdict(if comparison.regressions() > 0 {
        exit::TEST_FAILED
    } else {
        exit::OK
    })
}
