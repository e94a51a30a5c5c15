//! A virtual user's life: its tasks (chosen by weight, or by a sequential class), its waits
//! (a pacing class keeps a schedule), pause and stop, and in the open model one task per
//! arrival.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use tokio::sync::mpsc;
use wasmtime::component::Accessor;

use super::health::{class_stopped, healthy};
use super::{Shared, StopHandle};
use crate::arrivals::{Arrival, OpenModel};
use crate::client::REST_AFTER;
use crate::plan::seed::{self, Stream};
use crate::plugin::state::GroupState;
use crate::plugin::Instance;
use crate::plugin::{TaskOutcome, UserHandle, WaitTime};
use crate::stats::Tally;

/// A user handed to a worker: its id, class and own stop signal (for ramp-down); in the
/// open model, the arrival it was created for.
#[derive(Clone)]
pub(super) struct Spawn {
    pub(super) id: u64,
    pub(super) class: usize,
    pub(super) stop: StopHandle,
    pub(super) first: Option<Arrival>,
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
pub(super) async fn pause(shared: &Shared, me: Option<&StopHandle>, d: Duration) -> bool {
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
pub(super) async fn user_loop(
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
        let context = UserContext {
            accessor,
            plugin,
            user: &user,
            class,
            tally,
            shared,
        };
        open_user_life(context, first, open, &mut rng).await?;
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
        if wait >= REST_AFTER {
            user.rest(accessor);
        }
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

/// A started user as its tasks see it: the instance it runs in and its handle there, its class,
/// where it records. Passed by value and taken apart at once, so a task reads each part as it
/// would an argument (no indirection per task).
struct UserContext<'a> {
    accessor: &'a Accessor<GroupState>,
    plugin: &'a Instance,
    user: &'a UserHandle,
    class: usize,
    tally: &'a Tally,
    shared: &'a Shared,
}

/// A user of the open model: runs one task per arrival handed to it, waiting (parked in the
/// pool) in between; waits are not used. The arrival counts as completed or failed (a failed
/// request or a task error); a stop or a lost instance leaves it to be counted cancelled.
async fn open_user_life(
    context: UserContext<'_>,
    mut next: Option<Arrival>,
    open: &OpenModel,
    rng: &mut Pcg64Mcg,
) -> wasmtime::Result<()> {
    let UserContext {
        accessor,
        plugin,
        user,
        class,
        tally,
        shared,
    } = context;
    let slot = &shared.classes[class];
    let tasks = &slot.class.tasks;
    let (tx, mut rx) = mpsc::unbounded_channel();
    loop {
        let arrival = match next.take() {
            Some(arrival) => arrival,
            None => {
                open.pool.park(class, tx.clone());
                // A user left in the pool this long rests its connection, as a waiting user
                // of the closed model does.
                let rest = tokio::time::sleep(REST_AFTER);
                tokio::pin!(rest);
                let mut rested = false;
                loop {
                    tokio::select! {
                        got = rx.recv() => match got {
                            Some(arrival) => break arrival,
                            None => return Ok(()),
                        },
                        _ = &mut rest, if !rested => {
                            user.rest(accessor);
                            rested = true;
                        }
                        _ = shared.stop.stopped() => return Ok(()),
                    }
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
pub(super) fn restart_wait(wait: &WaitTime, rng: &mut Pcg64Mcg) -> Duration {
    wait_after(wait, Duration::ZERO, rng)
        .unwrap_or_default()
        .max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;

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
