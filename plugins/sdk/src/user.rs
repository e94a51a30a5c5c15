//! The declarative side: [`User`] classes, [`Task`]s, wait times and task results.

use crate::bindings::perfhost::plugin::types::{
    DataError, HttpError, TaskOutcome, WaitRange, WaitTime,
};
use crate::context::Context;
use std::future::Future;
use std::pin::Pin;

/// A kind of virtual user (Locust's `HttpUser` subclass).
///
/// Implement it on the type that holds one user's state, list the class in
/// [`export_behaviour!`](crate::export_behaviour), and the host creates one value per virtual
/// user of this class. Every method takes `&self`: keep mutable per-user state in
/// [`Cell`](std::cell::Cell) / [`RefCell`](std::cell::RefCell) fields, never in globals.
pub trait User: Sized + 'static {
    /// Shown in reports; selectable with `--user-class NAME`. Left out: the type's own name.
    const NAME: &'static str = "";
    /// Relative share of the virtual users given to this class.
    const WEIGHT: u32 = 1;
    /// The pause between two tasks: [`between`], [`constant`], [`constant_pacing`],
    /// [`constant_throughput`] or [`custom`] (then [`User::next_wait_ms`] decides).
    const WAIT: WaitTime;
    /// The tasks, picked at random by weight. The host refers to them by index.
    const TASKS: &'static [Task<Self>];
    /// When `true`, the host asks [`User::next_task`] for the next task instead of picking
    /// by weight (Locust's `SequentialTaskSet`).
    const SEQUENTIAL: bool = false;

    /// Creates one user. `ctx.user_id()` tells which one.
    fn new(ctx: &Context) -> Self;

    /// Runs once before the first task (Locust's `on_start`), e.g. to log in.
    #[allow(async_fn_in_trait)] // plugins are single-threaded: no `Send` bound is wanted
    async fn on_start(&self, ctx: &Context) -> TaskResult {
        let _ = ctx;
        Ok(())
    }

    /// Runs once when the user stops (Locust's `on_stop`).
    #[allow(async_fn_in_trait)]
    async fn on_stop(&self, ctx: &Context) {
        let _ = ctx;
    }

    /// For [`SEQUENTIAL`](User::SEQUENTIAL) classes: the index of the next task, or `None`
    /// for a weighted random choice.
    fn next_task(&self, ctx: &Context) -> Option<u32> {
        let _ = ctx;
        None
    }

    /// For classes with a [`custom`] wait: the next wait in milliseconds.
    fn next_wait_ms(&self, ctx: &Context) -> u32 {
        let _ = ctx;
        0
    }
}

/// One task of a user class: a name for reports, a weight, and the method that runs it.
pub struct Task<U> {
    /// Shown in reports (task errors) and `perfhost plugin inspect`.
    pub name: &'static str,
    /// Relative weight when the host picks the next task at random.
    pub weight: u32,
    /// The task itself (see [`task!`](crate::task!)).
    pub run: TaskFn<U>,
}

/// A running task: the future of an `async fn(&self, &Context) -> TaskResult`.
pub type TaskFuture<'a> = Pin<Box<dyn Future<Output = TaskResult> + 'a>>;

/// How a [`Task`] starts: [`task!`](crate::task!) makes one from an `async fn` method.
pub type TaskFn<U> = for<'a> fn(&'a U, &'a Context) -> TaskFuture<'a>;

/// Declares a task from an `async fn(&self, ctx: &Context) -> TaskResult` method:
/// `task!("checkout", 2, Self::checkout)`, or named after the method: `task!(Self::checkout, 2)`
/// (Locust's `@task(2)`), `task!(Self::checkout)` (weight 1).
#[macro_export]
macro_rules! task {
    (Self::$method:ident $(,)?) => {
        $crate::task!(stringify!($method), 1, Self::$method)
    };
    (Self::$method:ident, $weight:expr $(,)?) => {
        $crate::task!(stringify!($method), $weight, Self::$method)
    };
    ($name:expr, $weight:expr, $method:path $(,)?) => {
        $crate::task($name, $weight, |user, ctx| {
            ::std::boxed::Box::pin($method(user, ctx))
        })
    };
}

/// Implements [`User`] for a `Default` type in one line:
/// `user!(Visitor, wait = between(1_000, 3_000), tasks = [health: 3, item]);` is a class
/// `Visitor` (weight 1) whose tasks are the methods `health` (weight 3) and `item` (weight 1).
/// `name = "…"` and `weight = N` may come before `wait`. Each user starts as
/// `Default::default()`; implement [`User`] by hand for anything more (`on_start`, a
/// constructor that reads the context, sequential tasks).
#[macro_export]
macro_rules! user {
    (
        $user:ident $(, name = $name:expr)? $(, weight = $weight:expr)?, wait = $wait:expr,
        tasks = [$($task:ident $(: $task_weight:expr)?),+ $(,)?] $(,)?
    ) => {
        impl $crate::User for $user {
            $(const NAME: &'static str = $name;)?
            $(const WEIGHT: u32 = $weight;)?
            const WAIT: $crate::WaitTime = $wait;
            const TASKS: &'static [$crate::Task<Self>] =
                &[$($crate::task!(Self::$task $(, $task_weight)?)),+];

            fn new(_ctx: &$crate::Context) -> Self {
                ::std::default::Default::default()
            }
        }
    };
}

/// Declares a task from a function returning a boxed future; [`task!`](crate::task!) writes
/// that function for an `async fn` method.
pub const fn task<U>(name: &'static str, weight: u32, run: TaskFn<U>) -> Task<U> {
    Task { name, weight, run }
}

/// Waits a uniformly random time in `[min_ms, max_ms]` (Locust's `between`).
pub const fn between(min_ms: u32, max_ms: u32) -> WaitTime {
    WaitTime::Between(WaitRange { min_ms, max_ms })
}

/// Always waits `ms` milliseconds (Locust's `constant`).
pub const fn constant(ms: u32) -> WaitTime {
    WaitTime::Constant(ms)
}

/// Starts a task every `ms` milliseconds: the wait is `ms` minus the task's own time
/// (Locust's `constant_pacing`).
pub const fn constant_pacing(ms: u32) -> WaitTime {
    WaitTime::ConstantPacing(ms)
}

/// At most `tasks_per_second` tasks per second for each user (Locust's `constant_throughput`).
pub const fn constant_throughput(tasks_per_second: f64) -> WaitTime {
    WaitTime::ConstantThroughput(tasks_per_second)
}

/// The host asks [`User::next_wait_ms`] after every task.
pub const fn custom() -> WaitTime {
    WaitTime::Custom
}

/// What a task returns: `Ok(())` when it ran, or a [`TaskError`] (use `?`).
pub type TaskResult = Result<(), TaskError>;

/// How a task ended other than normally. Most values come from `?`:
///
/// | from | becomes | reported as |
/// |---|---|---|
/// | [`HttpError`] (a failed `send`) | [`TaskError::Request`] | the failed request only (the host recorded it) |
/// | [`DataError`], `serde_json::Error`, `String`, `&str` | [`TaskError::Error`] | a task error |
#[derive(Debug, Clone)]
pub enum TaskError {
    /// The task failed for a reason that is not a request failure; grouped in the report's
    /// task errors (Locust's exceptions).
    Error(String),
    /// A request could not be sent or got no response. The host already recorded it as a
    /// failed request, so the task just ends (task outcome `ok`), as in Locust.
    Request(HttpError),
    /// Stop this user for the rest of the run (its `on_stop` is called). See [`stop_user`].
    StopUser,
    /// Skip the wait and pick the next task at once. See [`reschedule`].
    Reschedule,
}

impl TaskError {
    /// A task error with this message.
    pub fn error(message: impl Into<String>) -> Self {
        TaskError::Error(message.into())
    }

    /// The contract's `task-outcome` for this result.
    pub fn into_outcome(result: TaskResult) -> TaskOutcome {
        match result {
            Ok(()) | Err(TaskError::Request(_)) => TaskOutcome::Ok,
            Err(TaskError::Error(message)) => TaskOutcome::Error(message),
            Err(TaskError::StopUser) => TaskOutcome::StopUser,
            Err(TaskError::Reschedule) => TaskOutcome::Reschedule,
        }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::HttpErrorExt;
        match self {
            TaskError::Error(message) => f.write_str(message),
            TaskError::Request(err) => write!(f, "request failed: {}", err.message()),
            TaskError::StopUser => f.write_str("stop user"),
            TaskError::Reschedule => f.write_str("reschedule"),
        }
    }
}

impl From<HttpError> for TaskError {
    fn from(err: HttpError) -> Self {
        TaskError::Request(err)
    }
}

impl From<DataError> for TaskError {
    fn from(err: DataError) -> Self {
        TaskError::Error(match err {
            DataError::Unknown(name) => format!("data set `{name}` is unknown"),
            DataError::Exhausted => "data set is exhausted".to_string(),
        })
    }
}

impl From<serde_json::Error> for TaskError {
    fn from(err: serde_json::Error) -> Self {
        TaskError::Error(format!("JSON: {err}"))
    }
}

impl From<String> for TaskError {
    fn from(message: String) -> Self {
        TaskError::Error(message)
    }
}

impl From<&str> for TaskError {
    fn from(message: &str) -> Self {
        TaskError::Error(message.to_string())
    }
}

/// Ends the task and stops this user for the rest of the run: `return stop_user();`.
pub fn stop_user() -> TaskResult {
    Err(TaskError::StopUser)
}

/// Ends the task and picks the next one without waiting: `return reschedule();`.
pub fn reschedule() -> TaskResult {
    Err(TaskError::Reschedule)
}

/// Types [`Context::random_range`] can draw: the integer types and `f64`.
pub trait RandomRange: Copy {
    /// Maps 64 uniform random bits to a uniform value in `[low, high)`.
    ///
    /// # Panics
    /// When `low >= high`.
    fn from_random_bits(bits: u64, low: Self, high: Self) -> Self;
}

macro_rules! random_range_int {
    ($($t:ty),*) => {$(
        impl RandomRange for $t {
            fn from_random_bits(bits: u64, low: Self, high: Self) -> Self {
                assert!(low < high, "random_range: empty range {low}..{high}");
                // Lemire's multiply-shift: a uniform offset in [0, span) from 64 random bits
                // (bias below span / 2^64, i.e. none that matters).
                let span = (high as i128 - low as i128) as u128;
                let offset = (u128::from(bits) * span) >> 64;
                (low as i128 + offset as i128) as $t
            }
        }
    )*};
}

random_range_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl RandomRange for f64 {
    fn from_random_bits(bits: u64, low: Self, high: Self) -> Self {
        assert!(low < high, "random_range: empty range {low}..{high}");
        let unit = (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let value = low + unit * (high - low);
        // Rounding can land on `high`; keep the range half-open.
        if value < high {
            value
        } else {
            low
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_range_covers_the_half_open_range() {
        assert_eq!(u32::from_random_bits(0, 5, 8), 5);
        assert_eq!(u32::from_random_bits(u64::MAX, 5, 8), 7);
        assert_eq!(i64::from_random_bits(0, -3, 3), -3);
        assert_eq!(i64::from_random_bits(u64::MAX, -3, 3), 2);
        assert_eq!(u64::from_random_bits(u64::MAX, 0, u64::MAX), u64::MAX - 1);
        assert_eq!(
            i64::from_random_bits(u64::MAX, i64::MIN, i64::MAX),
            i64::MAX - 1
        );
        assert_eq!(usize::from_random_bits(1 << 63, 0, 10), 5);
        let f = f64::from_random_bits(u64::MAX, 1.0, 2.0);
        assert!((1.0..2.0).contains(&f));
        assert_eq!(f64::from_random_bits(0, 1.0, 2.0), 1.0);
    }

    #[test]
    #[should_panic(expected = "empty range")]
    fn random_range_rejects_an_empty_range() {
        u8::from_random_bits(0, 3, 3);
    }

    #[test]
    fn outcomes_follow_the_contract() {
        assert!(matches!(TaskError::into_outcome(Ok(())), TaskOutcome::Ok));
        let request = Err(HttpError::Timeout.into());
        assert!(matches!(TaskError::into_outcome(request), TaskOutcome::Ok));
        let error = Err("boom".into());
        assert!(matches!(TaskError::into_outcome(error), TaskOutcome::Error(m) if m == "boom"));
        assert!(matches!(
            TaskError::into_outcome(stop_user()),
            TaskOutcome::StopUser
        ));
        assert!(matches!(
            TaskError::into_outcome(reschedule()),
            TaskOutcome::Reschedule
        ));
    }
}
