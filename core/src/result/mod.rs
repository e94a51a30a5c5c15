//! The run's result: the canonical JSON artefact every report renders from, and its exact
//! merge of sharded runs (`merge`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::generator::GeneratorHealth;
use crate::plan::{Plan, Stage, Threshold};
use crate::plugin::PluginInfo;
use crate::stats::capped;
use crate::stats::{
    EndpointStats, FailureGroup, FailureSample, HistoryPoint, Percentile, TaskErrorGroup,
    ThresholdResult,
};

pub mod memory;
pub mod merge;

pub use memory::MemoryProfile;

/// Version of the JSON result schema (`docs/result.schema.json`).
pub const SCHEMA: &str = "perfhost-result/1";

/// Run metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMeta {
    /// The run's name (`--run-name`).
    pub run_name: String,
    /// The target's origin, `scheme://host[:port]`.
    pub target: String,
    /// The perfhost version that ran it.
    pub perfhost_version: String,
    /// The run's seed (`--seed`): the same seed gives the same choices.
    pub seed: u64,
    /// When the run started, Unix seconds.
    pub start_time: f64,
    /// When the run ended, Unix seconds.
    pub end_time: f64,
    /// Seconds the run went, without its pauses: what the rates are per.
    pub duration_s: f64,
    /// The run was stopped by a signal (Ctrl-C) before its end.
    pub interrupted: bool,
    /// The threshold (as written) that stopped the run early (`abort-on-fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_by: Option<String>,
    /// This result is one shard of a run (`--shard`), for `perfhost merge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardMeta>,
    /// This result is `perfhost merge` of this many shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_shards: Option<usize>,
}

/// Which shard a result is, of how many, and of which plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// This shard, 0-based.
    pub index: usize,
    /// Shards of the run.
    pub count: usize,
    /// `run::plan_hash`: equal for every shard of one plan.
    pub plan_hash: String,
}

/// The plan as it ran (no secrets).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanSummary {
    /// The most users alive at once.
    pub users: usize,
    /// Users started per second in the first stage.
    pub spawn_rate: f64,
    /// The run-time limit, in seconds (`None`: until the iterations are spent).
    pub run_time_s: Option<f64>,
    /// The limit on task runs in total, if any.
    pub iterations: Option<u64>,
    /// The classes asked for (`--user-classes`); empty: all.
    pub user_classes: Vec<String>,
    /// Users each class got, by class name.
    pub class_users: BTreeMap<String, usize>,
    /// The scenario the plan came from, if any.
    #[serde(default)]
    pub scenario: Option<String>,
    /// The load shape's stages (users, duration in seconds).
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// Thresholds declared by the scenario.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
}

impl PlanSummary {
    /// What the result says of `plan`; `class_users` is how many users each class got.
    pub fn new(plan: &Plan, class_users: BTreeMap<String, usize>) -> Self {
        PlanSummary {
            users: plan.max_users(),
            spawn_rate: plan.load.spawn_rate(),
            run_time_s: plan.stop.run_time.map(|d| d.as_secs_f64()),
            iterations: plan.stop.iterations,
            user_classes: plan.classes.only.clone(),
            class_users,
            scenario: plan.scenario.as_ref().map(|s| s.name.clone()),
            stages: plan.load.stages.clone(),
            thresholds: plan.thresholds.clone(),
        }
    }
}

/// The canonical result of a run: every other report renders from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// The schema version, [`SCHEMA`].
    pub schema: String,
    /// Who ran what, when, and how it ended.
    pub meta: RunMeta,
    /// The plan as it ran.
    pub plan: PlanSummary,
    /// The plugins loaded, with their classes and tasks.
    #[serde(deserialize_with = "capped::listed")]
    pub plugins: Vec<PluginInfo>,
    /// One row per (method, name), sorted by name then method.
    #[serde(deserialize_with = "capped::rows")]
    pub stats: Vec<EndpointStats>,
    /// The Aggregated row: every request of the run.
    pub total: EndpointStats,
    /// Failed requests grouped by (method, name, error), most frequent first.
    #[serde(deserialize_with = "capped::listed")]
    pub failures: Vec<FailureGroup>,
    /// A few failing responses as the server sent them (at most 3 per name, 50 in all).
    #[serde(deserialize_with = "capped::listed")]
    pub failure_samples: Vec<FailureSample>,
    /// Task errors grouped by (location, message), most frequent first.
    #[serde(deserialize_with = "capped::listed")]
    pub task_errors: Vec<TaskErrorGroup>,
    /// Requests the sandbox refused because they left the target origin.
    pub denied_requests: u64,
    /// Classes stopped because their users kept trapping, as `Class: reason`.
    #[serde(deserialize_with = "capped::listed")]
    pub stopped_classes: Vec<String>,
    /// One point per second (older seconds of long runs in coarser points).
    #[serde(deserialize_with = "capped::history")]
    pub history: Vec<HistoryPoint>,
    /// perfhost's own CPU and lag during the run.
    pub generator: GeneratorHealth,
    /// Every request of each user class (one row per class: `name` is the class).
    #[serde(default, deserialize_with = "capped::classes")]
    pub classes: Vec<EndpointStats>,
    /// Each threshold's verdict, measured value and margin.
    #[serde(default, deserialize_with = "capped::listed")]
    pub thresholds: Vec<ThresholdResult>,
    /// The target's memory during the run (`--profile`; on by default for the built-in
    /// target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryProfile>,
    /// The open model's arrivals: scheduled, completed, failed, dropped, cancelled, and the
    /// dispatcher's lag (`--rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<crate::arrivals::ArrivalReport>,
}

impl RunResult {
    /// True when the run should exit 1: a failed request or a task error.
    pub fn has_failures(&self) -> bool {
        self.total.failures > 0 || !self.task_errors.is_empty() || !self.stopped_classes.is_empty()
    }

    /// The test verdict. With thresholds they decide (a 0.5% failure rate passes
    /// `failure-rate < 1%`), and a class stopped for trapping still fails; without, any failed
    /// request or task error fails the run, as in Locust.
    pub fn failed(&self) -> bool {
        if self.thresholds.is_empty() {
            self.has_failures()
        } else {
            self.thresholds.iter().any(|t| !t.passed) || !self.stopped_classes.is_empty()
        }
    }

    /// Writes the JSON result to `path` whole or not at all (temp file, fsync, rename): a
    /// collector polling the folder never reads half a result.
    pub fn write_json(&self, path: &Path) -> Result<(), crate::outfile::WriteError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| crate::outfile::WriteError::new(path, std::io::Error::other(e)))?;
        crate::outfile::write(path, text.as_bytes())
    }

    /// The stats part printed by `--json` (as Locust's `--json`: a list of rows).
    pub fn stats_json(&self) -> String {
        #[derive(Serialize)]
        struct Row<'a> {
            method: &'a str,
            name: &'a str,
            num_requests: u64,
            num_failures: u64,
            min_response_time: f64,
            max_response_time: f64,
            avg_response_time: f64,
            median_response_time: f64,
            p95_response_time: f64,
            p99_response_time: f64,
            avg_content_length: f64,
            rps: f64,
        }
        let rows: Vec<Row> = self
            .stats
            .iter()
            .map(|s| Row {
                method: &s.method,
                name: &s.name,
                num_requests: s.requests,
                num_failures: s.failures,
                min_response_time: s.min_ms,
                max_response_time: s.max_ms,
                avg_response_time: s.avg_ms,
                median_response_time: s.median_ms,
                p95_response_time: s.percentile(Percentile::P95),
                p99_response_time: s.percentile(Percentile::P99),
                avg_content_length: s.avg_content_bytes,
                rps: s.rps,
            })
            .collect();
        serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
    }
}
