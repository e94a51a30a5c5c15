//! The target's processes, read from `/proc`: finding the server (by pid, listening port or
//! command line, with its worker processes), sampling its memory, CPU, threads and open files,
//! and judging the samples for leaks.
//!
//! `/proc` rather than a crate: the listening-socket → process mapping needs `/proc/net/tcp`
//! and the fd links anyway, and one read of `stat`, `statm` and the fd folder per process is
//! all a sample costs (docs/benchmarks.md, "Profiler").

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use perfhost_core::result::memory::{MemorySample, ProcessFigures, TargetProcess};

/// Why no (single) target process was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    #[error("no process with pid {0} — check --pid (or --profile-pid)")]
    NoPid(u32),
    #[error("no process listens on TCP port {0} here — is the server running on this machine? (or name it with --pid / --match)")]
    NoListener(u16),
    #[error("no process's command line contains `{0}` — check --match")]
    NoMatch(String),
    #[error("{what} matches several unrelated processes: {} — pick one with --pid", .candidates.iter().map(|(p, c)| format!("{p} ({c})")).collect::<Vec<_>>().join(", "))]
    Ambiguous {
        what: String,
        candidates: Vec<(u32, String)>,
    },
}

/// The command line of `pid` (arguments joined by spaces), if it exists.
pub fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if text.is_empty() {
        // Kernel threads and zombies have no command line: their name then.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let name = stat.split_once('(')?.1.rsplit_once(')')?.0;
        return Some(format!("[{name}]"));
    }
    Some(text.join(" "))
}

/// The parent pid of `pid`.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The direct children of `pid` from `/proc/PID/task/*/children` (cheap: no scan of every
/// process); `None` where the kernel lacks that file.
fn children_of(pid: u32) -> Option<Vec<u32>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).ok()?;
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    Some(out)
}

/// `pid` and every process below it.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        match children_of(out[i]) {
            Some(children) => out.extend(children),
            None => return tree_by_scan(pid),
        }
        i += 1;
    }
    out
}

/// `tree` by reading every process's parent (kernels without `task/*/children`).
fn tree_by_scan(pid: u32) -> Vec<u32> {
    let pids = all_pids();
    let parents: BTreeMap<u32, u32> = pids.iter().filter_map(|&p| Some((p, parent(p)?))).collect();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let current = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, &pp)| pp == current)
                .map(|(&p, _)| p),
        );
        i += 1;
    }
    out
}

/// Socket inodes listening on `port` (IPv4 and IPv6).
fn listening_inodes(port: u16) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXADDR:HEXPORT; state 0A is LISTEN; field 9 is the inode.
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let listens = *state == "0A";
            let on_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if listens && on_port {
                if let Ok(inode) = inode.parse() {
                    out.insert(inode);
                }
            }
        }
    }
    out
}

/// Processes holding one of `inodes` open.
fn holders(inodes: &BTreeSet<u64>) -> Vec<u32> {
    let mut out = Vec::new();
    for pid in all_pids() {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| {
                    l.to_str()?
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse::<u64>()
                        .ok()
                })
                .is_some_and(|i| inodes.contains(&i))
        });
        if holds {
            out.push(pid);
        }
    }
    out
}

/// The roots among `pids`: those whose parent is not in the set. A server and its workers
/// (uvicorn/gunicorn forks, `--reload`) all hold the listening socket; they form one tree.
fn roots(pids: &[u32]) -> Vec<u32> {
    let set: BTreeSet<u32> = pids.iter().copied().collect();
    let mut roots: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| !parent(p).is_some_and(|pp| ancestor_in(pp, &set)))
        .collect();
    roots.sort_unstable();
    roots.dedup();
    roots
}

/// Whether `pid` or one of its ancestors is in `set`.
fn ancestor_in(mut pid: u32, set: &BTreeSet<u32>) -> bool {
    for _ in 0..64 {
        if set.contains(&pid) {
            return true;
        }
        match parent(pid) {
            Some(p) if p > 1 && p != pid => pid = p,
            _ => return false,
        }
    }
    false
}

fn one_root(what: String, pids: Vec<u32>, children: bool) -> Result<TargetProcess, FindError> {
    let roots = roots(&pids);
    match roots.as_slice() {
        [root] => Ok(TargetProcess {
            pid: *root,
            command: command_line(*root).unwrap_or_default(),
            found_by: what,
            children,
        }),
        _ => Err(FindError::Ambiguous {
            what,
            candidates: roots
                .iter()
                .map(|&p| (p, command_line(p).unwrap_or_default()))
                .collect(),
        }),
    }
}

/// The process with `pid`.
pub fn by_pid(pid: u32, children: bool) -> Result<TargetProcess, FindError> {
    let command = command_line(pid).ok_or(FindError::NoPid(pid))?;
    Ok(TargetProcess {
        pid,
        command,
        found_by: "pid".into(),
        children,
    })
}

/// The process (tree) listening on TCP `port`.
pub fn by_port(port: u16, children: bool) -> Result<TargetProcess, FindError> {
    let inodes = listening_inodes(port);
    let pids = if inodes.is_empty() {
        Vec::new()
    } else {
        holders(&inodes)
    };
    if pids.is_empty() {
        return Err(FindError::NoListener(port));
    }
    one_root(format!("port {port}"), pids, children)
}

/// The process (tree) whose command line contains `text` (never perfhost itself).
pub fn by_match(text: &str, children: bool) -> Result<TargetProcess, FindError> {
    let me = std::process::id();
    let pids: Vec<u32> = all_pids()
        .into_iter()
        .filter(|&p| p != me && !ancestor_in(me, &BTreeSet::from([p])))
        .filter(|&p| command_line(p).is_some_and(|c| c.contains(text)))
        .collect();
    if pids.is_empty() {
        return Err(FindError::NoMatch(text.to_string()));
    }
    one_root(format!("match `{text}`"), pids, children)
}

// ---------- sampling ----------

/// Bytes of a page and clock ticks of a second (for `statm` and `stat`).
fn page_size() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as f64
    } else {
        4096.0
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// The machine's memory in MB.
fn total_memory_mb() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// (figures, CPU ticks so far) of one process, if it is alive.
fn read_process(pid: u32, page: f64) -> Option<(ProcessFigures, u64)> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let mut pages = statm
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    let (vms, rss) = (pages.next()?, pages.next()?);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime(11) stime(12) … num_threads(17).
    if fields.first() == Some(&"Z") {
        return None;
    }
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = num(11) + num(12);
    let num_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let mb = |pages: f64| pages * page / (1024.0 * 1024.0);
    Some((
        ProcessFigures {
            pid,
            rss_mb: mb(rss),
            vms_mb: mb(vms),
            num_threads: num(17),
            num_fds,
        },
        ticks,
    ))
}

/// Samples a target process tree (and perfhost itself) over time.
pub struct Sampler {
    target: TargetProcess,
    page: f64,
    ticks_per_s: f64,
    total_mb: f64,
    started: std::time::Instant,
    last: Option<(std::time::Instant, u64, std::time::Duration)>,
}

impl Sampler {
    pub fn new(target: TargetProcess) -> Self {
        Sampler {
            target,
            page: page_size(),
            ticks_per_s: clock_ticks(),
            total_mb: total_memory_mb(),
            started: std::time::Instant::now(),
            last: None,
        }
    }

    pub fn target(&self) -> &TargetProcess {
        &self.target
    }

    /// A sample now; `None` once the root process is gone.
    pub fn sample(&mut self, time: f64) -> Option<MemorySample> {
        let pids = if self.target.children {
            tree(self.target.pid)
        } else {
            vec![self.target.pid]
        };
        let mut processes = Vec::new();
        let mut ticks = 0;
        for pid in pids {
            if let Some((figures, t)) = read_process(pid, self.page) {
                processes.push(figures);
                ticks += t;
            } else if pid == self.target.pid {
                return None;
            }
        }
        let now = std::time::Instant::now();
        let own_cpu = perfhost_core::generator::process_cpu();
        let (cpu_percent, perfhost_cpu_percent) = match self.last {
            Some((at, t, own)) => {
                let wall = now.duration_since(at).as_secs_f64().max(1e-6);
                (
                    ticks.saturating_sub(t) as f64 / self.ticks_per_s / wall * 100.0,
                    own_cpu.saturating_sub(own).as_secs_f64() / wall * 100.0,
                )
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, ticks, own_cpu));
        let rss_mb: f64 = processes.iter().map(|p| p.rss_mb).sum();
        Some(MemorySample {
            timestamp: perfhost_core::plan::utc_timestamp(time),
            time,
            elapsed_seconds: now.duration_since(self.started).as_secs_f64(),
            rss_mb,
            vms_mb: processes.iter().map(|p| p.vms_mb).sum(),
            percent: if self.total_mb > 0.0 {
                rss_mb / self.total_mb * 100.0
            } else {
                0.0
            },
            num_fds: processes.iter().map(|p| p.num_fds).sum(),
            num_threads: processes.iter().map(|p| p.num_threads).sum(),
            request_success: None,
            cpu_percent,
            processes,
            perfhost_rss_mb: perfhost_core::generator::rss_kib() as f64 / 1024.0,
            perfhost_cpu_percent,
        })
    }
}

/// Whether `path` names the process (a cheap liveness check).
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
