//! The plugin runtime: loads behaviour components (a file or a built-in name), checks that they
//! speak our contract, compiles them once (cached on disk), and instantiates one sandboxed
//! Store per group of virtual users: the users of a group are concurrent tasks in one instance
//! (component-model async). A plugin of the sync world — or one whose own canonical options
//! make a call block — gets one instance per user instead.

pub mod abi;
pub mod bindings;
pub mod builtin;
mod cache;
pub mod data;
mod host_impl;
mod host_sync;
pub mod state;
mod user;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::SandboxLimits;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

pub use state::RunEnv;
pub use user::{Group, GroupError, Instance, TaskOutcome, UserHandle, GROUP_SIZE};

use bindings::sync::PluginSyncPre;
use bindings::{
    PluginPre, COMPATIBLE_VERSIONS, CONTRACT_PACKAGE, CONTRACT_VERSION, KNOWN_TOOLCHAINS,
    SYNC_VERSIONS, WASMTIME_VERSION,
};
use state::GroupState;

/// Linear memory of one plugin instance (a group of up to `GROUP_SIZE` users), at most: 500
/// users of a Rust behaviour use ~20 MiB, so 1 GiB leaves room for data-heavy plugins while a
/// runaway allocation is still stopped long before it threatens the machine.
pub const DEFAULT_MEMORY_CAP: usize = 1 << 30;
/// Guest CPU time a plugin may run without a break (without calling the host) before it is
/// stopped: far above any honest task (JSON building takes microseconds), short enough that a
/// stuck plugin is named within a second.
pub const DEFAULT_CPU_BUDGET: Duration = Duration::from_secs(1);
/// The sandbox limits when none are given.
pub const DEFAULT_LIMITS: SandboxLimits = SandboxLimits {
    cpu_budget: DEFAULT_CPU_BUDGET,
    memory_cap: DEFAULT_MEMORY_CAP,
};
/// Epoch tick: how often a running guest is checked against its CPU budget and yields, so
/// the other users of its worker — other classes too — get their turn. A spinning plugin beside
/// `burst_user` added 10 ms to BurstUser's p99 at a 10 ms tick and ~1 ms at 1 ms
/// (docs/benchmarks.md, "A spinning plugin"); the ticker thread waking 1,000 times a second
/// costs far less than that.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Problems loading a plugin; each message names the plugin and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{0}")]
    Read(#[from] crate::input::InputError),
    #[error("unknown plugin `{0}`: give a .wasm file or a built-in name ({names})", names = builtin::all_names())]
    UnknownBuiltin(String),
    #[error("{0} is not a WebAssembly file (bad magic bytes) — give a component built for wasm32-wasip2")]
    NotWasm(String),
    #[error("{0} is a Locust file: perfhost runs user classes compiled to WebAssembly components — port them with the SDK (docs/plugins.md), or start from the built-ins ({names})", names = builtin::names(&[builtin::Role::Default, builtin::Role::General]).join(", "))]
    LocustFile(String),
    #[error("{0} is a core WebAssembly module, not a component — build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)")]
    CoreModule(String),
    #[error("{name} is not a valid WebAssembly component for this host (wasmtime {WASMTIME_VERSION}): {why} — rebuild it with a toolchain known to load here: {KNOWN_TOOLCHAINS}")]
    Invalid { name: String, why: String },
    #[error("{name} was built for {found}, but this perfhost speaks {CONTRACT_PACKAGE}@{} (world `plugin`) and @{} (world `plugin-sync`) — rebuild the plugin against this perfhost's wit/", COMPATIBLE_VERSIONS.join(" … "), SYNC_VERSIONS.join(" … "))]
    Version { name: String, found: String },
    #[error("{name} does not export {CONTRACT_PACKAGE}/behaviour or behaviour-sync (it exports {exports}) — it is not a perfhost plugin: build it for the world `plugin` (async) or `plugin-sync` in wit/")]
    NotAPlugin { name: String, exports: String },
    #[error("{name} needs imports this sandbox does not provide ({why}) — plugins may import only {CONTRACT_PACKAGE}@{CONTRACT_VERSION} and WASI 0.2 (cli, clocks, random, io; filesystem and sockets are linked but have nothing to reach); build without e.g. wasi:http")]
    Imports { name: String, why: String },
    #[error("{name}: describe() failed: {why}")]
    Describe { name: String, why: String },
    #[error("{name}: {why}")]
    Unusable { name: String, why: String },
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

/// How a user waits between tasks (the contract's `wait-time`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum WaitTime {
    Between { min_ms: u32, max_ms: u32 },
    Constant { ms: u32 },
    ConstantPacing { ms: u32 },
    ConstantThroughput { per_second: f64 },
    Custom,
}

/// A user class as the plugin describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserClass {
    pub name: String,
    pub weight: u32,
    pub wait: WaitTime,
    pub tasks: Vec<TaskInfo>,
    pub sequential: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub name: String,
    pub weight: u32,
}

/// The contract's two worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `plugin`: async functions, many users per instance.
    #[default]
    Plugin,
    /// `plugin-sync`: plain functions, one user per instance (since 0.2.2).
    PluginSync,
}

impl World {
    pub fn name(self) -> &'static str {
        match self {
            World::Plugin => "plugin",
            World::PluginSync => "plugin-sync",
        }
    }
}

/// What a loaded plugin is, for reports and `perfhost plugin inspect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginInfo {
    /// File stem or built-in name.
    pub name: String,
    /// Where it came from: a path or `built-in`.
    pub source: String,
    /// SHA-256 of the component bytes.
    pub sha256: String,
    pub contract: String,
    pub classes: Vec<UserClass>,
    pub imports: Vec<String>,
    pub size_bytes: usize,
    /// The compiled artefact came from the on-disk cache (no compilation this time).
    pub from_cache: bool,
    /// The world it was built for.
    #[serde(default)]
    pub world: World,
    /// Contract calls its own canonical options make synchronous (`send`, `run-task`, …): in
    /// the async world these make it run one user per instance.
    #[serde(default)]
    pub sync_calls: Vec<String>,
    /// Users sharing one instance at most: `GROUP_SIZE`, or 1 for a sync plugin.
    #[serde(default = "default_users_per_instance")]
    pub users_per_instance: usize,
    /// Linear memory of one fresh instance after `describe()`, in bytes.
    #[serde(default)]
    pub instance_memory_bytes: u64,
    /// Time to compile the component (0 when it came from the cache), in milliseconds.
    #[serde(default)]
    pub load_ms: f64,
}

fn default_users_per_instance() -> usize {
    GROUP_SIZE
}

/// A compiled plugin, ready to instantiate: its world decides the bindings.
pub(crate) enum Pre {
    Async(PluginPre<GroupState>),
    Sync(PluginSyncPre<GroupState>),
}

/// A plugin as given on the command line.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    pub source: String,
    pub bytes: Arc<Vec<u8>>,
}

impl PluginSpec {
    /// `auditor_user` (built-in) or a path to a `.wasm` file.
    pub fn resolve(arg: &str) -> Result<Self, PluginError> {
        let path = Path::new(arg);
        if arg.ends_with(".py") {
            return Err(PluginError::LocustFile(arg.to_string()));
        }
        let looks_like_path = arg.contains('/') || arg.ends_with(".wasm") || path.exists();
        if !looks_like_path {
            let bytes =
                builtin::bytes(arg).ok_or_else(|| PluginError::UnknownBuiltin(arg.to_string()))?;
            return Ok(PluginSpec {
                name: arg.to_string(),
                source: "built-in".into(),
                bytes: Arc::new(bytes.to_vec()),
            });
        }
        let bytes = crate::input::read(path, crate::input::Kind::Plugin)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| arg.to_string());
        Ok(PluginSpec {
            name,
            source: arg.to_string(),
            bytes: Arc::new(bytes),
        })
    }
}

/// Settings of the runtime (the sandbox limits travel in `RunEnv`).
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Compiled-component cache folder; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: cache::default_dir(),
        }
    }
}

/// The loaded plugins, ready to instantiate groups of users.
pub struct PluginSet {
    pub plugins: Vec<PluginInfo>,
    pub(crate) engine: Engine,
    pub(crate) pres: Vec<Pre>,
    _ticker: EpochTicker,
}

impl PluginSet {
    /// Loads, validates and describes every plugin.
    pub async fn load(
        specs: Vec<PluginSpec>,
        options: RuntimeOptions,
    ) -> Result<Self, PluginError> {
        let engine = new_engine()?;
        let (pres, plugins) = compile_all(&engine, &specs, &options).await?;
        Ok(PluginSet {
            plugins,
            _ticker: EpochTicker::start(&engine),
            engine,
            pres,
        })
    }

    /// How many users of plugin `index` share one instance at most.
    pub fn users_per_instance(&self, index: usize) -> usize {
        self.plugins
            .get(index)
            .map_or(GROUP_SIZE, |p| p.users_per_instance)
    }
}

async fn compile_all(
    engine: &Engine,
    specs: &[PluginSpec],
    options: &RuntimeOptions,
) -> Result<(Vec<Pre>, Vec<PluginInfo>), PluginError> {
    let mut pres = Vec::new();
    let mut infos = Vec::new();
    for spec in specs {
        check_header(&spec.name, &spec.bytes)?;
        let started = std::time::Instant::now();
        let (component, from_cache) = cache::load_or_compile(engine, &spec.bytes, options)
            .map_err(|why| PluginError::Invalid {
                name: spec.name.clone(),
                why: why.to_string(),
            })?;
        let load_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (contract, world) = check_contract(engine, &spec.name, &component)?;
        let imports_error = |e: wasmtime::Error| PluginError::Imports {
            name: spec.name.clone(),
            why: format!("{e:#}"),
        };
        let not_a_plugin = |e: wasmtime::Error| {
            PluginError::Unusable {
            name: spec.name.clone(),
            why: format!("its exports do not match the contract's world `{}`: {e:#} — rebuild it against this perfhost's wit/", world.name()),
        }
        };
        let pre = match world {
            World::Plugin => {
                let linker = linker(engine).map_err(|e| PluginError::Engine(e.to_string()))?;
                let pre = linker.instantiate_pre(&component).map_err(imports_error)?;
                Pre::Async(PluginPre::new(pre).map_err(not_a_plugin)?)
            }
            World::PluginSync => {
                let linker = sync_linker(engine).map_err(|e| PluginError::Engine(e.to_string()))?;
                let pre = linker.instantiate_pre(&component).map_err(imports_error)?;
                Pre::Sync(PluginSyncPre::new(pre).map_err(not_a_plugin)?)
            }
        };
        // Decided from the component's own canonical options, not from the world it claims
        // (in the sync world every call is sync by definition).
        let sync_calls = match world {
            World::Plugin => abi::sync_calls(&spec.bytes),
            World::PluginSync => Vec::new(),
        };
        let users_per_instance = if world == World::PluginSync || !sync_calls.is_empty() {
            1
        } else {
            GROUP_SIZE
        };
        if world == World::Plugin && !sync_calls.is_empty() {
            tracing::warn!(
                "plugin {}: {} made synchronously by the component's own ABI although it targets the async world — each user gets its own instance (more memory per user); rebuild without the --sync option of its bindings generator to share instances",
                spec.name,
                sync_calls.join(", ")
            );
        }
        let (classes, instance_memory_bytes) = user::describe(engine, &pre, &spec.name).await?;
        let imports = component
            .component_type()
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        infos.push(PluginInfo {
            name: spec.name.clone(),
            source: spec.source.clone(),
            sha256: hex(&Sha256::digest(&spec.bytes[..])),
            contract,
            classes,
            imports,
            size_bytes: spec.bytes.len(),
            from_cache,
            world,
            sync_calls,
            users_per_instance,
            instance_memory_bytes,
            load_ms,
        });
        pres.push(pre);
    }
    Ok((pres, infos))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Tells a broken file, a core module and a component apart before compiling.
fn check_header(name: &str, bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(PluginError::NotWasm(name.to_string()));
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Err(PluginError::CoreModule(name.to_string())),
        _ => Ok(()),
    }
}

/// Finds the behaviour export (of either world) and checks its version; returns the contract
/// and the world it was built for.
fn check_contract(
    engine: &Engine,
    name: &str,
    component: &Component,
) -> Result<(String, World), PluginError> {
    let worlds = [
        (
            format!("{CONTRACT_PACKAGE}/behaviour@"),
            World::Plugin,
            &COMPATIBLE_VERSIONS[..],
        ),
        (
            format!("{CONTRACT_PACKAGE}/behaviour-sync@"),
            World::PluginSync,
            &SYNC_VERSIONS[..],
        ),
    ];
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(e, _)| e.to_string()).collect();
    let mut other = None;
    for export in &exports {
        for (prefix, world, versions) in &worlds {
            if let Some(version) = export.strip_prefix(prefix.as_str()) {
                if versions.contains(&version) {
                    return Ok((format!("{CONTRACT_PACKAGE}@{version}"), *world));
                }
                other = Some(format!(
                    "{CONTRACT_PACKAGE}@{version} (world {})",
                    world.name()
                ));
            }
        }
    }
    match other {
        Some(found) => Err(PluginError::Version {
            name: name.to_string(),
            found,
        }),
        None => Err(PluginError::NotAPlugin {
            name: name.to_string(),
            exports: if exports.is_empty() {
                "nothing".into()
            } else {
                exports.join(", ")
            },
        }),
    }
}

fn linker(engine: &Engine) -> wasmtime::Result<Linker<GroupState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    bindings::Plugin::add_to_linker::<GroupState, HasSelf<GroupState>>(&mut linker, |state| state)?;
    Ok(linker)
}

fn sync_linker(engine: &Engine) -> wasmtime::Result<Linker<GroupState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    bindings::sync::PluginSync::add_to_linker::<GroupState, HasSelf<GroupState>>(
        &mut linker,
        |state| state,
    )?;
    Ok(linker)
}

/// The engine: component-model async (the users of a group are concurrent tasks in one
/// instance) and epoch interruption (CPU budget). Instances are few (one per group), so they
/// are allocated on demand with wasmtime's default memory reservation.
fn new_engine() -> Result<Engine, PluginError> {
    let mut config = Config::new();
    config.wasm_component_model_async(true);
    config.concurrency_support(true);
    config.epoch_interruption(true);
    // 256 KiB of wasm stack is far more than a behaviour's call depth needs (JSON building
    // and the SDK's futures measured under 16 KiB) and stops runaway recursion early.
    config.max_wasm_stack(256 << 10);
    // The fiber an instance's guest code runs on must hold the wasm stack plus the host
    // frames of a guest→host call; wasmtime requires it to exceed `max_wasm_stack`. One per
    // instance (not per user), so its size barely shows in memory per user.
    config.async_stack_size(512 << 10);
    Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))
}

/// Advances the engine's epoch every tick, so running guests get checked and yield.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let _ = std::thread::Builder::new()
            .name("perfhost-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            });
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
