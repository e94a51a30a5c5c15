//! The command line: one subcommand per user-facing job.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// perfhost — HTTP load testing with virtual users written as WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "perfhost", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the built-in JuraGPT Auditor API simulator (the default load target).
    DemoServer(crate::demo_server::DemoArgs),
    /// Run a load test (like `locust --headless`).
    #[command(after_help = run_help())]
    Run(Box<crate::settings::RunArgs>),
    /// Serve the web UI (like `locust` without --headless): start, steer and watch tests from
    /// a browser at http://127.0.0.1:8089/, with Locust's HTTP API and /metrics. Takes every
    /// `run` option as the form's defaults.
    #[command(after_help = run_help())]
    Ui(Box<crate::settings::RunArgs>),
    /// Merge the results of a sharded run (`perfhost run --shard i/N`) into one exact
    /// result: histograms added, thresholds judged on the whole, every report.
    Merge(crate::scale_out::commands::merge::MergeArgs),
    /// A sharded run on this machine: N processes of `perfhost run --shard i/N` started at
    /// one instant, then merged (`perfhost local --shards 4 -u 400 -t 1m`).
    Local(crate::scale_out::commands::local::LocalArgs),
    /// Run on Kubernetes: render an Indexed Job of N shards (`perfhost k8s render`), merge
    /// their results (`perfhost k8s collect`).
    #[command(subcommand)]
    K8s(crate::scale_out::commands::k8s::K8sCommand),
    /// Run on Slurm: render an sbatch job array of N shards (`perfhost slurm render`), merge
    /// their results (`perfhost slurm collect`).
    #[command(subcommand)]
    Slurm(crate::scale_out::commands::slurm::SlurmCommand),
    /// List and show scenario presets (run one with `perfhost run --scenario NAME`).
    #[command(subcommand)]
    Scenario(crate::settings::command::ScenarioCommand),
    /// Benchmark a service: fixed request counts at fixed concurrency, graded (default: the
    /// Auditor suite's benchmark.py). The sandbox's own cost is `perfhost plugin bench`.
    Bench(crate::bench::command::BenchArgs),
    /// Watch the server under test for memory leaks (as memory_profile.py): RSS, VMS,
    /// threads, open files, growth per minute; exit 4 on a leak warning.
    Profile(crate::profile::command::ProfileArgs),
    /// Inspect or export behaviour plugins.
    #[command(subcommand)]
    Plugin(crate::plugin_tools::PluginCommand),
    /// Compare two results (runs, benchmarks, or benchmark.py files): deltas per endpoint or
    /// case and exit 1 on a regression — the CI gate.
    Compare(crate::compare::command::CompareArgs),
    /// Render reports (HTML, CSV, Markdown, PNG) from a saved JSON result.
    Report(crate::report::command::ReportArgs),
}

/// What `perfhost run --help` adds below the options: the built-ins from their table, then
/// the rest.
fn run_help() -> String {
    use perfhost_core::plugin::builtin::{self, Role, BUILTINS};
    let general: Vec<String> = BUILTINS
        .iter()
        .filter(|b| b.role == Role::General)
        .map(|b| format!("{} ({})", b.name, b.summary))
        .collect();
    format!(
        "Plugins (--plugin / -f): a .wasm component path, or a built-in:\n  {} (the default set),\n  {},\n  {} (benchmarks).\n\n{RUN_HELP_REST}",
        builtin::names(&[Role::Default]).join(", "),
        general.join(", "),
        builtin::names(&[Role::Benchmark]).join(", "),
    )
}

const RUN_HELP_REST: &str = "\
Thresholds (--threshold, repeatable): [SCOPE:]METRIC OP VALUE[; abort-on-fail[=GRACE]]
  e.g. 'p95<500ms'  'failure-rate<1%'  'rps>50'  \"'POST /verify':p99<1s\"  'class=BurstUser:avg<200ms'

Environment: LOAD_TEST_HOST (target), API_TOKEN (Authorization: Bearer), API_KEY (X-API-Key),
PERFHOST_<SETTING> for every setting perfhost.toml takes (PERFHOST_USERS=10,
PERFHOST_HTML=report.html; lists comma-separated); ./perfhost.toml or ./locust.conf is read.
Precedence: command line > environment > --scenario > config file > defaults (--print-config).

Exit codes: 0 passed, 1 test failed (thresholds, or any failure without thresholds),
2 usage error, 3 target unreachable, 4 memory-leak warning, 130 interrupted.";

/// Parses the command line, runs the command and maps its outcome to an exit code. The one
/// place a failure is printed: `error: …` once, the errors under it at `-L debug`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init();
    // The level the command line asks for, before a plan resolves: a configuration error
    // comes before, and `-L debug` shows what is under it.
    if let Some(level) = early_log_level(&cli.command) {
        crate::logging::set_level(level);
    }
    let outcome = match cli.command {
        Command::DemoServer(args) => crate::demo_server::main(args),
        // `run --web` is the web UI's loop with the run's flags, already started.
        Command::Run(args) if args.web => crate::run::ui::main(*args, true),
        Command::Run(args) => crate::run::command::main(*args),
        Command::Ui(args) => crate::run::ui::main(*args, false),
        Command::Merge(args) => crate::scale_out::commands::merge::main(args),
        Command::Local(args) => crate::scale_out::commands::local::main(args),
        Command::K8s(cmd) => crate::scale_out::commands::k8s::main(cmd),
        Command::Slurm(cmd) => crate::scale_out::commands::slurm::main(cmd),
        Command::Plugin(cmd) => crate::plugin_tools::main(cmd),
        Command::Bench(args) => crate::bench::command::main(args),
        Command::Scenario(cmd) => crate::settings::command::main(cmd),
        Command::Report(args) => crate::report::command::main(args),
        Command::Profile(args) => crate::profile::command::main(args),
        Command::Compare(args) => crate::compare::command::main(args),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            let text = crate::failure::render(&failure, crate::logging::is_debug());
            crate::console::write_err(format_args!("{text}"), false);
            ExitCode::from(failure.code())
        }
    }
}

/// `-L/--loglevel` of the commands that take it, else `PERFHOST_LOG_LEVEL`; `None` when
/// neither names a level (a bad one is the plan's error to report).
fn early_log_level(command: &Command) -> Option<&'static str> {
    let flag = match command {
        Command::Run(args) | Command::Ui(args) => args.log_level.clone(),
        Command::Bench(args) => args.log_level.clone(),
        _ => None,
    };
    let level = flag.or_else(|| std::env::var("PERFHOST_LOG_LEVEL").ok())?;
    crate::settings::normalize_log_level(&level)
}
