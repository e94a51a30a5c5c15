//! The run's clock: time since the start without the time spent paused, so that a paused run's
//! load shape and run time resume where they were.

use std::time::{Duration, Instant};

/// When the run started and how long it has been paused.
pub(super) struct RunClock {
    started: Instant,
    /// Pauses that ended.
    paused_total: Duration,
    /// The pause going on, if any.
    paused_since: Option<Instant>,
}

impl RunClock {
    pub(super) fn start() -> Self {
        RunClock {
            started: Instant::now(),
            paused_total: Duration::ZERO,
            paused_since: None,
        }
    }

    /// The wall-clock start (the open model's schedule counts from it).
    pub(super) fn started(&self) -> Instant {
        self.started
    }

    /// Wall-clock time since the start, pauses included.
    pub(super) fn since_start(&self) -> Duration {
        self.started.elapsed()
    }

    /// Starts or ends a pause as `paused` says; nothing when it already says so.
    pub(super) fn set_paused(&mut self, paused: bool) {
        match (paused, self.paused_since) {
            (true, None) => self.paused_since = Some(Instant::now()),
            (false, Some(since)) => {
                self.paused_total += since.elapsed();
                self.paused_since = None;
            }
            _ => {}
        }
    }

    pub(super) fn is_paused(&self) -> bool {
        self.paused_since.is_some()
    }

    /// The run's time without its pauses, and when `run_time` of it will have passed (pushed
    /// back by the pauses so far), from one reading of the pauses.
    pub(super) fn now_and_deadline(
        &self,
        run_time: Option<Duration>,
    ) -> (Duration, Option<Instant>) {
        let paused = self.paused();
        // Durations are capped at 30 days by the plan, so the deadline cannot overflow.
        let now = self.started.elapsed().saturating_sub(paused);
        let deadline = run_time.map(|t| self.started + t + paused);
        (now, deadline)
    }

    /// The run's time without its pauses: what its rates are per.
    pub(super) fn ran(&self) -> Duration {
        let paused = self.paused();
        self.started.elapsed().saturating_sub(paused)
    }

    fn paused(&self) -> Duration {
        self.paused_total + self.paused_since.map_or(Duration::ZERO, |s| s.elapsed())
    }
}

/// Resolves at `deadline`; never without one.
pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_time_does_not_count() {
        let mut clock = RunClock::start();
        clock.set_paused(true);
        assert!(clock.is_paused());
        std::thread::sleep(Duration::from_millis(50));
        let (now, deadline) = clock.now_and_deadline(Some(Duration::from_secs(1)));
        assert!(now < Duration::from_millis(40), "{now:?}");
        let deadline = deadline.expect("a run time gives a deadline");
        assert!(deadline >= clock.started() + Duration::from_millis(1_050));
        clock.set_paused(false);
        assert!(!clock.is_paused());
        assert!(clock.ran() < Duration::from_millis(40));
        assert!(clock.since_start() >= Duration::from_millis(50));
        assert_eq!(clock.now_and_deadline(None).1, None);
    }
}
