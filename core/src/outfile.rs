//! Where output files go and how they are written: the one path every report, result and log
//! takes to disk.
//!
//! - [`write`]: write-or-fail. A temp file beside the target, written, fsynced and renamed
//!   into place: a reader never sees half a file, a full disk leaves the old file (or none)
//!   rather than a truncated one, and the caller learns of every failure.
//! - [`check_run_name`] / [`file_name_of`]: a run name names files in `reports/`, so it must
//!   never be a path (no separator, no `..`, no absolute path).
//! - [`claim_stem`]: two runs of one name in one second get two stems, not one shared file.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An output that could not be written: names the file and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source} — the result is not saved there; free space, fix the folder's permissions or pick another path", path.display())]
pub struct WriteError {
    /// The file that could not be written.
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

impl WriteError {
    /// The error of writing `path`.
    pub fn new(path: &Path, source: std::io::Error) -> Self {
        WriteError {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes `bytes` to `path` completely or not at all: creates the parent folders, writes a
/// temp file beside the target, fsyncs it and renames it over the target. A target that
/// exists and is not a regular file (a FIFO, `/dev/stdout`, `/dev/full`) is written in place,
/// and fsynced when it can be: errors still surface.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let fail = |source| WriteError::new(path, source);
    // A device, a FIFO or anything under /dev or /proc (`/dev/stdout`, `/dev/full`) is
    // written in place (appended: `/dev/stdout` redirected to a file keeps what is in it).
    let special = path.starts_with("/dev") || path.starts_with("/proc");
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(fail(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "it is a folder",
            )))
        }
        Ok(m) if special || !m.is_file() => {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(fail)?;
            file.write_all(bytes).map_err(fail)?;
            return file.flush().map_err(fail);
        }
        _ => {}
    }
    // Through a symlink: replace the file it points to, not the link.
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    };
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let temp = temp_beside(&target);
    let written = File::options()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, &target));
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(fail(source));
    }
    // The rename itself is durable once the folder is synced (best effort: not every
    // filesystem lets a folder be opened for it).
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// `DIR/.NAME.PID.N.tmp`: hidden, unique in this process and across processes.
fn temp_beside(target: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let temp = format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    target.with_file_name(temp)
}

/// The longest run name: with `_YYYYmmdd_HHMMSS`, a `-N` suffix and the longest report
/// suffix (`_stats_history.csv`) a file name stays far below the 255 bytes filesystems allow.
pub(crate) const MAX_RUN_NAME: usize = 128;

/// Why a run name cannot name files in `reports/`; `None` when it can.
fn run_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it is a folder reference")
    } else if name.contains(['/', '\\']) {
        Some("it contains a path separator (/ or \\)")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if name.len() > MAX_RUN_NAME {
        Some("it is longer than 128 bytes")
    } else {
        None
    }
}

/// A run name from the command line, a settings file or a scenario: refused with one line
/// when it is not a plain file name (the run name chooses `reports/<run-name>_<time>.*`).
pub fn check_run_name(name: &str) -> Result<(), String> {
    match run_name_problem(name) {
        None => Ok(()),
        Some(why) => Err(format!(
            "`{}` cannot name report files: {why} — use letters, digits, `-`, `_` or `.` (where the files go is --json-file, --html, --csv)",
            name.escape_debug().to_string().chars().take(80).collect::<String>()
        )),
    }
}

/// The file-name form of a run name read from a result file (merge, the web UI's downloads):
/// path separators, control characters and `..` become `_`, and the note says so. Never a
/// path: the result is one plain file-name component.
pub fn file_name_of(name: &str) -> (String, Option<String>) {
    if run_name_problem(name).is_none() {
        return (name.to_string(), None);
    }
    let mut safe: String = name
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    while safe.len() > MAX_RUN_NAME {
        safe.pop();
    }
    if safe.is_empty() || safe.chars().all(|c| c == '.') {
        safe = "run".into();
    }
    let note = format!(
        "note: run name `{}` is not a plain file name: its files are named `{safe}`",
        name.escape_debug()
            .to_string()
            .chars()
            .take(80)
            .collect::<String>()
    );
    (safe, Some(note))
}

/// A stem claimed for one run's default report files: `DIR/<base>` or, when another run
/// already has files of that stem (same name, same second), `DIR/<base>-2`, `-3`, …
/// The claim (`<stem>.claim`, created with `create_new`) is removed on drop, once the run's
/// files are written: a second run cannot take the stem meanwhile.
#[derive(Debug)]
pub struct Claim {
    /// The claimed stem, `DIR/<base>` or `DIR/<base>-N`: the run's files add their extension.
    pub stem: PathBuf,
    marker: PathBuf,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.marker);
    }
}

/// Claims a free stem `DIR/<base>[-N]` (see [`Claim`]).
pub fn claim_stem(dir: &Path, base: &str) -> Result<Claim, WriteError> {
    std::fs::create_dir_all(dir).map_err(|e| WriteError::new(dir, e))?;
    for n in 1..=10_000u32 {
        let name = if n == 1 {
            base.to_string()
        } else {
            format!("{base}-{n}")
        };
        let marker = dir.join(format!("{name}.claim"));
        match File::options().write(true).create_new(true).open(&marker) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(WriteError::new(&marker, e)),
        }
        let claim = Claim {
            stem: dir.join(&name),
            marker,
        };
        // A run that finished already (and dropped its claim) left its files.
        let taken = std::fs::read_dir(dir)
            .map_err(|e| WriteError::new(dir, e))?
            .filter_map(Result::ok)
            .any(|entry| {
                let file = entry.file_name();
                let file = file.to_string_lossy();
                file != format!("{name}.claim")
                    && (file.starts_with(&format!("{name}."))
                        || file.starts_with(&format!("{name}_")))
            });
        if !taken {
            return Ok(claim);
        }
    }
    Err(WriteError::new(
        &dir.join(base),
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "10,000 runs of this name already wrote files this second",
        ),
    ))
}

/// Creates a new folder `DIR/<base>` or `DIR/<base>-N` (never one that exists).
pub fn create_new_dir(dir: &Path, base: &str) -> Result<PathBuf, WriteError> {
    std::fs::create_dir_all(dir).map_err(|e| WriteError::new(dir, e))?;
    for n in 1..=10_000u32 {
        let path = if n == 1 {
            dir.join(base)
        } else {
            dir.join(format!("{base}-{n}"))
        };
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(WriteError::new(&path, e)),
        }
    }
    Err(WriteError::new(
        &dir.join(base),
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "every -N suffix is taken",
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("perfhost-outfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn run_names_that_are_paths_are_refused() {
        let long = "x".repeat(200);
        for bad in [
            "../../../../tmp/x",
            "/tmp/x",
            "a/b",
            "a\\b",
            "..",
            ".",
            "",
            "a\x1b[2Jb",
            long.as_str(),
        ] {
            let err = check_run_name(bad).expect_err(bad);
            assert!(err.contains("cannot name report files"), "{err}");
            assert!(!err.contains('\n') && !err.contains('\x1b'), "{err:?}");
            let (safe, note) = file_name_of(bad);
            assert!(note.is_some(), "{bad}");
            assert!(check_run_name(&safe).is_ok(), "{bad} → {safe}");
            assert_eq!(Path::new(&safe).components().count(), 1, "{safe}");
        }
        for good in ["run", "smoke_test", "my run 2", "v1.2", "..x", "ümlaut"] {
            assert!(check_run_name(good).is_ok(), "{good}");
            assert_eq!(file_name_of(good), (good.to_string(), None));
        }
    }

    #[test]
    fn a_write_replaces_the_file_whole() {
        let dir = scratch("write");
        let path = dir.join("sub/out.json");
        write(&path, b"first").unwrap();
        write(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // No temp file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(names.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_device_is_an_error_and_stays_a_device() {
        use std::os::unix::fs::FileTypeExt as _;
        let err = write(Path::new("/dev/full"), &[b'x'; 100_000]).expect_err("/dev/full is full");
        assert!(err.to_string().contains("/dev/full"), "{err}");
        let kind = std::fs::metadata("/dev/full").unwrap().file_type();
        assert!(kind.is_char_device());
    }

    #[test]
    fn a_second_claim_of_a_stem_gets_a_suffix() {
        let dir = scratch("claim");
        let a = claim_stem(&dir, "run_20261207_101010").unwrap();
        let b = claim_stem(&dir, "run_20261207_101010").unwrap();
        assert_ne!(a.stem, b.stem);
        assert!(b.stem.to_string_lossy().ends_with("-2"));
        // A finished run's files keep their stem taken.
        std::fs::write(dir.join("run_20261207_101010.json"), "{}").unwrap();
        drop(a);
        let c = claim_stem(&dir, "run_20261207_101010").unwrap();
        assert!(c.stem.to_string_lossy().ends_with("-3"), "{:?}", c.stem);
        drop((b, c));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
