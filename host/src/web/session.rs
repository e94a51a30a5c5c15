//! The web UI's session: which test runs (or ran), its chart history kept on the server so a
//! reload loses nothing, the finished result for downloads, and the Server-Sent Events each
//! page listens to. One session lives as long as `perfhost ui`; each test is one run in it.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use perfhost_core::control::{Retarget, RunControl};
use perfhost_core::result::{PlanSummary, RunMeta, RunResult, SCHEMA};
use perfhost_core::stats::live::{Board, LiveBoard};
use perfhost_core::stats::{HistoryPoint, Percentile, Percentiles, RunStats};
use perfhost_core::stop::StopHandle;

/// What the start form (or `POST /swarm`) asks for; empty fields keep the command line's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartRequest {
    pub users: Option<usize>,
    pub spawn_rate: Option<f64>,
    pub host: Option<String>,
    pub run_time: Option<String>,
    pub user_classes: Vec<String>,
    pub scenario: Option<String>,
    pub rate: Option<String>,
    /// `auto`, `1.1` or `2` (`--http-version`).
    pub http_version: Option<String>,
}

/// A test the UI loop is to run: the resolved plan and what the page shows of it.
pub struct Test {
    pub plan: perfhost_core::plan::Plan,
    pub run_id: u64,
    pub board: Arc<LiveBoard>,
    pub control: RunControl,
    pub stop: StopHandle,
}

/// Resolves a start request against the command line: the plan, or the error to show.
pub type Planner = dyn Fn(&StartRequest) -> Result<perfhost_core::plan::Plan, String> + Send + Sync;

/// Whether a plan fits this machine (the memory check of a run's start, for a new count).
pub type Fits = dyn Fn(&perfhost_core::plan::Plan) -> Result<(), String> + Send + Sync;

/// What the form offers, fixed for the session.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FormOptions {
    pub available_classes: Vec<String>,
    pub scenarios: Vec<String>,
    /// The command line's values: users, spawn_rate, rate, host, run_time, user_classes,
    /// scenario.
    pub defaults: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Ready,
    Running,
    Stopping,
    Stopped,
}

/// The test that runs or ran last.
struct Current {
    run_id: u64,
    /// The plan as it started (a new user count is checked against memory with it).
    plan: perfhost_core::plan::Plan,
    board: Arc<LiveBoard>,
    control: RunControl,
    stop: StopHandle,
    summary: PlanSummary,
    meta: RunMeta,
    open_model: bool,
    rate_per_s: Option<f64>,
    /// The run's history as the board published it, and the charts' points from it.
    history: Vec<HistoryPoint>,
    points: Vec<Value>,
    /// Both stay bounded however long the test runs.
    downsampler: perfhost_core::stats::history::Downsampler,
    result: Option<RunResult>,
}

/// The most chart points a test keeps: beyond, the older half is thinned to every other
/// point (each point carries its own time, so the charts keep their shape).
const MAX_CHART_POINTS: usize = 7200;

fn thin(points: &mut Vec<Value>) {
    if points.len() <= MAX_CHART_POINTS {
        return;
    }
    let half = points.len() / 2;
    let mut index = 0;
    points.retain(|_| {
        index += 1;
        index > half || index % 2 == 0
    });
}

struct Inner {
    phase: Phase,
    /// `--autoquit` is counting down: no new test.
    closing: bool,
    next_run_id: u64,
    current: Option<Current>,
    message: Option<String>,
}

/// A test's number and the board it publishes to.
type Followed = (u64, Arc<LiveBoard>);

pub struct Session {
    inner: Mutex<Inner>,
    planner: Box<Planner>,
    fits: Box<Fits>,
    tests: tokio::sync::mpsc::UnboundedSender<Test>,
    events: broadcast::Sender<Arc<str>>,
    /// Boards of new tests, for `follow_tests` (on the web server's thread).
    follow_tx: tokio::sync::mpsc::UnboundedSender<Followed>,
    follow_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Followed>>>,
    pub form: FormOptions,
    pub read_only: bool,
}

/// Why a control request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
}

impl Session {
    /// A session whose tests go to `tests` (the UI loop runs them).
    pub fn new(
        planner: Box<Planner>,
        fits: Box<Fits>,
        form: FormOptions,
        read_only: bool,
        tests: tokio::sync::mpsc::UnboundedSender<Test>,
    ) -> Arc<Self> {
        let (follow_tx, follow_rx) = tokio::sync::mpsc::unbounded_channel();
        Arc::new(Session {
            follow_tx,
            follow_rx: Mutex::new(Some(follow_rx)),
            inner: Mutex::new(Inner {
                phase: Phase::Ready,
                closing: false,
                next_run_id: 1,
                current: None,
                message: None,
            }),
            planner,
            fits,
            tests,
            events: broadcast::channel(64).0,
            form,
            read_only,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data: keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `POST /swarm`: starts a test, or — while one runs — moves it to a new user count.
    pub fn swarm(&self, request: StartRequest) -> Result<String, Refused> {
        let mut inner = self.lock();
        if inner.closing {
            return Err(Refused::Conflict(
                "perfhost is quitting (--autoquit): no new test".into(),
            ));
        }
        if let (Phase::Running, Some(current)) = (inner.phase, inner.current.as_mut()) {
            if current.open_model {
                return Err(Refused::Conflict(
                    "this test runs at an arrival rate: its users cannot be changed mid-run (stop it and start a new test)".into(),
                ));
            }
            let users = request.users.ok_or_else(|| {
                Refused::BadRequest("user_count: give the new number of users".into())
            })?;
            let spawn_rate = request.spawn_rate.unwrap_or(current.summary.spawn_rate);
            if !(spawn_rate > 0.0 && spawn_rate.is_finite()) {
                return Err(Refused::BadRequest(
                    "spawn_rate: give a number of users per second above 0".into(),
                ));
            }
            // The same memory check as at the start, for the new count.
            let mut check = current.plan.clone();
            check.load = perfhost_core::plan::LoadShape::ramp(users, spawn_rate);
            (self.fits)(&check).map_err(|e| Refused::BadRequest(format!("user_count: {e}")))?;
            current.summary.spawn_rate = spawn_rate;
            current.control.retarget(Retarget { users, spawn_rate });
            let message = format!("Moving to {users} users at {spawn_rate}/s");
            drop(inner);
            self.announce();
            return Ok(message);
        }
        if inner.phase == Phase::Stopping {
            return Err(Refused::Conflict(
                "the last test is still stopping: try again in a moment".into(),
            ));
        }
        // Planning reads files (a scenario, settings, data): never with the lock held, which
        // every page's request takes. What changed meanwhile is checked again after.
        let next_run_id = inner.next_run_id;
        drop(inner);
        let plan = (self.planner)(&request).map_err(Refused::BadRequest)?;
        let mut inner = self.lock();
        if inner.closing
            || inner.next_run_id != next_run_id
            || matches!(inner.phase, Phase::Running | Phase::Stopping)
        {
            return Err(Refused::Conflict(
                "another test started meanwhile: change its users, or stop it first".into(),
            ));
        }
        let run_id = inner.next_run_id;
        inner.next_run_id += 1;
        let test = Test {
            run_id,
            board: Arc::new(LiveBoard::default()),
            control: RunControl::default(),
            stop: StopHandle::default(),
            plan,
        };
        inner.current = Some(Current {
            run_id,
            plan: test.plan.clone(),
            board: test.board.clone(),
            control: test.control.clone(),
            stop: test.stop.clone(),
            summary: PlanSummary::new(&test.plan, Default::default()),
            meta: RunMeta {
                run_name: test.plan.outputs.run_name.clone(),
                target: test
                    .plan
                    .target
                    .as_ref()
                    .map_or_else(|| "built-in demo server".into(), |t| t.origin.clone()),
                perfhost_version: env!("CARGO_PKG_VERSION").into(),
                seed: test.plan.seed,
                start_time: perfhost_core::stats::unix_now(),
                end_time: 0.0,
                duration_s: 0.0,
                interrupted: false,
                aborted_by: None,
                shard: None,
                merged_shards: None,
            },
            open_model: test.plan.arrivals.is_some(),
            rate_per_s: test
                .plan
                .arrivals
                .as_ref()
                .and_then(|a| a.stages.first())
                .map(|s| s.per_s),
            history: Vec::new(),
            points: Vec::new(),
            downsampler: Default::default(),
            result: None,
        });
        inner.phase = Phase::Running;
        inner.message = None;
        let host = inner.current.as_ref().map(|c| c.meta.target.clone());
        let _ = self.follow_tx.send((run_id, test.board.clone()));
        if self.tests.send(test).is_err() {
            inner.phase = Phase::Stopped;
            return Err(Refused::Conflict("perfhost is shutting down".into()));
        }
        drop(inner);
        self.announce();
        Ok(format!(
            "Swarming started against {}",
            host.unwrap_or_default()
        ))
    }

    /// `GET /stop`.
    pub fn stop(&self) -> Result<String, Refused> {
        let mut inner = self.lock();
        match (inner.phase, inner.current.as_ref()) {
            (Phase::Running, Some(c)) => {
                c.stop.stop();
                inner.phase = Phase::Stopping;
                drop(inner);
                self.announce();
                Ok("Stopping: users finish their current task".into())
            }
            // As Locust: stopping what is not running is done, not an error.
            _ => Ok("No test is running".into()),
        }
    }

    /// `--autoquit` began: refuse new tests.
    pub fn close(&self) {
        self.lock().closing = true;
    }

    pub fn set_paused(&self, paused: bool) -> Result<String, Refused> {
        let inner = self.lock();
        match (inner.phase, inner.current.as_ref()) {
            (Phase::Running, Some(c)) if c.open_model => Err(Refused::Conflict(
                "this test runs at an arrival rate, which keeps its schedule: it cannot pause (stop it instead)".into(),
            )),
            (Phase::Running, Some(c)) => {
                c.control.set_paused(paused);
                drop(inner);
                self.announce();
                Ok(if paused {
                    "Paused: users wait after their current task; the run time stands still"
                } else {
                    "Resumed"
                }
                .into())
            }
            _ => Err(Refused::Conflict("no test is running".into())),
        }
    }

    /// `GET /stats/reset`: the statistics start over; the charts keep their history.
    pub fn reset_stats(&self) -> Result<String, Refused> {
        let inner = self.lock();
        match (inner.phase, inner.current.as_ref()) {
            (Phase::Running, Some(c)) => {
                c.control.request_reset();
                Ok("Statistics reset".into())
            }
            _ => Ok("No test is running: nothing to reset".into()),
        }
    }

    /// The run ended (`result`: its final numbers, `None` when it could not start: `error`).
    pub fn finish(&self, run_id: u64, result: Option<RunResult>, error: Option<String>) {
        let mut inner = self.lock();
        inner.phase = Phase::Stopped;
        inner.message = error;
        if let Some(c) = inner.current.as_mut().filter(|c| c.run_id == run_id) {
            // The final board may have arrived after the last history point: take the result's.
            if let Some(result) = &result {
                c.history = result.history.clone();
            }
            c.result = result;
        }
        drop(inner);
        self.announce();
    }

    /// Follows every test's board as it starts (the web server runs this).
    pub async fn follow_tests(self: Arc<Self>) {
        let Some(mut boards) = self.follow_rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        while let Some((run_id, board)) = boards.recv().await {
            tokio::spawn(self.clone().follow(run_id, board));
        }
    }

    /// Follows a run's board: each publication adds a chart point and goes out to every page.
    pub async fn follow(self: Arc<Self>, run_id: u64, board: Arc<LiveBoard>) {
        let mut published = board.subscribe();
        while published.changed().await.is_ok() {
            let Some(snapshot) = board.snapshot() else {
                continue;
            };
            let point = {
                let mut inner = self.lock();
                let Some(c) = inner.current.as_mut().filter(|c| c.run_id == run_id) else {
                    return;
                };
                let fresh = snapshot
                    .last
                    .as_ref()
                    .filter(|p| c.history.last().map(|h| h.time) != Some(p.time));
                fresh.map(|last| {
                    c.downsampler.push(&mut c.history, last.clone());
                    let point = chart_point(last, &snapshot, board.memory_mb());
                    c.points.push(point.clone());
                    thin(&mut c.points);
                    point
                })
            };
            // The history is kept for pages to come; the events only when a page listens.
            if self.events.receiver_count() > 0 {
                if let Some(point) = point {
                    self.send("point", &json!({"run_id": run_id, "point": point}));
                }
                self.send("stats", &self.stats_requests());
                self.announce();
            }
            if snapshot.finished {
                // The users are gone; the reports are still being written.
                let mut inner = self.lock();
                if inner.phase == Phase::Running
                    && inner.current.as_ref().is_some_and(|c| c.run_id == run_id)
                {
                    inner.phase = Phase::Stopping;
                }
                drop(inner);
                self.announce();
                return;
            }
        }
    }

    fn send(&self, event: &str, data: &Value) {
        let frame = format!("event: {event}\ndata: {data}\n\n");
        let _ = self.events.send(frame.into());
    }

    /// Sends the state to every page.
    pub fn announce(&self) {
        self.send("state", &self.state());
    }

    /// A new page's feed: the state first, then every event.
    pub fn subscribe(&self) -> (Arc<str>, broadcast::Receiver<Arc<str>>) {
        let rx = self.events.subscribe();
        let first = format!("event: state\ndata: {}\n\n", self.state());
        (first.into(), rx)
    }

    /// `GET /api/state`.
    pub fn state(&self) -> Value {
        let inner = self.lock();
        let board = inner.current.as_ref().and_then(|c| c.board.snapshot());
        let current = inner.current.as_ref();
        let paused = current.is_some_and(|c| c.control.is_paused());
        let users = board.as_ref().map_or(0, |b| b.users);
        let target = board.as_ref().map_or(0, |b| b.target_users);
        let state = match inner.phase {
            Phase::Running if paused => "paused",
            Phase::Running if !current.is_some_and(|c| c.open_model) && users < target => {
                "spawning"
            }
            Phase::Running => "running",
            Phase::Ready => "ready",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        };
        let classes: Vec<Value> = current.map_or_else(Vec::new, |c| {
            // The engine hands out users in this order: the first n of it are the users now.
            let classes = board.as_ref().map_or(&[][..], |b| &b.classes[..]);
            let weights: Vec<u32> = classes.iter().map(|(_, w)| *w).collect();
            let mut counts = vec![0usize; weights.len()];
            if !c.open_model {
                for class in perfhost_core::engine::assign_classes(&weights, users as usize) {
                    counts[class] += 1;
                }
            }
            classes
                .iter()
                .zip(counts)
                .map(|((name, w), n)| json!({"name": name, "weight": w, "users": n}))
                .collect()
        });
        json!({
            "run_id": current.map_or(0, |c| c.run_id),
            "state": state,
            "read_only": self.read_only,
            "open_model": current.is_some_and(|c| c.open_model),
            "user_count": users,
            "target_users": target,
            "spawn_rate": current.map(|c| c.summary.spawn_rate),
            "rate_per_s": current.and_then(|c| c.rate_per_s),
            "host": current.map(|c| c.meta.target.clone()),
            "run_name": current.map(|c| c.meta.run_name.clone()),
            "elapsed_s": board.as_ref().map_or(0.0, |b| b.run_s),
            "run_time_s": current.and_then(|c| c.summary.run_time_s),
            "classes": classes,
            "available_classes": self.form.available_classes,
            "scenarios": self.form.scenarios,
            "defaults": self.form.defaults,
            "message": inner.message,
            "memory": current.is_some_and(|c| c.board.memory_mb().is_some()),
        })
    }

    /// `GET /api/history`.
    pub fn history(&self) -> Value {
        let inner = self.lock();
        match inner.current.as_ref() {
            Some(c) => json!({"run_id": c.run_id, "points": c.points}),
            None => json!({"run_id": 0, "points": []}),
        }
    }

    /// Locust's `/stats/requests` of the current test, with the session's state.
    pub fn stats_requests(&self) -> Value {
        let mut stats = crate::report::locust_api::stats_requests(&self.board());
        stats["state"] = self.state()["state"].clone();
        stats
    }

    /// The current board (`/metrics`, `/stats/requests`), empty before the first test.
    pub fn board(&self) -> Board {
        let inner = self.lock();
        inner
            .current
            .as_ref()
            .and_then(|c| c.board.snapshot())
            .unwrap_or_default()
    }

    /// The test's result: the final one once it ended, else the run so far in the same
    /// schema (every download renders from it).
    pub fn result(&self) -> Option<RunResult> {
        let inner = self.lock();
        let c = inner.current.as_ref()?;
        if let Some(result) = &c.result {
            return Some(result.clone());
        }
        let board = c.board.snapshot().unwrap_or_default();
        let seconds = board.elapsed_s;
        let stats = RunStats::of(board.all.clone(), c.history.clone());
        let (rows, total) = stats.endpoint_stats(seconds);
        let mut meta = c.meta.clone();
        meta.end_time = perfhost_core::stats::unix_now();
        meta.duration_s = seconds;
        Some(RunResult {
            schema: SCHEMA.into(),
            meta,
            plan: c.summary.clone(),
            plugins: Vec::new(),
            stats: rows,
            total,
            failures: stats.failure_groups(),
            failure_samples: Vec::new(),
            task_errors: stats.task_error_groups(),
            denied_requests: board.all.denied,
            stopped_classes: Vec::new(),
            classes: Vec::new(),
            thresholds: Vec::new(),
            history: stats.history,
            generator: Default::default(),
            memory: None,
            arrivals: None,
        })
    }
}

/// One point of the live charts: the run's clock, rates, the 10-s window's percentiles, the
/// target's memory, and the same per endpoint.
fn chart_point(p: &HistoryPoint, board: &Board, memory_mb: Option<f64>) -> Value {
    let pct = |w: Option<&Percentiles>, q: Percentile| w.map(|w| round(w.get(q)));
    // The interval's length, from its own rate (an interval is about one second).
    let seconds = if p.rps > 0.0 {
        p.requests as f64 / p.rps
    } else {
        1.0
    };
    let endpoints: serde_json::Map<String, Value> = p
        .endpoints
        .iter()
        .map(|e| {
            let w = e.window_ms.as_ref();
            (
                format!("{} {}", e.method, e.name),
                json!({
                    "rps": round(e.requests as f64 / seconds),
                    "fails_per_s": round(e.failures as f64 / seconds),
                    "p50": pct(w, Percentile::P50),
                    "p95": pct(w, Percentile::P95),
                    "p99": pct(w, Percentile::P99),
                }),
            )
        })
        .collect();
    let w = p.window_ms.as_ref();
    json!({
        "t": round(board.run_s),
        "users": p.users,
        "rps": round(p.rps),
        "fails_per_s": round(p.failures_per_s),
        "p50": pct(w, Percentile::P50),
        "p95": pct(w, Percentile::P95),
        "p99": pct(w, Percentile::P99),
        "memory_mb": memory_mb.map(round),
        "endpoints": endpoints,
    })
}

/// Three decimals: enough for charts, a third of the bytes of a full float.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
