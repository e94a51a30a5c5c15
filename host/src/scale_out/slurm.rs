//! A sharded run as a Slurm job array: one `sbatch` script whose task I is shard I of N
//! (`--shard auto` reads `SLURM_ARRAY_TASK_ID`), all tasks starting at one instant.

use std::path::Path;

use super::Deployment;

/// The Slurm side of `perfhost slurm render`.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    /// The perfhost executable as the nodes see it.
    pub perfhost: String,
    /// The shared folder the tasks write their results and logs to (absolute).
    pub results: String,
    pub partition: Option<String>,
}

/// The file beside the results the run flags' secrets go to (mode 0600): the script sources
/// it, so the secrets are in neither the script (often 0644, kept with the job) nor any
/// command line (`ps`, `scontrol show job`).
pub const SECRETS_FILE: &str = "secrets.env";

/// The secrets file's text: `export NAME='value'` lines for bash.
pub fn secrets_env(d: &Deployment) -> Result<Option<String>, String> {
    if d.secrets.is_empty() {
        return Ok(None);
    }
    let mut text =
        String::from("# perfhost slurm render: the run flags' secrets (keep this file 0600)\n");
    for s in &d.secrets {
        let quoted = shlex::try_quote(&s.value)
            .map_err(|_| format!("{}: cannot quote its value for the shell", s.flag))?;
        text.push_str(&format!("export {}={quoted}\n", s.name));
    }
    Ok(Some(text))
}

/// The sbatch script. Files the run flags name are passed by their absolute path here: a
/// cluster's nodes share the submitting folder's filesystem (or the script says otherwise).
pub fn render(d: &Deployment, o: &SlurmOptions) -> Result<String, String> {
    let quote = |s: &str| {
        shlex::try_quote(s)
            .map(|q| q.into_owned())
            .map_err(|_| format!("cannot quote {s:?} for the shell"))
    };
    let mut args = vec![
        "run".to_string(),
        "--shard=auto".into(),
        format!("--start-at={}", d.start_at),
    ];
    args.extend(d.args_with(|f| {
        std::fs::canonicalize(&f.source)
            .unwrap_or_else(|_| f.source.clone())
            .display()
            .to_string()
    }));
    let mut line = quote(&o.perfhost)?;
    for a in &args {
        line.push(' ');
        line.push_str(&quote(a)?);
    }
    if o.results.chars().any(char::is_whitespace) {
        return Err(format!(
            "--results {}: Slurm's #SBATCH --output takes no spaces — choose a folder without",
            o.results
        ));
    }
    let results = quote(&o.results)?;
    if let Some(p) = o.partition.as_ref().filter(|p| {
        p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.,".contains(c))
    }) {
        return Err(format!(
            "--partition `{p}`: give a partition name (letters, digits, '-', '_', '.', ',')"
        ));
    }
    // A task gets the CPUs its workers use (`--workers` in the run flags).
    let cpus = d.workers;
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!(
        "# perfhost: run `{}` as {} shards of one job array, all starting at {} — rendered by\n",
        d.name, d.shards, d.start_at
    ));
    s.push_str(&format!(
        "# `perfhost slurm render`. Submit with `sbatch --wait THIS_FILE` (it exits with the\n\
         # highest task exit code: 5 when a task started after {}), then merge with\n\
         # `perfhost slurm collect --from {}`.\n",
        d.start_at, o.results
    ));
    s.push_str(&format!("#SBATCH --job-name={}\n", d.name));
    s.push_str(&format!("#SBATCH --array=0-{}\n", d.shards - 1));
    s.push_str("#SBATCH --ntasks=1\n");
    s.push_str(&format!("#SBATCH --cpus-per-task={cpus}\n"));
    // Slurm's --mem is a limit, not a request: twice the estimate, as Kubernetes' limit.
    s.push_str(&format!(
        "#SBATCH --mem={}M\n",
        (2 * d.memory_bytes).div_ceil(1 << 20)
    ));
    s.push_str(&format!("#SBATCH --time={}\n", d.deadline_s.div_ceil(60)));
    s.push_str(&format!("#SBATCH --output={}/shard-%a.log\n", o.results));
    if let Some(p) = &o.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    s.push_str("set -eu\n");
    if !d.secrets.is_empty() {
        let names: Vec<&str> = d.secrets.iter().map(|s| s.name).collect();
        s.push_str(&format!(
            "# {} from the 0600 file beside the results, never from this script.\n. {results}/{SECRETS_FILE}\n",
            names.join(", ")
        ));
    }
    s.push_str(&format!(
        "exec {line} --json-file {results}/shard-\"${{SLURM_ARRAY_TASK_ID}}\".json --only-summary\n"
    ));
    Ok(s)
}

/// The results folder as an absolute path (the tasks may run in another folder).
pub fn absolute(dir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    Ok(std::fs::canonicalize(dir)?.display().to_string())
}
