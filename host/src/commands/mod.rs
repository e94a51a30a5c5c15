//! One file per subcommand.

pub mod plugin;
pub mod run;
pub mod scenario;
