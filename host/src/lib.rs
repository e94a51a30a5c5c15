//! The perfhost command: settings, commands and the reports rendered from a result, over the
//! engine in `perfhost-core` and the built-in target in `perfhost-demo`
//! (docs/architecture.md).
//!
//! The entry point of a run is [`run`]: `perfhost::run(&plan, stop, on_tick)`.

pub mod benchmark;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod deploy;
pub mod exit;
pub mod logging;
pub mod monitor;
pub mod overhead;
pub mod profiler;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod suite;
pub mod web;

pub use runner::{run, RunError};
