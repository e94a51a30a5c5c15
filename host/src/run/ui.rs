//! `perfhost ui` (and `perfhost run --web`): the web UI's loop. Serves the page, waits for a
//! test from its form or `POST /swarm` (or starts one at once with `--autostart`), runs it as
//! `perfhost run` would — same summary, same report files — and waits for the next, until
//! Ctrl-C or `--autoquit`.

use serde_json::json;

use crate::exit;
use crate::failure::Failure;
use crate::process::{control_runtime, forward_signals, interrupt_on_signal, raise_fd_limit_for};
use crate::run::command::run_and_report;
use crate::run::Steering;
use crate::settings::{self, RunArgs};
use crate::web::session::{FormOptions, Session, StartRequest, Test};
use perfhost_core::engine::StopHandle;
use perfhost_core::plan::{format_duration, parse_duration, Plan};

/// The CLI entry: the outcome of the last test (0 when none ran). `perfhost run --web` starts
/// its test at once (`started`), `perfhost ui` with `--autostart`.
pub fn main(mut args: RunArgs, started: bool) -> Result<u8, Failure> {
    args.web = true;
    args.autostart |= started;
    let env = |k: &str| std::env::var(k).ok();
    let base = settings::resolve(&args, &env)?;
    crate::logging::set_level(&base.log_level);
    if args.print_config || args.dry_run {
        crate::out!("{}", settings::describe(&base));
        return Ok(exit::OK);
    }
    let Some(endpoint) = base.outputs.metrics.clone() else {
        return Err(Failure::usage(
            "the web UI has no address (give --web-port)",
        ));
    };
    let runtime = control_runtime()?;
    runtime.block_on(async {
        let quit = StopHandle::default();
        interrupt_on_signal(&quit);
        // The form offers the classes of the plugins the command line names.
        let available_classes = match perfhost_core::run::load_plugins(&base).await {
            Ok((_, classes)) => classes.into_iter().map(|c| c.class.name).collect(),
            Err(err) => return Err(crate::RunError::from(err).into()),
        };
        let form = FormOptions {
            available_classes,
            scenarios: offered_scenarios(),
            defaults: defaults(&args, &base),
        };
        let (tests_tx, mut tests) = tokio::sync::mpsc::unbounded_channel::<Test>();
        let planner = {
            let args = args.clone();
            let origin = base.target.as_ref().map(|t| t.origin.clone());
            let offered = form.scenarios.clone();
            Box::new(move |request: &StartRequest| {
                check_scenario(request, &offered, args.scenario.as_deref())?;
                plan_for(&args, origin.as_ref(), request)
            })
        };
        let fits = Box::new(|plan: &Plan| {
            // A new count mid-run: the same checks as at a test's start.
            raise_fd_limit_for(plan.max_users(), plan.max_users());
            perfhost_core::run::check_memory(plan).map_err(|e| e.to_string())
        });
        let session = Session::new(planner, fits, form, endpoint.read_only, tests_tx);
        let server =
            match crate::web::serve(&endpoint, crate::web::Source::Session(session.clone())) {
                Ok(server) => server,
                Err(err) => {
                    return Err(Failure::usage(format_args!(
                        "cannot serve the web UI on {}: {err} — is another one running? Pick a free port with --web-port (0 picks one)",
                        endpoint.addr
                    ))
                    .because(&err));
                }
            };
        announce(&server.addr, &endpoint);
        if args.autostart {
            session
                .swarm(StartRequest::default())
                .map_err(Failure::usage)?;
        }
        let mut last = Ok(exit::OK);
        loop {
            let test = tokio::select! {
                test = tests.recv() => test,
                _ = quit.stopped() => None,
            };
            let Some(test) = test else { break };
            // Room for the users a new count may add mid-run, too; a warning only when the
            // users planned now would not fit.
            raise_fd_limit_for(test.plan.max_users(), test.plan.max_users().max(FD_ROOM_USERS));
            crate::errln!("== test {} ({}) ==", test.run_id, test.plan.outputs.run_name);
            let forward = forward_signals(&quit, &test.stop);
            let steering = Steering {
                board: Some(test.board.clone()),
                control: test.control.clone(),
            };
            last = match run_and_report(&test.plan, test.stop.clone(), steering).await {
                Ok((result, verdict)) => {
                    session.finish(test.run_id, Some(result), None);
                    verdict
                }
                Err(failure) => {
                    session.finish(test.run_id, None, Some(failure.message().to_string()));
                    Err(failure)
                }
            };
            forward.abort();
            if quit.is_stopping() {
                break;
            }
            if let Some(wait) = args.autoquit {
                session.close();
                crate::errln!("Quitting in {} (--autoquit)", format_duration(wait));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = quit.stopped() => {}
                }
                break;
            }
            match &last {
                // The UI goes on: the failure is the command's only if no test comes after.
                Err(failure) => crate::errln!(
                    "Test {} ended: {} — the web UI stays up for the next one (Ctrl-C quits)",
                    test.run_id,
                    failure.message().replace('\n', "; ")
                ),
                Ok(_) => crate::errln!(
                    "Test ended: the web UI stays up for the next one (Ctrl-C quits)"
                ),
            }
        }
        server.shutdown();
        last
    })
}

/// Users a test of the UI may grow to without running out of file descriptors (a count
/// beyond is still checked against memory, and the OS refuses sockets it cannot give).
const FD_ROOM_USERS: usize = 10_000;

/// The largest scenario file the web UI reads (`./scenarios/NAME.toml`).
const SCENARIO_FILE_CAP: u64 = 1 << 20;

/// The scenarios the form offers, and the only ones `POST /swarm` accepts (besides the
/// command line's own): the presets and `./scenarios/NAME.toml` files that are regular files
/// inside that folder, of at most 1 MiB.
fn offered_scenarios() -> Vec<String> {
    let mut names: Vec<String> = crate::settings::scenario::PRESETS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    let mut local: Vec<String> = std::fs::read_dir("scenarios")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry
                .file_name()
                .to_str()?
                .strip_suffix(".toml")?
                .to_string();
            (plain_name(&name) && local_scenario(&name).is_ok()).then_some(name)
        })
        .filter(|name| !names.contains(name))
        .collect();
    local.sort();
    names.extend(local);
    names
}

/// A scenario name that cannot be read as a path.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `./scenarios/NAME.toml`, when it is one the UI may read: `Ok(false)` when there is none
/// (the preset of that name is meant), `Err` when it is no regular file inside the folder or
/// is too large.
fn local_scenario(name: &str) -> Result<bool, String> {
    let path = std::path::Path::new("scenarios").join(format!("{name}.toml"));
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(false);
    };
    let inside = match (
        std::fs::canonicalize(&path),
        std::fs::canonicalize("scenarios"),
    ) {
        (Ok(file), Ok(dir)) => file.starts_with(dir),
        _ => false,
    };
    if !meta.is_file() || !inside {
        return Err(format!(
            "scenario: {} is not a regular file inside scenarios/ — the web UI reads no other",
            path.display()
        ));
    }
    if meta.len() > SCENARIO_FILE_CAP {
        return Err(format!(
            "scenario: {} is larger than 1 MiB — a scenario file is a few lines of TOML",
            path.display()
        ));
    }
    Ok(true)
}

/// `POST /swarm`'s scenario: one the form offers or the command line's own, never a path a
/// caller chooses (it could name /dev/zero, a FIFO or a file of secrets).
fn check_scenario(
    request: &StartRequest,
    offered: &[String],
    command_line: Option<&str>,
) -> Result<(), String> {
    let Some(asked) = request.scenario.as_deref() else {
        return Ok(());
    };
    if command_line == Some(asked) {
        return Ok(());
    }
    if !offered.iter().any(|o| o == asked) {
        let shown: String = asked.chars().take(64).collect();
        return Err(format!(
            "scenario: {shown:?} is not one this web UI offers — choose one of {} (a scenario file goes in ./scenarios/NAME.toml)",
            offered.join(", ")
        ));
    }
    // Checked again: the folder may have changed since the UI started.
    local_scenario(asked).map(|_| ())
}

fn announce(addr: &std::net::SocketAddr, endpoint: &perfhost_core::plan::MetricsPlan) {
    let guard = match (&endpoint.token, &endpoint.auth) {
        (Some(_), _) => " — open it once as /?token=<--web-token>; API calls send Authorization: Bearer <--web-token>",
        (None, Some(_)) => " — it asks for the --web-auth user and password",
        (None, None) => "",
    };
    crate::errln!(
        "Web UI: http://{addr}/{guard}{}",
        if endpoint.read_only {
            " (read-only: control is refused)"
        } else {
            ""
        }
    );
}

/// The form's starting values: the plan the command line resolves to (with a scenario, only
/// what the command line itself set: the scenario gives the rest).
fn defaults(args: &RunArgs, base: &Plan) -> serde_json::Value {
    let from_plan = args.scenario.is_none() && base.arrivals.is_none();
    json!({
        "users": args.users.or(from_plan.then(|| base.load.max_users())),
        "spawn_rate": args.spawn_rate.or(from_plan.then(|| base.load.spawn_rate())),
        "rate": args.rate,
        // Never the URL's password: then origin and path only (the form sends a host only
        // when it is edited, so the command line's URL, credentials and all, stays).
        "host": base.target.as_ref().map(|t| format!("{}{}", t.origin, t.base_path)),
        "run_time": args
            .run_time
            .or(if from_plan { base.stop.run_time } else { None })
            .map(format_duration),
        "user_classes": args.user_classes,
        "scenario": args.scenario,
    })
}

/// The plan of a test: the command line with the form's fields over it. With a rate, the
/// users field is the open model's most users.
fn plan_for(
    args: &RunArgs,
    base_origin: Option<&String>,
    request: &StartRequest,
) -> Result<Plan, String> {
    let base_origin = base_origin.cloned();
    let mut args = args.clone();
    if let Some(scenario) = &request.scenario {
        args.scenario = Some(scenario.clone());
    }
    if let Some(host) = &request.host {
        args.host = Some(host.clone());
    }
    if let Some(text) = &request.run_time {
        args.run_time = Some(parse_duration(text).map_err(|e| format!("run_time: {e}"))?);
    }
    if !request.user_classes.is_empty() {
        args.user_classes = request.user_classes.clone();
    }
    if let Some(version) = &request.http_version {
        args.http_version = Some(version.clone());
    }
    if let Some(rate) = &request.rate {
        args.rate = Some(rate.clone());
        args.max_users = request.users.or(args.max_users);
        args.users = None;
        args.spawn_rate = None;
    } else {
        if request.users.is_some() {
            args.users = request.users;
            args.rate = None;
        }
        if request.spawn_rate.is_some() {
            args.spawn_rate = request.spawn_rate;
        }
    }
    let mut plan =
        settings::resolve(&args, &|k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
    // API_TOKEN / API_KEY are for the command line's target: a host typed into the form (by
    // whoever may call /swarm) does not get them.
    if plan.target.as_ref().map(|t| &t.origin) != base_origin.as_ref() {
        plan.client.api_token = None;
        plan.client.api_key = None;
    }
    Ok(plan)
}
