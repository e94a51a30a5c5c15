//! `perfhost local --shards N [run flags]`: a sharded run on this machine — N processes of
//! `perfhost run --shard i/N`, one start barrier, a result file each, then `perfhost merge`.
//! The way to try what a Kubernetes Indexed Job or a Slurm array does, with no cluster.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::commands::merge::write_merged;
use crate::config::{self, parse_duration_arg};
use crate::exit;
use crate::report::merge::merge;
use crate::report::{load_result, summary_table, ReportOutputs};

#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// How many processes (shards) share the run.
    #[arg(long, value_name = "N")]
    pub shards: usize,
    /// Time between launching the shards and their common start, for loading and compiling
    /// plugins [default: 10s].
    #[arg(long = "start-delay", value_parser = parse_duration_arg, value_name = "D")]
    pub start_delay: Option<Duration>,
    /// The merged result's HTML report.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// The merged result's Locust-compatible CSV files.
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
    /// The merged result's JUnit XML.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// The merged result's Markdown summary (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// The merged histograms of every second as an HdrHistogram interval log.
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,
    /// `perfhost run` flags for every shard (-u, -r, -t, -f, -H, --rate, --threshold, …).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "RUN FLAGS"
    )]
    pub run: Vec<String>,
}

/// The CLI entry: the merged run's exit code, or the worst shard's when a shard failed.
pub fn main(args: LocalArgs) -> u8 {
    if args.shards == 0 || args.shards > 64 {
        crate::errln!("error: --shards: give 1 to 64 processes for a run on one machine");
        return exit::USAGE;
    }
    let flags = match super::parse_run_flags("perfhost local", &args.run) {
        Ok(f) => f,
        Err(err) => {
            crate::errln!("error: {err}");
            return exit::USAGE;
        }
    };
    for (given, flag) in [
        (flags.shard.is_some(), "--shard"),
        (flags.start_at.is_some(), "--start-at"),
        (flags.json_file.is_some(), "--json-file"),
        (flags.html.is_some(), "--html"),
        (flags.csv.is_some(), "--csv"),
        (flags.junit.is_some(), "--junit"),
        (flags.hlog.is_some(), "--hlog"),
        (flags.web, "--web"),
    ] {
        if given {
            crate::errln!(
                "error: {flag}: perfhost local sets each shard's own (give --html, --csv, --junit, --markdown or --hlog to perfhost local itself for the merged result)"
            );
            return exit::USAGE;
        }
    }
    let plan = match config::resolve(&flags, &|k| std::env::var(k).ok()) {
        Ok(plan) => plan,
        Err(err) => {
            crate::errln!("error: {err}");
            return exit::USAGE;
        }
    };
    // One target for every shard: the named one, or one built-in demo server.
    let mut demo = None;
    let mut host_args = Vec::new();
    if plan.target.is_none() {
        match crate::demo::DemoChild::start() {
            Ok(child) => {
                crate::errln!(
                    "Started the built-in demo server at {} for every shard",
                    child.url
                );
                host_args = vec!["-H".to_string(), child.url.clone()];
                demo = Some(child);
            }
            Err(err) => {
                crate::errln!("error: cannot start the built-in demo server: {err}");
                return exit::UNREACHABLE;
            }
        }
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            crate::errln!("error: cannot find the perfhost executable: {err}");
            return exit::USAGE;
        }
    };
    let dir = PathBuf::from("reports").join(format!(
        "{}_local_{}",
        plan.outputs.run_name,
        crate::report::timestamp()
    ));
    if let Err(err) = std::fs::create_dir_all(&dir) {
        crate::errln!("error: cannot create {}: {err}", dir.display());
        return exit::USAGE;
    }
    let delay = args.start_delay.unwrap_or(Duration::from_secs(10));
    let start_at =
        crate::plan::utc_timestamp((crate::stats::unix_now() + delay.as_secs_f64()).ceil());
    crate::errln!(
        "{} shards start at {start_at}; their results and logs go to {}",
        args.shards,
        dir.display()
    );
    let mut children = Vec::new();
    for i in 0..args.shards {
        let log = match std::fs::File::create(dir.join(format!("shard-{i}.log"))) {
            Ok(f) => f,
            Err(err) => {
                crate::errln!("error: cannot write {}: {err}", dir.display());
                return exit::USAGE;
            }
        };
        let err_log = log.try_clone().ok();
        let json = dir.join(format!("shard-{i}.json"));
        let child = Command::new(&exe)
            .arg("run")
            .args(&args.run)
            .args(&host_args)
            .args([
                "--shard",
                &format!("{i}/{}", args.shards),
                "--start-at",
                &start_at,
            ])
            .arg("--json-file")
            .arg(&json)
            .arg("--only-summary")
            .stdout(Stdio::from(log))
            .stderr(err_log.map_or(Stdio::null(), Stdio::from))
            .spawn();
        match child {
            Ok(c) => children.push((i, c, json)),
            Err(err) => {
                crate::errln!("error: cannot start shard {i}: {err}");
                return exit::USAGE;
            }
        }
    }
    let mut worst = exit::OK;
    let mut results = Vec::new();
    for (i, mut child, json) in children {
        let code = child
            .wait()
            .ok()
            .and_then(|s| s.code())
            .map_or(exit::INTERRUPTED, |c| c as u8);
        if code != exit::OK && code != exit::TEST_FAILED {
            crate::errln!(
                "shard {i}/{} exited with {code}: see {}",
                args.shards,
                dir.join(format!("shard-{i}.log")).display()
            );
            worst = worst.max(code);
        }
        if let Ok(result) = load_result(&json) {
            results.push((json.display().to_string(), result));
        }
    }
    drop(demo);
    let merged = match merge(results) {
        Ok(merged) => merged,
        Err(err) => {
            crate::errln!("error: {err}");
            return worst.max(exit::USAGE);
        }
    };
    crate::outln!("{}", summary_table(&merged));
    let outputs = ReportOutputs {
        csv_prefix: args.csv,
        html: args.html,
        markdown: args.markdown,
        junit: args.junit,
        ..Default::default()
    };
    let json = dir.join("merged.json");
    if let Err(err) = write_merged(&merged, &json, args.hlog.as_deref(), &outputs) {
        crate::errln!("error: {err}");
        worst = worst.max(exit::USAGE);
    }
    let code = crate::commands::run::exit_code(&merged, plan.outputs.exit_code_on_error);
    worst.max(code)
}
