//! What the Store of a group of virtual users holds: the resource table (with each user's own
//! state), the sandboxed WASI context, the limits, the statistics shard, and the clock of the
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
use crate::plan::seed::{self, Stream};
use crate::plan::SandboxLimits;
use crate::stats::Shard;

/// What every user of a run shares.
pub struct RunEnv {
    pub client: ClientConfig,
    /// `--config-value KEY=VALUE` and a scenario's `[config]`.
    pub config_values: HashMap<String, String>,
    pub data: DataSets,
    pub seed: u64,
    pub limits: SandboxLimits,
    /// Print every request and response (`--trace`).
    pub trace: bool,
}

/// The memory cap of one instance. A growth beyond it traps with `MemoryCapExceeded` and
/// sets `exceeded`, so the trap is named without reading wasmtime's message text.
pub struct MemoryCap {
    cap: usize,
    pub exceeded: bool,
}

/// The trap a memory growth beyond the cap raises.
#[derive(Debug, thiserror::Error)]
#[error("the plugin exceeded its memory cap of {} MiB", .cap >> 20)]
pub struct MemoryCapExceeded {
    pub cap: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exceeded = true;
            return Err(wasmtime::Error::new(MemoryCapExceeded { cap: self.cap }));
        }
        Ok(maximum.is_none_or(|max| desired <= max))
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
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub limits: MemoryCap,
    pub env: Arc<RunEnv>,
    pub shard: Arc<Shard>,
    pub clock: GuestClock,
    /// The guest's last stderr lines: a panic message arrives there before the trap.
    pub stderr_tail: Arc<Mutex<VecDeque<String>>>,
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
    pub fn new(env: Arc<RunEnv>, shard: Arc<Shard>, group_id: u64) -> Self {
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let wasi = sandboxed_wasi(env.seed, group_id, stderr_tail.clone());
        let limits = MemoryCap {
            cap: env.limits.memory_cap,
            exceeded: false,
        };
        GroupState {
            table: ResourceTable::new(),
            wasi,
            limits,
            shard,
            clock: GuestClock::default(),
            stderr_tail,
            env,
        }
    }

    /// A new user's own state.
    pub fn new_user(&self, user_id: u64) -> super::host_impl::UserContextState {
        super::host_impl::UserContextState {
            user_id,
            rng: Pcg64Mcg::seed_from_u64(seed::derive(self.env.seed, user_id, Stream::UserContext)),
            pending: Vec::new(),
            conn: None,
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
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(GuestOutput {
            group_id,
            stream: "stdout",
            tail: None,
        })
        .stderr(GuestOutput {
            group_id,
            stream: "stderr",
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
    group_id: u64,
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
                group = self.out.group_id,
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
