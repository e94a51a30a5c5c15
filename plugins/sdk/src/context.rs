//! The per-user [`Context`]: requests, randomness, logging, configuration, test data.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::perfhost::plugin::host::UserContext;
use crate::bindings::perfhost::plugin::types::{DataError, LogLevel};
use crate::request::RequestBuilder;
use crate::user::{RandomRange, TaskError};

/// Everything one virtual user can do, handed to every [`User`](crate::User) method.
///
/// It wraps the host's `user-context` resource: requests go to the run's target on this user's
/// keep-alive connection, random numbers come from this user's seeded RNG.
pub struct Context {
    inner: UserContext,
    id: u64,
    class: u32,
}

impl Context {
    pub(crate) fn new(inner: UserContext, id: u64, class: u32) -> Self {
        Context { inner, id, class }
    }

    /// The raw `user-context` resource, for anything the SDK does not wrap.
    pub fn raw(&self) -> &UserContext {
        &self.inner
    }

    /// This user's id: unique in the run, starting at 0.
    pub fn user_id(&self) -> u64 {
        self.id
    }

    /// The index of this user's class in the plugin's class list.
    pub fn class_index(&self) -> u32 {
        self.class
    }

    /// The run's target origin, e.g. `http://127.0.0.1:8888`.
    pub fn origin(&self) -> String {
        self.inner.origin()
    }

    // ---- requests ---------------------------------------------------------------------------

    /// Starts a request with any method. `path` is resolved against the run's target origin
    /// (`/verify`); an absolute URL is allowed only for that same origin.
    pub fn request<'a>(
        &'a self,
        method: &'a str,
        path: impl Into<Cow<'a, str>>,
    ) -> RequestBuilder<'a> {
        RequestBuilder::new(self, method, path.into())
    }

    /// Starts a `GET` request.
    pub fn get<'a>(&'a self, path: impl Into<Cow<'a, str>>) -> RequestBuilder<'a> {
        self.request("GET", path)
    }

    /// Starts a `POST` request (add a body with [`RequestBuilder::body`] or
    /// [`RequestBuilder::json`]).
    pub fn post<'a>(&'a self, path: impl Into<Cow<'a, str>>) -> RequestBuilder<'a> {
        self.request("POST", path)
    }

    /// Starts a `POST` request whose body is `body` serialized as JSON, with
    /// `Content-Type: application/json`.
    ///
    /// This serializes on every call; for a hot path with a fixed body, serialize once (e.g. in
    /// [`User::new`](crate::User::new)) and use [`Context::post`] + [`RequestBuilder::json_bytes`].
    pub fn post_json<'a, T: Serialize + ?Sized>(
        &'a self,
        path: impl Into<Cow<'a, str>>,
        body: &T,
    ) -> RequestBuilder<'a> {
        self.post(path).json(body)
    }

    /// Starts a `PUT` request.
    pub fn put<'a>(&'a self, path: impl Into<Cow<'a, str>>) -> RequestBuilder<'a> {
        self.request("PUT", path)
    }

    /// Starts a `PATCH` request.
    pub fn patch<'a>(&'a self, path: impl Into<Cow<'a, str>>) -> RequestBuilder<'a> {
        self.request("PATCH", path)
    }

    /// Starts a `DELETE` request.
    pub fn delete<'a>(&'a self, path: impl Into<Cow<'a, str>>) -> RequestBuilder<'a> {
        self.request("DELETE", path)
    }

    /// Starts a `HEAD` request.
    pub fn head<'a>(&'a self, path: impl Into<Cow<'a, str>>) -> RequestBuilder<'a> {
        self.request("HEAD", path)
    }

    // ---- randomness -------------------------------------------------------------------------

    /// 64 random bits from this user's RNG, seeded from (`--seed`, user id).
    ///
    /// Every other random helper is built on this; never use a thread or OS RNG in a plugin.
    pub fn random_u64(&self) -> u64 {
        self.inner.random_u64()
    }

    /// A uniform random number in `[0, 1)`.
    pub fn random_f64(&self) -> f64 {
        self.inner.random_f64()
    }

    /// A uniform random number in the half-open range `[low, high)`, for integers and `f64`.
    ///
    /// # Panics
    /// When `low >= high`.
    pub fn random_range<T: RandomRange>(&self, low: T, high: T) -> T {
        T::from_random_bits(self.random_u64(), low, high)
    }

    /// `true` with probability `p` (clamped to `[0, 1]`).
    pub fn random_bool(&self, p: f64) -> bool {
        self.random_f64() < p
    }

    /// A uniformly chosen element of `items` (like Python's `random.choice`).
    ///
    /// # Panics
    /// When `items` is empty.
    pub fn choose<'s, T>(&self, items: &'s [T]) -> &'s T {
        assert!(!items.is_empty(), "Context::choose on an empty slice");
        &items[self.index(items.len())]
    }

    /// Shuffles `items` in place (Fisher–Yates) with this user's RNG.
    pub fn shuffle<T>(&self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.index(i + 1));
        }
    }

    /// A uniform index in `0..len` (`len > 0`).
    fn index(&self, len: usize) -> usize {
        usize::from_random_bits(self.random_u64(), 0, len)
    }

    // ---- logging ----------------------------------------------------------------------------

    /// Writes a line into perfhost's log, tagged with this user.
    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) {
        self.inner.log(level, message.as_ref());
    }

    /// Logs at `trace` level.
    pub fn trace(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Trace, message);
    }

    /// Logs at `debug` level.
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Debug, message);
    }

    /// Logs at `info` level.
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Info, message);
    }

    /// Logs at `warn` level.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Warn, message);
    }

    /// Logs at `error` level.
    pub fn error(&self, message: impl AsRef<str>) {
        self.log(LogLevel::Error, message);
    }

    // ---- configuration and test data --------------------------------------------------------

    /// A configuration value given to the run (`--config-value KEY=VALUE` or a scenario's
    /// `[config]` table), if set.
    pub fn config(&self, key: &str) -> Option<String> {
        self.inner.config(key)
    }

    /// A configuration value parsed with [`str::parse`], or `default` when it is unset or does
    /// not parse.
    pub fn config_or<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        self.config(key)
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(default)
    }

    /// The next row of the data set `name` (`--data NAME=FILE`) as JSON object text.
    pub fn data_next(&self, name: &str) -> Result<String, DataError> {
        self.inner.data_next(name)
    }

    /// The next row of the data set `name`, decoded into `T`. The error says which data set
    /// was unknown, exhausted, or had a row that does not fit `T`.
    pub fn data_next_json<T: DeserializeOwned>(&self, name: &str) -> Result<T, TaskError> {
        let row = self.data_next(name).map_err(|err| match err {
            DataError::Unknown(_) => TaskError::Error(format!(
                "data set `{name}` is unknown (pass --data {name}=FILE)"
            )),
            DataError::Exhausted => TaskError::Error(format!("data set `{name}` is exhausted")),
        })?;
        serde_json::from_str(&row)
            .map_err(|err| TaskError::Error(format!("data set `{name}`: bad row: {err}")))
    }

    /// Records a custom measurement in statistics (Locust's `events.request.fire`): `kind` is
    /// the type column (e.g. `grpc`), `name` the row, `error` marks a failure.
    pub fn record_event(
        &self,
        kind: &str,
        name: &str,
        duration_us: u64,
        size: u64,
        error: Option<&str>,
    ) {
        self.inner
            .record_event(kind, name, duration_us, size, error);
    }

    /// Waits where it is called (k6's `sleep`, a `gevent.sleep` inside a Locust task): only
    /// this user waits, the instance's other users go on; returns early when the run stops.
    /// A wait of 500 ms or more lets the user's connection rest. At most `u32::MAX` ms.
    pub async fn sleep(&self, duration: std::time::Duration) {
        let ms = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
        self.inner.sleep(ms).await;
    }
}
