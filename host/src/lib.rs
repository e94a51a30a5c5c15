//! perfhost: a scriptable HTTP load engine whose virtual users are sandboxed WebAssembly
//! components. One module per stage of the data path (docs/architecture.md):
//! Plan (`plan`, resolved by `config`) → PluginSet (`plugin`) → Engine (`engine`; users call
//! plugins, plugins call `client`) → Stats (`stats`) → Result (`report`).
//!
//! The entry point is [`run`]: `perfhost::run(&plan, stop, on_tick)`.

pub mod arrivals;
pub mod benchmark;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod console;
pub mod control;
pub mod demo;
pub mod deploy;
pub mod engine;
pub mod exit;
pub mod input;
pub mod logging;
pub mod monitor;
pub mod outfile;
pub mod overhead;
pub mod plan;
pub mod plugin;
pub mod profiler;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod stats;
pub mod stop;
pub mod suite;
pub mod web;

pub use runner::{run, RunError};
