//! `perfhost slurm render`: a sharded run as an `sbatch` job-array script; `perfhost slurm
//! collect`: the tasks' results in the shared folder, merged.

use std::path::PathBuf;

use crate::exit;
use crate::failure::Failure;
use crate::scale_out::commands::k8s::{emit, prepare, RenderArgs};
use crate::scale_out::commands::merge::CollectArgs;
use crate::scale_out::slurm::{self, SlurmOptions};

#[derive(Debug, clap::Subcommand)]
pub enum SlurmCommand {
    /// Render an sbatch script whose array tasks are the shards:
    /// `perfhost slurm render --shards 8 -o run.sbatch -H URL -u 4000 -t 10m; sbatch --wait run.sbatch`.
    Render(SlurmRenderArgs),
    /// Merge the tasks' results from the results folder (waiting for them with --wait).
    Collect(CollectArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SlurmRenderArgs {
    #[command(flatten)]
    pub common: RenderArgs,
    /// The folder, shared by the nodes, the tasks write results and logs to (created now)
    /// [default: perfhost-results/NAME/START].
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,
    /// The perfhost executable as the nodes see it [default: this one's absolute path].
    #[arg(long, value_name = "PATH")]
    pub perfhost: Option<String>,
    #[arg(long, value_name = "PARTITION")]
    pub partition: Option<String>,
    /// `perfhost run` flags for every task (-H, -u, -r, -t, -f, --rate, --threshold, …).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "RUN FLAGS"
    )]
    pub run: Vec<String>,
}

pub fn main(cmd: SlurmCommand) -> Result<u8, Failure> {
    match cmd {
        SlurmCommand::Render(args) => render(args),
        SlurmCommand::Collect(args) => crate::scale_out::commands::merge::collect(args),
    }
}

fn render(args: SlurmRenderArgs) -> Result<u8, Failure> {
    let result = (|| {
        let d = prepare("perfhost slurm render", &args.common, &args.run)?;
        let dir = args.results.clone().unwrap_or_else(|| {
            PathBuf::from("perfhost-results")
                .join(&d.name)
                .join(d.start_stamp())
        });
        let results = slurm::absolute(&dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        let perfhost = match &args.perfhost {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|err| format!("cannot find the perfhost executable: {err}"))?
                .display()
                .to_string(),
        };
        let options = SlurmOptions {
            perfhost,
            results: results.clone(),
            partition: args.partition.clone(),
        };
        let script = slurm::render(&d, &options)?;
        if let Some(text) = slurm::secrets_env(&d)? {
            let path = std::path::Path::new(&results).join(slurm::SECRETS_FILE);
            crate::scale_out::commands::k8s::write_private(&path, &text)?;
        }
        emit(args.common.output.as_ref(), &script)?;
        Ok::<_, String>((d, results))
    })();
    let (d, results) = result.map_err(Failure::usage)?;
    if !d.secrets.is_empty() {
        let flags: Vec<&str> = d.secrets.iter().map(|s| s.flag).collect();
        crate::errln!(
            "The secrets of {} are in {results}/{} (mode 0600), which the script reads; not in the script",
            flags.join(" and "),
            slurm::SECRETS_FILE
        );
    }
    crate::errln!(
        "{} tasks start at {} (submit before then; a task not running by then exits 5); results in {results}: perfhost slurm collect --from {results}",
        d.shards,
        d.start_at
    );
    Ok(exit::OK)
}
