//! Printing that never panics. `println!` panics when stdout is a closed pipe
//! (`perfhost plugin inspect x | head -1`); these write and ignore a broken pipe, so a listing
//! command ends quietly and a run goes on to write every report. After the first failed write
//! to a stream, nothing more is attempted on it.

use std::borrow::Cow;
use std::fmt::{Arguments, Write as _};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Text safe to print to a terminal: every control character but newline and tab — ESC
/// (which starts colour, cursor, screen-clearing and title sequences), a lone carriage
/// return, DEL and the C1 controls (U+0080–U+009F, where U+009B is a one-character CSI) — is
/// shown as an escape (`\x1b`, `\u{9b}`) instead. A row name, an error or a path read from
/// a result file cannot move the cursor, clear the screen or retitle the window.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    let unsafe_char = |(i, c): (usize, char)| match c {
        '\n' | '\t' => false,
        '\r' => text.as_bytes().get(i + 1) != Some(&b'\n'),
        c => c.is_control(),
    };
    if !text.char_indices().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for (i, c) in text.char_indices() {
        if unsafe_char((i, c)) {
            if (c as u32) < 0x80 {
                let _ = write!(out, "\\x{:02x}", c as u32);
            } else {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// At most `max` characters of `text` for an error line: a longer value (a 150 MB string
/// in a hostile result) is cut with a note of its full size, and control characters are
/// escaped.
pub fn clip(text: &str, max: usize) -> String {
    let shown = match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}… ({} bytes in all)", &text[..end], text.len()),
        None => text.to_string(),
    };
    terminal_safe(&shown).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_not_sent() {
        assert_eq!(terminal_safe("GET /a\tb\n"), "GET /a\tb\n");
        assert_eq!(
            terminal_safe("x\x1b[2J\x1b]0;pwned\x07y\r\n"),
            "x\\x1b[2J\\x1b]0;pwned\\x07y\r\n"
        );
        assert_eq!(terminal_safe("a\rb\u{9b}31m\x7f"), "a\\x0db\\u{9b}31m\\x7f");
        assert!(matches!(terminal_safe("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn clip_keeps_errors_short() {
        assert_eq!(clip("short", 10), "short");
        let long = "é".repeat(1000);
        let shown = clip(&long, 5);
        assert_eq!(shown, "ééééé… (2000 bytes in all)");
        assert_eq!(clip("a\x1bb", 10), "a\\x1bb");
    }
}
