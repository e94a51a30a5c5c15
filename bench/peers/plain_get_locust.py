"""The plain GET of bench/home_peers.sh under Locust: every task fetches `/` with no wait, on
Locust's faster client (FastHttpUser, geventhttpclient), as perfhost's plain_get plugins do.

    locust -f bench/peers/plain_get_locust.py --headless -H http://127.0.0.1:8080 -u 100 -r 100 -t 10s
"""

from locust import FastHttpUser, constant, task


class PlainGet(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
