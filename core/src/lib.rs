//! perfhost's engine: a plan runs as virtual users that are sandboxed WebAssembly components.
//! One module per stage of the data path (docs/architecture.md):
//! Plan (`plan`) → PluginSet (`plugin`) → Engine (`engine`; users call plugins, plugins call
//! `client`) → Stats (`stats`) → Result (`result`). [`run`] is the entry: `prepare`, then
//! `execute`.
//!
//! The core prints nothing and knows no command line: what it has to say goes out as
//! [`events`], and its errors name the plan's settings.

#![warn(missing_docs, unreachable_pub)]

pub mod arrivals;
pub mod client;
pub mod control;
pub mod engine;
pub mod events;
pub mod generator;
pub mod input;
pub mod metric;
pub mod outfile;
pub mod plan;
pub mod plugin;
pub mod result;
pub mod run;
pub mod stats;
pub mod stop;
pub mod text;
