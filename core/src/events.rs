//! What the core has to say while a run goes. The core prints nothing: it hands each event to
//! the sink its caller gave, and the binary renders it (stderr today).

use std::sync::Arc;

/// One thing worth telling the person running the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A request, response or request error of `--trace`, secrets already taken out.
    Trace(&'a str),
}

/// Where a run's events go.
pub type Events = Arc<dyn Fn(Event<'_>) + Send + Sync>;

/// A sink that drops every event (a run nobody watches: tests, benchmarks).
pub fn ignore() -> Events {
    Arc::new(|_| {})
}
