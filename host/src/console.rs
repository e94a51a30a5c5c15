//! Printing that never panics. `println!` panics when stdout is a closed pipe
//! (`perfhost plugin inspect x | head -1`); these write and ignore a broken pipe, so a listing
//! command ends quietly and a run goes on to write every report. After the first failed write
//! to a stream, nothing more is attempted on it.

use std::fmt::Arguments;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

pub use perfhost_core::text::{clip, terminal_safe};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn write_to(closed: &AtomicBool, mut stream: impl Write, args: Arguments<'_>, newline: bool) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    let ok = stream.write_fmt(args).is_ok()
        && (!newline || stream.write_all(b"\n").is_ok())
        && stream.flush().is_ok();
    if !ok {
        closed.store(true, Ordering::Relaxed);
    }
}

/// Writes to stdout (with a newline when `newline`), ignoring a closed pipe. Control
/// characters in the text are shown, never sent (`terminal_safe`).
pub fn write_out(args: Arguments<'_>, newline: bool) {
    let text = std::fmt::format(args);
    let text = terminal_safe(&text);
    write_to(
        &STDOUT_CLOSED,
        std::io::stdout().lock(),
        format_args!("{text}"),
        newline,
    );
}

/// Writes to stderr (with a newline when `newline`), ignoring a closed pipe. Control
/// characters in the text are shown, never sent (`terminal_safe`).
pub fn write_err(args: Arguments<'_>, newline: bool) {
    let text = std::fmt::format(args);
    let text = terminal_safe(&text);
    write_err_raw(format_args!("{text}"), newline);
}

/// Writes perfhost's own terminal controls (the live status line's `\r` and erase-line) to
/// stderr as they are. Nothing from a file, a plugin or the target goes through here.
pub fn write_err_raw(args: Arguments<'_>, newline: bool) {
    write_to(&STDERR_CLOSED, std::io::stderr().lock(), args, newline);
}

/// One line on stderr.
pub fn errln(text: &str) {
    write_err(format_args!("{text}"), true);
}

/// `println!` that survives a closed stdout.
#[macro_export]
macro_rules! outln {
    () => { $crate::console::write_out(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::console::write_out(format_args!($($arg)*), true) };
}

/// `print!` that survives a closed stdout.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::console::write_out(format_args!($($arg)*), false) };
}

/// `eprintln!` that survives a closed stderr.
#[macro_export]
macro_rules! errln {
    () => { $crate::console::write_err(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::console::write_err(format_args!($($arg)*), true) };
}
