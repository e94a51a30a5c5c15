//! Lists of a result read with their cap checked while they are read: a file cannot make
//! the reader allocate past the cap before the check (`#[serde(deserialize_with)]`).

use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};
use std::marker::PhantomData;

/// The most of each list a result may hold. A run keeps at most `MAX_NAMES` rows (+ `other`),
/// `MAX_DISTINCT_ERRORS` failure kinds (+ one `other` per row) and 50 samples; the caps leave
/// room above those and refuse a file built to make `merge` or `report` allocate without
/// bound (every row and second decodes histograms of ~190 KB).
pub const MAX_ROWS: usize = 2 * super::MAX_NAMES;
/// The most entries of a failure, task-error or sample list.
pub const MAX_LISTED: usize = 4 * super::record::MAX_DISTINCT_ERRORS;
/// Seconds of per-second history a result may hold: 8 days. Each merged second costs a few
/// KB (more with many endpoints); runs longer than this do not keep every second (see
/// docs/reports.md).
pub const MAX_HISTORY_SECONDS: usize = 8 * 24 * 3600;
/// Endpoint entries over all seconds of the history (10 endpoints for 8 days).
pub const MAX_HISTORY_ENTRIES: usize = 10 * MAX_HISTORY_SECONDS;

fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    cap: usize,
    what: &'static str,
) -> Result<Vec<T>, D::Error> {
    struct Capped<T> {
        cap: usize,
        what: &'static str,
        item: PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Capped<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a list of at most {} {}", self.cap, self.what)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(item) = seq.next_element()? {
                if out.len() == self.cap {
                    return Err(A::Error::custom(format!(
                        "more than {cap} {what} (a result holds at most {cap}) — the file was not written by perfhost run, or was altered",
                        cap = self.cap,
                        what = self.what
                    )));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Capped {
        cap,
        what,
        item: PhantomData,
    })
}

/// Reads the statistics rows, at most [`MAX_ROWS`].
pub fn rows<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    list(d, MAX_ROWS, "stats rows")
}

/// Reads the per-class rows, at most [`MAX_ROWS`].
pub fn classes<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    list(d, MAX_ROWS, "class rows")
}

/// Reads a failure, task-error or sample list, at most [`MAX_LISTED`] entries.
pub fn listed<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    list(d, MAX_LISTED, "entries in a list")
}

/// Reads the history, at most [`MAX_HISTORY_SECONDS`] points.
pub fn history<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    list(d, MAX_HISTORY_SECONDS, "seconds of history")
}

/// Reads one history point's endpoints, at most [`MAX_ROWS`].
pub fn endpoints<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    list(d, MAX_ROWS, "endpoints in one second")
}
