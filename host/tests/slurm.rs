//! A sharded run on a real scheduler: a single-node Slurm cluster (munged, slurmctld, slurmd
//! on loopback, started here and stopped by pid) runs the script `perfhost slurm render`
//! wrote as a 4-task array; `perfhost slurm collect` merges the tasks' results to the demo
//! server's own count, and an array whose start has passed fails with the barrier's code.
//! Needs Debian's slurm-wlm and munge and root (to run munged as its user); CI has both.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, ChildGuard, TempDir};

/// A single-node cluster; its daemons die with it.
struct Cluster {
    conf: std::path::PathBuf,
    _daemons: Vec<ChildGuard>,
}

fn quiet(cmd: &mut Command) -> &mut Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
}

impl Cluster {
    /// `None` (with a notice) where Slurm is not installed or this is not root; in CI both
    /// are required.
    fn start(dir: &TempDir) -> Option<Cluster> {
        let missing = support::find_on_path(&["slurmctld"]).is_none()
            || support::find_on_path(&["munged"]).is_none();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if missing || !root {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the Slurm test: install slurm-wlm and munge and run as root (.ci/run does)"
            );
            eprintln!(
                "notice: Slurm (slurm-wlm, munge) or root missing: the Slurm test is skipped"
            );
            return None;
        }
        let mut daemons = Vec::new();
        // munged as the munge user, unless one answers already.
        let munge_ok = || {
            Command::new("munge")
                .arg("-n")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !munge_ok() {
            let status = Command::new("install")
                .args(["-d", "-o", "munge", "-g", "munge", "/run/munge"])
                .status()
                .unwrap();
            assert!(status.success(), "install -d /run/munge");
            daemons.push(ChildGuard(
                quiet(Command::new("setpriv").args([
                    "--reuid=munge",
                    "--regid=munge",
                    "--clear-groups",
                    "munged",
                    "--foreground",
                ]))
                .spawn()
                .expect("munged"),
            ));
            let since = Instant::now();
            while !munge_ok() {
                assert!(
                    since.elapsed() < Duration::from_secs(10),
                    "munged did not answer"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // The node as slurmd sees it (its name and memory), on loopback.
        let probe = Command::new("slurmd")
            .arg("-C")
            .output()
            .expect("slurmd -C");
        let probe = String::from_utf8_lossy(&probe.stdout);
        let field = |key: &str| {
            probe
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} in slurmd -C: {probe}"))
                .to_string()
        };
        let (node, memory) = (field("NodeName="), field("RealMemory="));
        let conf = dir.join("slurm.conf");
        let d = dir.0.display();
        // 8 CPUs configured on a 2-core machine: the 4 tasks of the array run at once, as on
        // 4 nodes (config_overrides lets slurmd accept the configured count).
        std::fs::write(
            &conf,
            format!(
                "ClusterName=perfhost\n\
                 SlurmctldHost={node}(127.0.0.1)\n\
                 SlurmctldPort={}\nSlurmdPort={}\n\
                 SlurmUser=root\nSlurmdUser=root\n\
                 AuthType=auth/munge\nCredType=cred/munge\n\
                 ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n\
                 SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n\
                 AccountingStorageType=accounting_storage/none\n\
                 JobAcctGatherType=jobacct_gather/none\nJobCompType=jobcomp/none\n\
                 CommunicationParameters=NoInAddrAny,NoCtldInAddrAny\n\
                 MailProg=/bin/true\nReturnToService=2\nSlurmdParameters=config_overrides\n\
                 StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
                 SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
                 SlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd.log\n\
                 NodeName={node} NodeAddr=127.0.0.1 CPUs=8 RealMemory={memory} State=UNKNOWN\n\
                 PartitionName=load Nodes={node} Default=YES MaxTime=INFINITE State=UP\n",
                support::free_port(),
                support::free_port()
            ),
        )
        .unwrap();
        for sub in ["state", "spool"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let conf_arg = conf.display().to_string();
        daemons.push(ChildGuard(
            quiet(Command::new("slurmctld").args(["-D", "-f", &conf_arg]))
                .spawn()
                .expect("slurmctld"),
        ));
        daemons.push(ChildGuard(
            quiet(Command::new("slurmd").args(["-D", "-f", &conf_arg, "-N", &node]))
                .spawn()
                .expect("slurmd"),
        ));
        let cluster = Cluster {
            conf,
            _daemons: daemons,
        };
        let since = Instant::now();
        loop {
            let out = cluster.command("sinfo").args(["-h", "-o", "%T"]).output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle") {
                break;
            }
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "the node did not come up: see {d}/slurmctld.log and {d}/slurmd.log"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(cluster)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SLURM_CONF", &self.conf);
        cmd
    }

    /// `sbatch --wait SCRIPT` in `cwd`, at most 3 minutes: its exit code.
    fn submit_and_wait(&self, script: &Path, cwd: &Path) -> i32 {
        let mut child = ChildGuard(
            quiet(
                self.command("sbatch")
                    .arg("--wait")
                    .arg(script)
                    .current_dir(cwd),
            )
            .spawn()
            .expect("sbatch"),
        );
        let since = Instant::now();
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                since.elapsed() < Duration::from_secs(180),
                "sbatch --wait {} took more than 3 minutes",
                script.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn render(dir: &TempDir, script: &str, results: &str, start_in: &str, run: &[&str]) {
    let mut args = vec![
        "slurm",
        "render",
        "--shards",
        "4",
        "--start-in",
        start_in,
        "--results",
        results,
        "--perfhost",
        env!("CARGO_BIN_EXE_perfhost"),
        "-o",
        script,
    ];
    args.extend_from_slice(run);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_perfhost"))
        .args(&args)
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slurm_array_runs_the_shards_and_collect_merges_them() {
    let _serial = support::serial().await;
    let dir = TempDir::new("slurm");
    let Some(cluster) = tokio::task::block_in_place(|| Cluster::start(&dir)) else {
        return;
    };
    let (_demo, addr) = support::demo_child(&[]);
    let url = format!("http://{addr}");
    let run = [
        "-H",
        &url,
        "-f",
        "burst_user",
        "-u",
        "8",
        "-r",
        "100",
        "-t",
        "3s",
    ];

    // The whole array starts at one instant, 15 s after rendering: time enough to schedule
    // four tasks and load their plugins.
    render(&dir, "run.sbatch", "results", "15s", &run);
    let code =
        tokio::task::block_in_place(|| cluster.submit_and_wait(&dir.join("run.sbatch"), &dir.0));
    let log = |i: usize| std::fs::read_to_string(dir.join(&format!("results/shard-{i}.log")));
    assert_eq!(code, 0, "sbatch --wait; shard 0 said: {:?}", log(0));
    let out = support::perfhost(
        &["slurm", "collect", "--from", "results", "--wait", "10s"],
        &dir.0,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let merged = support::read_json(&dir.join("results/merged.json"));
    assert_eq!(merged["meta"]["merged_shards"], 4);
    let verify = support::verify_requests(&merged);
    let counted = support::demo_verify_count(addr);
    assert!(verify > 0);
    assert_eq!(verify, counted, "merged /verify vs the server's count");

    // An array whose start has passed when its tasks run: each task sends nothing and exits
    // 5, and sbatch --wait returns it.
    render(&dir, "late.sbatch", "late", "0s", &run);
    std::thread::sleep(Duration::from_millis(1200));
    let code =
        tokio::task::block_in_place(|| cluster.submit_and_wait(&dir.join("late.sbatch"), &dir.0));
    assert_eq!(
        code, 5,
        "a task late for the barrier fails the array with 5"
    );
    let said = std::fs::read_to_string(dir.join("late/shard-0.log")).unwrap();
    assert!(said.contains("after --start-at"), "{said}");
    assert!(!dir.join("late/shard-0.json").exists());
    assert_eq!(
        support::demo_verify_count(addr),
        counted,
        "the late array sent nothing"
    );
}
