//! `perfhost bench`: the benchmark suite (default: the Auditor suite's benchmark.py, case for
//! case) against a service — health gate, progress, summary, grading, JSON/HTML/Markdown.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::bench::report::{self as bench_report, BenchResult, Level};
use crate::bench::{run_suite, Progress};
use crate::exit;
use crate::failure::{Failure, Lost};
use crate::settings::{self, RunArgs};
use perfhost_core::engine::StopHandle;
use perfhost_core::plan::format_duration;

/// Which grade fails the run (`--fail-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Exit 1 when a case grades poor.
    Poor,
    /// Exit 1 when a case grades acceptable or poor.
    Acceptable,
}

/// Options of `perfhost bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Target, e.g. http://127.0.0.1:8888 (else LOAD_TEST_HOST, else the built-in demo server).
    #[arg(short = 'H', long = "host", visible_alias = "url", value_name = "URL")]
    pub host: Option<String>,
    /// The suite: a TOML file of cases and grading tables (default: the built-in Auditor suite,
    /// benchmark.py's seven cases; schema in scenarios/README.md).
    #[arg(long, value_name = "FILE")]
    pub suite: Option<PathBuf>,
    /// Run every case with this plugin (a .wasm or a built-in such as http_get) instead of the
    /// suite's.
    #[arg(long, value_name = "FILE|NAME")]
    pub plugin: Option<String>,
    /// The JSON result [default: reports/benchmark_<YYYYmmdd_HHMMSS>.json].
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write the suite as a self-contained HTML page.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write a Markdown summary (`-` prints it).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Also write JUnit XML: one test case per benchmark case.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// A new connection for every request (benchmark.py's way; default: one kept-alive
    /// connection per user). The connection's set-up is then part of each latency.
    #[arg(long = "no-keepalive")]
    pub no_keepalive: bool,
    /// Exit 1 when a case grades `poor` (or `acceptable` or worse).
    #[arg(long = "fail-on", value_enum, value_name = "GRADE")]
    pub fail_on: Option<FailOn>,
    /// Timeout of one request [default: 30s].
    #[arg(long = "request-timeout", value_parser = settings::parse_duration_arg, allow_hyphen_values = true)]
    pub request_timeout: Option<std::time::Duration>,
    /// A configuration value for every case's plugin (ctx.config(KEY)).
    #[arg(long = "config-value", value_name = "KEY=VALUE")]
    pub config_values: Vec<String>,
    /// Settings file (default: ./perfhost.toml if present).
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Accept any TLS certificate.
    #[arg(long)]
    pub insecure: bool,
    /// Also trust the CA certificates in this PEM file.
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Log level: DEBUG, INFO, WARNING, ERROR.
    #[arg(
        short = 'L',
        long = "loglevel",
        visible_alias = "log-level",
        value_name = "LEVEL"
    )]
    pub log_level: Option<String>,
}

/// The CLI entry: 0 when every case ran without a failed request (and `--fail-on` held), 1
/// otherwise, 3 when the health gate failed, 2 for usage errors, 6 when an output could not
/// be written, 130 when interrupted.
pub fn main(args: BenchArgs) -> Result<u8, Failure> {
    let run_args = RunArgs {
        host: args.host.clone(),
        request_timeout: args.request_timeout,
        config_values: args.config_values.clone(),
        config: args.config.clone(),
        seed: args.seed,
        insecure: args.insecure,
        ca_cert: args.ca_cert.clone(),
        log_level: args.log_level.clone(),
        ..Default::default()
    };
    let plan = settings::resolve(&run_args, &|k| std::env::var(k).ok())?;
    crate::logging::set_level(&plan.log_level);
    let mut suite = crate::bench::suite::load(args.suite.as_deref())?;
    if let Some(plugin) = &args.plugin {
        suite = suite.with_plugin(plugin);
    }
    if args.no_keepalive {
        suite = suite.without_keepalive();
    }
    let most = suite.cases.iter().map(|c| c.concurrency).max().unwrap_or(1);
    crate::process::raise_fd_limit(most);
    let runtime = crate::process::control_runtime()?;
    let tty = std::io::stderr().is_terminal();
    let stop = StopHandle::default();
    let result = runtime.block_on(async {
        crate::process::interrupt_on_signal(&stop);
        crate::errln!(
            "perfhost bench: suite {} ({}, {} cases)",
            suite.name,
            suite.source,
            suite.cases.len()
        );
        run_suite(&plan, &suite, stop.clone(), |p| progress(p, tty)).await
    });
    let result = result?;
    crate::outln!("\n{}", bench_report::summary(&result));
    let lost = write_outputs(&result, &args);
    lost.or_verdict(exit_code(&result, args.fail_on, stop.was_interrupted()))
}

fn progress(p: Progress<'_>, tty: bool) {
    match p {
        Progress::Case { index, count, case } => crate::errln!(
            "\n[{}/{count}] {} — {}\n      {} requests, concurrency {}{}",
            index + 1,
            case.name,
            case.description,
            case.requests,
            case.concurrency,
            if case.keepalive {
                ""
            } else {
                ", a new connection per request"
            }
        ),
        Progress::Tick { case, done } => {
            let width = 30;
            let filled = ((done as f64 / case.requests as f64).min(1.0) * width as f64) as usize;
            let bar = format!(
                "[{}{}] {done}/{}",
                "#".repeat(filled),
                "-".repeat(width - filled),
                case.requests
            );
            if tty {
                crate::console::write_err_raw(format_args!("\r      {bar}\x1b[K"), false);
            } else {
                crate::errln!("      {bar}");
            }
        }
        Progress::Done(c) => {
            if tty {
                crate::console::write_err_raw(format_args!("\r\x1b[K"), false);
            }
            crate::errln!(
                "      {}/{} successful ({:.1}%), {:.2} req/s in {}, latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
                c.successful_requests,
                c.total_requests,
                c.successful_requests as f64 * 100.0 / c.total_requests.max(1) as f64,
                c.requests_per_second,
                format_duration(std::time::Duration::from_secs_f64(c.duration_seconds)),
                c.latency_p50_ms,
                c.latency_p95_ms,
                c.latency_p99_ms
            );
        }
    }
}

/// Writes every output asked for (each whole or not at all); names each one that could not be.
fn write_outputs(result: &BenchResult, args: &BenchArgs) -> Lost {
    let mut lost = Lost::default();
    // Held until the JSON is written: a second bench in the same second gets `…-2`.
    let mut claim = None;
    let json = match &args.output {
        Some(path) => path.clone(),
        None => {
            match perfhost_core::outfile::claim_stem(
                std::path::Path::new("reports"),
                &format!("benchmark_{}", crate::report::timestamp()),
            ) {
                Ok(c) => {
                    let mut path = c.stem.clone().into_os_string();
                    path.push(".json");
                    claim = Some(c);
                    PathBuf::from(path)
                }
                Err(err) => {
                    lost.add(&err);
                    PathBuf::new()
                }
            }
        }
    };
    if !json.as_os_str().is_empty() {
        match result.write_json(&json) {
            Ok(()) => crate::errln!("Result written to {}", json.display()),
            Err(err) => lost.add(&err),
        }
    }
    drop(claim);
    let mut write = |path: &PathBuf, text: String| {
        if path.as_os_str() == "-" {
            crate::out!("{text}");
            return;
        }
        match perfhost_core::outfile::write(path, text.as_bytes()) {
            Ok(()) => crate::errln!("Report written to {}", path.display()),
            Err(err) => lost.add(&err),
        }
    };
    if let Some(path) = &args.html {
        write(path, bench_report::html(result));
    }
    if let Some(path) = &args.markdown {
        write(path, bench_report::markdown(result));
    }
    if let Some(path) = &args.junit {
        write(
            path,
            crate::bench::report::junit(result, gate(args.fail_on)),
        );
    }
    lost
}

fn gate(fail_on: Option<FailOn>) -> Option<Level> {
    fail_on.map(|f| match f {
        FailOn::Poor => Level::Poor,
        FailOn::Acceptable => Level::Acceptable,
    })
}

/// 130 when interrupted; 1 for a failed request or a failed `--fail-on` gate; else 0.
fn exit_code(result: &BenchResult, fail_on: Option<FailOn>, interrupted: bool) -> u8 {
    if interrupted {
        return exit::INTERRUPTED;
    }
    let gate = gate(fail_on);
    let graded_out = match (gate, result.grading.worst) {
        (Some(gate), Some(worst)) => worst >= gate,
        _ => false,
    };
    if graded_out {
        crate::errln!(
            "bench failed: a case graded {} (--fail-on {})",
            result.grading.worst.map(Level::as_str).unwrap_or("-"),
            gate.map(Level::as_str).unwrap_or("-")
        );
    }
    if result.has_failures() || graded_out {
        exit::TEST_FAILED
    } else {
        exit::OK
    }
}
