//! The command line: one subcommand per user-facing job.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::demo;

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
    DemoServer(demo::DemoArgs),
    /// Run a load test (like `locust --headless`).
    Run(Box<crate::config::RunArgs>),
    /// List and show scenario presets (run one with `perfhost run --scenario NAME`).
    #[command(subcommand)]
    Scenario(crate::commands::scenario::ScenarioCommand),
    /// Measure the sandbox's cost: WASM users vs native Rust users, CPU per request and RSS.
    Bench(crate::bench::BenchArgs),
    /// Inspect or export behaviour plugins.
    #[command(subcommand)]
    Plugin(crate::commands::plugin::PluginCommand),
    /// Render reports (HTML, CSV, Markdown, PNG) from a saved JSON result.
    Report(crate::report::ReportArgs),
}

/// Parses the command line, runs the command and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let code = match cli.command {
        Command::DemoServer(args) => demo::run_cli(args),
        Command::Run(args) => crate::commands::run::main(*args),
        Command::Plugin(cmd) => crate::commands::plugin::main(cmd),
        Command::Bench(args) => crate::bench::main(args),
        Command::Scenario(cmd) => crate::commands::scenario::main(cmd),
        Command::Report(args) => crate::report::cli_main(args),
    };
    ExitCode::from(code)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PERFHOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
