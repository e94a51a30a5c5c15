//! `perfhost merge SHARD.json…`: one exact result of a sharded run (`perfhost run --shard
//! i/N`), its summary, its verdict and every report. `collect` is the same for a folder the
//! shards write to, waiting until every shard's result is there.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::exit;
use crate::failure::{Failure, Lost};
use crate::report::{load_result, summary_table, write_reports, ReportOutputs};
use crate::settings::parse_duration_arg;
use perfhost_core::plan::MAX_SHARDS;
use perfhost_core::result::merge::merge;
use perfhost_core::result::RunResult;

#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// The shards' JSON results (`perfhost run --shard i/N --json-file …`), every shard once.
    #[arg(value_name = "SHARD.json", required = true)]
    pub results: Vec<PathBuf>,
    #[command(flatten)]
    pub outputs: MergeOutputs,
}

/// Where a merged result and its reports go, and the exit code it gets.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeOutputs {
    /// Where the merged JSON result goes [default: reports/<run-name>_merged.json; for
    /// collect: DIR/merged.json].
    #[arg(long = "json-file", value_name = "FILE")]
    pub json_file: Option<PathBuf>,
    /// Write a self-contained HTML report with charts.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write Locust-compatible CSV files PREFIX_stats.csv, PREFIX_stats_history.csv, …
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
    /// Write a Markdown summary (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write JUnit XML: one test case per threshold.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the merged histograms of every second as an HdrHistogram interval log.
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,
    /// Exit code of a run with failures and no thresholds (as `perfhost run`'s).
    #[arg(long = "exit-code-on-error", value_name = "N", default_value_t = exit::TEST_FAILED)]
    pub exit_code_on_error: u8,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CollectArgs {
    /// The folder the shards write their results to (`shard-I.json`): the mounted results
    /// volume, or a copy of it.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// How many shards to wait for [default: the count the first result names].
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// Wait up to this long for every shard's result [default: 0s, merge what is there].
    #[arg(long, value_parser = parse_duration_arg, value_name = "D")]
    pub wait: Option<Duration>,
    #[command(flatten)]
    pub outputs: MergeOutputs,
}

/// The CLI entry: the merged run's exit code (as `perfhost run`'s), 2 when the shards do not
/// make one run.
pub fn main(args: MergeArgs) -> Result<u8, Failure> {
    let default_json = |merged: &RunResult| {
        // The name comes from the shards' files: never a path out of reports/.
        let (name, note) = perfhost_core::outfile::file_name_of(&merged.meta.run_name);
        if let Some(note) = note {
            crate::errln!("{note}");
        }
        PathBuf::from("reports").join(format!("{name}_merged.json"))
    };
    merge_files(&args.results, args.outputs, default_json)
}

/// `perfhost k8s collect` / `perfhost slurm collect`: waits for the shards' results in a
/// folder, then merges them as `merge` does.
pub fn collect(args: CollectArgs) -> Result<u8, Failure> {
    if args.shards.is_some_and(|n| n == 0 || n > MAX_SHARDS) {
        return Err(Failure::usage(format_args!(
            "--shards must be 1 to {MAX_SHARDS}, the shard counts a run can have"
        )));
    }
    let deadline = Instant::now() + args.wait.unwrap_or_default();
    let mut seen = usize::MAX;
    let files = loop {
        let files = match shard_files(&args.from) {
            Ok(files) => files,
            // The first shard creates the folder.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => {
                return Err(Failure::usage(format_args!(
                    "cannot read {}: {err}",
                    args.from.display()
                ))
                .because(&err));
            }
        };
        let expected = args.shards.or_else(|| {
            let first = files.first()?;
            Some(load_result(first).ok()?.meta.shard?.count)
        });
        if let (Some(asked), Some(first)) = (args.shards, files.first()) {
            if let Some(shard) = load_result(first).ok().and_then(|r| r.meta.shard) {
                if shard.count != asked {
                    return Err(Failure::usage(format_args!(
                        "{} is a shard of {}, not of --shards {asked}: collect the folder of this run",
                        first.display(),
                        shard.count
                    )));
                }
            }
        }
        let complete = expected.is_some_and(|n| files.len() >= n);
        if complete || Instant::now() >= deadline {
            break files;
        }
        if files.len() != seen {
            seen = files.len();
            crate::errln!(
                "Waiting for shard results in {}: {} of {}",
                args.from.display(),
                files.len(),
                expected.map_or("?".to_string(), |n| n.to_string())
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    if files.is_empty() {
        return Err(Failure::usage(format_args!(
            "no shard results (shard-*.json) in {} — give the folder the shards write to (their --json-file)",
            args.from.display()
        )));
    }
    let dir = args.from.clone();
    merge_files(&files, args.outputs, move |_| dir.join("merged.json"))
}

/// `DIR/shard-*.json`, in name order.
fn shard_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.starts_with("shard-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn merge_files(
    paths: &[PathBuf],
    outputs: MergeOutputs,
    default_json: impl FnOnce(&RunResult) -> PathBuf,
) -> Result<u8, Failure> {
    if paths.len() > MAX_SHARDS {
        return Err(Failure::usage(format_args!(
            "{} result files, but a run has at most {MAX_SHARDS} shards — give the shards of one run",
            paths.len()
        )));
    }
    let mut results = Vec::new();
    for path in paths {
        let result = load_result(path).map_err(|err| Failure::of(exit::USAGE, &err))?;
        results.push((path.display().to_string(), result));
    }
    let merged = merge(results).map_err(|err| Failure::of(exit::USAGE, &err))?;
    crate::outln!("{}", summary_table(&merged));
    let json = outputs
        .json_file
        .clone()
        .unwrap_or_else(|| default_json(&merged));
    let reports = ReportOutputs {
        csv_prefix: outputs.csv,
        html: outputs.html,
        markdown: outputs.markdown,
        junit: outputs.junit,
        ..Default::default()
    };
    let lost = write_merged(&merged, &json, outputs.hlog.as_deref(), &reports);
    lost.or_verdict(crate::run::command::exit_code(
        &merged,
        outputs.exit_code_on_error,
    ))
}

/// Writes a merged result: its JSON at `json`, the interval log when asked, every report in
/// `outputs`; each file written is named on stderr, and each that could not be is in the
/// `Lost` returned (the others are still written).
pub fn write_merged(
    merged: &RunResult,
    json: &Path,
    hlog: Option<&Path>,
    outputs: &ReportOutputs,
) -> Lost {
    let mut lost = Lost::default();
    match merged.write_json(json) {
        Ok(()) => crate::errln!(
            "Merged {} shards into {}",
            merged.meta.merged_shards.unwrap_or(0),
            json.display()
        ),
        Err(err) => lost.add(&err),
    }
    if let Some(path) = hlog {
        match crate::report::hlog::write(merged, path) {
            Ok(()) => crate::errln!("Interval log written to {}", path.display()),
            Err(err) => lost.add(&err),
        }
    }
    if !outputs.is_empty() {
        write_reports(merged, outputs).announce("Report written to", &mut lost);
    }
    lost
}
