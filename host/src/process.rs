//! What every command that runs load needs of the process: the control loop's runtime,
//! Ctrl-C and SIGTERM as a stop, and an open-files limit that fits the users.

use perfhost_core::stop::StopHandle;

use crate::failure::Failure;

/// Passes the interrupts `signals` gets on to one run's handle (each run gets a fresh one: the
/// engine stops its handle at the end of a run).
pub fn forward_signals(signals: &StopHandle, run_stop: &StopHandle) -> tokio::task::JoinHandle<()> {
    let (signals, run_stop) = (signals.clone(), run_stop.clone());
    tokio::spawn(async move {
        signals.stopped().await;
        run_stop.interrupt();
        signals.forced().await;
        run_stop.force();
    })
}

/// The runtime of a command's control loop (users run on the engine's own worker threads).
pub fn control_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|err| Failure::usage(format_args!("cannot start the runtime: {err}")))
}

/// Ctrl-C / SIGTERM stop the run as interrupted (results are still written, exit 130); a
/// second one cancels what is still in flight at once instead of waiting for the stop timeout.
pub fn interrupt_on_signal(stop: &StopHandle) {
    let stop = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        crate::errln!("\nInterrupted: stopping users and writing results… (interrupt again to cancel in-flight requests now)");
        stop.interrupt();
        wait_for_signal().await;
        crate::errln!("\nInterrupted again: cancelling in-flight requests and writing results now");
        stop.force();
    });
}

/// Raises the open-files limit to cover one connection per user (plus slack).
pub fn raise_fd_limit(users: usize) {
    raise_fd_limit_for(users, users);
}

/// Raises the open-files limit for `room` users where the hard limit allows; warns only when
/// the `users` planned now do not fit (the web UI makes room for more than it warns about).
pub fn raise_fd_limit_for(users: usize, room: usize) {
    let fds = |users: usize| (users as u64) * 2 + 256;
    let (needed, wanted) = (fds(users), fds(room.max(users)));
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we own and pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < wanted {
            let mut raised = limit;
            raised.rlim_cur = wanted.min(limit.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    if limit.rlim_cur < needed {
        crate::errln!(
            "warning: the open-files limit ({}) is below what {users} users need ({needed}): raise it with `ulimit -n {needed}`",
            limit.rlim_cur
        );
    }
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}
