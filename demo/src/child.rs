//! The built-in demo server as a child process: the target of a run that names none. A child
//! (not a task in this process) so that the generator's CPU and memory figures stay its own.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Why the demo child could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoChildError {
    #[error("cannot find the perfhost executable: {0}")]
    Executable(std::io::Error),
    #[error("cannot start it: {0}")]
    Spawn(std::io::Error),
    #[error("it printed no address (got `{0}`)")]
    NoAddress(String),
}

/// The demo server as a child process; killed and reaped on drop.
pub struct DemoChild {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl DemoChild {
    /// Starts `perfhost demo-server` (this executable) on a free loopback port.
    pub fn start() -> Result<Self, DemoChildError> {
        let exe = std::env::current_exe().map_err(DemoChildError::Executable)?;
        Self::start_with(&exe)
    }

    /// Starts `EXE demo-server` on a free loopback port.
    pub fn start_with(exe: &std::path::Path) -> Result<Self, DemoChildError> {
        let mut cmd = Command::new(exe);
        cmd.args(["demo-server", "--bind", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // If perfhost dies without cleaning up (SIGKILL), the kernel ends the child too.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: the closure runs in the forked child before exec and only calls prctl,
            // which is async-signal-safe; it touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(DemoChildError::Spawn)?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(DemoChildError::NoAddress(String::new()));
        };
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(str::to_string);
        match (read, url) {
            (Ok(_), Some(url)) => Ok(DemoChild { child, url }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(DemoChildError::NoAddress(line.trim().to_string()))
            }
        }
    }
}

impl Drop for DemoChild {
    fn drop(&mut self) {
        // SIGTERM first so it shuts down cleanly; then make sure.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
