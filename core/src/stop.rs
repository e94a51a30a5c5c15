//! Asking a run to stop: at its end, on a signal, or from a test. One handle for the run and
//! one per user (a load shape removing users stops them one by one).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Asks the run (or one user) to stop.
#[derive(Clone, Default)]
pub struct StopHandle {
    inner: Arc<StopInner>,
}

#[derive(Default)]
struct StopInner {
    stopping: AtomicBool,
    interrupted: AtomicBool,
    forced: AtomicBool,
    notify: Notify,
}

impl StopHandle {
    /// Stops the run because of a signal: the result is marked interrupted.
    pub fn interrupt(&self) {
        self.inner.interrupted.store(true, Ordering::SeqCst);
        self.stop();
    }

    /// Stops at once: users get no time to finish their task, in-flight requests are cancelled
    /// (a second Ctrl-C, as in Locust).
    pub fn force(&self) {
        self.inner.forced.store(true, Ordering::SeqCst);
        self.interrupt();
    }

    /// Stops normally: users may finish their task within the stop timeout.
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether a stop of any kind was asked for.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Whether the stop came from a signal (or was forced).
    pub fn was_interrupted(&self) -> bool {
        self.inner.interrupted.load(Ordering::SeqCst)
    }

    /// Whether the stop is forced: no time to finish, requests cancelled.
    pub(crate) fn is_forced(&self) -> bool {
        self.inner.forced.load(Ordering::SeqCst)
    }

    /// Resolves once the run is stopping.
    pub async fn stopped(&self) {
        self.wait_for(Self::is_stopping).await
    }

    /// Resolves once the stop is forced.
    pub async fn forced(&self) {
        self.wait_for(Self::is_forced).await
    }

    async fn wait_for(&self, done: fn(&Self) -> bool) {
        loop {
            let notified = self.inner.notify.notified();
            if done(self) {
                return;
            }
            notified.await;
        }
    }
}
