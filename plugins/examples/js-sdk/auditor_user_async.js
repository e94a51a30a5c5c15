// The Auditor suite's AuditorUser (bench/peers/locustfile.py) in the JavaScript SDK's async form:
// auditor_user.js with `await http.asyncRequest(...)` for k6's `http.post()`/`http.get()`, so up
// to 500 users share one instance (bench/home_peers.sh compares both forms with k6). Module
// globals are shared by those users: the on_start request keys on `__ITER`, not on a flag.
import http, { check, sleep } from "./perfhost.js";
import { verificationRequest } from "./auditor_data.js";

export const options = { name: "AuditorUser", discardResponseBodies: true };

const JSON_HEADERS = { "Content-Type": "application/json" };

function verify(numSources, threshold, strictMode, name, readBody) {
  const params = { headers: JSON_HEADERS, tags: { name } };
  if (readBody) params.responseType = "text";
  return http.asyncRequest("POST", "/verify", verificationRequest(numSources, threshold, strictMode), params);
}

async function verifyStandard() {
  const res = await verify(3, 0.75, false, "/verify (standard)", true);
  check(res, {
    // The locustfile's structure check: the Auditor API's answers lack these keys.
    "standard verify structure": (r) => {
      const data = r.json();
      return r.status === 200 && "overall_confidence" in data && "sentence_results" in data;
    },
  });
}

async function healthCheck() {
  const res = await http.asyncRequest("GET", "/health", null, { tags: { name: "/health" }, responseType: "text" });
  check(res, { healthy: (r) => r.status === 200 && r.json("status") === "healthy" });
}

// @task weights: 10, 3, 2, 1, 1 (a 404 from /metrics is no failure to the locustfile; here
// the default rule counts it, and the demo target serves /metrics).
const TASKS = [
  [10, verifyStandard],
  [3, () => verify(4, 0.75, false, "/verify (many sources)", false)],
  [2, () => verify(3, 0.85, true, "/verify (strict mode)", false)],
  [1, healthCheck],
  [1, () => http.asyncRequest("GET", "/metrics", null, { tags: { name: "/metrics" } })],
];
const TOTAL_WEIGHT = TASKS.reduce((sum, [w]) => sum + w, 0);

function pickTask() {
  let r = Math.random() * TOTAL_WEIGHT;
  for (const [w, fn] of TASKS) {
    if (r < w) return fn;
    r -= w;
  }
  return TASKS[0][1];
}

export default async function () {
  if (__ITER === 0) {
    await http.asyncRequest("GET", "/health", null, { tags: { name: "/health" } }); // on_start
  }
  await pickTask()();
  await sleep(1 + 2 * Math.random()); // wait_time = between(1, 3)
}
