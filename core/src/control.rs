//! Steering a run while it goes (the web UI and its API): a new user count and spawn rate,
//! pause and resume, reset of the statistics. The engine reads these at its control loop and
//! users at their task boundary; a run nobody steers pays one atomic load per task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// A new user count, reached at `spawn_rate` users per second from the current count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retarget {
    /// Users to reach.
    pub users: usize,
    /// Users started or stopped per second on the way; 0 or less: at once.
    pub spawn_rate: f64,
}

/// Requests to a running engine; cloning shares them.
#[derive(Clone, Default)]
pub struct RunControl {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    retarget: Mutex<Option<Retarget>>,
    paused: AtomicBool,
    reset: AtomicBool,
    /// Woken on every request: the engine's loop, and paused users waiting to resume.
    changed: Notify,
}

impl RunControl {
    /// Asks for a new user count; a newer request replaces one not yet taken.
    pub fn retarget(&self, to: Retarget) {
        if let Ok(mut slot) = self.inner.retarget.lock() {
            *slot = Some(to);
        }
        self.inner.changed.notify_waiters();
    }

    /// The newest retarget request, once.
    pub fn take_retarget(&self) -> Option<Retarget> {
        self.inner.retarget.lock().ok().and_then(|mut r| r.take())
    }

    /// Pauses (`true`) or resumes (`false`) the users at their next task boundary.
    pub fn set_paused(&self, paused: bool) {
        self.inner.paused.store(paused, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    /// Whether the run is paused.
    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::Relaxed)
    }

    /// Asks for the statistics to be reset.
    pub fn request_reset(&self) {
        self.inner.reset.store(true, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    /// Whether a reset was asked for since the last call.
    pub fn take_reset(&self) -> bool {
        self.inner.reset.swap(false, Ordering::SeqCst)
    }

    /// Resolves at the next request.
    pub async fn changed(&self) {
        self.inner.changed.notified().await
    }

    /// Waits while paused. Returns whether it waited (a paced user then starts its schedule
    /// afresh rather than catching up on the paused time).
    /// `stop` is the run's, `me` the user's own (a new count removes it while paused).
    pub async fn wait_while_paused(
        &self,
        stop: &crate::stop::StopHandle,
        me: &crate::stop::StopHandle,
    ) -> bool {
        if !self.is_paused() {
            return false;
        }
        loop {
            let changed = self.inner.changed.notified();
            if !self.is_paused() || stop.is_stopping() || me.is_stopping() {
                return true;
            }
            tokio::select! {
                _ = changed => {}
                _ = stop.stopped() => return true,
                _ = me.stopped() => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_paused_user_waits_until_resumed_or_stopped() {
        let control = RunControl::default();
        let stop = crate::stop::StopHandle::default();
        let me = crate::stop::StopHandle::default();
        assert!(!control.wait_while_paused(&stop, &me).await);
        control.set_paused(true);
        let waiter = {
            let (control, stop, me) = (control.clone(), stop.clone(), me.clone());
            tokio::spawn(async move { control.wait_while_paused(&stop, &me).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a paused user must wait");
        control.set_paused(false);
        assert!(tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("resume wakes the user")
            .unwrap());

        control.set_paused(true);
        let waiter = {
            let (control, stop, me) = (control.clone(), stop.clone(), me.clone());
            tokio::spawn(async move { control.wait_while_paused(&stop, &me).await })
        };
        stop.stop();
        assert!(tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("a stop wakes a paused user")
            .unwrap());
        control.retarget(Retarget {
            users: 5,
            spawn_rate: 1.0,
        });
        control.retarget(Retarget {
            users: 7,
            spawn_rate: 2.0,
        });
        assert_eq!(control.take_retarget().map(|r| r.users), Some(7));
        assert_eq!(control.take_retarget(), None);
        control.request_reset();
        assert!(control.take_reset() && !control.take_reset());
    }
}
