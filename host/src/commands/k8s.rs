//! `perfhost k8s render`: a sharded run as a Kubernetes Indexed Job (with its ConfigMap,
//! results claim and collector Job) on stdout or in a file; `perfhost k8s collect`: the
//! shards' results in a folder, merged.

use std::path::PathBuf;
use std::time::Duration;

use crate::commands::merge::CollectArgs;
use crate::config::parse_duration_arg;
use crate::deploy::k8s::{self, K8sOptions};
use crate::deploy::{self, DeployOptions};
use crate::exit;

#[derive(Debug, clap::Subcommand)]
pub enum K8sCommand {
    /// Render an Indexed Job of N shards, its files, results claim and collector Job
    /// (`kubectl apply -f`): `perfhost k8s render --shards 8 --image REPO/perfhost:TAG -H URL -u 4000 -t 10m`.
    Render(K8sRenderArgs),
    /// Merge the shards' results from the results folder (waiting for them with --wait).
    Collect(CollectArgs),
}

/// Options every scheduler's `render` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// How many shards (pods, or array tasks) share the run.
    #[arg(long, value_name = "N")]
    pub shards: usize,
    /// The run's name on the scheduler [default: perfhost-<run-name>].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Start this long after rendering (resolved now to an RFC 3339 --start-at: apply or
    /// submit within it) [default: 120s].
    #[arg(long = "start-in", value_parser = parse_duration_arg, value_name = "D", conflicts_with = "start_at")]
    pub start_in: Option<Duration>,
    /// Start at this RFC 3339 instant instead.
    #[arg(long = "start-at", value_name = "TIME")]
    pub start_at: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct K8sRenderArgs {
    #[command(flatten)]
    pub common: RenderArgs,
    /// The perfhost image (built from the repository's Dockerfile).
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// An existing ReadWriteMany claim for the results [default: render NAME-results].
    #[arg(long = "results-claim", value_name = "CLAIM")]
    pub results_claim: Option<String>,
    /// Size of the rendered results claim.
    #[arg(long = "results-size", value_name = "SIZE", default_value = "1Gi")]
    pub results_size: String,
    /// Storage class of the rendered results claim [default: the cluster's].
    #[arg(long = "storage-class", value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Read the files the run flags name from this existing claim instead of a ConfigMap
    /// (which holds 1 MiB): copy them there under the names `render` prints.
    #[arg(long = "files-claim", value_name = "CLAIM")]
    pub files_claim: Option<String>,
    /// A Secret whose keys become the shards' environment (API_TOKEN, API_KEY, …).
    #[arg(long = "env-from-secret", value_name = "SECRET")]
    pub env_from_secret: Option<String>,
    /// `perfhost run` flags for every shard (-H, -u, -r, -t, -f, --rate, --threshold, …).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "RUN FLAGS"
    )]
    pub run: Vec<String>,
}

pub fn main(cmd: K8sCommand) -> u8 {
    match cmd {
        K8sCommand::Render(args) => render(args),
        K8sCommand::Collect(args) => crate::commands::merge::collect(args),
    }
}

/// Parses the run flags, resolves their plan and sizes the shards (shared with Slurm).
pub(crate) fn prepare(
    command: &str,
    common: &RenderArgs,
    run: &[String],
) -> Result<deploy::Deployment, String> {
    let flags = super::parse_run_flags(command, run)?;
    // As the shards will resolve it: not with this shell's environment or this folder's
    // settings file.
    let plan = crate::config::resolve_portable(&flags).map_err(|e| e.to_string())?;
    let options = DeployOptions {
        shards: common.shards,
        name: common.name.clone(),
        start_at: common.start_at.clone(),
        start_in: common.start_in.unwrap_or(Duration::from_secs(120)),
    };
    // SOURCE_DATE_EPOCH (the reproducible-builds convention) stands for "now": the same
    // flags then render the same file.
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or_else(crate::stats::unix_now);
    deploy::prepare(&plan, run, &options, now).map_err(|e| e.to_string())
}

/// Writes rendered text to `--output` or stdout.
pub(crate) fn emit(output: Option<&PathBuf>, text: &str) -> Result<(), String> {
    match output {
        Some(path) => std::fs::write(path, text)
            .map_err(|err| format!("cannot write {}: {err}", path.display())),
        None => {
            crate::outln!("{}", text.trim_end());
            Ok(())
        }
    }
}

fn render(args: K8sRenderArgs) -> u8 {
    let result = (|| {
        let d = prepare("perfhost k8s render", &args.common, &args.run)?;
        let files = d.read_files().map_err(|e| e.to_string())?;
        let options = K8sOptions {
            image: args.image.clone(),
            namespace: args.namespace.clone(),
            results_claim: args.results_claim.clone(),
            results_size: args.results_size.clone(),
            storage_class: args.storage_class.clone(),
            files_claim: args.files_claim.clone(),
            env_from_secret: args.env_from_secret.clone(),
        };
        let resources = k8s::render(&d, &options, &files)?;
        k8s::check_values(&resources)?;
        emit(args.common.output.as_ref(), &k8s::to_yaml(&resources)?)?;
        Ok::<_, String>(d)
    })();
    match result {
        Ok(d) => {
            if args.files_claim.is_some() && !d.files.is_empty() {
                crate::errln!("Copy these files to the root of the files claim:");
                for f in &d.files {
                    crate::errln!("  {} -> {}", f.source.display(), f.key);
                }
            }
            crate::errln!(
                "{} shards start at {} (apply before then; a pod not running by then exits 5 and fails the Job); results in {} of the results claim, merged by job/{}-collect",
                d.shards,
                d.start_at,
                k8s::results_dir(&d),
                d.name
            );
            exit::OK
        }
        Err(err) => {
            crate::errln!("error: {err}");
            exit::USAGE
        }
    }
}
