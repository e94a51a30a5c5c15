//! How a command fails. A command's `main` returns `Result<u8, Failure>`: `Ok` is the verdict
//! of a command that finished (0, 1 test failed, 4 leak, 130 interrupted), `Err` a
//! [`Failure`]: the exit code (`exit`), one line naming the problem and its fix, and the
//! errors under it. `cli::main` prints it, once, with [`render`]; nothing else prints an
//! `error:` line.

use std::error::Error;
use std::fmt::{Display, Write as _};

use crate::exit;

/// Why a command ends without its verdict: what `error:` says, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One of `exit`'s codes.
    code: u8,
    /// One line naming the problem and its fix; a failure of several outputs (exit 6) or of
    /// several scenarios has one such line each.
    message: String,
    /// The errors under the message, outermost first: shown at `-L debug` only.
    causes: Vec<String>,
    /// The innermost error as its type shows it (`{:?}`: variant and fields, an OS error's
    /// code), clipped: shown at `-L debug` only.
    debug: Option<String>,
}

impl Failure {
    /// A failure with exit code `code` (one of `exit`'s).
    pub fn new(code: u8, message: impl Display) -> Self {
        Failure {
            code,
            message: message.to_string(),
            causes: Vec::new(),
            debug: None,
        }
    }

    /// Usage, configuration or plugin error: nothing ran (exit 2).
    pub fn usage(message: impl Display) -> Self {
        Self::new(exit::USAGE, message)
    }

    /// The target (or the built-in one) could not be reached (exit 3).
    pub fn unreachable(message: impl Display) -> Self {
        Self::new(exit::UNREACHABLE, message)
    }

    /// An output could not be written; every other one was (exit 6).
    pub fn output_lost(message: impl Display) -> Self {
        Self::new(exit::OUTPUT_LOST, message)
    }

    /// `err` as a failure with exit code `code`: its text is the message, the errors under it
    /// the causes.
    pub fn of(code: u8, err: &(dyn Error + 'static)) -> Self {
        let mut failure = Self::new(code, err);
        failure.add_causes(err.source());
        failure
    }

    /// `err` and the errors under it recorded as the causes of this failure (its message says
    /// what went wrong in perfhost's words; the causes say what was underneath).
    #[must_use]
    pub fn because(mut self, err: &(dyn Error + 'static)) -> Self {
        self.add_causes(Some(err));
        self
    }

    /// This failure followed by `later`'s lines and causes, with the higher of the two codes.
    #[must_use]
    pub fn and(mut self, later: Failure) -> Self {
        self.code = self.code.max(later.code);
        self.message.push('\n');
        self.message.push_str(&later.message);
        self.causes.extend(later.causes);
        self.debug = later.debug.or(self.debug);
        self
    }

    /// This failure with exit code `code` instead (a command whose verdict outranks it).
    #[must_use]
    pub fn with_code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    /// The process exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// What `error:` says: one line, or one per output or scenario that failed.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The errors under the message, outermost first.
    pub fn causes(&self) -> &[String] {
        &self.causes
    }

    /// Records `err` and every error under it, leaving out a text that is already said (a
    /// wrapper whose text is its source's, or a message that quotes its cause), and the
    /// innermost one's `Debug`.
    fn add_causes(&mut self, mut err: Option<&(dyn Error + 'static)>) {
        while let Some(e) = err {
            let text = e.to_string();
            if !text.is_empty()
                && !self.message.contains(&text)
                && !self.causes.iter().any(|c| c.contains(&text))
            {
                self.causes.push(text);
            }
            if e.source().is_none() {
                self.debug = Some(perfhost_core::text::clip(&format!("{e:?}"), DEBUG_CHARS));
            }
            err = e.source();
        }
    }
}

/// The most of an error's `Debug` shown (a hostile file's 150 MB value stays out).
const DEBUG_CHARS: usize = 1000;

/// A failure as stderr shows it: `error: LINE` for each line of its message, then, at `-L
/// debug`, `  caused by: CAUSE` for each error under it and `  debug: {:?}` of the innermost.
/// Ends with a newline.
pub fn render(failure: &Failure, debug: bool) -> String {
    let mut out = String::new();
    for line in failure.message.lines() {
        let _ = writeln!(out, "error: {line}");
    }
    if debug {
        for cause in &failure.causes {
            let _ = writeln!(out, "  caused by: {cause}");
        }
        if let Some(value) = &failure.debug {
            let _ = writeln!(out, "  debug: {value}");
        }
    }
    out
}

/// The outputs a command could not write while it went on writing the others: each one is
/// named, and the command exits 6 (`exit::OUTPUT_LOST`, which outranks its verdict).
#[derive(Debug, Default)]
pub struct Lost(Option<Failure>);

impl Lost {
    /// One more output lost, `err` saying which and why.
    pub fn add(&mut self, err: &(dyn Error + 'static)) {
        self.push(Failure::of(exit::OUTPUT_LOST, err));
    }

    /// One more output lost, in `lost`'s words.
    pub fn push(&mut self, lost: Failure) {
        self.0 = Some(match self.0.take() {
            Some(earlier) => earlier.and(lost),
            None => lost,
        });
    }

    /// Whether every output was written.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The command's outcome: `verdict` when every output was written, else exit 6 naming
    /// every output lost.
    pub fn or_verdict(self, verdict: u8) -> Result<u8, Failure> {
        match self.0 {
            Some(failure) => Err(failure),
            None => Ok(verdict),
        }
    }

    /// `failure`, after the outputs lost before it (named first); `failure`'s code stays.
    pub fn before(self, failure: Failure) -> Failure {
        match self.0 {
            Some(lost) => {
                let code = failure.code;
                lost.and(failure).with_code(code)
            }
            None => failure,
        }
    }
}

impl From<perfhost_core::plugin::PluginError> for Failure {
    fn from(err: perfhost_core::plugin::PluginError) -> Self {
        Failure::of(exit::USAGE, &err)
    }
}

impl From<perfhost_core::input::InputError> for Failure {
    fn from(err: perfhost_core::input::InputError) -> Self {
        Failure::of(exit::USAGE, &err)
    }
}

impl From<perfhost_core::plan::FieldError> for Failure {
    fn from(err: perfhost_core::plan::FieldError) -> Self {
        Failure::of(exit::USAGE, &err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the disk")]
    struct Disk;

    #[derive(Debug, thiserror::Error)]
    enum Wrapper {
        #[error("result.json is unreadable")]
        Unreadable(#[source] Disk),
        #[error("{0}")]
        Same(#[from] Disk),
    }

    #[test]
    fn one_error_line_and_the_causes_only_at_debug() {
        let failure = Failure::of(exit::USAGE, &Wrapper::Unreadable(Disk));
        assert_eq!(failure.code(), exit::USAGE);
        assert_eq!(
            render(&failure, false),
            "error: result.json is unreadable\n"
        );
        assert_eq!(
            render(&failure, true),
            "error: result.json is unreadable\n  caused by: cannot read the disk\n  debug: Disk\n"
        );
    }

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        // A `{0}` wrapper says its source's text: that text is the message, once.
        let failure = Failure::of(exit::USAGE, &Wrapper::Same(Disk));
        assert!(failure.causes().is_empty(), "{:?}", failure.causes());
        let failure = Failure::unreachable("target x is unreachable").because(&Disk);
        assert_eq!(failure.causes(), ["cannot read the disk"]);
        assert_eq!(
            render(&failure, true),
            "error: target x is unreachable\n  caused by: cannot read the disk\n  debug: Disk\n"
        );
        assert_eq!(
            render(&Failure::usage("no cause"), true),
            "error: no cause\n"
        );
    }

    #[test]
    fn every_lost_output_is_named_and_exit_6_outranks_the_verdict() {
        let mut lost = Lost::default();
        assert_eq!(Lost::default().or_verdict(exit::TEST_FAILED), Ok(1));
        lost.add(&Disk);
        lost.add(&Wrapper::Unreadable(Disk));
        assert!(!lost.is_empty());
        let failure = lost.or_verdict(exit::TEST_FAILED).unwrap_err();
        assert_eq!(failure.code(), exit::OUTPUT_LOST);
        assert_eq!(
            render(&failure, false),
            "error: cannot read the disk\nerror: result.json is unreadable\n"
        );
    }

    #[test]
    fn a_failure_after_lost_outputs_keeps_its_code() {
        let mut lost = Lost::default();
        lost.add(&Disk);
        let failure = lost.before(Failure::usage("nothing was compared"));
        assert_eq!(failure.code(), exit::USAGE);
        assert_eq!(
            render(&failure, false),
            "error: cannot read the disk\nerror: nothing was compared\n"
        );
    }
}
