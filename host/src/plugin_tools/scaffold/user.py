"""{Class}: the virtual users of the perfhost plugin `{name}`, written like a Locust user class
(see perfhost.py for everything a user can do)."""

from perfhost import User, between, task


class {Class}(User):
    wait_time = between(1, 3)

    @task
    async def health(self):
        async with self.client.get("/health", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
