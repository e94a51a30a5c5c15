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
    Run(Box<crate::config::RunArgs>),
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
    /// Render reports (HTML, CSV, Markdown, PNG) from a saved JSON result.
    Report(commands::report::ReportArgs),
}

/// Parses the command line, runs the command and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init();
    let code = match cli.command {
        Command::DemoServer(args) => commands::demo_server::main(args),
        Command::Run(args) => commands::run::main(*args),
        Command::Plugin(cmd) => commands::plugin::main(cmd),
        Command::Bench(args) => commands::bench::main(args),
        Command::Scenario(cmd) => commands::scenario::main(cmd),
        Command::Report(args) => commands::report::main(args),
        Command::Profile(args) => commands::profile::main(args),
    };
    ExitCode::from(code)
}
