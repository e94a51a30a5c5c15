//! `--hlog FILE`: the run's histograms per second as an HdrHistogram interval log — the
//! standard format HdrHistogram's own tools (HistogramLogProcessor, HdrLogProcessing) read.
//! One untagged histogram per second (every request), and one per endpoint tagged
//! `METHOD_name` (a tag may hold no space or comma). Values are microseconds; the max
//! column is in milliseconds (`MaxValueDivisor: 1000`).

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use perfhost_core::result::RunResult;
use perfhost_core::stats::deserialize_histogram;

/// Why the log cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum HlogError {
    #[error("cannot write {path}: {why}")]
    Write { path: String, why: String },
    #[error("the result keeps no interval histograms (it was not run with --hlog or --shard): write the log from the run itself")]
    NoHistograms,
}

/// An endpoint's tag: its method and name with what a tag may not hold replaced by `_`.
pub fn tag_of(method: &str, name: &str) -> String {
    format!("{method}_{name}")
        .chars()
        .map(|c| {
            if matches!(c, ' ' | ',' | '\r' | '\n') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The interval log of `result`, from the histograms its history points keep.
pub fn render(result: &RunResult) -> Result<Vec<u8>, HlogError> {
    if !result.history.iter().any(|p| p.histogram.is_some()) {
        return Err(HlogError::NoHistograms);
    }
    let start = result.meta.start_time;
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let at = |unix: f64| UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0));
    let io = |e: std::io::Error| HlogError::Write {
        path: String::new(),
        why: e.to_string(),
    };
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "perfhost {} run {}: latency in microseconds, one interval per second; untagged: every request, tagged: one endpoint",
            result.meta.perfhost_version, result.meta.run_name
        ))
        .with_start_time(at(start))
        .with_base_time(at(start))
        .with_max_value_divisor(1000.0)
        .begin_log_with(&mut out, &mut serializer)
        .map_err(io)?;
    let mut previous = start;
    for point in &result.history {
        // Each point closes an interval that began where the last one ended.
        let begin = Duration::from_secs_f64((previous - start).max(0.0));
        let length = Duration::from_secs_f64((point.time - previous).max(0.001));
        previous = point.time;
        let mut write = |text: &Option<String>, tag: Option<Tag>| -> Result<(), HlogError> {
            let Some(h) = text.as_deref().and_then(deserialize_histogram) else {
                return Ok(());
            };
            writer
                .write_histogram(&h, begin, length, tag)
                .map_err(|e| HlogError::Write {
                    path: String::new(),
                    why: format!("{e:?}"),
                })
        };
        write(&point.histogram, None)?;
        for e in &point.endpoints {
            let tag = tag_of(&e.method, &e.name);
            write(&e.histogram, Tag::new(&tag))?;
        }
    }
    Ok(out)
}

/// Writes the interval log of `result` to `path`, whole or not at all.
pub fn write(result: &RunResult, path: &Path) -> Result<(), HlogError> {
    let text = render(result)?;
    perfhost_core::outfile::write(path, &text).map_err(|e| HlogError::Write {
        path: path.display().to_string(),
        why: format!(
            "{} — the log is not saved there; free space, fix the folder's permissions or pick another path",
            e.source
        ),
    })
}
