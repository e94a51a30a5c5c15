"""The Auditor suite's three user classes with the Python SDK: the same tasks, weights, names,
bodies and response checks as the Rust built-ins `auditor_user`, `burst_user`, `heavy_user`
(and the suite's Locust classes they replace)."""

from auditor_data import SOURCES, STANDARD, STRICT, verify_body
from perfhost import User, between, task


def check_verify(r):
    """The shape of a 200 `/verify` answer, as `auditor_data::judge_verify`."""
    if r.status_code != 200:
        return r.failure(f"HTTP {r.status_code}")
    try:
        body = r.json()
    except ValueError as err:
        return r.failure(f"unexpected /verify response: {err}")
    score = (body.get("confidence") or {}).get("score")
    if not isinstance(body.get("verification_id"), str):
        r.failure("verification_id missing")
    elif "confidence" not in body:
        r.failure("confidence missing")
    elif not isinstance(score, (int, float)):
        r.failure("confidence.score missing")
    elif not 0 <= score <= 1:
        r.failure(f"confidence.score {score} outside 0..1")
    elif not isinstance(body.get("verification"), dict):
        r.failure("verification missing")
    elif not isinstance(body.get("answer"), dict):
        r.failure("answer missing")
    else:
        r.success()


class AuditorUser(User):
    """The typical user: health on start, mostly verifications, now and then health and metrics."""

    weight = 7
    wait_time = between(1, 3)

    async def on_start(self):
        await self.client.get("/health")

    async def verify(self, sources, options, name):
        body = verify_body(self.random_u64, sources, options)
        async with self.client.post(
            "/verify", data=body, headers=JSON, name=name, catch_response=True
        ) as r:
            check_verify(r)

    @task(10)
    async def verify_standard(self):
        await self.verify(3, STANDARD, "/verify (standard)")

    @task(3)
    async def verify_many_sources(self):
        await self.verify(4, STANDARD, "/verify (many sources)")

    @task(2)
    async def verify_strict(self):
        await self.verify(3, STRICT, "/verify (strict mode)")

    @task
    async def health(self):
        async with self.client.get("/health", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
            elif r.json().get("status") != "healthy":
                r.failure(f"status is {r.json().get('status')!r}, not \"healthy\"")

    @task
    async def metrics(self):
        async with self.client.get("/metrics", catch_response=True) as r:
            # 404: metrics are disabled on this deployment, which is fine.
            if r.status_code in (200, 404):
                r.success()
            else:
                r.failure(f"HTTP {r.status_code}")


class BurstUser(User):
    """Short verifications in quick succession; 429 (rate limited) counts as a success."""

    weight = 2
    wait_time = between(0.1, 0.5)

    @task
    async def verify(self):
        body = verify_body(self.random_u64, 2, STANDARD)
        async with self.client.post(
            "/verify", data=body, headers=JSON, name="/verify (burst)", catch_response=True
        ) as r:
            if r.status_code in (200, 429):
                r.success()
            else:
                r.failure(f"HTTP {r.status_code}")


class HeavyUser(User):
    """The largest verifications: a random answer against every sample source."""

    weight = 1
    wait_time = between(2, 5)

    @task
    async def verify(self):
        body = verify_body(self.random_u64, len(SOURCES), STANDARD)
        async with self.client.post(
            "/verify", data=body, headers=JSON, name="/verify (large)", catch_response=True
        ) as r:
            check_verify(r)


JSON = {"Content-Type": "application/json"}
