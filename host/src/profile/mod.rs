//! Profiling the target's memory: finding its process (tree), sampling it on a drift-free
//! schedule — standalone (`perfhost profile`, with an optional keep-alive request each sample)
//! or beside a run — and judging the samples (`leaks`).

pub mod command;
pub mod leaks;
pub mod target;

use std::sync::Arc;
use std::time::Duration;

use perfhost_core::client::{ClientConfig, Connection, OutgoingRequest};
use perfhost_core::plan::{utc_timestamp, ClientOptions, LeakTables, ProcessQuery, Target};
use perfhost_core::result::memory::{MemoryProfile, ProfileMeta, TargetProcess};
use perfhost_core::stats::unix_now;
use perfhost_core::stop::StopHandle;
use target::{FindError, Sampler};

/// Finds the target process. `Auto` needs the built-in demo server's pid or a loopback target.
pub fn find(
    query: &ProcessQuery,
    children: bool,
    demo_pid: Option<u32>,
    target: Option<&Target>,
) -> Result<TargetProcess, FindError> {
    match query {
        ProcessQuery::Pid(pid) => target::by_pid(*pid, children),
        ProcessQuery::Port(port) => target::by_port(*port, children),
        ProcessQuery::Match(text) => target::by_match(text, children),
        ProcessQuery::Auto => match (demo_pid, target) {
            (Some(pid), _) => {
                let mut found = target::by_pid(pid, children)?;
                found.found_by = "built-in demo server".into();
                Ok(found)
            }
            (None, Some(t)) => target::by_port(t.port, children),
            (None, None) => Err(FindError::NoMatch("(no target)".into())),
        },
    }
}

/// Whether a target runs on this machine (only then its process can be sampled).
pub fn is_local(target: &Target) -> bool {
    matches!(target.host.as_str(), "127.0.0.1" | "::1" | "localhost")
        || target.host.starts_with("127.")
}

/// The keep-alive request `perfhost profile` sends each sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepAlive {
    None,
    /// `GET` this path.
    Get(String),
    /// memory_profile.py's `POST /verify` (one § 823 BGB source).
    Verify,
}

/// memory_profile.py's request body.
const VERIFY_BODY: &str = r#"{"answer":"Nach § 823 BGB haftet, wer vorsätzlich oder fahrlässig einen Schaden verursacht.","sources":[{"text":"Wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit verletzt, ist zum Ersatz verpflichtet.","source_id":"bgb_823","score":0.95}]}"#;

/// What a standalone profile does.
pub struct ProfileOptions {
    pub interval: Duration,
    pub duration: Duration,
    pub keep_alive: KeepAlive,
    pub tables: LeakTables,
    pub explicit: bool,
}

/// Samples `process` every `interval` until `until` resolves or the process exits; `on_sample`
/// sees each sample with its index. A drift-free schedule: sample k is due at start + k·interval.
async fn sample_until(
    process: TargetProcess,
    interval: Duration,
    until: impl std::future::Future<Output = ()>,
    mut before_sample: impl AsyncFnMut() -> Option<bool>,
    mut on_sample: impl FnMut(usize, &perfhost_core::result::memory::MemorySample),
) -> (
    Vec<perfhost_core::result::memory::MemorySample>,
    Option<f64>,
) {
    let mut sampler = Sampler::new(process);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut samples = Vec::new();
    let mut exited = None;
    let mut until = std::pin::pin!(until);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut until => break,
        }
        let request = before_sample().await;
        match sampler.sample(unix_now()) {
            Some(mut sample) => {
                sample.request_success = request;
                on_sample(samples.len(), &sample);
                samples.push(sample);
            }
            None => {
                exited = Some(samples.last().map_or(0.0, |s| s.elapsed_seconds));
                break;
            }
        }
    }
    (samples, exited)
}

/// `perfhost profile`: samples `process` for `options.duration` (or until `stop`).
pub async fn profile(
    process: TargetProcess,
    api: Option<(Arc<Target>, ClientOptions)>,
    options: &ProfileOptions,
    stop: StopHandle,
    on_sample: impl FnMut(usize, &perfhost_core::result::memory::MemorySample),
) -> MemoryProfile {
    let api_url = api
        .as_ref()
        .map(|(t, _)| format!("{}{}", t.origin, t.base_path))
        .unwrap_or_default();
    let mut conn = api.as_ref().and_then(|(t, client)| {
        ClientConfig::new(t.clone(), client)
            .ok()
            .map(Connection::new)
    });
    let keep_alive = options.keep_alive.clone();
    let started = utc_timestamp(unix_now());
    let deadline = tokio::time::sleep(options.duration);
    let until = async {
        tokio::select! {
            _ = deadline => {}
            _ = stop.stopped() => {}
        }
    };
    let target_for_request = api.as_ref().map(|(t, _)| t.clone());
    let (samples, exited) = sample_until(
        process.clone(),
        options.interval,
        until,
        async || {
            let (conn, target) = (conn.as_mut()?, target_for_request.as_ref()?);
            let (method, path, body) = match &keep_alive {
                KeepAlive::None => return None,
                KeepAlive::Get(path) => (http::Method::GET, path.as_str(), ""),
                KeepAlive::Verify => (http::Method::POST, "/verify", VERIFY_BODY),
            };
            let uri = target.resolve(path).ok()?;
            let content_type = (
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            let request = OutgoingRequest {
                method,
                uri,
                headers: if body.is_empty() {
                    Vec::new()
                } else {
                    vec![content_type]
                },
                body: bytes::Bytes::from_static(body.as_bytes()),
                timeout: Some(Duration::from_secs(10)),
                follow_redirects: true,
                discard_body: true,
            };
            Some(
                conn.send(request)
                    .await
                    .is_ok_and(|r| r.status.as_u16() == 200),
            )
        },
        on_sample,
    )
    .await;
    MemoryProfile {
        analysis: leaks::analyse(&samples, &options.tables, exited),
        metadata: ProfileMeta {
            api_url,
            interval: options.interval.as_secs_f64(),
            duration: options.duration.as_secs_f64(),
            timestamp: started,
            target: process,
            tables: options.tables,
            explicit: options.explicit,
        },
        samples,
    }
}

/// Sampling beside a run: started before the load, finished after it.
pub struct RunSampler {
    done: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<MemoryProfile>,
}

impl RunSampler {
    /// Starts sampling `process` every `interval`.
    pub fn start(
        process: TargetProcess,
        api_url: String,
        interval: Duration,
        tables: LeakTables,
        explicit: bool,
        mut on_sample: impl FnMut(&perfhost_core::result::memory::MemorySample) + Send + 'static,
    ) -> Self {
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let started = utc_timestamp(unix_now());
            let began = std::time::Instant::now();
            let until = async {
                let _ = finished.await;
            };
            let (samples, exited) = sample_until(
                process.clone(),
                interval,
                until,
                async || None,
                |_, sample| on_sample(sample),
            )
            .await;
            MemoryProfile {
                analysis: leaks::analyse(&samples, &tables, exited),
                metadata: ProfileMeta {
                    api_url,
                    interval: interval.as_secs_f64(),
                    duration: began.elapsed().as_secs_f64(),
                    timestamp: started,
                    target: process,
                    tables,
                    explicit,
                },
                samples,
            }
        });
        RunSampler { done, task }
    }

    /// Stops sampling and returns the profile.
    pub async fn finish(self) -> Option<MemoryProfile> {
        let _ = self.done.send(());
        self.task.await.ok()
    }
}
