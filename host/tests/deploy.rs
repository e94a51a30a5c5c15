//! Rendered scale-out: `perfhost k8s render` manifests against golden files, through the
//! typed resources and back, against the Kubernetes schemas (`kubernetes-validate --strict`)
//! and the enumerated values the schemas leave as strings; the render's refusals; `perfhost
//! slurm render`'s script; `perfhost k8s collect` waiting on a folder real shards write to;
//! the Dockerfile through hadolint.

use std::path::{Path, PathBuf};
use std::process::Command;

use perfhost::scale_out::k8s::{self, Resource};

use crate::support::{self, Mode, RecordingServer, TempDir};

const START: &str = "2026-12-01T10:00:00Z";

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/expected")
        .join(name)
}

/// Compares with a golden file; `PERFHOST_BLESS=1` rewrites it instead.
fn check_golden(name: &str, text: &str) {
    let path = golden(name);
    if std::env::var_os("PERFHOST_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (PERFHOST_BLESS=1 writes it)", path.display()));
    assert_eq!(
        text, want,
        "{name} differs from the golden file (PERFHOST_BLESS=1 rewrites it)"
    );
}

/// perfhost in `cwd`, with none of this shell's settings (render must not depend on them).
fn perfhost(args: &[&str], cwd: &Path) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_perfhost"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("PERFHOST_") || key.starts_with("LOCUST_") || key == "LOAD_TEST_HOST" {
            cmd.env_remove(key);
        }
    }
    // Rendered as if five minutes before START: the same file every time.
    let now = perfhost_core::plan::parse_rfc3339(START).unwrap() - 300.0;
    cmd.env("SOURCE_DATE_EPOCH", format!("{now}"));
    cmd.args(args).current_dir(cwd).output().unwrap()
}

fn render_k8s(dir: &TempDir, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "k8s",
        "render",
        "--shards",
        "8",
        "--image",
        "registry.example/perfhost:0.3.0",
        "--namespace",
        "load",
        "--start-at",
        START,
        "--env-from-secret",
        "auditor-token",
    ];
    args.extend_from_slice(extra);
    perfhost(&args, &dir.0)
}

/// The first container's args of a Job's pods.
fn container_args(job: &k8s_openapi::api::batch::v1::Job) -> Vec<String> {
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers[0].args.clone().unwrap()
}

/// Where a tool the CI installs is: on PATH or in the CI's tool folder; required in CI.
fn tool(name: &str) -> Option<PathBuf> {
    let found = support::find_on_path(&[name]).or_else(|| {
        let home = std::env::var_os("HOME")?;
        let p = Path::new(&home)
            .join(".cache/perfhost-tools/deploy-venv/bin")
            .join(name);
        p.is_file().then_some(p)
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have {name} (.ci/run installs it from PyPI)"
        );
        eprintln!("notice: {name} not found (pip install it): that check is skipped");
    }
    found
}

#[test]
fn the_rendered_job_matches_its_golden_file_and_the_kubernetes_schemas() {
    let dir = TempDir::new("k8s-render");
    std::fs::write(dir.join("questions.csv"), "question\nIst das rechtens?\n").unwrap();
    let out = render_k8s(
        &dir,
        &[
            "-H",
            "http://auditor.load.svc:8000",
            "-u",
            "4000",
            "-r",
            "200",
            "-t",
            "10m",
            "--data",
            "questions=questions.csv:unique",
            "--threshold",
            "p95 < 500ms",
            "--run-name",
            "2026-12-01",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    check_golden("k8s-job.yaml", &text);

    // Through the typed resources and back: nothing lost, nothing added.
    let resources = k8s::from_yaml(&text).unwrap();
    assert_eq!(
        k8s::to_yaml(&resources).unwrap().trim_end(),
        text.trim_end()
    );
    let job = resources
        .iter()
        .find_map(|r| match r {
            Resource::Job(j) if j.metadata.name.as_deref() == Some("perfhost-2026-12-01") => {
                Some(j)
            }
            _ => None,
        })
        .expect("the shard Job");
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((spec.completions, spec.parallelism), (Some(8), Some(8)));
    assert_eq!(spec.backoff_limit, Some(0));
    let rule = &spec.pod_failure_policy.as_ref().unwrap().rules[0];
    assert_eq!(rule.action, "FailJob");
    assert_eq!(rule.on_exit_codes.as_ref().unwrap().values, vec![5]);
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let env = pod.containers[0].env.as_ref().unwrap();
    assert!(env
        .iter()
        .any(|e| e.name == "PERFHOST_SHARD_COUNT" && e.value.as_deref() == Some("8")));
    // 4000 users over 8 shards: 500 each, sized from the plan.
    let requests = pod.containers[0]
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap();
    assert_eq!(requests["cpu"].0, "750m");
    let config_map = resources
        .iter()
        .find_map(|r| match r {
            Resource::ConfigMap(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        config_map.data.as_ref().unwrap()["questions.csv"],
        "question\nIst das rechtens?\n"
    );

    let file = dir.join("job.yaml");
    std::fs::write(&file, &text).unwrap();
    k8s::check_values(&resources).unwrap();
    if let Some(validate) = tool("kubernetes-validate") {
        let out = Command::new(validate)
            .args(["--strict", "--kubernetes-version", "1.33.0"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubernetes-validate --strict: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The schemas take any string for completionMode; the value check does not.
    let wrong =
        k8s::from_yaml(&text.replace("completionMode: Indexed", "completionMode: Index")).unwrap();
    let err = k8s::check_values(&wrong).unwrap_err();
    assert!(err.contains("completionMode `Index`"), "{err}");
    let wrong = k8s::from_yaml(&text.replace("action: FailJob", "action: Fail")).unwrap();
    assert!(k8s::check_values(&wrong).unwrap_err().contains("action"));
    let wrong =
        k8s::from_yaml(&text.replacen("restartPolicy: Never", "restartPolicy: Always", 1)).unwrap();
    assert!(k8s::check_values(&wrong)
        .unwrap_err()
        .contains("restartPolicy"));
}

/// Values a YAML 1.1 reader (kubectl, PyYAML) would retype never reach the YAML bare.
#[test]
fn values_kubectl_would_retype_are_never_written_bare() {
    let dir = TempDir::new("k8s-yaml11");
    std::fs::write(dir.join("on"), "yes").unwrap();
    let out = render_k8s(
        &dir,
        &[
            "--name",
            "on",
            "-H",
            "http://svc:80",
            "-u",
            "2",
            "--run-name",
            "no",
            "--data",
            "flag=on",
            "--config-value",
            "pw=a$(HOME)b",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    let resources = k8s::from_yaml(&text).unwrap();
    let Some(Resource::Job(job)) = resources.get(2) else {
        panic!("the shard Job third");
    };
    assert_eq!(job.metadata.name.as_deref(), Some("perfhost-on"));
    let args = container_args(job);
    assert!(args.contains(&"--run-name=no".to_string()), "{args:?}");
    // Kubernetes would expand $(HOME): written $$ so the shard gets the user's `$`.
    assert!(
        args.contains(&"--config-value=pw=a$$(HOME)b".to_string()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--data=flag=/etc/perfhost/files/file-on".to_string()),
        "{args:?}"
    );
    let Some(Resource::ConfigMap(files)) = resources.first() else {
        panic!("a ConfigMap first");
    };
    // A file whose whole text is `yes` goes to binaryData, where it is base64.
    assert_eq!(files.binary_data.as_ref().unwrap()["file-on"].0, b"yes");
    if let Some(validate) = tool("kubernetes-validate") {
        let file = dir.join("job.yaml");
        std::fs::write(&file, &text).unwrap();
        let out = Command::new(validate)
            .args(["--strict", "--kubernetes-version", "1.33.0"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn a_real_plugin_ships_byte_for_byte_and_large_files_need_a_claim() {
    let dir = TempDir::new("k8s-plugin");
    let plugin = support::fixture("http_get");
    let out = render_k8s(&dir, &["-H", "http://svc:80", "-f", &plugin, "-u", "10"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resources = k8s::from_yaml(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let Some(Resource::ConfigMap(files)) = resources.first() else {
        panic!("a ConfigMap first: {resources:?}");
    };
    let shipped = &files.binary_data.as_ref().unwrap()["http_get.wasm"];
    assert_eq!(shipped.0, std::fs::read(&plugin).unwrap());
    let Some(Resource::Job(job)) = resources.get(2) else {
        panic!("the shard Job third");
    };
    let args = container_args(job);
    assert!(
        args.contains(&"--plugin=/etc/perfhost/files/http_get.wasm".to_string()),
        "{args:?}"
    );

    // More than a ConfigMap holds: one line that says what to do.
    std::fs::write(dir.join("big.csv"), "q\n".repeat(600_000)).unwrap();
    let out = render_k8s(&dir, &["-H", "http://svc:80", "--data", "q=big.csv"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("1 MiB") && stderr.contains("--files-claim") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let out = render_k8s(
        &dir,
        &[
            "--files-claim",
            "perfhost-files",
            "-H",
            "http://svc:80",
            "--data",
            "q=big.csv",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("claimName: perfhost-files") && !text.contains("kind: ConfigMap"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("big.csv -> big.csv"));
}

#[test]
fn render_refuses_what_a_shard_cannot_run_in_one_line() {
    let dir = TempDir::new("k8s-refuse");
    for (extra, says) in [
        (&["-u", "10"][..], "give the target with -H"),
        (
            &["-H", "http://svc", "--json-file", "x.json"][..],
            "--json-file: every shard sets its own",
        ),
        (
            &["-H", "http://svc", "-f", "missing.wasm"][..],
            "missing.wasm: no such file",
        ),
        (&["-H", "http://svc", "-t", "soon"][..], "soon"),
        (
            &["--results-size", "lots", "-H", "http://svc"][..],
            "--results-size `lots`",
        ),
        (
            &["--results-claim", "Load Test", "-H", "http://svc"][..],
            "--results-claim `Load Test`",
        ),
    ] {
        let out = render_k8s(&dir, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(says) && stderr.trim().lines().count() == 1,
            "{extra:?}: {stderr}"
        );
    }
    let out = perfhost(
        &[
            "k8s",
            "render",
            "--shards",
            "0",
            "--image",
            "x",
            "-H",
            "http://svc",
        ],
        &dir.0,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shards: give 1 to 4096"));
    // A start that has passed, and a target only this shell's environment names.
    let render = |args: &[&str]| {
        let mut all = vec!["k8s", "render", "--shards", "2", "--image", "x"];
        all.extend_from_slice(args);
        perfhost(&all, &dir.0)
    };
    let out = render(&["--start-at", "2020-01-01T00:00:00Z", "-H", "http://svc"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("has passed"));
    let out = Command::new(env!("CARGO_BIN_EXE_perfhost"))
        .args(["k8s", "render", "--shards", "2", "--image", "x", "-u", "4"])
        .env("LOAD_TEST_HOST", "http://svc")
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("give the target with -H"),
        "the shards do not see LOAD_TEST_HOST"
    );
    // A settings file here that the pods would not see, and a plugin only it names.
    std::fs::write(dir.join("perfhost.toml"), "users = 5\n").unwrap();
    let out = render(&["-H", "http://svc"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("name it with --config perfhost.toml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plugin = support::fixture("http_get");
    std::fs::write(
        dir.join("perfhost.toml"),
        format!("plugins = [{plugin:?}]\n"),
    )
    .unwrap();
    let out = render(&["-H", "http://svc", "--config", "perfhost.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is named in a settings or scenario file"),
        "{stderr}"
    );
}

#[test]
fn the_slurm_script_matches_its_golden_file() {
    let dir = TempDir::new("slurm-render");
    std::fs::write(dir.join("rows.csv"), "a\n1\n").unwrap();
    let out = perfhost(
        &[
            "slurm",
            "render",
            "--shards",
            "16",
            "--start-at",
            START,
            "--perfhost",
            "/opt/perfhost/bin/perfhost",
            "--results",
            "shared/results",
            "--partition",
            "load",
            "-H",
            "http://auditor:8000",
            "-u",
            "16000",
            "-t",
            "10m",
            "--data",
            "rows=rows.csv",
            "--config-value",
            "note=it's ok",
        ],
        &dir.0,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.join("shared/results").is_dir(),
        "render creates the results folder"
    );
    let root = std::fs::canonicalize(&dir.0).unwrap().display().to_string();
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace(&root, "$DIR");
    check_golden("slurm.sbatch", &text);
    // bash reads it: the quoting holds.
    let check = Command::new("bash")
        .arg("-n")
        .arg("-c")
        .arg(&text)
        .status()
        .unwrap();
    assert!(check.success());
}

/// The shared-volume route on a folder: two real shards write into it while `collect --wait`
/// waits; the merged count is the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_waits_for_every_shard_in_the_folder() {
    let _serial = support::serial().await;
    let server = RecordingServer::start(Mode::Auditor).await;
    let dir = TempDir::new("k8s-collect");
    let url = server.url();
    let start = perfhost_core::plan::utc_timestamp((perfhost_core::stats::unix_now() + 3.0).ceil());
    let collector = tokio::process::Command::new(env!("CARGO_BIN_EXE_perfhost"))
        .args(["k8s", "collect", "--from", "results", "--wait", "60s"])
        .current_dir(&dir.0)
        .kill_on_drop(true)
        .output();
    let collector = tokio::spawn(collector);
    let shards: Vec<_> = (0..2)
        .map(|i| {
            let index = format!("{i}");
            tokio::process::Command::new(env!("CARGO_BIN_EXE_perfhost"))
                .args([
                    "run",
                    "-H",
                    &url,
                    "-f",
                    "burst_user",
                    "-u",
                    "4",
                    "-r",
                    "100",
                    "-t",
                    "2s",
                ])
                .args(["--shard", "auto", "--start-at", &start, "--only-summary"])
                .args(["--json-file", &format!("results/shard-{i}.json")])
                .env("JOB_COMPLETION_INDEX", &index)
                .env("PERFHOST_SHARD_COUNT", "2")
                .current_dir(&dir.0)
                .kill_on_drop(true)
                .output()
        })
        .collect();
    for shard in shards {
        let out = shard.await.unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(70), collector)
        .await
        .expect("collect finished")
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Waiting for shard results"), "{stderr}");
    let merged = support::read_json(&dir.join("results/merged.json"));
    assert_eq!(merged["meta"]["merged_shards"], 2);
    assert_eq!(
        merged["total"]["requests"].as_u64().unwrap(),
        server.seen().len() as u64
    );

    // A folder short of a shard, after the wait: the missing one is named.
    std::fs::remove_file(dir.join("results/shard-1.json")).unwrap();
    let out = perfhost(
        &["k8s", "collect", "--from", "results", "--wait", "1s"],
        &dir.0,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("shard 1/2 is missing"), "{stderr}");
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let Some(hadolint) = tool("hadolint") else {
        return;
    };
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile");
    let out = Command::new(hadolint).arg(&dockerfile).output().unwrap();
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--workers N`, which rendered shards carry, is the plan's worker count.
#[test]
fn workers_given_on_the_command_line_are_the_plans() {
    let dir = TempDir::new("workers");
    let out = perfhost(&["run", "--workers", "3", "--print-config"], &dir.0);
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("workers"))
        .unwrap_or_else(|| panic!("a workers row: {text}"));
    assert!(row.contains('3') && row.contains("cli"), "{row}");
    let out = perfhost(&["run", "--workers", "0", "--print-config"], &dir.0);
    assert_eq!(out.status.code(), Some(2));
}

// Round 2 of the hardening (issue 30, item 6): secrets in rendered jobs.

const PASSWORD: &str = "PASS-render-5e1";
const WEB_TOKEN: &str = "TOKEN-render-77";

/// A target on 127.0.0.1 that answers 200 to every request and keeps each request's
/// `Authorization` header (reached only through a URL the shards read from a secret).
struct AuthProbe {
    url_with_password: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AuthProbe {
    /// The run flags of both secret tests: this probe's URL with its password, a web token,
    /// three plain GETs by one user.
    fn run_flags(&self) -> Vec<String> {
        [
            "-H",
            self.url_with_password.as_str(),
            "--web-token",
            WEB_TOKEN,
            "-f",
            "http_get",
            "-u",
            "1",
            "-n",
            "3",
        ]
        .map(String::from)
        .to_vec()
    }

    async fn start() -> AuthProbe {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                            buf.drain(..end + 4);
                            let auth = head
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("authorization")
                                        .then(|| v.trim().to_string())
                                })
                                .unwrap_or_default();
                            log.lock().unwrap().push(auth);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        AuthProbe {
            url_with_password: format!("http://loader:{PASSWORD}@{addr}"),
            seen,
            task,
        }
    }

    /// Requests seen.
    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Whether every request carried the URL's user and password as Basic auth: the whole
    /// secret reached the shard, not only the address.
    fn all_sent_basic_auth(&self) -> bool {
        use base64::Engine as _;
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("loader:{PASSWORD}"))
        );
        self.seen.lock().unwrap().iter().all(|a| *a == want)
    }

    /// The shard run `out` exited 0 after at least 3 requests here, each with the secret's
    /// Basic credentials.
    fn assert_reached_by(&self, out: &std::process::Output) {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(self.requests() >= 3, "{} requests", self.requests());
        assert!(
            self.all_sent_basic_auth(),
            "{:?}",
            self.seen.lock().unwrap()
        );
    }
}

impl Drop for AuthProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// perfhost in `cwd` with `env` and none of this shell's settings, at the real time (the
/// shards run now).
async fn perfhost_now(
    args: Vec<String>,
    cwd: &Path,
    env: Vec<(String, String)>,
) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_perfhost"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("PERFHOST_")
            || key.starts_with("LOCUST_")
            || key.starts_with("SLURM_")
            || key == "LOAD_TEST_HOST"
            || key == "JOB_COMPLETION_INDEX"
            || key == "SOURCE_DATE_EPOCH"
        {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .args(args)
        .envs(env)
        .current_dir(cwd)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(std::time::Duration::from_secs(90), out)
        .await
        .expect("perfhost ends within 90 s")
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `k8s render` with a password in -H's URL and --web-token: neither is in the manifests (nor
/// in the render's own messages); the shard pod reads both from a Secret through
/// `secretKeyRef`, and `--secret-file` writes that Secret 0600. The shard, run as the pod
/// would run it (its args, which name no target, and the Secret's keys as its environment),
/// reaches the target. A password in a `--config` file (shipped in the ConfigMap) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8s_secrets_go_to_a_secret_never_to_the_manifests() {
    let probe = AuthProbe::start().await;
    let dir = TempDir::new("k8s-secrets");
    let render = |secret_file: bool| {
        let mut args: Vec<String> = [
            "k8s",
            "render",
            "--shards",
            "1",
            "--image",
            "registry.example/perfhost:0.3.0",
            "--name",
            "secret-run",
            "--start-in",
            "15s",
        ]
        .map(String::from)
        .to_vec();
        if secret_file {
            args.extend(["--secret-file".into(), "secret.yaml".into()]);
        }
        args.extend(probe.run_flags());
        perfhost_now(args, &dir.0, vec![])
    };
    let out = render(false).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(PASSWORD) && !text.contains(WEB_TOKEN),
            "{text}"
        );
    }
    assert!(
        stderr.contains("kubectl create secret generic secret-run-secrets"),
        "{stderr}"
    );
    assert!(!dir.join("secret.yaml").exists());

    let out = render(true).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let manifests = String::from_utf8(out.stdout).unwrap();
    assert!(!manifests.contains(PASSWORD) && !manifests.contains(WEB_TOKEN));
    assert!(
        !stderr.contains(PASSWORD) && !stderr.contains(WEB_TOKEN),
        "{stderr}"
    );
    assert_eq!(mode(&dir.join("secret.yaml")), 0o600);
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("secret.yaml")).unwrap()).unwrap();
    assert_eq!(secret.metadata.name.as_deref(), Some("secret-run-secrets"));
    let data = secret.string_data.unwrap();
    assert_eq!(data["PERFHOST_HOST"], probe.url_with_password);
    assert_eq!(data["PERFHOST_WEB_TOKEN"], WEB_TOKEN);

    let resources = k8s::from_yaml(&manifests).unwrap();
    let job = resources
        .iter()
        .find_map(|r| match r {
            Resource::Job(j) if j.metadata.name.as_deref() == Some("secret-run") => Some(j),
            _ => None,
        })
        .expect("the shard Job");
    let args = container_args(job);
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--host") || a.starts_with("--web-token")),
        "{args:?}"
    );
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let env = pod.containers[0].env.clone().unwrap();
    for key in ["PERFHOST_HOST", "PERFHOST_WEB_TOKEN"] {
        let var = env.iter().find(|e| e.name == key).expect(key);
        let from = var
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secretKeyRef");
        assert_eq!(
            (from.name.as_str(), from.key.as_str()),
            ("secret-run-secrets", key)
        );
        assert!(var.value.is_none());
    }
    // The shard as its pod runs it: Kubernetes' $(VAR) expanded, the results claim here.
    let results = dir.join("results");
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("$(PERFHOST_SHARD_INDEX)", "0")
                .replace("$$", "$")
                .replace(k8s::RESULTS_DIR, &results.display().to_string())
        })
        .collect();
    let mut env: Vec<(String, String)> = data.into_iter().collect();
    env.extend([
        ("JOB_COMPLETION_INDEX".into(), "0".into()),
        ("PERFHOST_SHARD_COUNT".into(), "1".into()),
    ]);
    let out = perfhost_now(args, &dir.0, env).await;
    // The flags name no target: the shard found it in the secret alone.
    probe.assert_reached_by(&out);

    if let Some(validate) = tool("kubernetes-validate") {
        std::fs::write(dir.join("job.yaml"), &manifests).unwrap();
        let out = Command::new(validate)
            .args(["--strict", "--kubernetes-version", "1.33.0"])
            .arg(dir.join("job.yaml"))
            .arg(dir.join("secret.yaml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubernetes-validate: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The password in a settings file would be shipped in the ConfigMap: refused.
    std::fs::write(
        dir.join("perfhost.toml"),
        format!("host = \"{}\"\n", probe.url_with_password),
    )
    .unwrap();
    let out = perfhost(
        &[
            "k8s",
            "render",
            "--shards",
            "2",
            "--image",
            "registry.example/perfhost:0.3.0",
            "--config",
            "perfhost.toml",
        ],
        &dir.0,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("carries a password") && stderr.contains("-H"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD) && out.stdout.is_empty());
}

/// `slurm render` with a password in -H's URL and --web-token: the sbatch script holds
/// neither; they are in `secrets.env` (mode 0600) beside the results, which the script
/// sources. The script, run as an array task would run it, reaches the target (named only in
/// that file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_secrets_go_to_a_private_file_the_script_reads() {
    let probe = AuthProbe::start().await;
    let dir = TempDir::new("slurm-secrets");
    let args: Vec<String> = [
        "slurm",
        "render",
        "--shards",
        "1",
        "--start-in",
        "15s",
        "--perfhost",
        env!("CARGO_BIN_EXE_perfhost"),
        "--results",
        "shared/results",
        "-o",
        "run.sbatch",
    ]
    .map(String::from)
    .to_vec();
    let args = [args, probe.run_flags()].concat();
    let out = perfhost_now(args, &dir.0, vec![]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains(PASSWORD) && !stderr.contains(WEB_TOKEN),
        "{stderr}"
    );
    let script = std::fs::read_to_string(dir.join("run.sbatch")).unwrap();
    assert!(
        !script.contains(PASSWORD) && !script.contains(WEB_TOKEN),
        "{script}"
    );
    assert!(!script.contains("--host"), "{script}");
    let secrets = dir.join("shared/results/secrets.env");
    assert_eq!(mode(&secrets), 0o600);
    let text = std::fs::read_to_string(&secrets).unwrap();
    assert!(
        text.contains(PASSWORD) && text.contains(WEB_TOKEN),
        "{text}"
    );

    // Array task 0 of 1, as sbatch runs it.
    let run = tokio::process::Command::new("bash")
        .arg("run.sbatch")
        .env("SLURM_ARRAY_TASK_ID", "0")
        .env("SLURM_ARRAY_TASK_COUNT", "1")
        .env_remove("PERFHOST_HOST")
        .env_remove("PERFHOST_WEB_TOKEN")
        .env_remove("LOAD_TEST_HOST")
        .current_dir(&dir.0)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(90), run)
        .await
        .expect("the task ends within 90 s")
        .unwrap();
    // The flags name no target: the shard found it in the secret alone.
    probe.assert_reached_by(&out);
    assert!(dir.join("shared/results/shard-0.json").is_file());
}
