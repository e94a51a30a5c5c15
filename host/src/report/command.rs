//! `perfhost report RESULT.json [--html F] [--csv PREFIX] [--markdown F] [--png-dir DIR]`.

use std::path::PathBuf;

use crate::exit;
use crate::failure::{Failure, Lost};
use crate::report::{load_result, summary_table, write_reports, ReportOutputs};

/// Render reports from a saved JSON result.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// A JSON result written by `perfhost run` (`--json-file`, or reports/*.json).
    #[arg(value_name = "RESULT.json")]
    pub result: PathBuf,
    /// Write a self-contained HTML report with charts.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write Locust-compatible CSV files PREFIX_stats.csv, PREFIX_stats_history.csv,
    /// PREFIX_failures.csv and PREFIX_exceptions.csv.
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
    /// Write a Markdown summary for pull requests (`-` prints it to stdout).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write the charts as PNG files into this folder.
    #[arg(long, value_name = "DIR")]
    pub png_dir: Option<PathBuf>,
    /// With --csv: also a row per endpoint and interval in PREFIX_stats_history.csv.
    #[arg(long = "csv-full-history")]
    pub csv_full_history: bool,
    /// Write JUnit XML: one test case per threshold (or one for the run's failures).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// The CLI entry: 0 when the reports were written, 2 on unreadable input, 6 when a report
/// could not be written (the others are).
/// With no output option it prints the console summary of the result.
pub fn main(args: ReportArgs) -> Result<u8, Failure> {
    let result = load_result(&args.result).map_err(|err| Failure::of(exit::USAGE, &err))?;
    let outputs = ReportOutputs {
        csv_prefix: args.csv,
        html: args.html,
        markdown: args.markdown,
        png_dir: args.png_dir,
        csv_full_history: args.csv_full_history,
        junit: args.junit,
    };
    if outputs.is_empty() {
        crate::out!("{}", summary_table(&result));
        crate::errln!(
            "(no --html, --csv, --markdown or --png-dir given: printed the summary only)"
        );
        return Ok(exit::OK);
    }
    let mut lost = Lost::default();
    write_reports(&result, &outputs).announce("wrote", &mut lost);
    lost.or_verdict(exit::OK)
}
