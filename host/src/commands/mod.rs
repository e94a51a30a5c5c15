//! CLI glue, one file per subcommand: parse its arguments, call the library, print, map the
//! outcome to an exit code.

pub mod bench;
pub mod compare;
pub mod demo_server;
pub mod local;
pub mod merge;
pub mod plugin;
pub mod plugin_bench;
pub mod plugin_new;
pub mod profile;
pub mod report;
pub mod run;
pub mod scenario;
pub mod ui;
