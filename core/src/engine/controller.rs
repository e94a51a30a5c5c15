//! The controller: on each pass of the run's loop it decides which users should run now (the
//! load shape at its spawn rate, or the web UI's new count), follows pause and reset, and tells
//! when the run is over (run time, iterations, every user ended by itself).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::classes::{assign_classes, weights};
use super::clock::RunClock;
use super::collector::{Collector, Decision};
use super::user::Spawn;
use super::workers::Inboxes;
use super::{stripe, Shared, StopHandle};
use crate::control::Retarget;
use crate::plan::{LoadShape, Plan, ShardPlan};

/// The users of a closed-model run over time.
pub(super) struct Controller {
    shared: Arc<Shared>,
    inboxes: Inboxes,
    run_time: Option<Duration>,
    /// This process's stripe of the run: its j-th user is global user `shard.global(j)`.
    shard: ShardPlan,
    /// The open model starts a user per arrival, not here: no shape, no pause, no new count.
    open_model: bool,
    /// The shape followed now: the plan's until the web UI asks for a new count, then a ramp
    /// from the users running to that count.
    shape: LoadShape,
    /// The run's time (without pauses) at which `shape` began.
    shape_start: Duration,
    /// How soon the shape's user count can next change while it is not settled.
    step: Duration,
    /// The web UI set the count: its 0 users do not end the run.
    retargeted: bool,
    weights: Vec<u32>,
    /// Slot k always holds a user of class `sequence[k]`: growing adds slots at the end and
    /// shrinking removes the newest, so any user count keeps the class mix as exact as it can
    /// be. A shard's j-th user is global user `shard.global(j)`, of that user's class.
    sequence: Vec<usize>,
    /// The most users asked for: the class counts the result reports.
    peak_users: usize,
    /// Each running user's stop, oldest first.
    alive: Vec<StopHandle>,
    next_id: u64,
    /// `--reset-stats` done, or not asked for.
    ramp_done_reset: bool,
}

impl Controller {
    pub(super) fn new(plan: &Plan, shared: Arc<Shared>, inboxes: Inboxes) -> Self {
        let weights = weights(&shared.classes);
        let shape = plan.load.clone();
        Controller {
            run_time: plan.stop.run_time,
            shard: stripe(plan),
            open_model: shared.open.is_some(),
            shape_start: Duration::ZERO,
            step: shape.step(),
            retargeted: false,
            sequence: assign_classes(&weights, shape.max_users()),
            peak_users: shape.max_users(),
            weights,
            shape,
            alive: Vec::new(),
            next_id: 0,
            ramp_done_reset: !plan.reset_stats,
            shared,
            inboxes,
        }
    }

    /// One pass: follows pause, a new count and a reset from the control, starts or stops
    /// users to the shape's count, and stops the run when it is over. `None`: the run stops.
    pub(super) fn decide(
        &mut self,
        clock: &mut RunClock,
        collector: &mut Collector<'_>,
    ) -> Option<Decision> {
        clock.set_paused(self.shared.control.is_paused() && !self.open_model);
        let (now, deadline) = clock.now_and_deadline(self.run_time);
        // The open model has no user count to change: a new count is taken and dropped.
        let retarget = self.shared.control.take_retarget();
        if let Some(to) = retarget.filter(|_| !self.open_model) {
            self.retarget(to, now);
        }
        if self.shared.control.take_reset() {
            collector.reset();
            tracing::info!("statistics reset");
        }
        let shape_now = now.saturating_sub(self.shape_start);
        let target_users = if self.shared.stop.is_stopping() || self.open_model {
            0
        } else {
            self.local(self.shape.target(shape_now))
        };
        self.grow_to(target_users);
        self.shrink_to(target_users);
        if !self.ramp_done_reset && self.alive.len() >= self.local(self.shape.max_users()) {
            self.ramp_done_reset = true;
            collector.reset();
            tracing::info!(
                "all {} users spawned: statistics reset (--reset-stats)",
                self.alive.len()
            );
        }
        let all_done = self.all_done(target_users, shape_now);
        if deadline.is_some_and(|d| Instant::now() >= d) || all_done {
            self.shared.stop.stop();
        }
        if self.shared.stop.is_stopping() {
            return None;
        }
        Some(Decision {
            now,
            target_users,
            deadline,
            changing: !self.shape.settled(shape_now) && !clock.is_paused(),
            step: self.step,
        })
    }

    /// The web UI's new count: a ramp from the users running now.
    fn retarget(&mut self, to: Retarget, now: Duration) {
        self.retargeted = true;
        self.shape = LoadShape::retarget(self.alive.len(), to.users, to.spawn_rate);
        self.shape_start = now;
        self.step = self.shape.step();
        if to.users > self.sequence.len() {
            self.sequence = assign_classes(&self.weights, to.users);
        }
        self.peak_users = self.peak_users.max(to.users);
        tracing::info!(
            "users: {} → {} at {}/s",
            self.alive.len(),
            to.users,
            to.spawn_rate
        );
    }

    /// Starts users until `target` run, each in the class of its slot.
    fn grow_to(&mut self, target: usize) {
        while self.alive.len() < target {
            let user_stop = StopHandle::default();
            self.inboxes.hand(Spawn {
                id: self.next_id,
                class: self.sequence[self.shard.global(self.alive.len() as u64) as usize],
                stop: user_stop.clone(),
                first: None,
            });
            self.alive.push(user_stop);
            self.next_id += 1;
        }
    }

    fn shrink_to(&mut self, target: usize) {
        while self.alive.len() > target {
            // The newest user goes first; it finishes its current task, then stops.
            if let Some(user) = self.alive.pop() {
                user.stop();
            }
        }
    }

    /// Users ending by themselves (-n, stop-user) end the run when none is left.
    /// (Not a UI's move to 0 users: the test goes on, as Locust's.)
    fn all_done(&self, target_users: usize, shape_now: Duration) -> bool {
        let active = self.shared.live.active_users.load(Ordering::Relaxed);
        let iterations_spent = self
            .shared
            .iterations_left
            .as_ref()
            .is_some_and(|n| n.load(Ordering::SeqCst) == 0);
        !(self.open_model || self.retargeted && target_users == 0)
            && self.next_id > 0
            && active == 0
            && (iterations_spent
                || self.shape.settled(shape_now)
                    && self.alive.len() >= self.local(self.shape.target(shape_now)))
    }

    /// This process's share of `global` users.
    fn local(&self, global: usize) -> usize {
        self.shard.share(global as u64) as usize
    }

    /// The run is over: every user is asked to stop, and the workers get no more users (they
    /// end once the open model's dispatcher has let go of its inboxes too).
    pub(super) fn stop_users(&mut self) {
        for user in &self.alive {
            user.stop();
        }
        self.inboxes.close();
    }

    /// Users per class name at the run's peak.
    pub(super) fn class_users(&self) -> BTreeMap<String, usize> {
        let classes = &self.shared.classes;
        let mut class_users = vec![0usize; classes.len()];
        for j in 0..self.local(self.peak_users) {
            class_users[self.sequence[self.shard.global(j as u64) as usize]] += 1;
        }
        classes
            .iter()
            .zip(&class_users)
            .map(|(s, &n)| (s.class.name.clone(), n))
            .fold(BTreeMap::new(), |mut m, (k, n)| {
                *m.entry(k).or_insert(0) += n;
                m
            })
    }
}
