//! A sharded run rendered for a scheduler teams already have: a Kubernetes Indexed Job
//! (`k8s`) or a Slurm job array (`slurm`). Both take `perfhost run`'s flags, check them
//! against the resolved plan here, and size each shard from the plan; neither runs anything.

pub mod commands;
pub mod k8s;
pub mod slurm;

use std::path::{Path, PathBuf};

use perfhost_core::plan::{Plan, ShardPlan};

/// What both schedulers need to know of one sharded run.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Job name: a DNS-1123 label (Kubernetes) and a Slurm job name.
    pub name: String,
    pub shards: usize,
    /// The common start (`--start-at`), RFC 3339.
    pub start_at: String,
    /// The user's run flags, files named in them replaced by [`Deployment::files`]' places.
    pub run_args: Vec<String>,
    /// Files the run flags name (plugins, data, settings, scenario, CA), to ship or share.
    pub files: Vec<NamedFile>,
    /// Worker threads of a shard (`--workers`, in the run flags).
    pub workers: u64,
    /// Users of the largest shard (shards differ by at most one).
    pub users_per_shard: u64,
    /// Memory a shard is planned to need (the engine's own estimate, plus the process).
    pub memory_bytes: u64,
    /// CPU a shard asks for, in thousandths of a core.
    pub cpu_millis: u64,
    /// Seconds from now until the last shard must have finished.
    pub deadline_s: u64,
    /// The run's `--exit-code-on-error`, for the merge that judges it.
    pub exit_code_on_error: u8,
    /// Secrets the run flags carried (the target URL's password, `--web-token`), taken out
    /// of [`Deployment::run_args`]: the shards read them from their environment.
    pub secrets: Vec<SecretEnv>,
    /// The target URL's password came from the settings file (`--config`), which is shipped
    /// as it is.
    pub password_in_settings: bool,
}

/// A secret of the run flags, as the environment variable the shards read it from.
#[derive(Clone, PartialEq)]
pub struct SecretEnv {
    /// `PERFHOST_HOST` or `PERFHOST_WEB_TOKEN`.
    pub name: &'static str,
    /// The flag it was given with, for messages.
    pub flag: &'static str,
    pub value: String,
}

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=[redacted]", self.name)
    }
}

/// Takes the secrets out of the run flags (`--long=value` form): a target URL with user
/// information (`http://user:pw@host`) and `--web-token`. Rendered manifests and scripts are
/// read by many (anyone who may list pods, every user of a cluster's shared folder); the
/// values go to the shards through their environment instead.
fn take_secrets(args: Vec<String>) -> (Vec<String>, Vec<SecretEnv>) {
    let mut secrets: Vec<SecretEnv> = Vec::new();
    let mut kept = Vec::with_capacity(args.len());
    for arg in args {
        let host = ["--host=", "--url=", "-H="]
            .iter()
            .find_map(|p| arg.strip_prefix(p))
            .or_else(|| arg.strip_prefix("-H").filter(|v| !v.is_empty()));
        if let Some(url) =
            host.filter(|url| perfhost_core::plan::Target::credentials(url).is_some())
        {
            secrets.retain(|s| s.name != "PERFHOST_HOST");
            secrets.push(SecretEnv {
                name: "PERFHOST_HOST",
                flag: "-H/--host",
                value: url.to_string(),
            });
            continue;
        }
        if host.is_some() {
            // A later -H without a password wins over an earlier one with.
            secrets.retain(|s| s.name != "PERFHOST_HOST");
        }
        if let Some(token) = arg.strip_prefix("--web-token=") {
            secrets.retain(|s| s.name != "PERFHOST_WEB_TOKEN");
            secrets.push(SecretEnv {
                name: "PERFHOST_WEB_TOKEN",
                flag: "--web-token",
                value: token.to_string(),
            });
            continue;
        }
        kept.push(arg);
    }
    (kept, secrets)
}

/// A file named in the run flags: where it is here, and its name where the shards read it.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedFile {
    pub source: PathBuf,
    /// A name unique among the run's files, `[-._a-zA-Z0-9]` only (a ConfigMap key).
    pub key: String,
}

/// Memory a shard process needs beyond its users and plugin instances.
const PROCESS_BYTES: u64 = 64 << 20;
/// Time after the run for stopping, writing results and exiting.
const DEADLINE_MARGIN_S: u64 = 120;

/// Worker threads a shard runs at least (`--workers`), and memory is planned for.
const MIN_WORKERS: u64 = 2;

/// A flag a scheduler's shards set themselves, refused in the run flags.
const SET_PER_SHARD: [&str; 9] = [
    "--shard",
    "--start-at",
    "--json-file",
    "--html",
    "--csv",
    "--junit",
    "--hlog",
    "--web",
    "--metrics-port",
];

/// The mistakes `render` refuses, each in one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("give the target with -H URL: each shard would start its own built-in demo server, which no other shard loads")]
    NoTarget,
    #[error("{0}: every shard sets its own (the merged result's reports come from `perfhost k8s collect` / `perfhost merge`)")]
    SetPerShard(String),
    #[error("--shards: give 1 to 4096 shards")]
    Shards,
    #[error(
        "{flag} {path}: no such file — name a file that exists here (it is shipped to the shards)"
    )]
    Missing { flag: String, path: String },
    #[error("{0}")]
    Input(perfhost_core::input::InputError),
    #[error("{0}")]
    Start(String),
    #[error("--start-at {0} has passed: give a later time, or --start-in D")]
    StartPassed(String),
    #[error("{0} is read by `perfhost run` here but not by the shards: name it with --config {0} (it is shipped with them)")]
    ImplicitSettings(String),
    #[error("{what} {path} is named in a settings or scenario file, so it is not shipped: name it on the command line ({flag}) instead")]
    Unshipped {
        what: &'static str,
        flag: &'static str,
        path: String,
    },
}

/// Common scheduler options.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub shards: usize,
    pub name: Option<String>,
    /// An explicit start; else `now + start_in`.
    pub start_at: Option<String>,
    pub start_in: std::time::Duration,
}

/// Checks the run flags against their resolved plan and sizes each shard. `now` is the Unix
/// time the start is counted from.
pub fn prepare(
    plan: &Plan,
    run_args: &[String],
    options: &DeployOptions,
    now: f64,
) -> Result<Deployment, DeployError> {
    if options.shards == 0 || options.shards > 4096 {
        return Err(DeployError::Shards);
    }
    if plan.target.is_none() {
        return Err(DeployError::NoTarget);
    }
    for arg in run_args {
        let flag = arg.split('=').next().unwrap_or(arg);
        if SET_PER_SHARD.contains(&flag) {
            return Err(DeployError::SetPerShard(flag.to_string()));
        }
    }
    let o = &plan.outputs;
    for (set, what) in [
        (o.json_file.is_some(), "json-file"),
        (o.html.is_some(), "html"),
        (o.csv.is_some(), "csv"),
        (o.junit.is_some(), "junit"),
        (o.hlog.is_some(), "hlog"),
        (o.metrics.is_some(), "metrics-port"),
    ] {
        if set {
            return Err(DeployError::SetPerShard(format!(
                "{what} (in the settings file)"
            )));
        }
    }
    let named_config = run_args
        .iter()
        .any(|a| a == "--config" || a.starts_with("--config="));
    if !named_config {
        if let Some(found) = ["perfhost.toml", "locust.conf"]
            .into_iter()
            .find(|p| Path::new(p).exists())
        {
            return Err(DeployError::ImplicitSettings(found.to_string()));
        }
    }
    let (start_at, start_unix) = match &options.start_at {
        Some(text) => (
            text.clone(),
            perfhost_core::plan::parse_rfc3339(text).map_err(DeployError::Start)?,
        ),
        None => {
            let at = (now + options.start_in.as_secs_f64()).ceil();
            (perfhost_core::plan::utc_timestamp(at), at)
        }
    };
    if start_unix < now {
        return Err(DeployError::StartPassed(start_at));
    }
    let (run_args, files) = name_files(run_args)?;
    check_shipped(plan, &files)?;
    let (mut run_args, secrets) = take_secrets(long_form(&run_args));
    let password_in_settings =
        plan.client.basic_auth.is_some() && !secrets.iter().any(|s| s.name == "PERFHOST_HOST");
    let shard = ShardPlan {
        index: 0,
        count: options.shards,
    };
    let users_per_shard = shard.share(plan.max_users() as u64);
    // A quarter core for the process, one more per thousand users (a user waiting between
    // tasks costs nothing; a busy one ~30 µs a request: docs/benchmarks.md).
    let cpu_millis = 250 + users_per_shard;
    // The engine starts as many workers as it sees CPUs, and each class keeps a plugin
    // instance per worker: a shard on a 64-core node would outgrow its memory. So the shard
    // runs the workers its CPUs pay for, and memory is planned for those.
    let workers = match run_args.iter().find_map(|a| a.strip_prefix("--workers=")) {
        Some(n) => n.parse().unwrap_or(MIN_WORKERS),
        None => {
            let n = cpu_millis.div_ceil(1000).max(MIN_WORKERS);
            run_args.push(format!("--workers={n}"));
            n
        }
    };
    let classes = plan.plugins.len().max(1) as u64;
    // Each class holds at least one instance per worker: workers × classes of them.
    let memory_bytes = perfhost_core::run::planned_memory(users_per_shard, workers * classes)
        .saturating_add(PROCESS_BYTES);
    let run_s = plan
        .stop
        .run_time
        .map(|d| d.as_secs())
        .unwrap_or_else(|| plan.load.duration().as_secs().max(3600));
    let deadline_s = (start_unix - now).max(0.0).ceil() as u64
        + run_s
        + plan.stop.stop_timeout.as_secs()
        + DEADLINE_MARGIN_S;
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| format!("perfhost-{}", plan.outputs.run_name));
    Ok(Deployment {
        name: dns_label(&name),
        shards: options.shards,
        workers,
        start_at,
        run_args,
        files,
        users_per_shard,
        memory_bytes,
        cpu_millis,
        deadline_s,
        exit_code_on_error: plan.outputs.exit_code_on_error,
        secrets,
        password_in_settings,
    })
}

/// Refuses a plugin or data file the plan names that the flags did not (it came from a
/// settings or scenario file, and would not be shipped).
fn check_shipped(plan: &Plan, files: &[NamedFile]) -> Result<(), DeployError> {
    let shipped: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| std::fs::canonicalize(&f.source).ok())
        .collect();
    let is_shipped = |path: &str| std::fs::canonicalize(path).is_ok_and(|p| shipped.contains(&p));
    for plugin in &plan.plugins {
        if (plugin.ends_with(".wasm") || Path::new(plugin).is_file()) && !is_shipped(plugin) {
            return Err(DeployError::Unshipped {
                what: "plugin",
                flag: "-f FILE",
                path: plugin.clone(),
            });
        }
    }
    for spec in &plan.data {
        let (_, path, _) = data_parts(spec);
        if !path.is_empty() && !is_shipped(&path) {
            return Err(DeployError::Unshipped {
                what: "data file",
                flag: "--data NAME=FILE",
                path,
            });
        }
    }
    Ok(())
}

/// `NAME=FILE[:mode]` as (`NAME=`, FILE, `:mode`); FILE is empty without a `=`.
fn data_parts(value: &str) -> (String, String, String) {
    let Some((name, rest)) = value.split_once('=') else {
        return (String::new(), String::new(), String::new());
    };
    let (path, mode) = match rest.rsplit_once(':') {
        Some((p, m)) if ["shared", "unique", "per-user"].contains(&m) => (p, format!(":{m}")),
        _ => (rest, String::new()),
    };
    (format!("{name}="), path.to_string(), mode)
}

/// Flags whose value is a file (or, for `-f` and `--scenario`, a name or a file).
fn file_flag(flag: &str) -> Option<&'static str> {
    match flag {
        "-f" | "--plugin" | "--locustfile" => Some("--plugin"),
        "--data" => Some("--data"),
        "--config" => Some("--config"),
        "--scenario" => Some("--scenario"),
        "--ca-cert" => Some("--ca-cert"),
        _ => None,
    }
}

/// The run flags with every file they name replaced by `{file:KEY}` (a scheduler fills in
/// its place), and those files.
fn name_files(args: &[String]) -> Result<(Vec<String>, Vec<NamedFile>), DeployError> {
    let mut out = Vec::with_capacity(args.len());
    let mut files: Vec<NamedFile> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            // -f=FILE and -fFILE, as clap reads them.
            _ if arg.starts_with("-f") && !arg.starts_with("--") && arg.len() > 2 => {
                ("-f", Some(arg[2..].trim_start_matches('=').to_string()))
            }
            _ => (arg.as_str(), None),
        };
        let Some(kind) = file_flag(flag) else {
            out.push(arg.clone());
            i += 1;
            continue;
        };
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                match args.get(i) {
                    Some(v) => v.clone(),
                    None => {
                        out.push(arg.clone());
                        break;
                    }
                }
            }
        };
        let replaced = replace_file(kind, &value, &mut files)?;
        out.push(flag.to_string());
        out.push(replaced);
        i += 1;
    }
    Ok((out, files))
}

/// One flag value with its file (if it names one) replaced by `{file:KEY}`.
fn replace_file(
    kind: &str,
    value: &str,
    files: &mut Vec<NamedFile>,
) -> Result<String, DeployError> {
    // --data NAME=FILE[:mode]
    let (prefix, path, suffix) = if kind == "--data" {
        let parts = data_parts(value);
        if parts.1.is_empty() {
            return Ok(value.to_string());
        }
        parts
    } else {
        (String::new(), value.to_string(), String::new())
    };
    let is_file = Path::new(&path).is_file();
    // A plugin or scenario given by name is built in: nothing to ship.
    if !is_file {
        let named = (kind == "--plugin" && !path.ends_with(".wasm"))
            || (kind == "--scenario" && !path.ends_with(".toml"));
        if named {
            return Ok(value.to_string());
        }
        return Err(DeployError::Missing {
            flag: kind.to_string(),
            path,
        });
    }
    let source = PathBuf::from(&path);
    let key = match files.iter().find(|f| f.source == source) {
        Some(f) => f.key.clone(),
        None => {
            let base: String = source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-._".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let mut key = if base.is_empty() || base.starts_with('.') || yaml11_retyped(&base) {
                format!("file-{base}")
            } else {
                base
            };
            if files.iter().any(|f| f.key == key) {
                key = format!("{}-{key}", files.len());
            }
            files.push(NamedFile {
                source,
                key: key.clone(),
            });
            key
        }
    };
    Ok(format!("{prefix}{{file:{key}}}{suffix}"))
}

/// The run flags as `--long=value` tokens: unambiguous anywhere they are written (a YAML
/// 1.1 reader takes a bare `2026-12-01` for a date, `on` for true; a token starting with `--`
/// is always a string).
fn long_form(args: &[String]) -> Vec<String> {
    use clap::Args as _;
    let run = crate::settings::RunArgs::augment_args(clap::Command::new("run"));
    let find = |flag: &str| {
        run.get_arguments().find(|a| match flag.strip_prefix("--") {
            Some(long) => {
                a.get_long() == Some(long) || a.get_all_aliases().is_some_and(|v| v.contains(&long))
            }
            None => {
                let mut c = flag.chars().skip(1);
                matches!((c.next(), c.next()), (Some(s), None)
                    if a.get_short() == Some(s)
                        || a.get_all_short_aliases().is_some_and(|v| v.contains(&s)))
            }
        })
    };
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let spec = (arg.starts_with('-') && !arg.contains('='))
            .then(|| find(arg))
            .flatten();
        match spec {
            Some(a) if a.get_long().is_some() => {
                let long = a.get_long().unwrap_or_default();
                match args.get(i + 1).filter(|_| a.get_action().takes_values()) {
                    Some(value) => {
                        out.push(format!("--{long}={value}"));
                        i += 1;
                    }
                    None => out.push(format!("--{long}")),
                }
            }
            _ => out.push(arg.clone()),
        }
        i += 1;
    }
    out
}

impl Deployment {
    /// The run flags with each `{file:KEY}` replaced by `place(file)`.
    pub fn args_with(&self, place: impl Fn(&NamedFile) -> String) -> Vec<String> {
        self.run_args
            .iter()
            .map(|arg| {
                let mut arg = arg.clone();
                for f in &self.files {
                    arg = arg.replace(&format!("{{file:{}}}", f.key), &place(f));
                }
                arg
            })
            .collect()
    }

    /// The start as a folder name: `20261201T100000Z`.
    pub fn start_stamp(&self) -> String {
        self.start_at.replace(['-', ':'], "")
    }

    /// Every file's bytes, read now.
    pub fn read_files(&self) -> Result<Vec<(NamedFile, Vec<u8>)>, DeployError> {
        self.files
            .iter()
            .map(|f| {
                let kind = if f.source.extension().is_some_and(|e| e == "wasm") {
                    perfhost_core::input::Kind::Plugin
                } else {
                    perfhost_core::input::Kind::Data
                };
                perfhost_core::input::read(&f.source, kind)
                    .map(|bytes| (f.clone(), bytes))
                    .map_err(DeployError::Input)
            })
            .collect()
    }
}

/// Whether a YAML 1.1 reader (kubectl's, PyYAML) would take this plain scalar for
/// something other than a string: a boolean (`on`, `no`), null, a number (`0755`, `1:30`,
/// `1e3`) or a date (`2026-12-01`). YAML 1.2 writers leave most of these unquoted.
pub fn yaml11_retyped(s: &str) -> bool {
    const WORDS: [&str; 28] = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "~", "null", "Null", "NULL", "<<",
        "=",
    ];
    if s.is_empty() || WORDS.contains(&s) {
        return true;
    }
    let unsigned = s.trim_start_matches(['-', '+']);
    let lower = unsigned.to_ascii_lowercase();
    if lower == ".inf" || lower == ".nan" {
        return true;
    }
    let b = s.as_bytes();
    let date = b.len() >= 8
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5].is_ascii_digit();
    // Numbers in every base and the sexagesimal form: conservative (a word such as `1d`
    // counts too), which costs nothing where it is only ever quoted.
    let number = unsigned
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && unsigned
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "xXoO_.:+-".contains(c));
    date || number
}

/// A DNS-1123 label: lower-case letters, digits and '-', at most 52 characters (a Job's
/// pods add a suffix to its name; 63 is the limit of a label); never one a YAML 1.1 reader
/// retypes (`on` becomes `perfhost-on`).
pub fn dns_label(name: &str) -> String {
    let mut label: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while label.contains("--") {
        label = label.replace("--", "-");
    }
    let label: String = label.trim_matches('-').chars().take(52).collect();
    let label = label.trim_end_matches('-').to_string();
    if label.is_empty() {
        "perfhost".to_string()
    } else if yaml11_retyped(&label) {
        format!("perfhost-{label}")
    } else {
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn files_in_the_flags_are_named_and_built_ins_are_not() {
        let dir = std::env::temp_dir().join(format!("perfhost-deploy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wasm = dir.join("my user.wasm");
        let csv = dir.join("rows.csv");
        std::fs::write(&wasm, b"\0asm").unwrap();
        std::fs::write(&csv, b"a\n1\n").unwrap();
        let args = strings(&[
            "-f",
            wasm.to_str().unwrap(),
            "--plugin=burst_user",
            "--data",
            &format!("rows={}:unique", csv.display()),
            "-u",
            "10",
            &format!("--plugin={}", wasm.display()),
        ]);
        let (out, files) = name_files(&args).unwrap();
        assert_eq!(
            long_form(&out[..8]),
            strings(&[
                "--plugin={file:my_user.wasm}",
                "--plugin=burst_user",
                "--data=rows={file:rows.csv}:unique",
                "--users=10",
            ])
        );
        assert_eq!(
            long_form(&strings(&[
                "--reset-stats",
                "-H",
                "http://x",
                "--run-name",
                "on",
                "--log-level",
                "off"
            ])),
            strings(&[
                "--reset-stats",
                "--host=http://x",
                "--run-name=on",
                "--loglevel=off"
            ])
        );
        assert_eq!(
            out,
            strings(&[
                "-f",
                "{file:my_user.wasm}",
                "--plugin",
                "burst_user",
                "--data",
                "rows={file:rows.csv}:unique",
                "-u",
                "10",
                "--plugin",
                "{file:my_user.wasm}",
            ])
        );
        assert_eq!(files.len(), 2, "one file named twice is shipped once");
        let missing = name_files(&strings(&["-f", "/nonexistent/x.wasm"])).unwrap_err();
        assert!(missing.to_string().contains("no such file"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn yaml_1_1_retypings_are_known() {
        for s in [
            "on",
            "No",
            "~",
            "",
            "0755",
            "1:30",
            "1e3",
            "-.5",
            "2026-12-01",
            "0x1F",
            ".NaN",
        ] {
            assert!(yaml11_retyped(s), "{s}");
        }
        for s in [
            "perfhost-on",
            "5m",
            "128Mi",
            "--users=10",
            "http://x",
            "rows.csv",
            "auto",
        ] {
            assert!(!yaml11_retyped(s), "{s}");
        }
    }

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(dns_label("on"), "perfhost-on");
        assert_eq!(dns_label("perfhost-My_Run 2"), "perfhost-my-run-2");
        assert_eq!(dns_label("--"), "perfhost");
        assert!(dns_label(&"x".repeat(80)).len() <= 52);
    }
}
