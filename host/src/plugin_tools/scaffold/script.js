// {Class}: the virtual users of the perfhost plugin `{name}`, a k6-shaped script (perfhost.js is
// the SDK: http, check, sleep; see its header for what differs from k6).
import http, { check, sleep } from "./perfhost.js";

export const options = { name: "{Class}" };

export default function () {
  const res = http.get("/health", { tags: { name: "/health" } });
  check(res, { "status is 200": (r) => r.status === 200 });
  sleep(1);
}
