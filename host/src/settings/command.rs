//! `perfhost scenario list|show`.

use crate::exit;
use crate::settings::scenario;

#[derive(Debug, clap::Subcommand)]
pub enum ScenarioCommand {
    /// The presets: name, users, spawn rate, duration, classes, description.
    List,
    /// A scenario's file, as it will run (a preset name, ./scenarios/NAME.toml, or a path).
    Show { name: String },
}

pub fn main(cmd: ScenarioCommand) -> u8 {
    match cmd {
        ScenarioCommand::List => match scenario::list_table() {
            Ok(table) => {
                crate::out!("{table}");
                crate::outln!("\nRun one with `perfhost run --scenario NAME` (add e.g. `--run-time 30s` to shorten it).");
                exit::OK
            }
            Err(err) => {
                crate::errln!("error: {err}");
                exit::USAGE
            }
        },
        ScenarioCommand::Show { name } => {
            let loaded = match scenario::load(&name) {
                Ok(s) => s,
                Err(err) => {
                    crate::errln!("error: {err}");
                    return exit::USAGE;
                }
            };
            let text = scenario::PRESETS
                .iter()
                .find(|(n, _)| loaded.source.ends_with("(built-in)") && *n == loaded.name)
                .map(|(_, t)| t.to_string())
                .map(Ok)
                .unwrap_or_else(|| scenario::read_scenario(std::path::Path::new(&loaded.source)));
            let text = match text {
                Ok(text) => text,
                Err(err) => {
                    crate::errln!("error: {err}");
                    return exit::USAGE;
                }
            };
            crate::outln!("# {}", loaded.source);
            crate::out!("{text}");
            exit::OK
        }
    }
}
