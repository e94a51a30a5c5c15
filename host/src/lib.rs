//! perfhost: a scriptable HTTP load engine whose virtual users are sandboxed WebAssembly
//! components. One module per stage of the data path:
//! Plan (`config`) → PluginSet (`plugin`) → Engine (`engine`, users call plugins, plugins call
//! `client`) → Stats (`stats`) → Result (`report`).

pub mod bench;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod demo;
pub mod engine;
pub mod exit;
pub mod plugin;
pub mod report;
pub mod scenario;
pub mod stats;
