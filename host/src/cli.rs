//! The command line: one subcommand per user-facing job.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;

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
    DemoServer(commands::demo_server::DemoArgs),
    /// Run a load test (like `locust --headless`).
    #[command(after_help = RUN_HELP)]
    Run(Box<crate::config::RunArgs>),
    /// Serve the web UI (like `locust` without --headless): start, steer and watch tests from
    /// a browser at http://127.0.0.1:8089/, with Locust's HTTP API and /metrics. Takes every
    /// `run` option as the form's defaults.
    #[command(after_help = RUN_HELP)]
    Ui(Box<crate::config::RunArgs>),
    /// Merge the results of a sharded run (`perfhost run --shard i/N`) into one exact
    /// result: histograms added, thresholds judged on the whole, every report.
    Merge(commands::merge::MergeArgs),
    /// A sharded run on this machine: N processes of `perfhost run --shard i/N` started at
    /// one instant, then merged (`perfhost local --shards 4 -u 400 -t 1m`).
    Local(commands::local::LocalArgs),
    /// Run on Kubernetes: render an Indexed Job of N shards (`perfhost k8s render`), merge
    /// their results (`perfhost k8s collect`).
    #[command(subcommand)]
    K8s(commands::k8s::K8sCommand),
    /// Run on Slurm: render an sbatch job array of N shards (`perfhost slurm render`), merge
    /// their results (`perfhost slurm collect`).
    #[command(subcommand)]
    Slurm(commands::slurm::SlurmCommand),
    /// List and show scenario presets (run one with `perfhost run --scenario NAME`).
    #[command(subcommand)]
    Scenario(commands::scenario::ScenarioCommand),
    /// Benchmark a service: fixed request counts at fixed concurrency, graded (default: the
    /// Auditor suite's benchmark.py). The sandbox's own cost is `perfhost plugin bench`.
    Bench(commands::bench::BenchArgs),
    /// Watch the server under test for memory leaks (as memory_profile.py): RSS, VMS,
    /// threads, open files, growth per minute; exit 4 on a leak warning.
    Profile(commands::profile::ProfileArgs),
    /// Inspect or export behaviour plugins.
    #[command(subcommand)]
    Plugin(commands::plugin::PluginCommand),
    /// Compare two results (runs, benchmarks, or benchmark.py files): deltas per endpoint or
    /// case and exit 1 on a regression — the CI gate.
    Compare(commands::compare::CompareArgs),
    /// Render reports (HTML, CSV, Markdown, PNG) from a saved JSON result.
    Report(commands::report::ReportArgs),
}

/// What `perfhost run --help` adds below the options.
const RUN_HELP: &str = "\
Plugins (--plugin / -f): a .wasm component path, or a built-in: auditor_user, burst_user,
heavy_user (the default set), http_get (GET one path: --config-value path=/x), auditor_benchmark,
bench_verify.

Thresholds (--threshold, repeatable): [SCOPE:]METRIC OP VALUE[; abort-on-fail[=GRACE]]
  e.g. 'p95<500ms'  'failure-rate<1%'  'rps>50'  \"'POST /verify':p99<1s\"  'class=BurstUser:avg<200ms'

Environment: LOAD_TEST_HOST (target), API_TOKEN (Authorization: Bearer), API_KEY (X-API-Key),
PERFHOST_<SETTING> for every setting perfhost.toml takes (PERFHOST_USERS=10,
PERFHOST_HTML=report.html; lists comma-separated); ./perfhost.toml or ./locust.conf is read.
Precedence: command line > environment > --scenario > config file > defaults (--print-config).

Exit codes: 0 passed, 1 test failed (thresholds, or any failure without thresholds),
2 usage error, 3 target unreachable, 4 memory-leak warning, 130 interrupted.";

/// Parses the command line, runs the command and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init();
    let code = match cli.command {
        Command::DemoServer(args) => commands::demo_server::main(args),
        Command::Run(args) => commands::run::main(*args),
        Command::Ui(args) => commands::ui::main(*args, false),
        Command::Merge(args) => commands::merge::main(args),
        Command::Local(args) => commands::local::main(args),
        Command::K8s(cmd) => commands::k8s::main(cmd),
        Command::Slurm(cmd) => commands::slurm::main(cmd),
        Command::Plugin(cmd) => commands::plugin::main(cmd),
        Command::Bench(args) => commands::bench::main(args),
        Command::Scenario(cmd) => commands::scenario::main(cmd),
        Command::Report(args) => commands::report::main(args),
        Command::Profile(args) => commands::profile::main(args),
        Command::Compare(args) => commands::compare::main(args),
    };
    ExitCode::from(code)
}
