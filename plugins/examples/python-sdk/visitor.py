"""The two-task example of docs/plugins.md with the Python SDK (plugins/sdk-python)."""

from perfhost import User, between, task


class Visitor(User):
    """A visitor: mostly checks the service's health, sometimes opens an item."""

    wait_time = between(1, 3)

    @task(3)
    async def health(self):
        async with self.client.get("/health", catch_response=True) as r:
            if r.status_code != 200 or r.json().get("status") != "healthy":
                r.failure("status is not healthy")

    @task
    async def item(self):
        item_id = 1 + int(self.random() * 999)
        await self.client.get(f"/items/{item_id}", name="/items/[id]")
