//! The host side of the sync world (`host-sync`): the same resources as the async world's
//! `host`, so every method forwards to the async world's implementation; only `send` differs
//! in the guest's ABI (a plain call that blocks its own instance), not on the host's side.

use wasmtime::component::Resource;

use super::bindings::perfhost::plugin::host::{HostRequest, HostResponse, HostUserContext};
use super::bindings::perfhost::plugin::types::{DataError, HttpError, LogLevel};
use super::bindings::sync::perfhost::plugin::host_sync as sync;
use super::host_impl::{RequestState, ResponseState, UserContextState};
use super::state::GroupState;

type R<T> = wasmtime::Result<T>;

impl sync::Host for GroupState {}

impl sync::HostRequest for GroupState {
    fn new(
        &mut self,
        method: String,
        path: String,
        name: String,
        body: Vec<u8>,
    ) -> R<Resource<RequestState>> {
        HostRequest::new(self, method, path, name, body)
    }
    fn header(&mut self, req: Resource<RequestState>, name: String, value: String) -> R<()> {
        HostRequest::header(self, req, name, value)
    }
    fn headers(&mut self, req: Resource<RequestState>, headers: Vec<(String, String)>) -> R<()> {
        HostRequest::headers(self, req, headers)
    }
    fn timeout_ms(&mut self, req: Resource<RequestState>, ms: u32) -> R<()> {
        HostRequest::timeout_ms(self, req, ms)
    }
    fn follow_redirects(&mut self, req: Resource<RequestState>, follow: bool) -> R<()> {
        HostRequest::follow_redirects(self, req, follow)
    }
    fn catch_response(&mut self, req: Resource<RequestState>) -> R<()> {
        HostRequest::catch_response(self, req)
    }
    fn discard_body(&mut self, req: Resource<RequestState>) -> R<()> {
        HostRequest::discard_body(self, req)
    }
    fn drop(&mut self, req: Resource<RequestState>) -> R<()> {
        HostRequest::drop(self, req)
    }
}

impl sync::HostResponse for GroupState {
    fn status(&mut self, resp: Resource<ResponseState>) -> R<u16> {
        HostResponse::status(self, resp)
    }
    fn header(&mut self, resp: Resource<ResponseState>, name: String) -> R<Option<String>> {
        HostResponse::header(self, resp, name)
    }
    fn headers(&mut self, resp: Resource<ResponseState>) -> R<Vec<(String, String)>> {
        HostResponse::headers(self, resp)
    }
    fn body(&mut self, resp: Resource<ResponseState>) -> R<Vec<u8>> {
        HostResponse::body(self, resp)
    }
    fn body_size(&mut self, resp: Resource<ResponseState>) -> R<u64> {
        HostResponse::body_size(self, resp)
    }
    fn elapsed_us(&mut self, resp: Resource<ResponseState>) -> R<u64> {
        HostResponse::elapsed_us(self, resp)
    }
    fn success(&mut self, resp: Resource<ResponseState>) -> R<()> {
        HostResponse::success(self, resp)
    }
    fn failure(&mut self, resp: Resource<ResponseState>, reason: String) -> R<()> {
        HostResponse::failure(self, resp, reason)
    }
    fn drop(&mut self, resp: Resource<ResponseState>) -> R<()> {
        HostResponse::drop(self, resp)
    }
}

impl sync::HostUserContext for GroupState {
    /// Holds the Store across the exchange: the instance has this one user, so nothing else
    /// waits on it, and the thread's other instances run meanwhile.
    async fn send(
        &mut self,
        ctx: Resource<UserContextState>,
        req: Resource<RequestState>,
    ) -> R<Result<Resource<ResponseState>, HttpError>> {
        let (request, mut sent) = self.begin_send(&ctx, req)?;
        let started = std::time::Instant::now();
        let result = super::host_impl::exchange(request, &mut sent, started).await;
        self.end_send(&ctx, sent, result, started)
    }
    /// Sends the batch at once (`host_impl::exchange_batch`) while the instance, with its one
    /// user, waits for all of it.
    async fn send_batch(
        &mut self,
        ctx: Resource<UserContextState>,
        reqs: Vec<Resource<RequestState>>,
    ) -> R<Vec<Result<Resource<ResponseState>, HttpError>>> {
        let mut batch = Vec::with_capacity(reqs.len());
        for req in reqs {
            let (request, sent) = self.begin_send(&ctx, req)?;
            batch.push((request, sent, std::time::Instant::now()));
        }
        super::host_impl::exchange_batch(batch)
            .await
            .into_iter()
            .map(|(sent, result, started)| self.end_send(&ctx, sent, result, started))
            .collect()
    }
    /// Blocks this user's instance only (its one user); the thread's other instances run.
    async fn sleep(&mut self, ctx: Resource<UserContextState>, ms: u32) -> R<()> {
        let stop = self.begin_sleep(&ctx, ms);
        super::host_impl::sleep_until_stop(&stop, ms).await;
        self.clock.host_activity();
        Ok(())
    }
    fn random_u64(&mut self, ctx: Resource<UserContextState>) -> R<u64> {
        HostUserContext::random_u64(self, ctx)
    }
    fn random_f64(&mut self, ctx: Resource<UserContextState>) -> R<f64> {
        HostUserContext::random_f64(self, ctx)
    }
    fn log(&mut self, ctx: Resource<UserContextState>, level: LogLevel, message: String) -> R<()> {
        HostUserContext::log(self, ctx, level, message)
    }
    fn config(&mut self, ctx: Resource<UserContextState>, key: String) -> R<Option<String>> {
        HostUserContext::config(self, ctx, key)
    }
    fn data_next(
        &mut self,
        ctx: Resource<UserContextState>,
        name: String,
    ) -> R<Result<String, DataError>> {
        HostUserContext::data_next(self, ctx, name)
    }
    fn record_event(
        &mut self,
        ctx: Resource<UserContextState>,
        kind: String,
        name: String,
        duration_us: u64,
        size: u64,
        error: Option<String>,
    ) -> R<()> {
        HostUserContext::record_event(self, ctx, kind, name, duration_us, size, error)
    }
    fn origin(&mut self, ctx: Resource<UserContextState>) -> R<String> {
        HostUserContext::origin(self, ctx)
    }
    fn user_id(&mut self, ctx: Resource<UserContextState>) -> R<u64> {
        HostUserContext::user_id(self, ctx)
    }
    fn drop(&mut self, ctx: Resource<UserContextState>) -> R<()> {
        HostUserContext::drop(self, ctx)
    }
}
