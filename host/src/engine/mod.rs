//! The load engine: spawns virtual users at the spawn rate over one current-thread runtime per
//! core, assigns classes deterministically by weight, picks tasks by weight, honours wait times,
//! stops on time / iterations / signal, and feeds the statistics collector.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use tokio::sync::mpsc;

use wasmtime::component::Accessor;

use crate::arrivals::{self, Arrival, ArrivalReport, Counts, OpenModel, Pool};
use crate::control::RunControl;
use crate::monitor::{GeneratorHealth, GeneratorMonitor};
use crate::plan::seed::{self, Stream};
use crate::plan::{ClassChoice, LoadShape, Plan, ShardPlan};
use crate::plugin::state::GroupState;
use crate::plugin::Instance;
use crate::plugin::{Group, PluginSet, RunEnv, TaskOutcome, UserClass, UserHandle, WaitTime};
use crate::stats::live::{ArrivalCounts, Board, LiveBoard};
use crate::stats::{FailureSample, RunStats, Tallies, Tally};
pub use crate::stop::StopHandle;

/// One user class of the run, with the plugin it comes from.
#[derive(Debug, Clone)]
pub struct ClassSlot {
    pub plugin_index: usize,
    pub class_index: u32,
    pub class: UserClass,
}

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
    pub set: Arc<PluginSet>,
    pub env: Arc<RunEnv>,
    pub classes: Vec<ClassSlot>,
    /// Where the collector publishes the run so far each second (`/metrics`), if anyone reads.
    pub live: Option<Arc<LiveBoard>>,
    /// Requests from outside while the run goes (the web UI): users, pause, reset.
    pub control: RunControl,
}

/// Why the chosen user classes cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassError {
    #[error("unknown user class `{name}` — the loaded plugins offer: {known}")]
    Unknown { name: String, known: String },
    #[error("weights: unknown user class `{0}`")]
    UnknownWeight(String),
    #[error("every selected user class has weight 0")]
    AllZero,
    #[error("no selected user class has a task `{task}` — the tasks are: {known}")]
    UnknownTask { task: String, known: String },
    #[error("rates: unknown user class `{name}` — the classes are: {known}")]
    UnknownRate { name: String, known: String },
}

impl ClassError {
    /// The setting the error is about (`user-classes` or `weights`).
    pub fn field(&self) -> &'static str {
        match self {
            ClassError::UnknownWeight(_) => "weights",
            ClassError::UnknownRate { .. } => "rates",
            _ => "user-classes",
        }
    }
}

/// Per class: how its users fared, and whether it was stopped for trapping. Atomics, because
/// every task of every user reads them: a healthy run only ever loads them (no lock, no write).
#[derive(Default)]
struct ClassHealth {
    consecutive_traps: AtomicU64,
    stopped: AtomicBool,
    last_error: Mutex<String>,
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
    pub stats: RunStats,
    pub started: f64,
    pub ended: f64,
    pub duration: Duration,
    pub interrupted: bool,
    /// Users per class name, as assigned.
    pub class_users: BTreeMap<String, usize>,
    /// Classes stopped because their users kept trapping, with the reason.
    pub stopped_classes: Vec<String>,
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

/// Assigns `users` users to classes deterministically by weight (smooth weighted round-robin:
/// 10 users at 7/2/1 are exactly 7, 2 and 1, and any prefix is as close to the weights as it
/// can be).
pub fn assign_classes(weights: &[u32], users: usize) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(users);
    if total == 0 {
        return out;
    }
    for _ in 0..users {
        for (c, &w) in current.iter_mut().zip(weights) {
            *c += i64::from(w);
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            .expect("at least one class");
        current[best] -= total;
        out.push(best);
    }
    out
}

/// The user classes of the plugin set, filtered by `--user-class`, with a scenario's weight
/// overrides applied (by class name).
pub fn select_classes(set: &PluginSet, choice: &ClassChoice) -> Result<Vec<ClassSlot>, ClassError> {
    let mut slots = filter_classes(set, &choice.only)?;
    for (name, weight) in &choice.weights {
        let mut found = false;
        for slot in slots
            .iter_mut()
            .filter(|s| s.class.name.eq_ignore_ascii_case(name))
        {
            slot.class.weight = *weight;
            found = true;
        }
        if !found {
            return Err(ClassError::UnknownWeight(name.clone()));
        }
    }
    if let Some(task) = &choice.task {
        let known: Vec<String> = slots
            .iter()
            .flat_map(|s| s.class.tasks.iter().map(|t| t.name.clone()))
            .collect();
        // Only that task runs: the others keep their index (tasks are passed by index) with
        // weight 0, and classes without it get no users.
        for slot in &mut slots {
            let has = slot.class.tasks.iter().any(|t| t.name == *task);
            for t in &mut slot.class.tasks {
                t.weight = u32::from(t.name == *task);
            }
            slot.class.sequential &= !has;
            if !has {
                slot.class.weight = 0;
            }
        }
        if slots.iter().all(|s| s.class.weight == 0) {
            return Err(ClassError::UnknownTask {
                task: task.clone(),
                known: known.join(", "),
            });
        }
    }
    if choice.no_wait {
        for slot in &mut slots {
            slot.class.wait = WaitTime::Constant { ms: 0 };
        }
    }
    if slots.iter().all(|s| s.class.weight == 0) {
        return Err(ClassError::AllZero);
    }
    Ok(slots)
}

/// The user classes of the plugin set, filtered by `--user-class`.
fn filter_classes(set: &PluginSet, only: &[String]) -> Result<Vec<ClassSlot>, ClassError> {
    let mut slots = Vec::new();
    for (plugin_index, plugin) in set.plugins.iter().enumerate() {
        for (class_index, class) in plugin.classes.iter().enumerate() {
            if only.is_empty() || only.iter().any(|n| n.eq_ignore_ascii_case(&class.name)) {
                slots.push(ClassSlot {
                    plugin_index,
                    class_index: class_index as u32,
                    class: class.clone(),
                });
            }
        }
    }
    for name in only {
        if !slots
            .iter()
            .any(|s| s.class.name.eq_ignore_ascii_case(name))
        {
            let known: Vec<&str> = set
                .plugins
                .iter()
                .flat_map(|p| p.classes.iter().map(|c| c.name.as_str()))
                .collect();
            return Err(ClassError::Unknown {
                name: name.clone(),
                known: known.join(", "),
            });
        }
    }
    Ok(slots)
}

/// Runs the load until run time, iterations or a stop, and returns the statistics.
/// `on_tick` sees every one-second history point and the time since the start.
pub async fn run(
    plan: &Plan,
    workload: Workload,
    stop: StopHandle,
    mut on_tick: impl FnMut(&crate::stats::HistoryPoint, Duration),
) -> RunOutcome {
    let workers = plan.workers.max(1);
    // The web UI may replace the shape mid-run: a ramp from the current users to its count.
    let mut shape = plan.load.clone();
    let mut shape_start = Duration::ZERO;
    let Workload {
        set,
        env,
        classes,
        live: board_out,
        control,
    } = workload;
    let tallies = Tallies::new(workers, env.redactor.clone());
    let weights: Vec<u32> = classes.iter().map(|c| c.class.weight).collect();
    // Slot k always holds a user of class `sequence[k]`: growing adds slots at the end and
    // shrinking removes the newest, so any user count keeps the class mix as exact as it can be.
    // A shard runs the global users k ≡ index (mod count): its j-th user is global user
    // `shard.global(j)`, of that user's class.
    let shard = plan.shard.unwrap_or(ShardPlan { index: 0, count: 1 });
    let local = |global: usize| shard.share(global as u64) as usize;
    let mut sequence = assign_classes(&weights, shape.max_users());
    let mut peak_users = shape.max_users();
    let live = Arc::new(Live::default());
    let shared = Arc::new(Shared {
        set,
        env,
        tallies: tallies.clone(),
        health: classes.iter().map(|_| ClassHealth::default()).collect(),
        unconstrained: local(shape.max_users()).div_ceil(workers) >= UNCONSTRAINED_FROM,
        classes,
        stop: stop.clone(),
        live: live.clone(),
        iterations_left: plan.stop.iterations.map(|n| AtomicU64::new(shard.share(n))),
        seed: plan.seed,
        open: plan.arrivals.as_ref().map(|open| {
            Arc::new(OpenModel {
                pool: Pool::new(weights.len(), local(open.max_users)),
                counts: Counts::new(weights.len()),
            })
        }),
        control: control.clone(),
    });

    // One current-thread runtime per worker thread; users are handed out round-robin.
    let mut senders = Vec::new();
    let mut threads = Vec::new();
    for w in 0..workers {
        let (tx, rx) = mpsc::unbounded_channel::<Spawn>();
        senders.push(tx);
        let shared = shared.clone();
        let stop_timeout = plan.stop.stop_timeout;
        let thread = std::thread::Builder::new()
            .name(format!("perfhost-worker-{w}"))
            .spawn(move || worker(w, rx, shared, stop_timeout));
        match thread {
            Ok(t) => threads.push(t),
            Err(err) => tracing::error!("cannot start worker thread: {err}"),
        }
    }

    let started_wall = crate::stats::unix_now();
    let started = Instant::now();
    // Paused time does not count: the shape and the run time resume where they were.
    let mut paused_total = Duration::ZERO;
    let mut paused_since: Option<Instant> = None;
    let mut retargeted = false;
    let mut stats =
        RunStats::keeping_interval_histograms(plan.shard.is_some() || plan.outputs.hlog.is_some());
    let mut generator = GeneratorMonitor::start();
    let mut alive: Vec<StopHandle> = Vec::new();
    let mut next_id = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut last_tick = Instant::now();
    let mut step = shape.step();
    let mut ramp_done_reset = !plan.reset_stats;
    let class_names: Vec<String> = shared
        .classes
        .iter()
        .map(|c| c.class.name.clone())
        .collect();
    let mut aborted_by = None;
    let open_model = shared.open.is_some();
    let dispatcher = match (&plan.arrivals, &shared.open) {
        (Some(open), Some(model)) => start_open_model(
            plan,
            open,
            model,
            &class_names,
            &weights,
            &senders,
            &live,
            started,
            stop.clone(),
        ),
        _ => None,
    };

    loop {
        match (control.is_paused() && !open_model, paused_since) {
            (true, None) => paused_since = Some(Instant::now()),
            (false, Some(since)) => {
                paused_total += since.elapsed();
                paused_since = None;
            }
            _ => {}
        }
        let paused = paused_total + paused_since.map_or(Duration::ZERO, |s| s.elapsed());
        // The run's own clock, without its pauses; durations are capped at 30 days by the
        // plan, so the deadline cannot overflow.
        let now = started.elapsed().saturating_sub(paused);
        let deadline = plan.stop.run_time.map(|t| started + t + paused);
        if let Some(to) = control.take_retarget().filter(|_| !open_model) {
            retargeted = true;
            shape = LoadShape::retarget(alive.len(), to.users, to.spawn_rate);
            shape_start = now;
            step = shape.step();
            if to.users > sequence.len() {
                sequence = assign_classes(&weights, to.users);
            }
            peak_users = peak_users.max(to.users);
            tracing::info!(
                "users: {} → {} at {}/s",
                alive.len(),
                to.users,
                to.spawn_rate
            );
        }
        if control.take_reset() {
            let _ = tallies.take_all();
            tallies.samples().clear();
            stats.reset();
            tracing::info!("statistics reset");
        }
        let shape_now = now.saturating_sub(shape_start);
        let desired = if stop.is_stopping() || open_model {
            0
        } else {
            local(shape.target(shape_now))
        };
        while alive.len() < desired {
            let user_stop = StopHandle::default();
            // Counted as active when handed out, so "no user left" cannot be seen before it starts.
            live.active_users.fetch_add(1, Ordering::Relaxed);
            let spawn = Spawn {
                id: next_id,
                class: sequence[shard.global(alive.len() as u64) as usize],
                stop: user_stop.clone(),
                first: None,
            };
            if senders[(next_id as usize) % workers].send(spawn).is_err() {
                live.active_users.fetch_sub(1, Ordering::Relaxed);
            }
            alive.push(user_stop);
            next_id += 1;
        }
        while alive.len() > desired {
            // The newest user goes first; it finishes its current task, then stops.
            if let Some(user) = alive.pop() {
                user.stop();
            }
        }
        if !ramp_done_reset && alive.len() >= local(shape.max_users()) {
            ramp_done_reset = true;
            let _ = tallies.take_all();
            tallies.samples().clear();
            stats.reset();
            tracing::info!(
                "all {} users spawned: statistics reset (--reset-stats)",
                alive.len()
            );
        }
        let active = live.active_users.load(Ordering::Relaxed);
        let iterations_spent = shared
            .iterations_left
            .as_ref()
            .is_some_and(|n| n.load(Ordering::SeqCst) == 0);
        // Users ending by themselves (-n, stop-user) end the run when none is left.
        // (Not a UI's move to 0 users: the test goes on, as Locust's.)
        let all_done = !(open_model || retargeted && desired == 0)
            && next_id > 0
            && active == 0
            && (iterations_spent
                || shape.settled(shape_now) && alive.len() >= local(shape.target(shape_now)));
        if deadline.is_some_and(|d| Instant::now() >= d) || all_done {
            stop.stop();
        }
        if stop.is_stopping() {
            break;
        }
        let changing = !shape.settled(shape_now) && paused_since.is_none();
        tokio::select! {
            _ = ticker.tick() => {
                let elapsed = last_tick.elapsed();
                last_tick = Instant::now();
                let point = stats.absorb(tallies.take_all(), live.active_users.load(Ordering::Relaxed) as u64, elapsed.as_secs_f64());
                generator.sample(elapsed);
                on_tick(point, started.elapsed());
                if let Some(board) = &board_out {
                    let mut out = live_board(&stats, &shared, &class_names, &generator, now);
                    out.target_users = desired as u64;
                    out.paused = paused_since.is_some();
                    out.run_s = now.as_secs_f64();
                    board.publish(out);
                }
                if let Some(text) = abort_check(plan, &stats, &class_names, now) {
                    tracing::warn!("threshold `{text}` failed: stopping the run (abort-on-fail)");
                    aborted_by = Some(text);
                    stop.stop();
                }
            }
            _ = async { match deadline { Some(at) => tokio::time::sleep_until(at.into()).await, None => std::future::pending().await } } => {}
            _ = stop.stopped() => {}
            _ = control.changed() => {}
            _ = live.all_gone.notified() => {}
            _ = tokio::time::sleep(step), if changing => {}
            // Once the shape is settled the loop only watches for users ending by themselves
            // (-n, stop-user): 50 ms keeps that prompt at no measurable cost.
            _ = tokio::time::sleep(Duration::from_millis(50)), if !changing => {}
        }
    }
    for user in &alive {
        user.stop();
    }

    // Stop: users finish their current task within the stop timeout (handled per worker).
    drop(senders);
    let joiner = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    });
    let _ = joiner.await;
    let arrivals = match (dispatcher, &shared.open) {
        (Some(thread), Some(model)) => {
            let dispatched = tokio::task::spawn_blocking(move || thread.join())
                .await
                .ok()
                .and_then(Result::ok);
            dispatched.map(|d| arrival_report(plan, model, d, &class_names))
        }
        _ => None,
    };
    let elapsed = last_tick.elapsed();
    stats.absorb(tallies.take_all(), 0, elapsed.as_secs_f64().max(0.001));
    generator.sample_shutdown(elapsed);
    let paused = paused_total + paused_since.map_or(Duration::ZERO, |s| s.elapsed());
    // The run's length without its pauses: what its rates are per.
    let ran = started.elapsed().saturating_sub(paused);
    if let Some(board) = &board_out {
        let mut out = live_board(&stats, &shared, &class_names, &generator, ran);
        out.run_s = ran.as_secs_f64();
        board.publish(out);
        board.finish();
    }
    let mut class_users = vec![0usize; shared.classes.len()];
    for j in 0..local(peak_users) {
        class_users[sequence[shard.global(j as u64) as usize]] += 1;
    }

    let health = shared.health.iter().map(|c| {
        let error = c.last_error.lock().map(|e| e.clone()).unwrap_or_default();
        (c.stopped.load(Ordering::Relaxed), error)
    });
    let stopped_classes = shared
        .classes
        .iter()
        .zip(health)
        .filter(|(_, (stopped, _))| *stopped)
        .map(|(slot, (_, err))| format!("{}: {}", slot.class.name, err))
        .collect();
    RunOutcome {
        stats,
        started: started_wall,
        ended: crate::stats::unix_now(),
        duration: ran,
        interrupted: stop.was_interrupted(),
        class_users: shared
            .classes
            .iter()
            .zip(&class_users)
            .map(|(s, &n)| (s.class.name.clone(), n))
            .fold(BTreeMap::new(), |mut m, (k, n)| {
                *m.entry(k).or_insert(0) += n;
                m
            }),
        stopped_classes,
        generator: generator.finish(),
        samples: tallies.samples().samples(),
        class_names,
        aborted_by,
        arrivals,
    }
}

/// Creates the open model's pre-allocated users and starts its dispatcher thread, which
/// creates more users on demand. Without a thread the run cannot send: it is stopped.
#[allow(clippy::too_many_arguments)]
fn start_open_model(
    plan: &Plan,
    open: &crate::plan::ArrivalPlan,
    model: &Arc<OpenModel>,
    class_names: &[String],
    weights: &[u32],
    senders: &[mpsc::UnboundedSender<Spawn>],
    live: &Arc<Live>,
    started: Instant,
    stop: StopHandle,
) -> Option<std::thread::JoinHandle<arrivals::Dispatched>> {
    let spawn_user = {
        let senders = senders.to_vec();
        let live = live.clone();
        let next_user = AtomicU64::new(0);
        move |class: usize, first: Option<Arrival>| {
            let id = next_user.fetch_add(1, Ordering::Relaxed);
            live.active_users.fetch_add(1, Ordering::Relaxed);
            let spawn = Spawn {
                id,
                class,
                stop: StopHandle::default(),
                first,
            };
            if senders[(id as usize) % senders.len()].send(spawn).is_err() {
                live.active_users.fetch_sub(1, Ordering::Relaxed);
            }
        }
    };
    let shard = plan.shard.unwrap_or(ShardPlan { index: 0, count: 1 });
    for class in assign_classes(weights, shard.share(open.pre_allocated as u64) as usize) {
        if model.pool.allocate() {
            spawn_user(class, None);
        }
    }
    let arrivals = arrivals::Arrivals::new(open, plan.seed, class_names, weights);
    let shared = model.clone();
    let end = plan.stop.run_time;
    let run_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("perfhost-arrivals".into())
        .spawn(move || {
            // A shard takes the global arrivals k ≡ index (mod count) of the one schedule.
            arrivals::dispatch(
                arrivals,
                |k| shard.owns(k),
                started,
                end,
                &shared,
                &stop,
                |class, arrival| spawn_user(class, Some(arrival)),
            )
        });
    match thread {
        Ok(t) => Some(t),
        Err(err) => {
            tracing::error!("cannot start the arrival dispatcher: {err} — stopping the run");
            run_stop.stop();
            None
        }
    }
}

fn arrival_report(
    plan: &Plan,
    model: &OpenModel,
    d: arrivals::Dispatched,
    class_names: &[String],
) -> ArrivalReport {
    let counts = &model.counts;
    let load = |a: &AtomicU64| a.load(Ordering::SeqCst);
    let dropped: Vec<u64> = counts.dropped.iter().map(load).collect();
    let (completed, failed) = (load(&counts.completed), load(&counts.failed));
    let dispatched = load(&counts.dispatched);
    let open = plan.arrivals.as_ref();
    ArrivalReport {
        rate_per_s: open.and_then(|o| o.stages.first()).map_or(0.0, |s| s.per_s),
        scheduled: load(&counts.scheduled),
        completed,
        failed,
        dropped: dropped.iter().sum(),
        cancelled: dispatched.saturating_sub(completed + failed),
        dropped_by_class: class_names.iter().cloned().zip(dropped).collect(),
        users: model.pool.allocated(),
        max_users: open.map_or(0, |o| o.max_users),
        lag_p50_us: d.lag_all.value_at_quantile(0.5),
        lag_p99_us: d.lag_all.value_at_quantile(0.99),
        lag_max_us: d.lag_all.max(),
        lag: d.lag,
        saturated_seconds: d.saturated_seconds,
    }
}

/// The run so far for live readers: a copy of the cumulative statistics and the counters.
fn live_board(
    stats: &RunStats,
    shared: &Shared,
    class_names: &[String],
    generator: &GeneratorMonitor,
    elapsed: Duration,
) -> Board {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Board {
        all: stats.all.clone(),
        users: shared.live.active_users.load(Ordering::Relaxed) as u64,
        elapsed_s: elapsed.as_secs_f64(),
        run_s: elapsed.as_secs_f64(),
        target_users: 0,
        paused: false,
        classes: shared
            .classes
            .iter()
            .map(|c| (c.class.name.clone(), c.class.weight))
            .collect(),
        generator_cpu_percent: generator.last_cpu_percent(),
        last: stats.history.last().cloned(),
        arrivals: shared.open.as_ref().map(|open| ArrivalCounts {
            scheduled: load(&open.counts.scheduled),
            completed: load(&open.counts.completed),
            failed: load(&open.counts.failed),
            dropped_by_class: class_names
                .iter()
                .cloned()
                .zip(open.counts.dropped.iter().map(load))
                .collect(),
            lag_p99_us: load(&open.counts.last_lag_p99_us),
        }),
        finished: false,
    }
}

/// The first `abort-on-fail` threshold past its grace period that fails on the run so far.
fn abort_check(
    plan: &Plan,
    stats: &RunStats,
    class_names: &[String],
    elapsed: Duration,
) -> Option<String> {
    let view = crate::stats::RunView {
        interval: &stats.all,
        class_names,
        seconds: elapsed.as_secs_f64(),
    };
    plan.thresholds
        .iter()
        .filter(|t| t.abort_on_fail && elapsed.as_secs_f64() >= t.grace_s)
        .find(|t| !crate::stats::thresholds::evaluate(t, &view).passed)
        .map(|t| t.text.clone())
}

fn worker(
    index: usize,
    mut rx: mpsc::UnboundedReceiver<Spawn>,
    shared: Arc<Shared>,
    stop_timeout: Duration,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!("cannot start worker runtime: {err}");
            return;
        }
    };
    runtime.block_on(async move {
        // The groups of this worker: each one plugin instance holding up to GROUP_SIZE users
        // of one class (one user for a sync plugin).
        let mut groups: Vec<GroupSlot> = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(spawn) => hand_to_group(spawn, index, &mut groups, &mut tasks, &shared),
                    None => break,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        // Stopping: let users finish their task, then cancel what is left (in-flight requests
        // are recorded as cancelled by the plugin host) — at the stop timeout, or at once on a
        // second interrupt.
        drop(groups);
        let drain = async { while tasks.join_next().await.is_some() {} };
        let finished = tokio::select! {
            done = tokio::time::timeout(stop_timeout, drain) => done.is_ok(),
            _ = shared.stop.forced() => false,
        };
        if !finished {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    });
}

/// From this many users per core, instances run outside tokio's cooperative budget. One tokio
/// task drives all users of an instance; the budget (128 resource polls per turn) then runs out
/// early in busy turns and every later socket or timer poll returns Pending and wakes itself
/// again — at 5,000 users per core each request's future was polled ~40 times. Without the
/// budget that cost goes (5,000 users: 47.5 → 39.5 µs/request), but at 1,000 users the budget
/// helps (22.5 vs 35 µs): measured plain GET on one core, docs/benchmarks.md.
const UNCONSTRAINED_FROM: usize = 2_500;

/// Gives a new user to a group of its class with room, starting a new group if none has.
fn hand_to_group(
    spawn: Spawn,
    worker: usize,
    groups: &mut Vec<GroupSlot>,
    tasks: &mut tokio::task::JoinSet<()>,
    shared: &Arc<Shared>,
) {
    let index = match groups
        .iter()
        .position(|g| g.class == spawn.class && g.has_room())
    {
        Some(i) => i,
        None => {
            let (tx, rx) = mpsc::unbounded_channel();
            let members = Arc::new(AtomicUsize::new(0));
            let group_id = seed::group_id(shared.seed, worker as u64, groups.len() as u64);
            let class = spawn.class;
            tasks.spawn(group_loop(
                class,
                worker,
                group_id,
                rx,
                members.clone(),
                shared.clone(),
            ));
            let capacity = shared
                .set
                .users_per_instance(shared.classes[class].plugin_index);
            groups.push(GroupSlot {
                class,
                tx,
                members,
                capacity,
            });
            groups.len() - 1
        }
    };
    let slot = &groups[index];
    slot.members.fetch_add(1, Ordering::Relaxed);
    if slot
        .tx
        .send((spawn, ActiveGuard(shared.live.clone())))
        .is_err()
    {
        slot.members.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A group as its worker sees it: which class, how to hand it users, how many it has.
struct GroupSlot {
    class: usize,
    tx: mpsc::UnboundedSender<(Spawn, ActiveGuard)>,
    members: Arc<AtomicUsize>,
    /// Users the plugin's instances hold at most (`PluginSet::users_per_instance`).
    capacity: usize,
}

impl GroupSlot {
    fn has_room(&self) -> bool {
        self.members.load(Ordering::Relaxed) < self.capacity
    }
}

/// The group's current users, to start over in a new instance after a lost one.
fn member_spawns(members: &Mutex<Vec<Member>>) -> Vec<Spawn> {
    members
        .lock()
        .map(|m| m.iter().map(|m| m.spawn.clone()).collect())
        .unwrap_or_default()
}

/// A user of a group: what re-creates it after the instance is lost, and its share of the
/// active-user count.
struct Member {
    spawn: Spawn,
    _active: ActiveGuard,
}

/// One group from its first user to its last: an instance of the class's plugin whose users
/// run concurrently in it. A trap ends the instance and every user's current task; the group
/// then records it, waits, and re-creates the instance and its users.
async fn group_loop(
    class: usize,
    worker: usize,
    group_id: u64,
    mut rx: mpsc::UnboundedReceiver<(Spawn, ActiveGuard)>,
    count: Arc<AtomicUsize>,
    shared: Arc<Shared>,
) {
    let slot = &shared.classes[class];
    let tally = shared.tallies.tally(worker);
    let mut rng =
        Pcg64Mcg::seed_from_u64(seed::derive(shared.seed, group_id, Stream::GroupRestart));
    let members: Arc<Mutex<Vec<Member>>> = Arc::default();
    let mut open = true;
    loop {
        let stopping = shared.stop.is_stopping() || class_stopped(&shared, class);
        let empty = members.lock().map(|m| m.is_empty()).unwrap_or(true);
        if stopping || (!open && empty) {
            return;
        }
        let mut group = match Group::create(
            &shared.set,
            slot.plugin_index,
            class as u32,
            group_id,
            shared.env.clone(),
            tally.clone(),
        )
        .await
        {
            Ok(group) => group,
            Err(err) => {
                tally.record_task_error(&format!("{}.instance", slot.class.name), &err.to_string());
                if trapped(&shared, class, &err.to_string())
                    || !pause(&shared, None, restart_wait(&slot.class.wait, &mut rng)).await
                {
                    return;
                }
                continue;
            }
        };
        let run = group.run(async |accessor, plugin| {
            let mut users = futures_util::stream::FuturesUnordered::new();
            // After a lost instance its users start over in the new one.
            for spawn in member_spawns(&members) {
                users.push(user_loop(accessor, plugin, spawn, tally.clone(), &shared));
            }
            loop {
                tokio::select! {
                    next = rx.recv(), if open => match next {
                        Some((spawn, active)) => {
                            let tally = tally.clone();
                            users.push(user_loop(accessor, plugin, spawn.clone(), tally, &shared));
                            if let Ok(mut m) = members.lock() {
                                m.push(Member { spawn, _active: active });
                            }
                        }
                        None => open = false,
                    },
                    Some((id, ended)) = futures_util::StreamExt::next(&mut users) => {
                        ended?;
                        if let Ok(mut m) = members.lock() {
                            m.retain(|m| m.spawn.id != id);
                        }
                        count.fetch_sub(1, Ordering::Relaxed);
                    }
                    else => return wasmtime::Result::<()>::Ok(()),
                }
            }
        });
        let result = if shared.unconstrained {
            tokio::task::coop::unconstrained(run).await
        } else {
            run.await
        };
        let message = match result {
            Ok(()) => return,
            Err(err) => err.to_string(),
        };
        // The instance is gone, and with it every user's current task.
        tally.record_task_error(&format!("{}.instance", slot.class.name), &message);
        if trapped(&shared, class, &message)
            || !pause(&shared, None, restart_wait(&slot.class.wait, &mut rng)).await
        {
            return;
        }
    }
}
/// A user handed to a worker: its id, class and own stop signal (for ramp-down); in the
/// open model, the arrival it was created for.
#[derive(Clone)]
struct Spawn {
    id: u64,
    class: usize,
    stop: StopHandle,
    first: Option<Arrival>,
}

struct ActiveGuard(Arc<Live>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.0.active_users.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.all_gone.notify_one();
        }
    }
}

/// Milliseconds until the next task, per the class's wait time.
fn wait_after(wait: &WaitTime, task_time: Duration, rng: &mut Pcg64Mcg) -> Option<Duration> {
    match *wait {
        WaitTime::Between { min_ms, max_ms } => {
            let span = u64::from(max_ms - min_ms) + 1;
            Some(Duration::from_millis(
                u64::from(min_ms) + rng.next_u64() % span,
            ))
        }
        WaitTime::Constant { ms } => Some(Duration::from_millis(ms.into())),
        WaitTime::ConstantPacing { ms } => {
            Some(Duration::from_millis(ms.into()).saturating_sub(task_time))
        }
        WaitTime::ConstantThroughput { per_second } if per_second > 0.0 => {
            Some(Duration::from_secs_f64(1.0 / per_second).saturating_sub(task_time))
        }
        WaitTime::ConstantThroughput { .. } => Some(Duration::ZERO),
        WaitTime::Custom => None,
    }
}

fn pick_task(tasks: &[crate::plugin::TaskInfo], rng: &mut Pcg64Mcg) -> u32 {
    let total: u64 = tasks.iter().map(|t| u64::from(t.weight)).sum();
    if total == 0 {
        return 0;
    }
    let mut roll = rng.next_u64() % total;
    for (i, t) in tasks.iter().enumerate() {
        if roll < u64::from(t.weight) {
            return i as u32;
        }
        roll -= u64::from(t.weight);
    }
    0
}

/// Sleeps, unless the run (or user `me`) stops first. Returns false when stopping.
async fn pause(shared: &Shared, me: Option<&StopHandle>, d: Duration) -> bool {
    let go_on = || !shared.stop.is_stopping() && !me.is_some_and(|me| me.is_stopping());
    if d.is_zero() {
        return go_on();
    }
    let me_stopped = async {
        match me {
            Some(me) => me.stopped().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(d) => go_on(),
        _ = shared.stop.stopped() => false,
        _ = me_stopped => false,
    }
}

/// One virtual user of a group, from creation to stop. Returns its id, and an error when a
/// call into the plugin failed: that ends the group's instance (see `group_loop`).
async fn user_loop(
    accessor: &Accessor<GroupState>,
    plugin: &Instance,
    spawn: Spawn,
    tally: Arc<Tally>,
    shared: &Shared,
) -> (u64, wasmtime::Result<()>) {
    let id = spawn.id;
    (id, user_life(accessor, plugin, spawn, &tally, shared).await)
}

async fn user_life(
    accessor: &Accessor<GroupState>,
    plugin: &Instance,
    spawn: Spawn,
    tally: &Tally,
    shared: &Shared,
) -> wasmtime::Result<()> {
    let Spawn {
        id,
        class,
        stop: me,
        first,
    } = spawn;
    let slot = &shared.classes[class];
    let mut rng = Pcg64Mcg::seed_from_u64(seed::derive(shared.seed, id, Stream::UserTasks));
    let tasks = &slot.class.tasks;
    if shared.stop.is_stopping() || me.is_stopping() || class_stopped(shared, class) {
        return Ok(());
    }
    let user = UserHandle::create(accessor, plugin, slot.class_index, id).await?;
    match user.on_start(accessor, plugin).await? {
        TaskOutcome::Error(message) => {
            tally.record_task_error(&format!("{}.on_start", slot.class.name), &message)
        }
        TaskOutcome::StopUser => return user.on_stop(accessor, plugin).await,
        _ => {}
    }
    if let Some(open) = &shared.open {
        open_user_life(
            accessor, plugin, &user, class, first, open, tally, shared, &mut rng,
        )
        .await?;
        return user.on_stop(accessor, plugin).await;
    }
    // A pacing class keeps a schedule: task k is due at the first start + k × interval. A
    // task that overran makes the next ones start at once until the user is back on its
    // schedule (wrk2's client), and each task's lateness against it goes into the corrected
    // latency of its requests.
    let interval = schedule_interval(&slot.class.wait);
    // Only a pacing class needs a task's start (its schedule, its wait): no clock read per
    // task for the others.
    let paced = matches!(
        slot.class.wait,
        WaitTime::ConstantPacing { .. } | WaitTime::ConstantThroughput { .. }
    );
    let mut due: Option<Instant> = None;
    loop {
        if shared.control.wait_while_paused(&shared.stop, &me).await {
            due = None;
        }
        if shared.stop.is_stopping() || me.is_stopping() || class_stopped(shared, class) {
            return user.on_stop(accessor, plugin).await;
        }
        if let Some(left) = &shared.iterations_left {
            if left
                .try_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
            {
                return user.on_stop(accessor, plugin).await;
            }
        }
        let task = if slot.class.sequential {
            match user.next_task(accessor, plugin).await? {
                Some(t) if (t as usize) < tasks.len() => t,
                _ => pick_task(tasks, &mut rng),
            }
        } else {
            pick_task(tasks, &mut rng)
        };
        let task_name = tasks
            .get(task as usize)
            .map(|t| t.name.as_str())
            .unwrap_or("?");
        let began = paced.then(Instant::now);
        if let (Some(_), Some(began)) = (interval, began) {
            let lateness = began.saturating_duration_since(*due.get_or_insert(began));
            user.begin_task(accessor, Some(lateness));
        }
        let mut skip_wait = false;
        match user.run_task(accessor, plugin, task).await? {
            TaskOutcome::Ok => healthy(shared, class),
            TaskOutcome::Reschedule => {
                healthy(shared, class);
                skip_wait = true;
            }
            TaskOutcome::Error(message) => {
                healthy(shared, class);
                tally.record_task_error(&format!("{}.{}", slot.class.name, task_name), &message);
            }
            TaskOutcome::StopUser => return user.on_stop(accessor, plugin).await,
        }
        if let (Some(interval), Some(at)) = (interval, &mut due) {
            *at += interval;
        }
        if skip_wait {
            continue;
        }
        let task_time = began.map_or(Duration::ZERO, |began| began.elapsed());
        let wait = match (due, wait_after(&slot.class.wait, task_time, &mut rng)) {
            (Some(at), _) => at.saturating_duration_since(Instant::now()),
            (None, Some(w)) => w,
            (None, None) => {
                Duration::from_millis(user.next_wait_ms(accessor, plugin).await?.into())
            }
        };
        if !pause(shared, Some(&me), wait).await {
            return user.on_stop(accessor, plugin).await;
        }
    }
}

/// The interval of a pacing wait: the schedule a user of such a class keeps.
fn schedule_interval(wait: &WaitTime) -> Option<Duration> {
    match *wait {
        WaitTime::ConstantPacing { ms } if ms > 0 => Some(Duration::from_millis(ms.into())),
        WaitTime::ConstantThroughput { per_second }
            if per_second > 0.0 && per_second.is_finite() =>
        {
            Duration::try_from_secs_f64(1.0 / per_second).ok()
        }
        _ => None,
    }
}

/// A user of the open model: runs one task per arrival handed to it, waiting (parked in the
/// pool) in between; waits are not used. The arrival counts as completed or failed (a failed
/// request or a task error); a stop or a lost instance leaves it to be counted cancelled.
#[allow(clippy::too_many_arguments)]
async fn open_user_life(
    accessor: &Accessor<GroupState>,
    plugin: &Instance,
    user: &UserHandle,
    class: usize,
    mut next: Option<Arrival>,
    open: &OpenModel,
    tally: &Tally,
    shared: &Shared,
    rng: &mut Pcg64Mcg,
) -> wasmtime::Result<()> {
    let slot = &shared.classes[class];
    let tasks = &slot.class.tasks;
    let (tx, mut rx) = mpsc::unbounded_channel();
    loop {
        let arrival = match next.take() {
            Some(arrival) => arrival,
            None => {
                open.pool.park(class, tx.clone());
                tokio::select! {
                    got = rx.recv() => match got {
                        Some(arrival) => arrival,
                        None => return Ok(()),
                    },
                    _ = shared.stop.stopped() => return Ok(()),
                }
            }
        };
        if shared.stop.is_stopping() || class_stopped(shared, class) {
            return Ok(());
        }
        let task = if slot.class.sequential {
            match user.next_task(accessor, plugin).await? {
                Some(t) if (t as usize) < tasks.len() => t,
                _ => pick_task(tasks, rng),
            }
        } else {
            pick_task(tasks, rng)
        };
        let lateness = arrival.intended.elapsed();
        let failed_before = user.begin_task(accessor, Some(lateness));
        let outcome = user.run_task(accessor, plugin, task).await?;
        let failed_requests = user.failed_requests(accessor) > failed_before;
        let mut task_failed = failed_requests;
        match outcome {
            TaskOutcome::Ok | TaskOutcome::Reschedule => healthy(shared, class),
            TaskOutcome::Error(message) => {
                healthy(shared, class);
                task_failed = true;
                let name = tasks.get(task as usize).map_or("?", |t| t.name.as_str());
                tally.record_task_error(&format!("{}.{}", slot.class.name, name), &message);
            }
            TaskOutcome::StopUser => {
                // The arrival ran; the user leaves the pool for good.
                open.counts.completed.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        let counter = if task_failed {
            &open.counts.failed
        } else {
            &open.counts.completed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A lost instance waits before it is re-created — never a hot loop, even with zero waits.
fn restart_wait(wait: &WaitTime, rng: &mut Pcg64Mcg) -> Duration {
    wait_after(wait, Duration::ZERO, rng)
        .unwrap_or_default()
        .max(Duration::from_millis(100))
}

fn class_stopped(shared: &Shared, class: usize) -> bool {
    shared.health[class].stopped.load(Ordering::Relaxed)
}

fn healthy(shared: &Shared, class: usize) {
    let h = &shared.health[class].consecutive_traps;
    if h.load(Ordering::Relaxed) != 0 {
        h.store(0, Ordering::Relaxed);
    }
}

/// Counts a trap; returns true when the class is (now) stopped because its users keep trapping.
fn trapped(shared: &Shared, class: usize, message: &str) -> bool {
    let h = &shared.health[class];
    let traps = h.consecutive_traps.fetch_add(1, Ordering::Relaxed) + 1;
    if let Ok(mut last) = h.last_error.lock() {
        *last = message.to_string();
    }
    // Its instances were lost this many times in a row with no task succeeding between: five
    // rules out one unlucky trap (a panic on one bad data row) while a plugin that traps on
    // every start is stopped within a few of its wait times, not re-created forever.
    let limit = 5;
    if traps >= limit && !h.stopped.swap(true, Ordering::Relaxed) {
        tracing::error!(
            "user class {} stopped: its users trapped {traps} times in a row (last: {message}) — fix the plugin; other classes keep running",
            shared.classes[class].class.name,
        );
    }
    h.stopped.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_assigned_exactly_by_weight() {
        let a = assign_classes(&[7, 2, 1], 10);
        assert_eq!(
            (0..3)
                .map(|c| a.iter().filter(|&&x| x == c).count())
                .collect::<Vec<_>>(),
            vec![7, 2, 1]
        );
        let a = assign_classes(&[7, 2, 1], 100);
        assert_eq!(
            (0..3)
                .map(|c| a.iter().filter(|&&x| x == c).count())
                .collect::<Vec<_>>(),
            vec![70, 20, 10]
        );
        let a = assign_classes(&[1, 1], 3);
        assert_eq!(a.len(), 3);
        assert!(assign_classes(&[0], 3).is_empty());
    }

    #[test]
    fn waits_follow_their_kind() {
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        for _ in 0..100 {
            let w = wait_after(
                &WaitTime::Between {
                    min_ms: 10,
                    max_ms: 20,
                },
                Duration::ZERO,
                &mut rng,
            )
            .unwrap();
            assert!(w >= Duration::from_millis(10) && w <= Duration::from_millis(20));
        }
        let pacing = WaitTime::ConstantPacing { ms: 100 };
        assert_eq!(
            wait_after(&pacing, Duration::from_millis(30), &mut rng),
            Some(Duration::from_millis(70))
        );
        assert_eq!(
            wait_after(&pacing, Duration::from_millis(300), &mut rng),
            Some(Duration::ZERO)
        );
        let tput = WaitTime::ConstantThroughput { per_second: 4.0 };
        assert_eq!(
            wait_after(&tput, Duration::from_millis(50), &mut rng),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            wait_after(&WaitTime::Custom, Duration::ZERO, &mut rng),
            None
        );
    }
}
