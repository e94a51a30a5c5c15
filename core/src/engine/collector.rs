//! The once-a-second collector: merges the workers' tallies into the run's statistics, samples
//! the generator's own CPU, publishes the run so far to live readers and judges the
//! `abort-on-fail` thresholds.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::RunClock;
use super::Shared;
use crate::generator::GeneratorMonitor;
use crate::plan::Plan;
use crate::stats::live::{ArrivalCounts, Board, LiveBoard};
use crate::stats::{HistoryPoint, RunStats};

/// What a pass decided: what the collector reports, and how long the loop may wait.
pub(super) struct Decision {
    /// The run's time without its pauses, at this pass.
    pub(super) now: Duration,
    /// The users that should run now.
    pub(super) target_users: usize,
    pub(super) deadline: Option<Instant>,
    /// The shape's user count is still changing (and not paused): pass again within `step`.
    pub(super) changing: bool,
    pub(super) step: Duration,
}

/// The run's statistics as they are merged, second by second.
pub(super) struct Collector<'a> {
    plan: &'a Plan,
    shared: Arc<Shared>,
    /// Where the run so far is published each second (`/metrics`), if anyone reads.
    board: Option<Arc<LiveBoard>>,
    stats: RunStats,
    generator: GeneratorMonitor,
    ticker: tokio::time::Interval,
    /// When the tallies were last taken: the length of the interval the next take closes.
    last_tick: Instant,
    class_names: Vec<String>,
    aborted_by: Option<String>,
}

/// What the collector hands over when the run ends.
pub(super) struct Collected {
    pub(super) stats: RunStats,
    pub(super) generator: GeneratorMonitor,
    pub(super) class_names: Vec<String>,
    pub(super) aborted_by: Option<String>,
    /// The run's length without its pauses, read after the last interval was taken.
    pub(super) ran: Duration,
}

impl<'a> Collector<'a> {
    /// Starts the generator's monitor and the once-a-second ticker (whose first tick is now).
    pub(super) async fn start(
        plan: &'a Plan,
        shared: &Arc<Shared>,
        board: Option<Arc<LiveBoard>>,
    ) -> Self {
        let stats = RunStats::keeping_interval_histograms(
            plan.shard.is_some() || plan.outputs.hlog.is_some(),
        );
        let generator = GeneratorMonitor::start();
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let last_tick = Instant::now();
        let class_names = shared
            .classes
            .iter()
            .map(|c| c.class.name.clone())
            .collect();
        Collector {
            plan,
            shared: shared.clone(),
            board,
            stats,
            generator,
            ticker,
            last_tick,
            class_names,
            aborted_by: None,
        }
    }

    /// The name of each class, by the index its statistics are kept under.
    pub(super) fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Resolves at the next second's tick (then `collect`).
    pub(super) fn next_tick(&mut self) -> impl Future<Output = tokio::time::Instant> + '_ {
        self.ticker.tick()
    }

    /// Drops what was recorded so far: the web UI's reset, or `--reset-stats` once every user
    /// is spawned.
    pub(super) fn reset(&mut self) {
        let _ = self.shared.tallies.take_all();
        self.shared.tallies.samples().clear();
        self.stats.reset();
    }

    /// One second's collection: the interval since the last into the statistics, `on_tick`,
    /// the live board, the `abort-on-fail` thresholds (which may stop the run).
    pub(super) fn collect(
        &mut self,
        decided: &Decision,
        clock: &RunClock,
        on_tick: &mut impl FnMut(&HistoryPoint, Duration),
    ) {
        let elapsed = self.last_tick.elapsed();
        self.last_tick = Instant::now();
        let point = self.stats.absorb(
            self.shared.tallies.take_all(),
            self.shared.live.active_users.load(Ordering::Relaxed) as u64,
            elapsed.as_secs_f64(),
        );
        self.generator.sample(elapsed);
        on_tick(point, clock.since_start());
        let now = decided.now;
        if let Some(board) = &self.board {
            let mut out = live_board(
                &self.stats,
                &self.shared,
                &self.class_names,
                &self.generator,
                now,
            );
            out.target_users = decided.target_users as u64;
            out.paused = clock.is_paused();
            out.run_s = now.as_secs_f64();
            board.publish(out);
        }
        if let Some(text) = abort_check(self.plan, &self.stats, &self.class_names, now) {
            tracing::warn!("threshold `{text}` failed: stopping the run (abort-on-fail)");
            self.aborted_by = Some(text);
            self.shared.stop.stop();
        }
    }

    /// The last interval, up to the stop, and the final board for live readers.
    pub(super) fn finish(mut self, clock: &RunClock) -> Collected {
        let elapsed = self.last_tick.elapsed();
        self.stats.absorb(
            self.shared.tallies.take_all(),
            0,
            elapsed.as_secs_f64().max(0.001),
        );
        self.generator.sample_shutdown(elapsed);
        let ran = clock.ran();
        if let Some(board) = &self.board {
            let mut out = live_board(
                &self.stats,
                &self.shared,
                &self.class_names,
                &self.generator,
                ran,
            );
            out.run_s = ran.as_secs_f64();
            board.publish(out);
            board.finish();
        }
        Collected {
            stats: self.stats,
            generator: self.generator,
            class_names: self.class_names,
            aborted_by: self.aborted_by,
            ran,
        }
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
