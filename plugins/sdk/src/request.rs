//! [`RequestBuilder`]: collects a request in the guest and sends it with few host calls.

use std::borrow::Cow;

use serde::Serialize;

use crate::bindings::perfhost::plugin::host::Request;
use crate::bindings::perfhost::plugin::types::HttpError;
use crate::context::Context;
use crate::response::Response;

/// Headers sent in one call without a heap allocation; more spill into a `Vec`.
const INLINE_HEADERS: usize = 8;

/// A request being built; finish it with [`send`](RequestBuilder::send).
///
/// Nothing reaches the host until `send`, which then makes one constructor call (method, path,
/// name and body at once), one `headers` call if there are any, and one call per other option
/// set — so the hot path stays at a handful of guest→host calls.
#[must_use = "a request does nothing until `.send()`"]
pub struct RequestBuilder<'a> {
    ctx: &'a Context,
    method: &'a str,
    path: Cow<'a, str>,
    name: Cow<'a, str>,
    body: Cow<'a, [u8]>,
    content_type: Option<&'static str>,
    headers: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    timeout_ms: Option<u32>,
    follow_redirects: Option<bool>,
    catch_response: bool,
    discard_body: bool,
    error: Option<String>,
}

impl<'a> RequestBuilder<'a> {
    pub(crate) fn new(ctx: &'a Context, method: &'a str, path: Cow<'a, str>) -> Self {
        RequestBuilder {
            ctx,
            method,
            path,
            name: Cow::Borrowed(""),
            body: Cow::Borrowed(&[]),
            content_type: None,
            headers: Vec::new(),
            timeout_ms: None,
            follow_redirects: None,
            catch_response: false,
            discard_body: false,
            error: None,
        }
    }

    /// The name this request is grouped under in statistics (default: the path). Give
    /// requests with ids in their path one name, e.g. `/items/[id]`.
    pub fn name(mut self, name: impl Into<Cow<'a, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds one header (names are case-insensitive).
    pub fn header(mut self, name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds several headers.
    pub fn headers<N, V>(mut self, headers: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: Into<Cow<'a, str>>,
        V: Into<Cow<'a, str>>,
    {
        self.headers
            .extend(headers.into_iter().map(|(n, v)| (n.into(), v.into())));
        self
    }

    /// Sets the raw body (bytes or a string; borrowed bodies are not copied in the guest).
    pub fn body(mut self, body: impl Into<Cow<'a, [u8]>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` serialized as JSON, with `Content-Type: application/json`.
    ///
    /// A serialization error does not panic: [`send`](Self::send) then returns
    /// [`HttpError::InvalidRequest`] without contacting the host.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => self.body = Cow::Owned(bytes),
            Err(err) => self.error = Some(format!("JSON body: {err}")),
        }
        self.content_type = Some("application/json");
        self
    }

    /// Sets a body that is already JSON text (e.g. serialized once per user), with
    /// `Content-Type: application/json`. The cheapest way to send a fixed JSON body.
    pub fn json_bytes(mut self, json: impl Into<Cow<'a, [u8]>>) -> Self {
        self.body = json.into();
        self.content_type = Some("application/json");
        self
    }

    /// Overrides the run's request timeout for this request.
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Whether 3xx responses are followed (default: yes, up to 10 hops, same origin only).
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.follow_redirects = Some(follow);
        self
    }

    /// Defers the verdict to [`Response::success`] / [`Response::failure`] (Locust's
    /// `catch_response=True`). A response dropped without a verdict gets the default rule
    /// (success when status < 400).
    pub fn catch_response(mut self) -> Self {
        self.catch_response = true;
        self
    }

    /// Promises never to read the response's body: the host reads, times and counts it but
    /// keeps none of it (`Response::body` is then empty; `body_size` is the full size). The
    /// cheapest way to load an endpoint whose answer is not checked, as wrk and oha do.
    pub fn discard_body(mut self) -> Self {
        self.discard_body = true;
        self
    }

    /// Sends the request on this user's keep-alive connection and waits for the full response;
    /// other users run meanwhile.
    ///
    /// The host measures and records it under its name. An `Err` is recorded too (as a failed
    /// request), so a task may simply end with `?` — see
    /// [`TaskError::Request`](crate::TaskError::Request).
    pub async fn send(self) -> Result<Response, HttpError> {
        if let Some(err) = self.error {
            return Err(HttpError::InvalidRequest(err));
        }
        let request = Request::new(self.method, &self.path, &self.name, &self.body);
        let extra = usize::from(self.content_type.is_some());
        let count = self.headers.len() + extra;
        if count > 0 {
            let all = self
                .content_type
                .map(|ct| ("Content-Type", ct))
                .into_iter()
                .chain(self.headers.iter().map(|(n, v)| (&**n, &**v)));
            if count <= INLINE_HEADERS {
                let mut inline = [("", ""); INLINE_HEADERS];
                for (slot, header) in inline.iter_mut().zip(all) {
                    *slot = header;
                }
                request.headers(&inline[..count]);
            } else {
                request.headers(&all.collect::<Vec<_>>());
            }
        }
        if let Some(ms) = self.timeout_ms {
            request.timeout_ms(ms);
        }
        if let Some(follow) = self.follow_redirects {
            request.follow_redirects(follow);
        }
        if self.catch_response {
            request.catch_response();
        }
        if self.discard_body {
            request.discard_body();
        }
        self.ctx.raw().send(request).await.map(Response::new)
    }
}
