//! Test helpers: a recording HTTP server on 127.0.0.1 that answers like the Auditor API, and
//! plans that point perfhost at it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use perfhost::settings::RunArgs;
use perfhost_core::engine::StopHandle;
use perfhost_core::plan::Plan;
use perfhost_core::result::RunResult;
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body: String,
    /// The client's port: one per connection (keep-alive ⇒ one per user).
    pub peer_port: u16,
    /// When the request arrived, relative to the server's start.
    pub at: Duration,
    /// The request's `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// How the recording server answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Valid Auditor answers.
    Auditor,
    /// 500 on /verify.
    FailVerify,
    /// Never answers /verify (a stall).
    Stall,
    /// 404 for every path: a service that is not the Auditor API.
    NotFound,
    /// Every answer takes `service`; in the last `stall` of every `every` the server stops
    /// answering, and what arrives then waits for the stall to end (a GC pause).
    PeriodicStall {
        every: Duration,
        stall: Duration,
        service: Duration,
    },
}

pub struct RecordingServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: tokio::sync::watch::Sender<bool>,
}

const VERIFY_OK: &str = r#"{"verification_id":"v-1","timestamp":"2026-01-01T00:00:00Z","duration_ms":1.0,"answer":{"text":"x","total_sentences":1,"has_citations":true,"citations":["§ 823 BGB"]},"sources":{"count":1,"fingerprints":["ab"]},"verification":{"verified_sentences":1,"total_sentences":1,"verification_rate":1.0},"confidence":{"score":0.8,"verified":true,"trust_label":"high","components":{"semantic_similarity":0.8,"retrieval_quality":0.8,"citation_presence":1.0,"coverage":1.0}},"metadata":{}}"#;

impl RecordingServer {
    pub async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let log = seen.clone();
        let epoch = std::time::Instant::now();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok((s, peer)) => (s, peer.port()), Err(_) => continue },
                    _ = stopped.changed() => return,
                };
                let (stream, peer_port) = stream;
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let at = epoch.elapsed();
                            let method = req.method().to_string();
                            let path = req
                                .uri()
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default();
                            let authorization = req
                                .headers()
                                .get(hyper::header::AUTHORIZATION)
                                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            log.lock().unwrap().push(Seen {
                                method,
                                path: path.clone(),
                                body: String::from_utf8_lossy(&body).into_owned(),
                                peer_port,
                                at,
                                authorization,
                            });
                            if let Mode::PeriodicStall {
                                every,
                                stall,
                                service,
                            } = mode
                            {
                                let phase =
                                    Duration::from_nanos((at.as_nanos() % every.as_nanos()) as u64);
                                if phase >= every - stall {
                                    tokio::time::sleep(every - phase).await;
                                }
                                tokio::time::sleep(service).await;
                            }
                            let (status, text) = match (mode, path.split('?').next().unwrap_or(""))
                            {
                                (Mode::Stall, "/verify") => {
                                    tokio::time::sleep(Duration::from_secs(3600)).await;
                                    (200, String::new())
                                }
                                (Mode::NotFound, _) => {
                                    (404, r#"{"detail":"Not Found"}"#.to_string())
                                }
                                (Mode::FailVerify, "/verify") => (
                                    500,
                                    r#"{"error":"internal_error","detail":"boom"}"#.to_string(),
                                ),
                                (_, "/verify") => (200, VERIFY_OK.to_string()),
                                (_, "/health") => {
                                    (200, r#"{"status":"healthy","version":"0.1.0"}"#.to_string())
                                }
                                (_, "/metrics") => {
                                    (200, "auditor_verify_requests_total 1\n".to_string())
                                }
                                _ => (404, r#"{"detail":"Not Found"}"#.to_string()),
                            };
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(text)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RecordingServer { addr, seen, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A plan against `url` with the given plugins; tweak fields after.
pub fn plan(url: &str, plugins: &[&str]) -> Plan {
    let args = RunArgs {
        host: Some(url.to_string()),
        plugins: plugins.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    };
    let mut plan = perfhost::settings::resolve_args(&args).expect("valid plan");
    plan.seed = 42;
    plan.stop.stop_timeout = Duration::from_secs(2);
    plan
}

/// Path of a plugin built from `plugins/` (fixtures included).
pub fn fixture(name: &str) -> String {
    format!("{}/{name}.wasm", perfhost_core::plugin::builtin::PLUGIN_DIR)
}

/// Runs a plan to its end, bounded by a generous outer timeout.
pub async fn run(plan: &Plan) -> RunResult {
    let fut = perfhost::run(plan, StopHandle::default(), |_, _| {});
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("run ended in time")
        .expect("run started")
}

pub fn task_error<'a>(
    result: &'a RunResult,
    needle: &str,
) -> Option<&'a perfhost_core::stats::TaskErrorGroup> {
    result
        .task_errors
        .iter()
        .find(|e| e.message.contains(needle))
}

/// Runs the perfhost binary with `args` in `cwd` (off the async runtime) and returns its output.
pub async fn perfhost(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let cwd = cwd.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_perfhost"))
            .current_dir(cwd)
            .args(args)
            .output()
            .expect("perfhost runs")
    })
    .await
    .expect("the blocking task ends")
}

/// The perfhost binary with `args` in `dir`: its exit code and its stdout and stderr as one
/// text.
pub async fn perfhost_text(args: &[&str], dir: &std::path::Path) -> (Option<i32>, String) {
    let out = perfhost(args, dir).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A demo server child with `args`: (its guard, url).
pub fn demo_url(args: &[&str]) -> (ChildGuard, String) {
    let (guard, addr) = demo_child(args);
    (guard, format!("http://{addr}"))
}

/// Tests whose assertions depend on timing take this lock, so they do not run beside each
/// other on the 2 cores (`cargo test` runs tests in parallel).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Every key of `value` is documented in `schema` (a JSON Schema's `properties`), and every
/// key it calls required is there — recursively, arrays through their first item.
pub fn check_schema(value: &serde_json::Value, schema: &serde_json::Value, at: &str) {
    if let (Some(object), Some(props)) = (value.as_object(), schema["properties"].as_object()) {
        for key in object.keys() {
            assert!(props.contains_key(key), "{at}.{key} is not documented");
        }
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap();
            assert!(
                object.contains_key(key),
                "{at}.{key} is documented as required but missing"
            );
        }
        for (k, v) in object {
            check_schema(v, &props[k], &format!("{at}.{k}"));
        }
    }
    if let Some(first) = value.as_array().and_then(|a| a.first()) {
        if schema["items"].is_object() {
            check_schema(first, &schema["items"], &format!("{at}[0]"));
        }
    }
}

/// Kills and reaps a child process however the test ends (`.0` is the child, e.g. for its pid).
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `perfhost demo-server --bind 127.0.0.1:0 <args>` and returns it with the address
/// from its first line (waited for at most 10 s).
pub fn demo_child(args: &[&str]) -> (ChildGuard, SocketAddr) {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_perfhost"))
        .args(["demo-server", "--bind", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn perfhost");
    let stdout = child.stdout.take().expect("stdout");
    let guard = ChildGuard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the listening line");
    let addr = line
        .trim()
        .strip_prefix("perfhost demo-server listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (guard, addr.parse().expect("an address"))
}

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "perfhost-test-{name}-{}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn join(&self, p: &str) -> std::path::PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The first of `names` found on PATH.
pub fn find_on_path(names: &[&str]) -> Option<std::path::PathBuf> {
    names.iter().find_map(|name| {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .find(|d| d.join(name).is_file())
            .map(|dir| dir.join(name))
    })
}

/// One HTTP/1.0 exchange with 127.0.0.1:`port` (the body ends with the connection): the
/// status, the headers as text (lower case), and the body; `None` when nothing answers.
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(stream, "{head}\r\n{body}").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((status, head.to_ascii_lowercase(), body.to_string()))
}

/// [`try_http`] that must get an answer.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    try_http(port, method, path, headers, body)
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP answer from port {port}"))
}

/// The folder `perfhost local` wrote under `cwd`: `reports/<run-name>_local_<time>/`.
pub fn local_run_dir(cwd: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(cwd.join("reports"))
        .expect("reports/")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().contains("_local_"))
        .expect("reports/<run>_local_<time>/")
        .path()
}

/// A JSON file, parsed.
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `/verify…` requests a result counted, over all its rows.
pub fn verify_requests(result: &serde_json::Value) -> u64 {
    result["stats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"].as_str().unwrap().starts_with("/verify"))
        .map(|r| r["requests"].as_u64().unwrap())
        .sum()
}

/// The /verify requests the demo server at `addr` counted itself (its /metrics).
pub fn demo_verify_count(addr: SocketAddr) -> u64 {
    let (_, _, metrics) = http(addr.port(), "GET", "/metrics", &[], "");
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("auditor_verify_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    counted as u64
}

/// A free port on 127.0.0.1, bound and let go: for a server the test starts next (nginx,
/// slurmctld, a browser's driver) that must be told its port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
