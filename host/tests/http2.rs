//! HTTP/2: ALPN against nginx over TLS (from a CA the test makes), HTTP/1.1 where nginx has no
//! h2, `--http-version 2` refused there, h2c with prior knowledge against hyper's server,
//! GOAWAY after a number of streams, and batches that arrive at the server at once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use perfhost::RunError;
use perfhost_core::plan::{HttpVersion, LoadShape};
use perfhost_core::result::RunResult;
use tokio::net::TcpListener;

use crate::support::{self, fixture, ChildGuard, TempDir};

/// nginx on PATH (Debian's nginx-light has `http_v2` and `ssl`); required in CI.
fn nginx() -> Option<PathBuf> {
    let found = support::find_on_path(&["nginx"]).or_else(|| {
        let sbin = Path::new("/usr/sbin/nginx");
        sbin.is_file().then(|| sbin.to_path_buf())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have nginx (.ci/run installs Debian's nginx-light)"
        );
        eprintln!(
            "notice: nginx not found (apt-get install nginx-light): its HTTP/2 checks are skipped"
        );
    }
    found
}

/// A CA and a certificate for 127.0.0.1 it signed: (ca.pem, cert.pem, key.pem) in `dir`.
fn make_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "perfhost test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// nginx serving `/health` over TLS on two ports: `h2` with HTTP/2 (a GOAWAY after every
/// 5 requests of a connection: `keepalive_requests 5`), `h1` without it. Its access log
/// notes each request's connection, its number on it, and its protocol.
struct Nginx {
    _child: ChildGuard,
    h2: u16,
    h1: u16,
    ca: PathBuf,
    log: PathBuf,
}

impl Nginx {
    fn start(binary: &Path, dir: &Path) -> Nginx {
        let (ca, cert, key) = make_ca(dir);
        let (h2, h1) = (support::free_port(), support::free_port());
        let log = dir.join("access.log");
        let conf = format!(
            r#"pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    log_format requests '$connection $connection_requests $server_protocol $request_uri';
    access_log {log} requests;
    client_body_temp_path {dir}/body;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    keepalive_requests 5;
    server {{
        listen 127.0.0.1:{h2} ssl http2;
        location / {{ return 200 "ok\n"; }}
    }}
    server {{
        listen 127.0.0.1:{h1} ssl;
        location / {{ return 200 "ok\n"; }}
    }}
}}
"#,
            dir = dir.display(),
            log = log.display(),
            cert = cert.display(),
            key = key.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = std::process::Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("nginx starts");
        let guard = ChildGuard(child);
        let began = Instant::now();
        while [h2, h1]
            .iter()
            .any(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_err())
        {
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "nginx did not come up: {}",
                std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            _child: guard,
            h2,
            h1,
            ca,
            log,
        }
    }

    /// Each logged request: (connection, its number on the connection, protocol).
    fn requests(&self) -> Vec<(u64, u64, String)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut parts = line.split(' ');
                Some((
                    parts.next()?.parse().ok()?,
                    parts.next()?.parse().ok()?,
                    parts.next()?.to_string(),
                ))
            })
            .collect()
    }
}

/// A run of `iterations` tasks of the 0.2.0 fixture (GET /health) by 2 users.
async fn run_health(
    url: &str,
    ca: &Path,
    version: HttpVersion,
    iterations: u64,
) -> Result<RunResult, RunError> {
    let mut plan = support::plan(url, &[&fixture("fixture_contract_0_2_0")]);
    plan.client.ca_cert = Some(ca.to_path_buf());
    plan.client.http_version = version;
    plan.load = LoadShape::ramp(2, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(iterations);
    let fut = perfhost::run(&plan, Default::default(), |_, _| {});
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("the run ends in time")
}

fn protocols(result: &RunResult) -> BTreeMap<String, u64> {
    result.total.protocols.clone()
}

/// HTTP/2 by ALPN on every row, zero failures, GOAWAYs after every 5 streams taken in stride;
/// without h2 on the server HTTP/1.1 under `auto`, and one clear line under `--http-version 2`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_over_tls_speaks_http2_by_alpn_and_http1_without_it() {
    let Some(binary) = nginx() else { return };
    let dir = TempDir::new("nginx-h2");
    let nginx = Nginx::start(&binary, &dir.0);

    // 40 requests; nginx says GOAWAY after 5 on a connection, so users reconnect 7+ times.
    let url = format!("https://127.0.0.1:{}", nginx.h2);
    let result = run_health(&url, &nginx.ca, HttpVersion::Auto, 40)
        .await
        .unwrap();
    assert_eq!(result.total.requests, 40);
    // Every response came over HTTP/2; a request GOAWAY caught has no response (below).
    for row in &result.stats {
        assert_eq!(
            row.protocols,
            BTreeMap::from([("HTTP/2".to_string(), row.requests - row.failures)]),
            "{} {}",
            row.method,
            row.name
        );
    }
    let seen = nginx.requests();
    assert!(seen.iter().all(|(_, _, p)| p == "HTTP/2.0"), "{seen:?}");
    let connections: BTreeSet<u64> = seen.iter().map(|(c, _, _)| *c).collect();
    assert!(seen.iter().all(|(_, n, _)| *n <= 5), "{seen:?}");
    // Every connection nginx ended with GOAWAY was replaced; a request caught by one is a
    // failure named as such, never the run's end.
    assert!(connections.len() >= 8, "{} connections", connections.len());
    for failure in &result.failures {
        assert!(
            failure.error.contains("GOAWAY") || failure.error.contains("reset"),
            "{failure:?}"
        );
    }
    assert!(result.total.failures <= 2, "{:?}", result.failures);

    // The server without h2: HTTP/1.1 under auto, zero failures.
    let url = format!("https://127.0.0.1:{}", nginx.h1);
    let result = run_health(&url, &nginx.ca, HttpVersion::Auto, 10)
        .await
        .unwrap();
    assert_eq!((result.total.requests, result.total.failures), (10, 0));
    assert_eq!(
        protocols(&result),
        BTreeMap::from([("HTTP/1.1".to_string(), 10)])
    );

    // ... and under --http-version 2, nothing is sent: one line and exit 3.
    let before = nginx.requests().len();
    let ca = nginx.ca.display().to_string();
    let (code, text) = support::perfhost_text(
        &[
            "run",
            "-H",
            &url,
            "--ca-cert",
            &ca,
            "--http-version",
            "2",
            "-u",
            "1",
            "-t",
            "2s",
            "--plugin",
            &fixture("fixture_contract_0_2_0"),
        ],
        &dir.0,
    )
    .await;
    assert_eq!(code, Some(3), "{text}");
    let line = text.trim();
    assert!(
        line.lines().count() == 1
            && line.contains("HTTP/2")
            && line.contains("--http-version auto or 1.1"),
        "{text}"
    );
    assert_eq!(nginx.requests().len(), before, "nothing was sent");
}

/// What a test HTTP/2 (h2c) or HTTP/1.1 server saw: each request's path, the peer's port
/// (its connection) and when it arrived.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, u16, Instant)>>>);

/// hyper's server on 127.0.0.1: HTTP/2 with prior knowledge (`h2`) or HTTP/1.1; it answers
/// every request after `delay`.
async fn hyper_server(h2: bool, delay: Duration) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let path = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        log.0
                            .lock()
                            .unwrap()
                            .push((path, peer.port(), Instant::now()));
                        tokio::time::sleep(delay).await;
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let io = TokioIo::new(stream);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (addr, seen)
}

/// `--http-version 2` on an http:// target: h2c with prior knowledge, every row HTTP/2, one
/// connection per user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_against_hyper() {
    let (addr, seen) = hyper_server(true, Duration::ZERO).await;
    let url = format!("http://{addr}");
    let mut plan = support::plan(&url, &[&fixture("fixture_contract_0_2_0")]);
    plan.client.http_version = HttpVersion::Http2;
    plan.load = LoadShape::ramp(2, 10.0);
    plan.stop.run_time = None;
    plan.stop.iterations = Some(30);
    let result = support::run(&plan).await;
    assert_eq!((result.total.requests, result.total.failures), (30, 0));
    assert_eq!(
        protocols(&result),
        BTreeMap::from([("HTTP/2".to_string(), 30)])
    );
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 30);
    let connections: BTreeSet<u16> = seen.iter().map(|(_, port, _)| *port).collect();
    assert!(
        connections.len() <= 2,
        "one connection per user: {connections:?}"
    );

    // An HTTP/1.1-only server under --http-version 2: refused before anything is sent.
    let (addr, seen) = hyper_server(false, Duration::ZERO).await;
    let mut plan = support::plan(
        &format!("http://{addr}"),
        &[&fixture("fixture_contract_0_2_0")],
    );
    plan.client.http_version = HttpVersion::Http2;
    plan.stop.run_time = None;
    plan.stop.iterations = Some(3);
    let Err(err) = perfhost::run(&plan, Default::default(), |_, _| {}).await else {
        panic!("an HTTP/1.1-only server under --http-version 2 must be refused");
    };
    let text = err.to_string();
    assert!(
        text.contains("h2c") && text.contains("--http-version"),
        "{text}"
    );
    assert_eq!(err.exit_code(), 3);
    assert!(seen.0.lock().unwrap().is_empty());
}

/// A JavaScript k6-shaped script's `http.batch` of 4: the four requests arrive at the server
/// at once (the server answers each after 300 ms), over one HTTP/2 connection (4 streams) or
/// four HTTP/1.1 connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_batch_arrives_at_once_over_http2_and_http1() {
    let Some(plugin) = crate::languages::example("batch_get_js_sdk.wasm") else {
        return;
    };
    let _serial = support::serial().await;
    for (h2, version, connections) in [(true, HttpVersion::Http2, 1), (false, HttpVersion::Auto, 4)]
    {
        let (addr, seen) = hyper_server(h2, Duration::from_millis(300)).await;
        let mut plan = support::plan(&format!("http://{addr}"), &[&plugin]);
        plan.client.http_version = version;
        plan.load = LoadShape::ramp(1, 10.0);
        plan.stop.run_time = None;
        plan.stop.iterations = Some(2);
        let result = support::run(&plan).await;
        let label = version.as_str();
        assert_eq!(result.total.failures, 0, "{label}: {:?}", result.failures);
        let seen = seen.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 8, "{label}: two batches of four");
        for batch in seen.chunks(4) {
            let first = batch.iter().map(|(_, _, t)| *t).min().unwrap();
            let last = batch.iter().map(|(_, _, t)| *t).max().unwrap();
            assert!(
                last - first < Duration::from_millis(150),
                "{label}: the four arrived {:?} apart",
                last - first
            );
            let paths: BTreeSet<&str> = batch.iter().map(|(p, _, _)| p.as_str()).collect();
            assert_eq!(paths.len(), 4, "{label}: {paths:?}");
        }
        // The second batch reuses the first one's connections.
        let ports: BTreeSet<u16> = seen.iter().map(|(_, port, _)| *port).collect();
        assert_eq!(ports.len(), connections, "{label}");
        let check = result
            .stats
            .iter()
            .find(|r| r.method == "check")
            .expect("the check row");
        assert_eq!((check.requests, check.failures), (2, 0), "{label}");
        let expected = if h2 { "HTTP/2" } else { "HTTP/1.1" };
        assert_eq!(
            protocols(&result),
            BTreeMap::from([(expected.to_string(), 8)]),
            "{label}"
        );
    }
}

/// A C user's batch of 8 (`ph_send_batch`): over HTTP/1.1 six connections at most — six
/// requests arrive at once and the last two only after the first answers (300 ms later);
/// over h2c all eight at once on one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_eight_takes_six_http1_connections_or_eight_streams() {
    let Some(plugin) = crate::languages::example("batch_get_c_sdk.wasm") else {
        return;
    };
    let _serial = support::serial().await;
    for (h2, version) in [(false, HttpVersion::Auto), (true, HttpVersion::Http2)] {
        let (addr, seen) = hyper_server(h2, Duration::from_millis(300)).await;
        let mut plan = support::plan(&format!("http://{addr}"), &[&plugin]);
        plan.client.http_version = version;
        plan.load = LoadShape::ramp(1, 10.0);
        plan.stop.run_time = None;
        plan.stop.iterations = Some(1);
        let result = support::run(&plan).await;
        let label = version.as_str();
        assert_eq!(
            (result.total.requests, result.total.failures),
            (8, 0),
            "{label}"
        );
        let mut seen = seen.0.lock().unwrap().clone();
        seen.sort_by_key(|(_, _, t)| *t);
        assert_eq!(seen.len(), 8, "{label}");
        let first = seen[0].2;
        let ports: BTreeSet<u16> = seen.iter().map(|(_, port, _)| *port).collect();
        let at_once = seen
            .iter()
            .filter(|(_, _, t)| *t - first < Duration::from_millis(150))
            .count();
        if h2 {
            assert_eq!((ports.len(), at_once), (1, 8), "{label}: {seen:?}");
        } else {
            assert_eq!((ports.len(), at_once), (6, 6), "{label}: {seen:?}");
            assert!(
                seen[6].2 - first >= Duration::from_millis(290),
                "{label}: {seen:?}"
            );
        }
    }
}
