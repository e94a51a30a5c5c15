"""The plain GET of the benchmarks with the Python SDK (plugins/sdk-python): every task fetches
`/` with no wait, as bench/peers/plain_get_locust.py does under Locust (bench/home_peers.sh)."""

from perfhost import User, constant, task


class PlainGet(User):
    """Loops `GET /` as fast as the server answers."""

    wait_time = constant(0)

    @task
    async def get(self):
        await self.client.get("/")
