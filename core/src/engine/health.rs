//! Per class: whether its users keep trapping. A class whose instances are lost again and again
//! is stopped, so a broken plugin cannot hot-loop; the other classes keep running.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::Shared;

/// Per class: how its users fared, and whether it was stopped for trapping. Atomics, because
/// every task of every user reads them: a healthy run only ever loads them (no lock, no write).
#[derive(Default)]
pub(super) struct ClassHealth {
    consecutive_traps: AtomicU64,
    stopped: AtomicBool,
    last_error: Mutex<String>,
}

pub(super) fn class_stopped(shared: &Shared, class: usize) -> bool {
    shared.health[class].stopped.load(Ordering::Relaxed)
}

pub(super) fn healthy(shared: &Shared, class: usize) {
    let h = &shared.health[class].consecutive_traps;
    if h.load(Ordering::Relaxed) != 0 {
        h.store(0, Ordering::Relaxed);
    }
}

/// Counts a trap; returns true when the class is (now) stopped because its users keep trapping.
pub(super) fn trapped(shared: &Shared, class: usize, message: &str) -> bool {
    let h = &shared.health[class];
    let traps = h.consecutive_traps.fetch_add(1, Ordering::Relaxed) + 1;
    if let Ok(mut last) = h.last_error.lock() {
        *last = message.to_string();
    }
    // Its instances were lost this many times in a row with no task succeeding between: five
    // rules out one unlucky trap (a panic on one bad data row) while a plugin that traps on
    // every start is stopped within a few of its wait times, not re-created forever.
    let limit = 5;
    if traps >= limit && !h.stopped.swap(true, Ordering::Relaxed) {
        tracing::error!(
            "user class {} stopped: its users trapped {traps} times in a row (last: {message}) — fix the plugin; other classes keep running",
            shared.classes[class].class.name,
        );
    }
    h.stopped.load(Ordering::Relaxed)
}

/// The classes stopped for trapping, each as `name: last error`.
pub(super) fn stopped_classes(shared: &Shared) -> Vec<String> {
    let health = shared.health.iter().map(|c| {
        let error = c.last_error.lock().map(|e| e.clone()).unwrap_or_default();
        (c.stopped.load(Ordering::Relaxed), error)
    });
    shared
        .classes
        .iter()
        .zip(health)
        .filter(|(_, (stopped, _))| *stopped)
        .map(|(slot, (_, err))| format!("{}: {}", slot.class.name, err))
        .collect()
}
