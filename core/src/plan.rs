//! The resolved plan of a run and its parts: plain data that every later stage reads.
//!
//! The binary's `settings` build one `Plan` from the command line, the environment, a settings
//! file and a scenario; `engine`, `plugin`, `client` and `result` take the parts they need.
//! Below it only `metric`, what a threshold reads (docs/architecture.md).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::header::HeaderValue;
use http::Uri;
use serde::{Deserialize, Serialize};

use crate::metric::{Metric, Op};

/// The resolved plan of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The origin every request goes to; `None`: start the built-in demo server.
    pub target: Option<Target>,
    /// Plugins as given: built-in names or `.wasm` paths.
    pub plugins: Vec<String>,
    /// Which user classes run, and weight overrides.
    pub classes: ClassChoice,
    /// How many users run at each moment (closed model).
    pub load: LoadShape,
    /// The open model instead: arrivals at a rate, each one task on a free user.
    pub arrivals: Option<ArrivalPlan>,
    /// When the run ends.
    pub stop: StopConditions,
    /// What a plugin may use.
    pub limits: SandboxLimits,
    /// How requests are sent.
    pub client: ClientOptions,
    /// Which reports are written, and where.
    pub outputs: Outputs,
    /// Seed of every random choice (`seed::derive` splits it into streams).
    pub seed: u64,
    /// Drop the numbers of the ramp-up once every user runs.
    pub reset_stats: bool,
    /// Print every request and response.
    pub trace: bool,
    /// Values plugins read with `ctx.config(KEY)`.
    pub config_values: BTreeMap<String, String>,
    /// `--data NAME=FILE[:MODE]` specifications (loaded when the run starts).
    pub data: Vec<String>,
    /// Pass/fail rules evaluated on the result.
    pub thresholds: Vec<Threshold>,
    /// The scenario this plan came from.
    pub scenario: Option<ScenarioRef>,
    /// Log level: trace, debug, info, warning or error.
    pub log_level: String,
    /// Worker threads running users (one current-thread runtime each).
    pub workers: usize,
    /// Run even when the estimated memory exceeds what the machine has available.
    pub force: bool,
    /// Sample the target process's memory during the run.
    pub profile: Option<ProfilePlan>,
    /// Where each value came from (for `--print-config` and errors), by setting name.
    pub sources: BTreeMap<&'static str, Origin>,
    /// One of N processes of the run (`--shard i/N`).
    pub shard: Option<ShardPlan>,
    /// Start at this wall-clock instant (Unix seconds), after loading everything
    /// (`--start-at`): the barrier of a sharded run.
    pub start_at: Option<f64>,
}

/// Shard `index` of `count` (`--shard i/N`): it owns global user k, arrival k, iteration k
/// and unique data row k when k mod N = index, so the shards together are the plan exactly
/// and 0/1 is a plain run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlan {
    /// This process's shard, 0-based (`i` of `--shard i/N`).
    pub index: usize,
    /// Processes the run is split over (`N` of `--shard i/N`), 1 to [`MAX_SHARDS`].
    pub count: usize,
}

/// The most shards one run may have.
pub const MAX_SHARDS: usize = 4096;

impl ShardPlan {
    /// `i/N` with 0 ≤ i < N ≤ 4096.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || format!("`{text}` is not a shard: write INDEX/COUNT, e.g. 0/4 (0-based), or auto");
        let (i, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(format!(
                "`{text}`: the index must be below the count (0/{count} … {}/{count}), and the count 1 to 4096",
                count.saturating_sub(1)
            ));
        }
        Ok(ShardPlan { index, count })
    }

    /// `--shard auto`: a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` with the count in
    /// `PERFHOST_SHARD_COUNT` (the Job's completions), or a Slurm array's
    /// `SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`.
    pub fn auto(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let num = |k: &str| env(k).and_then(|v| v.trim().parse::<usize>().ok());
        if let Some(index) = num("JOB_COMPLETION_INDEX") {
            let count = num("PERFHOST_SHARD_COUNT").ok_or(
                "--shard auto: JOB_COMPLETION_INDEX is set but not PERFHOST_SHARD_COUNT (set it to the Job's completions)",
            )?;
            return Self::parse(&format!("{index}/{count}"));
        }
        if let (Some(id), Some(count)) = (num("SLURM_ARRAY_TASK_ID"), num("SLURM_ARRAY_TASK_COUNT"))
        {
            let min = num("SLURM_ARRAY_TASK_MIN").unwrap_or(0);
            return Self::parse(&format!("{}/{count}", id.saturating_sub(min)));
        }
        Err("--shard auto: neither JOB_COMPLETION_INDEX (Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT (Slurm array) is set — give --shard INDEX/COUNT".into())
    }

    /// How many of the global items 0..total this shard owns.
    pub fn share(&self, total: u64) -> u64 {
        let (i, n) = (self.index as u64, self.count as u64);
        if total > i {
            (total - i - 1) / n + 1
        } else {
            0
        }
    }

    /// The global number of this shard's `local`-th item.
    pub fn global(&self, local: u64) -> u64 {
        local * self.count as u64 + self.index as u64
    }

    /// Whether global item `global` (user, arrival, iteration or data row) is this shard's.
    pub fn owns(&self, global: u64) -> bool {
        global % self.count as u64 == self.index as u64
    }
}

/// Unix seconds of an RFC 3339 time: `2026-12-01T10:00:00Z`, with fractions of a second and
/// `+02:00`-style offsets.
pub fn parse_rfc3339(text: &str) -> Result<f64, String> {
    let bad = || format!("`{text}` is not an RFC 3339 time: write e.g. 2026-12-01T10:00:00Z");
    let t = text.trim();
    let (date, rest) = t.split_once(['T', 't', ' ']).ok_or_else(bad)?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (Some(Ok(y)), Some(Ok(mo)), Some(Ok(day)), None) = (d.next(), d.next(), d.next(), d.next())
    else {
        return Err(bad());
    };
    let (clock, offset_s) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0i64)
    } else {
        let at = rest.rfind(['+', '-']).ok_or_else(bad)?;
        let (c, off) = rest.split_at(at);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':').ok_or_else(bad)?;
        let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        (c, sign * (h * 3600 + m * 60))
    };
    let mut c = clock.split(':');
    let (Some(h), Some(mi), Some(sec), None) = (c.next(), c.next(), c.next(), c.next()) else {
        return Err(bad());
    };
    let (h, mi): (i64, i64) = (
        h.parse().map_err(|_| bad())?,
        mi.parse().map_err(|_| bad())?,
    );
    let sec: f64 = sec.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&mo)
        || !(1..=31).contains(&day)
        || h > 23
        || mi > 59
        || !(0.0..61.0).contains(&sec)
    {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok((days * 86_400 + h * 3600 + mi * 60 - offset_s) as f64 + sec)
}

impl Plan {
    /// The most users alive at once.
    pub fn max_users(&self) -> usize {
        match &self.arrivals {
            Some(open) => open.max_users,
            None => self.load.max_users(),
        }
    }
}

/// The open workload model (k6's arrival-rate executors): arrivals come at the schedule's
/// times whatever the server does; each runs one task on a free virtual user, and an arrival
/// that finds none free with the pool at `max_users` is dropped (and counted).
#[derive(Debug, Clone, PartialEq)]
pub struct ArrivalPlan {
    /// Rate stages: each ramps linearly from the previous stage's rate (the first from
    /// `start_per_s`) to its own over its duration.
    pub stages: Vec<RateStage>,
    /// Arrivals per second at the start, where the first stage ramps from.
    pub start_per_s: f64,
    /// Users created before the first arrival (k6's preAllocatedVUs).
    pub pre_allocated: usize,
    /// The pool's limit (k6's maxVUs).
    pub max_users: usize,
    /// Exponential inter-arrival times instead of even spacing.
    pub poisson: bool,
    /// Per-class constant rates (a scenario's `[rates]`, as k6 scenarios give each their
    /// own rate) for the whole schedule, instead of splitting `stages` by class weight.
    pub class_rates: Vec<(String, f64)>,
}

/// One stage of an arrival schedule: reach `per_s` arrivals per second over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateStage {
    /// Arrivals per second at the stage's end.
    pub per_s: f64,
    /// How long the stage ramps to `per_s`.
    pub duration: Duration,
}

impl ArrivalPlan {
    /// Arrivals per second `t` after the start (0 past the schedule's end).
    pub fn rate_at(&self, t: Duration) -> f64 {
        let mut start = Duration::ZERO;
        let mut from = self.start_per_s;
        for stage in &self.stages {
            if t < start + stage.duration {
                let done = (t - start).as_secs_f64() / stage.duration.as_secs_f64().max(1e-9);
                return from + (stage.per_s - from) * done;
            }
            start += stage.duration;
            from = stage.per_s;
        }
        0.0
    }

    /// How long the schedule lasts.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// Arrivals the schedule holds in all (evenly spaced: exactly; Poisson: on average).
    pub fn expected_arrivals(&self) -> f64 {
        let mut from = self.start_per_s;
        let mut total = 0.0;
        for stage in &self.stages {
            total += (from + stage.per_s) / 2.0 * stage.duration.as_secs_f64();
            from = stage.per_s;
        }
        total
    }

    /// The time (since the start) at which the cumulative arrival count reaches `count`, or
    /// `None` past the schedule's end. Arrival `i` is due at `time_of(i)` (evenly spaced) or at
    /// `time_of(S_i)` with `S_i` a unit-rate Poisson process (time rescaling): a function of the
    /// plan and the arrival index alone, so N generators can each own every N-th arrival.
    pub fn time_of(&self, count: f64) -> Option<Duration> {
        let mut start = 0.0;
        let mut done = 0.0;
        let mut from = self.start_per_s;
        for stage in &self.stages {
            let length = stage.duration.as_secs_f64();
            let in_stage = (from + stage.per_s) / 2.0 * length;
            if count < done + in_stage {
                // N(τ) = r0·τ + (r1 − r0)·τ²/(2D) = d, solved in its cancellation-free form.
                let d = count - done;
                let a = (stage.per_s - from) / (2.0 * length);
                let disc = (from * from + 4.0 * a * d).max(0.0);
                let denominator = from + disc.sqrt();
                let tau = if denominator > 0.0 {
                    2.0 * d / denominator
                } else {
                    0.0
                };
                return Duration::try_from_secs_f64(start + tau.min(length)).ok();
            }
            start += length;
            done += in_stage;
            from = stage.per_s;
        }
        None
    }
}

/// `200/s`, `12000/m`, `5/ms`… as arrivals per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, unit) = t
        .split_once('/')
        .ok_or_else(|| format!("`{t}` is not a rate: write it as N/s or N/m (e.g. 200/s)"))?;
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{t}` is not a rate: `{number}` is not a number"))?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        other => return Err(format!("`{t}`: unknown unit `{other}` (use /s, /m or /h)")),
    };
    let rate = n / per;
    if !(rate > 0.0 && rate.is_finite()) || rate > 10_000_000.0 {
        return Err(format!(
            "`{t}` must be a positive rate of at most 10000000/s"
        ));
    }
    Ok(rate)
}

/// Where a resolved value came from, in precedence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A command-line option.
    Cli,
    /// An environment variable.
    Env,
    /// The scenario file.
    Scenario,
    /// The settings file.
    File,
    /// perfhost's default.
    Default,
}

/// Where one resolved value came from: its layer, and the place a user finds it there
/// (`--users`, `PERFHOST_USERS`, `perfhost.toml:12`, a scenario's name; empty for a default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The layer.
    pub source: Source,
    /// The flag, variable, `file:line` or scenario that gave the value.
    pub place: String,
}

impl Origin {
    /// perfhost's own default.
    pub fn default_value() -> Self {
        Origin {
            source: Source::Default,
            place: String::new(),
        }
    }
}

impl Source {
    /// The lowercase name, as `--print-config` and serde write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cli => "cli",
            Source::Env => "env",
            Source::Scenario => "scenario",
            Source::File => "file",
            Source::Default => "default",
        }
    }
}

/// Which of the plugins' user classes run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassChoice {
    /// Only these classes (by name, case-insensitive); empty: all.
    pub only: Vec<String>,
    /// Weights overriding the plugins' own, by class name (from a scenario).
    pub weights: BTreeMap<String, u32>,
    /// Run only this task of each class (by name; a benchmark case's task).
    pub task: Option<String>,
    /// Users send their next task as soon as the last one ended, whatever the class's wait
    /// (a benchmark case).
    pub no_wait: bool,
}

/// When a run ends, and how it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopConditions {
    /// Stop after this long (`None`: when the iterations are spent).
    pub run_time: Option<Duration>,
    /// Stop after this many task runs in total.
    pub iterations: Option<u64>,
    /// On stop, how long users may finish their task before they are cancelled.
    pub stop_timeout: Duration,
}

/// What one plugin instance may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Guest CPU time a plugin may compute without calling the host before it is stopped.
    pub cpu_budget: Duration,
    /// Linear memory one plugin instance (a group of users) may grow to, in bytes.
    pub memory_cap: usize,
}

/// How requests are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Timeout of one request (a request may set its own).
    pub request_timeout: Duration,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// Also trust the CAs in this PEM file.
    pub ca_cert: Option<PathBuf>,
    /// `API_TOKEN`: sent as `Authorization: Bearer …`.
    pub api_token: Option<Secret>,
    /// `API_KEY`: sent as `X-API-Key: …`.
    pub api_key: Option<Secret>,
    /// User and password from the target URL (`http://user:pw@host`): HTTP Basic auth.
    pub basic_auth: Option<(String, Secret)>,
    /// Bytes of a response body kept at most; the rest is read, timed and counted.
    pub max_body_size: usize,
    /// One kept-alive connection per user; `false`: a new connection for every request, its
    /// set-up timed with the request (as benchmark.py's `requests.post` without a session).
    pub keepalive: bool,
    /// The HTTP version spoken (`--http-version`).
    pub http_version: HttpVersion,
}

/// The HTTP a response came over (a row of the result counts its responses by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1 (also what an HTTP/1.0 server's answers count as).
    Http1,
    /// HTTP/2, over TLS (ALPN `h2`) or cleartext with prior knowledge (h2c).
    Http2,
}

impl Protocol {
    /// Every protocol, in the order of a row's counts.
    pub const ALL: [Protocol; 2] = [Protocol::Http1, Protocol::Http2];

    /// As reports name it: `HTTP/1.1`, `HTTP/2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2",
        }
    }

    /// Its place in [`Protocol::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// `--http-version`: which HTTP a run speaks to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// https: what the server picks by ALPN (HTTP/2 preferred); http: HTTP/1.1.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only: by ALPN on https, with prior knowledge (h2c) on http.
    Http2,
}

impl HttpVersion {
    /// `auto`, `1.1` or `2` (also `http/1.1`, `http2`, `h2`…), as `--http-version` takes it.
    pub fn parse(text: &str) -> Option<Self> {
        match text
            .trim()
            .to_ascii_lowercase()
            .trim_start_matches("http")
            .trim_start_matches('/')
        {
            "auto" => Some(HttpVersion::Auto),
            "1.1" | "1" => Some(HttpVersion::Http1),
            "2" | "h2" | "2.0" => Some(HttpVersion::Http2),
            _ => None,
        }
    }

    /// As written in settings: `auto`, `1.1`, `2`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Auto => "auto",
            HttpVersion::Http1 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }
}

impl ClientOptions {
    /// Every configured secret, as it may appear in text a target echoes back.
    pub fn redactor(&self) -> Redactor {
        let mut secrets: Vec<String> = [&self.api_token, &self.api_key]
            .into_iter()
            .flatten()
            .map(|s| s.0.clone())
            .collect();
        if let (Some((_, Secret(password))), Some(encoded)) =
            (&self.basic_auth, self.basic_credentials())
        {
            secrets.push(password.clone());
            secrets.push(encoded);
        }
        Redactor::new(secrets)
    }

    /// `user:password` of the target URL in base64, as the `Authorization: Basic` header
    /// carries it.
    pub fn basic_credentials(&self) -> Option<String> {
        use base64::Engine as _;
        let (user, Secret(password)) = self.basic_auth.as_ref()?;
        Some(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    }
}

/// Replaces every configured secret in text perfhost writes — failure samples, the trace,
/// plugin logs, task errors, reports — with `[redacted]`, also where a target echoed it
/// percent-encoded or JSON-escaped.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    needles: Vec<String>,
}

impl Redactor {
    /// What a secret is replaced with.
    pub(crate) const MARK: &'static str = "[redacted]";

    /// A redactor of these secrets, each also percent-encoded and JSON-escaped; empty ones
    /// are skipped.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut needles = Vec::new();
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            let quoted = serde_json::to_string(&secret).unwrap_or_default();
            let json = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or(&quoted)
                .to_string();
            needles.extend([percent_encode(&secret), json, secret]);
        }
        // Longest first, so a secret inside another's encoding is replaced whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Redactor { needles }
    }

    /// True when there is no secret to redact.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every secret replaced.
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let mut out = std::borrow::Cow::Borrowed(text);
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = std::borrow::Cow::Owned(out.replace(needle.as_str(), Self::MARK));
            }
        }
        out
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A value that must never be printed or reported: its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

/// Which reports a run writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    /// Names report files: `reports/<run-name>_<timestamp>.*`.
    pub run_name: String,
    /// Print the final statistics as JSON to stdout.
    pub json: bool,
    /// The full JSON result (default: `reports/<run-name>_<timestamp>.json`).
    pub json_file: Option<PathBuf>,
    /// Write no default JSON file.
    pub no_report: bool,
    /// Locust-compatible CSV files with this prefix.
    pub csv: Option<PathBuf>,
    /// A self-contained HTML report.
    pub html: Option<PathBuf>,
    /// The scenario asks for CSV reports beside the JSON result (`[report] csv`).
    pub scenario_csv: bool,
    /// The scenario asks for an HTML report beside the JSON result (`[report] html`).
    pub scenario_html: bool,
    /// The stem of the default report files (`reports/<stem>_<timestamp>.*`): the run name,
    /// or a scenario's `[report] name` (scenarios.sh called the smoke run `smoke_test`).
    pub report_name: String,
    /// No live status while the run goes, only the summary at the end (Locust's
    /// `--only-summary`).
    pub only_summary: bool,
    /// Print the statistics table every 10 s while the run goes (Locust's `--print-stats`).
    pub print_stats: bool,
    /// The history CSV also gets a row per endpoint and interval (Locust's
    /// `--csv-full-history`).
    pub csv_full_history: bool,
    /// A JUnit XML file: one test case per threshold (or one for the run).
    pub junit: Option<PathBuf>,
    /// Serve `/metrics` while the run goes (`--metrics-port`).
    pub metrics: Option<MetricsPlan>,
    /// `--hlog FILE`: the histograms per second as an HdrHistogram interval log.
    pub hlog: Option<PathBuf>,
    /// The exit code when the run fails by the failure rule (no thresholds): Locust's
    /// `--exit-code-on-error`, default 1.
    pub exit_code_on_error: u8,
}

/// The scenario a plan came from, and where its fields are (for errors found once plugins are
/// loaded: an unknown plugin, class or weight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioRef {
    /// The scenario's `name`.
    pub name: String,
    /// A path, or `scenarios/NAME.toml (built-in)`.
    pub source: String,
    /// Line of the scenario's `plugins` field (1-based), if it has one.
    pub plugins_line: Option<usize>,
    /// Line of the scenario's `user-classes` field (1-based), if it has one.
    pub classes_line: Option<usize>,
    /// Line of the scenario's `weights` table (1-based), if it has one.
    pub weights_line: Option<usize>,
}

/// A problem with one field of a settings or scenario file: one line naming the file, the line
/// and the field (`smoke.toml:4: field `users`: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", field_line(.file, .line, .field, .message))]
pub struct FieldError {
    /// The file as shown: a path, or `scenarios/NAME.toml (built-in)`.
    pub file: String,
    /// 1-based line of the field, when known.
    pub line: Option<usize>,
    /// The field's name; `-` when the problem is not one field's.
    pub field: String,
    /// What is wrong, and what to write instead.
    pub message: String,
}

/// `FILE:LINE: field `X`: message`; without a field (`-`), the message after the file, or
/// alone when it names the file itself.
fn field_line(file: &str, line: &Option<usize>, field: &str, message: &str) -> String {
    let line = line.map(|l| format!(":{l}")).unwrap_or_default();
    match field {
        "-" if message.contains(file) => message.to_string(),
        "-" => format!("{file}{line}: {message}"),
        field => format!("{file}{line}: field `{field}`: {message}"),
    }
}

impl ScenarioRef {
    /// `message` about `field`, pinned to the scenario's line for it — when the value came from
    /// the scenario.
    pub fn pin(&self, field: &str, message: &str) -> Option<FieldError> {
        let line = match field {
            "plugins" => self.plugins_line?,
            "user-classes" => self.classes_line?,
            "weights" => self.weights_line?,
            _ => return None,
        };
        Some(FieldError {
            file: self.source.clone(),
            line: Some(line),
            field: field.to_string(),
            message: message.to_string(),
        })
    }
}

/// Which process is the target's (`--profile-pid`, `--profile-port`, `--profile-match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessQuery {
    /// The process with this id.
    Pid(u32),
    /// The process listening on this TCP port.
    Port(u16),
    /// The process whose command line contains this text.
    Match(String),
    /// The built-in demo server, or the process listening on a loopback target's port.
    Auto,
}

/// Sampling the target's memory during a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfilePlan {
    /// Which process is sampled.
    pub query: ProcessQuery,
    /// Sum the process's children (workers) in.
    pub children: bool,
    /// Time between two samples.
    pub interval: Duration,
    /// Asked for (`--profile`, `--profile-*`): then a leak warning changes the exit code (4);
    /// the default sampling of the built-in target only reports.
    pub explicit: bool,
    /// The tables the samples are judged by.
    pub tables: LeakTables,
}

/// The tables a profile is judged by (MB, MB per minute, seconds); settable in a scenario's
/// `[profile]` table. Defaults: memory_profile.py's thresholds and the suite README's targets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LeakTables {
    /// Growth above this many MB/min: a moderate warning.
    pub growth_moderate: f64,
    /// Growth above this many MB/min: a high warning.
    pub growth_high: f64,
    /// Initial RSS below this is on target, below `initial_acceptable` acceptable (MB).
    pub initial_target: f64,
    /// Initial RSS below this is acceptable, above it poor (MB).
    pub initial_acceptable: f64,
    /// Largest RSS below this is on target, below `max_acceptable` acceptable (MB).
    pub max_target: f64,
    /// Largest RSS below this is acceptable, above it poor (MB).
    pub max_acceptable: f64,
    /// A verdict needs this long after the warm-up …
    pub min_seconds: f64,
    /// … and this many samples after it; else "too short to judge".
    pub min_samples: usize,
    /// The warm-up left out of the growth rate: this share of the profile, at most
    /// `warmup_max_seconds`.
    pub warmup_share: f64,
    /// The longest warm-up left out (seconds).
    pub warmup_max_seconds: f64,
}

impl Default for LeakTables {
    fn default() -> Self {
        LeakTables {
            growth_moderate: 5.0,
            growth_high: 10.0,
            initial_target: 500.0,
            initial_acceptable: 1000.0,
            max_target: 1000.0,
            max_acceptable: 2000.0,
            min_seconds: 30.0,
            min_samples: 10,
            warmup_share: 0.1,
            warmup_max_seconds: 60.0,
        }
    }
}

// ---------- timestamps ----------

/// `YYYY-mm-ddTHH:MM:SSZ` of whole Unix seconds, as Locust's `format_utc_timestamp`.
pub fn utc_timestamp(unix: f64) -> String {
    let secs = if unix.is_finite() && unix > 0.0 {
        unix.floor() as i64
    } else {
        0
    };
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

// ---------- durations ----------

/// The longest duration perfhost accepts anywhere (30 days): beyond it, a typo is likelier
/// than intent, and `Instant + Duration` could overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// A duration that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a number with units; holds the text as given.
    #[error("`{0}` is not a duration — use e.g. 90s, 5m, 1h30m, 250ms (a bare number is seconds)")]
    Syntax(String),
    /// Below zero; holds the text as given.
    #[error("`{0}` is negative — durations cannot be negative")]
    Negative(String),
    /// Longer than [`MAX_DURATION`]; holds the text as given.
    #[error("`{0}` is longer than the maximum of 30 days")]
    TooLong(String),
}

/// Parses `90s`, `5m`, `2h`, `1h30m`, `250ms`, `1d`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    let bad = || DurationError::Syntax(text.to_string());
    if let Some(magnitude) = t.strip_prefix('-') {
        return match parse_duration(magnitude) {
            Ok(d) if d.is_zero() => Ok(d),
            Ok(_) | Err(DurationError::TooLong(_)) => Err(DurationError::Negative(text.into())),
            Err(_) => Err(bad()),
        };
    }
    if t.is_empty() {
        return Err(bad());
    }
    let seconds = match t.parse::<f64>() {
        Ok(secs) if secs.is_finite() => secs,
        // `1e400` overflows to infinity; `inf` and `NaN` are no durations at all.
        Ok(_) if t.chars().any(|c| c.is_ascii_digit()) => {
            return Err(DurationError::TooLong(text.into()))
        }
        Ok(_) => return Err(bad()),
        Err(_) => {
            let mut total = 0f64;
            let mut number = String::new();
            let mut chars = t.chars().peekable();
            let mut any = false;
            while let Some(c) = chars.next() {
                if c.is_ascii_digit() || c == '.' {
                    number.push(c);
                    continue;
                }
                let value: f64 = number.parse().map_err(|_| bad())?;
                number.clear();
                let unit = match c {
                    'm' if chars.peek() == Some(&'s') => {
                        chars.next();
                        0.001
                    }
                    'h' => 3600.0,
                    'm' => 60.0,
                    's' => 1.0,
                    'd' => 86400.0,
                    _ => return Err(bad()),
                };
                total += value * unit;
                any = true;
            }
            if !number.is_empty() || !any {
                return Err(bad());
            }
            total
        }
    };
    if seconds > MAX_DURATION.as_secs_f64() {
        return Err(DurationError::TooLong(text.into()));
    }
    Ok(Duration::from_secs_f64(seconds.max(0.0)))
}

/// `90s`, `5m`, `1h30m`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// A size that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a size — use e.g. 16MiB, 100MB, 512KiB, 1GiB (a bare number is bytes)")]
pub struct SizeError(pub String);

/// Parses `16MiB`, `100MB`, `512KiB`, `1GiB`, `2048` (bytes); `k`/`M`/`G` and `KB`/`MB`/`GB`
/// are decimal, `KiB`/`MiB`/`GiB` binary.
pub fn parse_size(text: &str) -> Result<usize, SizeError> {
    let t = text.trim();
    let bad = || SizeError(text.to_string());
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = number * unit;
    if !bytes.is_finite() || bytes >= usize::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as usize)
}

/// `16 MiB`, `512 KiB`, `100 B`.
pub fn format_size(bytes: usize) -> String {
    let b = bytes as f64;
    let (kib, mib, gib, tib) = (
        1024.0,
        1024.0 * 1024.0,
        1024.0 * 1024.0 * 1024.0,
        1024f64.powi(4),
    );
    match b {
        b if b >= tib => format!("{:.1} TiB", b / tib),
        b if b >= gib && bytes.is_multiple_of(1 << 30) => format!("{} GiB", bytes >> 30),
        b if b >= gib => format!("{:.1} GiB", b / gib),
        b if b >= mib => format!("{:.0} MiB", b / mib),
        b if b >= kib => format!("{:.0} KiB", b / kib),
        _ => format!("{bytes} B"),
    }
}

/// Serde: a duration as seconds (f64), as the JSON result writes it.
pub mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes the duration as seconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// Reads seconds (negative ones as zero).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs.max(0.0)).map_err(serde::de::Error::custom)
    }
}

// ---------- the target ----------

/// The origin every request of a run goes to, with an optional base path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal as written (no brackets).
    pub host: String,
    /// TCP port: the URL's, else 80 for http and 443 for https.
    pub port: u16,
    /// `scheme://host[:port]` as used in reports.
    pub origin: String,
    /// Value of the `Host` header.
    pub authority: HeaderValue,
    /// Path prefix of the target URL (`http://h/api` → `/api`), prepended to request paths.
    pub base_path: String,
}

/// A target URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target URL `{url}`: {why} — use e.g. http://127.0.0.1:8888")]
pub struct TargetError {
    /// The URL as given, without user and password.
    pub url: String,
    /// What is wrong with it.
    pub why: String,
}

/// Why a request path cannot be resolved against the target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The sandbox reaches only the run's target origin.
    #[error("{0}")]
    Denied(String),
    /// Not a valid path or URL.
    #[error("{0}")]
    Invalid(String),
}

impl Target {
    /// The user and password of `http://user:pw@host` (percent-decoded), if the URL has them.
    pub fn credentials(url: &str) -> Option<(String, String)> {
        let authority = url.split_once("://")?.1.split(['/', '?', '#']).next()?;
        let (userinfo, _) = authority.rsplit_once('@')?;
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        Some((percent_decode(user), percent_decode(password)))
    }

    /// Parses `http://host:port[/base]` (or `https://`); user info is left to `credentials`.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        // The URL as the user gave it may hold a password: errors show it without user info.
        let shown = match Self::credentials(url) {
            Some(_) => match url.split_once("://") {
                Some((scheme, rest)) => format!(
                    "{scheme}://{}",
                    rest.rsplit_once('@').map_or(rest, |(_, host)| host)
                ),
                None => url.to_string(),
            },
            None => url.to_string(),
        };
        let bad = |why: &str| TargetError {
            url: shown.clone(),
            why: why.to_string(),
        };
        let uri: Uri = url
            .trim_end_matches('/')
            .parse()
            .map_err(|_| bad("not a URL"))?;
        // http::Uri drops a port it cannot read as u16 (`:99999`) instead of failing.
        if let Some(authority) = uri.authority() {
            let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
            let port = match host_port.strip_prefix('[') {
                Some(v6) => v6.split_once("]:").map(|(_, p)| p),
                None => host_port.split_once(':').map(|(_, p)| p),
            };
            if let Some(port) = port {
                if !port.parse::<u16>().is_ok_and(|p| p > 0) {
                    return Err(bad(&format!("`{port}` is not a port (1–65535)")));
                }
            }
        }
        let scheme = uri
            .scheme_str()
            .ok_or_else(|| bad("missing http:// or https://"))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad("only http and https are supported"));
        }
        let host = uri.host().ok_or_else(|| bad("missing host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let default_port = if scheme == "https" { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let host_for_url = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let authority = if port == default_port {
            host_for_url.clone()
        } else {
            format!("{host_for_url}:{port}")
        };
        let origin = format!("{scheme}://{authority}");
        let base_path = uri.path().trim_end_matches('/').to_string();
        Ok(Target {
            scheme: scheme.to_string(),
            host,
            port,
            authority: HeaderValue::from_str(&authority).map_err(|_| bad("bad host"))?,
            origin,
            base_path,
        })
    }

    /// Resolves a plugin-given path or absolute URL against this origin and base path
    /// (`base_url + path`, as Locust). An absolute URL to any other origin is refused: the
    /// sandbox only reaches the run's target.
    pub fn resolve(&self, path: &str) -> Result<Uri, ResolveError> {
        self.resolve_under(path, &self.base_path)
    }

    /// Resolves a redirect's `Location`: an absolute path is the server's own (the base path is
    /// not prepended again); other origins are refused as for `resolve`.
    pub fn resolve_location(&self, location: &str) -> Result<Uri, ResolveError> {
        if location.starts_with('/') && !location.starts_with("//") {
            return self.resolve_under(location, "");
        }
        self.resolve(location)
    }

    fn resolve_under(&self, path: &str, base_path: &str) -> Result<Uri, ResolveError> {
        let rest = if let Some(after) = path.strip_prefix(&self.origin) {
            if !(after.is_empty() || after.starts_with('/') || after.starts_with('?')) {
                return Err(ResolveError::Denied(format!(
                    "{path} is not on the target {}",
                    self.origin
                )));
            }
            after.to_string()
        } else if path.contains("://") || path.starts_with("//") {
            return Err(ResolveError::Denied(format!(
                "{path} is outside the run's target {}",
                self.origin
            )));
        } else if path.starts_with('/') {
            format!("{base_path}{path}")
        } else {
            format!("{base_path}/{path}")
        };
        let rest = if rest.is_empty() {
            "/".to_string()
        } else {
            rest
        };
        // From the String's own buffer: `parse` would copy it once more.
        Uri::from_maybe_shared(bytes::Bytes::from(rest))
            .map_err(|e| ResolveError::Invalid(format!("bad path `{path}`: {e}")))
    }

    /// `host:port` for connecting.
    pub fn connect_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => match u8::from_str_radix(&String::from_utf8_lossy(hex), 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------- the load shape ----------

/// One stage of a load shape: from the previous stage's users (0 at the start), ramp linearly
/// to `users` over `duration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// Users at the stage's end.
    pub users: usize,
    /// How long the ramp to `users` takes; seconds in JSON.
    #[serde(with = "duration_secs")]
    pub duration: Duration,
}

/// How many users the run wants at each moment: a list of stages (as Goose's test plan), then
/// the last stage's users held until a stop condition ends the run. A plain `-u N -r R` is one
/// stage: ramp to N over N/R seconds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadShape {
    /// The stages in order; empty: no users.
    pub stages: Vec<Stage>,
}

impl LoadShape {
    /// Ramp to `users` at `spawn_rate` users per second, then hold.
    pub fn ramp(users: usize, spawn_rate: f64) -> Self {
        let seconds = users as f64 / spawn_rate;
        let duration = Duration::try_from_secs_f64(seconds).unwrap_or(MAX_DURATION);
        LoadShape {
            stages: vec![Stage {
                users,
                duration: duration.min(MAX_DURATION),
            }],
        }
    }

    /// From `from` users now to `to` at `spawn_rate` per second (a new user count mid-run);
    /// a rate of 0 or less means at once.
    pub fn retarget(from: usize, to: usize, spawn_rate: f64) -> Self {
        let seconds = to.abs_diff(from) as f64 / spawn_rate;
        let duration = if spawn_rate > 0.0 {
            Duration::try_from_secs_f64(seconds).unwrap_or(MAX_DURATION)
        } else {
            Duration::ZERO
        };
        LoadShape {
            stages: vec![
                Stage {
                    users: from,
                    duration: Duration::ZERO,
                },
                Stage {
                    users: to,
                    duration: duration.min(MAX_DURATION),
                },
            ],
        }
    }

    /// Users wanted `t` after the start. Going up, a stage adds its k-th user just after
    /// (k−1)/rate; going down, it removes its k-th user at k/rate.
    pub fn target(&self, t: Duration) -> usize {
        let mut start = Duration::ZERO;
        let mut from = 0usize;
        for stage in &self.stages {
            let end = start + stage.duration;
            if t < end {
                let done = (t - start).as_nanos();
                let length = stage.duration.as_nanos().max(1);
                return if stage.users >= from {
                    let delta = (stage.users - from) as u128;
                    from + (done * delta).div_ceil(length) as usize
                } else {
                    let delta = (from - stage.users) as u128;
                    from - (done * delta / length) as usize
                };
            }
            start = end;
            from = stage.users;
        }
        from
    }

    /// The most users alive at once.
    pub fn max_users(&self) -> usize {
        self.stages.iter().map(|s| s.users).max().unwrap_or(0)
    }

    /// The stages' total length.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// True once the shape no longer changes after `t`.
    pub fn settled(&self, t: Duration) -> bool {
        t >= self.duration()
    }

    /// The first stage's users per second (the spawn rate of a plain ramp).
    pub fn spawn_rate(&self) -> f64 {
        match self.stages.first() {
            Some(s) if !s.duration.is_zero() => s.users as f64 / s.duration.as_secs_f64(),
            Some(s) => s.users as f64,
            None => 0.0,
        }
    }

    /// The shortest time between two changes of the user count (bounds how often the engine
    /// looks at the shape).
    pub fn step(&self) -> Duration {
        let mut from = 0usize;
        let mut step = Duration::from_millis(50);
        for stage in &self.stages {
            let delta = stage.users.abs_diff(from) as u32;
            // A stage of no length is a jump, not a ramp: it sets no pace.
            if delta > 0 && !stage.duration.is_zero() {
                step = step.min(stage.duration / delta);
            }
            from = stage.users;
        }
        step.max(Duration::from_millis(1))
    }
}

// ---------- grades ----------

/// How a measured value compares with its table (benchmark grading, memory verdicts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grade {
    /// Meets the target.
    Target,
    /// Misses the target but is within the acceptable limit.
    Acceptable,
    /// Beyond the acceptable limit.
    Poor,
}

impl Grade {
    /// The lowercase name, as the JSON result writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Target => "target",
            Grade::Acceptable => "acceptable",
            Grade::Poor => "poor",
        }
    }

    /// Below `target` is target, below `acceptable` acceptable, else poor.
    pub fn below(value: f64, target: f64, acceptable: f64) -> Grade {
        if value < target {
            Grade::Target
        } else if value < acceptable {
            Grade::Acceptable
        } else {
            Grade::Poor
        }
    }
}

// ---------- thresholds ----------

/// What a threshold looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ThresholdScope {
    /// Every request of the run.
    #[default]
    All,
    /// One statistics row: its name, and its method when given (`'POST /verify (standard)'`).
    Endpoint {
        /// The HTTP method (`POST`); `None`: any row of that name.
        method: Option<String>,
        /// The row's name (`/verify (standard)`).
        name: String,
    },
    /// The requests of one user class (`class=AuditorUser`).
    Class {
        /// The class's name.
        name: String,
    },
}

/// A pass/fail rule on the result, k6-style: `p95 < 500ms`, `failure-rate < 1%`,
/// `'POST /verify (standard)':p99 < 1s`, `class=BurstUser:rps > 50`, `avg < 200ms;
/// abort-on-fail=10s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// What it reads (stored as `p95`, `avg`, `fail_ratio`, …; grammar in `metric`).
    pub metric: Metric,
    /// How the measured value compares with `value`.
    pub op: Op,
    /// Milliseconds for time metrics, a fraction for `fail_ratio`, per second for `rps`, a
    /// count for `requests` and `failures`.
    pub value: f64,
    /// As written.
    pub text: String,
    /// Which requests the metric is measured on.
    #[serde(default)]
    pub scope: ThresholdScope,
    /// Checked every second while the run goes: a failure stops the run early.
    #[serde(default)]
    pub abort_on_fail: bool,
    /// Seconds into the run before an abort is considered (early numbers are noisy).
    #[serde(default)]
    pub grace_s: f64,
    /// Which latency a time metric reads: `service` (from the actual send), `corrected`
    /// (from the intended start), or `None` — the corrected one when the run has a schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
}

impl Threshold {
    /// Whether `measured` satisfies the rule.
    pub fn holds(&self, measured: f64) -> bool {
        self.op.holds(measured, self.value)
    }
}

/// Where `/metrics` is served while a run goes, and the token it then requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsPlan {
    /// Address and port the endpoint listens on.
    pub addr: std::net::SocketAddr,
    /// `--web-token`: the token every request must carry.
    pub token: Option<Secret>,
    /// `--web-auth user:pass`: HTTP Basic credentials, as `user:pass`.
    pub auth: Option<Secret>,
    /// `--read-only`: the page and data are served, control is refused.
    pub read_only: bool,
    /// How long the endpoint stays up after the run, so a scraper sees the final numbers.
    pub linger: Duration,
}

/// A threshold that cannot be parsed: the expression and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("threshold `{text}`: {why} — write e.g. \"p95 < 500ms\", \"failure-rate < 1%\", \"rps >= 50\", \"'POST /verify (standard)':p99 < 1s\", \"class=BurstUser:avg < 200ms; abort-on-fail=10s\"")]
pub struct ThresholdError {
    /// The threshold as written.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

/// Parses a threshold (grammar at `Threshold`).
pub fn parse_threshold(text: &str) -> Result<Threshold, ThresholdError> {
    let bad = |why: &str| ThresholdError {
        text: text.to_string(),
        why: why.to_string(),
    };
    let (rule, options) = match text.split_once(';') {
        Some((rule, options)) => (rule.trim(), Some(options.trim())),
        None => (text.trim(), None),
    };
    let (scope, rule) = split_scope(rule).map_err(|why| bad(&why))?;
    // The operator is the first run of comparison characters; one we do not have (`=>`,
    // `!=`) is named as such, not read as part of the metric.
    let is_op_char = |c: char| "<>=!~".contains(c);
    let start = rule
        .find(is_op_char)
        .ok_or_else(|| bad("no comparison (<, <=, >, >=, ==)"))?;
    let end = rule[start..]
        .find(|c: char| !is_op_char(c))
        .map_or(rule.len(), |n| start + n);
    let op = Op::try_from(rule[start..end].to_string()).map_err(|why| bad(&why))?;
    let (metric, value) = (rule[..start].trim(), rule[end..].trim());
    // `service.p95` / `corrected.p99` choose the latency.
    let (latency, metric) = match metric.split_once('.') {
        Some((kind @ ("service" | "corrected"), m)) => (Some(kind.to_string()), m.trim()),
        _ => (None, metric),
    };
    // k6 writes p(95) and http_req_duration; Locust users say failure-rate and fail_ratio.
    let metric = Metric::parse(metric).map_err(|e| bad(&e.to_string()))?;
    let number = |v: &str| -> Result<f64, ThresholdError> {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| bad(&format!("`{v}` is not a number ≥ 0")))
    };
    let value = match metric {
        Metric::FailRatio => match value.strip_suffix('%') {
            Some(pct) => number(pct)? / 100.0,
            None => number(value)?,
        },
        Metric::Rps => number(value.strip_suffix("/s").unwrap_or(value))?,
        Metric::Requests | Metric::Failures => number(value)?,
        Metric::Time(..) => time_ms(value).ok_or_else(|| {
            bad(&format!(
                "`{value}` is not a time — use ms, s or µs, e.g. 500ms"
            ))
        })?,
    };
    let (mut abort_on_fail, mut grace_s) = (false, 0.0);
    if let Some(options) = options.filter(|o| !o.is_empty()) {
        for option in options.split(',').map(str::trim) {
            match option.split_once('=') {
                None if option == "abort-on-fail" => {
                    abort_on_fail = true;
                    grace_s = 10.0;
                }
                Some(("abort-on-fail", grace)) => {
                    abort_on_fail = true;
                    grace_s = parse_duration(grace)
                        .map_err(|e| bad(&e.to_string()))?
                        .as_secs_f64();
                }
                _ => {
                    return Err(bad(&format!(
                        "unknown option `{option}` (abort-on-fail or abort-on-fail=GRACE)"
                    )))
                }
            }
        }
    }
    Ok(Threshold {
        metric,
        op,
        value,
        text: text.to_string(),
        scope,
        abort_on_fail,
        grace_s,
        latency,
    })
}

/// `500ms`, `1.5s`, `800µs`/`800us`, or a bare number of milliseconds (as k6).
fn time_ms(text: &str) -> Option<f64> {
    let t = text.trim();
    let (number, factor) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix("µs").or_else(|| t.strip_suffix("us")) {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (t, 1.0)
    };
    let n: f64 = number.trim().parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some(n * factor)
}

/// `'NAME':rule`, `"NAME":rule`, `class=NAME:rule` or just `rule`.
fn split_scope(rule: &str) -> Result<(ThresholdScope, &str), String> {
    let quoted = |s: &str| -> Option<(String, usize)> {
        let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let end = s[1..].find(quote)? + 1;
        Some((s[1..end].to_string(), end + 1))
    };
    let expect_colon = |rest: &str| -> Result<usize, String> {
        if rest.trim_start().starts_with(':') {
            Ok(rest.len() - rest.trim_start().len() + 1)
        } else {
            Err("a scope must be followed by `:` and the rule".into())
        }
    };
    if let Some(class) = rule.strip_prefix("class=") {
        let (name, used) = match quoted(class) {
            Some(q) => q,
            None => {
                let end = class
                    .find(':')
                    .ok_or("`class=NAME` must be followed by `:` and the rule")?;
                (class[..end].trim().to_string(), end)
            }
        };
        let rest = &class[used..];
        let colon = expect_colon(rest)?;
        return Ok((ThresholdScope::Class { name }, rest[colon..].trim()));
    }
    if let Some((name, used)) = quoted(rule) {
        let rest = &rule[used..];
        let colon = expect_colon(rest)?;
        let (method, name) = match name.split_once(' ') {
            Some((m, n)) if !m.is_empty() && m.chars().all(|c| c.is_ascii_uppercase()) => {
                (Some(m.to_string()), n.to_string())
            }
            _ => (None, name),
        };
        return Ok((
            ThresholdScope::Endpoint { method, name },
            rest[colon..].trim(),
        ));
    }
    Ok((ThresholdScope::All, rule))
}

// ---------- seeded random streams ----------

/// The seed of a run split into independent streams. The streams are part of the contract:
/// the README promises that one `--seed` gives the same task choices and `ctx.random` numbers
/// per user in every guest language, so these numbers never change within a release.
pub mod seed {
    /// What a derived seed is for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(u64)]
    pub enum Stream {
        /// A user's `random-u64` / `random-f64` (per user id).
        UserContext = 1,
        /// An instance's `wasi:random` secure stream (per group).
        WasiSecure = 2,
        /// An instance's `wasi:random` insecure stream (per group).
        WasiInsecure = 3,
        /// An instance's `wasi:random` insecure seed (per group).
        WasiInsecureSeed = 4,
        /// The engine's task choices and wait times of a user (per user id).
        UserTasks = 5,
        /// The waits before a lost instance is re-created (per group).
        GroupRestart = 6,
        /// The open model's Poisson inter-arrival times (one stream per run).
        Arrivals = 7,
    }

    /// Mixes the run seed, an id and a stream into an independent seed (splitmix64 finaliser).
    pub fn derive(seed: u64, id: u64, stream: Stream) -> u64 {
        mix(seed, id, stream as u64)
    }

    /// The id of a worker's `index`-th group (seeds its instance's WASI randomness).
    pub fn group_id(seed: u64, worker: u64, index: u64) -> u64 {
        mix(seed, worker, index)
    }

    fn mix(seed: u64, id: u64, salt: u64) -> u64 {
        let mut z = seed
            ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn arrival_times_follow_the_rate_stages() {
        let plan = |start: f64, stages: &[(f64, u64)]| super::ArrivalPlan {
            stages: stages
                .iter()
                .map(|&(per_s, secs)| super::RateStage {
                    per_s,
                    duration: std::time::Duration::from_secs(secs),
                })
                .collect(),
            start_per_s: start,
            pre_allocated: 1,
            max_users: 1,
            poisson: false,
            class_rates: Vec::new(),
        };
        let at = |p: &super::ArrivalPlan, n: f64| p.time_of(n).map(|d| d.as_secs_f64());
        let constant = plan(100.0, &[(100.0, 30)]);
        assert_eq!(at(&constant, 0.0), Some(0.0));
        assert!((at(&constant, 150.0).unwrap() - 1.5).abs() < 1e-9);
        assert_eq!(
            at(&constant, 3000.0),
            None,
            "3000 arrivals fill 30 s exactly"
        );
        assert_eq!(constant.expected_arrivals(), 3000.0);
        // 0 → 100/s over 10 s: N(t) = 5·t², so the 125th arrival is due at 5 s.
        let ramp = plan(0.0, &[(100.0, 10), (100.0, 10)]);
        assert!((at(&ramp, 125.0).unwrap() - 5.0).abs() < 1e-9);
        assert!((at(&ramp, 1000.0).unwrap() - 15.0).abs() < 1e-9);
        assert_eq!(ramp.expected_arrivals(), 1500.0);
        // Ramping down keeps times increasing.
        let down = plan(100.0, &[(0.0, 10)]);
        let times: Vec<f64> = (0..500).map(|i| at(&down, i as f64).unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(super::parse_rate("200/s"), Ok(200.0));
        assert_eq!(super::parse_rate("600/m"), Ok(10.0));
        assert!(super::parse_rate("200").is_err() && super::parse_rate("-1/s").is_err());
    }

    use super::*;

    #[test]
    fn durations_parse_as_documented() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("12").unwrap(), Duration::from_secs(12));
        for bad in ["", "abc", "5x", "m", "-3", "5m3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn stages_ramp_linearly_up_and_down() {
        let shape = LoadShape {
            stages: vec![
                Stage {
                    users: 10,
                    duration: Duration::from_secs(10),
                },
                Stage {
                    users: 10,
                    duration: Duration::from_secs(5),
                },
                Stage {
                    users: 0,
                    duration: Duration::from_secs(5),
                },
            ],
        };
        assert_eq!(shape.target(Duration::from_secs(0)), 0);
        assert_eq!(shape.target(Duration::from_secs(5)), 5);
        assert_eq!(shape.target(Duration::from_secs(12)), 10);
        assert_eq!(shape.target(Duration::from_millis(17_500)), 5);
        assert_eq!(shape.max_users(), 10);
        assert_eq!(shape.duration(), Duration::from_secs(20));
    }

    #[test]
    fn a_plain_ramp_adds_one_user_per_interval() {
        let shape = LoadShape::ramp(5, 4.0);
        assert_eq!(shape.spawn_rate(), 4.0);
        assert_eq!(shape.target(Duration::from_millis(1)), 1);
        assert_eq!(shape.target(Duration::from_millis(251)), 2);
        assert_eq!(shape.target(Duration::from_millis(1001)), 5);
        assert_eq!(shape.target(Duration::from_secs(60)), 5);
        assert_eq!(shape.step(), Duration::from_millis(50));
        assert_eq!(
            LoadShape::ramp(100, 1000.0).step(),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn targets_keep_their_base_path_and_refuse_bad_ports() {
        let t = Target::parse("http://user:pw@127.0.0.1:8080/api/v1/").unwrap();
        assert_eq!(
            (t.origin.as_str(), t.base_path.as_str()),
            ("http://127.0.0.1:8080", "/api/v1")
        );
        assert_eq!(t.resolve("/verify").unwrap(), "/api/v1/verify");
        assert_eq!(t.resolve("verify?x=1").unwrap(), "/api/v1/verify?x=1");
        assert_eq!(
            t.resolve("http://127.0.0.1:8080/api/v1/x").unwrap(),
            "/api/v1/x"
        );
        assert_eq!(t.resolve_location("/api/v1/next").unwrap(), "/api/v1/next");
        assert!(matches!(
            t.resolve("http://127.0.0.2:8080/"),
            Err(ResolveError::Denied(_))
        ));
        assert!(matches!(
            t.resolve_location("//evil/"),
            Err(ResolveError::Denied(_))
        ));
        assert_eq!(
            Target::credentials("http://alice:p%40ss@h:1/"),
            Some(("alice".into(), "p@ss".into()))
        );
        for bad in [
            "http://h:99999",
            "http://h:0",
            "http://h:x",
            "http://[::1]:70000",
        ] {
            let err = Target::parse(bad).unwrap_err().to_string();
            assert!(err.contains("is not a port"), "{bad}: {err}");
        }
        assert!(!Target::parse("http://u:secret@h:99999")
            .unwrap_err()
            .to_string()
            .contains("secret"));
        assert_eq!(Target::parse("http://[::1]:8080").unwrap().port, 8080);
    }

    #[test]
    fn secrets_are_redacted_also_encoded() {
        let r = Redactor::new(["s3cr et\"".to_string()]);
        let text = "a s3cr et\" b s3cr%20et%22 c s3cr et\\\" d";
        assert_eq!(r.redact(text), "a [redacted] b [redacted] c [redacted] d");
        assert!(Redactor::new([String::new()]).is_empty());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("100MB").unwrap(), 100_000_000);
        assert_eq!(parse_size("2048").unwrap(), 2048);
        assert!(parse_size("lots").is_err());
        assert_eq!(format_size(16 << 20), "16 MiB");
    }

    #[test]
    fn thresholds_parse() {
        let t = parse_threshold("p95 < 800ms").unwrap();
        assert_eq!(
            (t.metric.to_string(), t.op.as_str(), t.value),
            ("p95".to_string(), "<", 800.0)
        );
        assert_eq!(parse_threshold("failure-rate <= 1%").unwrap().value, 0.01);
        assert_eq!(parse_threshold("rps >= 50").unwrap().op, Op::Ge);
        assert!(parse_threshold("p101 < 3s").is_err());
        for (text, why) in [
            ("p95 => 1s", "unknown operator `=>`"),
            ("p95 != 1s", "unknown operator `!=`"),
            ("latency < 1s", "unknown metric `latency`"),
            ("http_req_duration < 1s", "needs a statistic"),
            ("checks > 99%", "k6's `checks` has no counterpart here"),
        ] {
            let err = parse_threshold(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
        let k6 = parse_threshold("http_req_duration.p(95) < 500").unwrap();
        assert_eq!(
            (k6.metric.to_string(), k6.value),
            ("p95".to_string(), 500.0)
        );
        assert_eq!(parse_threshold("http_req_failed < 1%").unwrap().value, 0.01);
    }

    #[test]
    fn thresholds_take_every_metric_unit_and_scope() {
        let ms = |t: &str| parse_threshold(t).unwrap().value;
        assert_eq!(ms("p95<500ms"), 500.0);
        assert_eq!(ms("p99 < 1.5s"), 1500.0);
        assert_eq!(ms("p99.9 < 800µs"), 0.8);
        assert_eq!(ms("avg < 800us"), 0.8);
        assert_eq!(ms("max<2000"), 2000.0, "a bare number is ms, as k6");
        assert_eq!(ms("fail_ratio < 0.05"), 0.05);
        assert_eq!(ms("failure-rate < 5%"), 0.05);
        assert_eq!(ms("rps > 50/s"), 50.0);
        assert_eq!(ms("requests >= 1000"), 1000.0);
        assert_eq!(ms("failures == 0"), 0.0);
        assert_eq!(
            parse_threshold("p(95) < 200").unwrap().metric.to_string(),
            "p95"
        );
        assert_eq!(
            parse_threshold("p50 < 2").unwrap().metric.percentile(),
            Some(50.0)
        );
        for metric in ["p90", "p99.99", "min", "median"] {
            assert!(
                parse_threshold(&format!("{metric} < 1s")).is_ok(),
                "{metric}"
            );
        }
        let t = parse_threshold("'POST /verify (standard)':p95<800ms").unwrap();
        assert_eq!(
            t.scope,
            ThresholdScope::Endpoint {
                method: Some("POST".into()),
                name: "/verify (standard)".into()
            }
        );
        let t = parse_threshold("\"/health\" : p99 < 50ms").unwrap();
        assert_eq!(
            t.scope,
            ThresholdScope::Endpoint {
                method: None,
                name: "/health".into()
            }
        );
        let t = parse_threshold("class=BurstUser:rps > 5").unwrap();
        assert_eq!(
            t.scope,
            ThresholdScope::Class {
                name: "BurstUser".into()
            }
        );
        let t = parse_threshold("class='Heavy User': p95 < 3s; abort-on-fail=30s").unwrap();
        assert_eq!(
            t.scope,
            ThresholdScope::Class {
                name: "Heavy User".into()
            }
        );
        assert!(t.abort_on_fail && t.grace_s == 30.0);
        assert!(parse_threshold("p95 < 1s; abort-on-fail").unwrap().grace_s == 10.0);
        for (bad, why) in [
            ("p95 about 3", "no comparison"),
            ("p95 < fast", "not a time"),
            ("latency < 3s", "unknown metric"),
            ("rps > -1", "not a number"),
            ("'x' p95 < 1s", "followed by `:`"),
            ("p95 < 1s; abort", "unknown option"),
        ] {
            let err = parse_threshold(bad).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains(why), "{bad}: {err}");
        }
    }
}

#[cfg(test)]
mod shard_tests {
    use super::*;

    /// Every count of users, arrivals, iterations or rows splits into shares that add up to
    /// it, each global item owned by exactly one shard, for every shard count up to 64.
    #[test]
    fn shares_sum_to_the_plan() {
        for count in 1..=64usize {
            for total in 0..=300u64 {
                let shards: Vec<ShardPlan> =
                    (0..count).map(|index| ShardPlan { index, count }).collect();
                let shares: u64 = shards.iter().map(|s| s.share(total)).sum();
                assert_eq!(shares, total, "{total} over {count}");
                for k in 0..total {
                    let owners: Vec<_> = shards.iter().filter(|s| s.owns(k)).collect();
                    assert_eq!(owners.len(), 1);
                    let s = owners[0];
                    // The owner's local items map back onto the global ones.
                    assert!((0..s.share(total)).any(|j| s.global(j) == k));
                }
            }
        }
        assert_eq!(ShardPlan { index: 0, count: 1 }.share(17), 17);
    }

    #[test]
    fn shard_ids_and_start_times_parse() {
        assert_eq!(
            ShardPlan::parse("2/8"),
            Ok(ShardPlan { index: 2, count: 8 })
        );
        assert!(ShardPlan::parse("8/8")
            .unwrap_err()
            .contains("below the count"));
        assert!(ShardPlan::parse("x").unwrap_err().contains("INDEX/COUNT"));
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3"), ("PERFHOST_SHARD_COUNT", "4")]);
        assert_eq!(ShardPlan::auto(&k8s), Ok(ShardPlan { index: 3, count: 4 }));
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(
            ShardPlan::auto(&slurm),
            Ok(ShardPlan { index: 1, count: 3 })
        );
        assert!(ShardPlan::auto(&env(&[]))
            .unwrap_err()
            .contains("JOB_COMPLETION_INDEX"));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0.0));
        assert_eq!(parse_rfc3339("2026-11-27T13:32:10Z"), Ok(1795786330.0));
        assert_eq!(
            parse_rfc3339("2026-11-27T15:32:10.5+02:00"),
            Ok(1795786330.5)
        );
        assert!(parse_rfc3339("tomorrow").is_err());
        assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_err());
    }
}
