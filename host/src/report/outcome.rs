//! What writing reports gives: the files written, and why one could not be read or written.

use std::path::{Path, PathBuf};

use crate::failure::Lost;

/// Why a report could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Read(#[from] perfhost_core::input::InputError),
    #[error("{} is not valid JSON: {message}", path.display())]
    Json { path: PathBuf, message: String },
    #[error("{} is not a perfhost result: {message}", path.display())]
    NotAResult { path: PathBuf, message: String },
    #[error("cannot write {}: {source} — the report is not saved there; free space, fix the folder's permissions or pick another path", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot draw the {chart} chart: {message}")]
    Chart { chart: String, message: String },
}

/// What [`write_reports`] did: the files written, in order, and each one that could not be.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub errors: Vec<ReportError>,
}

impl Written {
    pub(crate) fn add(&mut self, path: &Path, outcome: Result<(), ReportError>) {
        match outcome {
            Ok(()) => self.files.push(path.to_path_buf()),
            Err(err) => self.errors.push(err),
        }
    }

    /// Names every file written (`written to …`, `-` left out) on stderr, and adds every
    /// report that could not be written to `lost`.
    pub fn announce(&self, verb: &str, lost: &mut Lost) {
        for path in self.files.iter().filter(|p| p.as_os_str() != "-") {
            crate::errln!("{verb} {}", path.display());
        }
        for err in &self.errors {
            lost.add(err);
        }
    }

    /// The files written, or the first failure (for callers that stop at one).
    pub fn into_result(mut self) -> Result<Vec<PathBuf>, ReportError> {
        match self.errors.is_empty() {
            true => Ok(self.files),
            false => Err(self.errors.remove(0)),
        }
    }

    /// Whether `path` was written.
    pub fn wrote(&self, path: &Path) -> bool {
        self.files.iter().any(|p| p == path)
    }
}
