//! `perfhost plugin bench [PLUGIN]`: the cost of the sandbox, for plugin authors — host CPU µs
//! per request and idle RSS per user of any plugin; for the built-ins `bench_verify` and
//! `http_get`, beside native Rust users doing the same work on the same client (measurements
//! in `crate::plugin_tools::overhead`).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::exit;
use crate::failure::Failure;
use crate::plugin_tools::overhead::{
    idle_rss_per_user, measure_native, measure_wasm, workers, NativeTwin,
};
use perfhost_core::plan::{format_duration, Target};
use perfhost_core::plugin::{PluginSet, PluginSpec, RuntimeOptions};
use perfhost_demo::DemoChild;

/// Options of `perfhost plugin bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct PluginBenchArgs {
    /// The plugin to measure: a .wasm file or a built-in name. `bench_verify` (the default) and
    /// `http_get` are also run as native Rust users for the WASM/native ratio.
    #[arg(default_value = "bench_verify")]
    pub plugin: String,
    /// User counts to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub users: Vec<usize>,
    /// How long each measurement runs.
    #[arg(long, value_parser = crate::settings::parse_duration_arg, default_value = "10s")]
    pub duration: Duration,
    /// Target (default: a built-in demo server started for the benchmark). Loopback only.
    #[arg(short = 'H', long = "host")]
    pub host: Option<String>,
    /// Users instantiated for the idle-RSS measurement.
    #[arg(long = "idle-users", default_value_t = 1000)]
    pub idle_users: usize,
}

/// The CLI entry.
#[allow(clippy::too_many_lines)]
pub fn main(args: PluginBenchArgs) -> Result<u8, Failure> {
    let runtime = crate::process::control_runtime()?;
    let max_users = args
        .users
        .iter()
        .copied()
        .max()
        .unwrap_or(100)
        .max(args.idle_users);
    crate::process::raise_fd_limit(max_users);
    runtime.block_on(async {
        let demo = match &args.host {
            Some(_) => None,
            None => match DemoChild::start() {
                Ok(child) => Some(child),
                Err(err) => {
                    return Err(Failure::unreachable(format_args!(
                        "cannot start the built-in demo server: {err}"
                    ))
                    .because(&err));
                }
            },
        };
        let url = args
            .host
            .clone()
            .or_else(|| demo.as_ref().map(|d| d.url.clone()))
            .unwrap_or_default();
        let target = Arc::new(Target::parse(&url).map_err(Failure::usage)?);
        if perfhost_core::client::probe(&target, Duration::from_secs(5))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let native_twin = NativeTwin::of(&args.plugin);
        let spec = PluginSpec::resolve(&args.plugin)?;
        let set = Arc::new(PluginSet::load(vec![spec], RuntimeOptions::default()).await?);
        let what = match native_twin {
            Some(NativeTwin::BenchVerify) => {
                "bench_verify: verify loop (3 sources, response checked), WASM and native"
                    .to_string()
            }
            Some(NativeTwin::HttpGet) => {
                "http_get: GET / in a loop (body discarded), WASM and native".to_string()
            }
            None => format!("{}: its tasks with no wait", args.plugin),
        };
        crate::outln!(
            "perfhost plugin bench: {what} against {url}, {} per run, {} cores",
            format_duration(args.duration),
            workers()
        );
        crate::outln!(
            "{:<8} {:>6} {:>10} {:>9} {:>10} {:>14}",
            "kind",
            "users",
            "requests",
            "failures",
            "req/s",
            "CPU µs/req"
        );
        let mut rows = Vec::new();
        for &users in &args.users {
            let native = match native_twin {
                Some(twin) => {
                    let target = target.clone();
                    let duration = args.duration;
                    tokio::task::spawn_blocking(move || {
                        measure_native(twin, &target, users, duration)
                    })
                    .await
                    .ok()
                }
                None => None,
            };
            let wasm = measure_wasm(set.clone(), &target, users, args.duration).await;
            for m in native.into_iter().chain(std::iter::once(wasm)) {
                crate::outln!(
                    "{:<8} {:>6} {:>10} {:>9} {:>10.0} {:>14.1}",
                    m.kind,
                    m.users,
                    m.requests,
                    m.failures,
                    m.requests as f64 / m.seconds.max(1e-9),
                    m.cpu_us_per_request()
                );
                let _ = std::io::stdout().flush();
                rows.push(m);
            }
        }
        for pair in rows.chunks(2).filter(|_| native_twin.is_some()) {
            if let [native, wasm] = pair {
                crate::outln!(
                    "wasm / native at {} users: {:.2}x CPU per request",
                    wasm.users,
                    wasm.cpu_us_per_request() / native.cpu_us_per_request().max(1e-9)
                );
            }
        }
        match idle_rss_per_user(&set, &target, args.idle_users).await {
            Some(kib) => crate::outln!(
                "idle RSS per WASM user ({} users instantiated): {kib:.1} KiB",
                args.idle_users
            ),
            None => crate::outln!(
                "idle RSS per WASM user: could not instantiate {} users",
                args.idle_users
            ),
        }
        drop(demo);
        Ok(exit::OK)
    })
}
