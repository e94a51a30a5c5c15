//! The HTTP client: one keep-alive HTTP/1.1 connection per virtual user (hyper), reconnecting
//! when the server closes it, with a per-user cookie jar, same-origin redirects, gzip decoding,
//! a request timeout and distinct error kinds.

use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::plan::{ClientOptions, ResolveError, Secret, Target};

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
            Some(Arc::new(tls_config(
                options.insecure,
                options.ca_cert.as_deref(),
            )?))
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

/// hyper's connection over plain TCP, kept by its type so that a resting user can take the
/// socket back from it ([`Connection::rest`]).
type PlainConnection = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// hyper's connection future (reads and writes the socket).
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

/// An open connection. Its driver is polled inline by whoever awaits a request on it rather than
/// by a task of its own: one task wake-up and one task's memory fewer per request and per user.
struct Live {
    sender: Sender,
    /// `None` once the connection has ended (closed by the server, or failed).
    driver: Option<Driver>,
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

/// One virtual user's connection: keep-alive, reconnect on close, cookie jar.
pub struct Connection {
    config: ClientConfig,
    live: Option<Live>,
    cookies: Vec<(String, String)>,
    /// Connections opened so far (1 for a user whose connection was kept alive throughout).
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
        Connection {
            config,
            live: None,
            cookies: Vec::new(),
            connects: 0,
            parked: None,
            timer: None,
        }
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
        let request = self.build(req)?;
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
        let live = self.ready_connection().await?;
        let started = connect_started.unwrap_or_else(Instant::now);
        let response = live.sender.send_request(request);
        let exchange = async {
            let (parts, mut body) = response.await?.into_parts();
            let mut reader = BodyReader::new(keep);
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    reader.push(data);
                }
            }
            Ok::<_, hyper::Error>((parts, reader))
        };
        let (parts, reader) = match drive(&mut live.driver, exchange).await {
            Ok(exchange) => exchange,
            Err(err) => {
                self.live = None;
                return Err(classify(&err));
            }
        };
        let latency = started.elapsed();
        if connection_close(&parts.headers) || !keepalive {
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
        if !self.cookies.is_empty() && !headers.contains_key(http::header::COOKIE) {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if let Ok(value) = HeaderValue::from_str(&jar.join("; ")) {
                headers.insert(http::header::COOKIE, value);
            }
        }
        builder
            .body(Full::new(req.body.clone()))
            .map_err(|e| HttpError::InvalidRequest(e.to_string()))
    }

    /// Lets hyper's state go while the user waits (its buffers and request channel, ~22 KiB
    /// of a user's memory), keeping the socket: called before a wait long enough that the
    /// re-handshake on the next request costs little beside it. Plain TCP only; a TLS
    /// connection, one with unread bytes or one hyper has not finished with stays as it is or
    /// is dropped (the next request connects anew, as after a close by the server). Returns
    /// whether the socket was kept without hyper's state.
    pub fn rest(&mut self) -> bool {
        let (sender, mut conn) = match self.live.take() {
            Some(Live {
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
        if let Some(live) = &mut self.live {
            // Driving it once lets hyper notice a close by the server while we were idle.
            let ready = drive(&mut live.driver, live.sender.ready()).await;
            if ready.is_err() {
                self.live = None;
            }
        }
        if self.live.is_none() {
            self.live = Some(connect(&self.config).await?);
            self.connects += 1;
        }
        self.live
            .as_mut()
            .ok_or_else(|| HttpError::Other("no connection".into()))
    }

    fn store_cookies(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(http::header::SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim().to_string(), value.trim().to_string());
            self.cookies.retain(|(k, _)| *k != name);
            if !value.is_empty() {
                self.cookies.push((name, value));
            }
        }
    }
}

async fn connect(config: &ClientConfig) -> Result<Live, HttpError> {
    let target = &config.target;
    let tcp = TcpStream::connect(target.connect_addr())
        .await
        .map_err(|e| HttpError::Connect(format!("{}: {e}", target.origin)))?;
    let _ = tcp.set_nodelay(true);
    match &config.tls {
        None => plain_handshake(TokioIo::new(tcp)).await,
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|e| HttpError::Tls(format!("bad server name {}: {e}", target.host)))?;
            let stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| HttpError::Tls(e.to_string()))?;
            tls_handshake(TokioIo::new(stream)).await
        }
    }
}

async fn plain_handshake(io: TokioIo<TcpStream>) -> Result<Live, HttpError> {
    let (sender, conn) = http1::handshake(io).await.map_err(|e| classify(&e))?;
    Ok(Live {
        sender,
        driver: Some(Driver::Plain(Box::new(conn))),
    })
}

async fn tls_handshake<IO>(io: IO) -> Result<Live, HttpError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io).await.map_err(|e| classify(&e))?;
    Ok(Live {
        sender,
        driver: Some(Driver::Tls(Box::pin(async move {
            let _ = conn.await;
        }))),
    })
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

/// TLS settings for https targets: the webpki roots plus `--ca-cert` (PEM), or `--insecure`.
pub fn tls_config(
    insecure: bool,
    ca_cert: Option<&Path>,
) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    if insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_cert {
        use rustls::pki_types::pem::PemObject;
        let bad = |e: &dyn std::fmt::Display| ClientError::CaCert {
            path: path.display().to_string(),
            why: e.to_string(),
        };
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))?;
        let mut added = 0;
        for cert in certs {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad(&"no certificate found"));
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `--insecure`: accepts any server certificate (signatures are still checked).
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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
