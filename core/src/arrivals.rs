//! The open workload model's dispatcher: a thread of its own that walks the arrival schedule
//! (`plan::ArrivalPlan`), waits for each arrival's intended time, and hands the arrival to a
//! free virtual user of its class — or to a new user while the pool is below its maximum — or
//! counts it as dropped. Every arrival ends up counted exactly once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use crate::plan::seed::{self, Stream};
use crate::plan::ArrivalPlan;
use crate::stop::StopHandle;

/// One arrival: its index in the schedule and when it was meant to start.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Position in the run's whole schedule, 0-based (across all shards).
    pub index: u64,
    /// When the schedule meant it to start.
    pub intended: Instant,
}

/// The intended times of a plan's arrivals, in order (relative to the start).
pub struct Schedule {
    plan: ArrivalPlan,
    next: u64,
    /// Poisson: the unit-rate process's current count and its generator.
    unit: f64,
    rng: Option<Pcg64Mcg>,
}

impl Schedule {
    /// The schedule of `plan`; `seed` seeds its Poisson gaps (unused when evenly spaced).
    pub fn new(plan: &ArrivalPlan, seed: u64) -> Self {
        Schedule {
            plan: plan.clone(),
            next: 0,
            unit: 0.0,
            rng: plan
                .poisson
                .then(|| Pcg64Mcg::seed_from_u64(seed::derive(seed, 0, Stream::Arrivals))),
        }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let count = match &mut self.rng {
            None => self.next as f64,
            Some(rng) => {
                // The first arrival at the start, then exponential gaps of mean 1.
                if self.next > 0 {
                    let u = ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
                    self.unit += -u.ln();
                }
                self.unit
            }
        };
        self.next += 1;
        self.plan.time_of(count)
    }
}

/// A run's arrivals in time order, each with its class: one schedule split by class weight,
/// or one schedule per class (`class_rates`) merged.
pub enum Arrivals {
    /// One schedule, each arrival's class chosen by weight.
    Split(Schedule, ClassSplit),
    /// One schedule per class, with the class's index.
    PerClass(Vec<(std::iter::Peekable<Schedule>, usize)>),
}

impl Arrivals {
    /// `classes` are the run's class names (by index) and `weights` their weights.
    pub fn new(plan: &ArrivalPlan, seed: u64, classes: &[String], weights: &[u32]) -> Self {
        if plan.class_rates.is_empty() {
            return Arrivals::Split(Schedule::new(plan, seed), ClassSplit::new(weights));
        }
        let total = plan.duration();
        let mut per_class = Vec::new();
        for (name, per_s) in &plan.class_rates {
            let Some(class) = classes.iter().position(|c| c.eq_ignore_ascii_case(name)) else {
                continue; // refused before the run (runner::load_plugins)
            };
            let own = ArrivalPlan {
                stages: vec![crate::plan::RateStage {
                    per_s: *per_s,
                    duration: total,
                }],
                start_per_s: *per_s,
                class_rates: Vec::new(),
                ..plan.clone()
            };
            // Each class its own Poisson stream.
            let seed = seed::derive(seed, class as u64 + 1, Stream::Arrivals);
            per_class.push((Schedule::new(&own, seed).peekable(), class));
        }
        Arrivals::PerClass(per_class)
    }
}

impl Iterator for Arrivals {
    type Item = (Duration, usize);

    fn next(&mut self) -> Option<(Duration, usize)> {
        match self {
            Arrivals::Split(schedule, split) => schedule.next().map(|t| (t, split.next_class())),
            Arrivals::PerClass(streams) => {
                let (stream, class) = streams
                    .iter_mut()
                    .filter_map(|(s, c)| s.peek().copied().map(|t| (t, s, *c)))
                    .min_by_key(|(t, _, _)| *t)
                    .map(|(_, s, c)| (s, c))?;
                stream.next().map(|t| (t, class))
            }
        }
    }
}

/// Arrivals split among classes by weight, deterministically (smooth weighted round-robin:
/// any prefix of arrivals is as close to the weights as it can be).
pub struct ClassSplit {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl ClassSplit {
    /// A split by these weights, one per class index.
    pub fn new(weights: &[u32]) -> Self {
        ClassSplit {
            weights: weights.iter().map(|&w| i64::from(w)).collect(),
            current: vec![0; weights.len()],
            total: weights.iter().map(|&w| i64::from(w)).sum(),
        }
    }

    /// The class index of the next arrival.
    pub(crate) fn next_class(&mut self) -> usize {
        for (c, w) in self.current.iter_mut().zip(&self.weights) {
            *c += w;
        }
        let mut best = 0;
        for (i, c) in self.current.iter().enumerate() {
            if *c > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        best
    }
}

/// The users waiting for an arrival, per class, and how many users exist.
pub struct Pool {
    idle: Mutex<Vec<Vec<UnboundedSender<Arrival>>>>,
    allocated: AtomicUsize,
    max: usize,
}

impl Pool {
    /// An empty pool for `classes` classes that allows at most `max` users.
    pub fn new(classes: usize, max: usize) -> Self {
        Pool {
            idle: Mutex::new(vec![Vec::new(); classes]),
            allocated: AtomicUsize::new(0),
            max,
        }
    }

    /// A user of `class` is free: the next arrival of its class goes to `tx`.
    pub fn park(&self, class: usize, tx: UnboundedSender<Arrival>) {
        if let Ok(mut idle) = self.idle.lock() {
            idle[class].push(tx);
        }
    }

    /// Counts one more user, unless the pool is at its maximum.
    pub fn allocate(&self) -> bool {
        self.allocated
            .try_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Users counted so far (pre-allocated and on demand).
    pub fn allocated(&self) -> usize {
        self.allocated.load(Ordering::SeqCst)
    }

    /// Gives `arrival` to a parked user of `class`; false when none is left (a user that
    /// stopped leaves a closed sender behind, skipped here).
    fn hand_over(&self, class: usize, arrival: Arrival) -> bool {
        let Ok(mut idle) = self.idle.lock() else {
            return false;
        };
        while let Some(tx) = idle[class].pop() {
            if tx.send(arrival).is_ok() {
                return true;
            }
        }
        false
    }
}

/// What the dispatcher and the open model's users share: the pool and the counts.
pub struct OpenModel {
    /// The free users and the count of all users.
    pub pool: Pool,
    /// What happened to the arrivals so far.
    pub counts: Counts,
}

/// What happened to the arrivals, counted as they go.
#[derive(Default)]
pub struct Counts {
    /// Arrivals whose intended time has come.
    pub scheduled: AtomicU64,
    /// Arrivals handed to a user (a free one or a new one).
    pub dispatched: AtomicU64,
    /// Arrivals that found no free user with the pool full, per class index.
    pub dropped: Vec<AtomicU64>,
    /// Arrivals whose task ended with no failed request and no task error.
    pub completed: AtomicU64,
    /// Arrivals whose task had a failed request or a task error.
    pub failed: AtomicU64,
    /// The lag p99 of the last full second (µs), for live readers.
    pub last_lag_p99_us: AtomicU64,
}

impl Counts {
    /// All zero, with a dropped count for each of `classes` classes.
    pub fn new(classes: usize) -> Self {
        Counts {
            dropped: (0..classes).map(|_| AtomicU64::new(0)).collect(),
            ..Counts::default()
        }
    }
}

/// The dispatcher's lag in one second: how late arrivals were handed over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LagPoint {
    /// Seconds since the start (the end of the interval).
    pub t: u64,
    /// 99th percentile of the lag in that second (microseconds).
    pub p99_us: u64,
    /// Largest lag in that second (microseconds).
    pub max_us: u64,
}

/// The open model's account of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrivalReport {
    /// Arrivals per second asked for (the first stage's; see `stages` in the plan).
    pub rate_per_s: f64,
    /// Arrivals whose intended time came before the run stopped.
    pub scheduled: u64,
    /// Ran their task to the end with no failed request and no task error.
    pub completed: u64,
    /// Ran, with a failed request or a task error.
    pub failed: u64,
    /// Found no free user with the pool at its maximum.
    pub dropped: u64,
    /// Handed to a user but not finished when the run stopped.
    pub cancelled: u64,
    /// Dropped arrivals per class name.
    pub dropped_by_class: Vec<(String, u64)>,
    /// Users the pool created (pre-allocated and on demand).
    pub users: usize,
    /// The pool's limit (`--max-users`).
    pub max_users: usize,
    /// Median lag over the run: how late arrivals were handed to a user (microseconds).
    pub lag_p50_us: u64,
    /// 99th percentile of the lag over the run (microseconds).
    pub lag_p99_us: u64,
    /// Largest lag of the run (microseconds).
    pub lag_max_us: u64,
    /// The lag per second of the run.
    pub lag: Vec<LagPoint>,
    /// Seconds whose lag p99 exceeded 1 ms: the generator, not the server, was the limit.
    pub saturated_seconds: u64,
}

impl ArrivalReport {
    /// `Arrivals at 100.0/s: 1200 scheduled = 1190 completed + 0 failed + 10 dropped + 0
    /// cancelled; 102 of at most 300 users`, the dropped count wrapped in `strong` (`**`, `<b>`).
    /// Only numbers and plain words: safe in HTML and Markdown as it is.
    pub fn accounting(&self, strong: (&str, &str)) -> String {
        let (open, close) = strong;
        format!(
            "Arrivals at {:.1}/s: {} scheduled = {} completed + {} failed + {open}{} dropped{close} + {} cancelled; {} of at most {} users",
            self.rate_per_s, self.scheduled, self.completed, self.failed, self.dropped, self.cancelled, self.users, self.max_users
        )
    }

    /// `Arrival lag (dispatch behind schedule): p50 …, p99 …, max …`, and whether the
    /// generator fell behind.
    pub fn lag_line(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let behind = if self.saturated_seconds > 0 {
            format!(
                " — the generator fell behind (p99 > 1 ms) in {} s of the run",
                self.saturated_seconds
            )
        } else {
            String::new()
        };
        format!(
            "Arrival lag (dispatch behind schedule): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms{behind}",
            ms(self.lag_p50_us),
            ms(self.lag_p99_us),
            ms(self.lag_max_us)
        )
    }

    /// `N dropped arrivals of CLASS: …` for each class that dropped any.
    pub fn dropped_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.dropped_by_class
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(class, n)| {
                format!(
                    "{n} dropped arrivals of {class}: no free user and the pool at --max-users {}",
                    self.max_users
                )
            })
    }
}

/// A lag p99 above this means the generator fell behind its own schedule.
pub(crate) const SATURATION_LAG: Duration = Duration::from_millis(1);
/// The dispatcher wakes at most once per this: arrivals due meanwhile are handed over
/// together, so a high rate does not cost a thread switch per arrival.
const BATCH: Duration = Duration::from_micros(250);
/// Longest single sleep of the dispatcher, so it sees a stop promptly.
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// What the dispatcher returns when the schedule ends or the run stops.
pub struct Dispatched {
    /// Every scheduled arrival's lag behind its intended time (microseconds).
    pub lag_all: Histogram<u64>,
    /// The lag per second.
    pub lag: Vec<LagPoint>,
    /// Seconds whose lag p99 exceeded [`SATURATION_LAG`].
    pub saturated_seconds: u64,
}

/// Walks the schedule from `start` until it ends, `end` passes or `stop` is asked. `spawn`
/// creates a user of a class with its first arrival (the pool has counted it already).
pub fn dispatch(
    arrivals: Arrivals,
    owns: impl Fn(u64) -> bool,
    start: Instant,
    end: Option<Duration>,
    open: &OpenModel,
    stop: &StopHandle,
    mut spawn: impl FnMut(usize, Arrival),
) -> Dispatched {
    let (pool, counts) = (&open.pool, &open.counts);
    let new_histogram =
        || Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds");
    let mut lag_all = new_histogram();
    let mut lag_second = new_histogram();
    let mut second = 1u64;
    let mut points = Vec::new();
    let mut saturated = 0u64;
    let mut warned = false;
    let mut close_second = |h: &mut Histogram<u64>, t: u64, points: &mut Vec<LagPoint>| {
        if h.is_empty() {
            return;
        }
        let point = LagPoint {
            t,
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        };
        counts
            .last_lag_p99_us
            .store(point.p99_us, Ordering::Relaxed);
        if point.p99_us > SATURATION_LAG.as_micros() as u64 {
            saturated += 1;
            if !warned {
                warned = true;
                tracing::warn!(
                    "the load generator is behind its schedule: arrival lag p99 {:.1} ms in second {t} (over 1 ms) — latencies now include the generator's delay; lower --rate or run more generators",
                    point.p99_us as f64 / 1000.0
                );
            }
        }
        points.push(point);
        h.reset();
    };
    let mut woke = start;
    for (index, (at, class)) in arrivals.enumerate() {
        if end.is_some_and(|e| at >= e) {
            break;
        }
        if !owns(index as u64) {
            continue;
        }
        let due = start + at;
        if Instant::now() < due {
            if !wait_until(due.max(woke + BATCH), stop) {
                break;
            }
            woke = Instant::now();
        } else if stop.is_stopping() {
            break;
        }
        let now = Instant::now();
        while now.duration_since(start) >= Duration::from_secs(second) {
            close_second(&mut lag_second, second, &mut points);
            second += 1;
        }
        let lag = now.duration_since(due).as_micros() as u64;
        let _ = lag_all.record(lag.max(1));
        let _ = lag_second.record(lag.max(1));
        counts.scheduled.fetch_add(1, Ordering::Relaxed);
        let arrival = Arrival {
            index: index as u64,
            intended: due,
        };
        if pool.hand_over(class, arrival) {
            counts.dispatched.fetch_add(1, Ordering::Relaxed);
        } else if pool.allocate() {
            counts.dispatched.fetch_add(1, Ordering::Relaxed);
            spawn(class, arrival);
        } else {
            counts.dropped[class].fetch_add(1, Ordering::Relaxed);
        }
    }
    close_second(&mut lag_second, second, &mut points);
    Dispatched {
        lag_all,
        lag: points,
        saturated_seconds: saturated,
    }
}

/// Sleeps until `due`; false when the run stops first. No spinning: a sleep wakes within the
/// kernel's timer slack (~50–100 µs late), well under the 1 ms the lag is judged by, and a
/// spinning dispatcher took the CPU of the users beside it (at 10,000/s on one core it made
/// perfhost drop a sixth of the arrivals; docs/benchmarks.md).
fn wait_until(due: Instant, stop: &StopHandle) -> bool {
    loop {
        if stop.is_stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(MAX_SLEEP));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RateStage;

    fn plan(per_s: f64, secs: u64, poisson: bool) -> ArrivalPlan {
        ArrivalPlan {
            stages: vec![RateStage {
                per_s,
                duration: Duration::from_secs(secs),
            }],
            start_per_s: per_s,
            pre_allocated: 1,
            max_users: 1,
            poisson,
            class_rates: Vec::new(),
        }
    }

    #[test]
    fn schedules_hold_rate_times_duration_arrivals() {
        assert_eq!(Schedule::new(&plan(100.0, 30, false), 1).count(), 3000);
        // Poisson: on average the same; the same seed gives the same times.
        let n = Schedule::new(&plan(1000.0, 30, true), 7).count() as f64;
        assert!((n - 30_000.0).abs() < 30_000.0 * 0.02, "{n}");
        let a: Vec<Duration> = Schedule::new(&plan(100.0, 1, true), 3).collect();
        let b: Vec<Duration> = Schedule::new(&plan(100.0, 1, true), 3).collect();
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
    }

    /// N shards dispatching the one schedule with `ShardPlan::owns` take every arrival of it
    /// exactly once: the union of their arrivals (index, intended time, class) is the global
    /// schedule.
    #[test]
    fn shards_split_one_schedule_exactly() {
        let classes = ["A".to_string(), "B".to_string()];
        let global: Vec<(u64, Duration, usize)> =
            Arrivals::new(&plan(500.0, 2, true), 9, &classes, &[3, 1])
                .enumerate()
                .map(|(k, (t, c))| (k as u64, t, c))
                .collect();
        for count in [1usize, 2, 3, 7] {
            let mut union = Vec::new();
            for index in 0..count {
                let shard = crate::plan::ShardPlan { index, count };
                let open = OpenModel {
                    pool: Pool::new(2, 0),
                    counts: Counts::new(2),
                };
                // Started 3 s ago: every arrival is due at once, none waits.
                let start = Instant::now() - Duration::from_secs(3);
                let arrivals = Arrivals::new(&plan(500.0, 2, true), 9, &classes, &[3, 1]);
                let mut mine = Vec::new();
                let owned = std::cell::RefCell::new(Vec::new());
                dispatch(
                    arrivals,
                    |k| {
                        let own = shard.owns(k);
                        if own {
                            owned.borrow_mut().push(k);
                        }
                        own
                    },
                    start,
                    None,
                    &open,
                    &StopHandle::default(),
                    |_, _| {},
                );
                mine.extend(owned.into_inner());
                assert_eq!(
                    open.counts.scheduled.load(Ordering::SeqCst),
                    mine.len() as u64
                );
                union.extend(mine);
            }
            union.sort_unstable();
            let all: Vec<u64> = global.iter().map(|(k, _, _)| *k).collect();
            assert_eq!(union, all, "{count} shards");
        }
    }

    /// A schedule that started 3 s ago: every arrival is seconds late, so the lag flags the
    /// generator as behind; the pool (at most one user) takes the first, the rest are dropped.
    #[test]
    fn late_arrivals_are_flagged_and_a_full_pool_drops_them() {
        let open = OpenModel {
            pool: Pool::new(1, 1),
            counts: Counts::new(1),
        };
        let start = Instant::now()
            .checked_sub(Duration::from_secs(3))
            .expect("the clock is past 3 s");
        let arrivals = Arrivals::new(&plan(10.0, 1, false), 1, &["A".to_string()], &[1]);
        let mut spawned = 0;
        let d = dispatch(
            arrivals,
            |_| true,
            start,
            None,
            &open,
            &StopHandle::default(),
            |_, _| spawned += 1,
        );
        let load = |a: &AtomicU64| a.load(Ordering::SeqCst);
        assert_eq!(load(&open.counts.scheduled), 10);
        assert_eq!((spawned, load(&open.counts.dispatched)), (1, 1));
        assert_eq!(load(&open.counts.dropped[0]), 9);
        assert!(d.lag_all.min() >= 2_000_000, "{} µs", d.lag_all.min());
        assert!(d.saturated_seconds >= 1 && !d.lag.is_empty());
    }

    #[test]
    fn arrivals_are_split_by_weight() {
        let mut split = ClassSplit::new(&[7, 2, 1]);
        let mut n = [0; 3];
        for _ in 0..100 {
            n[split.next_class()] += 1;
        }
        assert_eq!(n, [70, 20, 10]);
        // Per-class rates: each class its own schedule, merged in time order.
        let mut p = plan(1.0, 10, false);
        p.class_rates = vec![("A".into(), 3.0), ("B".into(), 1.0)];
        let names = ["A".to_string(), "B".to_string()];
        let all: Vec<(Duration, usize)> = Arrivals::new(&p, 1, &names, &[1, 1]).collect();
        assert_eq!(all.iter().filter(|(_, c)| *c == 0).count(), 30);
        assert_eq!(all.iter().filter(|(_, c)| *c == 1).count(), 10);
        assert!(all.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
