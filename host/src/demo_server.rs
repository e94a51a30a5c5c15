//! `perfhost demo-server`: serve the built-in Auditor API simulator until SIGINT/SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::num::NonZeroUsize;

use crate::exit;
use crate::failure::Failure;
use perfhost_demo::{knobs, start, DemoConfig, LatencyRange, RateLimit, Stall};

/// Options of `perfhost demo-server`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Address to listen on (port 0 picks a free port; the real one is printed).
    #[arg(long, default_value = "127.0.0.1:8888")]
    pub bind: SocketAddr,

    /// Worker threads [default: number of CPUs]; 1 runs everything on one thread.
    #[arg(long, value_parser = parse_threads, value_name = "N")]
    pub threads: Option<NonZeroUsize>,

    /// Delay added to every request (after the rate limiter): `40ms`, or uniform `40ms..120ms`.
    #[arg(long, value_parser = knobs::parse_latency, value_name = "DELAY|MIN..MAX")]
    pub latency: Option<LatencyRange>,

    /// Share of valid /verify requests that fail with an injected 500: `0.02` or `2%`.
    #[arg(long, value_parser = knobs::parse_error_rate, value_name = "P", default_value = "0")]
    pub error_rate: f64,

    /// Global request budget over all clients, as a token bucket: `10/s`, `600/min`.
    /// Excess requests get 429 with Retry-After and X-RateLimit-* headers (/health and
    /// /metrics are exempt, as in the real API).
    #[arg(long, value_parser = knobs::parse_rate_limit, value_name = "N/UNIT")]
    pub rate_limit: Option<RateLimit>,

    /// Token-bucket size for --rate-limit [default: the per-second rate, at least 1].
    #[arg(long, value_parser = parse_burst, value_name = "N", requires = "rate_limit")]
    pub rate_limit_burst: Option<u32>,

    /// Require this key on /verify, /statistics and /verifications/{id}, as `X-API-Key: K`
    /// or `Authorization: Bearer K` (401 otherwise; /health, / and /metrics stay open).
    #[arg(long, value_parser = parse_api_key, value_name = "KEY")]
    pub api_key: Option<String>,

    /// Allocate, touch and keep memory at this rate, so RSS grows like a leak: `8MB/min`.
    #[arg(long, value_parser = knobs::parse_leak, value_name = "SIZE/TIME")]
    pub leak: Option<f64>,

    /// Periodic outage: `1s/10s` answers nothing for the last 1 s of every 10 s (connections
    /// are still accepted; requests wait until the stall ends).
    #[arg(long, value_parser = knobs::parse_stall, value_name = "STALL/EVERY")]
    pub stall: Option<Stall>,

    /// Seed for the latency and error-injection draws (reproducible sequences).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Answer GET /metrics with 404, as the real API with metrics disabled.
    #[arg(long)]
    pub no_metrics: bool,

    /// How many results GET /verifications/{id} can return (oldest evicted).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub store_capacity: usize,
}

fn parse_threads(s: &str) -> Result<NonZeroUsize, String> {
    s.trim()
        .parse::<NonZeroUsize>()
        .map_err(|_| "expected a thread count of at least 1".to_string())
}

fn parse_burst(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a bucket size of at least 1".to_string()),
    }
}

fn parse_api_key(s: &str) -> Result<String, String> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("expected a non-empty key without spaces".to_string())
    } else {
        Ok(s.to_string())
    }
}

impl From<&DemoArgs> for DemoConfig {
    fn from(args: &DemoArgs) -> Self {
        let rate_limit = args.rate_limit.map(|mut rl| {
            if let Some(burst) = args.rate_limit_burst {
                rl.burst = burst;
            }
            rl
        });
        DemoConfig {
            latency: args.latency,
            error_rate: args.error_rate,
            rate_limit,
            api_key: args.api_key.clone(),
            leak_bytes_per_sec: args.leak,
            stall: args.stall,
            seed: args.seed,
            metrics: !args.no_metrics,
            store_capacity: args.store_capacity,
        }
    }
}

impl From<DemoArgs> for DemoConfig {
    fn from(args: DemoArgs) -> Self {
        DemoConfig::from(&args)
    }
}

/// Why the demo server could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason} — choose another with --bind")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What went wrong, in words.
        reason: String,
    },
    /// The tokio runtime or the signal handlers could not be set up.
    #[error("cannot start the demo server: {0}")]
    Runtime(#[source] std::io::Error),
}

impl DemoError {
    fn listen(addr: SocketAddr, e: &std::io::Error) -> Self {
        let reason = match e.kind() {
            std::io::ErrorKind::AddrInUse => "address already in use".to_string(),
            std::io::ErrorKind::AddrNotAvailable => {
                "address not available on this machine".to_string()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges)".to_string()
            }
            _ => e.to_string(),
        };
        DemoError::Listen { addr, reason }
    }
}

/// Runs the demo server until SIGINT/SIGTERM; returns the process exit code
/// (0 after a graceful stop, 2 when it cannot listen).
pub fn main(args: DemoArgs) -> Result<u8, Failure> {
    run(args).map_err(|err| Failure::of(exit::USAGE, &err))?;
    Ok(exit::OK)
}

fn run(args: DemoArgs) -> Result<(), DemoError> {
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    // One thread: a current-thread runtime avoids cross-thread wake-ups entirely.
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(DemoError::Runtime)?;
    let config = DemoConfig::from(&args);
    runtime.block_on(serve_until_signal(config, args.bind, threads))
}

async fn serve_until_signal(
    config: DemoConfig,
    bind: SocketAddr,
    threads: usize,
) -> Result<(), DemoError> {
    use tokio::signal::unix::{signal, SignalKind};
    // Handlers go in before the "listening" line, so a signal sent right after it is caught.
    let mut term = signal(SignalKind::terminate()).map_err(DemoError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DemoError::Runtime)?;
    let summary = describe(&config);
    let server = start(config, bind)
        .await
        .map_err(|e| DemoError::listen(bind, &e))?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "perfhost demo-server listening on http://{}",
            server.addr()
        );
        let _ = out.flush();
    }
    tracing::info!("demo-server: {threads} thread(s); {summary}");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("demo-server: stopping (finishing in-flight requests)");
    server.shutdown().await;
    Ok(())
}

/// One line naming the knobs in effect.
fn describe(c: &DemoConfig) -> String {
    let mut parts = Vec::new();
    if let Some(l) = c.latency {
        parts.push(format!("latency {:?}..{:?}", l.min, l.max));
    }
    if c.error_rate > 0.0 {
        parts.push(format!("error rate {}", c.error_rate));
    }
    if let Some(r) = c.rate_limit {
        parts.push(format!(
            "rate limit {}/{:?} (burst {})",
            r.limit, r.per, r.burst
        ));
    }
    if c.api_key.is_some() {
        parts.push("API key required".into());
    }
    if let Some(b) = c.leak_bytes_per_sec {
        parts.push(format!("leak {:.0} KiB/s", b / 1024.0));
    }
    if let Some(s) = c.stall {
        parts.push(format!("stall {:?} every {:?}", s.duration, s.every));
    }
    if !c.metrics {
        parts.push("metrics off".into());
    }
    if parts.is_empty() {
        "no fault knobs".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: DemoArgs,
    }

    #[test]
    fn args_become_a_config() {
        let w = Wrapper::try_parse_from([
            "x",
            "--latency",
            "1ms..2ms",
            "--rate-limit",
            "10/s",
            "--rate-limit-burst",
            "3",
            "--no-metrics",
            "--leak",
            "1MB/s",
            "--api-key",
            "k",
        ])
        .expect("valid arguments");
        let c = DemoConfig::from(&w.args);
        assert_eq!(c.rate_limit.map(|r| (r.limit, r.burst)), Some((10, 3)));
        assert!(!c.metrics);
        assert_eq!(c.leak_bytes_per_sec, Some(1024.0 * 1024.0));
        assert_eq!(c.api_key.as_deref(), Some("k"));
        let defaults = Wrapper::try_parse_from(["x"]).expect("no arguments");
        assert_eq!(DemoConfig::from(&defaults.args), DemoConfig::default());
        assert!(Wrapper::try_parse_from(["x", "--rate-limit-burst", "3"]).is_err());
    }
}
