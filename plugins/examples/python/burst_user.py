"""`BurstUser` in Python: the same requests as the Rust plugin `plugins/burst_user`.

Short `/verify` calls in quick succession; with rate limiting on, 429 is the expected answer
and counts as a success, a 200 is a success without reading its body. Built with
componentize-py against the async world `plugin`: `run_task` is a coroutine that awaits
`ctx.send`, so many users share one instance (see `plugins/examples/build.sh`).

The sample answers and sources (`auditor_data.py`) are copied from `plugins/auditor_data` and
the body is built by the same algorithm from the same random numbers, so for a given `--seed` every user sends the
same bodies as the Rust `BurstUser`.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import behaviour
from wit_world.imports import host
from wit_world.imports.types import (
    TaskInfo,
    TaskOutcome,
    TaskOutcome_Error,
    TaskOutcome_Ok,
    UserClass,
    WaitRange,
    WaitTime_Between,
)

from auditor_data import STANDARD, verify_body

CLASS_NAME = "BurstUser"
TASKS = ["verify"]


class Behaviour(exports.Behaviour):
    def describe(self) -> list[UserClass]:
        return [
            UserClass(
                name=CLASS_NAME,
                weight=2,
                wait=WaitTime_Between(WaitRange(min_ms=100, max_ms=500)),
                tasks=[TaskInfo(name="verify", weight=1)],
                sequential=False,
            )
        ]


class User(behaviour.User):
    """One bursting virtual user (no per-user state besides its context)."""

    def __init__(self, class_: int, id: int, ctx: host.UserContext) -> None:
        if class_ != 0:
            # The host only passes indices from `describe()`; anything else is a host bug.
            raise ValueError(f"perfhost: no user class {class_} (this plugin has 1)")
        self.ctx = ctx

    async def on_start(self) -> TaskOutcome:
        return TaskOutcome_Ok()

    async def run_task(self, task: int) -> TaskOutcome:
        if task != 0:
            return TaskOutcome_Error(
                f"class {CLASS_NAME} has no task {task} (it has {len(TASKS)})"
            )
        return await self.verify()

    def next_task(self) -> int | None:
        return None

    def next_wait_ms(self) -> int:
        return 0

    async def on_stop(self) -> None:
        return None

    async def verify(self) -> TaskOutcome:
        req = host.Request(
            "POST", "/verify", "/verify (burst)", verify_body(self.ctx.random_u64, 2, STANDARD)
        )
        req.headers([("Content-Type", "application/json")])
        req.catch_response()
        try:
            resp = await self.ctx.send(req)
        except Err:
            # The host already recorded the failed request; the task just ends (as in Locust).
            return TaskOutcome_Ok()
        with resp:
            status = resp.status()
            if status == 200 or status == 429:
                resp.success()
            else:
                resp.failure(f"HTTP {status}")
        return TaskOutcome_Ok()
