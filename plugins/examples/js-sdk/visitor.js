// The two-task example of docs/plugins.md as a k6-shaped script (plugins/sdk-js).
import http, { check, sleep } from "./perfhost.js";

export const options = { name: "Visitor" };

export default function () {
  if (Math.random() < 0.75) {
    const res = http.get("/health");
    check(res, { "status is healthy": (r) => r.status === 200 && r.json("status") === "healthy" });
  } else {
    http.get(`/items/${1 + Math.floor(Math.random() * 999)}`, { tags: { name: "/items/[id]" } });
  }
  sleep(1 + Math.random() * 2);
}
