//! The host side of the contract: what `user-context`, `request` and `response` do.

use std::str::FromStr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::Method;
use rand_core::Rng;
use wasmtime::component::Resource;

use super::bindings::perfhost::plugin::host::{Host, HostRequest, HostResponse, HostUserContext};
use super::bindings::perfhost::plugin::types::{
    DataError, Host as TypesHost, HttpError as WitHttpError, LogLevel,
};
use super::state::UserState;
use crate::client::{CompletedResponse, HttpError, OutgoingRequest};
use crate::stats::{FailureSample, RequestRecord, Shard, SAMPLE_BODY_BYTES};

/// A request being built by the guest.
pub struct RequestState {
    method: String,
    path: String,
    name: String,
    body: Bytes,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    follow_redirects: bool,
    catch_response: bool,
}

/// A completed response held for the guest; its verdict may still be pending.
pub struct ResponseState {
    method: String,
    name: String,
    response: CompletedResponse,
    /// Set once the request was recorded in statistics.
    settled: bool,
}

/// The per-user context handle; everything it needs lives in the store's `UserState`.
pub struct UserContextState;

impl TypesHost for UserState {}
impl Host for UserState {}

fn wit_error(err: &HttpError) -> WitHttpError {
    match err {
        HttpError::Connect(m) => WitHttpError::Connect(m.clone()),
        HttpError::Timeout => WitHttpError::Timeout,
        HttpError::Reset(m) => WitHttpError::Reset(m.clone()),
        HttpError::Tls(m) => WitHttpError::Tls(m.clone()),
        HttpError::InvalidRequest(m) => WitHttpError::InvalidRequest(m.clone()),
        HttpError::InvalidResponse(m) => WitHttpError::InvalidResponse(m.clone()),
        HttpError::Denied(m) => WitHttpError::Denied(m.clone()),
        HttpError::Cancelled => WitHttpError::Cancelled,
        HttpError::Other(m) => WitHttpError::Other(m.clone()),
    }
}

/// Records a response's verdict once; later calls change nothing. `verdict`: `None` applies the
/// default rule (success when status < 400), `Some(Ok(()))` forces success, `Some(Err(reason))`
/// records a failure.
fn settle(shard: &Shard, state: &mut ResponseState, verdict: Option<Result<(), String>>) {
    if state.settled {
        return;
    }
    state.settled = true;
    let status = state.response.status.as_u16();
    let failure = match verdict {
        Some(Ok(())) => None,
        Some(Err(reason)) => Some(reason),
        None => (status >= 400).then(|| format!("HTTP {status}")),
    };
    let sample = failure.as_ref().map(|error| FailureSample {
        method: state.method.clone(),
        name: state.name.clone(),
        error: error.clone(),
        status: Some(status),
        headers: header_pairs(&state.response.headers),
        body: String::from_utf8_lossy(
            &state.response.body[..state.response.body.len().min(SAMPLE_BODY_BYTES)],
        )
        .into_owned(),
        time: crate::stats::unix_now(),
    });
    shard.record(
        &RequestRecord {
            method: &state.method,
            name: &state.name,
            latency_us: state.response.latency.as_micros() as u64,
            content_bytes: state.response.body.len() as u64,
            error: failure.as_deref(),
        },
        sample,
    );
}

fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

impl UserState {
    /// Applies the default rule to every response the guest kept unsettled (end of a task or a
    /// trap). Called by the user loop.
    pub fn settle_pending(&mut self) {
        let UserState {
            table,
            shard,
            pending,
            ..
        } = self;
        for rep in pending.drain(..) {
            let resource: Resource<ResponseState> = Resource::new_own(rep);
            if let Ok(state) = table.get_mut(&resource) {
                settle(shard, state, None);
            }
        }
    }

    /// Gives a response its explicit verdict (catch-response).
    fn verdict(
        &mut self,
        resp: &Resource<ResponseState>,
        verdict: Result<(), String>,
    ) -> wasmtime::Result<()> {
        let rep = resp.rep();
        let UserState {
            table,
            shard,
            pending,
            ..
        } = self;
        let state = table.get_mut(resp)?;
        settle(shard, state, Some(verdict));
        pending.retain(|r| *r != rep);
        Ok(())
    }

    fn record_error(&mut self, method: &str, name: &str, elapsed: Duration, err: &HttpError) {
        if matches!(err, HttpError::Denied(_)) {
            self.shard.record_denied();
        }
        let message = err.to_string();
        self.shard.record(
            &RequestRecord {
                method,
                name,
                latency_us: elapsed.as_micros() as u64,
                content_bytes: 0,
                error: Some(&message),
            },
            Some(FailureSample {
                method: method.to_string(),
                name: name.to_string(),
                error: message.clone(),
                status: None,
                headers: Vec::new(),
                body: String::new(),
                time: crate::stats::unix_now(),
            }),
        );
    }
}

/// Records a request as `cancelled` if the user is dropped while it is in flight (run stop).
struct InFlight<'a> {
    shard: &'a Shard,
    method: &'a str,
    name: &'a str,
    started: Instant,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            let message = HttpError::Cancelled.to_string();
            self.shard.record(
                &RequestRecord {
                    method: self.method,
                    name: self.name,
                    latency_us: self.started.elapsed().as_micros() as u64,
                    content_bytes: 0,
                    error: Some(&message),
                },
                None,
            );
        }
    }
}

impl HostRequest for UserState {
    fn new(
        &mut self,
        method: String,
        path: String,
        name: String,
        body: Vec<u8>,
    ) -> wasmtime::Result<Resource<RequestState>> {
        Ok(self.table.push(RequestState {
            method,
            path,
            name,
            body: Bytes::from(body),
            headers: Vec::new(),
            timeout: None,
            follow_redirects: true,
            catch_response: false,
        })?)
    }

    fn header(
        &mut self,
        req: Resource<RequestState>,
        name: String,
        value: String,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&req)?.headers.push((name, value));
        Ok(())
    }

    fn headers(
        &mut self,
        req: Resource<RequestState>,
        headers: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&req)?.headers.extend(headers);
        Ok(())
    }

    fn timeout_ms(&mut self, req: Resource<RequestState>, ms: u32) -> wasmtime::Result<()> {
        self.table.get_mut(&req)?.timeout = Some(Duration::from_millis(ms.into()));
        Ok(())
    }

    fn follow_redirects(
        &mut self,
        req: Resource<RequestState>,
        follow: bool,
    ) -> wasmtime::Result<()> {
        self.table.get_mut(&req)?.follow_redirects = follow;
        Ok(())
    }

    fn catch_response(&mut self, req: Resource<RequestState>) -> wasmtime::Result<()> {
        self.table.get_mut(&req)?.catch_response = true;
        Ok(())
    }

    fn drop(&mut self, req: Resource<RequestState>) -> wasmtime::Result<()> {
        self.table.delete(req)?;
        Ok(())
    }
}

impl HostResponse for UserState {
    fn status(&mut self, resp: Resource<ResponseState>) -> wasmtime::Result<u16> {
        Ok(self.table.get(&resp)?.response.status.as_u16())
    }

    fn header(
        &mut self,
        resp: Resource<ResponseState>,
        name: String,
    ) -> wasmtime::Result<Option<String>> {
        let state = self.table.get(&resp)?;
        Ok(state
            .response
            .headers
            .get(name.as_str())
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()))
    }

    fn headers(
        &mut self,
        resp: Resource<ResponseState>,
    ) -> wasmtime::Result<Vec<(String, String)>> {
        let state = self.table.get(&resp)?;
        Ok(header_pairs(&state.response.headers))
    }

    fn body(&mut self, resp: Resource<ResponseState>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&resp)?.response.body.to_vec())
    }

    fn body_size(&mut self, resp: Resource<ResponseState>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&resp)?.response.body.len() as u64)
    }

    fn elapsed_us(&mut self, resp: Resource<ResponseState>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&resp)?.response.latency.as_micros() as u64)
    }

    fn success(&mut self, resp: Resource<ResponseState>) -> wasmtime::Result<()> {
        self.verdict(&resp, Ok(()))
    }

    fn failure(&mut self, resp: Resource<ResponseState>, reason: String) -> wasmtime::Result<()> {
        self.verdict(&resp, Err(reason))
    }

    fn drop(&mut self, resp: Resource<ResponseState>) -> wasmtime::Result<()> {
        let rep = resp.rep();
        // Table slots are reused: forget this one before another response takes it.
        self.pending.retain(|r| *r != rep);
        let mut state = self.table.delete(resp)?;
        settle(&self.shard, &mut state, None);
        Ok(())
    }
}

impl HostUserContext for UserState {
    async fn send(
        &mut self,
        _ctx: Resource<UserContextState>,
        req: Resource<RequestState>,
    ) -> wasmtime::Result<Result<Resource<ResponseState>, WitHttpError>> {
        // `send` takes the request by ownership: no drop follows, so remove it here.
        let mut req = self.table.delete(req)?;
        let name = if req.name.is_empty() {
            req.path.clone()
        } else {
            std::mem::take(&mut req.name)
        };
        let started = Instant::now();
        self.cpu.enter_host(started);
        let result = self.send_request(&req, &name).await;
        self.cpu.leave_host();
        match result {
            Ok(response) => {
                if self.env.trace {
                    trace_exchange(self.user_id, &req, &response);
                }
                let mut state = ResponseState {
                    method: req.method,
                    name,
                    response,
                    settled: false,
                };
                if !req.catch_response {
                    settle(&self.shard, &mut state, None);
                }
                let handle = self.table.push(state)?;
                if req.catch_response {
                    self.pending.push(handle.rep());
                }
                Ok(Ok(handle))
            }
            Err(err) => {
                if self.env.trace {
                    eprintln!(
                        "[user {}] {} {} -> error: {err}",
                        self.user_id, req.method, req.path
                    );
                }
                self.record_error(&req.method, &name, started.elapsed(), &err);
                Ok(Err(wit_error(&err)))
            }
        }
    }

    fn random_u64(&mut self, _ctx: Resource<UserContextState>) -> wasmtime::Result<u64> {
        Ok(self.rng.next_u64())
    }

    fn random_f64(&mut self, _ctx: Resource<UserContextState>) -> wasmtime::Result<f64> {
        // 53 random bits → [0, 1).
        Ok((self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64))
    }

    fn log(
        &mut self,
        _ctx: Resource<UserContextState>,
        level: LogLevel,
        message: String,
    ) -> wasmtime::Result<()> {
        let user = self.user_id;
        match level {
            LogLevel::Trace => tracing::trace!(user, "{message}"),
            LogLevel::Debug => tracing::debug!(user, "{message}"),
            LogLevel::Info => tracing::info!(user, "{message}"),
            LogLevel::Warn => tracing::warn!(user, "{message}"),
            LogLevel::Error => tracing::error!(user, "{message}"),
        }
        Ok(())
    }

    fn config(
        &mut self,
        _ctx: Resource<UserContextState>,
        key: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.env.config_values.get(&key).cloned())
    }

    fn data_next(
        &mut self,
        _ctx: Resource<UserContextState>,
        name: String,
    ) -> wasmtime::Result<Result<String, DataError>> {
        Ok(match self.env.data.next(&name, self.user_id) {
            Ok(row) => Ok(row),
            Err(super::data::NextError::Unknown) => Err(DataError::Unknown(name)),
            Err(super::data::NextError::Exhausted) => Err(DataError::Exhausted),
        })
    }

    fn record_event(
        &mut self,
        _ctx: Resource<UserContextState>,
        kind: String,
        name: String,
        duration_us: u64,
        size: u64,
        error: Option<String>,
    ) -> wasmtime::Result<()> {
        self.shard.record(
            &RequestRecord {
                method: &kind,
                name: &name,
                latency_us: duration_us,
                content_bytes: size,
                error: error.as_deref(),
            },
            None,
        );
        Ok(())
    }

    fn origin(&mut self, _ctx: Resource<UserContextState>) -> wasmtime::Result<String> {
        Ok(self.env.client.target.origin.clone())
    }

    fn user_id(&mut self, _ctx: Resource<UserContextState>) -> wasmtime::Result<u64> {
        Ok(self.user_id)
    }

    fn drop(&mut self, ctx: Resource<UserContextState>) -> wasmtime::Result<()> {
        self.table.delete(ctx)?;
        Ok(())
    }
}

impl UserState {
    async fn send_request(
        &mut self,
        req: &RequestState,
        name: &str,
    ) -> Result<CompletedResponse, HttpError> {
        let method = Method::from_str(&req.method)
            .map_err(|_| HttpError::InvalidRequest(format!("bad method `{}`", req.method)))?;
        let uri = self.env.client.target.resolve(&req.path)?;
        let mut headers = Vec::with_capacity(req.headers.len());
        for (k, v) in &req.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| HttpError::InvalidRequest(format!("bad header name `{k}`")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| HttpError::InvalidRequest(format!("bad value for header `{k}`")))?;
            headers.push((name, value));
        }
        let outgoing = OutgoingRequest {
            method,
            uri,
            headers,
            body: req.body.clone(),
            timeout: req.timeout,
            follow_redirects: req.follow_redirects,
        };
        let mut guard = InFlight {
            shard: &self.shard,
            method: &req.method,
            name,
            started: Instant::now(),
            done: false,
        };
        let result = self.courier.exchange(outgoing).await;
        guard.done = true;
        result
    }
}

fn trace_exchange(user: u64, req: &RequestState, resp: &CompletedResponse) {
    let body = String::from_utf8_lossy(&req.body);
    eprintln!(
        "[user {user}] --> {} {} {}",
        req.method,
        req.path,
        body.chars().take(2048).collect::<String>()
    );
    let text = String::from_utf8_lossy(&resp.body);
    eprintln!(
        "[user {user}] <-- {} in {:.1} ms: {}",
        resp.status.as_u16(),
        resp.latency.as_secs_f64() * 1000.0,
        text.chars().take(2048).collect::<String>()
    );
}
