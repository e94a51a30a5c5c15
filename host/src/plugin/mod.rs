//! The plugin runtime: loads behaviour components (a file or a built-in name), checks that they
//! speak our contract, compiles them once (cached on disk), and instantiates one sandboxed
//! Store per group of virtual users: the users of a group are concurrent tasks in one instance
//! (component-model async).

pub mod bindings;
pub mod builtin;
mod cache;
pub mod data;
mod host_impl;
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

pub use cache::{cache_hits, compiles};
pub use state::RunEnv;
pub use user::{Group, GroupError, TaskOutcome, UserHandle, GROUP_SIZE};

use bindings::{PluginPre, COMPATIBLE_VERSIONS, CONTRACT_PACKAGE, CONTRACT_VERSION};
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
    #[error("cannot read plugin {path}: {source} — check the path given to --plugin")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown plugin `{0}`: give a .wasm file or a built-in name ({names})", names = builtin::ALL.join(", "))]
    UnknownBuiltin(String),
    #[error("{0} is not a WebAssembly file (bad magic bytes) — give a component built for wasm32-wasip2")]
    NotWasm(String),
    #[error("{0} is a Locust file: perfhost runs user classes compiled to WebAssembly components — port them with the SDK (docs/plugins.md), or start from the built-ins (auditor_user, burst_user, heavy_user, http_get)")]
    LocustFile(String),
    #[error("{0} is a core WebAssembly module, not a component — build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)")]
    CoreModule(String),
    #[error("{name} is not a valid WebAssembly component: {why} — rebuild it")]
    Invalid { name: String, why: String },
    #[error("{name} was built for {found}, but this perfhost speaks {CONTRACT_PACKAGE}@{} — rebuild the plugin against this perfhost's wit/", COMPATIBLE_VERSIONS.join(" … "))]
    Version { name: String, found: String },
    #[error("{name} does not export {CONTRACT_PACKAGE}/behaviour — it is not a perfhost plugin (it must target the world `plugin` in wit/)")]
    NotAPlugin { name: String },
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
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.into(),
            source,
        })?;
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
    pub(crate) pres: Vec<PluginPre<GroupState>>,
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
}

async fn compile_all(
    engine: &Engine,
    specs: &[PluginSpec],
    options: &RuntimeOptions,
) -> Result<(Vec<PluginPre<GroupState>>, Vec<PluginInfo>), PluginError> {
    let mut pres = Vec::new();
    let mut infos = Vec::new();
    for spec in specs {
        check_header(&spec.name, &spec.bytes)?;
        let (component, from_cache) = cache::load_or_compile(engine, &spec.bytes, options)
            .map_err(|why| PluginError::Invalid {
                name: spec.name.clone(),
                why: why.to_string(),
            })?;
        let contract = check_contract(engine, &spec.name, &component)?;
        let linker = linker(engine).map_err(|e| PluginError::Engine(e.to_string()))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Imports {
                name: spec.name.clone(),
                why: format!("{e:#}"),
            })?;
        let pre = PluginPre::new(pre).map_err(|e| PluginError::NotAPlugin {
            name: format!("{} ({e})", spec.name),
        })?;
        let classes = user::describe(engine, &pre, &spec.name).await?;
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

/// Finds the behaviour export and checks its version; returns the contract it was built for.
fn check_contract(
    engine: &Engine,
    name: &str,
    component: &Component,
) -> Result<String, PluginError> {
    let prefix = format!("{CONTRACT_PACKAGE}/behaviour@");
    let ty = component.component_type();
    let mut other = None;
    for (export, _) in ty.exports(engine) {
        if let Some(version) = export.strip_prefix(&prefix) {
            if COMPATIBLE_VERSIONS.contains(&version) {
                return Ok(format!("{CONTRACT_PACKAGE}@{version}"));
            }
            other = Some(format!("{CONTRACT_PACKAGE}@{version}"));
        }
    }
    match other {
        Some(found) => Err(PluginError::Version {
            name: name.to_string(),
            found,
        }),
        None => Err(PluginError::NotAPlugin {
            name: name.to_string(),
        }),
    }
}

fn linker(engine: &Engine) -> wasmtime::Result<Linker<GroupState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    bindings::Plugin::add_to_linker::<GroupState, HasSelf<GroupState>>(&mut linker, |state| state)?;
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
