//! Writing reports: the one path `perfhost run --csv/--html` and `perfhost report` share.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::report::csv::{self, CsvPaths};
use crate::report::outcome::{ReportError, Written};
use crate::report::{charts, html, markdown};
use perfhost_core::result::{RunResult, SCHEMA};

/// Which reports to write (each `None` is skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportOutputs {
    /// `PREFIX_stats.csv`, `PREFIX_stats_history.csv`, `PREFIX_failures.csv`,
    /// `PREFIX_exceptions.csv`.
    pub csv_prefix: Option<PathBuf>,
    /// The self-contained HTML report.
    pub html: Option<PathBuf>,
    /// The Markdown summary; `-` writes it to stdout.
    pub markdown: Option<PathBuf>,
    /// A folder for the charts as PNG files.
    pub png_dir: Option<PathBuf>,
    /// The history CSV gets a row per endpoint and interval too.
    pub csv_full_history: bool,
    /// A JUnit XML file.
    pub junit: Option<PathBuf>,
}

impl ReportOutputs {
    pub fn is_empty(&self) -> bool {
        self.csv_prefix.is_none()
            && self.html.is_none()
            && self.markdown.is_none()
            && self.png_dir.is_none()
            && self.junit.is_none()
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), ReportError> {
    perfhost_core::outfile::write(path, text.as_bytes()).map_err(|e| ReportError::Write {
        path: e.path,
        source: e.source,
    })
}

/// Writes the requested reports of `result`: every one it can, each completely or not at all
/// (`perfhost_core::outfile::write`); a failure does not stop the others.
pub fn write_reports(result: &RunResult, outputs: &ReportOutputs) -> Written {
    let mut written = Written::default();
    if let Some(prefix) = &outputs.csv_prefix {
        let paths = CsvPaths::new(prefix);
        for (path, text) in [
            (&paths.stats, csv::stats_csv(result)),
            (
                &paths.history,
                csv::history_csv(result, outputs.csv_full_history),
            ),
            (&paths.failures, csv::failures_csv(result)),
            (&paths.exceptions, csv::exceptions_csv(result)),
        ] {
            written.add(path, write_file(path, &text));
        }
        // Runs with a schedule: the corrected latency and the arrivals, beside Locust's four.
        for (path, text) in [
            (&paths.corrected, csv::corrected_stats_csv(result)),
            (&paths.arrivals, csv::arrivals_csv(result)),
        ] {
            if let Some(text) = text {
                written.add(path, write_file(path, &text));
            }
        }
    }
    if let Some(path) = &outputs.html {
        written.add(path, write_file(path, &html::render(result)));
    }
    if let Some(path) = &outputs.markdown {
        let text = markdown::render(result);
        let outcome = if path.as_os_str() == "-" {
            let mut out = std::io::stdout().lock();
            out.write_all(perfhost_core::text::terminal_safe(&text).as_bytes())
                .and_then(|_| out.flush())
                .map_err(|source| ReportError::Write {
                    path: path.clone(),
                    source,
                })
        } else {
            write_file(path, &text)
        };
        written.add(path, outcome);
    }
    if let Some(path) = &outputs.junit {
        written.add(path, write_file(path, &super::junit::run(result)));
    }
    if let Some(dir) = &outputs.png_dir {
        charts::write_pngs(result, dir, &mut written);
    }
    written
}

/// Reads a JSON result written by `perfhost run`, with one clear error naming the file.
pub fn load_result(path: &Path) -> Result<RunResult, ReportError> {
    let text = perfhost_core::input::read_to_string(path, perfhost_core::input::Kind::Result)?;
    parse_result(path, &text)
}

/// Characters of a value or parser message quoted in an error line.
const QUOTED: usize = 240;

use perfhost_core::stats::capped::MAX_HISTORY_ENTRIES;

/// `RunResult` from the text of `path` (read already), checked: its schema, the size of
/// every list, and its histograms.
pub fn parse_result(path: &Path, text: &str) -> Result<RunResult, ReportError> {
    let not_a_result = |message: String| ReportError::NotAResult {
        path: path.to_path_buf(),
        message,
    };
    // The schema first, skipping the rest without building it.
    #[derive(serde::Deserialize)]
    struct Head {
        schema: Option<serde_json::Value>,
    }
    let no_schema = || {
        not_a_result(format!(
            "it has no \"schema\": \"{SCHEMA}\" field (write one with `perfhost run --json-file FILE`)"
        ))
    };
    let head: Head = match serde_json::from_str(text) {
        Ok(head) => head,
        // Valid JSON, but not an object: no schema.
        Err(e) if e.classify() == serde_json::error::Category::Data => return Err(no_schema()),
        Err(e) => {
            return Err(ReportError::Json {
                path: path.to_path_buf(),
                message: perfhost_core::text::clip(&e.to_string(), QUOTED),
            })
        }
    };
    match head.schema {
        Some(serde_json::Value::String(s)) if s == SCHEMA => {}
        Some(serde_json::Value::String(other)) => {
            return Err(not_a_result(format!(
                "its schema is `{}`, this perfhost reads `{SCHEMA}`",
                perfhost_core::text::clip(&other, 40)
            )))
        }
        _ => return Err(no_schema()),
    }
    let result: RunResult = serde_json::from_str(text)
        .map_err(|e| not_a_result(perfhost_core::text::clip(&e.to_string(), QUOTED)))?;
    check_sizes(&result).map_err(not_a_result)?;
    // A report drawn from a corrupt histogram would show wrong percentiles: refuse it.
    for row in result.stats.iter().chain(std::iter::once(&result.total)) {
        if row.histogram.is_empty() {
            continue;
        }
        match perfhost_core::stats::deserialize_histogram(&row.histogram) {
            Some(h) if h.len() == row.requests => {}
            Some(h) => {
                return Err(not_a_result(format!(
                    "the histogram of `{} {}` holds {} values but the row counts {} requests",
                    perfhost_core::text::clip(&row.method, 16),
                    perfhost_core::text::clip(&row.name, 80),
                    h.len(),
                    row.requests
                )))
            }
            None => {
                return Err(not_a_result(format!(
                    "the histogram of `{} {}` does not decode (HDR V2 + DEFLATE, base64)",
                    perfhost_core::text::clip(&row.method, 16),
                    perfhost_core::text::clip(&row.name, 80)
                )))
            }
        }
    }
    Ok(result)
}

/// What the capped lists cannot check alone: the history's endpoint entries in all, and the
/// shard numbers.
fn check_sizes(r: &RunResult) -> Result<(), String> {
    let entries: usize = r.history.iter().map(|p| p.endpoints.len()).sum();
    if entries > MAX_HISTORY_ENTRIES {
        return Err(format!(
            "its history holds {entries} endpoint-seconds; a result holds at most {MAX_HISTORY_ENTRIES} — the file was not written by perfhost run, or was altered"
        ));
    }
    if let Some(shard) = &r.meta.shard {
        if shard.count == 0
            || shard.count > perfhost_core::plan::MAX_SHARDS
            || shard.index >= shard.count
        {
            return Err(format!(
                "it says it is shard {}/{}; shards are numbered 0 to COUNT-1 with COUNT 1 to {}",
                shard.index,
                shard.count,
                perfhost_core::plan::MAX_SHARDS
            ));
        }
    }
    Ok(())
}
