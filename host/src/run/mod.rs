//! `perfhost::run(&Plan)`: the core's run with what surrounds it here — the built-in demo
//! target when the plan names none, the reachability check, the target's memory profile, the
//! `/metrics` listener, and `--trace` lines on stderr. `perfhost run`, `perfhost bench`, the web
//! UI and the tests all call it.

pub mod command;
pub mod ui;

use std::sync::Arc;
use std::time::Duration;

use perfhost_core::engine::StopHandle;
use perfhost_core::events::{Event, Events};
use perfhost_core::plan::{Plan, ProcessQuery, Target};
use perfhost_core::result::RunResult;
use perfhost_core::run::{self as core_run, Surroundings};
use perfhost_core::stats::HistoryPoint;
use perfhost_demo::{DemoChild, DemoChildError};

use crate::exit;
use crate::profile::target::FindError;
use crate::profile::{self, RunSampler};

/// Why a run could not start (nothing was sent).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Core(#[from] core_run::RunError),
    #[error("target {target} is unreachable: {why} — check -H/--host or LOAD_TEST_HOST, and that the server is running")]
    Unreachable { target: String, why: String },
    #[error("cannot serve metrics on {addr}: {why} — choose another --metrics-port (0 picks a free one) or --web-host")]
    Metrics { addr: String, why: String },
    #[error("cannot start the built-in demo server: {0}")]
    Demo(#[from] DemoChildError),
    #[error("{0} — or run without --profile")]
    Profile(#[from] FindError),
}

impl RunError {
    /// The process exit code this error deserves (README's table).
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Unreachable { .. }
            | RunError::Demo(_)
            | RunError::Core(core_run::RunError::Protocol(_)) => exit::UNREACHABLE,
            RunError::Core(core_run::RunError::Barrier { .. }) => exit::BARRIER,
            _ => exit::USAGE,
        }
    }
}

impl From<RunError> for crate::failure::Failure {
    fn from(err: RunError) -> Self {
        crate::failure::Failure::of(err.exit_code(), &err)
    }
}

/// `--trace` lines go to stderr.
fn stderr_events() -> Events {
    Arc::new(|event| match event {
        Event::Trace(line) => crate::console::errln(line),
    })
}

/// What a web UI hands a run: the board the run publishes to each second, and the control it
/// steers the run with.
#[derive(Clone, Default)]
pub struct Steering {
    pub board: Option<Arc<perfhost_core::stats::live::LiveBoard>>,
    pub control: perfhost_core::control::RunControl,
}

/// Runs a plan to its end (or until `stop`), returning the result. `on_tick` sees every
/// one-second history point and the time since the start.
pub async fn run(
    plan: &Plan,
    stop: StopHandle,
    on_tick: impl FnMut(&HistoryPoint, Duration),
) -> Result<RunResult, RunError> {
    run_steered(plan, stop, Steering::default(), on_tick).await
}

/// `run`, publishing to and steered by a web UI that outlives the run.
pub async fn run_steered(
    plan: &Plan,
    stop: StopHandle,
    steering: Steering,
    on_tick: impl FnMut(&HistoryPoint, Duration),
) -> Result<RunResult, RunError> {
    let prepared = core_run::prepare(plan).await?;

    // No target named anywhere: the built-in demo server, as a child that never outlives us.
    let mut demo: Option<DemoChild> = None;
    let target = match &plan.target {
        Some(target) => target.clone(),
        None => {
            let child = DemoChild::start()?;
            crate::errln!(
                "No target given (-H or LOAD_TEST_HOST): started the built-in demo server at {} (pid {})",
                child.url,
                child.child.id()
            );
            let target = Target::parse(&child.url).map_err(|e| RunError::Unreachable {
                target: child.url.clone(),
                why: e.to_string(),
            })?;
            demo = Some(child);
            target
        }
    };
    let target = Arc::new(target);
    wait_reachable(&target, demo.is_some()).await?;
    let sampler = start_profile(plan, demo.as_ref(), &target, steering.board.clone())?;

    let (live, web) = match (&steering.board, &plan.outputs.metrics) {
        (Some(board), _) => (Some(board.clone()), None),
        (None, Some(metrics)) => {
            let board = Arc::new(perfhost_core::stats::live::LiveBoard::default());
            let server = crate::web::serve(metrics, crate::web::Source::Board(board.clone()))
                .map_err(|e| RunError::Metrics {
                    addr: metrics.addr.to_string(),
                    why: e.to_string(),
                })?;
            crate::errln!(
                "Metrics: http://{}/metrics{}",
                server.addr,
                if metrics.token.is_some() {
                    " (requests need Authorization: Bearer <--web-token>)"
                } else {
                    ""
                }
            );
            (Some(board), Some((server, metrics.linger)))
        }
        (None, None) => (None, None),
    };
    let around = Surroundings {
        board: live,
        control: steering.control,
        events: stderr_events(),
    };
    let result = core_run::execute(plan, prepared, target, around, stop, on_tick).await;
    if let Some((server, linger)) = web {
        // The final numbers stay up for a last scrape.
        if result.is_ok() {
            tokio::time::sleep(linger).await;
        }
        server.shutdown();
    }
    let memory = match sampler {
        Some(sampler) => sampler.finish().await,
        None => None,
    };
    drop(demo);
    let mut result = result?;
    result.memory = memory;
    Ok(result)
}

/// Starts sampling the target's memory when the plan asks for it. Asked for explicitly, a
/// process that cannot be found is an error; the default sampling of the built-in target never
/// stops a run.
fn start_profile(
    plan: &Plan,
    demo: Option<&DemoChild>,
    target: &Target,
    board: Option<Arc<perfhost_core::stats::live::LiveBoard>>,
) -> Result<Option<RunSampler>, RunError> {
    let Some(p) = &plan.profile else {
        return Ok(None);
    };
    let demo_pid = demo.map(|d| d.child.id());
    if demo_pid.is_none() && p.query == ProcessQuery::Auto && !profile::is_local(target) {
        return Err(RunError::Profile(FindError::NoMatch(format!(
            "(the target {} is not on this machine: name its process with --profile-pid or --profile-match)",
            target.origin
        ))));
    }
    match profile::find(&p.query, p.children, demo_pid, Some(target)) {
        Ok(process) => Ok(Some(RunSampler::start(
            process,
            format!("{}{}", target.origin, target.base_path),
            p.interval,
            p.tables,
            p.explicit,
            move |sample| {
                if let Some(board) = &board {
                    board.set_memory_mb(sample.rss_mb);
                }
            },
        ))),
        Err(err) if p.explicit => Err(err.into()),
        Err(err) => {
            tracing::debug!("not profiling the target: {err}");
            Ok(None)
        }
    }
}

/// The built-in target gets a few seconds to come up; a named one is probed once.
async fn wait_reachable(target: &Target, is_demo: bool) -> Result<(), RunError> {
    let attempts = if is_demo { 50 } else { 1 };
    let mut last = String::new();
    for _ in 0..attempts {
        match perfhost_core::client::probe(target, Duration::from_secs(5)).await {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(RunError::Unreachable {
        target: target.origin.clone(),
        why: last,
    })
}
