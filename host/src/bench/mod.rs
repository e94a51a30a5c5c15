//! `perfhost bench`: a benchmark suite run case by case through `perfhost::run` — a health gate
//! first, then each case's fixed request count at its concurrency, no wait — graded against
//! the suite's tables. The built-in suite is the Auditor suite's `benchmark.py`.

pub mod command;
pub mod report;
pub mod suite;

use std::sync::Arc;
use std::time::Duration;

use crate::bench::report::{
    BenchMeta, BenchResult, CaseGrades, CaseResult, Level, Overall, SuiteGrading, BENCH_SCHEMA,
};
use crate::bench::suite::{Band, Case, Grading, Suite};
use crate::exit;
use crate::health::HealthError;
use crate::run::RunError;
use perfhost_core::engine::StopHandle;
use perfhost_core::plan::{ClassChoice, LoadShape, Plan, StopConditions, Target};
use perfhost_core::result::RunResult;
use perfhost_core::stats::{HistoryPoint, Percentile};
use perfhost_demo::{DemoChild, DemoChildError};

/// Why a suite could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Health(#[from] HealthError),
    #[error("case `{case}`: {source}")]
    Case {
        case: String,
        #[source]
        source: RunError,
    },
    #[error("cannot start the built-in demo server: {0}")]
    Demo(#[from] DemoChildError),
}

impl From<BenchError> for crate::failure::Failure {
    fn from(err: BenchError) -> Self {
        crate::failure::Failure::of(err.exit_code(), &err)
    }
}

impl BenchError {
    /// The exit code (README's table): 3 for the health gate and the demo target, else the
    /// run's own.
    pub fn exit_code(&self) -> u8 {
        match self {
            BenchError::Health(err) => err.exit_code(),
            BenchError::Demo(_) => exit::UNREACHABLE,
            BenchError::Case { source, .. } => source.exit_code(),
        }
    }
}

/// What a running suite tells its caller.
pub enum Progress<'a> {
    /// Case `index` (0-based) of `count` starts.
    Case {
        index: usize,
        count: usize,
        case: &'a Case,
    },
    /// One second of the running case: requests so far.
    Tick { case: &'a Case, done: u64 },
    /// A case ended.
    Done(&'a CaseResult),
}

/// `GET path` on the target must answer 2xx.
pub async fn health_gate(plan: &Plan, target: &Arc<Target>, path: &str) -> Result<(), BenchError> {
    Ok(crate::health::check(target, &plan.client, path).await?)
}

/// The plan of one case, from the suite's base plan.
pub fn case_plan(base: &Plan, case: &Case, requests: u64) -> Plan {
    let mut plan = base.clone();
    plan.plugins = vec![case.plugin.clone()];
    plan.classes = ClassChoice {
        only: Vec::new(),
        weights: Default::default(),
        task: case.task.clone(),
        no_wait: true,
    };
    // Every user at once, each sending its next request as soon as its last one completed.
    plan.load = LoadShape::ramp(case.concurrency, 1e6);
    plan.arrivals = None;
    plan.stop = StopConditions {
        run_time: None,
        iterations: Some(requests),
        stop_timeout: base.stop.stop_timeout,
    };
    plan.config_values.extend(case.config.clone());
    plan.client.keepalive = case.keepalive;
    plan.outputs.run_name = case.name.clone();
    plan
}

/// Runs every case of `suite` against the base plan's target (the built-in demo server when
/// it names none), after the health gate.
pub async fn run_suite(
    base: &Plan,
    suite: &Suite,
    stop: StopHandle,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<BenchResult, BenchError> {
    let mut demo = None;
    let mut base = base.clone();
    let target = match &base.target {
        Some(t) => t.clone(),
        None => {
            let child = DemoChild::start()?;
            crate::errln!(
                "No target given (-H/--url or LOAD_TEST_HOST): benchmarking the built-in demo server at {} (pid {})",
                child.url,
                child.child.id()
            );
            let target = Target::parse(&child.url).map_err(|e| HealthError::Failed {
                url: child.url.clone(),
                why: e.to_string(),
            })?;
            demo = Some(child);
            target
        }
    };
    base.target = Some(target.clone());
    let target = Arc::new(target);
    if let Some(path) = &suite.health {
        // The built-in target may still be coming up.
        let attempts = if demo.is_some() { 50 } else { 1 };
        let mut last = Ok(());
        for _ in 0..attempts {
            last = health_gate(&base, &target, path).await;
            if last.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last?;
    }
    let mut results = Vec::new();
    let mut interrupted = false;
    for (index, case) in suite.cases.iter().enumerate() {
        if stop.is_stopping() {
            interrupted = true;
            break;
        }
        // A run stops its own handle at its end: each run gets a fresh one that a signal on
        // the suite's still reaches.
        // The warm-up gets one too: a signal stops it as it stops the measured run.
        let (warm_stop, run_stop) = (StopHandle::default(), StopHandle::default());
        let forward = {
            let (signals, handles) = (stop.clone(), [warm_stop.clone(), run_stop.clone()]);
            tokio::spawn(async move {
                signals.stopped().await;
                handles.iter().for_each(StopHandle::interrupt);
                signals.forced().await;
                handles.iter().for_each(StopHandle::force);
            })
        };
        progress(Progress::Case {
            index,
            count: suite.cases.len(),
            case,
        });
        let fail = |source| BenchError::Case {
            case: case.name.clone(),
            source,
        };
        if case.warmup > 0 {
            let warm = crate::run(&case_plan(&base, case, case.warmup), warm_stop, |_, _| {})
                .await
                .map_err(fail);
            if warm.is_err() || stop.is_stopping() {
                forward.abort();
                warm?;
                // Interrupted in the warm-up: nothing of this case was measured.
                interrupted = true;
                break;
            }
        }
        let mut done = 0;
        let result = crate::run(
            &case_plan(&base, case, case.requests),
            run_stop,
            |point: &HistoryPoint, _| {
                done += point.requests;
                progress(Progress::Tick { case, done });
            },
        )
        .await
        .map_err(fail);
        forward.abort();
        let result = result?;
        interrupted |= result.meta.interrupted;
        let measured = case_result(case, &result, &suite.grading);
        progress(Progress::Done(&measured));
        results.push(measured);
    }
    drop(demo);
    let grading = SuiteGrading {
        worst: results.iter().filter_map(|c| c.grades.worst()).max(),
        bottlenecks: bottlenecks(&results, &suite.grading),
    };
    Ok(BenchResult {
        schema: BENCH_SCHEMA.into(),
        metadata: BenchMeta {
            api_url: format!("{}{}", target.origin, target.base_path),
            timestamp: crate::report::csv::utc_timestamp(perfhost_core::stats::unix_now()),
            suite: suite.name.clone(),
            suite_source: suite.source.clone(),
            perfhost_version: env!("CARGO_PKG_VERSION").into(),
            seed: base.seed,
            keepalive: suite.cases.iter().all(|c| c.keepalive),
            interrupted,
        },
        overall: overall(&results),
        results,
        grading,
    })
}

fn band_level(value: f64, band: &Band) -> Level {
    if value < band.target {
        Level::Target
    } else if value < band.acceptable {
        Level::Acceptable
    } else {
        Level::Poor
    }
}

/// One case's numbers from its run, graded.
fn case_result(case: &Case, result: &RunResult, grading: &Grading) -> CaseResult {
    let t = &result.total;
    let duration = result.meta.duration_s;
    let rps = if duration > 0.0 {
        t.requests as f64 / duration
    } else {
        0.0
    };
    let p = |q| t.percentile(q);
    let (p50, p95, p99) = (p(Percentile::P50), p(Percentile::P95), p(Percentile::P99));
    let lat = &grading.latency;
    let throughput = grading
        .throughput
        .iter()
        .find(|b| b.concurrency == case.concurrency)
        .map(|b| {
            if rps > b.target {
                Level::Target
            } else if rps > b.acceptable {
                Level::Acceptable
            } else {
                Level::Poor
            }
        });
    CaseResult {
        name: case.name.clone(),
        description: case.description.clone(),
        total_requests: t.requests,
        successful_requests: t.requests - t.failures,
        failed_requests: t.failures,
        duration_seconds: duration,
        requests_per_second: rps,
        latency_p50_ms: p50,
        latency_p95_ms: p95,
        latency_p99_ms: p99,
        latency_min_ms: t.min_ms,
        latency_max_ms: t.max_ms,
        latency_avg_ms: t.avg_ms,
        concurrency: case.concurrency,
        keepalive: case.keepalive,
        warmup_requests: case.warmup,
        plugin: case.plugin.clone(),
        percentiles_ms: t.percentiles_ms,
        histogram: t.histogram.clone(),
        failures: result.failures.clone(),
        grades: CaseGrades {
            p50: lat.p50.map(|b| band_level(p50, &b)),
            p95: lat.p95.map(|b| band_level(p95, &b)),
            p99: lat.p99.map(|b| band_level(p99, &b)),
            throughput,
        },
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// benchmark.py's "Overall Statistics".
fn overall(results: &[CaseResult]) -> Overall {
    let total: u64 = results.iter().map(|c| c.total_requests).sum();
    let ok: u64 = results.iter().map(|c| c.successful_requests).sum();
    Overall {
        total_requests: total,
        successful_requests: ok,
        success_percent: if total == 0 {
            0.0
        } else {
            ok as f64 * 100.0 / total as f64
        },
        mean_requests_per_second: mean(results.iter().map(|c| c.requests_per_second)),
        mean_latency_p50_ms: mean(results.iter().map(|c| c.latency_p50_ms)),
        mean_latency_p95_ms: mean(results.iter().map(|c| c.latency_p95_ms)),
    }
}

/// The bottleneck indicators that fired: high variance, poor scaling, failures growing with
/// concurrency.
fn bottlenecks(results: &[CaseResult], grading: &Grading) -> Vec<String> {
    let b = &grading.bottlenecks;
    let mut out = Vec::new();
    for c in results {
        if c.latency_p50_ms > 0.0 && c.latency_p99_ms / c.latency_p50_ms > b.variance {
            out.push(format!(
                "high variance in `{}`: p99 {:.1} ms is {:.1}× p50 {:.1} ms (above {}×)",
                c.name,
                c.latency_p99_ms,
                c.latency_p99_ms / c.latency_p50_ms,
                c.latency_p50_ms,
                b.variance
            ));
        }
    }
    let at = |users: usize| results.iter().find(|c| c.concurrency == users);
    if let (Some(low), Some(high)) = (at(b.scaling_from), at(b.scaling_to)) {
        if low.requests_per_second > 0.0
            && high.requests_per_second < b.scaling_min * low.requests_per_second
        {
            out.push(format!(
                "poor scaling: {:.1} req/s at concurrency {} is {:.2}× the {:.1} req/s at {} (below {}×) — the service does not gain from more parallel requests",
                high.requests_per_second,
                b.scaling_to,
                high.requests_per_second / low.requests_per_second,
                low.requests_per_second,
                b.scaling_from,
                b.scaling_min
            ));
        }
    }
    let ratio = |c: &CaseResult| c.failed_requests as f64 / c.total_requests.max(1) as f64;
    let lowest = results.iter().min_by_key(|c| c.concurrency);
    let highest = results.iter().max_by_key(|c| c.concurrency);
    if let (Some(lo), Some(hi)) = (lowest, highest) {
        if hi.concurrency > lo.concurrency && ratio(hi) > ratio(lo) {
            out.push(format!(
                "failures grow with concurrency: {:.1}% at concurrency {} vs {:.1}% at {}",
                ratio(hi) * 100.0,
                hi.concurrency,
                ratio(lo) * 100.0,
                lo.concurrency
            ));
        }
    }
    out
}
