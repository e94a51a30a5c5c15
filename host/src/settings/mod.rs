//! From the command line, the environment, a scenario and `perfhost.toml` (or `locust.conf`)
//! to one resolved `Plan`. Every setting is a row of the settings table (`table`); each source
//! is read into a layer by walking it (`sources`), the first layer that sets a setting wins —
//! CLI > environment > scenario > file > default — its value is checked once, and its origin
//! (`--users`, `PERFHOST_USERS`, `perfhost.toml:12`, scenario `smoke`) is kept for errors and
//! `--print-config`.

pub mod command;
pub mod run_flags;
pub mod scenario;
pub mod sources;
pub mod table;

use std::path::PathBuf;
use std::time::Duration;

use perfhost_core::client::DEFAULT_MAX_BODY_SIZE;
use perfhost_core::plan::{
    format_duration, parse_duration, parse_size, ClassChoice, ClientOptions, DurationError,
    FieldError, HttpVersion, LoadShape, Origin, Outputs, Plan, ProcessQuery, ProfilePlan,
    SandboxLimits, Secret, SizeError, Source, StopConditions, Target,
};
use perfhost_core::plugin::{builtin, DEFAULT_CPU_BUDGET, DEFAULT_MEMORY_CAP};
use scenario::Scenario;
pub use sources::locust_conf;
use sources::{Layer, Merged};
pub use table::env_var;

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
    /// HTTP version: auto (https: what the server picks by ALPN, HTTP/2 preferred; http:
    /// HTTP/1.1), 1.1, or 2 (https: by ALPN only; http: h2c with prior knowledge)
    /// [default: auto].
    #[arg(long = "http-version", value_name = "VERSION")]
    pub http_version: Option<String>,
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

/// A setting that cannot be used: nothing ran (exit 2).
impl From<ConfigError> for crate::failure::Failure {
    fn from(err: ConfigError) -> Self {
        crate::failure::Failure::of(crate::exit::USAGE, &err)
    }
}

impl ConfigError {
    fn invalid(setting: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            setting: setting.to_string(),
            message: message.into(),
        }
    }
}

/// The web UI's default port (Locust's).
pub const DEFAULT_WEB_PORT: u16 = 8089;

/// The web endpoint from `--web`/`--web-port` or `--metrics-port`, `--web-host`,
/// `--web-token`, `--web-auth`: loopback unless a token or credentials guard it.
fn metrics_plan(
    args: &RunArgs,
    m: &Merged,
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
        (m.text("web-host"), m.count("web-port").map(|p| p as u16))
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
                &m.named("web-host"),
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
    m: &mut Merged,
    run_time: Option<Duration>,
    iterations: Option<u64>,
    scenario: Option<&Scenario>,
) -> Result<Option<perfhost_core::plan::ArrivalPlan>, ConfigError> {
    let max_users = m.count("max-users").map(|n| n as usize);
    let pre_allocated = m.count("pre-allocated-users").map(|n| n as usize);
    let spacing = m.text("arrivals");
    // A scenario's rate stages, unless the command line or the environment give --rate.
    let rate_given = m.text("rate");
    let from_cli = matches!(m.source("rate"), Source::Cli | Source::Env);
    let staged = scenario.filter(|sc| !sc.rate_stages.is_empty() && !from_cli);
    let per_class = scenario.filter(|sc| !sc.class_rates.is_empty() && !from_cli);
    let rate = match (staged, per_class, rate_given) {
        (Some(sc), _, _) => {
            m.note("rate", Source::Scenario, sc.name.clone());
            Some(format!("{}/s", sc.rate_stages[0].per_s))
        }
        (None, Some(sc), _) => {
            m.note("rate", Source::Scenario, sc.name.clone());
            Some(format!(
                "{}/s",
                sc.class_rates.iter().map(|(_, r)| r).sum::<f64>()
            ))
        }
        (None, None, rate) => rate,
    };
    let Some(rate) = rate else {
        for (given, key) in [
            (max_users.is_some(), "max-users"),
            (pre_allocated.is_some(), "pre-allocated-users"),
            (spacing.is_some(), "arrivals"),
        ] {
            if given {
                return Err(ConfigError::invalid(
                    &m.named(key),
                    "belongs to the open model: give --rate N/s too (closed-model runs size themselves with -u)",
                ));
            }
        }
        return Ok(None);
    };
    let per_s = perfhost_core::plan::parse_rate(&rate)
        .map_err(|e| ConfigError::invalid(&m.named("rate"), e))?;
    if matches!(m.source("users"), Source::Cli | Source::Env) {
        return Err(ConfigError::invalid(
            &m.named("users"),
            "counts the closed model's users: with --rate the pool grows as arrivals need it — size it with --max-users (and --pre-allocated-users)",
        ));
    }
    if iterations.is_some() {
        return Err(ConfigError::invalid(
            &m.named("iterations"),
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
    let pre_allocated = pre_allocated
        .unwrap_or_else(|| ((per_s / 10.0).ceil() as usize).max(1))
        .min(max_users);
    // The table's check allows only `even` and `poisson`.
    let poisson = spacing.as_deref() == Some("poisson");
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
    let file = sources::from_file(args.config.as_deref())?;
    resolve_layers(args, env, &file)
}

/// The plan as another machine resolves these flags: no environment, and a settings file
/// only when `--config` names one (a scheduler's shards see neither this environment nor
/// this folder's `perfhost.toml`).
pub fn resolve_portable(args: &RunArgs) -> Result<Plan, ConfigError> {
    let file = match &args.config {
        Some(path) => sources::from_file(Some(path))?,
        None => Layer::default(),
    };
    resolve_layers(args, &|_| None, &file)
}

/// The plan of `args` alone: no environment, no settings file (for the library's own callers,
/// such as `perfhost bench`, and tests).
pub fn resolve_args(args: &RunArgs) -> Result<Plan, ConfigError> {
    resolve_layers(args, &|_| None, &Layer::default())
}

/// A secret only the environment gives (`API_TOKEN`, `API_KEY`), and its origin.
fn env_secret(env: &dyn Fn(&str) -> Option<String>, var: &str) -> (Option<Secret>, Origin) {
    match env(var).filter(|s| !s.is_empty()) {
        Some(value) => (
            Some(Secret(value)),
            Origin {
                source: Source::Env,
                place: var.to_string(),
            },
        ),
        None => (None, Origin::default_value()),
    }
}

fn resolve_layers(
    args: &RunArgs,
    env: &dyn Fn(&str) -> Option<String>,
    file: &Layer,
) -> Result<Plan, ConfigError> {
    let scenario = match args.scenario.as_deref() {
        Some(name) => Some(scenario::load(name)?),
        None => None,
    };
    let cli = sources::from_args(args)?;
    let environment = sources::from_env(env)?;
    let from_scenario = scenario.as_ref().map(sources::from_scenario);
    let mut layers = vec![&cli, &environment];
    if let Some(sc) = &from_scenario {
        layers.push(sc);
    }
    layers.push(file);
    let mut m = sources::merge(&layers)?;

    let host = m.text("host");
    let target = match &host {
        // The table's check parsed it already.
        Some(url) => Some(
            Target::parse(url)
                .map_err(|e| ConfigError::invalid(&m.named("host"), e.to_string()))?,
        ),
        None => None,
    };
    let basic_auth = host
        .as_deref()
        .and_then(Target::credentials)
        .map(|(user, password)| (user, Secret(password)));
    let plugins = m.list("plugins").unwrap_or_else(|| {
        builtin::names(&[builtin::Role::Default])
            .into_iter()
            .map(String::from)
            .collect()
    });
    let users = m.count("users").map_or(DEFAULT_USERS, |n| n as usize);
    let spawn_rate = m.number("spawn-rate").unwrap_or(users as f64);
    // A scenario's stages shape the run unless the command line or the environment ask for a
    // plain ramp with -u / -r.
    let plain_asked = [m.source("users"), m.source("spawn-rate")]
        .iter()
        .any(|s| matches!(s, Source::Cli | Source::Env));
    let load = match &scenario {
        Some(sc) if !sc.stages.is_empty() && !plain_asked => {
            m.note("stages", Source::Scenario, sc.name.clone());
            LoadShape {
                stages: sc.stages.clone(),
            }
        }
        _ => LoadShape::ramp(users, spawn_rate),
    };

    let iterations = m.count("iterations");
    let run_time = match m.duration("run-time") {
        Some(t) => Some(t),
        None if iterations.is_some() => None,
        None => Some(DEFAULT_RUN_TIME),
    };
    let stop = StopConditions {
        run_time,
        iterations,
        stop_timeout: m
            .duration("stop-timeout")
            .unwrap_or(Duration::from_secs(10)),
    };
    let arrivals = open_model(&mut m, run_time, iterations, scenario.as_ref())?;
    // The shards of one run must draw the same choices (one arrival schedule, one class
    // sequence): without --seed they agree on one from --start-at (else a fixed one).
    let seed = m.count("seed").unwrap_or_else(|| match &args.shard {
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
        cpu_budget: m.duration("cpu-budget").unwrap_or(DEFAULT_CPU_BUDGET),
        // The table's check keeps the product within usize.
        memory_cap: m
            .count("memory-cap-mib")
            .map_or(DEFAULT_MEMORY_CAP, |mib| (mib as usize) << 20),
    };
    let (api_token, token_origin) = env_secret(env, "API_TOKEN");
    let (api_key, key_origin) = env_secret(env, "API_KEY");
    m.sources.insert("api-token", token_origin);
    m.sources.insert("api-key", key_origin);
    let client = ClientOptions {
        request_timeout: m
            .duration("request-timeout")
            .unwrap_or(Duration::from_secs(30)),
        insecure: m.flag("insecure"),
        ca_cert: m.path("ca-cert"),
        api_token,
        api_key,
        basic_auth,
        max_body_size: m.size("max-body-size").unwrap_or(DEFAULT_MAX_BODY_SIZE),
        keepalive: true,
        // The table's check has parsed it already.
        http_version: m
            .text("http-version")
            .and_then(|v| HttpVersion::parse(&v))
            .unwrap_or_default(),
    };

    let classes = ClassChoice {
        only: m.list("user-classes").unwrap_or_default(),
        weights: scenario
            .as_ref()
            .map(|s| s.weights.clone())
            .unwrap_or_default(),
        task: None,
        no_wait: false,
    };
    let run_name = m.text("run-name").unwrap_or_else(|| "run".to_string());
    let report_name = scenario
        .as_ref()
        .and_then(|s| s.report_name.clone())
        .unwrap_or_else(|| run_name.clone());
    // It names files in reports/: never a path out of it (the run name's own row checks it).
    perfhost_core::outfile::check_run_name(&report_name)
        .map_err(|why| ConfigError::invalid("the scenario's [report] name", why))?;
    let outputs = Outputs {
        run_name,
        json: args.json,
        json_file: m.path("json-file"),
        no_report: args.no_report,
        csv: m.path("csv"),
        html: m.path("html"),
        scenario_csv: scenario.as_ref().is_some_and(|s| s.report_csv),
        scenario_html: scenario.as_ref().is_some_and(|s| s.report_html),
        report_name,
        only_summary: m.flag("only-summary"),
        print_stats: m.flag("print-stats"),
        csv_full_history: m.flag("csv-full-history"),
        junit: m.path("junit"),
        metrics: metrics_plan(args, &m)?,
        hlog: args.hlog.clone(),
        exit_code_on_error: m
            .count("exit-code-on-error")
            .map_or(crate::exit::TEST_FAILED, |c| c as u8),
    };
    // The table's check accepts only the levels this knows.
    let log_level = m
        .text("log-level")
        .and_then(|l| normalize_log_level(&l))
        .unwrap_or("info")
        .to_string();

    // A scenario's thresholds, and those of the command line (or environment, or file).
    let mut thresholds = scenario
        .as_ref()
        .map(|s| s.thresholds.clone())
        .unwrap_or_default();
    if !thresholds.is_empty() && m.source("thresholds") == Source::Default {
        let name = scenario.as_ref().map_or(String::new(), |s| s.name.clone());
        m.note("thresholds", Source::Scenario, name);
    }
    for text in m.list("thresholds").unwrap_or_default() {
        thresholds.push(
            perfhost_core::plan::parse_threshold(&text)
                .map_err(|e| ConfigError::invalid(&m.named("thresholds"), e.to_string()))?,
        );
    }

    let data = m.list("data").unwrap_or_default();
    if args.workers.is_some() {
        m.note("workers", Source::Cli, "--workers");
    }
    let profile = profile_plan(args, target.is_none(), scenario.as_ref())?;
    if profile.as_ref().is_some_and(|p| p.explicit) {
        m.note("profile", Source::Cli, "--profile");
    }
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
        reset_stats: m.flag("reset-stats"),
        trace: m.flag("trace"),
        config_values: m.config.clone(),
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
        sources: m.sources,
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

/// The text of `--print-config`: every setting of the table as the plan resolved it, the
/// plan's other values, and where each came from. Secrets are masked.
pub fn describe(plan: &Plan) -> String {
    let from = |key: &str| {
        let origin = plan
            .sources
            .get(key)
            .cloned()
            .unwrap_or_else(Origin::default_value);
        match origin.place.as_str() {
            "" => origin.source.as_str().to_string(),
            place => format!("{} {place}", origin.source.as_str()),
        }
    };
    let hidden = |s: &Option<Secret>| if s.is_some() { "set (hidden)" } else { "-" }.to_string();
    let mut rows: Vec<(String, String, String)> = Vec::new();
    if let Some(sc) = &plan.scenario {
        rows.push(("scenario".into(), sc.name.clone(), sc.source.clone()));
    }
    if plan.arrivals.is_some() {
        rows.push(("model".into(), "open (arrival rate)".into(), from("rate")));
    }
    for row in table::SETTINGS {
        for value in (row.show)(plan) {
            rows.push((row.key.to_string(), value, from(row.key)));
        }
    }
    if !plan.classes.weights.is_empty() {
        let w: Vec<String> = plan
            .classes
            .weights
            .iter()
            .map(|(c, w)| format!("{c}={w}"))
            .collect();
        rows.push(("weights".into(), w.join(", "), "scenario".into()));
    }
    if plan.sources.get("stages").map(|o| o.source) == Some(Source::Scenario) {
        for (i, stage) in plan.load.stages.iter().enumerate() {
            rows.push((
                format!("stage {}", i + 1),
                format!(
                    "{} users over {}",
                    stage.users,
                    format_duration(stage.duration)
                ),
                from("stages"),
            ));
        }
    }
    rows.push((
        "API_TOKEN".into(),
        hidden(&plan.client.api_token),
        from("api-token"),
    ));
    rows.push((
        "API_KEY".into(),
        hidden(&plan.client.api_key),
        from("api-key"),
    ));
    if let Some((user, _)) = &plan.client.basic_auth {
        rows.push((
            "basic-auth".into(),
            format!("{user}:(hidden)"),
            from("host"),
        ));
    }
    let config: Vec<String> = plan
        .config_values
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let config = if config.is_empty() {
        "-".to_string()
    } else {
        config.join(", ")
    };
    rows.push(("config".into(), config, from("config")));
    rows.push(("workers".into(), plan.workers.to_string(), from("workers")));
    rows.iter()
        .map(|(k, v, s)| format!("{k:<19} {v:<40} ({s})\n"))
        .collect()
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
        assert_eq!(
            (plan.max_users(), plan.sources["users"].source),
            (3, Source::Cli)
        );
        assert_eq!(
            (plan.stop.run_time, plan.sources["run-time"].source),
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
        assert_eq!(plan.sources["host"].source, Source::Env);
        assert!(!describe(&plan).contains("secret-key"));
        let args = RunArgs {
            host: Some("http://127.0.0.1:9".into()),
            users: Some(3),
            ..Default::default()
        };
        let plan = resolve(&args, &env).unwrap();
        assert_eq!(origin(&plan).as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(plan.sources["host"].source, Source::Cli);
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
            let origin = line.rsplit('(').next().unwrap().trim_end_matches(')');
            origin.split(' ').next().unwrap().to_string()
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
            let origin = line.rsplit('(').next().unwrap_or("");
            let source = origin.split([' ', ')']).next().unwrap_or("");
            assert!(
                ["cli", "env", "scenario", "file", "default"].contains(&source)
                    || line.starts_with("scenario"),
                "{line}"
            );
        }
        assert!(text.contains("(env PERFHOST_SEED)"), "{text}");
        assert!(text.contains("(scenario sc)"), "{text}");
        assert!(text.contains("(cli --request-timeout)"), "{text}");
    }

    /// A valid value of each setting (not its default), its companions, and an invalid one.
    fn sample(key: &str) -> (&'static str, Option<&'static str>) {
        match key {
            "host" => ("http://127.0.0.1:9", Some("ftp://x")),
            "plugins" => ("http_get", None),
            "user-classes" => ("BurstUser", None),
            "users" => ("3", Some("0")),
            "spawn-rate" => ("2.5", Some("0")),
            "rate" => ("5/s", Some("fast")),
            "max-users" => ("7", Some("0")),
            "pre-allocated-users" => ("2", Some("x")),
            "arrivals" => ("poisson", Some("bursty")),
            "iterations" => ("3", Some("0")),
            "seed" => ("3", Some("x")),
            "insecure" | "reset-stats" | "trace" | "csv-full-history" | "only-summary"
            | "print-stats" => ("true", Some("maybe")),
            "ca-cert" => ("ca.pem", None),
            "max-body-size" => ("1MiB", Some("0")),
            "http-version" => ("2", Some("3")),
            "cpu-budget" => ("5s", Some("1ms")),
            "memory-cap-mib" => ("3", Some("0")),
            "log-level" => ("debug", Some("loud")),
            "run-name" => ("from-source", Some("../x")),
            "json-file" => ("out.json", None),
            "csv" => ("out", None),
            "html" => ("out.html", None),
            "junit" => ("junit.xml", None),
            "exit-code-on-error" => ("3", Some("300")),
            "data" => ("rows=rows.csv", None),
            "thresholds" => ("p95<1s", Some("p95~1s")),
            "web-host" => ("127.0.0.2", Some("nowhere")),
            "web-port" => ("8090", Some("70000")),
            "run-time" | "stop-timeout" | "request-timeout" => ("5s", Some("soon")),
            other => panic!("no sample for `{other}`: add one"),
        }
    }

    /// `sample` as a TOML value of its kind.
    fn toml_value(kind: table::Kind, text: &str) -> String {
        match kind {
            table::Kind::Flag | table::Kind::Number if text.parse::<f64>().is_ok() => text.into(),
            table::Kind::Flag if text == "true" => text.into(),
            table::Kind::Count { .. } if text.parse::<i64>().is_ok() => text.into(),
            table::Kind::List => format!("[\"{text}\"]"),
            _ => format!("\"{text}\""),
        }
    }

    /// Walks the settings table: each setting given on the command line, in `PERFHOST_<KEY>`,
    /// in perfhost.toml and (where Locust has it) in locust.conf reaches the plan as the same
    /// value, not the default; `--print-config` names the flag, variable or `file:line`; an
    /// invalid value from each source is refused naming that source.
    #[test]
    fn every_setting_reaches_the_plan_from_every_source() {
        for row in table::SETTINGS {
            let (good, bad) = sample(row.key);
            // The open model's companions need a rate; web-host and web-port the web UI.
            let companions: &[&str] = match row.key {
                "max-users" | "pre-allocated-users" | "arrivals" => &["--rate", "5/s"],
                "web-host" | "web-port" => &["--web"],
                _ => &[],
            };
            let flag_args = |value: &str| -> Vec<String> {
                let mut v: Vec<String> = companions.iter().map(|s| s.to_string()).collect();
                v.push(row.flag.to_string());
                if row.kind != table::Kind::Flag {
                    v.push(value.to_string());
                }
                v
            };
            let plain =
                run_flags::parse_run_flags("run", &flag_args(good)[..companions.len()]).unwrap();
            let var = env_var(row.key);
            let toml_text =
                |v: &str| format!("# settings\n{} = {}\n", row.key, toml_value(row.kind, v));
            let conf_text = |v: &str| {
                row.locust
                    .first()
                    .map(|k| format!("[locust]\n# from Locust\n{k} = {v}\n"))
            };
            let none = Layer::default();
            let shown = |plan: &Plan| (row.show)(plan);
            let default_plan = resolve_layers(&plain, &|_| None, &none).unwrap();

            // Command line.
            let args = run_flags::parse_run_flags("run", &flag_args(good)).unwrap();
            let from_cli = resolve_layers(&args, &|_| None, &none)
                .unwrap_or_else(|e| panic!("{} {good}: {e}", row.flag));
            assert_eq!(from_cli.sources[row.key].source, Source::Cli, "{}", row.key);
            assert_ne!(
                shown(&from_cli),
                shown(&default_plan),
                "{} did not reach the plan",
                row.flag
            );
            assert!(
                describe(&from_cli).contains(&format!("(cli {})", row.flag)),
                "{}",
                describe(&from_cli)
            );
            // Environment.
            let env = |v: &'static str| {
                move |name: &str| (name == env_var(row.key)).then(|| v.to_string())
            };
            let from_env = resolve_layers(&plain, &env(good), &none)
                .unwrap_or_else(|e| panic!("{var}={good}: {e}"));
            assert_eq!(shown(&from_env), shown(&from_cli), "{var}");
            assert!(
                describe(&from_env).contains(&format!("(env {var})")),
                "{var}"
            );
            // perfhost.toml.
            let file = sources::perfhost_toml("perfhost.toml", &toml_text(good))
                .unwrap_or_else(|e| panic!("{}: {e}", toml_text(good)));
            let from_file = resolve_layers(&plain, &|_| None, &file).unwrap();
            assert_eq!(
                shown(&from_file),
                shown(&from_cli),
                "perfhost.toml {}",
                row.key
            );
            assert!(
                describe(&from_file).contains("(file perfhost.toml:2)"),
                "{}",
                row.key
            );
            // locust.conf.
            if let Some(text) = conf_text(good) {
                let (conf, ignored) = locust_conf("locust.conf", &text).unwrap();
                assert!(ignored.is_empty(), "{ignored:?}");
                let from_conf = resolve_layers(&plain, &|_| None, &conf).unwrap();
                assert_eq!(
                    shown(&from_conf),
                    shown(&from_cli),
                    "locust.conf {}",
                    row.key
                );
                assert!(
                    describe(&from_conf).contains("(file locust.conf:3)"),
                    "{}",
                    row.key
                );
            }

            // An invalid value names its source.
            let Some(bad) = bad else { continue };
            // A flag without a value (`--insecure`) cannot be given a wrong one.
            if row.kind != table::Kind::Flag {
                let err = match run_flags::parse_run_flags("run", &flag_args(bad)) {
                    Err(clap_says) => clap_says,
                    Ok(args) => resolve_layers(&args, &|_| None, &none)
                        .map(drop)
                        .expect_err(bad)
                        .to_string(),
                };
                assert!(err.contains(row.flag), "{} {bad}: {err}", row.flag);
            }
            let err = resolve_layers(&plain, &env(bad), &none)
                .map(drop)
                .expect_err(bad);
            assert!(err.to_string().starts_with(&var), "{var}={bad}: {err}");
            let err = sources::perfhost_toml("perfhost.toml", &toml_text(bad))
                .and_then(|file| resolve_layers(&plain, &|_| None, &file).map(drop))
                .expect_err(bad);
            assert!(
                err.to_string()
                    .starts_with(&format!("perfhost.toml:2: field `{}`", row.key)),
                "{}: {err}",
                toml_text(bad)
            );
            if let Some(text) = conf_text(bad) {
                let err = locust_conf("locust.conf", &text)
                    .and_then(|(conf, _)| resolve_layers(&plain, &|_| None, &conf).map(drop))
                    .expect_err(bad);
                assert!(
                    err.to_string().starts_with("locust.conf:3: field"),
                    "{text}: {err}"
                );
            }
        }
        // Lists are comma-separated in the environment.
        let env = |var: &str| (var == "PERFHOST_THRESHOLDS").then(|| "p95<1s, rps>1".to_string());
        let plan = resolve_layers(&RunArgs::default(), &env, &Layer::default()).unwrap();
        assert_eq!(plan.thresholds.len(), 2);
    }
}
