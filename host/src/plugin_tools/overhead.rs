//! The cost of the sandbox (`perfhost plugin bench`). Runs the same behaviour once as WASM users
//! (a built-in plugin) and once as native Rust users on the same client and statistics, and
//! prints host CPU µs per request and RSS per user for each. Two built-ins have a native twin:
//! `bench_verify` (verify in a loop with no wait, the bodies and the response check of the
//! Auditor plugins) and `http_get` (`GET /` in a loop, body discarded, the default verdict: the
//! plain GET of the generator comparison).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::Method;
use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::settings::RunArgs;
use perfhost_core::client::{ClientConfig, Connection, OutgoingRequest};
use perfhost_core::engine::{self, StopHandle, Workload};
use perfhost_core::generator::{process_cpu, rss_kib};
use perfhost_core::plan::seed::{self, Stream};
use perfhost_core::plan::{ClassChoice, Target};
use perfhost_core::plugin::data::DataSets;
use perfhost_core::plugin::{Group, PluginSet, RunEnv, UserHandle, DEFAULT_LIMITS};
use perfhost_core::stats::{RequestRecord, Tallies};

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

fn client_config(target: &Arc<Target>) -> ClientConfig {
    ClientConfig::plain(target.clone(), Duration::from_secs(30))
}

fn run_env(target: &Arc<Target>) -> Arc<RunEnv> {
    Arc::new(RunEnv {
        client: client_config(target),
        config_values: Default::default(),
        data: DataSets::default(),
        seed: 1,
        limits: DEFAULT_LIMITS,
        trace: false,
        redactor: Default::default(),
        stop: Default::default(),
        events: perfhost_core::events::ignore(),
    })
}

/// Worker threads of the measurement (as the engine: one per core).
pub fn workers() -> usize {
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
    // Any plugin's tasks back to back, so the figure is CPU per request, not per wait.
    let choice = ClassChoice {
        no_wait: true,
        ..ClassChoice::default()
    };
    let classes = engine::select_classes(&set, &choice).unwrap_or_default();
    let args = RunArgs {
        users: Some(users),
        spawn_rate: Some(1e6),
        run_time: Some(duration),
        stop_timeout: Some(Duration::from_secs(5)),
        seed: Some(1),
        ..Default::default()
    };
    let Ok(plan) = crate::settings::resolve_args(&args) else {
        return Measurement {
            kind: "wasm",
            users,
            requests: 0,
            failures: 0,
            seconds: 0.0,
            cpu: Duration::ZERO,
        };
    };
    let workload = Workload {
        live: None,
        set,
        env: run_env(target),
        classes,
        control: Default::default(),
    };
    let cpu = process_cpu();
    let outcome = engine::run(&plan, workload, StopHandle::default(), |_, _| {}).await;
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

/// The built-in plugins written again as native Rust users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeTwin {
    /// `bench_verify`: POST /verify with a generated body, the response checked.
    BenchVerify,
    /// `http_get` with its defaults: GET /, body discarded, success below status 400.
    HttpGet,
}

impl NativeTwin {
    /// The twin of a built-in plugin, if it has one.
    pub fn of(plugin: &str) -> Option<Self> {
        match plugin {
            "bench_verify" => Some(NativeTwin::BenchVerify),
            "http_get" => Some(NativeTwin::HttpGet),
            _ => None,
        }
    }
}

/// Native users: the same loop written in Rust, on the same client and statistics, spread over
/// one current-thread runtime per core like the engine's workers.
pub fn measure_native(
    twin: NativeTwin,
    target: &Arc<Target>,
    users: usize,
    duration: Duration,
) -> Measurement {
    let workers = workers();
    let tallies = Tallies::new(workers, Default::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let cpu = process_cpu();
    let mut threads = Vec::new();
    for w in 0..workers {
        let (tallies, stop, target) = (tallies.clone(), stop.clone(), target.clone());
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
                    let (tally, stop, target) = (tallies.tally(w), stop.clone(), target.clone());
                    set.spawn(
                        async move { native_user(twin, id as u64, &target, &tally, &stop).await },
                    );
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
    let total = tallies.take_all().total();
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
    twin: NativeTwin,
    id: u64,
    target: &Arc<Target>,
    tally: &perfhost_core::stats::Tally,
    stop: &AtomicBool,
) {
    let mut conn = Connection::new(client_config(target));
    let mut rng = Pcg64Mcg::seed_from_u64(seed::derive(1, id, Stream::UserContext));
    let content_type = (CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let (method, name, path) = match twin {
        NativeTwin::BenchVerify => (Method::POST, "/verify (bench)", "/verify"),
        NativeTwin::HttpGet => (Method::GET, "/", "/"),
    };
    while !stop.load(Ordering::Relaxed) {
        // Resolved per request, as the host does for a plugin's request.
        let Ok(uri) = conn.target().resolve(path) else {
            return;
        };
        let (headers, body): (Vec<(HeaderName, HeaderValue)>, Bytes) = match twin {
            NativeTwin::BenchVerify => {
                let body = auditor_data::verify_body_with(
                    &mut |lo, hi| lo + (rng.next_u64() % (hi - lo) as u64) as usize,
                    3,
                    auditor_data::STANDARD,
                );
                (vec![content_type.clone()], Bytes::from(body))
            }
            NativeTwin::HttpGet => (Vec::new(), Bytes::new()),
        };
        let request = OutgoingRequest {
            method: method.clone(),
            uri,
            headers,
            body,
            timeout: None,
            follow_redirects: true,
            discard_body: twin == NativeTwin::HttpGet,
        };
        let began = Instant::now();
        let (latency, size, error) = match conn.send(request).await {
            Ok(resp) => {
                let verdict = match (twin, resp.status.as_u16()) {
                    (NativeTwin::BenchVerify, 200) => {
                        auditor_data::check_verify_body(&resp.body).err()
                    }
                    (NativeTwin::HttpGet, status) if status < 400 => None,
                    (_, status) => Some(format!("HTTP {status}")),
                };
                (resp.latency, resp.body_size, verdict)
            }
            Err(err) => (began.elapsed(), 0, Some(err.to_string())),
        };
        tally.record(&RequestRecord {
            class: 0,
            method: method.as_str(),
            name,
            latency_us: latency.as_micros() as u64,
            content_bytes: size,
            error: error.as_deref(),
            lateness_us: None,
            protocol: None,
        });
    }
}

/// RSS per idle WASM user: create `count` users (constructor run) in groups of up to
/// as many per instance as the engine puts there (one, for a sync plugin); measure; drop.
pub async fn idle_rss_per_user(set: &PluginSet, target: &Arc<Target>, count: usize) -> Option<f64> {
    let env = run_env(target);
    let tally = Arc::new(perfhost_core::stats::Tally::default());
    let before = rss_kib();
    let mut groups = Vec::new();
    let mut created = 0;
    while created < count {
        let size = (count - created).min(set.users_per_instance(0));
        let mut group = Group::create(set, 0, 0, groups.len() as u64, env.clone(), tally.clone())
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
