//! The worker threads: one current-thread runtime per core, each holding groups of users
//! that share a plugin instance, and what happens when an instance is lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_core::SeedableRng;
use rand_pcg::Pcg64Mcg;
use tokio::sync::mpsc;

use super::health::{class_stopped, trapped};
use super::user::{pause, restart_wait, user_loop, Spawn};
use super::{Live, Shared};
use crate::plan::seed::{self, Stream};
use crate::plugin::Group;

/// The worker threads of a run.
pub(super) struct Workers {
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Where new users go: one inbox per worker, handed to round-robin by user id. The open
/// model's dispatcher holds a copy.
#[derive(Clone)]
pub(super) struct Inboxes {
    senders: Vec<mpsc::UnboundedSender<Spawn>>,
    live: Arc<Live>,
}

/// Starts `count` worker threads, each with a current-thread runtime of its own.
pub(super) fn start(
    count: usize,
    shared: &Arc<Shared>,
    stop_timeout: Duration,
) -> (Inboxes, Workers) {
    let mut senders = Vec::new();
    let mut threads = Vec::new();
    for w in 0..count {
        let (tx, rx) = mpsc::unbounded_channel::<Spawn>();
        senders.push(tx);
        let shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("perfhost-worker-{w}"))
            .spawn(move || worker(w, rx, shared, stop_timeout));
        match thread {
            Ok(t) => threads.push(t),
            Err(err) => tracing::error!("cannot start worker thread: {err}"),
        }
    }
    let inboxes = Inboxes {
        senders,
        live: shared.live.clone(),
    };
    (inboxes, Workers { threads })
}

impl Inboxes {
    /// Gives a user to worker `id mod workers`.
    pub(super) fn hand(&self, spawn: Spawn) {
        // Counted as active when handed out, so "no user left" cannot be seen before it starts.
        self.live.active_users.fetch_add(1, Ordering::Relaxed);
        if self.senders[(spawn.id as usize) % self.senders.len()]
            .send(spawn)
            .is_err()
        {
            self.live.active_users.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Lets go of the inboxes: a worker stops once every copy of its inbox is gone, then lets
    /// its users finish within the stop timeout.
    pub(super) fn close(&mut self) {
        self.senders.clear();
    }
}

impl Workers {
    /// Waits, off the async runtime, until every worker thread has ended.
    pub(super) async fn join(self) {
        let threads = self.threads;
        let joiner = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        let _ = joiner.await;
    }
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
pub(super) const UNCONSTRAINED_FROM: usize = 2_500;

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

struct ActiveGuard(Arc<Live>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.0.active_users.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.all_gone.notify_one();
        }
    }
}
