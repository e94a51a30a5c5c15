//! From the command line, `perfhost.toml` and the environment to one resolved `Plan`.
//! Precedence: CLI > environment > file > defaults; `--print-config` shows where each value
//! came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Options of `perfhost run` (Locust's names where Locust has one).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Behaviour plugin: a .wasm component or a built-in name (auditor_user, burst_user,
    /// heavy_user). Repeat to mix; default: all three built-ins (weights 7/2/1).
    #[arg(long = "plugin", value_name = "FILE|NAME")]
    pub plugins: Vec<String>,
    /// Target origin, e.g. http://127.0.0.1:8000 (else LOAD_TEST_HOST, else the built-in demo server).
    #[arg(short = 'H', long = "host", visible_alias = "url", value_name = "URL")]
    pub host: Option<String>,
    /// Number of concurrent virtual users [default: 10].
    #[arg(short = 'u', long)]
    pub users: Option<usize>,
    /// Users started per second [default: all at once].
    #[arg(short = 'r', long = "spawn-rate")]
    pub spawn_rate: Option<f64>,
    /// Stop after this long: 90s, 5m, 1h30m (a bare number is seconds) [default: 60s].
    #[arg(short = 't', long = "run-time", value_parser = parse_duration_arg)]
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
    #[arg(long = "stop-timeout", value_parser = parse_duration_arg)]
    pub stop_timeout: Option<Duration>,
    /// Timeout of one request [default: 30s].
    #[arg(long = "request-timeout", value_parser = parse_duration_arg)]
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
    #[arg(long, value_parser = parse_duration_arg, default_value = "30s")]
    pub pause: Duration,
    /// Name of the run, used in report file names.
    #[arg(long = "run-name")]
    pub run_name: Option<String>,
    /// Guest CPU time a plugin may compute without a break (without calling the host) before
    /// its instance is stopped [default: 1s].
    #[arg(long = "cpu-budget", value_parser = parse_duration_arg)]
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
}

/// `perfhost.toml`: the equivalent of locust.conf.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub host: Option<String>,
    pub users: Option<usize>,
    pub spawn_rate: Option<f64>,
    pub run_time: Option<String>,
    pub iterations: Option<u64>,
    pub plugins: Option<Vec<String>>,
    pub user_classes: Option<Vec<String>>,
    pub seed: Option<u64>,
    pub log_level: Option<String>,
    pub stop_timeout: Option<String>,
    pub request_timeout: Option<String>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// Configuration problems: one line naming the thing and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Scenario(crate::scenario::ScenarioError),
}

/// Where a resolved value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Cli,
    Env,
    Scenario,
    File,
    Default,
}

/// The resolved plan of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// `None`: start the built-in demo server.
    pub host: Option<String>,
    pub plugins: Vec<String>,
    pub users: usize,
    pub spawn_rate: f64,
    /// The load shape's stages (from a scenario); empty: ramp to `users` and hold.
    pub stages: Vec<crate::engine::Stage>,
    pub run_time: Option<Duration>,
    pub iterations: Option<u64>,
    pub user_classes: Vec<String>,
    /// Class weights overriding the plugins' own (from a scenario).
    pub class_weights: BTreeMap<String, u32>,
    pub seed: u64,
    pub stop_timeout: Duration,
    pub request_timeout: Duration,
    pub reset_stats: bool,
    pub trace: bool,
    pub config_values: BTreeMap<String, String>,
    pub data: Vec<String>,
    pub run_name: String,
    pub cpu_budget: Duration,
    pub memory_cap: usize,
    pub insecure: bool,
    pub ca_cert: Option<PathBuf>,
    /// `--csv PREFIX` / `--html FILE`.
    pub csv: Option<PathBuf>,
    pub html: Option<PathBuf>,
    /// The scenario asks for CSV / HTML reports next to the JSON result.
    pub report_csv: bool,
    pub report_html: bool,
    /// Parsed thresholds (evaluated by the CI gate).
    pub thresholds: Vec<crate::scenario::Threshold>,
    /// The scenario this plan came from.
    #[serde(skip)]
    pub scenario: Option<crate::scenario::Scenario>,
    /// Where each value came from (for --print-config).
    pub sources: BTreeMap<String, Source>,
    /// Auth headers from API_TOKEN / API_KEY (never printed or reported).
    #[serde(skip)]
    pub api_token: Option<String>,
    #[serde(skip)]
    pub api_key: Option<String>,
}

/// Default run time when neither `-t` nor `-n` is given.
const DEFAULT_RUN_TIME: Duration = Duration::from_secs(60);

impl Plan {
    /// Resolves CLI > environment > scenario > perfhost.toml > defaults. `env` is passed in so
    /// tests control it.
    pub fn resolve(
        args: &RunArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Plan, ConfigError> {
        let file = load_file(args.config.as_deref())?;
        let scenario = match args.scenario.as_deref() {
            Some(name) => Some(crate::scenario::load(name).map_err(ConfigError::Scenario)?),
            None => None,
        };
        let sc = scenario.as_ref();
        let mut sources = BTreeMap::new();
        // The first layer that has a value wins; its name is recorded for --print-config.
        let mut pick = |key: &str, layers: [bool; 4]| {
            let names = [Source::Cli, Source::Env, Source::Scenario, Source::File];
            let source = layers
                .iter()
                .position(|&set| set)
                .map(|i| names[i])
                .unwrap_or(Source::Default);
            sources.insert(key.to_string(), source);
        };
        let file_duration = |v: &Option<String>, what: &str| {
            v.as_deref()
                .map(|t| {
                    parse_duration(t)
                        .map_err(|e| ConfigError::Invalid(format!("perfhost.toml {what}: {e}")))
                })
                .transpose()
        };

        let env_host = env("LOAD_TEST_HOST").filter(|h| !h.trim().is_empty());
        pick(
            "host",
            [
                args.host.is_some(),
                env_host.is_some(),
                false,
                file.host.is_some(),
            ],
        );
        let host = args.host.clone().or(env_host).or(file.host.clone());

        let sc_plugins = sc.and_then(|s| s.plugins.clone());
        pick(
            "plugins",
            [
                !args.plugins.is_empty(),
                false,
                sc_plugins.is_some(),
                file.plugins.is_some(),
            ],
        );
        let plugins = if !args.plugins.is_empty() {
            args.plugins.clone()
        } else {
            sc_plugins.or(file.plugins.clone()).unwrap_or_else(|| {
                crate::plugin::builtin::NAMES
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            })
        };

        let sc_users = sc.and_then(|s| s.users);
        pick(
            "users",
            [
                args.users.is_some(),
                false,
                sc_users.is_some(),
                file.users.is_some(),
            ],
        );
        let users = args.users.or(sc_users).or(file.users).unwrap_or(10);
        let sc_rate = sc.and_then(|s| s.spawn_rate);
        pick(
            "spawn-rate",
            [
                args.spawn_rate.is_some(),
                false,
                sc_rate.is_some(),
                file.spawn_rate.is_some(),
            ],
        );
        let spawn_rate = args
            .spawn_rate
            .or(sc_rate)
            .or(file.spawn_rate)
            .unwrap_or(users.max(1) as f64);
        // A scenario's stages shape the run unless -u / -r ask for a plain ramp.
        let stages = match sc {
            Some(s) if args.users.is_none() && args.spawn_rate.is_none() => s.stages.clone(),
            _ => Vec::new(),
        };

        let file_run_time = file_duration(&file.run_time, "run-time")?;
        let sc_run_time = sc.and_then(|s| s.duration());
        pick(
            "run-time",
            [
                args.run_time.is_some(),
                false,
                sc_run_time.is_some(),
                file_run_time.is_some(),
            ],
        );
        pick(
            "iterations",
            [
                args.iterations.is_some(),
                false,
                false,
                file.iterations.is_some(),
            ],
        );
        let iterations = args.iterations.or(file.iterations);
        let run_time =
            args.run_time
                .or(sc_run_time)
                .or(file_run_time)
                .or(if iterations.is_some() {
                    None
                } else {
                    Some(DEFAULT_RUN_TIME)
                });

        pick(
            "seed",
            [args.seed.is_some(), false, false, file.seed.is_some()],
        );
        let seed = args.seed.or(file.seed).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
        let stop_timeout = args
            .stop_timeout
            .or(file_duration(&file.stop_timeout, "stop-timeout")?)
            .unwrap_or(Duration::from_secs(10));
        let request_timeout = args
            .request_timeout
            .or(file_duration(&file.request_timeout, "request-timeout")?)
            .unwrap_or(Duration::from_secs(30));

        let mut config_values = file.config.clone();
        if let Some(s) = sc {
            config_values.extend(s.config.clone());
        }
        for kv in &args.config_values {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                ConfigError::Invalid(format!("--config-value `{kv}`: expected KEY=VALUE"))
            })?;
            config_values.insert(k.to_string(), v.to_string());
        }

        if users == 0 {
            return Err(ConfigError::Invalid("--users must be at least 1".into()));
        }
        if !(spawn_rate > 0.0 && spawn_rate.is_finite()) {
            return Err(ConfigError::Invalid(
                "--spawn-rate must be a positive number of users per second".into(),
            ));
        }
        if let Some(host) = &host {
            crate::client::Target::parse(host).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        let sc_classes = sc.map(|s| s.user_classes.clone()).filter(|c| !c.is_empty());
        pick(
            "user-classes",
            [
                !args.user_classes.is_empty(),
                false,
                sc_classes.is_some(),
                file.user_classes.is_some(),
            ],
        );
        let user_classes = if args.user_classes.is_empty() {
            sc_classes.or(file.user_classes.clone()).unwrap_or_default()
        } else {
            args.user_classes.clone()
        };
        let run_name = args
            .run_name
            .clone()
            .or(sc.map(|s| s.name.clone()))
            .unwrap_or_else(|| "run".to_string());
        Ok(Plan {
            host,
            plugins,
            users,
            spawn_rate,
            stages,
            run_time,
            iterations,
            user_classes,
            class_weights: sc.map(|s| s.weights.clone()).unwrap_or_default(),
            seed,
            stop_timeout,
            request_timeout,
            reset_stats: args.reset_stats,
            trace: args.trace,
            config_values,
            data: args.data.clone(),
            run_name,
            cpu_budget: args.cpu_budget.unwrap_or(crate::plugin::DEFAULT_CPU_BUDGET),
            memory_cap: args
                .memory_cap_mib
                .map(|m| m << 20)
                .unwrap_or(crate::plugin::DEFAULT_MEMORY_CAP),
            insecure: args.insecure,
            ca_cert: args.ca_cert.clone(),
            csv: args.csv.clone(),
            html: args.html.clone(),
            report_csv: sc.is_some_and(|s| s.report_csv),
            report_html: sc.is_some_and(|s| s.report_html),
            thresholds: sc.map(|s| s.thresholds.clone()).unwrap_or_default(),
            scenario: scenario.clone(),
            sources,
            api_token: env("API_TOKEN").filter(|s| !s.is_empty()),
            api_key: env("API_KEY").filter(|s| !s.is_empty()),
        })
    }

    /// The load shape of this plan.
    pub fn shape(&self) -> crate::engine::LoadShape {
        crate::engine::LoadShape {
            users: self.users,
            spawn_rate: self.spawn_rate,
            stages: self.stages.clone(),
        }
    }

    /// The most users alive at once.
    pub fn max_users(&self) -> usize {
        self.shape().max_users()
    }

    /// The text of `--print-config`: every value and where it came from. Secrets are masked.
    pub fn describe(&self) -> String {
        let src = |k: &str| {
            self.sources
                .get(k)
                .map(|s| format!("{s:?}").to_lowercase())
                .unwrap_or_else(|| "default".into())
        };
        let dur = |d: Option<Duration>| {
            d.map(format_duration)
                .unwrap_or_else(|| "until -n is reached".into())
        };
        let mut out = String::new();
        let mut line =
            |k: &str, v: String, s: String| out.push_str(&format!("{k:<16} {v:<40} ({s})\n"));
        line(
            "host",
            self.host
                .clone()
                .unwrap_or_else(|| "built-in demo server".into()),
            src("host"),
        );
        if let Some(sc) = &self.scenario {
            line("scenario", sc.name.clone(), sc.source.clone());
        }
        line("plugins", self.plugins.join(", "), src("plugins"));
        let classes = if self.user_classes.is_empty() {
            "all".to_string()
        } else {
            self.user_classes.join(", ")
        };
        line("user-classes", classes, src("user-classes"));
        if !self.class_weights.is_empty() {
            let w: Vec<String> = self
                .class_weights
                .iter()
                .map(|(c, w)| format!("{c}={w}"))
                .collect();
            line("weights", w.join(", "), "scenario".into());
        }
        for (i, stage) in self.stages.iter().enumerate() {
            line(
                &format!("stage {}", i + 1),
                format!(
                    "{} users over {}",
                    stage.users,
                    format_duration(stage.duration)
                ),
                "scenario".into(),
            );
        }
        for t in &self.thresholds {
            line("threshold", t.text.clone(), "scenario".into());
        }
        line("users", self.users.to_string(), src("users"));
        line(
            "spawn-rate",
            format!("{}/s", self.spawn_rate),
            src("spawn-rate"),
        );
        line("run-time", dur(self.run_time), src("run-time"));
        line(
            "iterations",
            self.iterations
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            src("iterations"),
        );
        line("seed", self.seed.to_string(), src("seed"));
        line(
            "stop-timeout",
            format_duration(self.stop_timeout),
            "cli or default".into(),
        );
        line(
            "request-timeout",
            format_duration(self.request_timeout),
            "cli or default".into(),
        );
        line(
            "API_TOKEN",
            if self.api_token.is_some() {
                "set (hidden)".into()
            } else {
                "-".into()
            },
            "env".into(),
        );
        line(
            "API_KEY",
            if self.api_key.is_some() {
                "set (hidden)".into()
            } else {
                "-".into()
            },
            "env".into(),
        );
        out
    }
}

fn load_file(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let default = PathBuf::from("perfhost.toml");
            if !default.exists() {
                return Ok(FileConfig::default());
            }
            default
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path,
        message: e.to_string().replace('\n', " "),
    })
}

/// Parses `90s`, `5m`, `2h`, `1h30m`, `250ms`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || {
        format!("`{text}` is not a duration — use e.g. 90s, 5m, 1h30m, 250ms (a bare number is seconds)")
    };
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return if secs >= 0.0 && secs.is_finite() {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(bad())
        };
    }
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
    Ok(Duration::from_secs_f64(total))
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text)
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

#[cfg(test)]
mod tests {
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
        let plan = Plan::resolve(&args, &|_| None).unwrap();
        assert_eq!(plan.host.as_deref(), Some("http://127.0.0.1:7000"));
        assert_eq!((plan.users, plan.sources["users"]), (3, Source::Cli));
        assert_eq!(
            (plan.run_time, plan.sources["run-time"]),
            (Some(Duration::from_secs(120)), Source::File)
        );
        assert_eq!(plan.plugins, ["burst_user"]);
        assert_eq!(plan.config_values["region"], "eu");
        let env = |k: &str| (k == "LOAD_TEST_HOST").then(|| "http://127.0.0.1:7001".to_string());
        assert_eq!(
            Plan::resolve(&args, &env).unwrap().host.as_deref(),
            Some("http://127.0.0.1:7001")
        );
        std::fs::write(&file, "userz = 3\n").unwrap();
        let err = Plan::resolve(&args, &|_| None).unwrap_err().to_string();
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
        assert!(matches!(
            Plan::resolve(&args, &env),
            Err(ConfigError::Read { .. })
        ));
        let args = RunArgs::default();
        let plan = Plan::resolve(&args, &env).unwrap();
        assert_eq!(plan.host.as_deref(), Some("http://127.0.0.1:1234"));
        assert_eq!(plan.sources["host"], Source::Env);
        assert!(!plan.describe().contains("secret-key"));
        let args = RunArgs {
            host: Some("http://127.0.0.1:9".into()),
            users: Some(3),
            ..Default::default()
        };
        let plan = Plan::resolve(&args, &env).unwrap();
        assert_eq!(plan.host.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(plan.sources["host"], Source::Cli);
        assert_eq!(plan.users, 3);
    }
}
