//! One virtual user: a Store with its own instance of the plugin and the plugin's `user`
//! resource. A trap stays inside this user: the Store is then dropped whole and the engine
//! creates a fresh user after the wait time.

use std::sync::Arc;

use wasmtime::component::{ResourceAny, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};

use super::bindings::perfhost::plugin::types::{self as wit, WaitTime as WitWait};
use super::bindings::{Plugin, PluginPre};
use super::courier::{self, Courier};
use super::host_impl::UserContextState;
use super::state::{RunEnv, UserState};
use super::{PluginError, PluginSet, TaskInfo, UserClass, WaitTime};
use crate::client::Connection;
use crate::stats::Shard;

/// What a task reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    Ok,
    Error(String),
    StopUser,
    Reschedule,
}

/// A user's call into its plugin failed: the user is unusable from here on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UserError {
    /// The guest trapped (panic, CPU budget, memory cap, …); the message says which.
    #[error("{0}")]
    Trapped(String),
    /// The user could not be created.
    #[error("cannot create user: {0}")]
    Create(String),
}

/// Calls a method of the plugin's `user` resource with the guest-CPU clock running.
macro_rules! guest_call {
    ($me:ident, $method:ident $(, $arg:expr)*) => {{
        // Deadlines are absolute: re-arm one tick from now, so a call that starts after a long
        // wait does not run into an already-expired deadline (a callback and a yield per call).
        $me.store.set_epoch_deadline(1);
        $me.store.data_mut().cpu.start_call();
        let user = $me.user;
        let guest = $me.plugin.perfhost_plugin_behaviour().user();
        let call = guest.$method(&mut $me.store, user $(, $arg)*);
        courier::drive(&$me.courier, &mut $me.conn, call).await
    }};
}

/// A live virtual user.
pub struct PluginUser {
    store: Store<UserState>,
    plugin: Plugin,
    user: ResourceAny,
    /// The user's keep-alive connection, driven by the user's task (see courier.rs).
    conn: Connection,
    courier: Arc<Courier>,
    /// The plugin (index into the set) and class of this user.
    pub plugin_index: usize,
    pub class: u32,
}

fn new_store(engine: &Engine, state: UserState) -> Store<UserState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    // The deadline is absolute: after a long await on the host it fires at once, so the
    // callback measures the guest's own time and only then decides.
    store.epoch_deadline_callback(|ctx| {
        let state = ctx.data();
        if state.cpu.guest_time() > state.env.cpu_budget {
            return Err(wasmtime::Error::new(BudgetExceeded(
                state.env.cpu_budget.as_millis() as u64,
            )));
        }
        Ok(UpdateDeadline::Yield(1))
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
            "the plugin used more than its {} ms CPU budget in one call (endless loop?)",
            self.0
        )
    }
}

impl std::error::Error for BudgetExceeded {}

impl PluginUser {
    /// Instantiates plugin `plugin_index` for user `id` of class `class` and runs its constructor.
    pub async fn create(
        set: &PluginSet,
        plugin_index: usize,
        class: u32,
        id: u64,
        env: Arc<RunEnv>,
        shard: Arc<Shard>,
    ) -> Result<Self, UserError> {
        match Self::create_in(
            set.pooled(),
            plugin_index,
            class,
            id,
            env.clone(),
            shard.clone(),
        )
        .await
        {
            Err(CreateError::PoolFull) => {
                let slot = set.fallback().map_err(UserError::Create)?;
                Self::create_in(slot, plugin_index, class, id, env, shard)
                    .await
                    .map_err(|e| e.into_user_error())
            }
            other => other.map_err(|e| e.into_user_error()),
        }
    }

    async fn create_in(
        slot: &super::EngineSlot,
        plugin_index: usize,
        class: u32,
        id: u64,
        env: Arc<RunEnv>,
        shard: Arc<Shard>,
    ) -> Result<Self, CreateError> {
        let pre = slot
            .pres
            .get(plugin_index)
            .ok_or_else(|| CreateError::Other("no such plugin".into()))?;
        let mut store = new_store(&slot.engine, UserState::new(env, shard, id));
        let plugin = match pre.instantiate_async(&mut store).await {
            Ok(plugin) => plugin,
            Err(err) if err.is::<wasmtime::PoolConcurrencyLimitError>() => {
                return Err(CreateError::PoolFull)
            }
            Err(err) => return Err(CreateError::Other(format!("{err:#}"))),
        };
        let ctx = store
            .data_mut()
            .table
            .push(UserContextState)
            .map_err(|e| CreateError::Other(e.to_string()))?;
        store.data_mut().cpu.start_call();
        let courier = store.data().courier.clone();
        let mut conn = Connection::new(store.data().env.client.clone());
        let guest = plugin.perfhost_plugin_behaviour().user();
        let call = guest.call_constructor(&mut store, class, id, ctx);
        let result = courier::drive(&courier, &mut conn, call).await;
        store.data_mut().cpu.end_call();
        match result {
            Ok(user) => Ok(PluginUser {
                store,
                plugin,
                user,
                conn,
                courier,
                plugin_index,
                class,
            }),
            Err(err) => Err(CreateError::Trapped(trap_message(&store, &err))),
        }
    }

    /// Runs `on-start`.
    pub async fn on_start(&mut self) -> Result<TaskOutcome, UserError> {
        let result = guest_call!(self, call_on_start);
        self.finish_call(result.map(outcome))
    }

    /// Runs task `task`; afterwards every response without a verdict gets the default rule.
    pub async fn run_task(&mut self, task: u32) -> Result<TaskOutcome, UserError> {
        let result = guest_call!(self, call_run_task, task);
        self.finish_call(result.map(outcome))
    }

    /// For sequential classes: the plugin's choice of the next task.
    pub async fn next_task(&mut self) -> Result<Option<u32>, UserError> {
        let result = guest_call!(self, call_next_task);
        self.finish_call(result)
    }

    /// For custom wait times: the plugin's next wait in milliseconds.
    pub async fn next_wait_ms(&mut self) -> Result<u32, UserError> {
        let result = guest_call!(self, call_next_wait_ms);
        self.finish_call(result)
    }

    /// Runs `on-stop`, then drops the user's resource.
    pub async fn on_stop(mut self) -> Result<(), UserError> {
        let result = guest_call!(self, call_on_stop);
        self.finish_call(result)?;
        let drop = self.user.resource_drop_async(&mut self.store);
        let _ = courier::drive(&self.courier, &mut self.conn, drop).await;
        Ok(())
    }

    /// Settles pending verdicts; a trap becomes a `UserError` carrying a clear message.
    fn finish_call<T>(&mut self, result: wasmtime::Result<T>) -> Result<T, UserError> {
        let state = self.store.data_mut();
        state.cpu.end_call();
        state.settle_pending();
        result.map_err(|err| UserError::Trapped(trap_message(&self.store, &err)))
    }
}

enum CreateError {
    PoolFull,
    Trapped(String),
    Other(String),
}

impl CreateError {
    fn into_user_error(self) -> UserError {
        match self {
            CreateError::PoolFull => UserError::Create("the instance pool is full".into()),
            CreateError::Trapped(m) => UserError::Trapped(m),
            CreateError::Other(m) => UserError::Create(m),
        }
    }
}

/// One line saying why the guest stopped: its panic message, the CPU budget, the memory cap,
/// or the trap itself.
fn trap_message(store: &Store<UserState>, err: &wasmtime::Error) -> String {
    if let Some(budget) = err.downcast_ref::<BudgetExceeded>() {
        return budget.to_string();
    }
    let state = store.data();
    let text = format!("{err:#}");
    if text.contains("forcing trap when growing memory") || text.contains("memory minimum size") {
        return format!(
            "the plugin exceeded its memory cap of {} MiB",
            state.env.memory_cap >> 20
        );
    }
    if let Some(panic) = state.last_panic() {
        return format!("the plugin panicked: {panic}");
    }
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("the plugin trapped: {trap}"),
        None => format!("the plugin failed: {}", text.lines().next().unwrap_or("")),
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

/// Calls `describe()` in a throwaway store.
pub(super) async fn describe(
    engine: &Engine,
    pre: &PluginPre<UserState>,
    name: &str,
) -> Result<Vec<UserClass>, PluginError> {
    let env = Arc::new(RunEnv {
        client: crate::client::ClientConfig {
            target: Arc::new(
                crate::client::Target::parse("http://127.0.0.1:9")
                    .map_err(|e| PluginError::Engine(e.to_string()))?,
            ),
            default_headers: Arc::default(),
            timeout: std::time::Duration::from_secs(1),
            tls: None,
        },
        config_values: Default::default(),
        data: Default::default(),
        seed: 0,
        cpu_budget: super::DEFAULT_CPU_BUDGET,
        memory_cap: super::DEFAULT_MEMORY_CAP,
        trace: false,
    });
    let mut state = UserState::new(env, Arc::new(Shard::default()), u64::MAX);
    state.table = ResourceTable::new();
    let mut store = new_store(engine, state);
    let failed = |why: String| PluginError::Describe {
        name: name.to_string(),
        why,
    };
    let plugin = pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| failed(format!("{e:#}")))?;
    store.data_mut().cpu.start_call();
    let classes = plugin
        .perfhost_plugin_behaviour()
        .call_describe(&mut store)
        .await
        .map_err(|e| failed(trap_message(&store, &e)))?;
    if classes.is_empty() {
        return Err(failed("it declares no user class".into()));
    }
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
    Ok(out)
}
