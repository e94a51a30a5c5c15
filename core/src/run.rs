//! A run in two steps. [`prepare`] checks the plan's memory, loads the plugins and their
//! classes, reads the data and waits for `start_at`; the caller then brings up what surrounds
//! the run (the target, a profiler, a metrics listener) and [`execute`] runs the engine against
//! the target and builds the result.

use std::sync::Arc;
use std::time::Duration;

use crate::client::{ClientConfig, ClientError};
use crate::control::RunControl;
use crate::engine::{self, ClassError, StopHandle, Workload};
use crate::events::Events;
use crate::plan::{format_size, FieldError, Plan, Source, Target};
use crate::plugin::data::{DataError, DataSets};
use crate::plugin::{PluginError, PluginSet, PluginSpec, RunEnv, RuntimeOptions};
use crate::result::{PlanSummary, RunMeta, RunResult, ShardMeta, SCHEMA};
use crate::stats::live::LiveBoard;
use crate::stats::HistoryPoint;

/// Why a run could not start (nothing was sent).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A plugin could not be loaded.
    #[error("{0}")]
    Plugin(#[from] PluginError),
    /// A `--data` set could not be loaded.
    #[error("{0}")]
    Data(#[from] DataError),
    /// The classes asked for cannot run (unknown class, weights).
    #[error("{0}")]
    Classes(#[from] ClassError),
    /// A plugin, class or weight problem pinned to the scenario line it came from.
    #[error("{0}")]
    Scenario(#[from] FieldError),
    /// The HTTP client could not be set up (credentials, TLS).
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The target does not speak the HTTP version asked for (`--http-version 2`).
    #[error("{0}")]
    Protocol(String),
    /// A threshold's `class=` names a class that does not run.
    #[error("threshold `{text}` names the class `{class}`, which does not run here (classes: {known}) — fix the name after class=")]
    ThresholdClass {
        /// The threshold as written.
        text: String,
        /// The class it names.
        class: String,
        /// The classes that run, comma-separated.
        known: String,
    },
    /// The run would need more memory than the machine has available (no `--force`).
    #[error("{users} users need about {} of memory ({} per user, {detail}), but this machine has {} available — lower -u, or pass --force to run anyway", format_size(*.needed as usize), format_size(PER_USER_BYTES as usize), format_size(*.available as usize))]
    Memory {
        /// The most users alive at once.
        users: usize,
        /// Estimated memory of the run, in bytes.
        needed: u64,
        /// Memory available on the machine, in bytes.
        available: u64,
        /// What the plugin instances add.
        detail: String,
    },
    /// Loading took past the `--start-at` barrier: the run did not start.
    #[error("{who} was ready {late_s:.2} s after --start-at {at}: nothing was sent — give a later --start-at (loading and compiling took longer than the time left)")]
    Barrier {
        /// The shard (`shard 2/8`) or `this run`.
        who: String,
        /// The `--start-at` time, `YYYY-mm-ddTHH:MM:SSZ`.
        at: String,
        /// Seconds it was ready after that time.
        late_s: f64,
    },
}

/// Host memory one virtual user may cost: 24 KiB measured per idle `auditor_user` user
/// (docs/benchmarks.md), plus its socket's kernel buffers and a response in flight — taken
/// at 64 KiB so that a plan that passes the check does fit.
pub const PER_USER_BYTES: u64 = 64 << 10;
/// One plugin instance (up to 500 users of a class): a Rust behaviour's linear memory, Store
/// and tables measured at ~2 MiB; 8 MiB leaves room for heavier plugins.
pub const PER_INSTANCE_BYTES: u64 = 8 << 20;

/// What a plugin instance costs besides its linear memory: its Store, resource table and the
/// fiber its guest code runs on (touched part).
pub const INSTANCE_OVERHEAD_BYTES: u64 = 1 << 20;

/// Refuses a plan whose users cannot fit in the machine's available memory (unless `--force`),
/// before any plugin is loaded: users sharing instances of the usual size.
pub fn check_memory(plan: &Plan) -> Result<(), RunError> {
    let users = plan.max_users() as u64;
    let detail = format!(
        "{} per plugin instance",
        format_size(PER_INSTANCE_BYTES as usize)
    );
    fits(plan, instance_memory(users, plan.workers as u64), detail)
}

/// Plugin instances' memory for `users` on `workers` threads: a class's users share instances
/// per worker, at least one per worker, one per 500 users.
fn instance_memory(users: u64, workers: u64) -> u64 {
    (users.div_ceil(crate::plugin::GROUP_SIZE as u64) + workers).saturating_mul(PER_INSTANCE_BYTES)
}

/// What the engine plans `users` to need on `workers` threads: the estimate `--force`
/// overrides (also a scheduler's memory request for a shard).
pub fn planned_memory(users: u64, workers: u64) -> u64 {
    users
        .saturating_mul(PER_USER_BYTES)
        .saturating_add(instance_memory(users, workers))
}

/// The same with the loaded plugins' own numbers: how many users share an instance (one, for
/// a sync plugin) and what a fresh instance measured after `describe()` (a Python component's
/// interpreter is tens of MiB).
pub fn check_plugin_memory(
    plan: &Plan,
    set: &PluginSet,
    classes: &[engine::ClassSlot],
) -> Result<(), RunError> {
    let weights: Vec<u32> = classes.iter().map(|c| c.class.weight).collect();
    let mut users_of = vec![0u64; classes.len()];
    for c in engine::assign_classes(&weights, plan.max_users()) {
        users_of[c] += 1;
    }
    let mut bytes = 0u64;
    let mut parts = Vec::new();
    for (slot, &users) in classes.iter().zip(&users_of) {
        let info = &set.plugins[slot.plugin_index];
        let per_instance = info.users_per_instance.max(1) as u64;
        let instances = users.div_ceil(per_instance) + (plan.workers as u64).min(users);
        // A shared instance grows with its users' state: never planned below the usual size.
        let fresh = info.instance_memory_bytes + INSTANCE_OVERHEAD_BYTES;
        let cost = if per_instance == 1 {
            fresh
        } else {
            fresh.max(PER_INSTANCE_BYTES)
        };
        bytes = bytes.saturating_add(instances.saturating_mul(cost));
        if users > 0 {
            parts.push(format!(
                "{} × {} instances of {}{}",
                instances,
                format_size(cost as usize),
                info.name,
                if per_instance == 1 {
                    " (one per user)"
                } else {
                    ""
                }
            ));
        }
    }
    fits(plan, bytes, parts.join(", "))
}

fn fits(plan: &Plan, instance_bytes: u64, detail: String) -> Result<(), RunError> {
    if plan.force {
        return Ok(());
    }
    let Some(available) = crate::generator::available_memory() else {
        return Ok(());
    };
    let users = plan.max_users();
    let needed = (users as u64)
        .saturating_mul(PER_USER_BYTES)
        .saturating_add(instance_bytes);
    if needed > available {
        return Err(RunError::Memory {
            users,
            needed,
            available,
            detail,
        });
    }
    Ok(())
}

/// `message` about `field`, pinned to its scenario line when the scenario set that field.
fn pinned(plan: &Plan, field: &'static str, err: RunError) -> RunError {
    let from_scenario =
        field == "weights" || plan.sources.get(field).map(|o| o.source) == Some(Source::Scenario);
    match &plan.scenario {
        Some(sc) if from_scenario => sc
            .pin(field, &err.to_string())
            .map(RunError::Scenario)
            .unwrap_or(err),
        _ => err,
    }
}

/// The plugins of a plan, loaded and described, and the classes that run.
pub async fn load_plugins(plan: &Plan) -> Result<(PluginSet, Vec<engine::ClassSlot>), RunError> {
    let specs = plan
        .plugins
        .iter()
        .map(|p| PluginSpec::resolve(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pinned(plan, "plugins", e.into()))?;
    let set = PluginSet::load(specs, RuntimeOptions::default()).await?;
    let classes = engine::select_classes(&set, &plan.classes).map_err(|e| {
        let field = e.field();
        pinned(plan, field, e.into())
    })?;
    // A class rate for a class that does not run would send nothing: refuse it too.
    for (name, _) in plan.arrivals.iter().flat_map(|a| &a.class_rates) {
        if !classes
            .iter()
            .any(|c| c.class.name.eq_ignore_ascii_case(name))
        {
            let known: Vec<&str> = classes.iter().map(|c| c.class.name.as_str()).collect();
            let err = ClassError::UnknownRate {
                name: name.clone(),
                known: known.join(", "),
            };
            return Err(pinned(plan, "rates", err.into()));
        }
    }
    // A misspelt class would make its threshold measure nothing: refuse it before the run.
    for t in &plan.thresholds {
        if let crate::plan::ThresholdScope::Class { name } = &t.scope {
            if !classes
                .iter()
                .any(|c| c.class.name.eq_ignore_ascii_case(name))
            {
                let known: Vec<&str> = classes.iter().map(|c| c.class.name.as_str()).collect();
                let err = RunError::ThresholdClass {
                    text: t.text.clone(),
                    class: name.clone(),
                    known: known.join(", "),
                };
                return Err(pinned(plan, "thresholds", err));
            }
        }
    }
    Ok((set, classes))
}

/// What a run's users are before the target is known: the plugins, the classes that run and
/// the data, checked against the machine's memory.
pub struct Prepared {
    set: PluginSet,
    classes: Vec<engine::ClassSlot>,
    data: DataSets,
}

/// What surrounds a run: the board it publishes to each second (`/metrics`, the web UI), the
/// control that steers it, and where its events go.
#[derive(Clone)]
pub struct Surroundings {
    /// Where the live numbers go each second; `None`: nobody reads them.
    pub board: Option<Arc<LiveBoard>>,
    /// Requests that steer the run.
    pub control: RunControl,
    /// Where the run's messages go.
    pub events: Events,
}

/// The plan's users, checked: the memory plan, the plugins and their classes, and the memory
/// the loaded plugins need. `prepare` starts with it; `perfhost run --dry-run` stops after it.
pub async fn check(plan: &Plan) -> Result<(PluginSet, Vec<engine::ClassSlot>), RunError> {
    check_memory(plan)?;
    let (set, classes) = load_plugins(plan).await?;
    check_plugin_memory(plan, &set, &classes)?;
    Ok((set, classes))
}

/// Everything a run needs before its target: memory, plugins, classes, data, `start_at`.
pub async fn prepare(plan: &Plan) -> Result<Prepared, RunError> {
    let (set, classes) = check(plan).await?;
    let data = DataSets::load(&plan.data)?.for_shard(plan.shard);
    if let Some(at) = plan.start_at {
        barrier(plan, at).await?;
    }
    Ok(Prepared { set, classes, data })
}

/// How long the TLS handshake (or HTTP/2 preface) that learns the target's protocol may take.
const NEGOTIATE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `prepared` against `target` to its end (or until `stop`) and builds the result (its
/// `memory` is the caller's to fill). `on_tick` sees every one-second history point and the
/// time since the start.
pub async fn execute(
    plan: &Plan,
    prepared: Prepared,
    target: Arc<Target>,
    around: Surroundings,
    stop: StopHandle,
    on_tick: impl FnMut(&HistoryPoint, Duration),
) -> Result<RunResult, RunError> {
    let Prepared { set, classes, data } = prepared;
    let mut client = ClientConfig::new(target.clone(), &plan.client)?;
    crate::client::negotiate(&mut client, NEGOTIATE_TIMEOUT)
        .await
        .map_err(RunError::Protocol)?;
    let env = Arc::new(RunEnv {
        client,
        config_values: plan.config_values.clone().into_iter().collect(),
        data,
        seed: plan.seed,
        limits: plan.limits,
        trace: plan.trace,
        redactor: Arc::new(plan.client.redactor()),
        stop: stop.clone(),
        events: around.events,
    });
    let plugins = set.plugins.clone();
    let workload = Workload {
        set: Arc::new(set),
        env,
        classes,
        live: around.board,
        control: around.control,
    };
    let outcome = engine::run(plan, workload, stop, on_tick).await;

    let seconds = outcome.duration.as_secs_f64();
    let (stats, total) = outcome.stats.endpoint_stats(seconds);
    let view = crate::stats::RunView {
        interval: &outcome.stats.all,
        class_names: &outcome.class_names,
        seconds,
    };
    let thresholds = plan
        .thresholds
        .iter()
        .map(|t| {
            let mut result = crate::stats::thresholds::evaluate(t, &view);
            result.aborted_run = outcome.aborted_by.as_deref() == Some(t.text.as_str());
            result
        })
        .collect();
    Ok(RunResult {
        schema: SCHEMA.into(),
        meta: RunMeta {
            run_name: plan.outputs.run_name.clone(),
            target: target.origin.clone(),
            perfhost_version: env!("CARGO_PKG_VERSION").into(),
            seed: plan.seed,
            start_time: outcome.started,
            end_time: outcome.ended,
            duration_s: seconds,
            interrupted: outcome.interrupted,
            aborted_by: outcome.aborted_by.clone(),
            shard: plan.shard.map(|s| ShardMeta {
                index: s.index,
                count: s.count,
                plan_hash: plan_hash(plan, &plugins),
            }),
            merged_shards: None,
        },
        plan: PlanSummary::new(plan, outcome.class_users),
        plugins,
        stats,
        total,
        failures: outcome.stats.failure_groups(),
        failure_samples: outcome.samples,
        task_errors: outcome.stats.task_error_groups(),
        denied_requests: outcome.stats.all.denied,
        stopped_classes: outcome.stopped_classes,
        classes: outcome.stats.class_stats(&outcome.class_names, seconds),
        thresholds,
        history: outcome.stats.history,
        generator: outcome.generator,
        memory: None,
        arrivals: outcome.arrivals,
    })
}

/// How late a shard may be at `--start-at` and still start (the shards' clocks and wake-ups
/// differ by less on one network).
const BARRIER_SLACK_S: f64 = 0.25;

/// Waits for `--start-at` (Unix seconds), or refuses to start when that moment has passed.
async fn barrier(plan: &Plan, at: f64) -> Result<(), RunError> {
    let now = crate::stats::unix_now();
    if now > at + BARRIER_SLACK_S {
        return Err(RunError::Barrier {
            who: plan.shard.map_or("this run".into(), |s| {
                format!("shard {}/{}", s.index, s.count)
            }),
            at: crate::plan::utc_timestamp(at),
            late_s: now - at,
        });
    }
    if at > now {
        tokio::time::sleep(Duration::from_secs_f64(at - now)).await;
    }
    Ok(())
}

/// What every shard of one plan has in common, hashed: `perfhost merge` refuses results of
/// different plans. The shard's own id, outputs and class counts are left out.
pub fn plan_hash(plan: &Plan, plugins: &[crate::plugin::PluginInfo]) -> String {
    use sha2::Digest;
    let mut summary = PlanSummary::new(plan, Default::default());
    summary.class_users.clear();
    let canonical = serde_json::json!({
        "plan": summary,
        "target": plan.target.as_ref().map(|t| format!("{}{}", t.origin, t.base_path)),
        "seed": plan.seed,
        "arrivals": format!("{:?}", plan.arrivals),
        "plugins": plugins.iter().map(|p| p.sha256.clone()).collect::<Vec<_>>(),
        "data": plan.data,
        // Two attempts of one sharded run are not one run.
        "start_at": plan.start_at,
    });
    let digest = sha2::Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
