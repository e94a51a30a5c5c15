//! What the Store of a group of virtual users holds: the resource table (with each user's own
//! state), the sandboxed WASI context, the limits, the statistics tally, and the clock of the
//! guest's CPU time.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rand_core::SeedableRng;
use rand_pcg::Pcg64Mcg;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::data::DataSets;
use crate::client::ClientConfig;
use crate::events::Events;
use crate::plan::seed::{self, Stream};
use crate::plan::{Redactor, SandboxLimits};
use crate::stats::Tally;
use crate::stop::StopHandle;

/// What every user of a run shares.
pub struct RunEnv {
    /// How requests are sent, and to which origin.
    pub client: ClientConfig,
    /// `--config-value KEY=VALUE` and a scenario's `[config]`.
    pub config_values: HashMap<String, String>,
    /// The `--data` sets, already cut to this shard.
    pub data: DataSets,
    /// The run's seed, from which each user's random streams derive.
    pub seed: u64,
    /// CPU budget and memory cap of each instance.
    pub limits: SandboxLimits,
    /// Print every request and response (`--trace`).
    pub trace: bool,
    /// Takes every configured secret out of what is printed or logged.
    pub redactor: Arc<Redactor>,
    /// The run's stop: once set, new requests (outside `on-stop`) are refused.
    pub stop: StopHandle,
    /// Where `--trace` lines go (the binary prints them).
    pub events: Events,
}

/// The memory cap of one instance. A growth beyond it traps with `MemoryCapExceeded` and
/// sets `exceeded`, so the trap is named without reading wasmtime's message text.
pub struct MemoryCap {
    cap: usize,
    /// A growth hit the cap (the instance trapped for it).
    pub exceeded: bool,
    /// Linear memory of the instance now, in bytes (every memory's growths summed).
    pub bytes: usize,
}

/// The trap a memory growth beyond the cap raises.
#[derive(Debug, thiserror::Error)]
#[error("the plugin exceeded its memory cap of {} MiB", .cap >> 20)]
pub struct MemoryCapExceeded {
    /// The cap, in bytes.
    pub cap: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = true;
            return Err(wasmtime::Error::new(MemoryCapExceeded { cap: self.cap }));
        }
        let allowed = maximum.is_none_or(|max| desired <= max);
        if allowed {
            self.bytes += desired.saturating_sub(current);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

/// Plugin log lines per instance and second, at most: enough for any debugging session, while
/// a plugin logging in a loop cannot flood the terminal or the disk (a 1 GB stderr in 8 s was
/// seen before this cap). Lines beyond are counted and reported once a second.
pub(crate) const LOG_LINES_PER_SECOND: u32 = 50;

/// Where an instance's log lines (`ctx.log`, stdout, stderr) go: redacted, each cut at
/// `MAX_MESSAGE_BYTES`, at most `LOG_LINES_PER_SECOND` a second.
pub struct LogGate {
    group_id: u64,
    redactor: Arc<Redactor>,
    window: std::time::Instant,
    lines: u32,
    suppressed: u64,
}

impl LogGate {
    /// The gate of the instance of group `group_id`, redacting what `redactor` names.
    pub fn new(group_id: u64, redactor: Arc<Redactor>) -> Self {
        LogGate {
            group_id,
            redactor,
            window: std::time::Instant::now(),
            lines: 0,
            suppressed: 0,
        }
    }

    /// Logs `line` of `user` (or a stream's line, `user: None`) at `level`.
    pub fn emit(&mut self, level: tracing::Level, user: Option<u64>, line: &str) {
        if self.window.elapsed() >= std::time::Duration::from_secs(1) {
            if self.suppressed > 0 {
                tracing::warn!(
                    group = self.group_id,
                    "plugin: {} log lines suppressed (at most {LOG_LINES_PER_SECOND} a second per instance)",
                    self.suppressed
                );
            }
            self.window = std::time::Instant::now();
            self.lines = 0;
            self.suppressed = 0;
        }
        if self.lines >= LOG_LINES_PER_SECOND {
            self.suppressed += 1;
            return;
        }
        self.lines += 1;
        let line = self.redactor.redact(line);
        let line = crate::stats::cap_message(&line);
        let group = self.group_id;
        match (level, user) {
            (tracing::Level::TRACE, Some(user)) => tracing::trace!(group, user, "plugin: {line}"),
            (tracing::Level::DEBUG, Some(user)) => tracing::debug!(group, user, "plugin: {line}"),
            (tracing::Level::WARN, Some(user)) => tracing::warn!(group, user, "plugin: {line}"),
            (tracing::Level::ERROR, Some(user)) => tracing::error!(group, user, "plugin: {line}"),
            (_, Some(user)) => tracing::info!(group, user, "plugin: {line}"),
            (_, None) => tracing::info!(group, "plugin: {line}"),
        }
    }
}

/// Guest CPU accounting for a Store whose instance runs many users' tasks concurrently. The
/// epoch callback fires while guest code runs; if, from one callback to the next, nothing
/// reached the host (no call into the guest began or ended, no host function ran), the guest
/// ran on its own the whole tick. Enough such ticks in a row exceed the budget.
#[derive(Default)]
pub struct GuestClock {
    activity: u64,
    seen: u64,
    idle_ticks: u32,
}

impl GuestClock {
    /// Something other than uninterrupted guest computation happened.
    pub fn host_activity(&mut self) {
        self.activity = self.activity.wrapping_add(1);
    }

    /// Called from the epoch callback: how many ticks the guest has now run without a break.
    pub fn tick(&mut self) -> u32 {
        if self.activity == self.seen {
            self.idle_ticks += 1;
        } else {
            self.seen = self.activity;
            self.idle_ticks = 1;
        }
        self.idle_ticks
    }
}

/// The Store data of one group of virtual users (one plugin instance): the resource table
/// (which also holds each user's own state, see `UserContextState`), the sandboxed WASI
/// context, the limits, and where statistics go.
pub struct GroupState {
    /// The component's resources: requests, responses and each user's `UserContextState`.
    pub table: ResourceTable,
    /// The sandboxed WASI context (no files, no sockets, seeded randomness).
    pub wasi: WasiCtx,
    /// The instance's memory cap and use.
    pub limits: MemoryCap,
    /// What every user of the run shares.
    pub env: Arc<RunEnv>,
    /// The worker's tally the group's requests are recorded into.
    pub tally: Arc<Tally>,
    /// The guest's CPU time without a break, against the CPU budget.
    pub clock: GuestClock,
    /// The guest's last stderr lines: a panic message arrives there before the trap.
    pub stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// The instance's log lines, rate-limited and redacted.
    pub log: Arc<Mutex<LogGate>>,
    /// The user class of this group (its index in the run): per-class statistics.
    pub class: u32,
}

impl WasiView for GroupState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl GroupState {
    /// `group_id` seeds the group's WASI randomness (a user's own numbers come from its
    /// `user-context`, seeded per user).
    pub fn new(env: Arc<RunEnv>, tally: Arc<Tally>, class: u32, group_id: u64) -> Self {
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let log = Arc::new(Mutex::new(LogGate::new(group_id, env.redactor.clone())));
        let wasi = sandboxed_wasi(env.seed, group_id, log.clone(), stderr_tail.clone());
        let limits = MemoryCap {
            cap: env.limits.memory_cap,
            exceeded: false,
            bytes: 0,
        };
        GroupState {
            table: ResourceTable::new(),
            wasi,
            limits,
            tally,
            clock: GuestClock::default(),
            stderr_tail,
            log,
            class,
            env,
        }
    }

    /// A new user's own state.
    pub fn new_user(&self, user_id: u64) -> super::host_impl::UserContextState {
        super::host_impl::UserContextState {
            user_id,
            rng: Pcg64Mcg::seed_from_u64(seed::derive(self.env.seed, user_id, Stream::UserContext)),
            pending: Vec::new(),
            client: Default::default(),
            in_on_stop: false,
            lateness_us: None,
            failed_requests: 0,
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
/// address), stdin closed; stdout/stderr go to perfhost's log; random is the group's seeded RNG.
fn sandboxed_wasi(
    run_seed: u64,
    group_id: u64,
    log: Arc<Mutex<LogGate>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(GuestOutput {
            log: log.clone(),
            tail: None,
        })
        .stderr(GuestOutput {
            log,
            tail: Some(stderr_tail),
        })
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .secure_random(rand_pcg::Pcg64::seed_from_u64(seed::derive(
            run_seed,
            group_id,
            Stream::WasiSecure,
        )))
        .insecure_random(rand_pcg::Pcg64::seed_from_u64(seed::derive(
            run_seed,
            group_id,
            Stream::WasiInsecure,
        )))
        .insecure_random_seed(u128::from(seed::derive(
            run_seed,
            group_id,
            Stream::WasiInsecureSeed,
        )));
    builder.build()
}

/// A guest's stdout or stderr, written line by line into perfhost's log.
#[derive(Clone)]
struct GuestOutput {
    log: Arc<Mutex<LogGate>>,
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
            if let Ok(mut log) = self.out.log.lock() {
                log.emit(tracing::Level::INFO, None, &line);
            }
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

#[cfg(test)]
mod tests {
    use super::GuestClock;

    #[test]
    fn the_guest_clock_counts_only_ticks_without_host_activity() {
        let mut clock = GuestClock::default();
        clock.host_activity();
        // The first tick after host activity starts a new stretch of guest computing.
        assert_eq!(clock.tick(), 1);
        assert_eq!(clock.tick(), 2);
        assert_eq!(clock.tick(), 3);
        clock.host_activity();
        assert_eq!(clock.tick(), 1);
        assert_eq!(clock.tick(), 2);
    }
}
