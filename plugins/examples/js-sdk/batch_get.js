// k6's `http.batch`: a synchronous script sends four requests at once and gets their
// responses in order. Over HTTP/2 they are four streams of the user's one connection; over
// HTTP/1.1 the user opens up to six connections for them, as a browser does.
import http, { check } from "./perfhost.js";

export const options = { name: "BatchUser" };

export default function () {
  const responses = http.batch([
    "/health?part=1",
    ["GET", "/health?part=2"],
    { method: "GET", url: "/health?part=3" },
    ["GET", "/health?part=4", null, { tags: { name: "/health?part=4" } }],
  ]);
  check(responses, {
    "all four answered": (all) => all.length === 4 && all.every((r) => r.status === 200),
  });
}
