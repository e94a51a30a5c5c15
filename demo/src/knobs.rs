//! The demo server's fault-injection knobs and their command-line grammar.
//!
//! Every parser returns a [`KnobError`] whose text names the expected form, so clap's
//! `invalid value '…' for '--flag'` line tells the user exactly what to type.

use std::time::Duration;

/// A knob value that does not parse; the message says what form is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KnobError(String);

impl KnobError {
    fn expected(what: &str) -> Self {
        KnobError(format!("expected {what}"))
    }
}

const DURATION_FORM: &str = "a duration like 250ms, 90s, 5m or 1h30m (a bare number means seconds)";

/// Parses `90s`, `5m`, `250ms`, `2h`, `1h30m`, `1.5s`, `500us`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, KnobError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(KnobError::expected(DURATION_FORM));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs).ok_or_else(|| KnobError::expected(DURATION_FORM));
    }
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(KnobError::expected(DURATION_FORM));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| KnobError::expected(DURATION_FORM))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" | "min" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            _ => return Err(KnobError::expected(DURATION_FORM)),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    secs_to_duration(total).ok_or_else(|| KnobError::expected(DURATION_FORM))
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    (0.0..1e12)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

/// Injected latency: a fixed delay or a uniform distribution between two bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyRange {
    /// Shortest injected delay.
    pub min: Duration,
    /// Longest injected delay (equal to `min` for a fixed delay).
    pub max: Duration,
}

impl LatencyRange {
    /// Picks a delay; `unit` is a uniform sample in [0, 1).
    pub fn pick(&self, unit: f64) -> Duration {
        let span = self.max.saturating_sub(self.min);
        self.min + span.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Parses `--latency`: `40ms` (fixed) or `40ms..120ms` (uniform).
pub fn parse_latency(text: &str) -> Result<LatencyRange, KnobError> {
    const FORM: &str = "a delay like 40ms or a uniform range like 40ms..120ms";
    let (min, max) = match text.split_once("..") {
        Some((a, b)) => (
            parse_duration(a).map_err(|_| KnobError::expected(FORM))?,
            parse_duration(b).map_err(|_| KnobError::expected(FORM))?,
        ),
        None => {
            let d = parse_duration(text).map_err(|_| KnobError::expected(FORM))?;
            (d, d)
        }
    };
    if min > max {
        return Err(KnobError(format!(
            "expected {FORM} with the lower bound first"
        )));
    }
    Ok(LatencyRange { min, max })
}

/// Parses `--error-rate`: a probability `0.02` or a percentage `2%`, within 0..1.
pub fn parse_error_rate(text: &str) -> Result<f64, KnobError> {
    const FORM: &str = "a probability between 0 and 1 like 0.02 (or a percentage like 2%)";
    let s = text.trim();
    let value = match s.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
        None => s.parse::<f64>(),
    }
    .map_err(|_| KnobError::expected(FORM))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(KnobError::expected(FORM));
    }
    Ok(value)
}

/// A global request budget enforced with a token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// The number the user wrote (`10` in `10/s`), reported as `X-RateLimit-Limit`.
    pub limit: u64,
    /// The window that number refers to.
    pub per: Duration,
    /// Bucket size: how many requests may arrive back to back. Defaults to the per-second
    /// rate rounded up (at least 1), so `10/s` allows a burst of 10.
    pub burst: u32,
}

impl RateLimit {
    /// Refill rate in tokens per second.
    pub fn per_second(&self) -> f64 {
        self.limit as f64 / self.per.as_secs_f64()
    }
}

/// Parses `--rate-limit`: `10/s`, `600/min`, `5000/h` (a bare `10` means per second).
pub fn parse_rate_limit(text: &str) -> Result<RateLimit, KnobError> {
    const FORM: &str = "a request rate like 10/s, 600/min or 5000/h";
    let s = text.trim();
    let (count, unit) = s.split_once('/').unwrap_or((s, "s"));
    let limit: u64 = count
        .trim()
        .parse()
        .map_err(|_| KnobError::expected(FORM))?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(KnobError::expected(FORM)),
    };
    if limit == 0 {
        return Err(KnobError::expected(FORM));
    }
    let per_second = limit as f64 / per.as_secs_f64();
    let burst = per_second.ceil().clamp(1.0, u32::MAX as f64) as u32;
    Ok(RateLimit { limit, per, burst })
}

/// Parses `--leak`: `8MB/min`, `512KB/s`, `1GB/h`; returns bytes per second.
/// KB/MB/GB are binary units (as `ps` and `top` count), so are KiB/MiB/GiB.
pub fn parse_leak(text: &str) -> Result<f64, KnobError> {
    const FORM: &str = "a memory growth rate like 8MB/min, 512KB/s or 1GB/h";
    let s = text.trim();
    let (amount, unit) = s.split_once('/').ok_or_else(|| KnobError::expected(FORM))?;
    let amount = amount.trim();
    let num_len = amount
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(amount.len());
    let value: f64 = amount[..num_len]
        .parse()
        .map_err(|_| KnobError::expected(FORM))?;
    let factor = match amount[num_len..].trim().to_ascii_lowercase().as_str() {
        "b" | "" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(KnobError::expected(FORM)),
    };
    let per_secs = match unit.trim() {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return Err(KnobError::expected(FORM)),
    };
    let rate = value * factor / per_secs;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(KnobError::expected(FORM));
    }
    Ok(rate)
}

/// A periodic outage: for `duration` at the end of every `every`, nothing is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// How long each stall lasts.
    pub duration: Duration,
    /// The period; stall `k` covers `[k*every + every - duration, (k+1)*every)` after start,
    /// so the first seconds after start (health gates) are never stalled.
    pub every: Duration,
}

impl Stall {
    /// How long a request at `elapsed` since the server epoch must wait, if it falls in a stall.
    pub fn wait_at(&self, elapsed: Duration) -> Option<Duration> {
        let period = self.every.as_nanos();
        if period == 0 {
            return None;
        }
        let phase = elapsed.as_nanos() % period;
        let start = period - self.duration.as_nanos();
        (phase >= start).then(|| Duration::from_nanos((period - phase) as u64))
    }
}

/// Parses `--stall`: `1s/10s` = stall for 1 s in every 10 s.
pub fn parse_stall(text: &str) -> Result<Stall, KnobError> {
    const FORM: &str =
        "a stall like 1s/10s (stall for 1s in every 10s; the stall must be shorter than the period)";
    let (d, e) = text
        .split_once('/')
        .ok_or_else(|| KnobError::expected(FORM))?;
    let duration = parse_duration(d).map_err(|_| KnobError::expected(FORM))?;
    let every = parse_duration(e).map_err(|_| KnobError::expected(FORM))?;
    if duration.is_zero() || duration >= every {
        return Err(KnobError::expected(FORM));
    }
    Ok(Stall { duration, every })
}

/// Everything the demo server can be told to do. `Default` is the well-behaved server:
/// no injected latency, errors, limits, auth, leak or stall; metrics on.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    /// Delay added to every request that passes the rate limiter.
    pub latency: Option<LatencyRange>,
    /// Probability that a valid `/verify` request fails with an injected 500.
    pub error_rate: f64,
    /// Global token bucket over all clients (429 when empty).
    pub rate_limit: Option<RateLimit>,
    /// When set, `/verify`, `/statistics` and `/verifications/{id}` need this key.
    pub api_key: Option<String>,
    /// Memory to allocate, touch and keep, in bytes per second.
    pub leak_bytes_per_sec: Option<f64>,
    /// Periodic outage.
    pub stall: Option<Stall>,
    /// Seed for the latency and error-injection draws (reproducible sequences).
    pub seed: Option<u64>,
    /// Serve `GET /metrics` (404 when off, as the real API with metrics disabled).
    pub metrics: bool,
    /// How many verification results `/verifications/{id}` keeps (oldest evicted).
    pub store_capacity: usize,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            latency: None,
            error_rate: 0.0,
            rate_limit: None,
            api_key: None,
            leak_bytes_per_sec: None,
            stall: None,
            seed: None,
            metrics: true,
            store_capacity: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn latency_ranges() {
        let fixed = parse_latency("40ms").unwrap();
        assert_eq!(fixed.min, fixed.max);
        let range = parse_latency("40ms..120ms").unwrap();
        assert_eq!(range.pick(0.5), Duration::from_millis(80));
        assert!(parse_latency("120ms..40ms").is_err());
    }

    #[test]
    fn rates_and_leaks() {
        let r = parse_rate_limit("10/s").unwrap();
        assert_eq!((r.limit, r.burst), (10, 10));
        let r = parse_rate_limit("600/min").unwrap();
        assert_eq!(r.per_second(), 10.0);
        assert!(parse_rate_limit("0/s").is_err());
        assert!(parse_rate_limit("ten/s").is_err());
        assert_eq!(parse_leak("60MB/min").unwrap(), 1024.0 * 1024.0);
        assert!(parse_leak("8MB").is_err());
        assert_eq!(parse_error_rate("2%").unwrap(), 0.02);
        assert!(parse_error_rate("1.5").is_err());
    }

    #[test]
    fn stall_windows_sit_at_the_end_of_each_period() {
        let s = parse_stall("1s/10s").unwrap();
        assert_eq!(s.wait_at(Duration::from_secs(0)), None);
        assert_eq!(s.wait_at(Duration::from_millis(8999)), None);
        assert_eq!(
            s.wait_at(Duration::from_millis(9250)),
            Some(Duration::from_millis(750))
        );
        assert_eq!(s.wait_at(Duration::from_secs(10)), None);
        assert!(parse_stall("10s/1s").is_err());
    }
}
