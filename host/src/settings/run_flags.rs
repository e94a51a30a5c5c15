//! `perfhost run` flags given after another command's own (`local`, `k8s render`, `slurm
//! render`).

use super::RunArgs;

#[derive(clap::Parser)]
struct RunFlags {
    #[command(flatten)]
    run: RunArgs,
}

/// `perfhost run` flags given after another command's own (`local`, `k8s render`, `slurm
/// render`): parsed as `run` parses them, the first line of clap's message on a mistake.
pub(crate) fn parse_run_flags(command: &str, run: &[String]) -> Result<RunArgs, String> {
    use clap::Parser;
    RunFlags::try_parse_from(std::iter::once(command.to_string()).chain(run.iter().cloned()))
        .map(|f| f.run)
        .map_err(|err| {
            let text = err.to_string();
            let line = text.lines().next().unwrap_or("");
            line.strip_prefix("error: ").unwrap_or(line).to_string()
        })
}
