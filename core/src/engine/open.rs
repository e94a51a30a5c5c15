//! The open model's start and end: its pre-allocated users, the dispatcher thread that hands
//! arrivals to them, and the account of its arrivals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::classes::{assign_classes, weights};
use super::user::Spawn;
use super::workers::Inboxes;
use super::{stripe, Shared, StopHandle};
use crate::arrivals::{self, Arrival, ArrivalReport, OpenModel};
use crate::plan::Plan;

/// The open model's dispatcher thread; it ends with its account of the arrivals.
pub(super) type Dispatcher = std::thread::JoinHandle<arrivals::Dispatched>;

/// Creates the open model's pre-allocated users and starts its dispatcher thread, which
/// creates more users on demand. Without a thread the run cannot send: it is stopped.
/// `None` without a thread, and in a closed-model run.
pub(super) fn start_open_model(
    plan: &Plan,
    shared: &Shared,
    inboxes: &Inboxes,
    class_names: &[String],
    started: Instant,
) -> Option<Dispatcher> {
    let (Some(open), Some(model)) = (&plan.arrivals, &shared.open) else {
        return None;
    };
    let weights = weights(&shared.classes);
    let stop = shared.stop.clone();
    let spawn_user = {
        let inboxes = inboxes.clone();
        let next_user = AtomicU64::new(0);
        move |class: usize, first: Option<Arrival>| {
            let id = next_user.fetch_add(1, Ordering::Relaxed);
            inboxes.hand(Spawn {
                id,
                class,
                stop: StopHandle::default(),
                first,
            });
        }
    };
    let shard = stripe(plan);
    for class in assign_classes(&weights, shard.share(open.pre_allocated as u64) as usize) {
        if model.pool.allocate() {
            spawn_user(class, None);
        }
    }
    let arrivals = arrivals::Arrivals::new(open, plan.seed, class_names, &weights);
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

/// Waits (off the async runtime) for the dispatcher to end, and reports the arrivals.
pub(super) async fn finish_open_model(
    plan: &Plan,
    dispatcher: Option<Dispatcher>,
    shared: &Shared,
    class_names: &[String],
) -> Option<ArrivalReport> {
    match (dispatcher, &shared.open) {
        (Some(thread), Some(model)) => {
            let dispatched = tokio::task::spawn_blocking(move || thread.join())
                .await
                .ok()
                .and_then(Result::ok);
            dispatched.map(|d| arrival_report(plan, model, d, class_names))
        }
        _ => None,
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
