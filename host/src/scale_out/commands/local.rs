//! `perfhost local --shards N [run flags]`: a sharded run on this machine — N processes of
//! `perfhost run --shard i/N`, one start barrier, a result file each, then `perfhost merge`.
//! The way to try what a Kubernetes Indexed Job or a Slurm array does, with no cluster.

use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::exit;
use crate::failure::Failure;
use crate::report::{load_result, summary_table, ReportOutputs};
use crate::scale_out::commands::merge::write_merged;
use crate::settings::{self, parse_duration_arg};
use perfhost_core::result::merge::merge;

#[derive(Debug, Clone, clap::Args)]
pub struct LocalArgs {
    /// How many processes (shards) share the run.
    #[arg(long, value_name = "N")]
    pub shards: usize,
    /// Time between launching the shards and their common start, for loading and compiling
    /// plugins [default: 10s].
    #[arg(long = "start-delay", value_parser = parse_duration_arg, value_name = "D")]
    pub start_delay: Option<Duration>,
    /// Where the merged JSON result goes [default: reports/<run-name>_local_<time>/merged.json].
    #[arg(long = "json-file", value_name = "FILE")]
    pub json_file: Option<PathBuf>,
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
pub fn main(mut args: LocalArgs) -> Result<u8, Failure> {
    if args.shards == 0 || args.shards > 64 {
        return Err(Failure::usage(
            "--shards: give 1 to 64 processes for a run on one machine",
        ));
    }
    // The merged result's files may also come among the run flags (`perfhost local --shards 2
    // -u 6 --json-file out.json`): they are the merged result's, never a shard's.
    let (run, merged_outputs) = take_merged_outputs(&args.run);
    args.run = run;
    for (flag, value) in merged_outputs {
        let slot = match flag {
            "--json-file" => &mut args.json_file,
            "--html" => &mut args.html,
            "--csv" => &mut args.csv,
            "--junit" => &mut args.junit,
            _ => &mut args.hlog,
        };
        if slot.is_none() {
            *slot = Some(value);
        }
    }
    let flags = crate::settings::run_flags::parse_run_flags("perfhost local", &args.run)
        .map_err(Failure::usage)?;
    for (given, flag) in [
        (flags.shard.is_some(), "--shard"),
        (flags.start_at.is_some(), "--start-at"),
        (flags.web, "--web"),
    ] {
        if given {
            return Err(Failure::usage(format_args!(
                "{flag}: perfhost local sets each shard's own"
            )));
        }
    }
    let plan = settings::resolve(&flags, &|k| std::env::var(k).ok())?;
    // Outputs set by PERFHOST_<SETTING> (or the config file) are the merged result's too; the
    // shards do not inherit them (each would write the same file).
    args.json_file = args.json_file.or_else(|| plan.outputs.json_file.clone());
    args.html = args.html.or_else(|| plan.outputs.html.clone());
    args.csv = args.csv.or_else(|| plan.outputs.csv.clone());
    args.junit = args.junit.or_else(|| plan.outputs.junit.clone());
    // One target for every shard: the named one, or one built-in demo server.
    let mut demo = None;
    let mut host_args = Vec::new();
    if plan.target.is_none() {
        match perfhost_demo::DemoChild::start() {
            Ok(child) => {
                crate::errln!(
                    "Started the built-in demo server at {} for every shard",
                    child.url
                );
                host_args = vec!["-H".to_string(), child.url.clone()];
                demo = Some(child);
            }
            Err(err) => {
                return Err(Failure::unreachable(format_args!(
                    "cannot start the built-in demo server: {err}"
                ))
                .because(&err));
            }
        }
    }
    let exe = std::env::current_exe().map_err(|err| {
        Failure::usage(format_args!("cannot find the perfhost executable: {err}")).because(&err)
    })?;
    // A folder of its own: two runs of one name started in one second get `…-2`.
    let dir = match perfhost_core::outfile::create_new_dir(
        Path::new("reports"),
        &format!(
            "{}_local_{}",
            plan.outputs.run_name,
            crate::report::timestamp()
        ),
    ) {
        Ok(dir) => dir,
        Err(err) => return Err(Failure::of(exit::USAGE, &err)),
    };
    let runtime = crate::process::control_runtime()?;
    // Ctrl-C and SIGTERM reach perfhost local before any shard starts: each is passed on to
    // every shard (their own process group, so a terminal's Ctrl-C is not counted twice), and
    // what they wrote is merged. A first stops their users, a second cancels in-flight
    // requests, as for `perfhost run`.
    let mut signals = {
        let _enter = runtime.enter();
        match Signals::new() {
            Ok(signals) => signals,
            Err(err) => {
                return Err(
                    Failure::usage(format_args!("cannot listen for signals: {err}")).because(&err),
                );
            }
        }
    };
    let delay = args.start_delay.unwrap_or(Duration::from_secs(10));
    let start_at = perfhost_core::plan::utc_timestamp(
        (perfhost_core::stats::unix_now() + delay.as_secs_f64()).ceil(),
    );
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
                stop_children(&mut children);
                return Err(
                    Failure::usage(format_args!("cannot write {}: {err}", dir.display()))
                        .because(&err),
                );
            }
        };
        let err_log = log.try_clone().ok();
        let json = dir.join(format!("shard-{i}.json"));
        let mut command = Command::new(&exe);
        command
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
            .env_remove("PERFHOST_JSON_FILE")
            .env_remove("PERFHOST_HTML")
            .env_remove("PERFHOST_CSV")
            .env_remove("PERFHOST_JUNIT")
            .stdout(Stdio::from(log))
            .stderr(err_log.map_or(Stdio::null(), Stdio::from))
            .process_group(0);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the
        // parent: a shard whose perfhost local dies (even by SIGKILL) is sent SIGTERM, stops
        // its users and writes its result instead of loading the target alone.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
                Ok(())
            });
        }
        match command.spawn() {
            Ok(c) => children.push((i, c, json)),
            Err(err) => {
                stop_children(&mut children);
                return Err(
                    Failure::usage(format_args!("cannot start shard {i}: {err}")).because(&err),
                );
            }
        }
    }
    let (statuses, interrupted) =
        runtime.block_on(wait_for_shards(&mut children, &mut signals, args.shards));
    let mut worst = exit::OK;
    let mut results = Vec::new();
    for ((i, _, json), status) in children.iter().zip(statuses) {
        let log = dir.join(format!("shard-{i}.log"));
        let code = match status.as_ref().map(|s| (s.code(), s.signal())) {
            Some((Some(code), _)) => code as u8,
            Some((None, Some(signal))) => {
                crate::errln!(
                    "shard {i}/{} was killed by signal {signal}{}: see {}",
                    args.shards,
                    signal_name(signal),
                    log.display()
                );
                worst = worst.max(exit::INTERRUPTED);
                exit::OK
            }
            _ => {
                crate::errln!(
                    "shard {i}/{}: its exit status is unknown: see {}",
                    args.shards,
                    log.display()
                );
                worst = worst.max(exit::USAGE);
                exit::OK
            }
        };
        if code == exit::INTERRUPTED && interrupted {
            worst = worst.max(code);
        } else if code != exit::OK && code != exit::TEST_FAILED {
            crate::errln!(
                "shard {i}/{} exited with {code}: see {}",
                args.shards,
                log.display()
            );
            worst = worst.max(code);
        }
        if let Ok(result) = load_result(json) {
            results.push((json.display().to_string(), result));
        }
    }
    drop(demo);
    let merged = match merge(results) {
        Ok(merged) => merged,
        Err(err) => return Err(Failure::of(worst.max(exit::USAGE), &err)),
    };
    crate::outln!("{}", summary_table(&merged));
    let outputs = ReportOutputs {
        csv_prefix: args.csv,
        html: args.html,
        markdown: args.markdown,
        junit: args.junit,
        ..Default::default()
    };
    let json = args.json_file.unwrap_or_else(|| dir.join("merged.json"));
    let lost = write_merged(&merged, &json, args.hlog.as_deref(), &outputs);
    let mut code = crate::run::command::exit_code(&merged, plan.outputs.exit_code_on_error);
    if interrupted {
        code = exit::INTERRUPTED;
    }
    lost.or_verdict(worst.max(code))
}

/// SIGINT and SIGTERM, listened for from before the first shard starts.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Needs a runtime entered.
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The next signal's number.
    async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.interrupt.recv() => libc::SIGINT,
            _ = self.terminate.recv() => libc::SIGTERM,
        }
    }
}

type Shard = (usize, std::process::Child, PathBuf);

/// Waits until every shard has exited, passing each signal on to the shards still running;
/// their exit statuses, and whether a signal came.
async fn wait_for_shards(
    children: &mut [Shard],
    signals: &mut Signals,
    count: usize,
) -> (Vec<Option<ExitStatus>>, bool) {
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut unknown = vec![false; children.len()];
    let mut interrupts = 0;
    loop {
        for (k, (_, child, _)) in children.iter_mut().enumerate() {
            if statuses[k].is_none() && !unknown[k] {
                match child.try_wait() {
                    Ok(Some(status)) => statuses[k] = Some(status),
                    Ok(None) => {}
                    Err(_) => unknown[k] = true,
                }
            }
        }
        let running: Vec<u32> = children
            .iter()
            .zip(&statuses)
            .zip(&unknown)
            .filter(|((_, s), u)| s.is_none() && !**u)
            .map(|(((_, c, _), _), _)| c.id())
            .collect();
        if running.is_empty() {
            return (statuses, interrupts > 0);
        }
        tokio::select! {
            signal = signals.next() => {
                interrupts += 1;
                if interrupts == 1 {
                    crate::errln!(
                        "\nInterrupted: stopping the {} of {count} shards still running and merging what they wrote… (interrupt again to cancel their in-flight requests now)",
                        running.len()
                    );
                } else {
                    crate::errln!("\nInterrupted again: the shards cancel their in-flight requests and write their results now");
                }
                for pid in running {
                    // SAFETY: kill(2) on a child not yet waited for: its pid is still ours.
                    unsafe {
                        libc::kill(pid as libc::pid_t, signal);
                    }
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Stops the shards started so far (a later one could not start): SIGTERM, then waits.
fn stop_children(children: &mut [Shard]) {
    for (_, child, _) in children.iter_mut() {
        // SAFETY: kill(2) on a child not yet waited for.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    for (_, child, _) in children.iter_mut() {
        let _ = child.wait();
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => " (SIGKILL: the OOM killer or kill -9)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGSEGV => " (SIGSEGV: a crash)",
        libc::SIGABRT => " (SIGABRT: a crash)",
        _ => "",
    }
}

/// The run flags without the merged result's outputs (`--json-file`, `--html`, `--csv`,
/// `--junit`, `--hlog`, as `--flag VALUE` or `--flag=VALUE`), and those outputs.
fn take_merged_outputs(run: &[String]) -> (Vec<String>, Vec<(&'static str, PathBuf)>) {
    const MERGED: [&str; 5] = ["--json-file", "--html", "--csv", "--junit", "--hlog"];
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    let mut tokens = run.iter();
    while let Some(token) = tokens.next() {
        let flag = MERGED.iter().find(|f| {
            token == *f
                || token
                    .strip_prefix(*f)
                    .is_some_and(|rest| rest.starts_with('='))
        });
        match flag {
            Some(flag) if token == flag => match tokens.next() {
                Some(value) => taken.push((*flag, PathBuf::from(value))),
                // `--html` with no value: left for the run-flag parser to name.
                None => kept.push(token.clone()),
            },
            Some(flag) => taken.push((*flag, PathBuf::from(&token[flag.len() + 1..]))),
            None => kept.push(token.clone()),
        }
    }
    (kept, taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_outputs_are_taken_from_the_run_flags() {
        let run: Vec<String> = [
            "-u",
            "6",
            "--json-file",
            "m.json",
            "--html=r.html",
            "-t",
            "5s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (kept, taken) = take_merged_outputs(&run);
        assert_eq!(kept, ["-u", "6", "-t", "5s"]);
        assert_eq!(
            taken,
            [
                ("--json-file", PathBuf::from("m.json")),
                ("--html", PathBuf::from("r.html"))
            ]
        );
    }
}
