//! Judging a target's memory samples: memory_profile.py's analysis (initial, final, min, max,
//! average, growth), with the growth rate as a least-squares slope after a warm-up window
//! rather than last minus first, threads and open files that keep rising, and the verdict by
//! the Auditor suite's tables.

use perfhost_core::plan::{Grade, LeakTables};
use perfhost_core::result::memory::{
    Analysis, CountAnalysis, MemorySample, RssAnalysis, Verdict, VmsAnalysis,
};

/// Least-squares slope (per second) and R² of `points`.
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if points.len() < 2 {
        return (0.0, 0.0);
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx == 0.0 {
        return (0.0, 0.0);
    }
    let slope = sxy / sxx;
    let r2 = if syy == 0.0 {
        1.0
    } else {
        (sxy * sxy) / (sxx * syy)
    };
    (slope, r2)
}

fn count(
    samples: &[MemorySample],
    after: &[&MemorySample],
    get: fn(&MemorySample) -> u64,
) -> CountAnalysis {
    let points: Vec<(f64, f64)> = after
        .iter()
        .map(|s| (s.elapsed_seconds, get(s) as f64))
        .collect();
    let (slope, r2) = fit(&points);
    // The rise to the peak: a process caught exiting has already closed its files, and that
    // last sample must not hide the rise before it.
    let added = match (after.first(), after.iter().map(|s| get(s)).max()) {
        (Some(a), Some(peak)) => peak as i64 - get(a) as i64,
        _ => 0,
    };
    CountAnalysis {
        initial: samples.first().map(get).unwrap_or(0),
        last: samples.last().map(get).unwrap_or(0),
        slope_per_min: slope * 60.0,
        rising: slope > 0.0 && r2 >= 0.7 && added >= 5,
    }
}

/// Analyses `samples` by `tables`; `exited_at` when the process went away.
pub fn analyse(
    samples: &[MemorySample],
    tables: &LeakTables,
    exited_at: Option<f64>,
) -> Option<Analysis> {
    let first = samples.first()?;
    let last = samples.last()?;
    let duration = last.elapsed_seconds - first.elapsed_seconds;
    let warmup = (duration * tables.warmup_share).min(tables.warmup_max_seconds);
    let after: Vec<&MemorySample> = samples
        .iter()
        .filter(|s| s.elapsed_seconds - first.elapsed_seconds >= warmup)
        .collect();
    let points: Vec<(f64, f64)> = after
        .iter()
        .map(|s| (s.elapsed_seconds, s.rss_mb))
        .collect();
    let (slope, r2) = fit(&points);
    let rate = slope * 60.0;
    let judged_span = match (after.first(), after.last()) {
        (Some(a), Some(b)) => b.elapsed_seconds - a.elapsed_seconds,
        _ => 0.0,
    };
    let verdict = if after.len() < tables.min_samples || judged_span < tables.min_seconds {
        Verdict::TooShort
    } else if rate > tables.growth_high {
        Verdict::High
    } else if rate > tables.growth_moderate {
        Verdict::Moderate
    } else {
        Verdict::Healthy
    };
    let warning = match verdict {
        Verdict::High => Some(format!("High memory growth rate: {rate:.2} MB/min")),
        Verdict::Moderate => Some(format!("Moderate memory growth: {rate:.2} MB/min")),
        _ => None,
    };
    let rss: Vec<f64> = samples.iter().map(|s| s.rss_mb).collect();
    let max = rss.iter().copied().fold(f64::MIN, f64::max);
    let min = rss.iter().copied().fold(f64::MAX, f64::min);
    // The last sample of a process caught exiting may show its files already closed: the
    // trend is fitted without it.
    let fitted = match exited_at {
        Some(_) if after.len() > 2 => &after[..after.len() - 1],
        _ => &after[..],
    };
    let threads = count(samples, fitted, |s| s.num_threads);
    let fds = count(samples, fitted, |s| s.num_fds);
    let initial_rss_grade = Grade::below(
        first.rss_mb,
        tables.initial_target,
        tables.initial_acceptable,
    );
    let max_rss_grade = Grade::below(max, tables.max_target, tables.max_acceptable);
    let mut flags = Vec::new();
    if threads.rising {
        flags.push(format!(
            "threads rise steadily: {} → {} ({:+.1} a minute)",
            threads.initial, threads.last, threads.slope_per_min
        ));
    }
    if fds.rising {
        flags.push(format!(
            "open files rise steadily: {} → {} ({:+.1} a minute) — a descriptor leak?",
            fds.initial, fds.last, fds.slope_per_min
        ));
    }
    if initial_rss_grade != Grade::Target {
        flags.push(format!(
            "initial RSS {:.0} MB is {} (target < {:.0} MB, acceptable < {:.0} MB)",
            first.rss_mb,
            initial_rss_grade.as_str(),
            tables.initial_target,
            tables.initial_acceptable
        ));
    }
    if max_rss_grade != Grade::Target {
        flags.push(format!(
            "largest RSS {max:.0} MB is {} (target < {:.0} MB, acceptable < {:.0} MB)",
            max_rss_grade.as_str(),
            tables.max_target,
            tables.max_acceptable
        ));
    }
    if let Some(at) = exited_at {
        flags.push(format!(
            "the process exited after {at:.1} s: the samples up to then are kept"
        ));
    }
    Some(Analysis {
        total_samples: samples.len(),
        duration_seconds: last.elapsed_seconds,
        rss: RssAnalysis {
            initial_mb: first.rss_mb,
            final_mb: last.rss_mb,
            min_mb: min,
            max_mb: max,
            avg_mb: rss.iter().sum::<f64>() / rss.len() as f64,
            growth_mb: last.rss_mb - first.rss_mb,
            growth_percent: if first.rss_mb > 0.0 {
                (last.rss_mb - first.rss_mb) / first.rss_mb * 100.0
            } else {
                0.0
            },
        },
        vms: VmsAnalysis {
            initial_mb: first.vms_mb,
            final_mb: last.vms_mb,
            growth_mb: last.vms_mb - first.vms_mb,
        },
        threads,
        fds,
        warning,
        warmup_seconds: warmup,
        growth_rate_mb_per_min: rate,
        growth_fit_r2: r2,
        verdict,
        initial_rss_grade,
        max_rss_grade,
        flags,
        exited_at_seconds: exited_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rss: f64, fds: u64) -> MemorySample {
        MemorySample {
            timestamp: String::new(),
            time: t,
            elapsed_seconds: t,
            rss_mb: rss,
            vms_mb: rss * 2.0,
            percent: 0.0,
            num_fds: fds,
            num_threads: 4,
            request_success: None,
            cpu_percent: 0.0,
            processes: Vec::new(),
            perfhost_rss_mb: 0.0,
            perfhost_cpu_percent: 0.0,
        }
    }

    #[test]
    fn the_slope_is_fitted_after_the_warm_up() {
        // A jump during the warm-up, then 12 MB/min: the slope sees only the 12.
        let mut samples: Vec<MemorySample> = (0..=60)
            .map(|t| sample(t as f64, 100.0 + 0.2 * t as f64, 10))
            .collect();
        samples[0].rss_mb = 20.0;
        let a = analyse(&samples, &LeakTables::default(), None).unwrap();
        assert!(
            (a.growth_rate_mb_per_min - 12.0).abs() < 0.01,
            "{}",
            a.growth_rate_mb_per_min
        );
        assert_eq!(a.verdict, Verdict::High);
        assert!(a.growth_fit_r2 > 0.99);
        assert_eq!(a.warmup_seconds, 6.0);
        assert!(a.warning.unwrap().contains("High memory growth"));
        // Flat: healthy. Short: too short to judge.
        let flat: Vec<MemorySample> = (0..=60).map(|t| sample(t as f64, 100.0, 10)).collect();
        assert_eq!(
            analyse(&flat, &LeakTables::default(), None)
                .unwrap()
                .verdict,
            Verdict::Healthy
        );
        let short: Vec<MemorySample> = (0..=8)
            .map(|t| sample(t as f64, 100.0 + t as f64, 10))
            .collect();
        assert_eq!(
            analyse(&short, &LeakTables::default(), None)
                .unwrap()
                .verdict,
            Verdict::TooShort
        );
    }

    #[test]
    fn rising_open_files_are_flagged() {
        let samples: Vec<MemorySample> = (0..=40)
            .map(|t| sample(t as f64, 100.0, 10 + t as u64))
            .collect();
        let a = analyse(&samples, &LeakTables::default(), Some(40.0)).unwrap();
        assert!(a.fds.rising);
        assert!(
            a.flags.iter().any(|f| f.contains("open files rise")),
            "{:?}",
            a.flags
        );
        assert!(a.flags.iter().any(|f| f.contains("exited after 40.0 s")));
        assert!(!a.threads.rising);
    }

    #[test]
    fn files_closed_by_the_exit_do_not_hide_the_rise() {
        // 20 files opened, then the exiting process's last sample shows them closed.
        let mut samples: Vec<MemorySample> = (0..=20)
            .map(|t| sample(t as f64 * 0.2, 10.0, 7 + t as u64))
            .collect();
        samples.push(sample(4.2, 10.0, 7));
        let a = analyse(&samples, &LeakTables::default(), Some(4.2)).unwrap();
        assert!(a.fds.rising, "{:?}", a.fds);
    }
}
