//! Text from outside (a plugin, the target, a file) made fit for an error line or a terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

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
