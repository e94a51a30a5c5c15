//! The built-in JuraGPT Auditor API simulator (`perfhost demo-server`): the default load
//! target, and the server perfhost's own tests measure against.
//!
//! It answers like the real FastAPI service (same routes, validation errors, response shapes,
//! trust labels, Prometheus names) and does proportionate real work per `/verify`, so load
//! numbers mean something. Knobs inject latency, errors, rate limits, auth, a memory leak and
//! periodic stalls. Design notes and benchmark results: `docs/demo-server.md`.
//!
//! - [`knobs`]: the knob types, their parsers and [`DemoConfig`]
//! - [`verify`]: request validation (pydantic error shapes) and scoring
//! - [`metrics`]: Prometheus metrics, `/statistics` totals, the result store
//! - [`server`]: HTTP, routing, knobs at request time, lifecycle
//! - [`child`]: the demo server as a child process of a run (the zero-configuration target)

pub mod child;
pub mod knobs;
pub mod metrics;
pub mod server;
pub mod verify;

pub use child::{DemoChild, DemoChildError};
pub use knobs::{DemoConfig, KnobError, LatencyRange, RateLimit, Stall};
pub use server::{start, DemoServer, DemoStats, SERVICE_TIME_HEADER};
