//! The load engine: spawns virtual users at the spawn rate over one current-thread runtime per
//! core, assigns classes deterministically by weight, picks tasks by weight, honours wait times,
//! stops on time / iterations / signal, and feeds the statistics collector.

mod classes;
mod clock;
mod health;
mod open;
mod user;
mod workers;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::arrivals::{ArrivalReport, Counts, OpenModel, Pool};
use crate::control::RunControl;
use crate::monitor::{GeneratorHealth, GeneratorMonitor};
use crate::plan::{LoadShape, Plan, ShardPlan};
use crate::plugin::{PluginSet, RunEnv};
use crate::stats::live::{ArrivalCounts, Board, LiveBoard};
use crate::stats::{FailureSample, RunStats, Tallies};
pub use crate::stop::StopHandle;
pub use classes::{assign_classes, select_classes, ClassError, ClassSlot};
use clock::RunClock;
use health::ClassHealth;
use open::{arrival_report, start_open_model};
use workers::{worker, Spawn, UNCONSTRAINED_FROM};

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
    let mut clock = RunClock::start();
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
            clock.started(),
            stop.clone(),
        ),
        _ => None,
    };

    loop {
        clock.set_paused(control.is_paused() && !open_model);
        let (now, deadline) = clock.now_and_deadline(plan.stop.run_time);
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
        let changing = !shape.settled(shape_now) && !clock.is_paused();
        tokio::select! {
            _ = ticker.tick() => {
                let elapsed = last_tick.elapsed();
                last_tick = Instant::now();
                let point = stats.absorb(tallies.take_all(), live.active_users.load(Ordering::Relaxed) as u64, elapsed.as_secs_f64());
                generator.sample(elapsed);
                on_tick(point, clock.since_start());
                if let Some(board) = &board_out {
                    let mut out = live_board(&stats, &shared, &class_names, &generator, now);
                    out.target_users = desired as u64;
                    out.paused = clock.is_paused();
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
    // The run's length without its pauses: what its rates are per.
    let ran = clock.ran();
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
