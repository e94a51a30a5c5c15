//! [`Response`]: status, headers, lazily copied body, JSON decoding and verdicts.

use std::cell::Cell;

use serde::de::DeserializeOwned;

use crate::bindings::perfhost::plugin::host;

/// A completed HTTP response.
///
/// Latency was measured when the last body byte arrived; only the verdict can still change.
/// The body is copied into the plugin only when asked for ([`body`](Self::body),
/// [`text`](Self::text), [`json`](Self::json)), and each of those calls copies it again: read it
/// once and keep the result. Dropping the response without a verdict applies the default rule
/// (success when status < 400).
pub struct Response {
    inner: host::Response,
    status: Cell<u16>,
}

impl Response {
    pub(crate) fn new(inner: host::Response) -> Self {
        Response {
            inner,
            status: Cell::new(0),
        }
    }

    /// The raw `response` resource, for anything the SDK does not wrap.
    pub fn raw(&self) -> &host::Response {
        &self.inner
    }

    /// The HTTP status code (asked from the host once, then cached).
    pub fn status(&self) -> u16 {
        if self.status.get() == 0 {
            self.status.set(self.inner.status());
        }
        self.status.get()
    }

    /// The first value of a header, if present (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.inner.header(name)
    }

    /// All headers, in the order received.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.inner.headers()
    }

    /// The body (decoded if gzip), copied into the plugin.
    pub fn body(&self) -> Vec<u8> {
        self.inner.body()
    }

    /// The body as text (invalid UTF-8 is replaced by U+FFFD).
    pub fn text(&self) -> String {
        match String::from_utf8(self.body()) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        }
    }

    /// The body decoded from JSON into `T`. Declare only the fields you check: unknown fields
    /// are skipped, which keeps decoding cheap.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body())
    }

    /// The body decoded as an untyped JSON value.
    pub fn json_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        self.json()
    }

    /// The body's size in bytes, without copying it.
    pub fn body_size(&self) -> u64 {
        self.inner.body_size()
    }

    /// The measured latency in microseconds.
    pub fn elapsed_us(&self) -> u64 {
        self.inner.elapsed_us()
    }

    /// Records this response as a success. Only with
    /// [`catch_response`](crate::RequestBuilder::catch_response); without it the default rule
    /// was applied when the response arrived and this changes nothing.
    pub fn success(&self) {
        self.inner.success();
    }

    /// Records this response as a failure with `reason`. Only with
    /// [`catch_response`](crate::RequestBuilder::catch_response); without it the default rule
    /// was applied when the response arrived and this changes nothing. The reason groups
    /// failures in reports: keep ids and timestamps out of it.
    pub fn failure(&self, reason: impl AsRef<str>) {
        self.inner.failure(reason.as_ref());
    }

    /// [`success`](Response::success) when `ok`, else [`failure`](Response::failure) with
    /// `reason`; returns `Ok(())` so it can end a task:
    /// `resp.check(resp.status() == 200, "not OK")`.
    pub fn check(&self, ok: bool, reason: impl AsRef<str>) -> crate::TaskResult {
        if ok {
            self.success();
        } else {
            self.failure(reason);
        }
        Ok(())
    }
}
