//! `perfhost profile`: watch the server under test for memory leaks, as the Auditor suite's
//! memory_profile.py — RSS, VMS, threads, open files, growth per minute, a plot, and a leak
//! warning with its own exit code (4; the old script used 2).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::exit;
use crate::failure::{Failure, Lost};
use crate::profile::target::FindError;
use crate::profile::{self, KeepAlive, ProfileOptions};
use crate::report::memory_line;
use crate::settings::parse_duration_arg;
use perfhost_core::engine::StopHandle;
use perfhost_core::plan::{format_duration, ClientOptions, LeakTables, ProcessQuery, Target};
use perfhost_core::result::memory::{MemoryProfile, Verdict};

/// Options of `perfhost profile`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArgs {
    /// The service, e.g. http://127.0.0.1:8888 (else LOAD_TEST_HOST, else
    /// http://localhost:8888, as memory_profile.py). Its port finds the process unless
    /// --pid/--port/--match do.
    #[arg(short = 'H', long = "host", visible_alias = "url", value_name = "URL")]
    pub host: Option<String>,
    /// How long to sample: 300, 5m, 1h [default: 300s].
    #[arg(long, value_parser = parse_duration_arg, default_value = "300")]
    pub duration: Duration,
    /// Time between samples: 5, 1s, 500ms [default: 5s].
    #[arg(long, value_parser = parse_duration_arg, default_value = "5")]
    pub interval: Duration,
    /// Also draw PREFIX.png: RSS and VMS over time, threads and open files.
    #[arg(long)]
    pub plot: bool,
    /// Output prefix: PREFIX.json (and PREFIX.png) [default: reports/memory_profile_<timestamp>].
    #[arg(short = 'o', long, value_name = "PREFIX")]
    pub output: Option<PathBuf>,
    /// The process with this pid.
    #[arg(long, conflicts_with_all = ["port", "match_text"])]
    pub pid: Option<u32>,
    /// The process listening on this local TCP port.
    #[arg(long, conflicts_with = "match_text")]
    pub port: Option<u16>,
    /// The process whose command line contains TEXT.
    #[arg(long = "match", value_name = "TEXT")]
    pub match_text: Option<String>,
    /// The root process alone (default: it and its children, e.g. uvicorn/gunicorn workers).
    #[arg(long = "no-children")]
    pub no_children: bool,
    /// The request sent each sample to keep the server busy: `health` (GET /health),
    /// `verify` (memory_profile.py's POST /verify), `none`, or a path to GET.
    #[arg(long, default_value = "health", value_name = "health|verify|none|PATH")]
    pub request: String,
}

/// The CLI entry: 0 healthy (or too short to judge), 4 on a leak warning, 2 when the process
/// cannot be found, 3 when the service does not answer its health check, 6 when an output
/// could not be written.
pub fn main(args: ProfileArgs) -> Result<u8, Failure> {
    let url = args
        .host
        .clone()
        .or_else(|| {
            std::env::var("LOAD_TEST_HOST")
                .ok()
                .filter(|h| !h.trim().is_empty())
        })
        .unwrap_or_else(|| "http://localhost:8888".to_string());
    let target = Arc::new(Target::parse(&url).map_err(Failure::usage)?);
    let keep_alive = match args.request.as_str() {
        "none" => KeepAlive::None,
        "health" => KeepAlive::Get("/health".into()),
        "verify" => KeepAlive::Verify,
        path if path.starts_with('/') => KeepAlive::Get(path.to_string()),
        other => {
            return Err(Failure::usage(format_args!(
                "--request `{other}`: use health, verify, none or a path such as /health"
            )));
        }
    };
    if args.interval < Duration::from_millis(50) || args.duration.is_zero() {
        return Err(Failure::usage(
            "--interval must be at least 50ms and --duration longer than 0s",
        ));
    }
    let query = match (args.pid, args.port, &args.match_text) {
        (Some(pid), _, _) => ProcessQuery::Pid(pid),
        (_, Some(port), _) => ProcessQuery::Port(port),
        (_, _, Some(text)) => ProcessQuery::Match(text.clone()),
        _ => ProcessQuery::Port(target.port),
    };
    let process = match profile::find(&query, !args.no_children, None, Some(&target)) {
        Ok(p) => p,
        Err(err @ FindError::NoListener(_)) if !profile::is_local(&target) => {
            return Err(Failure::usage(format_args!(
                "{err} — {} is not this machine: name the process with --pid or --match",
                target.origin
            ))
            .because(&err));
        }
        Err(err) => return Err(Failure::of(exit::USAGE, &err)),
    };
    let runtime = crate::process::control_runtime()?;
    let options = ProfileOptions {
        interval: args.interval,
        duration: args.duration,
        keep_alive: keep_alive.clone(),
        tables: LeakTables::default(),
        explicit: true,
    };
    let stop = StopHandle::default();
    let client = ClientOptions {
        request_timeout: Duration::from_secs(10),
        insecure: false,
        ca_cert: None,
        api_token: None,
        api_key: None,
        basic_auth: None,
        max_body_size: perfhost_core::client::DEFAULT_MAX_BODY_SIZE,
        keepalive: true,
        http_version: Default::default(),
    };
    let profile = runtime.block_on(async {
        crate::process::interrupt_on_signal(&stop);
        if keep_alive != KeepAlive::None {
            crate::health::check(&target, &client, "/health").await?;
        }
        crate::errln!("perfhost profile");
        crate::errln!("   API URL:  {url}");
        crate::errln!(
            "   Process:  pid {} ({}), found by {}{}",
            process.pid,
            process.command,
            process.found_by,
            if process.children { ", children summed in" } else { "" }
        );
        crate::errln!(
            "   Interval: {}   Duration: {}",
            format_duration(args.interval),
            format_duration(args.duration)
        );
        let api = (keep_alive != KeepAlive::None).then(|| (target.clone(), client.clone()));
        Ok::<_, Failure>(profile::profile(process, api, &options, stop.clone(), |i, s| {
            if (i + 1) % 10 == 0 {
                crate::errln!(
                    "   Sample {}: RSS={:.1}MB, VMS={:.1}MB, Mem%={:.1}%, threads {}, open files {}",
                    i + 1,
                    s.rss_mb,
                    s.vms_mb,
                    s.percent,
                    s.num_threads,
                    s.num_fds
                );
            }
        })
        .await)
    });
    let profile = profile?;
    print_analysis(&profile);
    // The default stem is claimed: two profiles in one second get `…-2`.
    let (prefix, claim) = match args.output.clone() {
        Some(prefix) => (prefix, None),
        None => match perfhost_core::outfile::claim_stem(
            std::path::Path::new("reports"),
            &format!("memory_profile_{}", crate::report::timestamp()),
        ) {
            Ok(claim) => (claim.stem.clone(), Some(claim)),
            Err(err) => return Err(Failure::of(exit::OUTPUT_LOST, &err)),
        },
    };
    let lost = write_outputs(&profile, &prefix, args.plot);
    drop(claim);
    lost.or_verdict(match profile.analysis.as_ref().map(|a| a.verdict) {
        Some(v) if v.is_warning() => exit::LEAK,
        _ if stop.was_interrupted() => exit::INTERRUPTED,
        _ => exit::OK,
    })
}

fn print_analysis(profile: &MemoryProfile) {
    let Some(a) = &profile.analysis else {
        crate::outln!("No samples: the process was gone before the first one.");
        return;
    };
    crate::outln!("\nMemory profile analysis");
    crate::outln!(
        "  Duration   {:.1} s ({} samples)",
        a.duration_seconds,
        a.total_samples
    );
    crate::outln!(
        "  RSS        initial {:.1} MB, final {:.1} MB, min {:.1}, max {:.1}, average {:.1}, growth {:+.1} MB ({:+.1}%)",
        a.rss.initial_mb, a.rss.final_mb, a.rss.min_mb, a.rss.max_mb, a.rss.avg_mb, a.rss.growth_mb, a.rss.growth_percent
    );
    crate::outln!(
        "  VMS        initial {:.1} MB, final {:.1} MB, growth {:+.1} MB",
        a.vms.initial_mb,
        a.vms.final_mb,
        a.vms.growth_mb
    );
    crate::outln!(
        "  Threads    {} → {}   Open files {} → {}",
        a.threads.initial,
        a.threads.last,
        a.fds.initial,
        a.fds.last
    );
    crate::outln!(
        "  {}",
        memory_line(a, &format!("pid {}", profile.metadata.target.pid))
    );
    for flag in &a.flags {
        crate::outln!("  note: {flag}");
    }
    match a.verdict {
        Verdict::Healthy => crate::outln!("  Memory growth is within normal limits."),
        Verdict::TooShort => crate::outln!(
            "  Too short to judge: a verdict needs {:.0} s and {} samples after the warm-up.",
            profile.metadata.tables.min_seconds,
            profile.metadata.tables.min_samples
        ),
        _ => crate::outln!(
            "  WARNING: {}",
            a.warning.as_deref().unwrap_or("memory grows")
        ),
    }
}

/// Writes the profile's JSON (and plot), each whole or not at all; names each one that could
/// not be.
fn write_outputs(profile: &MemoryProfile, prefix: &std::path::Path, plot: bool) -> Lost {
    let with = |suffix: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let json = with(".json");
    let mut lost = Lost::default();
    let write =
        |path: &PathBuf, bytes: Vec<u8>, lost: &mut Lost| match perfhost_core::outfile::write(
            path, &bytes,
        ) {
            Ok(()) => crate::errln!("Written to {}", path.display()),
            Err(err) => lost.add(&err),
        };
    match serde_json::to_vec_pretty(profile) {
        Ok(bytes) => write(&json, bytes, &mut lost),
        Err(err) => lost.push(
            Failure::output_lost(format_args!("cannot encode the profile: {err}")).because(&err),
        ),
    }
    if plot {
        match crate::report::charts::profile_png(profile) {
            Ok(bytes) => write(&with(".png"), bytes, &mut lost),
            Err(err) => lost.push(Failure::output_lost(format_args!(
                "cannot draw the plot: {err}"
            ))),
        }
    }
    lost
}
