//! `perfhost merge SHARD.json…`: one exact result of a sharded run (`perfhost run --shard
//! i/N`), its summary, its verdict and every report.

use std::path::{Path, PathBuf};

use crate::exit;
use crate::report::merge::merge;
use crate::report::{load_result, summary_table, write_reports, ReportOutputs, RunResult};

#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// The shards' JSON results (`perfhost run --shard i/N --json-file …`), every shard once.
    #[arg(value_name = "SHARD.json", required = true)]
    pub results: Vec<PathBuf>,
    /// Where the merged JSON result goes [default: reports/<run-name>_merged.json].
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
}

/// The CLI entry: the merged run's exit code (as `perfhost run`'s), 2 when the shards do not
/// make one run.
pub fn main(args: MergeArgs) -> u8 {
    let mut results = Vec::new();
    for path in &args.results {
        match load_result(path) {
            Ok(r) => results.push((path.display().to_string(), r)),
            Err(err) => {
                crate::errln!("error: {err}");
                return exit::USAGE;
            }
        }
    }
    let merged = match merge(results) {
        Ok(merged) => merged,
        Err(err) => {
            crate::errln!("error: {err}");
            return exit::USAGE;
        }
    };
    crate::outln!("{}", summary_table(&merged));
    let json = args.json_file.clone().unwrap_or_else(|| {
        PathBuf::from("reports").join(format!("{}_merged.json", merged.meta.run_name))
    });
    let outputs = ReportOutputs {
        csv_prefix: args.csv,
        html: args.html,
        markdown: args.markdown,
        junit: args.junit,
        ..Default::default()
    };
    if let Err(err) = write_merged(&merged, &json, args.hlog.as_deref(), &outputs) {
        crate::errln!("error: {err}");
        return exit::USAGE;
    }
    crate::commands::run::exit_code(&merged, exit::TEST_FAILED)
}

/// Writes a merged result: its JSON at `json`, the interval log when asked, every report in
/// `outputs`; each file written is named on stderr.
pub fn write_merged(
    merged: &RunResult,
    json: &Path,
    hlog: Option<&Path>,
    outputs: &ReportOutputs,
) -> Result<(), String> {
    merged
        .write_json(json)
        .map_err(|err| format!("cannot write {}: {err}", json.display()))?;
    crate::errln!(
        "Merged {} shards into {}",
        merged.meta.merged_shards.unwrap_or(0),
        json.display()
    );
    if let Some(path) = hlog {
        crate::report::hlog::write(merged, path).map_err(|err| err.to_string())?;
        crate::errln!("Interval log written to {}", path.display());
    }
    if !outputs.is_empty() {
        for path in write_reports(merged, outputs).map_err(|err| err.to_string())? {
            crate::errln!("Report written to {}", path.display());
        }
    }
    Ok(())
}
