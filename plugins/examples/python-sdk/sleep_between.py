"""`await self.sleep()` inside a task with the Python SDK (plugins/sdk-python): the first user's
first task sends two requests a second apart; every other user keeps requesting every 20 ms
meanwhile, in the same interpreter (the async world shares an instance)."""

from perfhost import StopUser, User, constant, task


class Sleeper(User):
    """User 0 sleeps a second between two requests, then stops; the others keep going."""

    wait_time = constant(0.02)

    @task
    async def step(self):
        if self.user_id != 0:
            await self.client.get("/health?other")
            return
        await self.client.get("/health?first")
        await self.sleep(1)
        await self.client.get("/health?second")
        raise StopUser()
