//! The HTTP side of the demo server: accept loop, routing (FastAPI/Starlette behaviour for
//! 404/405/307), the knobs (stall, rate limit, latency, auth, error injection, leak) and
//! graceful shutdown.

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::knobs::DemoConfig;
use super::metrics::{Metrics, Store};
use super::verify::{self, Analysis, BodyRejection, Components, FieldError, Scratch};

/// The service's own time for a request, from headers parsed to response ready, in µs.
pub const SERVICE_TIME_HEADER: &str = "x-service-time-us";
/// Largest `/verify` body accepted (413 beyond); the real API has no limit, a simulator needs one.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// How long shutdown waits for in-flight requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Leak allocation step: small enough that RSS grows smoothly.
const LEAK_STEP: Duration = Duration::from_millis(100);
/// The real API's version string.
const VERSION: &str = "0.1.0";

/// The real API's SecurityHeadersMiddleware adds these to every response.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("x-xss-protection", "1; mode=block"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
];

type Body = Full<Bytes>;

/// Counters the tests (and the engine's self-checks) can read without HTTP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemoStats {
    /// Requests received (every path, every outcome).
    pub requests: u64,
    /// `/verify` answered 200.
    pub verified: u64,
    /// `/verify` answered 422 (or 400 for undecodable bytes).
    pub invalid: u64,
    /// Injected 500s.
    pub injected_errors: u64,
    /// 429s.
    pub rate_limited: u64,
    /// 401s.
    pub unauthorized: u64,
    /// Requests held by a stall window.
    pub stalled: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Bytes allocated, touched and kept by the leak knob.
    pub leaked_bytes: u64,
    /// Results currently held for `/verifications/{id}`.
    pub stored: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    verified: AtomicU64,
    invalid: AtomicU64,
    injected_errors: AtomicU64,
    rate_limited: AtomicU64,
    unauthorized: AtomicU64,
    stalled: AtomicU64,
    connections: AtomicU64,
    leaked_bytes: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Rate-limit headers for one response.
struct LimitInfo {
    limit: u64,
    remaining: u64,
    reset_unix: u64,
    retry_after: Option<u64>,
}

impl LimitInfo {
    fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(
            HeaderName::from_static("x-ratelimit-limit"),
            self.limit.into(),
        );
        headers.insert(
            HeaderName::from_static("x-ratelimit-remaining"),
            self.remaining.into(),
        );
        headers.insert(
            HeaderName::from_static("x-ratelimit-reset"),
            self.reset_unix.into(),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, secs.into());
        }
    }
}

struct State {
    config: DemoConfig,
    epoch: Instant,
    metrics: Metrics,
    store: Store,
    limiter: Option<Mutex<Bucket>>,
    seed: u64,
    draws: AtomicU64,
    id_seed: u64,
    ids: AtomicU64,
    counters: Counters,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// SplitMix64: a tiny, well-mixed bijection; enough for draws and ids.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl State {
    fn new(config: DemoConfig) -> Self {
        let now = unix_now();
        let clock_seed = (now.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32);
        let limiter = config.rate_limit.map(|rl| {
            Mutex::new(Bucket {
                tokens: f64::from(rl.burst),
                last: Instant::now(),
            })
        });
        State {
            seed: config.seed.unwrap_or(clock_seed),
            store: Store::new(config.store_capacity),
            config,
            epoch: Instant::now(),
            metrics: Metrics::new(now.as_secs_f64()),
            limiter,
            draws: AtomicU64::new(0),
            id_seed: splitmix64(clock_seed),
            ids: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    /// A uniform sample in [0, 1) from the seeded stream.
    fn draw(&self) -> f64 {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let x = splitmix64(
            self.seed
                .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A fresh UUIDv4-shaped id (unique per process: the counter goes through a bijection).
    fn new_id(&self) -> u128 {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let hi = splitmix64(self.id_seed ^ n);
        let lo = splitmix64(hi ^ self.id_seed.rotate_left(17));
        let mut v = (u128::from(hi) << 64) | u128::from(lo);
        v = (v & !(0xF_u128 << 76)) | (0x4_u128 << 76);
        v = (v & !(0x3_u128 << 62)) | (0x2_u128 << 62);
        v
    }

    /// Waits out a stall window if `now` falls inside one.
    async fn stall(&self) {
        let Some(stall) = self.config.stall else {
            return;
        };
        let mut held = false;
        while let Some(wait) = stall.wait_at(self.epoch.elapsed()) {
            held = true;
            tokio::time::sleep(wait).await;
        }
        if held {
            bump(&self.counters.stalled);
        }
    }

    /// Takes a token; `None` when rate limiting is off, else the headers and whether allowed.
    fn rate_limit(&self) -> Option<(bool, LimitInfo)> {
        let rl = self.config.rate_limit?;
        let limiter = self.limiter.as_ref()?;
        let rate = rl.per_second();
        let burst = f64::from(rl.burst);
        let now = Instant::now();
        let mut b = limiter.lock().unwrap_or_else(|e| e.into_inner());
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(burst);
        b.last = now;
        let allowed = b.tokens >= 1.0;
        if allowed {
            b.tokens -= 1.0;
        }
        let tokens = b.tokens;
        drop(b);
        let unix = unix_now().as_secs_f64();
        let info = LimitInfo {
            limit: rl.limit,
            remaining: tokens.max(0.0).floor() as u64,
            reset_unix: (unix + (burst - tokens).max(0.0) / rate).ceil() as u64,
            retry_after: (!allowed).then(|| ((1.0 - tokens) / rate).ceil().max(1.0) as u64),
        };
        Some((allowed, info))
    }

    /// With `--api-key`: every credential present must match, and at least one must be present.
    /// `Authorization` schemes other than Bearer are ignored, as FastAPI's HTTPBearer does.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(key) = self.config.api_key.as_deref() else {
            return true;
        };
        let mut presented = false;
        if let Some(v) = headers.get("x-api-key") {
            if v.as_bytes() != key.as_bytes() {
                return false;
            }
            presented = true;
        }
        if let Some(v) = headers.get(AUTHORIZATION) {
            let text = v.to_str().unwrap_or("");
            if let Some((scheme, cred)) = text.split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") {
                    if cred.trim() != key {
                        return false;
                    }
                    presented = true;
                }
            }
        }
        presented
    }

    fn stats(&self) -> DemoStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DemoStats {
            requests: get(&c.requests),
            verified: get(&c.verified),
            invalid: get(&c.invalid),
            injected_errors: get(&c.injected_errors),
            rate_limited: get(&c.rate_limited),
            unauthorized: get(&c.unauthorized),
            stalled: get(&c.stalled),
            connections: get(&c.connections),
            leaked_bytes: get(&c.leaked_bytes),
            stored: self.store.len() as u64,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in SECURITY_HEADERS {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    resp
}

fn json_bytes(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    respond(status, "application/json", body)
}

fn json_value<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(_) => internal_error("could not serialise the response"),
    }
}

fn detail(status: StatusCode, msg: &'static str) -> Response<Body> {
    let body = match msg {
        "Not Found" => &br#"{"detail":"Not Found"}"#[..],
        "Method Not Allowed" => br#"{"detail":"Method Not Allowed"}"#,
        _ => return json_value(status, &json!({ "detail": msg })),
    };
    json_bytes(status, Bytes::from_static(body))
}

fn internal_error(detail: &str) -> Response<Body> {
    #[derive(Serialize)]
    struct Failure<'a> {
        error: &'static str,
        detail: &'a str,
    }
    json_value(
        StatusCode::INTERNAL_SERVER_ERROR,
        &Failure {
            error: "internal_error",
            detail,
        },
    )
}

fn validation_error(errors: &[FieldError]) -> Response<Body> {
    #[derive(Serialize)]
    struct Detail<'a> {
        detail: &'a [FieldError],
    }
    json_value(StatusCode::UNPROCESSABLE_ENTITY, &Detail { detail: errors })
}

fn unauthorized() -> Response<Body> {
    let mut resp = json_bytes(
        StatusCode::UNAUTHORIZED,
        Bytes::from_static(br#"{"detail":"Invalid or missing API key"}"#),
    );
    resp.headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    resp
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC, the shape of Python's naive `datetime.isoformat()`.
pub fn iso_timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    let micros = d.subsec_micros();
    let base = format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if micros == 0 {
        base
    } else {
        format!("{base}.{micros:06}")
    }
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `8-4-4-4-12` lowercase hex.
pub fn format_uuid(v: u128) -> String {
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Parses the canonical `8-4-4-4-12` form (any case).
pub fn parse_uuid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// Starlette percent-decodes path parameters.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(byte) = h {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Root,
    Health,
    Verify,
    Metrics,
    Statistics,
    Verification(&'a str),
    NotFound,
}

impl<'a> Route<'a> {
    fn of(path: &'a str) -> Self {
        match path {
            "/" => Route::Root,
            "/health" => Route::Health,
            "/verify" => Route::Verify,
            "/metrics" => Route::Metrics,
            "/statistics" => Route::Statistics,
            _ => match path.strip_prefix("/verifications/") {
                Some(id) if !id.is_empty() && !id.contains('/') => Route::Verification(id),
                _ => Route::NotFound,
            },
        }
    }

    /// The real rate-limit middleware exempts health and metrics.
    fn rate_limited(self) -> bool {
        !matches!(self, Route::Health | Route::Metrics)
    }

    fn allow(self) -> &'static str {
        match self {
            Route::Verify => "POST",
            _ => "GET, HEAD",
        }
    }

    fn accepts(self, method: &Method) -> bool {
        match self {
            Route::Verify => method == Method::POST,
            _ => method == Method::GET || method == Method::HEAD,
        }
    }

    fn needs_key(self) -> bool {
        matches!(
            self,
            Route::Verify | Route::Statistics | Route::Verification(_)
        )
    }
}

thread_local! {
    // Scoring buffers, reused across requests on each worker thread.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    bump(&state.counters.requests);
    state.stall().await;
    let mut resp = dispatch(&state, req, start).await;
    // A stall that began while this request was being handled holds its answer too.
    state.stall().await;
    let micros = start.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
    resp.headers_mut()
        .insert(HeaderName::from_static(SERVICE_TIME_HEADER), micros.into());
    Ok(resp)
}

async fn dispatch(state: &State, req: Request<Incoming>, start: Instant) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let route = Route::of(path);

    let mut limit = None;
    if route.rate_limited() {
        if let Some((allowed, info)) = state.rate_limit() {
            if !allowed {
                bump(&state.counters.rate_limited);
                let mut resp = json_bytes(
                    StatusCode::TOO_MANY_REQUESTS,
                    Bytes::from_static(
                        br#"{"detail":"Rate limit exceeded. Please try again later."}"#,
                    ),
                );
                info.apply(resp.headers_mut());
                return resp;
            }
            limit = Some(info);
        }
    }

    if let Some(latency) = state.config.latency {
        tokio::time::sleep(latency.pick(state.draw())).await;
    }

    let mut resp = if route == Route::NotFound {
        not_found_or_redirect(path, parts.uri.query())
    } else if !route.accepts(&parts.method) {
        method_not_allowed(route.allow())
    } else if route == Route::Verify {
        verify(state, &parts.headers, body, start).await
    } else if route.needs_key() && !state.authorized(&parts.headers) {
        bump(&state.counters.unauthorized);
        unauthorized()
    } else {
        match route {
            Route::Root => root(),
            Route::Health => health(),
            Route::Metrics if state.config.metrics => respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                state.metrics.render(),
            ),
            Route::Metrics => json_bytes(
                StatusCode::NOT_FOUND,
                Bytes::from_static(br#"{"detail":"Metrics disabled"}"#),
            ),
            Route::Statistics => json_value(StatusCode::OK, &state.store.statistics().body()),
            Route::Verification(id) => lookup(state, id),
            Route::Verify | Route::NotFound => detail(StatusCode::NOT_FOUND, "Not Found"),
        }
    };
    if let Some(info) = limit {
        info.apply(resp.headers_mut());
    }
    resp
}

/// Starlette's `redirect_slashes`: `/health/` → 307 to `/health`; anything else 404.
fn not_found_or_redirect(path: &str, query: Option<&str>) -> Response<Body> {
    let trimmed = path.trim_end_matches('/');
    if path.len() > 1
        && trimmed.len() < path.len()
        && !trimmed.is_empty()
        && Route::of(trimmed) != Route::NotFound
    {
        let target = match query {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        if let Ok(location) = HeaderValue::from_str(&target) {
            let mut resp = respond(StatusCode::TEMPORARY_REDIRECT, "text/plain", Bytes::new());
            resp.headers_mut().remove(CONTENT_TYPE);
            resp.headers_mut().insert(LOCATION, location);
            return resp;
        }
    }
    detail(StatusCode::NOT_FOUND, "Not Found")
}

fn root() -> Response<Body> {
    #[derive(Serialize)]
    struct Root {
        service: &'static str,
        version: &'static str,
        status: &'static str,
        docs: &'static str,
        simulator: &'static str,
        endpoints: [&'static str; 5],
    }
    json_value(
        StatusCode::OK,
        &Root {
            service: "JuraGPT Auditor",
            version: VERSION,
            status: "running",
            docs: "/docs",
            simulator: "perfhost demo-server",
            endpoints: [
                "GET /health",
                "POST /verify",
                "GET /metrics",
                "GET /statistics",
                "GET /verifications/{verification_id}",
            ],
        },
    )
}

fn health() -> Response<Body> {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
        version: &'static str,
        timestamp: String,
    }
    json_value(
        StatusCode::OK,
        &Health {
            status: "healthy",
            version: VERSION,
            timestamp: iso_timestamp(SystemTime::now()),
        },
    )
}

fn lookup(state: &State, raw_id: &str) -> Response<Body> {
    if let Some(record) = parse_uuid(raw_id).and_then(|id| state.store.get(id)) {
        return json_bytes(StatusCode::OK, record);
    }
    let id = percent_decode(raw_id);
    json_value(
        StatusCode::NOT_FOUND,
        &json!({ "detail": format!("Verification {id} not found") }),
    )
}

#[derive(Serialize)]
struct VerifyBody<'a> {
    verification_id: &'a str,
    timestamp: &'a str,
    duration_ms: f64,
    answer: AnswerBody<'a>,
    sources: SourcesBody<'a>,
    verification: VerificationBody,
    confidence: ConfidenceBody,
    metadata: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct AnswerBody<'a> {
    text: &'a str,
    total_sentences: usize,
    has_citations: bool,
    citations: &'a [String],
}

#[derive(Serialize)]
struct SourcesBody<'a> {
    count: usize,
    fingerprints: &'a [String],
}

#[derive(Serialize)]
struct VerificationBody {
    verified_sentences: usize,
    total_sentences: usize,
    verification_rate: f64,
}

#[derive(Serialize)]
struct ConfidenceBody {
    score: f64,
    verified: bool,
    trust_label: &'static str,
    components: Components,
}

/// What `GET /verifications/{id}` returns: the real storage layer's `_log_to_dict` shape.
#[derive(Serialize)]
struct RecordBody<'a> {
    verification_id: &'a str,
    created_at: &'a str,
    answer: RecordAnswer<'a>,
    sources: SourcesBody<'a>,
    verification: RecordVerification,
    confidence: RecordConfidence,
    is_valid: bool,
    invalidated_at: Option<&'a str>,
    duration_ms: f64,
    metadata: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct RecordAnswer<'a> {
    text: &'a str,
    sentences: usize,
    has_citations: bool,
    citations: &'a [String],
}

#[derive(Serialize)]
struct RecordVerification {
    verified_sentences: usize,
    verification_rate: f64,
}

#[derive(Serialize)]
struct RecordConfidence {
    score: f64,
    trust_label: &'static str,
    components: Components,
}

/// `POST /verify`, in FastAPI's order: body decode (422/400) → auth (401) → model validation
/// (422) → the handler (injected 500, or the real work and 200).
async fn verify(
    state: &State,
    headers: &HeaderMap,
    body: Incoming,
    start: Instant,
) -> Response<Body> {
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return json_bytes(
                StatusCode::PAYLOAD_TOO_LARGE,
                Bytes::from_static(br#"{"detail":"Request body too large"}"#),
            );
        }
        Err(_) => return parse_error(state),
    };
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let decoded = match verify::decode_body(content_type, &bytes) {
        Ok(v) => v,
        Err(BodyRejection::Invalid(errors)) => {
            bump(&state.counters.invalid);
            return validation_error(&errors);
        }
        Err(BodyRejection::Undecodable) => return parse_error(state),
    };
    if !state.authorized(headers) {
        bump(&state.counters.unauthorized);
        return unauthorized();
    }
    let request = match verify::validate(&decoded) {
        Ok(r) => r,
        Err(errors) => {
            bump(&state.counters.invalid);
            return validation_error(&errors);
        }
    };
    if state.config.error_rate > 0.0 && state.draw() < state.config.error_rate {
        bump(&state.counters.injected_errors);
        state.metrics.record_error();
        return internal_error("Injected failure");
    }

    let analysis: Analysis = SCRATCH.with(|s| verify::analyse(&request, &mut s.borrow_mut()));
    let raw_id = state.new_id();
    let id = format_uuid(raw_id);
    let timestamp = iso_timestamp(SystemTime::now());
    let empty = Map::new();
    let metadata = request.metadata.unwrap_or(&empty);
    let label = verify::trust_label(analysis.score);
    let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
    let body = VerifyBody {
        verification_id: &id,
        timestamp: &timestamp,
        duration_ms,
        answer: AnswerBody {
            text: request.answer,
            total_sentences: analysis.total_sentences,
            has_citations: !analysis.citations.is_empty(),
            citations: &analysis.citations,
        },
        sources: SourcesBody {
            count: request.sources.len(),
            fingerprints: &analysis.fingerprints,
        },
        verification: VerificationBody {
            verified_sentences: analysis.verified_sentences,
            total_sentences: analysis.total_sentences,
            verification_rate: analysis.verification_rate(),
        },
        confidence: ConfidenceBody {
            score: analysis.score,
            verified: analysis.verified(),
            trust_label: label,
            components: analysis.components,
        },
        metadata,
    };
    let record = RecordBody {
        verification_id: &id,
        created_at: &timestamp,
        answer: RecordAnswer {
            text: request.answer,
            sentences: analysis.total_sentences,
            has_citations: !analysis.citations.is_empty(),
            citations: &analysis.citations,
        },
        sources: SourcesBody {
            count: request.sources.len(),
            fingerprints: &analysis.fingerprints,
        },
        verification: RecordVerification {
            verified_sentences: analysis.verified_sentences,
            verification_rate: analysis.verification_rate(),
        },
        confidence: RecordConfidence {
            score: analysis.score,
            trust_label: label,
            components: analysis.components,
        },
        is_valid: true,
        invalidated_at: None,
        duration_ms,
        metadata: &empty,
    };
    let (body, record) = match (serde_json::to_vec(&body), serde_json::to_vec(&record)) {
        (Ok(b), Ok(r)) => (b, r),
        _ => {
            state.metrics.record_error();
            return internal_error("could not serialise the verification result");
        }
    };
    state.store.insert(
        raw_id,
        Bytes::from(record),
        analysis.score,
        verify::label_index(analysis.score),
    );
    state
        .metrics
        .record_success(start.elapsed().as_secs_f64(), analysis.score);
    bump(&state.counters.verified);
    json_bytes(StatusCode::OK, body)
}

fn parse_error(state: &State) -> Response<Body> {
    bump(&state.counters.invalid);
    json_bytes(
        StatusCode::BAD_REQUEST,
        Bytes::from_static(br#"{"detail":"There was an error parsing the body"}"#),
    )
}

// ---------------------------------------------------------------------------------------------
// Server lifecycle
// ---------------------------------------------------------------------------------------------

/// A running demo server. Dropping it stops accepting and closes connections in the
/// background; [`DemoServer::shutdown`] does the same and waits for in-flight requests.
pub struct DemoServer {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
    leak: Option<JoinHandle<()>>,
}

impl DemoServer {
    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The instant the knob schedules (stall windows, leak) count from.
    pub fn epoch(&self) -> Instant {
        self.state.epoch
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &DemoConfig {
        &self.state.config
    }

    /// A snapshot of the server's counters.
    pub fn stats(&self) -> DemoStats {
        self.state.stats()
    }

    /// Stops accepting, lets in-flight requests finish (bounded), closes idle connections.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.accept.take() {
            let _ = task.await;
        }
        if let Some(task) = self.leak.take() {
            task.abort();
        }
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.leak.take() {
            task.abort();
        }
    }
}

/// Binds `addr` and serves on the caller's tokio runtime (multi-thread or current-thread).
pub async fn start(config: DemoConfig, addr: SocketAddr) -> std::io::Result<DemoServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State::new(config));
    let (shutdown, signal) = watch::channel(false);
    let leak = state
        .config
        .leak_bytes_per_sec
        .map(|rate| tokio::spawn(leak(Arc::clone(&state), rate)));
    let accept = tokio::spawn(accept_loop(listener, Arc::clone(&state), signal));
    Ok(DemoServer {
        addr,
        state,
        shutdown,
        accept: Some(accept),
        leak,
    })
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut signal: watch::Receiver<bool>) {
    // Each connection task holds a sender; recv() returns None once all have finished.
    let (alive, mut drained) = mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    bump(&state.counters.connections);
                    let _ = stream.set_nodelay(true);
                    let conn_state = Arc::clone(&state);
                    let conn_signal = signal.clone();
                    let guard = alive.clone();
                    tokio::spawn(serve_connection(stream, conn_state, conn_signal, guard));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("demo-server: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            changed = signal.changed() => {
                if changed.is_err() || *signal.borrow() {
                    break;
                }
            }
        }
    }
    drop(listener);
    drop(alive);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained.recv()).await;
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    state: Arc<State>,
    mut signal: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
) {
    let service = service_fn(move |req| handle(Arc::clone(&state), req));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // The watch::Ref is dropped inside, so the future stays Send.
    let stop = async move {
        let _ = signal.wait_for(|stop| *stop).await;
    };
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Allocates and touches memory at `rate` bytes/s, in steps, and keeps it until shutdown.
async fn leak(state: Arc<State>, rate: f64) {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut total = 0u64;
    let started = Instant::now();
    let mut tick = tokio::time::interval(LEAK_STEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Target by elapsed time, so late ticks do not slow the growth.
        let target = (rate * started.elapsed().as_secs_f64()) as u64;
        if target <= total {
            continue;
        }
        let step = (target - total) as usize;
        // A non-zero fill writes every page, so the memory is resident, not just reserved.
        let chunk = vec![0xA5u8; step];
        kept.push(std::hint::black_box(chunk));
        total = target;
        state.counters.leaked_bytes.store(total, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_round_trip_and_shape() {
        let state = State::new(DemoConfig::default());
        let a = state.new_id();
        let b = state.new_id();
        assert_ne!(a, b);
        let s = format_uuid(a);
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert_eq!(parse_uuid(&s), Some(a));
        assert_eq!(parse_uuid("nope"), None);
    }

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::from_micros(1_705_314_600_123_456);
        assert_eq!(iso_timestamp(t), "2024-01-15T10:30:00.123456");
        assert_eq!(iso_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00");
    }

    #[test]
    fn routes() {
        assert_eq!(Route::of("/verifications/abc"), Route::Verification("abc"));
        assert_eq!(Route::of("/verifications/"), Route::NotFound);
        assert_eq!(Route::of("/verifications/a/b"), Route::NotFound);
        assert_eq!(percent_decode("a%20b%zz"), "a b%zz");
    }
}
