//! What one virtual user's Store holds: its resource table, its sandboxed WASI context, its
//! limits, its connection, RNG and statistics shard, and the clock of its guest CPU time.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rand_core::SeedableRng;
use rand_pcg::Pcg64Mcg;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::courier::Courier;
use super::data::DataSets;
use crate::client::ClientConfig;
use crate::stats::Shard;

/// What every user of a run shares.
pub struct RunEnv {
    pub client: ClientConfig,
    /// `--config-value KEY=VALUE` and a scenario's `[config]`.
    pub config_values: HashMap<String, String>,
    pub data: DataSets,
    pub seed: u64,
    /// Guest CPU time one call into the plugin may use (time awaiting the host not counted).
    pub cpu_budget: Duration,
    /// Linear memory one user may grow to.
    pub memory_cap: usize,
    /// Print every request and response (`--trace`).
    pub trace: bool,
}

/// Guest CPU accounting: wall time inside a plugin call minus time spent awaiting the host.
#[derive(Default)]
pub struct CpuClock {
    call_started: Option<Instant>,
    in_host: Duration,
    host_since: Option<Instant>,
}

impl CpuClock {
    pub fn start_call(&mut self) {
        self.call_started = Some(Instant::now());
        self.in_host = Duration::ZERO;
        self.host_since = None;
    }

    pub fn end_call(&mut self) {
        self.call_started = None;
    }

    pub fn enter_host(&mut self, now: Instant) {
        self.host_since = Some(now);
    }

    pub fn leave_host(&mut self) {
        if let Some(since) = self.host_since.take() {
            self.in_host += since.elapsed();
        }
    }

    /// Guest time used by the current call so far.
    pub fn guest_time(&self) -> Duration {
        match (self.call_started, self.host_since) {
            // Awaiting the host right now: the guest is not running.
            (_, Some(_)) | (None, _) => Duration::ZERO,
            (Some(started), None) => started.elapsed().saturating_sub(self.in_host),
        }
    }
}

/// The Store data of one virtual user.
pub struct UserState {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub limits: StoreLimits,
    pub env: Arc<RunEnv>,
    pub shard: Arc<Shard>,
    /// Where `send` hands its request to the user's task (see courier.rs).
    pub courier: Arc<Courier>,
    /// The user's own RNG for `random-u64`, seeded from (seed, user id).
    pub rng: Pcg64Mcg,
    pub user_id: u64,
    pub cpu: CpuClock,
    /// Catch-response responses without a verdict yet (table reps).
    pub pending: Vec<u32>,
    /// The guest's last stderr lines: a panic message arrives there before the trap.
    pub stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl WasiView for UserState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Mixes the run seed and user id into independent streams (splitmix64 finaliser).
pub fn user_seed(seed: u64, user_id: u64, stream: u64) -> u64 {
    let mut z = seed
        ^ user_id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl UserState {
    pub fn new(env: Arc<RunEnv>, shard: Arc<Shard>, user_id: u64) -> Self {
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let wasi = sandboxed_wasi(env.seed, user_id, stderr_tail.clone());
        let limits = StoreLimitsBuilder::new()
            .memory_size(env.memory_cap)
            .trap_on_grow_failure(true)
            .build();
        UserState {
            table: ResourceTable::new(),
            wasi,
            limits,
            shard,
            courier: Arc::default(),
            rng: Pcg64Mcg::seed_from_u64(user_seed(env.seed, user_id, 1)),
            user_id,
            cpu: CpuClock::default(),
            pending: Vec::new(),
            stderr_tail,
            env,
        }
    }

    /// The guest's last stderr line that looks like a panic message, if any.
    pub fn last_panic(&self) -> Option<String> {
        let tail = self.stderr_tail.lock().ok()?;
        let at = tail.iter().rposition(|l| l.contains("panicked at"))?;
        // Rust prints "panicked at src/lib.rs:1:2:" then the message on the next line.
        let message = tail.get(at + 1).cloned().unwrap_or_default();
        Some(
            format!("{} {}", tail[at].trim(), message.trim())
                .trim()
                .to_string(),
        )
    }
}

/// WASI with nothing to reach: no preopens, no env, no args, no network (sockets deny every
/// address), stdin closed; stdout/stderr go to perfhost's log; random is the user's seeded RNG.
fn sandboxed_wasi(seed: u64, user_id: u64, stderr_tail: Arc<Mutex<VecDeque<String>>>) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(GuestOutput {
            user_id,
            stream: "stdout",
            tail: None,
        })
        .stderr(GuestOutput {
            user_id,
            stream: "stderr",
            tail: Some(stderr_tail),
        })
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .secure_random(rand_pcg::Pcg64::seed_from_u64(user_seed(seed, user_id, 2)))
        .insecure_random(rand_pcg::Pcg64::seed_from_u64(user_seed(seed, user_id, 3)))
        .insecure_random_seed(u128::from(user_seed(seed, user_id, 4)));
    builder.build()
}

/// A guest's stdout or stderr, written line by line into perfhost's log.
#[derive(Clone)]
struct GuestOutput {
    user_id: u64,
    stream: &'static str,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            out: self.clone(),
            buf: Vec::new(),
        })
    }
}

struct LineLogger {
    out: GuestOutput,
    buf: Vec<u8>,
}

const TAIL_LINES: usize = 8;

impl LineLogger {
    fn emit_lines(&mut self) {
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            tracing::info!(
                user = self.out.user_id,
                stream = self.out.stream,
                "plugin: {line}"
            );
            if let Some(tail) = &self.out.tail {
                if let Ok(mut tail) = tail.lock() {
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
        }
        // A guest that never writes a newline must not grow the buffer without bound.
        if self.buf.len() > 8192 {
            self.buf.push(b'\n');
            self.emit_lines();
        }
    }
}

impl tokio::io::AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.buf.extend_from_slice(data);
        self.emit_lines();
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
