//! `perfhost bench`: the cost of the sandbox. Runs the same behaviour — verify in a loop with no
//! wait, the bodies and the response check of the Auditor plugins — once as WASM users
//! (`bench_verify` built-in) and once as native Rust users using the same client, statistics
//! and body building, and prints host CPU µs per request and RSS per user for each.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::Method;
use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::client::{ClientConfig, Connection, OutgoingRequest, Target};
use crate::engine::{self, EngineOptions, Live, StopHandle};
use crate::exit;
use crate::plugin::data::DataSets;
use crate::plugin::state::user_seed;
use crate::plugin::{Group, PluginSet, PluginSpec, RunEnv, RuntimeOptions, UserHandle, GROUP_SIZE};
use crate::report::process_cpu;
use crate::stats::{RequestRecord, Shards};

/// Options of `perfhost bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// User counts to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub users: Vec<usize>,
    /// How long each measurement runs.
    #[arg(long, value_parser = crate::config::parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Target (default: a built-in demo server started for the benchmark). Loopback only.
    #[arg(short = 'H', long = "host")]
    pub host: Option<String>,
    /// Users instantiated for the idle-RSS measurement.
    #[arg(long = "idle-users", default_value_t = 1000)]
    pub idle_users: usize,
}

/// One measured row.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub kind: &'static str,
    pub users: usize,
    pub requests: u64,
    pub failures: u64,
    pub seconds: f64,
    pub cpu: Duration,
}

impl Measurement {
    pub fn cpu_us_per_request(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        self.cpu.as_secs_f64() * 1e6 / self.requests as f64
    }
}

/// This process's resident set size in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn client_config(target: &Arc<Target>) -> ClientConfig {
    ClientConfig {
        target: target.clone(),
        default_headers: Arc::default(),
        timeout: Duration::from_secs(30),
        tls: None,
    }
}

fn run_env(target: &Arc<Target>) -> Arc<RunEnv> {
    Arc::new(RunEnv {
        client: client_config(target),
        config_values: Default::default(),
        data: DataSets::default(),
        seed: 1,
        cpu_budget: crate::plugin::DEFAULT_CPU_BUDGET,
        memory_cap: crate::plugin::DEFAULT_MEMORY_CAP,
        trace: false,
    })
}

fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// WASM users: the real engine with the `bench_verify` plugin.
pub async fn measure_wasm(
    set: Arc<PluginSet>,
    target: &Arc<Target>,
    users: usize,
    duration: Duration,
) -> Measurement {
    let classes = engine::select_classes(&set, &[]).unwrap_or_default();
    let options = EngineOptions {
        users,
        spawn_rate: 1e6,
        stages: Vec::new(),
        run_time: Some(duration),
        iterations: None,
        stop_timeout: Duration::from_secs(5),
        seed: 1,
        reset_stats: false,
        workers: workers(),
    };
    let cpu = process_cpu();
    let outcome = engine::run(
        set,
        run_env(target),
        classes,
        options,
        StopHandle::default(),
        Arc::new(Live::default()),
        |_, _| {},
    )
    .await;
    let cpu = process_cpu().saturating_sub(cpu);
    let total = outcome.stats.all.total();
    Measurement {
        kind: "wasm",
        users,
        requests: total.requests,
        failures: total.failures,
        seconds: outcome.duration.as_secs_f64(),
        cpu,
    }
}

/// Native users: the same loop written in Rust, on the same client and statistics, spread over
/// one current-thread runtime per core like the engine's workers.
pub fn measure_native(target: &Arc<Target>, users: usize, duration: Duration) -> Measurement {
    let workers = workers();
    let shards = Shards::new(workers);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let cpu = process_cpu();
    let mut threads = Vec::new();
    for w in 0..workers {
        let (shards, stop, target) = (shards.clone(), stop.clone(), target.clone());
        let ids: Vec<usize> = (w..users).step_by(workers).collect();
        threads.push(std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let mut set = tokio::task::JoinSet::new();
                for id in ids {
                    let (shard, stop, target) = (shards.0[w].clone(), stop.clone(), target.clone());
                    set.spawn(async move { native_user(id as u64, &target, &shard, &stop).await });
                }
                while set.join_next().await.is_some() {}
            });
        }));
    }
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let cpu = process_cpu().saturating_sub(cpu);
    let total = shards.take_all().total();
    Measurement {
        kind: "native",
        users,
        requests: total.requests,
        failures: total.failures,
        seconds: started.elapsed().as_secs_f64(),
        cpu,
    }
}

async fn native_user(
    id: u64,
    target: &Arc<Target>,
    shard: &crate::stats::Shard,
    stop: &AtomicBool,
) {
    let mut conn = Connection::new(client_config(target));
    let mut rng = Pcg64Mcg::seed_from_u64(user_seed(1, id, 1));
    let content_type = (CONTENT_TYPE, HeaderValue::from_static("application/json"));
    while !stop.load(Ordering::Relaxed) {
        let body = auditor_data::verify_body_with(
            &mut |lo, hi| lo + (rng.next_u64() % (hi - lo) as u64) as usize,
            3,
            auditor_data::STANDARD,
        );
        let Ok(uri) = conn.target().resolve("/verify") else {
            return;
        };
        let headers: Vec<(HeaderName, HeaderValue)> = vec![content_type.clone()];
        let request = OutgoingRequest {
            method: Method::POST,
            uri,
            headers,
            body: Bytes::from(body),
            timeout: None,
            follow_redirects: true,
        };
        let began = Instant::now();
        let (latency, size, error) = match conn.send(request).await {
            Ok(resp) => {
                let verdict = match resp.status.as_u16() {
                    200 => auditor_data::check_verify_body(&resp.body).err(),
                    status => Some(format!("HTTP {status}")),
                };
                (resp.latency, resp.body.len() as u64, verdict)
            }
            Err(err) => (began.elapsed(), 0, Some(err.to_string())),
        };
        shard.record(
            &RequestRecord {
                method: "POST",
                name: "/verify (bench)",
                latency_us: latency.as_micros() as u64,
                content_bytes: size,
                error: error.as_deref(),
            },
            None,
        );
    }
}

/// RSS per idle WASM user: create `count` users (constructor run) in groups of up to
/// `GROUP_SIZE` per instance, as the engine does; measure; drop.
pub async fn idle_rss_per_user(set: &PluginSet, target: &Arc<Target>, count: usize) -> Option<f64> {
    let env = run_env(target);
    let shard = Arc::new(crate::stats::Shard::default());
    let before = rss_kib();
    let mut groups = Vec::new();
    let mut created = 0;
    while created < count {
        let size = (count - created).min(GROUP_SIZE);
        let mut group = Group::create(set, 0, groups.len() as u64, env.clone(), shard.clone())
            .await
            .ok()?;
        let first = created as u64;
        group
            .run(async |accessor, plugin| {
                for id in first..first + size as u64 {
                    UserHandle::create(accessor, plugin, 0, id).await?;
                }
                Ok(())
            })
            .await
            .ok()?;
        groups.push(group);
        created += size;
    }
    let after = rss_kib();
    drop(groups);
    Some(after.saturating_sub(before) as f64 / count as f64)
}

/// The CLI entry.
pub fn main(args: BenchArgs) -> u8 {
    let runtime = match crate::commands::run::control_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let max_users = args
        .users
        .iter()
        .copied()
        .max()
        .unwrap_or(100)
        .max(args.idle_users);
    crate::commands::run::raise_fd_limit(max_users);
    runtime.block_on(async {
        let demo = match &args.host {
            Some(_) => None,
            None => match crate::commands::run::DemoChild::start() {
                Ok(child) => Some(child),
                Err(err) => {
                    eprintln!("error: cannot start the built-in demo server: {err}");
                    return exit::UNREACHABLE;
                }
            },
        };
        let url = args.host.clone().or_else(|| demo.as_ref().map(|d| d.url.clone())).unwrap_or_default();
        let target = match Target::parse(&url) {
            Ok(t) => Arc::new(t),
            Err(err) => {
                eprintln!("error: {err}");
                return exit::USAGE;
            }
        };
        if crate::client::probe(&target, Duration::from_secs(5)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let spec = match PluginSpec::resolve("bench_verify") {
            Ok(spec) => spec,
            Err(err) => {
                eprintln!("error: {err}");
                return exit::USAGE;
            }
        };
        let set = match PluginSet::load(vec![spec], RuntimeOptions::default()).await {
            Ok(set) => Arc::new(set),
            Err(err) => {
                eprintln!("error: {err}");
                return exit::USAGE;
            }
        };
        println!("perfhost bench: verify loop (3 sources, response checked) against {url}, {} per run, {} cores", crate::config::format_duration(args.duration), workers());
        println!("{:<8} {:>6} {:>10} {:>9} {:>10} {:>14}", "kind", "users", "requests", "failures", "req/s", "CPU µs/req");
        let mut rows = Vec::new();
        for &users in &args.users {
            let native = {
                let target = target.clone();
                let duration = args.duration;
                tokio::task::spawn_blocking(move || measure_native(&target, users, duration)).await.ok()
            };
            let wasm = measure_wasm(set.clone(), &target, users, args.duration).await;
            for m in native.into_iter().chain(std::iter::once(wasm)) {
                println!(
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
        for pair in rows.chunks(2) {
            if let [native, wasm] = pair {
                println!("wasm / native at {} users: {:.2}x CPU per request", wasm.users, wasm.cpu_us_per_request() / native.cpu_us_per_request().max(1e-9));
            }
        }
        match idle_rss_per_user(&set, &target, args.idle_users).await {
            Some(kib) => println!("idle RSS per WASM user ({} users instantiated): {kib:.1} KiB", args.idle_users),
            None => println!("idle RSS per WASM user: could not instantiate {} users", args.idle_users),
        }
        drop(demo);
        exit::OK
    })
}
