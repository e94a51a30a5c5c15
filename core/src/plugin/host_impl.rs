//! The host side of the contract: what `user-context`, `request` and `response` do.

use std::str::FromStr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::Method;
use rand_core::Rng;
use rand_pcg::Pcg64Mcg;
use wasmtime::component::{Accessor, HasSelf, Resource};

use super::bindings::perfhost::plugin::host::{
    Host, HostRequest, HostResponse, HostUserContext, HostUserContextWithStore,
};
use super::bindings::perfhost::plugin::types::{
    DataError, Host as TypesHost, HttpError as WitHttpError, LogLevel,
};
use super::state::GroupState;
use super::state::RunEnv;
use crate::client::{CompletedResponse, Connection, HttpError, OutgoingRequest, UserClient};
use crate::events::Event;
use crate::plan::format_size;
use crate::stats::{FailureSample, RequestRecord, Tally, SAMPLE_BODY_BYTES};

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
    discard_body: bool,
}

/// A completed response held for the guest; its verdict may still be pending.
pub struct ResponseState {
    /// The `user-context` (table rep) of the user that sent it.
    owner: u32,
    method: String,
    name: String,
    response: CompletedResponse,
    /// Set once the request was recorded in statistics.
    settled: bool,
    /// The owner's lateness against its schedule when it sent this (see `RequestRecord`).
    lateness_us: Option<u64>,
}

/// One virtual user's own state. Many users share an instance (and its Store); each has one of
/// these, reached through the `user-context` handle its calls pass.
pub struct UserContextState {
    /// The user's id: users are numbered from 0 as this process starts them.
    pub user_id: u64,
    /// The user's RNG for `random-u64`, seeded from (seed, user id).
    pub rng: Pcg64Mcg,
    /// Catch-response responses without a verdict yet (table reps).
    pub pending: Vec<u32>,
    /// The user's connections; one is leased out of it while a request is in flight, so no
    /// borrow of the Store spans the exchange.
    pub client: UserClient,
    /// The user runs its `on-stop`: its requests still go out while the run stops.
    pub in_on_stop: bool,
    /// How late the current task started against the user's schedule (`None`: no schedule).
    pub lateness_us: Option<u64>,
    /// Requests of this user recorded as failures (the engine reads it per task).
    pub failed_requests: u64,
}

impl TypesHost for GroupState {}
impl Host for GroupState {}

fn user_of(rep: u32) -> Resource<UserContextState> {
    Resource::new_borrow(rep)
}

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
fn settle(
    tally: &Tally,
    class: u32,
    state: &mut ResponseState,
    verdict: Option<Result<(), String>>,
) -> bool {
    if state.settled {
        return false;
    }
    state.settled = true;
    let status = state.response.status.as_u16();
    let failure = match verdict {
        Some(Ok(())) => None,
        Some(Err(reason)) => Some(reason),
        None => (status >= 400).then(|| format!("HTTP {status}")),
    };
    let record = RequestRecord {
        class,
        method: &state.method,
        name: &state.name,
        latency_us: state.response.latency.as_micros() as u64,
        content_bytes: state.response.body_size,
        error: failure.as_deref(),
        lateness_us: state.lateness_us,
        protocol: Some(state.response.protocol),
    };
    match &failure {
        None => tally.record(&record),
        Some(error) => tally.record_failure(&record, || FailureSample {
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
        }),
    }
    failure.is_some()
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

impl GroupState {
    /// Applies the default rule to every response user `ctx` kept unsettled (end of a task).
    pub fn settle_pending(&mut self, ctx: u32) {
        let Ok(user) = self.table.get_mut(&user_of(ctx)) else {
            return;
        };
        let pending = std::mem::take(&mut user.pending);
        for rep in pending {
            let resource: Resource<ResponseState> = Resource::new_own(rep);
            if let Ok(state) = self.table.get_mut(&resource) {
                if settle(&self.tally, self.class, state, None) {
                    self.count_failure(ctx);
                }
            }
        }
    }

    /// One more failed request of user `ctx`.
    fn count_failure(&mut self, ctx: u32) {
        if let Ok(user) = self.table.get_mut(&user_of(ctx)) {
            user.failed_requests += 1;
        }
    }

    /// User `ctx` runs its `on-stop`: its requests go out even while the run stops.
    pub fn enter_on_stop(&mut self, ctx: u32) {
        if let Ok(user) = self.table.get_mut(&user_of(ctx)) {
            user.in_on_stop = true;
        }
    }

    /// Forgets a response in its owner's pending list (table slots are reused).
    fn forget_pending(&mut self, owner: u32, rep: u32) {
        if let Ok(user) = self.table.get_mut(&user_of(owner)) {
            user.pending.retain(|r| *r != rep);
        }
    }

    /// Gives a response its explicit verdict (catch-response).
    fn verdict(
        &mut self,
        resp: &Resource<ResponseState>,
        verdict: Result<(), String>,
    ) -> wasmtime::Result<()> {
        let state = self.table.get_mut(resp)?;
        let failed = settle(&self.tally, self.class, state, Some(verdict));
        let owner = state.owner;
        if failed {
            self.count_failure(owner);
        }
        self.forget_pending(owner, resp.rep());
        Ok(())
    }

    fn record_error(
        &mut self,
        ctx: u32,
        method: &str,
        name: &str,
        elapsed: Duration,
        err: &HttpError,
    ) {
        let lateness_us = self
            .table
            .get(&user_of(ctx))
            .ok()
            .and_then(|u| u.lateness_us);
        self.count_failure(ctx);
        if matches!(err, HttpError::Denied(_)) {
            self.tally.record_denied();
        }
        let message = err.to_string();
        let record = RequestRecord {
            class: self.class,
            method,
            name,
            latency_us: elapsed.as_micros() as u64,
            content_bytes: 0,
            error: Some(&message),
            lateness_us,
            protocol: None,
        };
        self.tally.record_failure(&record, || FailureSample {
            method: method.to_string(),
            name: name.to_string(),
            error: message.clone(),
            status: None,
            headers: Vec::new(),
            body: String::new(),
            time: crate::stats::unix_now(),
        });
    }
}

/// Records a request as `cancelled` if the user is dropped while it is in flight (run stop).
struct InFlight<'a> {
    tally: &'a Tally,
    class: u32,
    method: &'a str,
    name: &'a str,
    started: Instant,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            let message = HttpError::Cancelled.to_string();
            self.tally.record(&RequestRecord {
                class: self.class,
                method: self.method,
                name: self.name,
                latency_us: self.started.elapsed().as_micros() as u64,
                content_bytes: 0,
                error: Some(&message),
                lateness_us: None,
                protocol: None,
            });
        }
    }
}

impl HostRequest for GroupState {
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
            discard_body: false,
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

    fn discard_body(&mut self, req: Resource<RequestState>) -> wasmtime::Result<()> {
        self.table.get_mut(&req)?.discard_body = true;
        Ok(())
    }

    fn drop(&mut self, req: Resource<RequestState>) -> wasmtime::Result<()> {
        self.table.delete(req)?;
        Ok(())
    }
}

impl HostResponse for GroupState {
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
        let response = &self.table.get(&resp)?.response;
        let body = response.body.to_vec();
        if response.truncated {
            // The plugin reads a body the host could not keep whole: say so in the stats.
            let reason = format!(
                "response body of {} exceeds --max-body-size {}: only its beginning was kept — raise --max-body-size, or use discard-body if the body is not needed",
                format_size(response.body_size as usize),
                format_size(self.env.client.max_body_size)
            );
            self.verdict(&resp, Err(reason))?;
        }
        Ok(body)
    }

    fn body_size(&mut self, resp: Resource<ResponseState>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&resp)?.response.body_size)
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
        let mut state = self.table.delete(resp)?;
        // Table slots are reused: forget this one before another response takes it.
        self.forget_pending(state.owner, rep);
        if settle(&self.tally, self.class, &mut state, None) {
            self.count_failure(state.owner);
        }
        Ok(())
    }
}

/// What `send` takes out of the Store before awaiting the exchange.
pub(super) struct Outgoing {
    req: RequestState,
    name: String,
    /// `None` while the user's six HTTP/1.1 connections are all in use: it waits for one.
    conn: Option<Connection>,
    tally: std::sync::Arc<Tally>,
    class: u32,
    /// Never sent (the run is stopping): not recorded.
    refused: bool,
}

impl GroupState {
    /// Woken when one of user `ctx`'s connections comes back (`UserClient::freed`).
    fn freed(
        &mut self,
        ctx: &Resource<UserContextState>,
    ) -> wasmtime::Result<std::sync::Arc<tokio::sync::Notify>> {
        Ok(self.table.get_mut(ctx)?.client.freed())
    }

    /// A connection for user `ctx`'s next request, if one is free (`UserClient::lease`).
    fn lease(&mut self, ctx: &Resource<UserContextState>) -> wasmtime::Result<Option<Connection>> {
        let config = &self.env.client;
        Ok(self.table.get_mut(ctx)?.client.lease(config))
    }

    /// Lets user `ctx`'s connection rest (`client::Connection::rest`) while it `waits`, and
    /// with `--trace` says so: the one place the engine's waits and `sleep` rest a connection.
    pub(crate) fn rest_user(&mut self, ctx: u32, waits: &str) {
        let Ok(user) = self.table.get_mut(&user_of(ctx)) else {
            return;
        };
        let rested = user.client.rest();
        if rested && self.env.trace {
            let line = format!(
                "[user {}] connection rests while the user {waits} (socket kept)",
                user.user_id
            );
            (self.env.events)(Event::Trace(&line));
        }
    }

    /// Around `sleep`: the wait is the host's time, not the guest's computing; a long one lets
    /// the user's connection rest. Returns the run's stop signal to wait on.
    pub(super) fn begin_sleep(
        &mut self,
        ctx: &Resource<UserContextState>,
        ms: u32,
    ) -> crate::stop::StopHandle {
        self.clock.host_activity();
        if Duration::from_millis(ms.into()) >= crate::client::REST_AFTER {
            self.rest_user(ctx.rep(), "sleeps");
        }
        self.env.stop.clone()
    }

    pub(super) fn begin_send(
        &mut self,
        ctx: &Resource<UserContextState>,
        req: Resource<RequestState>,
    ) -> wasmtime::Result<(Result<OutgoingRequest, HttpError>, Outgoing)> {
        // `send` takes the request by ownership: no drop follows, so remove it here.
        let mut req = self.table.delete(req)?;
        let name = if req.name.is_empty() {
            req.path.clone()
        } else {
            std::mem::take(&mut req.name)
        };
        let user = self.table.get_mut(ctx)?;
        // Once the run stops, new requests are refused at once (a plugin looping requests must
        // not keep loading the target for the stop timeout); `on-stop` may still send.
        let refused = self.env.stop.is_stopping() && !user.in_on_stop;
        let conn = if refused {
            None
        } else {
            user.client.lease(&self.env.client)
        };
        // A refused request is no break in the guest's computing: a plugin that loops on them
        // (ignoring the error) is stopped by its CPU budget like any other endless loop.
        if !refused {
            self.clock.host_activity();
        }
        let request = if refused {
            Err(HttpError::Cancelled)
        } else {
            outgoing_request(&self.env.client.target, &req)
        };
        let sent = Outgoing {
            req,
            name,
            conn,
            tally: self.tally.clone(),
            class: self.class,
            refused,
        };
        Ok((request, sent))
    }

    pub(super) fn end_send(
        &mut self,
        ctx: &Resource<UserContextState>,
        sent: Outgoing,
        result: Result<CompletedResponse, HttpError>,
        started: Instant,
    ) -> wasmtime::Result<Result<Resource<ResponseState>, WitHttpError>> {
        if !sent.refused {
            self.clock.host_activity();
        }
        let Outgoing {
            req,
            name,
            conn,
            refused,
            ..
        } = sent;
        let user = self.table.get_mut(ctx)?;
        if let Some(conn) = conn {
            user.client.give_back(conn);
        }
        let user_id = user.user_id;
        let lateness_us = user.lateness_us;
        match result {
            Ok(response) => {
                if self.env.trace {
                    trace_exchange(user_id, &req, &response, &self.env);
                }
                // A body cut at --max-body-size keeps its verdict open until the task ends: reading
                // it makes the request a failure (see `body`).
                let deferred = req.catch_response || response.truncated;
                let mut state = ResponseState {
                    owner: ctx.rep(),
                    method: req.method,
                    name,
                    response,
                    settled: false,
                    lateness_us,
                };
                if !deferred && settle(&self.tally, self.class, &mut state, None) {
                    self.count_failure(ctx.rep());
                }
                let handle = self.table.push(state)?;
                if deferred {
                    self.table.get_mut(ctx)?.pending.push(handle.rep());
                }
                Ok(Ok(handle))
            }
            Err(err) => {
                if self.env.trace {
                    let line = format!(
                        "[user {user_id}] {} {} -> error: {err}",
                        req.method, req.path
                    );
                    (self.env.events)(Event::Trace(&self.env.redactor.redact(&line)));
                }
                if !refused {
                    self.record_error(ctx.rep(), &req.method, &name, started.elapsed(), &err);
                }
                Ok(Err(wit_error(&err)))
            }
        }
    }
}

impl<T> HostUserContextWithStore<T> for HasSelf<GroupState> {
    async fn send(
        accessor: &Accessor<T, Self>,
        ctx: Resource<UserContextState>,
        req: Resource<RequestState>,
    ) -> wasmtime::Result<Result<Resource<ResponseState>, WitHttpError>> {
        send(accessor, ctx, req).await
    }

    /// The requests go out at once, as the user's concurrent sends (streams of its HTTP/2
    /// connection, or up to six HTTP/1.1 connections); the results keep the batch's order.
    async fn send_batch(
        accessor: &Accessor<T, Self>,
        ctx: Resource<UserContextState>,
        reqs: Vec<Resource<RequestState>>,
    ) -> wasmtime::Result<Vec<Result<Resource<ResponseState>, WitHttpError>>> {
        let user = ctx.rep();
        let sends = reqs
            .into_iter()
            .map(|req| send(accessor, user_of(user), req));
        futures_util::future::try_join_all(sends).await
    }

    /// Suspends only this user's task: the instance's other users go on.
    async fn sleep(
        accessor: &Accessor<T, Self>,
        ctx: Resource<UserContextState>,
        ms: u32,
    ) -> wasmtime::Result<()> {
        let stop = accessor.with(|mut access| access.get().begin_sleep(&ctx, ms));
        sleep_until_stop(&stop, ms).await;
        accessor.with(|mut access| access.get().clock.host_activity());
        Ok(())
    }
}

/// Waits `ms` milliseconds, or less when the run stops first.
pub(super) async fn sleep_until_stop(stop: &crate::stop::StopHandle, ms: u32) {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(ms.into())) => {}
        _ = stop.stopped() => {}
    }
}

/// `user-context.send` of the async world: the exchange runs outside the Store, so the
/// instance's other users and the thread's other instances go on while it waits.
pub(super) async fn send<T>(
    accessor: &Accessor<T, HasSelf<GroupState>>,
    ctx: Resource<UserContextState>,
    req: Resource<RequestState>,
) -> wasmtime::Result<Result<Resource<ResponseState>, WitHttpError>> {
    let (request, mut sent) = accessor.with(|mut access| access.get().begin_send(&ctx, req))?;
    // The user's six HTTP/1.1 connections are busy with its other requests: wait for one.
    while sent.conn.is_none() && !sent.refused && request.is_ok() {
        let freed = accessor.with(|mut access| access.get().freed(&ctx))?;
        freed.notified().await;
        sent.conn = accessor.with(|mut access| access.get().lease(&ctx))?;
    }
    if sent.refused {
        // Answered without waiting, a refused request would let a plugin that loops on them
        // run without ever handing the thread back: its users could not be cancelled at the
        // stop timeout, and the worker never ended. One yield per refusal lets them be.
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    let result = exchange(request, &mut sent, started).await;
    accessor.with(|mut access| access.get().end_send(&ctx, sent, result, started))
}

/// The exchange itself, on the user's connection; a cancelled one is recorded as such.
pub(super) async fn exchange(
    request: Result<OutgoingRequest, HttpError>,
    sent: &mut Outgoing,
    started: Instant,
) -> Result<CompletedResponse, HttpError> {
    let request = request?;
    let mut guard = InFlight {
        tally: &sent.tally,
        class: sent.class,
        method: &sent.req.method,
        name: &sent.name,
        started,
        done: false,
    };
    let Some(conn) = sent.conn.as_mut() else {
        return Err(HttpError::Other("no connection".into()));
    };
    let result = conn.send(request).await;
    guard.done = true;
    result
}

/// One request of a batch, begun (`GroupState::begin_send`) and not yet exchanged.
pub(super) type Begun = (Result<OutgoingRequest, HttpError>, Outgoing, Instant);

/// Exchanges a batch's requests at once (`send-batch`): those that hold a connection start
/// now; the others, beyond the user's six HTTP/1.1 connections, each take the connection of
/// the next one to finish. Returns every request's outcome in the batch's order.
pub(super) async fn exchange_batch(
    batch: Vec<Begun>,
) -> Vec<(Outgoing, Result<CompletedResponse, HttpError>, Instant)> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let mut outcomes: Vec<Option<_>> = (0..batch.len()).map(|_| None).collect();
    let mut waiting = std::collections::VecDeque::new();
    let mut running = FuturesUnordered::new();
    let one = |i: usize, (request, mut sent, started): Begun| async move {
        let result = exchange(request, &mut sent, started).await;
        (i, sent, result, started)
    };
    for (i, begun) in batch.into_iter().enumerate() {
        let (request, sent, _) = &begun;
        if sent.conn.is_some() || sent.refused || request.is_err() {
            running.push(one(i, begun));
        } else {
            waiting.push_back((i, begun));
        }
    }
    while let Some((i, mut sent, result, started)) = running.next().await {
        if sent.conn.is_some() {
            if let Some((j, mut next)) = waiting.pop_front() {
                next.1.conn = sent.conn.take();
                running.push(one(j, next));
            }
        }
        outcomes[i] = Some((sent, result, started));
    }
    // Only when no request of the batch held a connection (none can be: a batch leases what
    // the user has free, and the sync world's one user has all six).
    for (i, (_, sent, started)) in waiting {
        outcomes[i] = Some((
            sent,
            Err(HttpError::Other("no connection free".into())),
            started,
        ));
    }
    outcomes.into_iter().flatten().collect()
}

impl HostUserContext for GroupState {
    fn random_u64(&mut self, ctx: Resource<UserContextState>) -> wasmtime::Result<u64> {
        Ok(self.table.get_mut(&ctx)?.rng.next_u64())
    }

    fn random_f64(&mut self, ctx: Resource<UserContextState>) -> wasmtime::Result<f64> {
        // 53 random bits → [0, 1).
        let bits = self.table.get_mut(&ctx)?.rng.next_u64();
        Ok((bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64))
    }

    fn log(
        &mut self,
        ctx: Resource<UserContextState>,
        level: LogLevel,
        message: String,
    ) -> wasmtime::Result<()> {
        let user = self.table.get(&ctx)?.user_id;
        let level = match level {
            LogLevel::Trace => tracing::Level::TRACE,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error => tracing::Level::ERROR,
        };
        if let Ok(mut log) = self.log.lock() {
            log.emit(level, Some(user), &message);
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
        ctx: Resource<UserContextState>,
        name: String,
    ) -> wasmtime::Result<Result<String, DataError>> {
        let user_id = self.table.get(&ctx)?.user_id;
        Ok(match self.env.data.next(&name, user_id) {
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
        self.tally.record(&RequestRecord {
            class: self.class,
            method: &kind,
            name: &name,
            latency_us: duration_us,
            content_bytes: size,
            error: error.as_deref(),
            lateness_us: None,
            protocol: None,
        });
        Ok(())
    }

    fn origin(&mut self, _ctx: Resource<UserContextState>) -> wasmtime::Result<String> {
        Ok(self.env.client.target.origin.clone())
    }

    fn user_id(&mut self, ctx: Resource<UserContextState>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&ctx)?.user_id)
    }

    fn drop(&mut self, ctx: Resource<UserContextState>) -> wasmtime::Result<()> {
        self.table.delete(ctx)?;
        Ok(())
    }
}

/// The client's form of a guest's request, or why it cannot be sent.
fn outgoing_request(
    target: &crate::plan::Target,
    req: &RequestState,
) -> Result<OutgoingRequest, HttpError> {
    let method = Method::from_str(&req.method)
        .map_err(|_| HttpError::InvalidRequest(format!("bad method `{}`", req.method)))?;
    let uri = target.resolve(&req.path)?;
    let mut headers = Vec::with_capacity(req.headers.len());
    for (k, v) in &req.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| HttpError::InvalidRequest(format!("bad header name `{k}`")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| HttpError::InvalidRequest(format!("bad value for header `{k}`")))?;
        headers.push((name, value));
    }
    Ok(OutgoingRequest {
        method,
        uri,
        headers,
        body: req.body.clone(),
        timeout: req.timeout,
        follow_redirects: req.follow_redirects,
        discard_body: req.discard_body,
    })
}

fn trace_exchange(user: u64, req: &RequestState, resp: &CompletedResponse, env: &RunEnv) {
    let body = String::from_utf8_lossy(&req.body);
    let sent = format!(
        "[user {user}] --> {} {} {}",
        req.method,
        req.path,
        body.chars().take(2048).collect::<String>()
    );
    (env.events)(Event::Trace(&env.redactor.redact(&sent)));
    let text = String::from_utf8_lossy(&resp.body);
    let received = format!(
        "[user {user}] <-- {} {} in {:.1} ms: {}",
        resp.protocol.as_str(),
        resp.status.as_u16(),
        resp.latency.as_secs_f64() * 1000.0,
        text.chars().take(2048).collect::<String>()
    );
    (env.events)(Event::Trace(&env.redactor.redact(&received)));
}
