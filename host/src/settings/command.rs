//! `perfhost scenario list|show`.

use crate::exit;
use crate::failure::Failure;
use crate::settings::scenario;

#[derive(Debug, clap::Subcommand)]
pub enum ScenarioCommand {
    /// The presets: name, users, spawn rate, duration, classes, description.
    List,
    /// A scenario's file, as it will run (a preset name, ./scenarios/NAME.toml, or a path).
    Show { name: String },
}

pub fn main(cmd: ScenarioCommand) -> Result<u8, Failure> {
    match cmd {
        ScenarioCommand::List => {
            let table = scenario::list_table()?;
            crate::out!("{table}");
            crate::outln!("\nRun one with `perfhost run --scenario NAME` (add e.g. `--run-time 30s` to shorten it).");
            Ok(exit::OK)
        }
        ScenarioCommand::Show { name } => {
            let loaded = scenario::load(&name)?;
            let text = scenario::PRESETS
                .iter()
                .find(|(n, _)| loaded.source.ends_with("(built-in)") && *n == loaded.name)
                .map(|(_, t)| t.to_string())
                .map(Ok)
                .unwrap_or_else(|| scenario::read_scenario(std::path::Path::new(&loaded.source)))?;
            crate::outln!("# {}", loaded.source);
            crate::out!("{text}");
            Ok(exit::OK)
        }
    }
}
