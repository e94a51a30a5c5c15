//! The live board: what the collector publishes once a second for readers outside the run
//! (the `/metrics` endpoint). A cumulative copy of the run's statistics, taken only when a
//! reader asked for it, so a run without one pays nothing.

use std::sync::Mutex;

use super::record::Interval;

/// The run so far, as the collector last saw it.
#[derive(Clone, Default)]
pub struct Board {
    /// Everything recorded since the start (or the last `--reset-stats`).
    pub all: Interval,
    pub users: u64,
    pub elapsed_s: f64,
    /// perfhost's CPU in the last second, % of one core.
    pub generator_cpu_percent: f64,
    /// The open model: scheduled, completed, failed and dropped arrivals so far, dropped per
    /// class, and the dispatcher's lag p99 in the last second (µs).
    pub arrivals: Option<ArrivalCounts>,
    /// The last one-second interval (Locust's "current" rates).
    pub last: Option<super::HistoryPoint>,
    /// The run has ended: these are its final numbers.
    pub finished: bool,
}

#[derive(Clone, Default, Debug, PartialEq)]
pub struct ArrivalCounts {
    pub scheduled: u64,
    pub completed: u64,
    pub failed: u64,
    pub dropped_by_class: Vec<(String, u64)>,
    pub lag_p99_us: u64,
}

/// Where the collector publishes the board and readers take copies.
#[derive(Default)]
pub struct LiveBoard {
    board: Mutex<Option<Board>>,
}

impl LiveBoard {
    pub fn publish(&self, board: Board) {
        if let Ok(mut slot) = self.board.lock() {
            *slot = Some(board);
        }
    }

    /// A copy of the last board (`None` before the first second).
    pub fn snapshot(&self) -> Option<Board> {
        self.board.lock().ok().and_then(|b| b.clone())
    }

    /// Marks the last board final.
    pub fn finish(&self) {
        if let Ok(mut slot) = self.board.lock() {
            if let Some(board) = slot.as_mut() {
                board.finished = true;
            }
        }
    }
}
