//! A sharded run rendered for a scheduler teams already have: a Kubernetes Indexed Job
//! (`k8s`) or a Slurm job array (`slurm`). Both take `perfhost run`'s flags, check them
//! against the resolved plan here, and size each shard from the plan; neither runs anything.

pub mod k8s;
pub mod slurm;

use std::path::{Path, PathBuf};

use crate::plan::{Plan, ShardPlan};

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
    /// Users of the largest shard (shards differ by at most one).
    pub users_per_shard: u64,
    /// Memory a shard is planned to need (the engine's own estimate, plus the process).
    pub memory_bytes: u64,
    /// CPU a shard asks for, in thousandths of a core.
    pub cpu_millis: u64,
    /// Seconds from now until the last shard must have finished.
    pub deadline_s: u64,
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
/// Worker threads a shard is planned with (a pod or a task with 2 cores).
const PLANNED_WORKERS: u64 = 2;
/// Time after the run for stopping, writing results and exiting.
const DEADLINE_MARGIN_S: u64 = 120;

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
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{0}")]
    Start(String),
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
    let (start_at, start_unix) = match &options.start_at {
        Some(text) => (
            text.clone(),
            crate::plan::parse_rfc3339(text).map_err(DeployError::Start)?,
        ),
        None => {
            let at = (now + options.start_in.as_secs_f64()).ceil();
            (crate::plan::utc_timestamp(at), at)
        }
    };
    let (run_args, files) = name_files(run_args)?;
    let run_args = long_form(&run_args);
    let shard = ShardPlan {
        index: 0,
        count: options.shards,
    };
    let users_per_shard = shard.share(plan.max_users() as u64);
    let memory_bytes = crate::runner::planned_memory(users_per_shard, PLANNED_WORKERS)
        .saturating_add(PROCESS_BYTES);
    // A quarter core for the process, one more per thousand users (a user waiting between
    // tasks costs nothing; a busy one ~30 µs a request: docs/benchmarks.md).
    let cpu_millis = 250 + users_per_shard;
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
        start_at,
        run_args,
        files,
        users_per_shard,
        memory_bytes,
        cpu_millis,
        deadline_s,
    })
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
        let Some((name, rest)) = value.split_once('=') else {
            return Ok(value.to_string());
        };
        let (path, mode) = match rest.rsplit_once(':') {
            Some((p, m)) if ["shared", "unique", "per-user"].contains(&m) => (p, format!(":{m}")),
            _ => (rest, String::new()),
        };
        (format!("{name}="), path.to_string(), mode)
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
            let mut key = if base.is_empty() || base.starts_with('.') {
                format!("file{base}")
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
    let run = crate::config::RunArgs::augment_args(clap::Command::new("run"));
    let find = |flag: &str| {
        run.get_arguments().find(|a| match flag.strip_prefix("--") {
            Some(long) => a.get_long() == Some(long),
            None => {
                let mut c = flag.chars().skip(1);
                matches!((c.next(), c.next()), (Some(s), None) if a.get_short() == Some(s))
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

    /// Every file's bytes, read now.
    pub fn read_files(&self) -> Result<Vec<(NamedFile, Vec<u8>)>, DeployError> {
        self.files
            .iter()
            .map(|f| {
                std::fs::read(&f.source)
                    .map(|bytes| (f.clone(), bytes))
                    .map_err(|err| DeployError::Read {
                        path: f.source.display().to_string(),
                        err,
                    })
            })
            .collect()
    }
}

/// A DNS-1123 label: lower-case letters, digits and '-', at most 52 characters (a Job's
/// pods add a suffix to its name; 63 is the limit of a label).
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
                "on"
            ])),
            strings(&["--reset-stats", "--host=http://x", "--run-name=on"])
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
    fn names_become_dns_labels() {
        assert_eq!(dns_label("perfhost-My_Run 2"), "perfhost-my-run-2");
        assert_eq!(dns_label("--"), "perfhost");
        assert!(dns_label(&"x".repeat(80)).len() <= 52);
    }
}
