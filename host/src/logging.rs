//! Logging: tracing to stderr, with a level a command sets once its plan is resolved.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the log filter once the plan's level is known (`-L/--loglevel`, `log-level` in
/// perfhost.toml, `PERFHOST_LOG_LEVEL`).
static LOG_FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Whether the level set is `debug` or `trace` (a failure's causes are shown then).
static DEBUG: AtomicBool = AtomicBool::new(false);

/// Logs go to stderr at `info` until a command sets its level; `PERFHOST_LOG` (a tracing
/// filter such as `perfhost=debug`) overrides every level.
pub fn init() {
    let (filter, handle) = reload::Layer::new(log_filter("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = LOG_FILTER.set(handle);
    }
}

fn log_filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_env("PERFHOST_LOG").unwrap_or_else(|_| EnvFilter::new(level))
}

/// Sets the log level (`trace`, `debug`, `info`, `warn`, `error` or `off`).
pub fn set_level(level: &str) {
    DEBUG.store(matches!(level, "debug" | "trace"), Ordering::Relaxed);
    if let Some(handle) = LOG_FILTER.get() {
        let _ = handle.reload(log_filter(level));
    }
}

/// Whether the level set is `debug` (or `trace`).
pub fn is_debug() -> bool {
    DEBUG.load(Ordering::Relaxed)
}
