//! perfhost's own health while it runs: CPU per second, the collector's lag, its memory, and
//! the machine's available memory (the plan's memory check).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// perfhost's own health during the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GeneratorHealth {
    /// Process CPU per second, in percent of one core.
    pub cpu_percent: Vec<f64>,
    /// How late the 1 s collector tick ran each second, in ms (scheduling lag).
    pub tick_lag_ms: Vec<f64>,
    /// The highest process CPU of any second, in percent of one core.
    pub max_cpu_percent: f64,
    /// CPU cores available to perfhost.
    pub cores: usize,
    /// The generator, not the target, limited the run (CPU above 90% of all cores).
    pub generator_saturated: bool,
}

/// Samples perfhost's CPU once per collector tick.
pub struct GeneratorMonitor {
    health: GeneratorHealth,
    last_cpu: Duration,
    last: Instant,
    warned: bool,
}

/// CPU time (user + system) this process has used so far.
pub fn process_cpu() -> Duration {
    // SAFETY: `rusage` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes into the struct we pass, which lives for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

impl GeneratorMonitor {
    /// Starts measuring from now.
    pub fn start() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        GeneratorMonitor {
            health: GeneratorHealth {
                cores,
                ..Default::default()
            },
            last_cpu: process_cpu(),
            last: Instant::now(),
            warned: false,
        }
    }

    /// perfhost's CPU in the last sampled second, % of one core.
    pub fn last_cpu_percent(&self) -> f64 {
        self.health.cpu_percent.last().copied().unwrap_or(0.0)
    }

    /// Records one interval of the running load, of length `interval` as the ticker measured
    /// it, and judges saturation.
    pub fn sample(&mut self, interval: Duration) {
        let percent = self.record(interval);
        self.judge(percent);
    }

    /// Records the last interval, which covers stopping the users: its CPU is shutdown work,
    /// not load generation, so it does not count towards saturation.
    pub fn sample_shutdown(&mut self, interval: Duration) {
        self.record(interval);
    }

    fn record(&mut self, interval: Duration) -> f64 {
        let now = Instant::now();
        let cpu = process_cpu();
        let wall = now.duration_since(self.last).as_secs_f64().max(1e-3);
        let percent = (cpu.saturating_sub(self.last_cpu)).as_secs_f64() / wall * 100.0;
        self.last_cpu = cpu;
        self.last = now;
        self.health
            .cpu_percent
            .push((percent * 10.0).round() / 10.0);
        self.health
            .tick_lag_ms
            .push(((interval.as_secs_f64() - 1.0).max(0.0) * 1000.0 * 10.0).round() / 10.0);
        self.health.max_cpu_percent = self.health.max_cpu_percent.max(percent);
        percent
    }

    fn judge(&mut self, percent: f64) {
        if percent > 90.0 * self.health.cores as f64 {
            self.health.generator_saturated = true;
            if !self.warned {
                self.warned = true;
                tracing::warn!(
                    "perfhost is using {percent:.0}% CPU of {} cores: the generator, not the target, may be limiting this run",
                    self.health.cores
                );
            }
        }
    }

    /// The health measured over the run.
    pub fn finish(self) -> GeneratorHealth {
        self.health
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

/// Memory the kernel says is available for new work (`MemAvailable` of /proc/meminfo), bytes.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
