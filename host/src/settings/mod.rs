//! From the command line, the environment, a scenario and `perfhost.toml` to one resolved
//! `Plan`. Every setting goes through one layered mechanism: each source gives a `Settings`
//! (every field optional), the first layer that sets a field wins — CLI > environment >
//! scenario > file > default — and its name is recorded for `--print-config`.

pub mod command;
pub mod run_flags;
pub mod scenario;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use perfhost_core::client::DEFAULT_MAX_BODY_SIZE;
use perfhost_core::plan::{
    format_duration, format_size, parse_duration, parse_size, ClassChoice, ClientOptions,
    DurationError, FieldError, LoadShape, Outputs, Plan, ProcessQuery, ProfilePlan, SandboxLimits,
    Secret, SizeError, Source, StopConditions, Target,
};
use perfhost_core::plugin::{builtin, DEFAULT_CPU_BUDGET, DEFAULT_MEMORY_CAP};
use scenario::Scenario;

/// Options of `perfhost run` (Locust's names where Locust has one).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Behaviour plugin: a .wasm component or a built-in name (auditor_user, burst_user,
    /// heavy_user; http_get for any service, one path in a loop; auditor_benchmark;
    /// bench_verify). Repeat to mix; default: all three Auditor built-ins (weights 7/2/1).
    /// `-f` as Locust's -f.
    #[arg(short = 'f', long = "plugin", value_name = "FILE|NAME")]
    pub plugins: Vec<String>,
    /// A pass/fail rule, repeatable: "p95<500ms", "failure-rate<1%", "rps>=50",
    /// "'POST /verify (standard)':p99<1s", "class=BurstUser:avg<200ms; abort-on-fail=10s".
    /// With thresholds they decide the test's verdict.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// Exit code when a request or task failed and there are no thresholds [default: 1].
    #[arg(long = "exit-code-on-error", value_name = "N")]
    pub exit_code_on_error: Option<u8>,
    /// Write a JUnit XML file: one test case per threshold (or one for the run's failures).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Serve live Prometheus metrics at http://HOST:PORT/metrics while the run goes (0 picks
    /// a free port; the address is printed).
    #[arg(long = "metrics-port", value_name = "PORT")]
    pub metrics_port: Option<u16>,
    /// Serve the web UI while the run goes (as `perfhost ui --autostart`): live charts,
    /// statistics, downloads, and control (users, pause, stop) at http://127.0.0.1:8089/.
    #[arg(long)]
    pub web: bool,
    /// Port of the web UI [default: 8089; 0 picks a free one].
    #[arg(long = "web-port", value_name = "PORT")]
    pub web_port: Option<u16>,
    /// With the web UI: start the test at once instead of waiting for the form.
    #[arg(long)]
    pub autostart: bool,
    /// With the web UI: quit this long after a test ends (a bare number is seconds), as
    /// Locust's --autoquit [default: keep serving until Ctrl-C].
    #[arg(long, value_parser = parse_duration_arg, value_name = "SECONDS")]
    pub autoquit: Option<Duration>,
    /// With the web UI: serve the page and data, refuse every control request (403).
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// With the web UI: require HTTP Basic credentials `USER:PASS` (a browser asks for them).
    #[arg(
        long = "web-auth",
        value_name = "USER:PASS",
        env = "PERFHOST_WEB_AUTH",
        hide_env_values = true
    )]
    pub web_auth: Option<String>,
    /// Write the histograms of every second (all requests, and each endpoint) as an
    /// HdrHistogram interval log (.hlog), which HdrHistogram's tools read.
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,
    /// Run as shard INDEX of COUNT processes (0-based, e.g. 2/8): this process runs every
    /// COUNT-th user, arrival, iteration and unique data row, and its result says so for
    /// `perfhost merge`. `auto`: from a Kubernetes Indexed Job (JOB_COMPLETION_INDEX,
    /// PERFHOST_SHARD_COUNT) or a Slurm array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT).
    #[arg(long, value_name = "INDEX/COUNT|auto")]
    pub shard: Option<String>,
    /// Load and compile everything, then start sending at this wall-clock time (RFC 3339,
    /// e.g. 2026-12-01T10:00:00Z); not ready by then: exit 5.
    #[arg(long = "start-at", value_name = "TIME")]
    pub start_at: Option<String>,
    /// Address the web UI or metrics endpoint binds to [default: 127.0.0.1]; anything but
    /// loopback needs --web-token or --web-auth.
    #[arg(long = "web-host", value_name = "ADDR")]
    pub web_host: Option<String>,
    /// Every request to the endpoint must send `Authorization: Bearer TOKEN`.
    #[arg(
        long = "web-token",
        value_name = "TOKEN",
        env = "PERFHOST_WEB_TOKEN",
        hide_env_values = true
    )]
    pub web_token: Option<String>,
    /// Keep the metrics endpoint up this long after the run, so a scraper sees the final
    /// numbers [default: 0s].
    #[arg(long = "metrics-linger", value_parser = parse_duration_arg, value_name = "D")]
    pub metrics_linger: Option<Duration>,
    /// Accepted for Locust command lines: perfhost runs headless unless a web UI is asked for.
    #[arg(long)]
    pub headless: bool,
    /// Only the summary at the end, no live status line.
    #[arg(long = "only-summary")]
    pub only_summary: bool,
    /// Print the statistics table every 10 s while the run goes.
    #[arg(long = "print-stats")]
    pub print_stats: bool,
    /// With --csv: also a row per endpoint and interval in PREFIX_stats_history.csv.
    #[arg(long = "csv-full-history")]
    pub csv_full_history: bool,
    /// Target origin, e.g. http://127.0.0.1:8000 (else LOAD_TEST_HOST, else the built-in demo server).
    #[arg(short = 'H', long = "host", visible_alias = "url", value_name = "URL")]
    pub host: Option<String>,
    /// Number of concurrent virtual users [default: 10].
    #[arg(short = 'u', long)]
    pub users: Option<usize>,
    /// Users started per second [default: all at once].
    #[arg(short = 'r', long = "spawn-rate")]
    pub spawn_rate: Option<f64>,
    /// Open workload model: this many task arrivals per second (`200/s`, `600/m`), each run
    /// by a free user, whatever the server's speed (k6's constant-arrival-rate).
    #[arg(long, value_name = "N/s")]
    pub rate: Option<String>,
    /// With --rate: the most users the pool may hold; an arrival finding none free beyond
    /// it is dropped and counted [default: max(100, 1 s of arrivals)].
    #[arg(long = "max-users")]
    pub max_users: Option<usize>,
    /// With --rate: users created before the first arrival [default: 0.1 s of arrivals].
    #[arg(long = "pre-allocated-users")]
    pub pre_allocated_users: Option<usize>,
    /// With --rate: `even` spacing of arrivals, or `poisson` (exponential gaps) [default: even].
    #[arg(long, value_name = "even|poisson")]
    pub arrivals: Option<String>,
    /// Stop after this long: 90s, 5m, 1h30m (a bare number is seconds) [default: 60s].
    #[arg(short = 't', long = "run-time", value_parser = parse_duration_arg, allow_hyphen_values = true)]
    pub run_time: Option<Duration>,
    /// Stop after this many task runs in total.
    #[arg(short = 'n', long)]
    pub iterations: Option<u64>,
    /// Run only these user classes (repeatable).
    #[arg(long = "user-class", value_name = "NAME")]
    pub user_classes: Vec<String>,
    /// Seed of every random choice (same seed ⇒ same request stream).
    #[arg(long)]
    pub seed: Option<u64>,
    /// On stop, how long users may finish their current task before they are cancelled
    /// [default: 10s].
    #[arg(long = "stop-timeout", value_parser = parse_duration_arg, allow_hyphen_values = true)]
    pub stop_timeout: Option<Duration>,
    /// Timeout of one request [default: 30s].
    #[arg(long = "request-timeout", value_parser = parse_duration_arg, allow_hyphen_values = true)]
    pub request_timeout: Option<Duration>,
    /// Drop the numbers of the ramp-up once all users are running.
    #[arg(long = "reset-stats")]
    pub reset_stats: bool,
    /// Print the final statistics as JSON to stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the full JSON result here (default: reports/<run-name>_<timestamp>.json).
    #[arg(long = "json-file", value_name = "FILE")]
    pub json_file: Option<PathBuf>,
    /// Print every request and response (for plugin authors; use with -u 1 -n 1).
    #[arg(long)]
    pub trace: bool,
    /// Test data for plugins: NAME=FILE[:shared|unique|per-user] (CSV with header or JSON lines).
    #[arg(long = "data", value_name = "NAME=FILE")]
    pub data: Vec<String>,
    /// A configuration value plugins read with ctx.config(KEY).
    #[arg(long = "config-value", value_name = "KEY=VALUE")]
    pub config_values: Vec<String>,
    /// Read settings from this file (default: ./perfhost.toml if present).
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the resolved plan and where each value came from, then exit.
    #[arg(long = "print-config")]
    pub print_config: bool,
    /// Run a scenario: a preset name (see `perfhost scenario list`), a .toml file, or `all`.
    /// Any flag given on the command line overrides the scenario's value.
    #[arg(long, value_name = "NAME|FILE")]
    pub scenario: Option<String>,
    /// Print the resolved plan and its user/time curve without sending a request.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// With `--scenario all`: the pause between scenarios.
    #[arg(long, value_parser = parse_duration_arg, default_value = "30s", allow_hyphen_values = true)]
    pub pause: Duration,
    /// Name of the run, used in report file names.
    #[arg(long = "run-name")]
    pub run_name: Option<String>,
    /// Guest CPU time a plugin may compute without a break (without calling the host) before
    /// its instance is stopped [default: 1s].
    #[arg(long = "cpu-budget", value_parser = parse_duration_arg, allow_hyphen_values = true)]
    pub cpu_budget: Option<Duration>,
    /// Memory one plugin instance (up to 500 users of one class) may use, in MiB
    /// [default: 1024].
    #[arg(long = "memory-cap-mib")]
    pub memory_cap_mib: Option<usize>,
    /// Do not write the default JSON report file.
    #[arg(long = "no-report")]
    pub no_report: bool,
    /// Accept any TLS certificate (self-signed test servers).
    #[arg(long)]
    pub insecure: bool,
    /// Write Locust-compatible CSV files PREFIX_stats.csv, PREFIX_stats_history.csv (appended
    /// while the run goes), PREFIX_failures.csv and PREFIX_exceptions.csv.
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
    /// Write a self-contained HTML report with charts.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also trust the CA certificates in this PEM file (https targets).
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Log level: DEBUG, INFO, WARNING, ERROR (as Locust's -L) [default: INFO].
    #[arg(
        short = 'L',
        long = "loglevel",
        visible_alias = "log-level",
        value_name = "LEVEL"
    )]
    pub log_level: Option<String>,
    /// Bytes of a response body kept at most: 16MiB, 100MB, … (the rest is read, timed and
    /// counted; a plugin reading a larger body records a failure naming this limit)
    /// [default: 16MiB].
    #[arg(long = "max-body-size", value_parser = parse_size_arg, value_name = "SIZE")]
    pub max_body_size: Option<usize>,
    /// Worker threads of the engine [default: the CPUs this process may use]. A container
    /// without a CPU limit sees every core of its node: a scheduler's shard says how many.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    /// Run even when the plan's estimated memory exceeds what the machine has available.
    #[arg(long)]
    pub force: bool,
    /// Sample the target process's memory during the run and judge it for leaks (a leak
    /// warning then exits 4). The process: the built-in demo server, else the one listening
    /// on a loopback target's port; or name it with --profile-pid/--profile-port/
    /// --profile-match. On by default for the built-in target (reported, exit code unchanged).
    #[arg(long)]
    pub profile: bool,
    /// Profile the process with this pid (implies --profile).
    #[arg(long = "profile-pid", value_name = "PID")]
    pub profile_pid: Option<u32>,
    /// Profile the process listening on this local TCP port (implies --profile).
    #[arg(long = "profile-port", value_name = "PORT")]
    pub profile_port: Option<u16>,
    /// Profile the process whose command line contains TEXT (implies --profile).
    #[arg(long = "profile-match", value_name = "TEXT")]
    pub profile_match: Option<String>,
    /// Seconds between memory samples [default: 1s].
    #[arg(long = "profile-interval", value_parser = parse_duration_arg, allow_hyphen_values = true)]
    pub profile_interval: Option<Duration>,
    /// Profile the process alone, not its children (workers).
    #[arg(long = "profile-no-children")]
    pub profile_no_children: bool,
}

/// One layer of settings, every field optional: `perfhost.toml` as a whole, and what the
/// command line, the environment and a scenario set. Names are the file's keys.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    pub host: Option<String>,
    pub plugins: Option<Vec<String>>,
    pub users: Option<usize>,
    pub spawn_rate: Option<f64>,
    pub rate: Option<String>,
    pub max_users: Option<usize>,
    pub pre_allocated_users: Option<usize>,
    pub arrivals: Option<String>,
    #[serde(default, deserialize_with = "duration_setting")]
    pub run_time: Option<Duration>,
    pub iterations: Option<u64>,
    pub user_classes: Option<Vec<String>>,
    pub seed: Option<u64>,
    #[serde(default, deserialize_with = "duration_setting")]
    pub stop_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration_setting")]
    pub request_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration_setting")]
    pub cpu_budget: Option<Duration>,
    pub memory_cap_mib: Option<usize>,
    pub log_level: Option<String>,
    pub run_name: Option<String>,
    pub reset_stats: Option<bool>,
    pub trace: Option<bool>,
    pub insecure: Option<bool>,
    pub ca_cert: Option<PathBuf>,
    pub json_file: Option<PathBuf>,
    pub csv: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub data: Option<Vec<String>>,
    #[serde(default, deserialize_with = "size_setting")]
    pub max_body_size: Option<usize>,
    pub only_summary: Option<bool>,
    pub print_stats: Option<bool>,
    pub csv_full_history: Option<bool>,
    pub exit_code_on_error: Option<u8>,
    pub junit: Option<PathBuf>,
    pub thresholds: Option<Vec<String>>,
    pub web_host: Option<String>,
    pub web_port: Option<u16>,
    /// Values for plugins (`ctx.config(KEY)`); merged over layers, the higher one winning.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// A setting written as text or as a bare number (`"2m"` or `120`), as text; anything else
/// is one line saying what to write (not serde's "did not match any variant").
struct TextOrNumber(&'static str);

impl serde::de::Visitor<'_> for TextOrNumber {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// A duration in a settings file: `"2m"`, or a number of seconds.
fn duration_setting<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = d.deserialize_any(TextOrNumber(
        "a duration such as \"90s\", \"5m\" or \"1h30m\", or a number of seconds",
    ))?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A size in a settings file: `"16MiB"`, or a number of bytes.
fn size_setting<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let text = d.deserialize_any(TextOrNumber(
        "a size such as \"16MiB\" or \"100MB\", or a number of bytes",
    ))?;
    parse_size(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The settings an environment variable can carry: `PERFHOST_<NAME>` (e.g. `PERFHOST_USERS`,
/// `PERFHOST_JSON_FILE`), as Locust reads `LOCUST_<NAME>`; `LOAD_TEST_HOST` for the host, as
/// the Auditor suite does. Every key of `perfhost.toml` but the `[config]` table (plugins'
/// values: `--config-value`); lists (`plugins`, `user-classes`, `data`, `thresholds`) are
/// comma-separated. A test checks this list against `Settings`' fields.
pub const ENV_SETTINGS: [&str; 35] = [
    "host",
    "plugins",
    "users",
    "spawn-rate",
    "rate",
    "max-users",
    "pre-allocated-users",
    "arrivals",
    "run-time",
    "iterations",
    "user-classes",
    "seed",
    "stop-timeout",
    "request-timeout",
    "cpu-budget",
    "memory-cap-mib",
    "log-level",
    "run-name",
    "reset-stats",
    "trace",
    "insecure",
    "ca-cert",
    "json-file",
    "csv",
    "html",
    "data",
    "max-body-size",
    "only-summary",
    "print-stats",
    "csv-full-history",
    "exit-code-on-error",
    "junit",
    "thresholds",
    "web-host",
    "web-port",
];

/// `PERFHOST_<KEY>`: the environment variable of a setting.
pub fn env_var(key: &str) -> String {
    format!("PERFHOST_{}", key.replace('-', "_").to_ascii_uppercase())
}

impl Settings {
    /// Sets `key` (a settings-file name) from text, as an environment variable gives it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
            let v = v.trim();
            v.parse().map_err(|_| match v.parse::<f64>() {
                Ok(n) if n < 0.0 => format!("`{v}` cannot be negative"),
                Ok(_) if v.parse::<i128>().is_ok() => format!("`{v}` is too large"),
                Ok(_) => format!("`{v}` is not a whole number"),
                Err(_) => format!("`{v}` is not a number"),
            })
        }
        fn flag(v: &str) -> Result<bool, String> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" | "" => Ok(false),
                _ => Err(format!("`{v}` is not true or false")),
            }
        }
        let duration = |v: &str| parse_duration(v).map_err(|e| e.to_string());
        let list = |v: &str| v.split(',').map(|s| s.trim().to_string()).collect();
        match key {
            "host" => self.host = Some(value.to_string()),
            "plugins" => self.plugins = Some(list(value)),
            "users" => self.users = Some(number(value)?),
            "spawn-rate" => self.spawn_rate = Some(number(value)?),
            "rate" => self.rate = Some(value.to_string()),
            "max-users" => self.max_users = Some(number(value)?),
            "pre-allocated-users" => self.pre_allocated_users = Some(number(value)?),
            "arrivals" => self.arrivals = Some(value.to_string()),
            "run-time" => self.run_time = Some(duration(value)?),
            "iterations" => self.iterations = Some(number(value)?),
            "user-classes" => self.user_classes = Some(list(value)),
            "seed" => self.seed = Some(number(value)?),
            "stop-timeout" => self.stop_timeout = Some(duration(value)?),
            "request-timeout" => self.request_timeout = Some(duration(value)?),
            "cpu-budget" => self.cpu_budget = Some(duration(value)?),
            "memory-cap-mib" => self.memory_cap_mib = Some(number(value)?),
            "log-level" => self.log_level = Some(value.to_string()),
            "run-name" => self.run_name = Some(value.to_string()),
            "reset-stats" => self.reset_stats = Some(flag(value)?),
            "trace" => self.trace = Some(flag(value)?),
            "insecure" => self.insecure = Some(flag(value)?),
            "ca-cert" => self.ca_cert = Some(PathBuf::from(value)),
            "json-file" => self.json_file = Some(PathBuf::from(value)),
            "csv" => self.csv = Some(PathBuf::from(value)),
            "html" => self.html = Some(PathBuf::from(value)),
            "data" => self.data = Some(list(value)),
            "max-body-size" => {
                self.max_body_size = Some(parse_size(value).map_err(|e| e.to_string())?)
            }
            "only-summary" => self.only_summary = Some(flag(value)?),
            "web-host" => self.web_host = Some(value.to_string()),
            "web-port" => self.web_port = Some(number(value)?),
            "print-stats" => self.print_stats = Some(flag(value)?),
            "csv-full-history" => self.csv_full_history = Some(flag(value)?),
            "exit-code-on-error" => self.exit_code_on_error = Some(number(value)?),
            "junit" => self.junit = Some(PathBuf::from(value)),
            "threshold" | "thresholds" => self.thresholds = Some(list(value)),
            _ => return Err(format!("unknown setting `{key}`")),
        }
        Ok(())
    }

    /// What the command line sets (flags given, values present).
    fn from_args(args: &RunArgs) -> Result<Self, ConfigError> {
        let mut config = BTreeMap::new();
        for kv in &args.config_values {
            let (k, v) = kv.split_once('=').ok_or_else(|| ConfigError::Invalid {
                setting: "--config-value".into(),
                message: format!("`{kv}`: expected KEY=VALUE"),
            })?;
            config.insert(k.to_string(), v.to_string());
        }
        let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        let flag = |b: bool| b.then_some(true);
        Ok(Settings {
            host: args.host.clone(),
            plugins: some_vec(&args.plugins),
            users: args.users,
            spawn_rate: args.spawn_rate,
            rate: args.rate.clone(),
            max_users: args.max_users,
            pre_allocated_users: args.pre_allocated_users,
            arrivals: args.arrivals.clone(),
            run_time: args.run_time,
            iterations: args.iterations,
            user_classes: some_vec(&args.user_classes),
            seed: args.seed,
            stop_timeout: args.stop_timeout,
            request_timeout: args.request_timeout,
            cpu_budget: args.cpu_budget,
            memory_cap_mib: args.memory_cap_mib,
            log_level: args.log_level.clone(),
            run_name: args.run_name.clone(),
            reset_stats: flag(args.reset_stats),
            trace: flag(args.trace),
            insecure: flag(args.insecure),
            ca_cert: args.ca_cert.clone(),
            json_file: args.json_file.clone(),
            csv: args.csv.clone(),
            html: args.html.clone(),
            data: some_vec(&args.data),
            max_body_size: args.max_body_size,
            only_summary: flag(args.only_summary),
            print_stats: flag(args.print_stats),
            csv_full_history: flag(args.csv_full_history),
            exit_code_on_error: args.exit_code_on_error,
            junit: args.junit.clone(),
            thresholds: some_vec(&args.thresholds),
            web_host: args.web_host.clone(),
            web_port: args.web_port,
            config,
        })
    }

    /// What the environment sets: `LOAD_TEST_HOST` and `PERFHOST_<NAME>`.
    fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut settings = Settings::default();
        for key in ENV_SETTINGS {
            let var = env_var(key);
            let value = match env(&var).filter(|v| !v.trim().is_empty()) {
                Some(v) => v,
                None if key == "host" => match env("LOAD_TEST_HOST") {
                    Some(v) if !v.trim().is_empty() => v,
                    _ => continue,
                },
                None => continue,
            };
            settings
                .set(key, &value)
                .map_err(|message| ConfigError::Invalid {
                    setting: var,
                    message,
                })?;
        }
        Ok(settings)
    }

    /// What a scenario sets.
    fn from_scenario(sc: &Scenario) -> Self {
        Settings {
            plugins: sc.plugins.clone(),
            users: sc.users,
            spawn_rate: sc.spawn_rate,
            run_time: sc.duration(),
            rate: sc.rate.clone(),
            max_users: sc.max_users,
            pre_allocated_users: sc.pre_allocated_users,
            arrivals: sc.arrivals.clone(),
            user_classes: (!sc.user_classes.is_empty()).then(|| sc.user_classes.clone()),
            run_name: Some(sc.name.clone()),
            config: sc.config.clone(),
            ..Settings::default()
        }
    }
}

/// Configuration problems: one line naming the thing and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Read(#[from] perfhost_core::input::InputError),
    /// A field of a settings or scenario file, with its file and line.
    #[error("{0}")]
    Field(#[from] FieldError),
    /// A setting with a value that cannot be used.
    #[error("{setting}: {message}")]
    Invalid { setting: String, message: String },
}

impl ConfigError {
    fn invalid(setting: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            setting: setting.to_string(),
            message: message.into(),
        }
    }
}

/// The layers in precedence order, and the source of every value picked from them.
struct Layers<'a> {
    layers: Vec<(Source, &'a Settings)>,
    sources: BTreeMap<&'static str, Source>,
}

impl<'a> Layers<'a> {
    /// The value of the first layer that sets `key`; records where it came from.
    fn pick<T>(&mut self, key: &'static str, get: impl Fn(&'a Settings) -> Option<T>) -> Option<T> {
        for &(source, settings) in &self.layers {
            if let Some(value) = get(settings) {
                self.sources.insert(key, source);
                return Some(value);
            }
        }
        self.sources.insert(key, Source::Default);
        None
    }

    /// `pick`, with a default.
    fn pick_or<T>(
        &mut self,
        key: &'static str,
        default: T,
        get: impl Fn(&'a Settings) -> Option<T>,
    ) -> T {
        self.pick(key, get).unwrap_or(default)
    }

    /// Records that `key` came from `source` (values not picked from one layer).
    fn note(&mut self, key: &'static str, source: Source) {
        self.sources.insert(key, source);
    }
}

/// The web UI's default port (Locust's).
pub const DEFAULT_WEB_PORT: u16 = 8089;

/// The web endpoint from `--web`/`--web-port` or `--metrics-port`, `--web-host`,
/// `--web-token`, `--web-auth`: loopback unless a token or credentials guard it.
fn metrics_plan(
    args: &RunArgs,
    l: &mut Layers<'_>,
) -> Result<Option<perfhost_core::plan::MetricsPlan>, ConfigError> {
    let token = args.web_token.clone().filter(|t| !t.is_empty()).map(Secret);
    // The token travels in a header and a cookie: a control character, a space or `;` there
    // would break them (and was once a panic of the web thread).
    if token.as_ref().is_some_and(|t| {
        !t.0.bytes()
            .all(|b| b.is_ascii_graphic() && !b"\",;\\".contains(&b))
    }) {
        return Err(ConfigError::invalid(
            "--web-token",
            "use printable ASCII without spaces, quotes, commas, semicolons or backslashes (e.g. `openssl rand -hex 16`)",
        ));
    }
    let auth = match args.web_auth.as_deref().filter(|a| !a.is_empty()) {
        Some(a)
            if a.split_once(':')
                .is_some_and(|(u, p)| !u.is_empty() && !p.is_empty()) =>
        {
            Some(Secret(a.to_string()))
        }
        Some(_) => {
            return Err(ConfigError::invalid(
                "--web-auth",
                "expected USER:PASS, e.g. --web-auth admin:s3cret",
            ))
        }
        None => None,
    };
    // A config file's web-host/web-port are the web UI's (Locust's locust.conf); the metrics
    // endpoint of a headless run binds where the command line says.
    let (web_host, web_port) = if args.web {
        (
            l.pick("web-host", |s| s.web_host.clone()),
            l.pick("web-port", |s| s.web_port),
        )
    } else {
        (args.web_host.clone(), None)
    };
    if !args.web {
        for (given, flag) in [
            (args.autostart, "--autostart"),
            (args.autoquit.is_some(), "--autoquit"),
            (args.read_only, "--read-only"),
            (auth.is_some(), "--web-auth"),
            (args.web_port.is_some(), "--web-port"),
        ] {
            if given {
                return Err(ConfigError::invalid(
                    flag,
                    "configures the web UI: use `perfhost ui`, or add --web",
                ));
            }
        }
    } else if args.metrics_port.is_some() {
        return Err(ConfigError::invalid(
            "--metrics-port",
            "the web UI serves /metrics on its own port (--web-port): drop --metrics-port",
        ));
    }
    let port = match (args.web, args.metrics_port) {
        (true, _) => web_port.unwrap_or(DEFAULT_WEB_PORT),
        (false, Some(port)) => port,
        (false, None) => {
            if args.web_host.is_some() || args.metrics_linger.is_some() {
                return Err(ConfigError::invalid(
                    "--web-host",
                    "configures the metrics endpoint or web UI: give --metrics-port PORT or --web too",
                ));
            }
            return Ok(None);
        }
    };
    let host = web_host.as_deref().unwrap_or("127.0.0.1");
    let ip: std::net::IpAddr = match host {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        h => h.trim_matches(['[', ']']).parse().map_err(|_| {
            ConfigError::invalid(
                "--web-host",
                format!("`{h}` is not an IP address (e.g. 127.0.0.1, ::1, 0.0.0.0)"),
            )
        })?,
    };
    if !ip.is_loopback() && token.is_none() && auth.is_none() {
        return Err(ConfigError::invalid(
            "--web-host",
            format!("{ip} is reachable from other machines: give --web-token TOKEN (or PERFHOST_WEB_TOKEN), or --web-auth USER:PASS, so that every request must carry it"),
        ));
    }
    Ok(Some(perfhost_core::plan::MetricsPlan {
        addr: std::net::SocketAddr::new(ip, port),
        token,
        auth,
        read_only: args.read_only,
        linger: args.metrics_linger.unwrap_or_default(),
    }))
}

/// The open model from `--rate` and its companions, or `None` for the closed model; the
/// flags that belong to the other model are refused with the one to use instead.
fn open_model(
    l: &mut Layers<'_>,
    run_time: Option<Duration>,
    iterations: Option<u64>,
    scenario: Option<&Scenario>,
) -> Result<Option<perfhost_core::plan::ArrivalPlan>, ConfigError> {
    let max_users = l.pick("max-users", |s| s.max_users);
    let pre_allocated = l.pick("pre-allocated-users", |s| s.pre_allocated_users);
    let spacing = l.pick("arrivals", |s| s.arrivals.clone());
    // A scenario's rate stages, unless the command line or the environment give --rate.
    let rate_given = l.pick("rate", |s| s.rate.clone());
    let from_cli = matches!(l.sources.get("rate"), Some(Source::Cli | Source::Env));
    let staged = scenario.filter(|sc| !sc.rate_stages.is_empty() && !from_cli);
    let per_class = scenario.filter(|sc| !sc.class_rates.is_empty() && !from_cli);
    let rate = match (staged, per_class, rate_given) {
        (Some(sc), _, _) => {
            l.note("rate", Source::Scenario);
            Some(format!("{}/s", sc.rate_stages[0].per_s))
        }
        (None, Some(sc), _) => {
            l.note("rate", Source::Scenario);
            Some(format!(
                "{}/s",
                sc.class_rates.iter().map(|(_, r)| r).sum::<f64>()
            ))
        }
        (None, None, rate) => rate,
    };
    let Some(rate) = rate else {
        for (given, flag) in [
            (max_users.is_some(), "--max-users"),
            (pre_allocated.is_some(), "--pre-allocated-users"),
            (spacing.is_some(), "--arrivals"),
        ] {
            if given {
                return Err(ConfigError::invalid(
                    flag,
                    "belongs to the open model: give --rate N/s too (closed-model runs size themselves with -u)",
                ));
            }
        }
        return Ok(None);
    };
    let per_s =
        perfhost_core::plan::parse_rate(&rate).map_err(|m| ConfigError::invalid("--rate", m))?;
    if matches!(l.sources.get("users"), Some(Source::Cli | Source::Env)) {
        return Err(ConfigError::invalid(
            "--users",
            "counts the closed model's users: with --rate the pool grows as arrivals need it — size it with --max-users (and --pre-allocated-users)",
        ));
    }
    if iterations.is_some() {
        return Err(ConfigError::invalid(
            "--iterations",
            "cannot end an open-model run: with --rate give -t (arrivals = rate × run time)",
        ));
    }
    let run_time = run_time.unwrap_or(DEFAULT_RUN_TIME);
    let (stages, start_per_s) = match staged {
        Some(sc) => (
            sc.rate_stages.clone(),
            sc.start_rate.unwrap_or(sc.rate_stages[0].per_s),
        ),
        None => (
            vec![perfhost_core::plan::RateStage {
                per_s,
                duration: run_time,
            }],
            per_s,
        ),
    };
    // Pool defaults follow the highest rate of the schedule.
    let per_s = stages.iter().map(|s| s.per_s).fold(start_per_s, f64::max);
    let max_users = max_users.unwrap_or_else(|| (per_s.ceil() as usize).max(100));
    if max_users == 0 {
        return Err(ConfigError::invalid("--max-users", "must be at least 1"));
    }
    let pre_allocated = pre_allocated
        .unwrap_or_else(|| ((per_s / 10.0).ceil() as usize).max(1))
        .min(max_users);
    let poisson = match spacing.as_deref() {
        None | Some("even") => false,
        Some("poisson") => true,
        Some(other) => {
            return Err(ConfigError::invalid(
                "--arrivals",
                format!("`{other}` is not a spacing: use even or poisson"),
            ))
        }
    };
    Ok(Some(perfhost_core::plan::ArrivalPlan {
        stages,
        start_per_s,
        pre_allocated,
        max_users,
        poisson,
        class_rates: per_class
            .map(|sc| sc.class_rates.clone())
            .unwrap_or_default(),
    }))
}

/// Default run time when neither `-t` nor `-n` is given.
const DEFAULT_RUN_TIME: Duration = Duration::from_secs(60);
/// Default users, as Locust's headless default is 1 but a load test wants a few.
const DEFAULT_USERS: usize = 10;

/// Resolves CLI > environment > scenario > perfhost.toml > defaults. `env` is passed in so
/// tests control it.
pub fn resolve(args: &RunArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, ConfigError> {
    let file = load_file(args.config.as_deref())?;
    resolve_layers(args, env, &file)
}

/// The plan as another machine resolves these flags: no environment, and a settings file
/// only when `--config` names one (a scheduler's shards see neither this environment nor
/// this folder's `perfhost.toml`).
pub fn resolve_portable(args: &RunArgs) -> Result<Plan, ConfigError> {
    let file = match &args.config {
        Some(path) => load_file(Some(path))?,
        None => Settings::default(),
    };
    resolve_layers(args, &|_| None, &file)
}

/// The plan of `args` alone: no environment, no settings file (for the library's own callers,
/// such as `perfhost bench`, and tests).
pub fn resolve_args(args: &RunArgs) -> Result<Plan, ConfigError> {
    resolve_layers(args, &|_| None, &Settings::default())
}

fn resolve_layers(
    args: &RunArgs,
    env: &dyn Fn(&str) -> Option<String>,
    file: &Settings,
) -> Result<Plan, ConfigError> {
    let scenario = match args.scenario.as_deref() {
        Some(name) => Some(scenario::load(name)?),
        None => None,
    };
    let cli = Settings::from_args(args)?;
    let environment = Settings::from_env(env)?;
    let from_scenario = scenario.as_ref().map(Settings::from_scenario);
    let mut layers = vec![(Source::Cli, &cli), (Source::Env, &environment)];
    if let Some(sc) = &from_scenario {
        layers.push((Source::Scenario, sc));
    }
    layers.push((Source::File, file));
    let mut l = Layers {
        layers,
        sources: BTreeMap::new(),
    };

    let host = l.pick("host", |s| s.host.clone());
    let target = match &host {
        Some(url) => {
            Some(Target::parse(url).map_err(|e| ConfigError::invalid("host", e.to_string()))?)
        }
        None => None,
    };
    let basic_auth = host
        .as_deref()
        .and_then(Target::credentials)
        .map(|(user, password)| (user, Secret(password)));
    let plugins = l.pick_or(
        "plugins",
        builtin::names(&[builtin::Role::Default])
            .into_iter()
            .map(String::from)
            .collect(),
        |s| s.plugins.clone(),
    );
    let users = l.pick_or("users", DEFAULT_USERS, |s| s.users);
    let spawn_rate = l.pick("spawn-rate", |s| s.spawn_rate);
    if users == 0 {
        return Err(ConfigError::invalid("--users", "must be at least 1"));
    }
    let spawn_rate = spawn_rate.unwrap_or(users as f64);
    if !(spawn_rate > 0.0 && spawn_rate.is_finite()) {
        return Err(ConfigError::invalid(
            "--spawn-rate",
            "must be a positive number of users per second",
        ));
    }
    // A scenario's stages shape the run unless the command line or the environment ask for a
    // plain ramp with -u / -r.
    let plain_asked = [Source::Cli, Source::Env]
        .iter()
        .any(|s| l.sources.get("users") == Some(s) || l.sources.get("spawn-rate") == Some(s));
    let load = match &scenario {
        Some(sc) if !sc.stages.is_empty() && !plain_asked => {
            l.note("stages", Source::Scenario);
            LoadShape {
                stages: sc.stages.clone(),
            }
        }
        _ => {
            l.note("stages", Source::Default);
            LoadShape::ramp(users, spawn_rate)
        }
    };

    let iterations = l.pick("iterations", |s| s.iterations);
    if iterations == Some(0) {
        return Err(ConfigError::invalid("--iterations", "must be at least 1"));
    }
    let run_time = match l.pick("run-time", |s| s.run_time) {
        Some(t) => Some(t),
        None if iterations.is_some() => None,
        None => Some(DEFAULT_RUN_TIME),
    };
    if run_time.is_some_and(|t| t.is_zero()) {
        return Err(ConfigError::invalid("--run-time", "must be longer than 0s"));
    }
    let stop = StopConditions {
        run_time,
        iterations,
        stop_timeout: l.pick_or("stop-timeout", Duration::from_secs(10), |s| s.stop_timeout),
    };
    let arrivals = open_model(&mut l, run_time, iterations, scenario.as_ref())?;
    // The shards of one run must draw the same choices (one arrival schedule, one class
    // sequence): without --seed they agree on one from --start-at (else a fixed one).
    let seed = l
        .pick("seed", |s| s.seed)
        .unwrap_or_else(|| match &args.shard {
            Some(_) => args.start_at.as_deref().map_or(1, |t| {
                t.bytes().fold(1469598103934665603u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(1099511628211)
                })
            }),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1),
        });

    let limits = SandboxLimits {
        cpu_budget: l.pick_or("cpu-budget", DEFAULT_CPU_BUDGET, |s| s.cpu_budget),
        memory_cap: match l.pick("memory-cap-mib", |s| s.memory_cap_mib) {
            Some(0) => {
                return Err(ConfigError::invalid(
                    "--memory-cap-mib",
                    "must be at least 1",
                ))
            }
            Some(mib) => mib.checked_mul(1 << 20).ok_or_else(|| {
                ConfigError::invalid(
                    "--memory-cap-mib",
                    "is more memory than this machine can address",
                )
            })?,
            None => DEFAULT_MEMORY_CAP,
        },
    };
    if limits.cpu_budget < Duration::from_millis(10) {
        return Err(ConfigError::invalid(
            "--cpu-budget",
            "must be at least 10ms (a budget shorter than that stops honest plugins on a busy machine)",
        ));
    }
    let request_timeout = l.pick_or("request-timeout", Duration::from_secs(30), |s| {
        s.request_timeout
    });
    if request_timeout.is_zero() {
        return Err(ConfigError::invalid(
            "--request-timeout",
            "must be longer than 0s",
        ));
    }
    let api_token = env("API_TOKEN").filter(|s| !s.is_empty()).map(Secret);
    let api_key = env("API_KEY").filter(|s| !s.is_empty()).map(Secret);
    l.note(
        "api-token",
        if api_token.is_some() {
            Source::Env
        } else {
            Source::Default
        },
    );
    l.note(
        "api-key",
        if api_key.is_some() {
            Source::Env
        } else {
            Source::Default
        },
    );
    let client = ClientOptions {
        request_timeout,
        insecure: l.pick_or("insecure", false, |s| s.insecure),
        ca_cert: l.pick("ca-cert", |s| s.ca_cert.clone()),
        api_token,
        api_key,
        basic_auth,
        max_body_size: l.pick_or("max-body-size", DEFAULT_MAX_BODY_SIZE, |s| s.max_body_size),
        keepalive: true,
    };
    if client.max_body_size == 0 {
        return Err(ConfigError::invalid(
            "--max-body-size",
            "must be at least 1 byte (plugins that never read bodies use discard-body)",
        ));
    }

    let classes = ClassChoice {
        only: l.pick_or("user-classes", Vec::new(), |s| s.user_classes.clone()),
        weights: scenario
            .as_ref()
            .map(|s| s.weights.clone())
            .unwrap_or_default(),
        task: None,
        no_wait: false,
    };
    let run_name = l.pick_or("run-name", "run".to_string(), |s| s.run_name.clone());
    let report_name = scenario
        .as_ref()
        .and_then(|s| s.report_name.clone())
        .unwrap_or_else(|| run_name.clone());
    // Both name files in reports/: never a path out of it.
    let from = |source: Option<&Source>| match source {
        Some(Source::Scenario) => " (the scenario's `name`)",
        Some(Source::Env) => " (PERFHOST_RUN_NAME)",
        Some(Source::File) => " (the settings file's `run-name`)",
        _ => "",
    };
    perfhost_core::outfile::check_run_name(&run_name).map_err(|why| {
        ConfigError::invalid(
            &format!("--run-name{}", from(l.sources.get("run-name"))),
            why,
        )
    })?;
    perfhost_core::outfile::check_run_name(&report_name)
        .map_err(|why| ConfigError::invalid("the scenario's [report] name", why))?;
    let outputs = Outputs {
        run_name,
        json: args.json,
        json_file: l.pick("json-file", |s| s.json_file.clone()),
        no_report: args.no_report,
        csv: l.pick("csv", |s| s.csv.clone()),
        html: l.pick("html", |s| s.html.clone()),
        scenario_csv: scenario.as_ref().is_some_and(|s| s.report_csv),
        scenario_html: scenario.as_ref().is_some_and(|s| s.report_html),
        report_name,
        only_summary: l.pick_or("only-summary", false, |s| s.only_summary),
        print_stats: l.pick_or("print-stats", false, |s| s.print_stats),
        csv_full_history: l.pick_or("csv-full-history", false, |s| s.csv_full_history),
        junit: l.pick("junit", |s| s.junit.clone()),
        metrics: metrics_plan(args, &mut l)?,
        hlog: args.hlog.clone(),
        exit_code_on_error: l.pick_or("exit-code-on-error", crate::exit::TEST_FAILED, |s| {
            s.exit_code_on_error
        }),
    };
    let log_level = l.pick_or("log-level", "info".to_string(), |s| s.log_level.clone());
    let log_level = normalize_log_level(&log_level)
        .ok_or_else(|| {
            ConfigError::invalid(
                "--loglevel",
                format!("`{log_level}` is not a level — use DEBUG, INFO, WARNING or ERROR"),
            )
        })?
        .to_string();

    // Values for plugins: every layer contributes, the higher one winning per key.
    let mut config_values = BTreeMap::new();
    let mut config_source = Source::Default;
    for (source, settings) in l.layers.iter().rev() {
        if !settings.config.is_empty() {
            config_values.extend(settings.config.clone());
            config_source = *source;
        }
    }
    l.note("config", config_source);
    // A scenario's thresholds, and those of the command line (or environment, or file).
    let mut thresholds = scenario
        .as_ref()
        .map(|s| s.thresholds.clone())
        .unwrap_or_default();
    let from_scenario = !thresholds.is_empty();
    for text in l
        .pick("thresholds", |s| s.thresholds.clone())
        .unwrap_or_default()
    {
        thresholds.push(
            perfhost_core::plan::parse_threshold(&text)
                .map_err(|e| ConfigError::invalid("--threshold", e.to_string()))?,
        );
    }
    if from_scenario && l.sources.get("thresholds") == Some(&Source::Default) {
        l.note("thresholds", Source::Scenario);
    }

    let reset_stats = l.pick_or("reset-stats", false, |s| s.reset_stats);
    let trace = l.pick_or("trace", false, |s| s.trace);
    let data = l.pick_or("data", Vec::new(), |s| s.data.clone());
    l.note(
        "workers",
        if args.workers.is_some() {
            Source::Cli
        } else {
            Source::Default
        },
    );
    let profile = profile_plan(args, target.is_none(), scenario.as_ref())?;
    l.note(
        "profile",
        if profile.as_ref().is_some_and(|p| p.explicit) {
            Source::Cli
        } else {
            Source::Default
        },
    );
    let shard = match args.shard.as_deref() {
        Some("auto") => Some(
            perfhost_core::plan::ShardPlan::auto(env)
                .map_err(|e| ConfigError::invalid("--shard", e))?,
        ),
        Some(text) => Some(
            perfhost_core::plan::ShardPlan::parse(text)
                .map_err(|e| ConfigError::invalid("--shard", e))?,
        ),
        None => None,
    };
    let start_at = match args.start_at.as_deref() {
        Some(text) => Some(
            perfhost_core::plan::parse_rfc3339(text)
                .map_err(|e| ConfigError::invalid("--start-at", e))?,
        ),
        None => None,
    };
    Ok(Plan {
        target,
        plugins,
        classes,
        load,
        arrivals,
        stop,
        limits,
        client,
        outputs,
        seed,
        reset_stats,
        trace,
        config_values,
        data,
        thresholds,
        scenario: scenario.as_ref().map(Scenario::reference),
        log_level,
        workers: args.workers.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        ),
        force: args.force,
        profile,
        sources: l.sources,
        shard,
        start_at,
    })
}

/// Memory sampling of the run: asked for with `--profile*`, or by default for the built-in
/// target.
fn profile_plan(
    args: &RunArgs,
    built_in: bool,
    scenario: Option<&Scenario>,
) -> Result<Option<ProfilePlan>, ConfigError> {
    let query = match (args.profile_pid, args.profile_port, &args.profile_match) {
        (Some(pid), None, None) => ProcessQuery::Pid(pid),
        (None, Some(port), None) => ProcessQuery::Port(port),
        (None, None, Some(text)) => ProcessQuery::Match(text.clone()),
        (None, None, None) => ProcessQuery::Auto,
        _ => {
            return Err(ConfigError::invalid(
                "--profile-pid/--profile-port/--profile-match",
                "give one of them",
            ))
        }
    };
    let explicit = args.profile || query != ProcessQuery::Auto;
    if !explicit && !built_in {
        return Ok(None);
    }
    let interval = args.profile_interval.unwrap_or(Duration::from_secs(1));
    if interval < Duration::from_millis(50) {
        return Err(ConfigError::invalid(
            "--profile-interval",
            "must be at least 50ms",
        ));
    }
    Ok(Some(ProfilePlan {
        query,
        children: !args.profile_no_children,
        interval,
        explicit,
        tables: scenario.and_then(|s| s.profile).unwrap_or_default(),
    }))
}

/// `DEBUG`, `info`, `WARNING`, `warn`, `critical` … → a tracing level name.
pub fn normalize_log_level(level: &str) -> Option<&'static str> {
    Some(match level.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "critical" | "fatal" => "error",
        "off" | "none" => "off",
        _ => return None,
    })
}

/// The text of `--print-config`: every setting and where it came from. Secrets are masked.
pub fn describe(plan: &Plan) -> String {
    let src = |k: &str| {
        plan.sources
            .get(k)
            .copied()
            .unwrap_or(Source::Default)
            .as_str()
            .to_string()
    };
    let list = |v: &[String], empty: &str| {
        if v.is_empty() {
            empty.to_string()
        } else {
            v.join(", ")
        }
    };
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "-".into())
    };
    let hidden = |s: &Option<Secret>| if s.is_some() { "set (hidden)" } else { "-" }.to_string();
    let flag = |b: bool| if b { "yes" } else { "no" }.to_string();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut row = |k: &str, v: String, s: String| rows.push((k.to_string(), v, s));
    row(
        "host",
        plan.target
            .as_ref()
            .map(|t| format!("{}{}", t.origin, t.base_path))
            .unwrap_or_else(|| "built-in demo server".into()),
        src("host"),
    );
    if let Some(sc) = &plan.scenario {
        row("scenario", sc.name.clone(), sc.source.clone());
    }
    row("plugins", plan.plugins.join(", "), src("plugins"));
    row(
        "user-classes",
        list(&plan.classes.only, "all"),
        src("user-classes"),
    );
    if !plan.classes.weights.is_empty() {
        let w: Vec<String> = plan
            .classes
            .weights
            .iter()
            .map(|(c, w)| format!("{c}={w}"))
            .collect();
        row("weights", w.join(", "), "scenario".into());
    }
    match &plan.arrivals {
        Some(open) => {
            let rates: Vec<String> = if open.class_rates.is_empty() {
                open.stages
                    .iter()
                    .map(|s| format!("{}/s over {}", s.per_s, format_duration(s.duration)))
                    .collect()
            } else {
                open.class_rates
                    .iter()
                    .map(|(c, r)| format!("{c} {r}/s"))
                    .collect()
            };
            row("model", "open (arrival rate)".into(), src("rate"));
            row("rate", rates.join(", "), src("rate"));
            row("max-users", open.max_users.to_string(), src("max-users"));
            row(
                "pre-allocated-users",
                open.pre_allocated.to_string(),
                src("pre-allocated-users"),
            );
            let spacing = if open.poisson { "poisson" } else { "even" };
            row("arrivals", spacing.into(), src("arrivals"));
        }
        None => {
            row("users", plan.max_users().to_string(), src("users"));
            row(
                "spawn-rate",
                format!("{}/s", plan.load.spawn_rate()),
                src("spawn-rate"),
            );
        }
    }
    if plan.sources.get("stages") == Some(&Source::Scenario) {
        for (i, stage) in plan.load.stages.iter().enumerate() {
            row(
                &format!("stage {}", i + 1),
                format!(
                    "{} users over {}",
                    stage.users,
                    format_duration(stage.duration)
                ),
                "scenario".into(),
            );
        }
    }
    row(
        "run-time",
        plan.stop
            .run_time
            .map(format_duration)
            .unwrap_or_else(|| "until -n is reached".into()),
        src("run-time"),
    );
    row(
        "iterations",
        plan.stop
            .iterations
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into()),
        src("iterations"),
    );
    row(
        "stop-timeout",
        format_duration(plan.stop.stop_timeout),
        src("stop-timeout"),
    );
    row("seed", plan.seed.to_string(), src("seed"));
    row(
        "request-timeout",
        format_duration(plan.client.request_timeout),
        src("request-timeout"),
    );
    row("insecure", flag(plan.client.insecure), src("insecure"));
    row("ca-cert", path(&plan.client.ca_cert), src("ca-cert"));
    row(
        "API_TOKEN",
        hidden(&plan.client.api_token),
        src("api-token"),
    );
    row("API_KEY", hidden(&plan.client.api_key), src("api-key"));
    if let Some((user, _)) = &plan.client.basic_auth {
        row("basic-auth", format!("{user}:(hidden)"), src("host"));
    }
    row(
        "max-body-size",
        format_size(plan.client.max_body_size),
        src("max-body-size"),
    );
    row(
        "cpu-budget",
        format_duration(plan.limits.cpu_budget),
        src("cpu-budget"),
    );
    row(
        "memory-cap-mib",
        (plan.limits.memory_cap >> 20).to_string(),
        src("memory-cap-mib"),
    );
    row("reset-stats", flag(plan.reset_stats), src("reset-stats"));
    row("trace", flag(plan.trace), src("trace"));
    row("log-level", plan.log_level.clone(), src("log-level"));
    row("run-name", plan.outputs.run_name.clone(), src("run-name"));
    row("json-file", path(&plan.outputs.json_file), src("json-file"));
    row("csv", path(&plan.outputs.csv), src("csv"));
    row("html", path(&plan.outputs.html), src("html"));
    row("data", list(&plan.data, "-"), src("data"));
    let config: Vec<String> = plan
        .config_values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    row("config", list(&config, "-"), src("config"));
    for t in &plan.thresholds {
        row("threshold", t.text.clone(), src("thresholds"));
    }
    row("workers", plan.workers.to_string(), src("workers"));
    rows.iter()
        .map(|(k, v, s)| format!("{k:<16} {v:<40} ({s})\n"))
        .collect()
}

/// Reads the settings file: the one given (`.toml`: perfhost's format; anything else, such as
/// `locust.conf`: Locust's), else `./perfhost.toml`, else `./locust.conf`.
fn load_file(explicit: Option<&Path>) -> Result<Settings, ConfigError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match ["perfhost.toml", "locust.conf"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        {
            Some(found) => found,
            None => return Ok(Settings::default()),
        },
    };
    let text = perfhost_core::input::read_to_string(&path, perfhost_core::input::Kind::Config)?;
    let shown = path.display().to_string();
    if path.extension().is_some_and(|e| e == "toml") {
        return toml::from_str(&text).map_err(|e| scenario::toml_error(&shown, &text, &e).into());
    }
    let (settings, ignored) = locust_conf(&shown, &text)?;
    if !ignored.is_empty() {
        tracing::warn!(
            "{shown}: perfhost ignores {} (not supported yet)",
            ignored.join(", ")
        );
    }
    Ok(settings)
}

/// Locust's settings that mean nothing to a headless perfhost run.
const LOCUST_ACCEPTED: [&str; 3] = ["headless", "autostart", "locustfile-is-plugin"];

/// A `locust.conf`, read as Locust reads it: `key = value` (or `key: value`), unquoted, `#`
/// and `;` comments, `[sections]` ignored. Returns the settings and the keys perfhost does not
/// support (named in one warning, never silently dropped).
pub fn locust_conf(file: &str, text: &str) -> Result<(Settings, Vec<String>), ConfigError> {
    let mut settings = Settings::default();
    let mut ignored = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';', '[']) {
            continue;
        }
        let Some((key, value)) = line.split_once(['=', ':']) else {
            ignored.push(line.to_string());
            continue;
        };
        let (key, value) = (key.trim().replace('_', "-"), value.trim());
        let bad = |message: String| FieldError {
            file: file.to_string(),
            line: Some(i + 1),
            field: key.clone(),
            message,
        };
        let known = match key.as_str() {
            "loglevel" | "log-level" => settings.set("log-level", value),
            "hatch-rate" => settings.set("spawn-rate", value),
            "locustfile" | "f" => {
                if value.ends_with(".wasm") {
                    settings.plugins = Some(vec![value.to_string()]);
                    Ok(())
                } else {
                    Err(format!(
                        "`{value}` is a Locust file; perfhost runs WebAssembly plugins (docs/plugins.md) — set `locustfile = my_user.wasm` or use --plugin"
                    ))
                }
            }
            "stop-timeout" | "reset-stats" | "html" | "csv" | "csv-full-history"
            | "only-summary" | "exit-code-on-error" | "print-stats" | "host" | "users"
            | "spawn-rate" | "run-time" | "iterations" | "seed" | "json-file" | "web-host"
            | "web-port" => settings.set(&key, value),
            k if LOCUST_ACCEPTED.contains(&k) => Ok(()),
            _ => {
                ignored.push(key.clone());
                continue;
            }
        };
        known.map_err(bad)?;
    }
    Ok((settings, ignored))
}

/// clap's parser for duration flags.
pub fn parse_duration_arg(text: &str) -> Result<Duration, DurationError> {
    parse_duration(text)
}

/// clap's parser for size flags.
pub fn parse_size_arg(text: &str) -> Result<usize, SizeError> {
    parse_size(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfhost_toml_fills_what_cli_and_env_leave_open() {
        let dir = std::env::temp_dir().join(format!("perfhost-toml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("perfhost.toml");
        std::fs::write(
            &file,
            "host = \"http://127.0.0.1:7000\"\nusers = 25\nrun-time = \"2m\"\nplugins = [\"burst_user\"]\n[config]\nregion = \"eu\"\n",
        )
        .unwrap();
        let args = RunArgs {
            config: Some(file.clone()),
            users: Some(3),
            ..Default::default()
        };
        let plan = resolve(&args, &|_| None).unwrap();
        let origin = |p: &Plan| p.target.as_ref().map(|t| t.origin.clone());
        assert_eq!(origin(&plan).as_deref(), Some("http://127.0.0.1:7000"));
        assert_eq!((plan.max_users(), plan.sources["users"]), (3, Source::Cli));
        assert_eq!(
            (plan.stop.run_time, plan.sources["run-time"]),
            (Some(Duration::from_secs(120)), Source::File)
        );
        assert_eq!(plan.plugins, ["burst_user"]);
        assert_eq!(plan.config_values["region"], "eu");
        let env = |k: &str| (k == "LOAD_TEST_HOST").then(|| "http://127.0.0.1:7001".to_string());
        assert_eq!(
            origin(&resolve(&args, &env).unwrap()).as_deref(),
            Some("http://127.0.0.1:7001")
        );
        std::fs::write(&file, "userz = 3\n").unwrap();
        let err = resolve(&args, &|_| None).unwrap_err().to_string();
        assert!(
            err.contains("perfhost.toml") && err.contains("userz"),
            "{err}"
        );
    }

    #[test]
    fn cli_beats_env_beats_defaults() {
        let env = |k: &str| match k {
            "LOAD_TEST_HOST" => Some("http://127.0.0.1:1234".to_string()),
            "API_KEY" => Some("secret-key".to_string()),
            _ => None,
        };
        let args = RunArgs {
            config: Some(PathBuf::from("/nonexistent/perfhost.toml")),
            ..Default::default()
        };
        assert!(matches!(resolve(&args, &env), Err(ConfigError::Read(..))));
        let args = RunArgs::default();
        let plan = resolve(&args, &env).unwrap();
        let origin = |p: &Plan| p.target.as_ref().map(|t| t.origin.clone());
        assert_eq!(origin(&plan).as_deref(), Some("http://127.0.0.1:1234"));
        assert_eq!(plan.sources["host"], Source::Env);
        assert!(!describe(&plan).contains("secret-key"));
        let args = RunArgs {
            host: Some("http://127.0.0.1:9".into()),
            users: Some(3),
            ..Default::default()
        };
        let plan = resolve(&args, &env).unwrap();
        assert_eq!(origin(&plan).as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(plan.sources["host"], Source::Cli);
        assert_eq!(plan.max_users(), 3);
    }

    /// `--print-config` names the layer each value came from: one value from each of the
    /// command line, the environment, a scenario file and perfhost.toml, and a default.
    #[test]
    fn print_config_names_the_source_of_every_field() {
        let dir = std::env::temp_dir().join(format!("perfhost-sources-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("perfhost.toml");
        std::fs::write(
            &file,
            "stop-timeout = \"7s\"\nrequest-timeout = 9\nlog-level = \"debug\"\ncpu-budget = \"2s\"\nseed = 11\n",
        )
        .unwrap();
        let sc = dir.join("sc.toml");
        std::fs::write(&sc, "name = \"sc\"\nusers = 4\nrun-time = \"20s\"\n").unwrap();
        let args = RunArgs {
            config: Some(file),
            scenario: Some(sc.display().to_string()),
            request_timeout: Some(Duration::from_secs(3)),
            ..Default::default()
        };
        let env = |k: &str| match k {
            "PERFHOST_SEED" => Some("5".to_string()),
            "LOAD_TEST_HOST" => Some("http://127.0.0.1:7002".to_string()),
            _ => None,
        };
        let plan = resolve(&args, &env).unwrap();
        let text = describe(&plan);
        let source_of = |key: &str| {
            let line = text
                .lines()
                .find(|l| l.split_whitespace().next() == Some(key))
                .unwrap_or_else(|| panic!("no {key} line in\n{text}"));
            line.rsplit('(')
                .next()
                .unwrap()
                .trim_end_matches(')')
                .to_string()
        };
        assert_eq!(plan.client.request_timeout, Duration::from_secs(3));
        assert_eq!(source_of("request-timeout"), "cli");
        assert_eq!(plan.seed, 5);
        assert_eq!(source_of("seed"), "env");
        assert_eq!(source_of("host"), "env");
        assert_eq!(
            (plan.max_users(), source_of("users").as_str()),
            (4, "scenario")
        );
        assert_eq!(source_of("run-time"), "scenario");
        assert_eq!(plan.stop.stop_timeout, Duration::from_secs(7));
        assert_eq!(source_of("stop-timeout"), "file");
        assert_eq!(
            (plan.log_level.as_str(), source_of("log-level").as_str()),
            ("debug", "file")
        );
        assert_eq!(source_of("cpu-budget"), "file");
        assert_eq!(source_of("iterations"), "default");
        assert_eq!(source_of("insecure"), "default");
        // Every setting of the plan has a source, and every line names one.
        for line in text.lines() {
            let source = line.rsplit('(').next().unwrap_or("");
            assert!(
                ["cli)", "env)", "scenario)", "file)", "default)"].contains(&source)
                    || line.starts_with("scenario"),
                "{line}"
            );
        }
    }

    /// Every key `perfhost.toml` takes (serde's list of the fields, from its "unknown field"
    /// message) is one `PERFHOST_<KEY>` reads, but the plugins' `[config]` table.
    #[test]
    fn every_setting_has_its_environment_variable() {
        let err = toml::from_str::<Settings>("zz-unknown = 1\n")
            .unwrap_err()
            .to_string();
        let listed = err.split("expected one of").nth(1).unwrap_or_default();
        let mut fields: Vec<&str> = listed.split('`').skip(1).step_by(2).collect();
        assert!(fields.len() > 30, "{err}");
        fields.retain(|f| *f != "config");
        fields.sort_unstable();
        let mut keys = ENV_SETTINGS.to_vec();
        keys.sort_unstable();
        assert_eq!(
            fields, keys,
            "ENV_SETTINGS and the fields of Settings differ"
        );
    }

    /// Walks ENV_SETTINGS: each `PERFHOST_<KEY>` alone (with the settings it needs) is read,
    /// and `--print-config`'s source of the value says `env`.
    #[test]
    fn each_environment_variable_is_read() {
        let sample = |key: &str| -> &str {
            match key {
                "host" => "http://127.0.0.1:9",
                "plugins" => "http_get,burst_user",
                "rate" => "5/s",
                "arrivals" => "poisson",
                "user-classes" => "BurstUser",
                "log-level" => "debug",
                "run-name" => "from-env",
                "ca-cert" => "ca.pem",
                "json-file" => "out.json",
                "csv" => "out",
                "html" => "out.html",
                "junit" => "junit.xml",
                "data" => "rows=rows.csv",
                "thresholds" => "p95<1s,failure-rate<1%",
                "web-host" => "127.0.0.1",
                "max-body-size" => "1MiB",
                "run-time" | "stop-timeout" | "request-timeout" | "cpu-budget" => "5s",
                "reset-stats" | "trace" | "insecure" | "only-summary" | "print-stats"
                | "csv-full-history" => "true",
                "spawn-rate" => "2.5",
                _ => "3",
            }
        };
        for key in ENV_SETTINGS {
            // The open model's companions need --rate; web-host and web-port the web UI.
            let needs_rate = ["max-users", "pre-allocated-users", "arrivals"].contains(&key);
            let env = |var: &str| {
                if var == env_var(key) {
                    Some(sample(key).to_string())
                } else if needs_rate && var == "PERFHOST_RATE" {
                    Some("5/s".to_string())
                } else {
                    None
                }
            };
            let args = RunArgs {
                web: key.starts_with("web-"),
                ..Default::default()
            };
            let plan = resolve_layers(&args, &env, &Settings::default())
                .unwrap_or_else(|e| panic!("{}={}: {e}", env_var(key), sample(key)));
            let source = match key {
                "rate" => plan.sources.get("rate"),
                k => plan.sources.get(k),
            };
            assert_eq!(source, Some(&Source::Env), "{} was not read", env_var(key));
        }
        // Lists are comma-separated.
        let env = |var: &str| (var == "PERFHOST_THRESHOLDS").then(|| "p95<1s, rps>1".to_string());
        let plan = resolve_layers(&RunArgs::default(), &env, &Settings::default()).unwrap();
        assert_eq!(plan.thresholds.len(), 2);
    }
}
