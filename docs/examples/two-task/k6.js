// The two-task user of docs/plugins.md as a k6 script, for the line-count comparison.
import http from "k6/http";
import { check, sleep } from "k6";

export default function () {
  if (Math.random() < 0.75) {
    const res = http.get(`${__ENV.HOST}/health`);
    check(res, { "status is healthy": (r) => r.status === 200 && r.json("status") === "healthy" });
  } else {
    const id = 1 + Math.floor(Math.random() * 999);
    http.get(`${__ENV.HOST}/items/${id}`, { tags: { name: "/items/[id]" } });
  }
  sleep(1 + Math.random() * 2);
}
