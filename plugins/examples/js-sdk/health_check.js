// A k6-shaped script with perfhost's JavaScript SDK (plugins/sdk-js): what a k6 user writes,
// with `./perfhost.js` in place of `k6` and `k6/http`.
import http, { check, group, sleep } from "./perfhost.js";

export const options = { name: "HealthChecker" };

export default function () {
  group("service", () => {
    const res = http.get("http://localhost:8000/health", { tags: { name: "/health" } });
    check(res, {
      "status is 200": (r) => r.status === 200,
      "is healthy": (r) => r.json("status") === "healthy",
    });
  });
  sleep(0.1);
}
