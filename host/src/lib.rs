//! The perfhost command over the engine in `perfhost-core` and the built-in target in
//! `perfhost-demo`: one folder per feature, each with its command (docs/architecture.md).
//!
//! The entry point of a run is [`run`]: `perfhost::run(&plan, stop, on_tick)`.

pub mod bench;
pub mod cli;
pub mod compare;
pub mod console;
pub mod demo_server;
pub mod exit;
pub mod failure;
pub mod health;
pub mod logging;
pub mod plugin_tools;
pub mod process;
pub mod profile;
pub mod report;
pub mod run;
pub mod scale_out;
pub mod settings;
pub mod web;

pub use run::{run, RunError};
