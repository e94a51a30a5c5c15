//! The HTTP client (hyper): each virtual user keeps its own connections to the target — a
//! keep-alive HTTP/1.1 connection per request in flight (at most six, as browsers), or one
//! HTTP/2 connection whose streams carry them all (ALPN on https; h2c with prior knowledge
//! when forced) — reconnecting when the server closes them, with a per-user cookie jar,
//! same-origin redirects, gzip decoding, a request timeout and distinct error kinds.

mod negotiate;
mod tls;
mod user;

use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

pub use negotiate::negotiate;
pub use tls::tls_config;
pub use user::{UserClient, MAX_HTTP1_CONNECTIONS};

use crate::plan::{ClientOptions, HttpVersion, Protocol, ResolveError, Secret, Target};

/// Why a request produced no response (mirrors the contract's `http-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The TCP connection could not be opened.
    #[error("connection failed: {0}")]
    Connect(String),
    /// No complete response within the request's timeout.
    #[error("timed out")]
    Timeout,
    /// The server closed or reset the connection mid-exchange.
    #[error("connection reset: {0}")]
    Reset(String),
    /// The TLS handshake or stream failed.
    #[error("TLS error: {0}")]
    Tls(String),
    /// The request could not be built (bad method, path or header).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The response could not be read as HTTP (or its body not decoded).
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// The URL is outside the run's target origin.
    #[error("denied by the sandbox: {0}")]
    Denied(String),
    /// The run stopped while the request was in flight.
    #[error("cancelled: the run is stopping")]
    Cancelled,
    /// Any other failure, with its message.
    #[error("{0}")]
    Other(String),
}

impl From<ResolveError> for HttpError {
    fn from(err: ResolveError) -> Self {
        match err {
            ResolveError::Denied(m) => HttpError::Denied(m),
            ResolveError::Invalid(m) => HttpError::InvalidRequest(m),
        }
    }
}

/// Why the client cannot be set up for a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// A credential cannot be sent as a header value; holds the credential's name.
    #[error("{0} contains characters not allowed in a header")]
    BadHeader(&'static str),
    /// The TLS configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The `--ca-cert` file could not be read or holds no usable certificate.
    #[error("--ca-cert {path}: {why} — give a PEM file with CERTIFICATE blocks")]
    CaCert {
        /// The file as given.
        path: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Settings shared by every connection of a run.
#[derive(Clone)]
pub struct ClientConfig {
    /// The only origin requests go to.
    pub target: Arc<Target>,
    /// Headers added to every request (auth from `API_TOKEN` / `API_KEY` / URL user info).
    pub default_headers: Arc<HeaderMap>,
    /// The run's request timeout (a request may override it).
    pub timeout: Duration,
    /// Set for https targets.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Bytes of a response body kept at most (`--max-body-size`); the rest is read and counted.
    pub max_body_size: usize,
    /// Keep connections alive; `false`: a new one per request, its set-up timed.
    pub keepalive: bool,
    /// `--http-version`: what ALPN offers on https; `2` on http is h2c.
    pub http_version: HttpVersion,
    /// The target speaks HTTP/2 (forced, or chosen by ALPN when the run began, see
    /// [`negotiate`]): a user's concurrent requests share one connection from their first.
    pub speaks_h2: bool,
}

/// Default `--max-body-size`: far above any API answer, far below what 1,000 users could hold.
pub const DEFAULT_MAX_BODY_SIZE: usize = 16 << 20;

impl ClientConfig {
    /// The client of a run against `target`, with the plan's credentials, timeout and TLS.
    pub fn new(target: Arc<Target>, options: &ClientOptions) -> Result<Self, ClientError> {
        let mut headers = HeaderMap::new();
        // The target URL's user info (`http://user:pw@host`); an API_TOKEN's Bearer replaces it.
        if let Some(encoded) = options.basic_credentials() {
            let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
                .map_err(|_| ClientError::BadHeader("the target URL's user info"))?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        if let Some(Secret(token)) = &options.api_token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ClientError::BadHeader("API_TOKEN"))?;
            headers.insert(http::header::AUTHORIZATION, value);
        }
        if let Some(Secret(key)) = &options.api_key {
            let value =
                HeaderValue::from_str(key).map_err(|_| ClientError::BadHeader("API_KEY"))?;
            headers.insert("x-api-key", value);
        }
        let tls = if target.scheme == "https" {
            let mut tls = tls_config(options.insecure, options.ca_cert.as_deref())?;
            tls.alpn_protocols = tls::alpn(options.http_version);
            Some(Arc::new(tls))
        } else {
            None
        };
        Ok(ClientConfig {
            target,
            default_headers: Arc::new(headers),
            timeout: options.request_timeout,
            tls,
            max_body_size: options.max_body_size,
            keepalive: options.keepalive,
            http_version: options.http_version,
            speaks_h2: options.http_version == HttpVersion::Http2,
        })
    }

    /// A plain-HTTP client without credentials (benchmarks, plugin descriptions).
    pub fn plain(target: Arc<Target>, timeout: Duration) -> Self {
        ClientConfig {
            target,
            default_headers: Arc::default(),
            timeout,
            tls: None,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            keepalive: true,
            http_version: HttpVersion::Auto,
            speaks_h2: false,
        }
    }
}

/// `user:password` as HTTP Basic credentials (base64).
pub fn basic_credentials(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// One request as the plugin built it.
pub struct OutgoingRequest {
    /// The HTTP method.
    pub method: Method,
    /// Path and query, resolved against the target (`Target::resolve`).
    pub uri: Uri,
    /// Headers the plugin set, sent after the run's default headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The request body (empty for none).
    pub body: Bytes,
    /// This request's timeout; `None`: the run's.
    pub timeout: Option<Duration>,
    /// Follow same-origin redirects (at most 10), timing them with the request.
    pub follow_redirects: bool,
    /// Keep none of the response body (the plugin promised not to read it).
    pub discard_body: bool,
}

/// A complete response with its measured latency.
pub struct CompletedResponse {
    /// The status of the last response (after any redirects followed).
    pub status: StatusCode,
    /// The headers of the last response.
    pub headers: HeaderMap,
    /// The body as kept: all of it, its first `max_body_size` bytes, or nothing when discarded.
    pub body: Bytes,
    /// The body's full size in bytes (decoded if gzip and kept, else as received).
    pub body_size: u64,
    /// The body was larger than `max_body_size`: only its beginning is in `body`.
    pub truncated: bool,
    /// From just before the request was written to the last body byte (summed over redirects).
    pub latency: Duration,
    /// The HTTP it came over.
    pub protocol: Protocol,
}

/// A user about to wait this long (between tasks, in the open model's pool, in `sleep`) lets
/// its connection's buffers go and re-handshakes on the kept socket before its next request:
/// `auditor_user` (1–3 s waits) then holds 2.6 KiB per user instead of 23 KiB, for CPU per
/// request within the noise of paired runs (median 1.02×, docs/benchmarks.md "Memory per idle
/// user"). Locust's and k6's usual waits (1 s and more)
/// rest; a user pacing faster than twice a second keeps its connection whole, as its buffers
/// are in use a good share of the time anyway.
pub const REST_AFTER: Duration = Duration::from_millis(500);

/// Reads a response body frame by frame, keeping at most `keep` bytes and counting the rest.
/// A body in one frame (the usual case) is kept without a copy.
struct BodyReader {
    keep: usize,
    first: Option<Bytes>,
    more: Option<Vec<u8>>,
    size: u64,
    truncated: bool,
}

impl BodyReader {
    fn new(keep: usize) -> Self {
        BodyReader {
            keep,
            first: None,
            more: None,
            size: 0,
            truncated: false,
        }
    }

    fn push(&mut self, mut data: Bytes) {
        self.size += data.len() as u64;
        let held =
            self.first.as_ref().map_or(0, Bytes::len) + self.more.as_ref().map_or(0, Vec::len);
        let room = self.keep.saturating_sub(held);
        if data.len() > room {
            self.truncated = true;
            data.truncate(room);
        }
        if data.is_empty() {
            return;
        }
        match (&mut self.first, &mut self.more) {
            (None, _) => self.first = Some(data),
            (Some(first), None) => {
                let mut joined = Vec::with_capacity(first.len() + data.len());
                joined.extend_from_slice(first);
                joined.extend_from_slice(&data);
                self.more = Some(joined);
            }
            (Some(_), Some(more)) => more.extend_from_slice(&data),
        }
    }

    fn finish(self) -> (Bytes, u64, bool) {
        let body = match (self.more, self.first) {
            (Some(more), _) => Bytes::from(more),
            (None, Some(first)) => first,
            (None, None) => Bytes::new(),
        };
        (body, self.size, self.truncated)
    }
}

type Sender = http1::SendRequest<Full<Bytes>>;
type H2Sender = http2::SendRequest<Full<Bytes>>;

/// hyper's connection over plain TCP, kept by its type so that a resting user can take the
/// socket back from it ([`Connection::rest`]).
type PlainConnection = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// hyper's HTTP/1.1 connection future (reads and writes the socket).
enum Driver {
    Plain(Box<PlainConnection>),
    /// Over TLS, type-erased.
    Tls(Pin<Box<dyn Future<Output = ()> + Send>>),
}

impl Driver {
    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match self {
            Driver::Plain(conn) => Pin::new(&mut **conn).poll(cx).map(|_| ()),
            Driver::Tls(conn) => conn.as_mut().poll(cx),
        }
    }
}

/// An open connection.
enum Live {
    /// HTTP/1.1, this lease's own. Its driver is polled inline by whoever awaits a request on
    /// it rather than by a task of its own: one task wake-up and one task's memory fewer per
    /// request and per user. `None` once the connection has ended.
    Http1 {
        sender: Sender,
        driver: Option<Driver>,
    },
    /// A handle on the user's one HTTP/2 connection, whose driver is a task: every stream on it
    /// needs it driven, whichever of the user's requests is being awaited.
    Http2(H2Sender),
}

impl Live {
    fn protocol(&self) -> Protocol {
        match self {
            Live::Http1 { .. } => Protocol::Http1,
            Live::Http2(_) => Protocol::Http2,
        }
    }
}

/// Awaits `work` while driving the connection, which `work` needs to make progress.
async fn drive<F: Future>(driver: &mut Option<Driver>, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        if let Some(running) = driver {
            if running.poll(cx).is_ready() {
                *driver = None;
            }
        }
        work.as_mut().poll(cx)
    })
    .await
}

/// What all of one user's connections share.
pub(crate) struct Shared {
    /// The user's cookies, name and value, as the target set them.
    jar: std::sync::Mutex<Vec<(String, String)>>,
    /// The user's HTTP/2 connection. Locked while it is being opened, so that the user's
    /// concurrent requests wait for that one connection instead of each opening its own.
    h2: tokio::sync::Mutex<Option<H2Sender>>,
    /// The origin answers HTTP/2: a new lease takes a stream on `h2`, not a connection.
    speaks_h2: AtomicBool,
}

impl Shared {
    pub(crate) fn new(speaks_h2: bool) -> Self {
        Shared {
            jar: std::sync::Mutex::new(Vec::new()),
            h2: tokio::sync::Mutex::new(None),
            speaks_h2: AtomicBool::new(speaks_h2),
        }
    }

    pub(crate) fn speaks_h2(&self) -> bool {
        self.speaks_h2.load(Ordering::Relaxed)
    }
}

/// One request's way to the target, leased from the user's [`UserClient`]: a keep-alive
/// HTTP/1.1 connection of its own (reconnecting when the server closes it), or a stream on
/// the user's HTTP/2 connection.
pub struct Connection {
    config: ClientConfig,
    live: Option<Live>,
    shared: Arc<Shared>,
    /// Connections this lease opened so far (1 for a user whose connection was kept alive
    /// throughout; an HTTP/2 connection counts for the lease that opened it).
    pub connects: u64,
    /// The request timeout's timer, kept from request to request and moved only when it fires
    /// before the current request's deadline: `tokio::time::timeout` would insert a timer into
    /// the runtime's wheel and remove it again on every request.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The socket of a resting user, without hyper's state: the next request re-handshakes on
    /// it (no new TCP connection).
    parked: Option<TokioIo<TcpStream>>,
}

const MAX_REDIRECTS: usize = 10;

impl Connection {
    /// A user's connection with these settings; it connects on the first request.
    pub fn new(config: ClientConfig) -> Self {
        let shared = Arc::new(Shared::new(config.speaks_h2));
        Connection::sharing(config, shared)
    }

    /// Another connection of the user whose connections share `shared`.
    pub(crate) fn sharing(config: ClientConfig, shared: Arc<Shared>) -> Self {
        Connection {
            config,
            live: None,
            shared,
            connects: 0,
            parked: None,
            timer: None,
        }
    }

    /// The HTTP of its open connection, if it has one.
    pub fn protocol(&self) -> Option<Protocol> {
        self.live.as_ref().map(Live::protocol)
    }

    /// The origin this connection sends to.
    pub fn target(&self) -> &Target {
        &self.config.target
    }

    /// Sends a request and reads the whole response, following same-origin redirects if asked.
    pub async fn send(&mut self, req: OutgoingRequest) -> Result<CompletedResponse, HttpError> {
        let timeout = req.timeout.unwrap_or(self.config.timeout);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut timer = self
            .timer
            .take()
            .unwrap_or_else(|| Box::pin(tokio::time::sleep_until(deadline)));
        // Armed for an earlier request, the timer fires at or before this one's deadline — unless
        // that request had a longer timeout: then it moves now.
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        let result = {
            let mut work = std::pin::pin!(self.send_following(req));
            std::future::poll_fn(|cx| {
                if let Poll::Ready(done) = work.as_mut().poll(cx) {
                    return Poll::Ready(Some(done));
                }
                // Fired early (for an earlier request's deadline): moved to this one's.
                while timer.as_mut().poll(cx).is_ready() {
                    if tokio::time::Instant::now() >= deadline {
                        return Poll::Ready(None);
                    }
                    timer.as_mut().reset(deadline);
                }
                Poll::Pending
            })
            .await
        };
        self.timer = Some(timer);
        result.unwrap_or_else(|| {
            // The connection is in an unknown state after a timeout: start afresh next time.
            self.live = None;
            Err(HttpError::Timeout)
        })
    }

    async fn send_following(
        &mut self,
        mut req: OutgoingRequest,
    ) -> Result<CompletedResponse, HttpError> {
        let mut total = Duration::ZERO;
        for _ in 0..=MAX_REDIRECTS {
            let mut resp = self.send_once(&req).await?;
            total += resp.latency;
            resp.latency = total;
            let location = resp
                .headers
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok());
            match (
                req.follow_redirects && resp.status.is_redirection(),
                location,
            ) {
                (true, Some(location)) => {
                    req.uri = self.config.target.resolve_location(location)?;
                    if matches!(resp.status.as_u16(), 301..=303) && req.method != Method::HEAD {
                        req.method = Method::GET;
                        req.body = Bytes::new();
                    }
                }
                _ => return Ok(resp),
            }
        }
        Err(HttpError::InvalidResponse(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    async fn send_once(&mut self, req: &OutgoingRequest) -> Result<CompletedResponse, HttpError> {
        let mut request = self.build(req)?;
        let keep = if req.discard_body {
            0
        } else {
            self.config.max_body_size
        };
        // Without keep-alive the connection's set-up is part of the request, as for a client
        // that opens one per request.
        let keepalive = self.config.keepalive;
        let connect_started = (!keepalive).then(Instant::now);
        if !keepalive {
            self.live = None;
            self.parked = None;
        }
        let target = self.config.target.clone();
        let live = self.ready_connection().await?;
        let protocol = live.protocol();
        let started = connect_started.unwrap_or_else(Instant::now);
        let result = match live {
            Live::Http1 { sender, driver } => {
                let response = sender.send_request(request);
                drive(driver, read_response(response, keep)).await
            }
            Live::Http2(sender) => {
                // HTTP/2 names the origin in `:scheme` and `:authority`, not in a Host header.
                request.headers_mut().remove(http::header::HOST);
                *request.uri_mut() = absolute(&target, request.uri())?;
                read_response(sender.send_request(request), keep).await
            }
        };
        let (parts, reader) = match result {
            Ok(exchange) => exchange,
            Err(err) => {
                self.live = None;
                return Err(classify(&err));
            }
        };
        let latency = started.elapsed();
        if (protocol == Protocol::Http1 && connection_close(&parts.headers)) || !keepalive {
            self.live = None;
        }
        self.store_cookies(&parts.headers);
        let (body, body_size, truncated) = match reader.finish() {
            // A partial or unkept body cannot be decoded: it is counted as received.
            (body, size, cut) if cut || req.discard_body => (body, size, cut),
            (body, size, _) => decode_body(&parts.headers, body, size, self.config.max_body_size)?,
        };
        Ok(CompletedResponse {
            status: parts.status,
            headers: parts.headers,
            body,
            body_size,
            truncated,
            latency,
            protocol,
        })
    }

    fn build(&self, req: &OutgoingRequest) -> Result<Request<Full<Bytes>>, HttpError> {
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(req.uri.clone());
        let headers = builder
            .headers_mut()
            .ok_or_else(|| HttpError::InvalidRequest("bad request line".into()))?;
        headers.insert(http::header::HOST, self.config.target.authority.clone());
        for (name, value) in self.config.default_headers.iter() {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &req.headers {
            headers.append(name.clone(), value.clone());
        }
        if !headers.contains_key(http::header::COOKIE) {
            if let Some(value) = self.cookie_header() {
                headers.insert(http::header::COOKIE, value);
            }
        }
        builder
            .body(Full::new(req.body.clone()))
            .map_err(|e| HttpError::InvalidRequest(e.to_string()))
    }

    /// The user's cookies as one `Cookie` header, if it has any.
    fn cookie_header(&self) -> Option<HeaderValue> {
        let jar = self.shared.jar.lock().ok()?;
        if jar.is_empty() {
            return None;
        }
        let pairs: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        HeaderValue::from_str(&pairs.join("; ")).ok()
    }

    /// Lets hyper's state go while the user waits (its buffers and request channel, ~22 KiB
    /// of a user's memory), keeping the socket: called before a wait long enough that the
    /// re-handshake on the next request costs little beside it. Plain HTTP/1.1 only; a TLS or
    /// HTTP/2 connection, one with unread bytes or one hyper has not finished with stays as it
    /// is or is dropped (the next request connects anew, as after a close by the server).
    /// Returns whether the socket was kept without hyper's state.
    pub fn rest(&mut self) -> bool {
        let (sender, mut conn) = match self.live.take() {
            Some(Live::Http1 {
                sender,
                driver: Some(Driver::Plain(conn)),
            }) => (sender, conn),
            other => {
                self.live = other;
                return false;
            }
        };
        // With its sender gone, an idle connection is done at its next poll: it hands the
        // socket back without closing it.
        drop(sender);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(Ok(())) = conn.poll_without_shutdown(&mut cx) {
            let parts = conn.into_parts();
            if parts.read_buf.is_empty() {
                self.parked = Some(parts.io);
                return true;
            }
        }
        false
    }

    /// The live connection, opening a new one if there is none or the server closed it.
    async fn ready_connection(&mut self) -> Result<&mut Live, HttpError> {
        if let Some(io) = self.parked.take() {
            // A failed handshake on the kept socket is a closed connection: connect anew below.
            self.live = plain_handshake(io).await.ok();
        }
        let closed = match &mut self.live {
            // Driving it once lets hyper notice a close by the server while we were idle.
            Some(Live::Http1 { sender, driver }) => drive(driver, sender.ready()).await.is_err(),
            // Closed after a GOAWAY, a connection error, or by the server.
            Some(Live::Http2(sender)) => sender.is_closed(),
            None => false,
        };
        if closed {
            self.live = None;
        }
        if self.live.is_none() {
            self.live = Some(self.open().await?);
        }
        self.live
            .as_mut()
            .ok_or_else(|| HttpError::Other("no connection".into()))
    }

    /// A new connection, or a stream on the user's HTTP/2 connection when it has one open.
    async fn open(&mut self) -> Result<Live, HttpError> {
        let keepalive = self.config.keepalive;
        if keepalive && self.shared.speaks_h2() {
            let mut slot = self.shared.h2.lock().await;
            if let Some(sender) = slot.as_ref().filter(|s| !s.is_closed()) {
                return Ok(Live::Http2(sender.clone()));
            }
            let live = connect(&self.config).await?;
            self.connects += 1;
            match &live {
                Live::Http2(sender) => *slot = Some(sender.clone()),
                // ALPN chose HTTP/1.1 this time (a server behind a balancer that changed):
                // the user's requests take connections of their own again.
                Live::Http1 { .. } => {
                    *slot = None;
                    self.shared.speaks_h2.store(false, Ordering::Relaxed);
                }
            }
            return Ok(live);
        }
        let live = connect(&self.config).await?;
        self.connects += 1;
        if let (true, Live::Http2(sender)) = (keepalive, &live) {
            self.shared.speaks_h2.store(true, Ordering::Relaxed);
            *self.shared.h2.lock().await = Some(sender.clone());
        }
        Ok(live)
    }

    fn store_cookies(&mut self, headers: &HeaderMap) {
        let mut set = headers.get_all(http::header::SET_COOKIE).iter().peekable();
        if set.peek().is_none() {
            return;
        }
        let Ok(mut jar) = self.shared.jar.lock() else {
            return;
        };
        for value in set {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim().to_string(), value.trim().to_string());
            jar.retain(|(k, _)| *k != name);
            if !value.is_empty() {
                jar.push((name, value));
            }
        }
    }
}

/// Reads a response to its end, keeping at most `keep` bytes of its body.
async fn read_response(
    response: impl Future<Output = hyper::Result<Response<Incoming>>>,
    keep: usize,
) -> hyper::Result<(http::response::Parts, BodyReader)> {
    let (parts, mut body) = response.await?.into_parts();
    let mut reader = BodyReader::new(keep);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            reader.push(data);
        }
    }
    Ok((parts, reader))
}

/// `uri` (a path) with the target's scheme and authority, as an HTTP/2 request needs it.
fn absolute(target: &Target, uri: &Uri) -> Result<Uri, HttpError> {
    let mut parts = uri.clone().into_parts();
    parts.scheme = Some(if target.scheme == "https" {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    });
    parts.authority = Some(
        http::uri::Authority::try_from(target.authority.as_bytes())
            .map_err(|e| HttpError::InvalidRequest(e.to_string()))?,
    );
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    Uri::from_parts(parts).map_err(|e| HttpError::InvalidRequest(e.to_string()))
}

async fn connect(config: &ClientConfig) -> Result<Live, HttpError> {
    let target = &config.target;
    let tcp = TcpStream::connect(target.connect_addr())
        .await
        .map_err(|e| HttpError::Connect(format!("{}: {e}", target.origin)))?;
    let _ = tcp.set_nodelay(true);
    match &config.tls {
        None if config.http_version == HttpVersion::Http2 => h2_handshake(TokioIo::new(tcp)).await,
        None => plain_handshake(TokioIo::new(tcp)).await,
        Some(tls) => {
            let stream = tls::connect(tls, target, tcp).await?;
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                h2_handshake(TokioIo::new(stream)).await
            } else if config.http_version == HttpVersion::Http2 {
                Err(HttpError::Tls(tls::NO_H2.into()))
            } else {
                tls_handshake(TokioIo::new(stream)).await
            }
        }
    }
}

async fn plain_handshake(io: TokioIo<TcpStream>) -> Result<Live, HttpError> {
    let (sender, conn) = http1::handshake(io).await.map_err(|e| classify(&e))?;
    Ok(Live::Http1 {
        sender,
        driver: Some(Driver::Plain(Box::new(conn))),
    })
}

async fn tls_handshake<IO>(io: IO) -> Result<Live, HttpError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io).await.map_err(|e| classify(&e))?;
    Ok(Live::Http1 {
        sender,
        driver: Some(Driver::Tls(Box::pin(async move {
            let _ = conn.await;
        }))),
    })
}

/// HTTP/2 on an open stream (TLS after ALPN chose `h2`, or TCP with prior knowledge); the
/// connection's driver runs as a task of its own until the last handle on it is gone.
async fn h2_handshake<IO>(io: IO) -> Result<Live, HttpError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|e| classify(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Live::Http2(sender))
}

fn connection_close(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

/// The body (of `size` bytes) decoded if gzip, at most `keep` bytes of it — a gzip bomb is cut,
/// not expanded — with its size and whether it was cut.
fn decode_body(
    headers: &HeaderMap,
    body: Bytes,
    size: u64,
    keep: usize,
) -> Result<(Bytes, u64, bool), HttpError> {
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    match encoding {
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::with_capacity((body.len() * 4).min(keep));
            let limit = keep as u64 + 1;
            flate2::read::GzDecoder::new(&body[..])
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|e| HttpError::InvalidResponse(format!("bad gzip body: {e}")))?;
            let cut = out.len() > keep;
            out.truncate(keep);
            let size = out.len() as u64;
            Ok((out.into(), size, cut))
        }
        _ => Ok((body, size, false)),
    }
}

/// Maps a hyper error onto the contract's error kinds.
fn classify(err: &hyper::Error) -> HttpError {
    if err.is_timeout() {
        return HttpError::Timeout;
    }
    if err.is_parse() || err.is_parse_status() {
        return HttpError::InvalidResponse(err.to_string());
    }
    if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
        return HttpError::Reset(err.to_string());
    }
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(inner) = source {
        if let Some(h2) = inner.downcast_ref::<h2::Error>() {
            let reason = h2
                .reason()
                .map_or_else(String::new, |r| format!(" ({r:?})"));
            if h2.is_go_away() {
                return HttpError::Reset(format!("the server sent GOAWAY{reason}"));
            }
            if h2.is_reset() {
                return HttpError::Reset(format!("the server reset the stream{reason}"));
            }
            if !h2.is_io() {
                return HttpError::InvalidResponse(format!("HTTP/2: {h2}"));
            }
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => HttpError::Reset(io.to_string()),
                std::io::ErrorKind::TimedOut => HttpError::Timeout,
                _ => HttpError::Other(io.to_string()),
            };
        }
        source = inner.source();
    }
    HttpError::Other(err.to_string())
}

/// Resolves the target's address once, to fail early with a clear line when it is unreachable.
pub async fn probe(target: &Target, timeout: Duration) -> Result<SocketAddr, HttpError> {
    let connect = TcpStream::connect(target.connect_addr());
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(stream)) => stream
            .peer_addr()
            .map_err(|e| HttpError::Connect(e.to_string())),
        Ok(Err(e)) => Err(HttpError::Connect(format!("{}: {e}", target.origin))),
        Err(_) => Err(HttpError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn get(timeout: Option<Duration>) -> OutgoingRequest {
        OutgoingRequest {
            method: Method::GET,
            uri: "/".parse().unwrap(),
            headers: Vec::new(),
            body: Bytes::new(),
            timeout,
            follow_redirects: false,
            discard_body: false,
        }
    }

    /// The timer kept from request to request: a later request on the same connection still
    /// times out at its own deadline, a shorter one too, and a fast one is not cut short.
    #[tokio::test]
    async fn each_request_times_out_at_its_own_deadline_on_a_kept_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Answers the first request on each connection, then never answers again.
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    if socket.read(&mut buf).await.unwrap_or(0) > 0 {
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                    }
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        let target = Arc::new(Target::parse(&format!("http://127.0.0.1:{port}")).unwrap());
        let mut conn = Connection::new(ClientConfig::plain(target, Duration::from_millis(300)));
        let first = conn
            .send(get(None))
            .await
            .expect("the first request is answered");
        assert_eq!(first.status, StatusCode::OK);
        // The timer was armed for the first request's deadline, which has not passed yet.
        let began = Instant::now();
        assert_eq!(conn.send(get(None)).await.err(), Some(HttpError::Timeout));
        let waited = began.elapsed();
        assert!(waited >= Duration::from_millis(290), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // A fresh connection, answered; then a request with a shorter timeout than the armed one.
        assert!(conn.send(get(None)).await.is_ok());
        let began = Instant::now();
        let short = Some(Duration::from_millis(50));
        assert_eq!(conn.send(get(short)).await.err(), Some(HttpError::Timeout));
        assert!(
            began.elapsed() < Duration::from_millis(250),
            "{:?}",
            began.elapsed()
        );
    }
}
