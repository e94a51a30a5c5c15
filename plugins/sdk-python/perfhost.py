"""perfhost's Python SDK: write a virtual user the way a Locust user class is written.

    from perfhost import User, task, between

    class QuickstartUser(User):
        wait_time = between(1, 3)

        @task(3)
        async def verify(self):
            await self.client.post("/verify", json={...}, name="/verify (standard)")

        @task
        async def health(self):
            async with self.client.get("/health", catch_response=True) as r:
                if r.json().get("status") != "healthy":
                    r.failure("not healthy")

Tasks are `async def` (the plugin targets the async world, so while one user awaits its
response the other users of the instance run) and requests are awaited; everything else is
Locust's shape: `weight`, `wait_time` (`between`, `constant`, `constant_pacing`,
`constant_throughput`, in seconds), `@task(weight)`, `on_start`/`on_stop`, `catch_response`
with `success()`/`failure()`, `StopUser`/`RescheduleTask`, `sequential = True` for a
SequentialTaskSet-like flow. Build with `plugins/examples/build.sh python-sdk` or
`componentize-py -d wit -w plugin componentize app -p <this folder> -p <your folder>` where
`app.py` holds `import <your module>` and `from perfhost import Behaviour`.
"""

import json as _json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import behaviour as _behaviour
from wit_world.imports import host as _host
from wit_world.imports import types as _types

__all__ = [
    "User",
    "task",
    "between",
    "constant",
    "constant_pacing",
    "constant_throughput",
    "StopUser",
    "RescheduleTask",
    "Response",
]

# ---------------------------------------------------------------------------- wait times


def between(min_wait, max_wait):
    """A random pause of `min_wait`..`max_wait` seconds between two tasks (Locust's `between`)."""
    return _types.WaitTime_Between(
        _types.WaitRange(min_ms=round(min_wait * 1000), max_ms=round(max_wait * 1000))
    )


def constant(wait):
    """The same pause of `wait` seconds after every task."""
    return _types.WaitTime_Constant(round(wait * 1000))


def constant_pacing(wait):
    """A task starts every `wait` seconds (the pause fills up what the task left)."""
    return _types.WaitTime_ConstantPacing(round(wait * 1000))


def constant_throughput(per_second):
    """`per_second` tasks a second per user."""
    return _types.WaitTime_ConstantThroughput(float(per_second))


# ---------------------------------------------------------------------------- tasks


def task(weight=1):
    """Marks an `async def` method as a task, picked with the given relative weight.
    Usable bare (`@task`) or with a weight (`@task(3)`)."""
    if callable(weight):
        weight.perfhost_weight = 1
        return weight

    def mark(func):
        func.perfhost_weight = int(weight)
        return func

    return mark


class StopUser(Exception):
    """Raised in a task: this user stops (Locust's `StopUser`)."""


class RescheduleTask(Exception):
    """Raised in a task: it ends now and the next one is picked (Locust's `RescheduleTask`)."""


# ---------------------------------------------------------------------------- HTTP


class Response:
    """A completed response, with the attributes a Locust user reaches for."""

    def __init__(self, handle, error=None):
        self._handle = handle
        self.error = error
        self._body = None

    @property
    def status_code(self):
        """The HTTP status; 0 when the request failed (connect, timeout, …) as in Locust."""
        return self._handle.status() if self._handle else 0

    @property
    def ok(self):
        return self._handle is not None and self.status_code < 400

    @property
    def content(self):
        if self._body is None:
            self._body = bytes(self._handle.body()) if self._handle else b""
        return self._body

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        return _json.loads(self.content)

    @property
    def headers(self):
        return dict(self._handle.headers()) if self._handle else {}

    @property
    def elapsed_ms(self):
        return self._handle.elapsed_us() / 1000 if self._handle else 0.0

    def success(self):
        """The verdict with `catch_response=True`: a success."""
        if self._handle:
            self._handle.success()

    def failure(self, reason):
        """The verdict with `catch_response=True`: a failure, and why."""
        if self._handle:
            self._handle.failure(str(reason))

    def close(self):
        if self._handle:
            self._handle.__exit__(None, None, None)
            self._handle = None


class _Call:
    """What `client.get(...)` returns: await it for the response, or use it as `async with`
    (the response is released when the block ends, as Locust's `with ... as response`)."""

    def __init__(self, session, args):
        self._session = session
        self._args = args
        self._response = None

    def __await__(self):
        return self._session._send(*self._args).__await__()

    async def __aenter__(self):
        self._response = await self._session._send(*self._args)
        return self._response

    async def __aexit__(self, kind, value, trace):
        if self._response is not None:
            self._response.close()
        return False


class HttpSession:
    """`self.client`: relative paths against the run's target, on this user's connection."""

    def __init__(self, ctx):
        self._ctx = ctx

    def request(
        self,
        method,
        path,
        *,
        name=None,
        data=None,
        json=None,
        headers=None,
        timeout=None,
        allow_redirects=False,
        catch_response=False,
    ):
        return _Call(
            self,
            (method, path, name, data, json, headers, timeout, allow_redirects, catch_response),
        )

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, data=None, json=None, **kwargs):
        return self.request("POST", path, data=data, json=json, **kwargs)

    def put(self, path, data=None, json=None, **kwargs):
        return self.request("PUT", path, data=data, json=json, **kwargs)

    def patch(self, path, data=None, json=None, **kwargs):
        return self.request("PATCH", path, data=data, json=json, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def head(self, path, **kwargs):
        return self.request("HEAD", path, **kwargs)

    async def _send(
        self, method, path, name, data, json, headers, timeout, allow_redirects, catch_response
    ):
        if json is not None:
            body = _json.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
        elif data is None:
            body = b""
        elif isinstance(data, str):
            body = data.encode()
        else:
            body = bytes(data)
        req = _host.Request(method, path, name or path, body)
        # Nothing allocated for what a plain GET lacks: this is every request's path.
        if headers or json is not None:
            pairs = list((headers or {}).items())
            if json is not None and not any(k.lower() == "content-type" for k, _ in pairs):
                pairs.append(("Content-Type", "application/json"))
            if pairs:
                req.headers(pairs)
        if timeout is not None:
            req.timeout_ms(round(timeout * 1000))
        if allow_redirects:
            req.follow_redirects(True)
        if catch_response:
            req.catch_response()
        try:
            return Response(await self._ctx.send(req))
        except Err as err:
            # The host has recorded the failed request already; the task goes on (Locust).
            return Response(None, error=err.value)


# ---------------------------------------------------------------------------- users

_CLASSES = []


class User:
    """Subclass it once per user class; every subclass defined in the plugin is offered
    (`abstract = True` keeps a base class out)."""

    weight = 1
    wait_time = constant(0)
    sequential = False
    abstract = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return
        # Tasks in definition order, the base classes' first.
        tasks = []
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if callable(value) and hasattr(value, "perfhost_weight"):
                    tasks = [t for t in tasks if t[0] != attr] + [(attr, value.perfhost_weight)]
        if not tasks:
            raise TypeError(f"perfhost: user class {cls.__name__} has no @task method")
        cls._tasks = tasks
        _CLASSES.append(cls)

    def __init__(self, ctx, user_id):
        self._ctx = ctx
        self.client = HttpSession(ctx)
        self.user_id = user_id

    async def on_start(self):
        """Called once before the first task."""

    async def on_stop(self):
        """Called once when the user stops."""

    # Locust's `self.environment` becomes these:
    def config(self, key, default=None):
        """A value of `--config-value KEY=VALUE` (or a scenario's `[config]`), else `default`."""
        value = self._ctx.config(key)
        return default if value is None else value

    def data(self, name):
        """The next row of `--data NAME=FILE` as a dict; None when the data set is exhausted."""
        try:
            return _json.loads(self._ctx.data_next(name))
        except Err:
            return None

    def random(self):
        """A uniform float in [0, 1) from this user's seeded stream (same seed, same numbers)."""
        return self._ctx.random_f64()

    def random_u64(self):
        """64 random bits from this user's seeded stream."""
        return self._ctx.random_u64()

    def random_int(self, low, high):
        """A uniform integer in [low, high): the Rust SDK's `random_range`, so the same seed
        draws the same numbers in both."""
        return low + ((self._ctx.random_u64() * (high - low)) >> 64)

    def log(self, message):
        self._ctx.log(_types.LogLevel.INFO, str(message))

    async def sleep(self, seconds):
        """Waits where it is called (`gevent.sleep` in a Locust task): only this user waits,
        the plugin's other users go on; returns early when the run stops."""
        await self._ctx.sleep(max(0, min(round(seconds * 1000), 2**32 - 1)))


class Behaviour(exports.Behaviour):
    """The contract's `describe()`: every `User` subclass, in definition order."""

    def describe(self):
        return [
            _types.UserClass(
                name=cls.__name__,
                weight=int(cls.weight),
                wait=cls.wait_time,
                tasks=[_types.TaskInfo(name=name, weight=w) for name, w in cls._tasks],
                sequential=bool(cls.sequential),
            )
            for cls in _CLASSES
        ]


_OK = _types.TaskOutcome_Ok()


def _failed(err):
    """The outcome of a task that raised `err`."""
    if isinstance(err, StopUser):
        return _types.TaskOutcome_StopUser()
    if isinstance(err, RescheduleTask):
        return _types.TaskOutcome_Reschedule()
    # A task error, as Locust reports an exception in a task.
    return _types.TaskOutcome_Error(f"{type(err).__name__}: {err}")


async def _outcome(call):
    try:
        await call()
    except Exception as err:
        return _failed(err)
    return _OK


class _User(_behaviour.User):
    """The contract's `user` resource: one instance of the chosen `User` subclass."""

    def __init__(self, class_, id, ctx):
        self.cls = _CLASSES[class_]
        self.user = self.cls(ctx, id)
        self.next = 0

    async def on_start(self):
        return await _outcome(self.user.on_start)

    async def run_task(self, task):
        # Every request's path: the task is awaited here, not through `_outcome`'s frame.
        try:
            await getattr(self.user, self.cls._tasks[task][0])()
        except Exception as err:
            return _failed(err)
        return _OK

    def next_task(self):
        if not self.cls.sequential:
            return None
        index = self.next
        self.next = (self.next + 1) % len(self.cls._tasks)
        return index

    def next_wait_ms(self):
        return 0

    async def on_stop(self):
        await _outcome(self.user.on_stop)
