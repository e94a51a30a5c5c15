//! `perfhost k8s render`: a sharded run as a Kubernetes Indexed Job (with its ConfigMap,
//! results claim and collector Job) on stdout or in a file; `perfhost k8s collect`: the
//! shards' results in a folder, merged.

use std::path::PathBuf;
use std::time::Duration;

use crate::exit;
use crate::failure::Failure;
use crate::scale_out::commands::merge::CollectArgs;
use crate::scale_out::k8s::{self, K8sOptions};
use crate::scale_out::{self, DeployOptions};
use crate::settings::parse_duration_arg;

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
    /// The Secret the shards read the run flags' secrets from (a password in -H's URL,
    /// --web-token; never written into the manifests) [default: NAME-secrets].
    #[arg(long = "secret-name", value_name = "SECRET")]
    pub secret_name: Option<String>,
    /// Also write that Secret, values and all, to this file (mode 0600) for `kubectl apply
    /// -f`; else create it yourself (the command is printed).
    #[arg(long = "secret-file", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// `perfhost run` flags for every shard (-H, -u, -r, -t, -f, --rate, --threshold, …).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "RUN FLAGS"
    )]
    pub run: Vec<String>,
}

pub fn main(cmd: K8sCommand) -> Result<u8, Failure> {
    match cmd {
        K8sCommand::Render(args) => render(args),
        K8sCommand::Collect(args) => crate::scale_out::commands::merge::collect(args),
    }
}

/// Parses the run flags, resolves their plan and sizes the shards (shared with Slurm).
pub(crate) fn prepare(
    command: &str,
    common: &RenderArgs,
    run: &[String],
) -> Result<scale_out::Deployment, String> {
    let flags = crate::settings::run_flags::parse_run_flags(command, run)?;
    // As the shards will resolve it: not with this shell's environment or this folder's
    // settings file.
    let plan = crate::settings::resolve_portable(&flags).map_err(|e| e.to_string())?;
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
        .unwrap_or_else(perfhost_core::stats::unix_now);
    scale_out::prepare(&plan, run, &options, now).map_err(|e| e.to_string())
}

/// Writes text only its owner may read (mode 0600, also when the file was there before).
pub(crate) fn write_private(path: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let failed = |err: std::io::Error| format!("cannot write {}: {err}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
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

fn render(args: K8sRenderArgs) -> Result<u8, Failure> {
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
            secret_name: args.secret_name.clone(),
        };
        let resources = k8s::render(&d, &options, &files)?;
        k8s::check_values(&resources)?;
        emit(args.common.output.as_ref(), &k8s::to_yaml(&resources)?)?;
        if let (Some(path), Some(secret)) = (&args.secret_file, k8s::secret(&d, &options)) {
            let text = serde_yaml::to_string(&secret).map_err(|e| e.to_string())?;
            write_private(path, &format!("---\n{text}"))?;
        }
        Ok::<_, String>((d, options))
    })();
    let (d, options) = result.map_err(Failure::usage)?;
    if let Some(secret) = k8s::secret_name(&d, &options) {
        let keys: Vec<&str> = d.secrets.iter().map(|s| s.name).collect();
        let flags: Vec<&str> = d.secrets.iter().map(|s| s.flag).collect();
        match &args.secret_file {
            Some(path) => crate::errln!(
                "The secrets of {} are in Secret {secret}, written to {} (mode 0600), not in the manifests: `kubectl apply -f {}` it first, and keep it out of version control",
                flags.join(" and "),
                path.display(),
                path.display()
            ),
            None => crate::errln!(
                "The secrets of {} are not in the manifests: the shards read them from Secret {secret}, keys {} — create it first: kubectl create secret generic {secret}{} {} (or render with --secret-file FILE)",
                flags.join(" and "),
                keys.join(", "),
                args.namespace
                    .as_ref()
                    .map(|n| format!(" -n {n}"))
                    .unwrap_or_default(),
                keys.iter()
                    .map(|k| format!("--from-literal={k}=\"${k}\""))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }
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
    Ok(exit::OK)
}
