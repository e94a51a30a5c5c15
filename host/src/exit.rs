//! Process exit codes, one table for every command (documented in the README).

/// Ran and passed.
pub const OK: u8 = 0;
/// The test failed: a request failure, a failed threshold, a `compare` regression.
pub const TEST_FAILED: u8 = 1;
/// Usage, configuration or plugin error: nothing ran.
pub const USAGE: u8 = 2;
/// Target unreachable or health gate failed.
pub const UNREACHABLE: u8 = 3;
/// Memory-leak warning from the profiler.
pub const LEAK: u8 = 4;
/// A shard was not ready at `--start-at` (it says by how much): nothing was sent.
pub const BARRIER: u8 = 5;
/// An output (the JSON result, a report, a log) could not be written: every other output
/// was, and each failure was named on stderr. Wins over every other code (a CI job must not
/// pass when its result is lost).
pub const OUTPUT_LOST: u8 = 6;
/// Interrupted (Ctrl-C / SIGTERM); results up to the interruption are still written.
pub const INTERRUPTED: u8 = 130;
