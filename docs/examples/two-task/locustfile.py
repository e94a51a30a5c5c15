# The two-task user of docs/plugins.md as a Locust user class, for the line-count comparison.
import random

from locust import HttpUser, between, task


class Visitor(HttpUser):
    wait_time = between(1, 3)

    @task(3)
    def health(self):
        with self.client.get("/health", catch_response=True) as r:
            if r.status_code != 200 or r.json().get("status") != "healthy":
                r.failure("status is not healthy")

    @task
    def item(self):
        self.client.get(f"/items/{random.randint(1, 999)}", name="/items/[id]")
