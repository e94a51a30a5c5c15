//! The run's HTTP endpoint: `/metrics` in the Prometheus text format and Locust's
//! `/stats/requests` (`perfhost run --metrics-port P`), and with a session (`perfhost ui`,
//! `perfhost run --web`) the web UI, its events and Locust's control API. Served on a thread
//! of its own, so the UI's cost is that thread's CPU time and never the users'. Bound to
//! 127.0.0.1 unless `--web-host` says otherwise, and then only with `--web-token` or
//! `--web-auth`.

mod listen;
pub mod session;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use perfhost_core::plan::MetricsPlan;
use perfhost_core::stats::live::LiveBoard;
use session::{Refused, Session, StartRequest};

type Body = BoxBody<Bytes, Infallible>;

/// What the endpoint serves: one run's board, or a UI session of many.
#[derive(Clone)]
pub enum Source {
    Board(Arc<LiveBoard>),
    Session(Arc<Session>),
}

/// A running endpoint; dropping it (or `shutdown`) stops it.
pub struct WebServer {
    pub addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
}

impl WebServer {
    pub fn shutdown(self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Who may call: nobody is asked on loopback; beyond it a token (Bearer header, or the cookie
/// `/?token=…` sets for a browser) or `--web-auth` credentials (HTTP Basic).
#[derive(Clone, Default)]
struct Guard {
    token: Option<String>,
    basic: Option<String>,
    read_only: bool,
}

/// Starts serving `source` on `plan.addr`, on a thread of its own.
pub fn serve(plan: &MetricsPlan, source: Source) -> std::io::Result<WebServer> {
    let listener = std::net::TcpListener::bind(plan.addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let guard = Arc::new(Guard {
        token: plan.token.as_ref().map(|t| t.0.clone()),
        basic: plan.auth.as_ref().map(|a| a.0.clone()),
        read_only: plan.read_only,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("perfhost-web".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                if let Source::Session(session) = &source {
                    tokio::spawn(session.clone().follow_tests());
                }
                let make = move || {
                    let (source, guard) = (source.clone(), guard.clone());
                    service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (source, guard) = (source.clone(), guard.clone());
                        async move { Ok::<_, Infallible>(answer(req, &source, &guard).await) }
                    })
                };
                let stop = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                listen::serve(listener, make, stop).await;
            })
        })?;
    Ok(WebServer { addr, stop })
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

fn reply(status: StatusCode, kind: &str, body: impl Into<Bytes>) -> Response<Body> {
    framed_never(
        Response::builder()
            .status(status)
            .header("content-type", kind),
    )
    .body(full(body))
    .expect("static headers are valid")
}

/// No caching, and no framing by another page (a framed UI could be clicked into starting
/// or stopping a test).
fn framed_never(builder: hyper::http::response::Builder) -> hyper::http::response::Builder {
    builder
        .header("cache-control", "no-store")
        .header("x-frame-options", "DENY")
        .header("content-security-policy", "frame-ancestors 'none'")
}

fn json_reply(status: StatusCode, value: &Value) -> Response<Body> {
    reply(status, "application/json", value.to_string())
}

/// Locust's control answer: `{"success": …, "message": …}`.
fn outcome(result: Result<String, Refused>) -> Response<Body> {
    match result {
        Ok(message) => json_reply(
            StatusCode::OK,
            &json!({"success": true, "message": message}),
        ),
        Err(err) => {
            let status = match err {
                Refused::BadRequest(_) => StatusCode::BAD_REQUEST,
                Refused::Conflict(_) => StatusCode::CONFLICT,
            };
            json_reply(
                status,
                &json!({"success": false, "message": err.to_string()}),
            )
        }
    }
}

fn attachment(kind: &str, name: &str, body: String) -> Response<Body> {
    // A run name may hold anything: the file name keeps what every browser accepts.
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut response = reply(StatusCode::OK, kind, body);
    if let Ok(value) = format!("attachment; filename=\"{name}\"").parse() {
        response.headers_mut().insert("content-disposition", value);
    }
    response
}

/// Byte-wise comparison that takes as long for a wrong first byte as for a wrong last one.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Guard {
    fn admits<B>(&self, req: &Request<B>) -> bool {
        if self.token.is_none() && self.basic.is_none() {
            return true;
        }
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let authorization = header("authorization").unwrap_or("");
        if let (Some(token), Some(given)) = (&self.token, authorization.strip_prefix("Bearer ")) {
            if same(token, given.trim()) {
                return true;
            }
        }
        if let (Some(basic), Some(given)) = (&self.basic, authorization.strip_prefix("Basic ")) {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(given.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            if decoded.is_some_and(|d| same(basic, &d)) {
                return true;
            }
        }
        let cookie = header("cookie").unwrap_or("");
        self.token.as_ref().is_some_and(|token| {
            cookie
                .split(';')
                .filter_map(|c| c.trim().strip_prefix("perfhost_token="))
                .any(|given| same(token, given))
        })
    }

    fn refuse(&self) -> Response<Body> {
        let mut response = reply(
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "401: this perfhost is reachable beyond loopback: send `Authorization: Bearer <--web-token>` (a browser: open /?token=<--web-token> once), or the --web-auth user and password\n",
        );
        if self.basic.is_some() {
            response.headers_mut().insert(
                "www-authenticate",
                hyper::header::HeaderValue::from_static("Basic realm=\"perfhost\""),
            );
        }
        response
    }
}

/// The request names this machine: its Host header (HTTP/1.0 tools may send none) and, in
/// the absolute form (`GET http://host/path`), the authority of its target, which a server
/// must take over the Host header. Fails closed: two Host headers, a Host that is not
/// visible ASCII, or a target naming another host are not this machine.
fn loopback_host<B>(req: &Request<B>) -> bool {
    let mut hosts = req.headers().get_all("host").iter();
    let host = match (hosts.next(), hosts.next()) {
        (None, _) => None,
        (Some(value), None) => match value.to_str() {
            Ok(text) => Some(text),
            Err(_) => return false,
        },
        (Some(_), Some(_)) => return false,
    };
    let target = req.uri().authority().map(|a| a.as_str());
    [host, target].into_iter().flatten().all(loopback_name)
}

/// `localhost`, or a loopback address, with or without a port.
fn loopback_name(host: &str) -> bool {
    // User info (`user@host`) is not a name: a target carrying it is not ours.
    if host.contains('@') || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((name, port)) if port.is_empty() || port.starts_with(':') => name,
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A state-changing call from another page (a form posted at 127.0.0.1 from the web, an
/// image on a site of this machine) is refused: its Origin is not this server, or the browser
/// says it comes from elsewhere.
fn cross_site<B>(req: &Request<B>) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|site| site != "same-origin" && site != "none") {
        return true;
    }
    match (header("origin"), header("host")) {
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, rest)| rest) != Some(host),
        (Some(_), None) => true,
        _ => false,
    }
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const OPENAPI: &str = include_str!("../../../docs/web-api.yaml");

async fn answer(
    req: Request<hyper::body::Incoming>,
    source: &Source,
    guard: &Guard,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    // A browser's first visit with the token: keep it in a cookie and drop it from the URL.
    if let (Some(token), Some(query)) = (&guard.token, req.uri().query()) {
        let given = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned());
        if given.is_some_and(|g| same(token, &g)) {
            // The token is checked at start (visible ASCII, no `;`), so these headers are
            // valid; were one not, the answer is a 400, never a panic.
            return Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header("location", path.as_str())
                .header(
                    "set-cookie",
                    format!("perfhost_token={token}; HttpOnly; SameSite=Strict; Path=/"),
                )
                .body(full(""))
                .unwrap_or_else(|_| {
                    reply(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        "400: this token cannot be kept in a cookie: send it as `Authorization: Bearer <token>`\n",
                    )
                });
        }
    }
    if !guard.admits(&req) {
        return guard.refuse();
    }
    // Without a token the answer is only for this machine: a page whose name resolves here
    // (DNS rebinding) would otherwise read and steer the UI as a same-origin page.
    if guard.token.is_none() && guard.basic.is_none() && !loopback_host(&req) {
        return reply(
            StatusCode::FORBIDDEN,
            "text/plain",
            "403: without --web-token perfhost answers only requests for 127.0.0.1, localhost or [::1]\n",
        );
    }
    let board = || match source {
        Source::Board(board) => board.snapshot().unwrap_or_default(),
        Source::Session(session) => session.board(),
    };
    match (method.as_str(), path.as_str()) {
        ("GET", "/metrics") => {
            return reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::report::prometheus::render(&board()),
            )
        }
        ("GET", "/stats/requests") => {
            let stats = match source {
                Source::Session(session) => session.stats_requests(),
                Source::Board(board) => {
                    crate::report::locust_api::stats_requests(&board.snapshot().unwrap_or_default())
                }
            };
            return json_reply(StatusCode::OK, &stats);
        }
        ("GET", "/api/openapi.yaml") => return reply(StatusCode::OK, "application/yaml", OPENAPI),
        _ => {}
    }
    let Source::Session(session) = source else {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "404: this run serves /metrics and /stats/requests (the web UI: perfhost ui, or perfhost run --web)\n",
        );
    };
    // Control is decided by the path alone, whatever the method; a method a path does not
    // take is 405 before anything happens.
    let control = matches!(
        path.as_str(),
        "/swarm" | "/stop" | "/stats/reset" | "/api/pause" | "/api/resume"
    );
    let allowed = match path.as_str() {
        "/swarm" | "/api/pause" | "/api/resume" => method == "POST",
        "/stop" | "/stats/reset" => method == "GET" || method == "POST",
        _ => method == "GET",
    };
    if !allowed {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            format!("405: {method} {path} is not served (see /api/openapi.yaml)\n"),
        );
    }
    if control {
        if guard.read_only {
            return json_reply(
                StatusCode::FORBIDDEN,
                &json!({"success": false, "message": "read-only: this perfhost was started with --read-only and accepts no control"}),
            );
        }
        if cross_site(&req) {
            return json_reply(
                StatusCode::FORBIDDEN,
                &json!({"success": false, "message": "refused: a control request from a page of another origin"}),
            );
        }
    }
    match (method.as_str(), path.as_str()) {
        ("GET", "/") => reply(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML),
        ("GET", "/ui/app.js") => reply(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS),
        ("GET", "/ui/app.css") => reply(StatusCode::OK, "text/css; charset=utf-8", APP_CSS),
        ("GET", "/api/state") => json_reply(StatusCode::OK, &session.state()),
        ("GET", "/api/history") => json_reply(StatusCode::OK, &session.history()),
        ("GET", "/api/events") => events(session),
        ("POST", "/swarm") => match start_request(req).await {
            Ok(request) => match session.swarm(request) {
                // Locust's answer names the host too.
                Ok(message) => json_reply(
                    StatusCode::OK,
                    &json!({"success": true, "message": message, "host": session.state()["host"]}),
                ),
                Err(err) => outcome(Err(err)),
            },
            Err(why) => outcome(Err(Refused::BadRequest(why))),
        },
        ("GET" | "POST", "/stop") => outcome(session.stop()),
        ("GET" | "POST", "/stats/reset") => outcome(session.reset_stats()),
        ("POST", "/api/pause") => outcome(session.set_paused(true)),
        ("POST", "/api/resume") => outcome(session.set_paused(false)),
        ("GET", "/api/result") => match session.result() {
            Some(result) => attachment(
                "application/json",
                &format!("{}.json", result.meta.run_name),
                serde_json::to_string_pretty(&result).unwrap_or_default(),
            ),
            None => no_test(),
        },
        ("GET", "/exceptions") => {
            let errors: Vec<Value> = session.result().map_or_else(Vec::new, |r| {
                r.task_errors
                    .iter()
                    .map(|e| {
                        json!({"count": e.occurrences, "msg": e.message, "traceback": e.location, "nodes": "local"})
                    })
                    .collect()
            });
            json_reply(StatusCode::OK, &json!({"exceptions": errors}))
        }
        ("GET", download) => match (session.result(), csv_download(download)) {
            (Some(result), Some((suffix, render))) => attachment(
                "text/csv",
                &format!("{}_{suffix}", result.meta.run_name),
                render(&result),
            ),
            (Some(result), None) if download == "/stats/report" => {
                let html = crate::report::html::render(&result);
                if req.uri().query().is_some_and(|q| q.contains("download")) {
                    attachment(
                        "text/html; charset=utf-8",
                        &format!("{}.html", result.meta.run_name),
                        html,
                    )
                } else {
                    reply(StatusCode::OK, "text/html; charset=utf-8", html)
                }
            }
            (None, Some(_)) => no_test(),
            _ => not_found(),
        },
        _ => not_found(),
    }
}

type Render = fn(&perfhost_core::result::RunResult) -> String;

/// Locust's CSV download paths: the file's suffix and how to render it.
fn csv_download(path: &str) -> Option<(&'static str, Render)> {
    use crate::report::csv;
    Some(match path {
        "/stats/requests/csv" => ("stats.csv", csv::stats_csv),
        "/stats/failures/csv" => ("failures.csv", csv::failures_csv),
        "/exceptions/csv" => ("exceptions.csv", csv::exceptions_csv),
        "/stats/requests_full_history/csv" => ("stats_history.csv", |r| csv::history_csv(r, true)),
        _ => return None,
    })
}

fn no_test() -> Response<Body> {
    reply(
        StatusCode::NOT_FOUND,
        "text/plain",
        "404: no test has run yet: start one (POST /swarm or the page's form)\n",
    )
}

fn not_found() -> Response<Body> {
    reply(
        StatusCode::NOT_FOUND,
        "text/plain",
        "404: see /api/openapi.yaml for what perfhost serves\n",
    )
}

/// `/api/events`: the state at once, then every event; a comment every 15 s keeps proxies
/// from closing an idle stream.
fn events(session: &Session) -> Response<Body> {
    let (first, rx) = session.subscribe();
    let mut keepalive = tokio::time::interval(Duration::from_secs(15));
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = futures_util::stream::unfold(
        (Some(first), rx, keepalive),
        |(first, mut rx, mut keepalive)| async move {
            if let Some(first) = first {
                return Some((Bytes::from(first.to_string()), (None, rx, keepalive)));
            }
            loop {
                tokio::select! {
                    got = rx.recv() => match got {
                        Ok(frame) => return Some((Bytes::from(frame.to_string()), (None, rx, keepalive))),
                        // A slow page missed some: it goes on from the newest.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = keepalive.tick() => return Some((Bytes::from_static(b": keepalive\n\n"), (None, rx, keepalive))),
                }
            }
        },
    );
    let body = StreamBody::new(futures_util::StreamExt::map(stream, |b| {
        Ok::<_, Infallible>(Frame::data(b))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-store")
        .body(BodyExt::boxed(body))
        .expect("static headers are valid")
}

/// `POST /swarm`'s body: form-encoded (Locust's page and `curl -d`) or JSON.
async fn start_request(req: Request<hyper::body::Incoming>) -> Result<StartRequest, String> {
    let json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let body = tokio::time::timeout(
        listen::BODY_TIMEOUT,
        Limited::new(req.into_body(), 64 * 1024).collect(),
    )
    .await
    .map_err(|_| {
        format!(
            "the request body did not arrive within {}s",
            listen::BODY_TIMEOUT.as_secs()
        )
    })?
    .map_err(|e| format!("cannot read the request body: {e}"))?
    .to_bytes();
    let mut fields: Vec<(String, String)> = Vec::new();
    if json {
        let value: Value =
            serde_json::from_slice(&body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err("the JSON body must be an object".into());
        };
        for (key, value) in map {
            match value {
                Value::Array(items) => fields.extend(items.iter().map(|v| (key.clone(), plain(v)))),
                Value::Null => {}
                v => fields.push((key, plain(&v))),
            }
        }
    } else {
        fields = form_urlencoded::parse(&body).into_owned().collect();
    }
    let mut request = StartRequest::default();
    for (key, value) in fields {
        let value = value.trim().to_string();
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "user_count" => {
                request.users =
                    Some(value.parse().map_err(|_| {
                        format!("user_count: `{value}` is not a whole number of users")
                    })?)
            }
            "spawn_rate" => {
                request.spawn_rate = Some(value.parse().map_err(|_| {
                    format!("spawn_rate: `{value}` is not a number of users per second")
                })?)
            }
            "host" => request.host = Some(value),
            "run_time" => request.run_time = Some(value),
            "user_classes" => request.user_classes.push(value),
            "scenario" => request.scenario = Some(value),
            "rate" => request.rate = Some(value),
            "http_version" => request.http_version = Some(value),
            // Locust's page sends these too; perfhost has no use for them.
            _ => {}
        }
    }
    Ok(request)
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
