//! A target's memory over a run or a profile: the samples and their analysis, as the result
//! holds them (the sampling and the analysis are the binary's `profile` feature).

use serde::{Deserialize, Serialize};

use crate::plan::{Grade, LeakTables};

/// A target's memory over time: memory_profile.py's JSON (`metadata`, `samples`, `analysis`),
/// written by `perfhost profile` and held in a run's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryProfile {
    /// What was profiled, and how.
    pub metadata: ProfileMeta,
    /// The samples in time order.
    pub samples: Vec<MemorySample>,
    /// `None` when no sample was taken.
    pub analysis: Option<Analysis>,
}

/// What a profile is of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileMeta {
    /// memory_profile.py's fields.
    pub api_url: String,
    /// Seconds between samples.
    pub interval: f64,
    /// Seconds asked for (a run's length for a run).
    pub duration: f64,
    /// ISO 8601, UTC: when sampling began.
    pub timestamp: String,
    /// The process (tree) sampled.
    pub target: TargetProcess,
    /// The tables the analysis used.
    pub tables: LeakTables,
    /// A leak warning changes the exit code (profiling was asked for).
    pub explicit: bool,
}

/// The process (tree) being profiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetProcess {
    /// The root of the tree (the server's main process).
    pub pid: u32,
    /// The root process's command line.
    pub command: String,
    /// How it was found: `pid`, `port 8888`, `match uvicorn`, `built-in demo server`.
    pub found_by: String,
    /// Whether its child processes (workers) are summed in.
    pub children: bool,
}

/// One process's figures in a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessFigures {
    /// The process id.
    pub pid: u32,
    /// Resident memory, in MB (2^20 bytes).
    pub rss_mb: f64,
    /// Virtual memory, in MB (2^20 bytes).
    pub vms_mb: f64,
    /// Threads of the process.
    pub num_threads: u64,
    /// Open file descriptors of the process.
    pub num_fds: u64,
}

/// One sample: memory_profile.py's fields first, then perfhost's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// ISO 8601, UTC.
    pub timestamp: String,
    /// The same moment in Unix seconds (lines samples up with a run's history).
    pub time: f64,
    /// Seconds since sampling began.
    pub elapsed_seconds: f64,
    /// Resident memory summed over the process tree, in MB (2^20 bytes).
    pub rss_mb: f64,
    /// Virtual memory summed over the process tree, in MB (2^20 bytes).
    pub vms_mb: f64,
    /// RSS as a share of the machine's memory, in %.
    pub percent: f64,
    /// Open file descriptors, summed over the tree.
    pub num_fds: u64,
    /// Threads, summed over the tree.
    pub num_threads: u64,
    /// The keep-alive request of `perfhost profile` succeeded (`None`: none was sent).
    #[serde(default)]
    pub request_success: Option<bool>,
    /// CPU of the tree since the previous sample, in % of one core.
    pub cpu_percent: f64,
    /// Every process of the tree.
    pub processes: Vec<ProcessFigures>,
    /// perfhost's own memory and CPU at that moment, so a reader sees whose memory grew.
    pub perfhost_rss_mb: f64,
    /// perfhost's CPU since the previous sample, in % of one core.
    pub perfhost_cpu_percent: f64,
}

/// What the growth says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Growth below the moderate threshold.
    Healthy,
    /// Growth between the moderate and the high threshold: a leak warning.
    Moderate,
    /// Growth above the high threshold: a leak warning.
    High,
    /// Not enough samples after the warm-up to judge.
    TooShort,
}

impl Verdict {
    /// A leak warning (exit code 4 when the profile was asked for).
    pub fn is_warning(self) -> bool {
        matches!(self, Verdict::Moderate | Verdict::High)
    }
}

/// Resident memory over the profile, in MB (2^20 bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RssAnalysis {
    /// The first sample's.
    pub initial_mb: f64,
    /// The last sample's.
    pub final_mb: f64,
    /// The lowest sample's.
    pub min_mb: f64,
    /// The highest sample's.
    pub max_mb: f64,
    /// The mean over the samples.
    pub avg_mb: f64,
    /// Last minus first, as memory_profile.py reports it.
    pub growth_mb: f64,
    /// `growth_mb` in % of the first sample's.
    pub growth_percent: f64,
}

/// Virtual memory over the profile, in MB (2^20 bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmsAnalysis {
    /// The first sample's.
    pub initial_mb: f64,
    /// The last sample's.
    pub final_mb: f64,
    /// Last minus first.
    pub growth_mb: f64,
}

/// A count (threads, open files) over the profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountAnalysis {
    /// The first sample's.
    pub initial: u64,
    /// The last sample's (`final` in JSON).
    #[serde(rename = "final")]
    pub last: u64,
    /// Least-squares slope after the warm-up, per minute.
    pub slope_per_min: f64,
    /// Rising steadily: a positive slope that fits well and adds up to several more.
    pub rising: bool,
}

/// The analysis of a profile (memory_profile.py's fields, then perfhost's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Samples taken.
    pub total_samples: usize,
    /// Seconds from the start of sampling to the last sample.
    pub duration_seconds: f64,
    /// Resident memory.
    pub rss: RssAnalysis,
    /// Virtual memory.
    pub vms: VmsAnalysis,
    /// Threads of the tree.
    pub threads: CountAnalysis,
    /// Open file descriptors of the tree.
    pub fds: CountAnalysis,
    /// memory_profile.py's line: the growth warning, or null.
    pub warning: Option<String>,
    /// Seconds left out of the growth rate at the start.
    pub warmup_seconds: f64,
    /// RSS growth after the warm-up: the least-squares slope, MB per minute.
    pub growth_rate_mb_per_min: f64,
    /// How well a straight line fits the RSS after the warm-up (R², 0…1).
    pub growth_fit_r2: f64,
    /// What the growth rate says, by `LeakTables::growth_*`.
    pub verdict: Verdict,
    /// The first RSS against `LeakTables::initial_*`.
    pub initial_rss_grade: Grade,
    /// The largest RSS against `LeakTables::max_*`.
    pub max_rss_grade: Grade,
    /// Everything worth a look, one sentence each (rising threads or files, RSS grades).
    pub flags: Vec<String>,
    /// The process exited before the profile ended (when, in seconds).
    pub exited_at_seconds: Option<f64>,
}
