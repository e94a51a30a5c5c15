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
    /// Users running now.
    pub users: u64,
    /// Users the load shape wants now (the web UI's target).
    pub target_users: u64,
    /// The users are paused at their task boundary.
    pub paused: bool,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// The run's own clock: elapsed time without its pauses.
    pub run_s: f64,
    /// perfhost's CPU in the last second, % of one core.
    pub generator_cpu_percent: f64,
    /// The open model: scheduled, completed, failed and dropped arrivals so far, dropped per
    /// class, and the dispatcher's lag p99 in the last second (µs).
    pub arrivals: Option<ArrivalCounts>,
    /// The last one-second interval (Locust's "current" rates).
    pub last: Option<super::HistoryPoint>,
    /// The run's user classes and their weights (the web UI's class ratio).
    pub classes: Vec<(String, u32)>,
    /// The run has ended: these are its final numbers.
    pub finished: bool,
}

/// The open model's arrivals so far (as `arrivals::ArrivalReport` counts them).
#[derive(Clone, Default, Debug, PartialEq)]
pub struct ArrivalCounts {
    /// Arrivals whose intended time has come.
    pub scheduled: u64,
    /// Arrivals whose task ended with no failed request and no task error.
    pub completed: u64,
    /// Arrivals whose task had a failed request or a task error.
    pub failed: u64,
    /// Arrivals dropped (no free user, pool full), per class name.
    pub dropped_by_class: Vec<(String, u64)>,
    /// The dispatcher's lag p99 in the last full second, in microseconds.
    pub lag_p99_us: u64,
}

/// Where the collector publishes the board and readers take copies.
pub struct LiveBoard {
    board: Mutex<Option<Board>>,
    /// Counts publications: a reader that wants every board (the web UI's history) waits on
    /// it instead of polling and missing one.
    published: tokio::sync::watch::Sender<u64>,
    /// The target's resident memory as last sampled, in MB (`None`: not profiled).
    memory_mb: Mutex<Option<f64>>,
}

impl Default for LiveBoard {
    fn default() -> Self {
        LiveBoard {
            board: Mutex::new(None),
            published: tokio::sync::watch::Sender::new(0),
            memory_mb: Mutex::new(None),
        }
    }
}

impl LiveBoard {
    /// Replaces the board with this second's and wakes subscribers.
    pub fn publish(&self, board: Board) {
        if let Ok(mut slot) = self.board.lock() {
            *slot = Some(board);
        }
        self.published.send_modify(|n| *n += 1);
    }

    /// Resolves at each publication (and at `finish`).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Stores the target's latest resident memory, in MB.
    pub fn set_memory_mb(&self, mb: f64) {
        if let Ok(mut slot) = self.memory_mb.lock() {
            *slot = Some(mb);
        }
    }

    /// The target's resident memory as last sampled, in MB (`None`: not profiled).
    pub fn memory_mb(&self) -> Option<f64> {
        self.memory_mb.lock().ok().and_then(|m| *m)
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
        self.published.send_modify(|n| *n += 1);
    }
}
