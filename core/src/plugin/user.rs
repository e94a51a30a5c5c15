//! Groups of virtual users. A group is one Store with one instance of a plugin; each of its
//! users is a `user` resource in that instance, and their calls run concurrently
//! (component-model async): while one user awaits a response the others run. A trap in any
//! call poisons the instance, so it ends the whole group; the engine then re-creates it. A
//! plugin of the sync world has groups of one user: the same calls, through its own bindings.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Accessor, Resource, ResourceAny};

use super::host_impl::UserContextState;
use wasmtime::{Engine, Store, UpdateDeadline};

use super::bindings::perfhost::plugin::types::{self as wit, WaitTime as WitWait};
use super::bindings::sync::PluginSync;
use super::bindings::Plugin;
use super::state::{GroupState, MemoryCapExceeded, RunEnv};
use super::{PluginError, PluginSet, Pre, TaskInfo, UserClass, WaitTime, EPOCH_TICK};
use crate::stats::Tally;

/// Users per plugin instance at most: bounds what one trap takes down and how far one
/// instance's memory grows. Measured (plain GET, one core): wasmtime's per-request cost grows
/// with the tasks in one instance, while each extra instance adds its own event-loop work;
/// 500 balanced the two best at 1,000 and 5,000 users (docs/benchmarks.md).
pub const GROUP_SIZE: usize = 500;

/// What a task reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// The task ran; the user waits, then goes on.
    Ok,
    /// The task failed for a reason other than a request failure; grouped in the task
    /// errors.
    Error(String),
    /// The user stops for the rest of the run.
    StopUser,
    /// Skip the wait and pick the next task at once.
    Reschedule,
}

/// Why a group's instance is gone.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupError {
    /// A guest call trapped (panic, CPU budget, memory cap, …); the message says which.
    #[error("{0}")]
    Trapped(String),
    /// The instance could not be created.
    #[error("cannot create the plugin instance: {0}")]
    Create(String),
}

/// One plugin instance and the Store that holds it.
pub struct Group {
    store: Store<GroupState>,
    plugin: Instance,
}

/// A plugin instance of either world.
pub enum Instance {
    /// Of the async world `plugin`.
    Async(Plugin),
    /// Of the sync world `plugin-sync`.
    Sync(PluginSync),
}

impl Pre {
    async fn instantiate(&self, store: &mut Store<GroupState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::Async(pre) => Instance::Async(pre.instantiate_async(store).await?),
            Pre::Sync(pre) => Instance::Sync(pre.instantiate_async(store).await?),
        })
    }
}

/// Calls the same `user` method in either world's bindings (the argument and result types
/// are shared).
macro_rules! call_user {
    ($plugin:expr, $method:ident($($arg:expr),*)) => {
        match $plugin {
            Instance::Async(p) => p.perfhost_plugin_behaviour().user().$method($($arg),*).await,
            Instance::Sync(p) => p.perfhost_plugin_behaviour_sync().user().$method($($arg),*).await,
        }
    };
}

fn new_store(engine: &Engine, state: GroupState) -> Store<GroupState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    // The deadline callback runs while guest code runs. Yielding lets the group's other users
    // go on; a guest that computed the whole budget without reaching the host is stopped.
    store.epoch_deadline_callback(|mut ctx| {
        let state = ctx.data_mut();
        let ticks = state.clock.tick();
        let budget = state.env.limits.cpu_budget;
        if EPOCH_TICK * ticks > budget {
            return Err(wasmtime::Error::new(BudgetExceeded(
                budget.as_millis() as u64
            )));
        }
        // A tick that lands in a short guest call (the usual case) changes nothing; a guest
        // still computing at the next tick yields.
        if ticks < 2 {
            return Ok(UpdateDeadline::Continue(1));
        }
        // tokio's `yield_now` defers the guest until the runtime has polled its I/O driver, so
        // a guest computing for long lets the other users of its worker (other classes too)
        // receive their responses between its slices. A plain `Yield` re-queues it at once,
        // and the driver is polled only every 61 task polls: other users waited ~0.4 s.
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
    store.set_epoch_deadline(1);
    store
}

#[derive(Debug)]
struct BudgetExceeded(u64);

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the plugin computed for more than its {} ms CPU budget without a break (endless loop?)",
            self.0
        )
    }
}

impl std::error::Error for BudgetExceeded {}

impl Group {
    /// Instantiates plugin `plugin_index` for users of class `class` (the run's index);
    /// `group_id` seeds the instance's WASI randomness.
    pub async fn create(
        set: &PluginSet,
        plugin_index: usize,
        class: u32,
        group_id: u64,
        env: Arc<RunEnv>,
        tally: Arc<Tally>,
    ) -> Result<Self, GroupError> {
        let pre = set
            .pres
            .get(plugin_index)
            .ok_or_else(|| GroupError::Create("no such plugin".into()))?;
        let mut store = new_store(&set.engine, GroupState::new(env, tally, class, group_id));
        let plugin = match pre.instantiate(&mut store).await {
            Ok(plugin) => plugin,
            Err(err) => return Err(GroupError::Create(trap_message(&store, &err))),
        };
        Ok(Group { store, plugin })
    }

    /// Runs `body`, which drives the group's users through the accessor. A trap in any guest
    /// call ends it early and comes back as `GroupError::Trapped` with a clear message.
    pub async fn run<R: Send>(
        &mut self,
        body: impl AsyncFnOnce(&Accessor<GroupState>, &Instance) -> wasmtime::Result<R> + Send,
    ) -> Result<R, GroupError> {
        let Group { store, plugin } = self;
        let result = store
            .run_concurrent(async |accessor| body(accessor, plugin).await)
            .await;
        result
            .and_then(|inner| inner)
            .map_err(|err| GroupError::Trapped(trap_message(store, &err)))
    }
}

/// One user inside a group: its `user` resource and its `user-context` (table rep).
pub struct UserHandle {
    user: ResourceAny,
    ctx: u32,
}

/// Notes host activity (for the CPU budget) when a call into the guest returns; the end of
/// one call also stands for the start of the next.
fn activity(accessor: &Accessor<GroupState>) {
    accessor.with(|mut access| access.get().clock.host_activity());
}

impl UserHandle {
    /// Creates user `id` of class `class` in the group's instance.
    pub async fn create(
        accessor: &Accessor<GroupState>,
        plugin: &Instance,
        class: u32,
        id: u64,
    ) -> wasmtime::Result<Self> {
        let ctx = accessor.with(|mut access| {
            let state = access.get();
            let user = state.new_user(id);
            state.table.push(user)
        })?;
        let rep = ctx.rep();
        let user = call_user!(plugin, call_constructor(accessor, class, id, ctx))?;
        activity(accessor);
        Ok(UserHandle { user, ctx: rep })
    }

    /// Runs `on-start`.
    pub async fn on_start(
        &self,
        accessor: &Accessor<GroupState>,
        plugin: &Instance,
    ) -> wasmtime::Result<TaskOutcome> {
        let result = call_user!(plugin, call_on_start(accessor, self.user));
        self.settle(accessor);
        result.map(outcome)
    }

    /// Runs task `task`; afterwards every response without a verdict gets the default rule.
    pub async fn run_task(
        &self,
        accessor: &Accessor<GroupState>,
        plugin: &Instance,
        task: u32,
    ) -> wasmtime::Result<TaskOutcome> {
        let result = call_user!(plugin, call_run_task(accessor, self.user, task));
        self.settle(accessor);
        result.map(outcome)
    }

    /// Notes how late the next task starts against its schedule (`None`: no schedule), for
    /// the corrected latency of its requests; returns the user's failed requests so far.
    pub fn begin_task(&self, accessor: &Accessor<GroupState>, lateness: Option<Duration>) -> u64 {
        accessor.with(|mut access| {
            let state = access.get();
            match state
                .table
                .get_mut(&Resource::<UserContextState>::new_borrow(self.ctx))
            {
                Ok(user) => {
                    user.lateness_us = lateness.map(|l| l.as_micros() as u64);
                    user.failed_requests
                }
                Err(_) => 0,
            }
        })
    }

    /// Lets the user's connection rest while it waits (`client::Connection::rest`); a request
    /// still in flight keeps it. With `--trace`, a line says so (what shows the engine rests a
    /// waiting user's connection).
    pub fn rest(&self, accessor: &Accessor<GroupState>) {
        accessor.with(|mut access| access.get().rest_user(self.ctx, "waits"));
    }

    /// The user's failed requests so far.
    pub fn failed_requests(&self, accessor: &Accessor<GroupState>) -> u64 {
        accessor.with(|mut access| {
            access
                .get()
                .table
                .get(&Resource::<UserContextState>::new_borrow(self.ctx))
                .map_or(0, |u| u.failed_requests)
        })
    }

    /// For sequential classes: the plugin's choice of the next task.
    pub async fn next_task(
        &self,
        accessor: &Accessor<GroupState>,
        plugin: &Instance,
    ) -> wasmtime::Result<Option<u32>> {
        let result = call_user!(plugin, call_next_task(accessor, self.user));
        activity(accessor);
        result
    }

    /// For custom wait times: the plugin's next wait in milliseconds.
    pub async fn next_wait_ms(
        &self,
        accessor: &Accessor<GroupState>,
        plugin: &Instance,
    ) -> wasmtime::Result<u32> {
        let result = call_user!(plugin, call_next_wait_ms(accessor, self.user));
        activity(accessor);
        result
    }

    /// Runs `on-stop`. The guest's `user` value stays in the instance until the instance ends
    /// (a guest destructor cannot be called from inside the group's concurrent run); it is a
    /// few hundred bytes, and only users removed by a load shape leave one behind.
    pub async fn on_stop(
        self,
        accessor: &Accessor<GroupState>,
        plugin: &Instance,
    ) -> wasmtime::Result<()> {
        accessor.with(|mut access| access.get().enter_on_stop(self.ctx));
        let result = call_user!(plugin, call_on_stop(accessor, self.user));
        self.settle(accessor);
        result
    }

    fn settle(&self, accessor: &Accessor<GroupState>) {
        accessor.with(|mut access| {
            let state = access.get();
            state.clock.host_activity();
            state.settle_pending(self.ctx);
        });
    }
}

/// The most a plugin may pass to the host in one call: wasmtime's default hostcall fuel, a
/// guard against a guest making the host allocate without bound.
const HOSTCALL_LIMIT: usize = 128 << 20;

/// One line saying why the guest stopped: its panic message, the CPU budget, the memory cap,
/// or the trap itself.
fn trap_message(store: &Store<GroupState>, err: &wasmtime::Error) -> String {
    if let Some(budget) = err.downcast_ref::<BudgetExceeded>() {
        return budget.to_string();
    }
    let state = store.data();
    if state.limits.exceeded {
        return MemoryCapExceeded {
            cap: state.env.limits.memory_cap,
        }
        .to_string();
    }
    if let Some(panic) = state.last_panic() {
        return format!("the plugin panicked: {panic}");
    }
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("the plugin trapped: {trap}"),
        None => {
            // The first line of wasmtime's error is only "error while executing at wasm
            // backtrace:"; the cause is at the root of the chain.
            let cause = err.root_cause().to_string();
            // wasmtime's type for this is private: its text is all there is to go on.
            if cause.contains("fuel allocated for hostcalls") {
                return format!(
                    "the plugin passed more than {} to the host in one call (a request body, its headers or a log line) — the sandbox's limit per call; send less at once",
                    crate::plan::format_size(HOSTCALL_LIMIT)
                );
            }
            format!("the plugin failed: {cause}")
        }
    }
}

fn outcome(o: wit::TaskOutcome) -> TaskOutcome {
    match o {
        wit::TaskOutcome::Ok => TaskOutcome::Ok,
        wit::TaskOutcome::Error(m) => TaskOutcome::Error(m),
        wit::TaskOutcome::StopUser => TaskOutcome::StopUser,
        wit::TaskOutcome::Reschedule => TaskOutcome::Reschedule,
    }
}

/// Calls `describe()` in a throwaway store; also returns the instance's linear memory then.
pub(super) async fn describe(
    engine: &Engine,
    pre: &Pre,
    name: &str,
) -> Result<(Vec<UserClass>, u64), PluginError> {
    // describe() sends nothing: its target is a placeholder no request can reach.
    let target = crate::plan::Target::parse("http://127.0.0.1:9")
        .map_err(|e| PluginError::Engine(e.to_string()))?;
    let env = Arc::new(RunEnv {
        client: crate::client::ClientConfig::plain(
            Arc::new(target),
            std::time::Duration::from_secs(1),
        ),
        config_values: Default::default(),
        data: Default::default(),
        seed: 0,
        limits: super::DEFAULT_LIMITS,
        trace: false,
        redactor: Default::default(),
        stop: Default::default(),
        events: crate::events::ignore(),
    });
    let state = GroupState::new(env, Arc::new(Tally::default()), 0, u64::MAX);
    let mut store = new_store(engine, state);
    let failed = |why: String| PluginError::Describe {
        name: name.to_string(),
        why,
    };
    let plugin = pre
        .instantiate(&mut store)
        .await
        .map_err(|e| failed(format!("{e:#}")))?;
    let classes = store
        .run_concurrent(async |accessor| match &plugin {
            Instance::Async(p) => p.perfhost_plugin_behaviour().call_describe(accessor).await,
            Instance::Sync(p) => {
                p.perfhost_plugin_behaviour_sync()
                    .call_describe(accessor)
                    .await
            }
        })
        .await
        .and_then(|classes| classes)
        .map_err(|e| failed(trap_message(&store, &e)))?;
    if classes.is_empty() {
        return Err(failed("it declares no user class".into()));
    }
    let memory = store.data().limits.bytes as u64;
    let mut out = Vec::new();
    for class in classes {
        if class.tasks.is_empty() {
            return Err(failed(format!("user class {} has no tasks", class.name)));
        }
        if class.tasks.iter().all(|t| t.weight == 0) && !class.sequential {
            return Err(failed(format!(
                "every task of user class {} has weight 0",
                class.name
            )));
        }
        out.push(UserClass {
            name: class.name,
            weight: class.weight,
            wait: match class.wait {
                WitWait::Between(r) => WaitTime::Between {
                    min_ms: r.min_ms.min(r.max_ms),
                    max_ms: r.max_ms.max(r.min_ms),
                },
                WitWait::Constant(ms) => WaitTime::Constant { ms },
                WitWait::ConstantPacing(ms) => WaitTime::ConstantPacing { ms },
                WitWait::ConstantThroughput(per_second) => {
                    WaitTime::ConstantThroughput { per_second }
                }
                WitWait::Custom => WaitTime::Custom,
            },
            tasks: class
                .tasks
                .into_iter()
                .map(|t| TaskInfo {
                    name: t.name,
                    weight: t.weight,
                })
                .collect(),
            sequential: class.sequential,
        });
    }
    Ok((out, memory))
}
