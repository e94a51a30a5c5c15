//! The load engine: spawns virtual users at the spawn rate over one current-thread runtime per
//! core, assigns classes deterministically by weight, picks tasks by weight, honours wait times,
//! stops on time / iterations / signal, and feeds the statistics collector.
//!
//! `run` wires the parts together: the `controller` decides on each pass which users should
//! run, by the `clock` (which stops while paused); `workers` run them in groups that share a
//! plugin instance; `user` is one user's life; the `collector` merges the statistics once a
//! second. `classes` chooses the classes and their users, `health` stops a class whose users
//! keep trapping, `open` starts and reports the open model.

mod classes;
mod clock;
mod collector;
mod controller;
mod health;
mod open;
mod user;
mod workers;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use crate::arrivals::{ArrivalReport, Counts, OpenModel, Pool};
use crate::control::RunControl;
use crate::generator::GeneratorHealth;
use crate::plan::{Plan, ShardPlan};
use crate::plugin::{PluginSet, RunEnv};
use crate::stats::live::LiveBoard;
use crate::stats::{FailureSample, RunStats, Tallies};
pub use crate::stop::StopHandle;
pub use classes::{assign_classes, select_classes, ClassError, ClassSlot};
use clock::RunClock;
use collector::Collector;
use controller::Controller;
use health::ClassHealth;
use open::{finish_open_model, start_open_model};
use workers::UNCONSTRAINED_FROM;

/// Live counters the collector reads.
#[derive(Default)]
struct Live {
    active_users: AtomicUsize,
    /// Woken when the last active user ends, so a run of `-n` iterations ends at once rather
    /// than at the collector's next look (a benchmark case's duration would be off by up to
    /// 50 ms).
    all_gone: tokio::sync::Notify,
}

/// What the users of a run are: the loaded plugins, what every user shares, and the classes
/// that run.
pub struct Workload {
    /// The loaded plugins.
    pub set: Arc<PluginSet>,
    /// What every user shares: client, config values, data, seed, limits, stop, events.
    pub env: Arc<RunEnv>,
    /// The classes that run, in the order their weights assign users.
    pub classes: Vec<ClassSlot>,
    /// Where the collector publishes the run so far each second (`/metrics`), if anyone reads.
    pub live: Option<Arc<LiveBoard>>,
    /// Requests from outside while the run goes (the web UI): users, pause, reset.
    pub control: RunControl,
}

/// Shared by all users of a run.
struct Shared {
    set: Arc<PluginSet>,
    env: Arc<RunEnv>,
    tallies: Tallies,
    classes: Vec<ClassSlot>,
    health: Vec<ClassHealth>,
    stop: StopHandle,
    live: Arc<Live>,
    /// Tickets for `-n`: each task run takes one.
    iterations_left: Option<AtomicU64>,
    /// Instances run outside tokio's cooperative budget (see `UNCONSTRAINED_FROM`).
    unconstrained: bool,
    seed: u64,
    /// The open model's pool and counts (`None`: closed model).
    open: Option<Arc<OpenModel>>,
    control: RunControl,
}

/// What a finished run hands to the reports.
pub struct RunOutcome {
    /// Every request of the run, merged, with its history.
    pub stats: RunStats,
    /// When the run started, Unix seconds.
    pub started: f64,
    /// When it ended, Unix seconds.
    pub ended: f64,
    /// How long it ran, pauses left out.
    pub duration: Duration,
    /// Stopped by a signal or a stop request rather than by its own end.
    pub interrupted: bool,
    /// Users per class name, as assigned.
    pub class_users: BTreeMap<String, usize>,
    /// Classes stopped because their users kept trapping, with the reason.
    pub stopped_classes: Vec<String>,
    /// perfhost's own CPU and lag each second.
    pub generator: GeneratorHealth,
    /// Failing responses kept as samples.
    pub samples: Vec<FailureSample>,
    /// The name of each class, by the index its statistics are kept under.
    pub class_names: Vec<String>,
    /// The threshold (as written) that stopped the run early (`abort-on-fail`).
    pub aborted_by: Option<String>,
    /// The open model's account of its arrivals.
    pub arrivals: Option<ArrivalReport>,
}

impl Shared {
    fn new(plan: &Plan, workers: usize, workload: Workload, stop: &StopHandle) -> Self {
        // The board is the collector's; the rest is every user's.
        let Workload {
            set,
            env,
            classes,
            control,
            ..
        } = workload;
        let shard = stripe(plan);
        let local = |global: usize| shard.share(global as u64) as usize;
        Shared {
            set,
            tallies: Tallies::new(workers, env.redactor.clone()),
            env,
            health: classes.iter().map(|_| ClassHealth::default()).collect(),
            unconstrained: local(plan.load.max_users()).div_ceil(workers) >= UNCONSTRAINED_FROM,
            stop: stop.clone(),
            live: Arc::default(),
            iterations_left: plan.stop.iterations.map(|n| AtomicU64::new(shard.share(n))),
            seed: plan.seed,
            open: plan.arrivals.as_ref().map(|open| {
                Arc::new(OpenModel {
                    pool: Pool::new(classes.len(), local(open.max_users)),
                    counts: Counts::new(classes.len()),
                })
            }),
            classes,
            control,
        }
    }
}

/// This process's stripe of the run: its shard's, or all of it. A shard runs the global users,
/// iterations and arrivals k ≡ index (mod count).
fn stripe(plan: &Plan) -> ShardPlan {
    plan.shard.unwrap_or(ShardPlan { index: 0, count: 1 })
}

/// Runs the load until run time, iterations or a stop, and returns the statistics.
/// `on_tick` sees every one-second history point and the time since the start.
pub async fn run(
    plan: &Plan,
    mut workload: Workload,
    stop: StopHandle,
    mut on_tick: impl FnMut(&crate::stats::HistoryPoint, Duration),
) -> RunOutcome {
    let workers = plan.workers.max(1);
    let board = workload.live.take();
    let shared = Arc::new(Shared::new(plan, workers, workload, &stop));
    // One current-thread runtime per worker thread; users are handed out round-robin.
    let (inboxes, threads) = workers::start(workers, &shared, plan.stop.stop_timeout);
    let started_wall = crate::stats::unix_now();
    let mut clock = RunClock::start();
    let mut collector = Collector::start(plan, &shared, board).await;
    let class_names = collector.class_names();
    let dispatcher = start_open_model(plan, &shared, &inboxes, class_names, clock.started());
    let mut controller = Controller::new(plan, shared.clone(), inboxes);
    while let Some(decided) = controller.decide(&mut clock, &mut collector) {
        tokio::select! {
            _ = collector.next_tick() => collector.collect(&decided, &clock, &mut on_tick),
            _ = clock::sleep_until(decided.deadline) => {}
            _ = stop.stopped() => {}
            _ = shared.control.changed() => {}
            _ = shared.live.all_gone.notified() => {}
            _ = tokio::time::sleep(decided.step), if decided.changing => {}
            // Once the shape is settled the loop only watches for users ending by themselves
            // (-n, stop-user): 50 ms keeps that prompt at no measurable cost.
            _ = tokio::time::sleep(Duration::from_millis(50)), if !decided.changing => {}
        }
    }
    controller.stop_users();
    // Stop: users finish their current task within the stop timeout (handled per worker).
    threads.join().await;
    let class_names = collector.class_names();
    let arrivals = finish_open_model(plan, dispatcher, &shared, class_names).await;
    let collected = collector.finish(&clock);
    RunOutcome {
        stats: collected.stats,
        started: started_wall,
        ended: crate::stats::unix_now(),
        duration: collected.ran,
        interrupted: stop.was_interrupted(),
        class_users: controller.class_users(),
        stopped_classes: health::stopped_classes(&shared),
        generator: collected.generator.finish(),
        samples: shared.tallies.samples().samples(),
        class_names: collected.class_names,
        aborted_by: collected.aborted_by,
        arrivals,
    }
}
