//! Reading the files a user names — scenarios, settings, data, plugins, suites and results —
//! through one gate: regular files only (a FIFO would block, a device such as `/dev/zero`
//! never ends, a folder is a typo), each kind with a size cap named in the error, and a
//! bounded read (metadata alone is not trusted: files in /proc report a size of 0).
//!
//! The caps are generous for real inputs and small against the machine (docs/reports.md,
//! "Input files"):
//!
//! | kind | cap | why |
//! |---|---|---|
//! | scenario, settings, bench suite | 1 MiB | hand-written TOML; the presets are 1-2 KiB |
//! | data (`--data`) | 256 MiB | every row is held in memory for the run |
//! | plugin (`.wasm`) | 256 MiB | a Python component is ~20 MB, a JavaScript one ~10 MB |
//! | result (`report`, `merge`, `compare`, `collect`) | 1 GiB | a long run's per-second history |

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::plan::format_size;

/// What a file is read as: it names the file in errors and sets its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--scenario FILE`, `scenario show`.
    Scenario,
    /// `--config FILE`, `./perfhost.toml`, `./locust.conf`.
    Config,
    /// `--data NAME=FILE` (CSV or JSON lines).
    Data,
    /// `-f/--plugin FILE.wasm`, `plugin inspect`.
    Plugin,
    /// `bench --suite FILE`.
    Suite,
    /// A JSON result: `report`, `merge`, `compare`, `k8s/slurm collect`.
    Result,
}

const MIB: u64 = 1 << 20;

impl Kind {
    /// The most bytes a file of this kind may hold.
    pub const fn cap(self) -> u64 {
        match self {
            Kind::Scenario | Kind::Config | Kind::Suite => MIB,
            Kind::Data | Kind::Plugin => 256 * MIB,
            Kind::Result => 1024 * MIB,
        }
    }

    /// `scenario file`, `plugin`, …
    pub const fn noun(self) -> &'static str {
        match self {
            Kind::Scenario => "scenario file",
            Kind::Config => "config file",
            Kind::Data => "data file",
            Kind::Plugin => "plugin",
            Kind::Suite => "bench suite",
            Kind::Result => "result file",
        }
    }

    /// What to check when the file cannot be opened.
    const fn hint(self) -> &'static str {
        match self {
            Kind::Scenario => " — check the path given to --scenario",
            Kind::Config => " — check the path given to --config",
            Kind::Data => " — check the path in --data NAME=FILE",
            Kind::Plugin => " — check the path given to --plugin",
            Kind::Suite => " — check the path given to --suite",
            Kind::Result => "",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// Why a file could not be read: one line naming the file, the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Opening or reading failed.
    #[error("cannot read {kind} {}: {source}{}", path.display(), kind.hint())]
    Io {
        /// What the file is for.
        kind: Kind,
        /// The file as given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path is a directory, device or other non-file.
    #[error("{kind} {} is {what}, not a regular file — give the path of a file", path.display())]
    NotAFile {
        /// What the file is for.
        kind: Kind,
        /// The file as given.
        path: PathBuf,
        /// What it is instead (`a directory`…).
        what: &'static str,
    },
    /// The file is larger than its kind's cap.
    #[error("{kind} {} is {size}; {kind}s are capped at {}", path.display(), format_size(kind.cap() as usize))]
    TooLarge {
        /// What the file is for.
        kind: Kind,
        /// The file as given.
        path: PathBuf,
        /// `2.1 GiB`, or `larger than 1 MiB` when the size only showed while reading.
        size: String,
    },
    /// A text file that is not valid UTF-8.
    #[error("{kind} {} is not UTF-8 text (at byte {offset}) — save it as UTF-8", path.display())]
    NotText {
        /// What the file is for.
        kind: Kind,
        /// The file as given.
        path: PathBuf,
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
}

#[cfg(test)]
impl InputError {
    /// Whether the file is not there.
    fn is_not_found(&self) -> bool {
        matches!(self, InputError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a non-regular file is, for the error.
fn file_type_name(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The bytes of the regular file at `path` (symbolic links followed), at most `kind.cap()`.
pub fn read(path: &Path, kind: Kind) -> Result<Vec<u8>, InputError> {
    read_capped(path, kind, kind.cap())
}

fn read_capped(path: &Path, kind: Kind, cap: u64) -> Result<Vec<u8>, InputError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| InputError::Io {
        kind,
        path: path.to_path_buf(),
        source,
    };
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. The type is
    // checked on the opened file (fstat), so nothing can be swapped in between.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| match std::fs::metadata(path) {
            Ok(meta) if !meta.is_file() => InputError::NotAFile {
                kind,
                path: path.to_path_buf(),
                what: file_type_name(meta.file_type()),
            },
            _ => io(source),
        })?;
    let meta = file.metadata().map_err(io)?;
    if is_null_device(&meta) {
        // `--config /dev/null` is the usual way to say "no settings file": an empty input.
        return Ok(Vec::new());
    }
    if !meta.is_file() {
        return Err(InputError::NotAFile {
            kind,
            path: path.to_path_buf(),
            what: file_type_name(meta.file_type()),
        });
    }
    let too_large = |size: String| InputError::TooLarge {
        kind,
        path: path.to_path_buf(),
        size,
    };
    if meta.len() > cap {
        return Err(too_large(format!(
            "{} ({} bytes)",
            format_size(meta.len() as usize),
            meta.len()
        )));
    }
    // The length is a hint (0 for files in /proc): the read itself stops one byte past the cap.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(format!(
            "larger than {}",
            format_size(cap as usize)
        )));
    }
    Ok(bytes)
}

/// Whether `meta` is the null device (`/dev/null`, or a link to it).
fn is_null_device(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    meta.file_type().is_char_device()
        && std::fs::metadata("/dev/null").is_ok_and(|null| null.rdev() == meta.rdev())
}

/// The text of the regular file at `path`, at most `kind.cap()` bytes of UTF-8; a leading
/// byte-order mark (Windows editors write one) is dropped.
pub fn read_to_string(path: &Path, kind: Kind) -> Result<String, InputError> {
    text(path, kind, read(path, kind)?)
}

fn text(path: &Path, kind: Kind, bytes: Vec<u8>) -> Result<String, InputError> {
    let mut text = String::from_utf8(bytes).map_err(|e| InputError::NotText {
        kind,
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("perfhost-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn the_null_device_reads_as_empty() {
        assert_eq!(
            read(Path::new("/dev/null"), Kind::Config).unwrap(),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn devices_folders_and_fifos_are_refused_at_once() {
        for (path, what) in [
            (PathBuf::from("/dev/zero"), "a character device"),
            (std::env::temp_dir(), "a directory"),
        ] {
            let err = read(&path, Kind::Scenario).unwrap_err().to_string();
            assert!(err.contains(what) && err.contains("scenario file"), "{err}");
        }
        let fifo = temp("fifo");
        let _ = std::fs::remove_file(&fifo);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read(&fifo, Kind::Data).unwrap_err().to_string();
        assert!(err.contains("a FIFO"), "{err}");
    }

    #[test]
    fn the_cap_holds_whatever_the_metadata_says() {
        let big = temp("big.toml");
        std::fs::write(&big, vec![b'#'; (MIB + 1) as usize]).unwrap();
        let err = read(&big, Kind::Config).unwrap_err().to_string();
        assert!(
            err.contains("is 1 MiB (1048577 bytes); config files are capped at 1 MiB"),
            "{err}"
        );
        // /proc files report a size of 0: the read stops past the cap.
        let err = read_capped(Path::new("/proc/self/maps"), Kind::Config, 16)
            .unwrap_err()
            .to_string();
        assert!(err.contains("larger than 16 B"), "{err}");
    }

    #[test]
    fn text_drops_a_byte_order_mark_and_names_bad_bytes() {
        let bom = temp("bom.conf");
        std::fs::write(&bom, "\u{feff}users = 3\n").unwrap();
        assert_eq!(read_to_string(&bom, Kind::Config).unwrap(), "users = 3\n");
        let latin = temp("latin.csv");
        std::fs::write(&latin, b"a\nK\xf6ln\n").unwrap();
        let err = read_to_string(&latin, Kind::Data).unwrap_err().to_string();
        assert!(err.contains("not UTF-8 text (at byte 3)"), "{err}");
        let missing = read(&temp("none.wasm"), Kind::Plugin).unwrap_err();
        assert!(missing.is_not_found());
        assert!(missing.to_string().contains("--plugin"), "{missing}");
    }
}
