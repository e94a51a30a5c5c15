// The Auditor suite's AuditorUser (bench/peers/locustfile.py) as a k6-shaped script for
// perfhost's JavaScript SDK: the same requests, weights, bodies and 1–3 s sleeps as k6 runs from
// bench/peers/auditor_user.js, so bench/home_peers.sh compares the two doing the same work.
// Differences from the k6 script: paths instead of URLs (requests go to the run's target), and
// the locustfile's response checks are `check()` rows instead of a k6 Counter.
import http, { check, sleep } from "./perfhost.js";
import { verificationRequest } from "./auditor_data.js";

export const options = { name: "AuditorUser", discardResponseBodies: true };

const JSON_HEADERS = { "Content-Type": "application/json" };

function verify(numSources, threshold, strictMode, name, readBody) {
  const params = { headers: JSON_HEADERS, tags: { name } };
  if (readBody) params.responseType = "text";
  return http.post("/verify", verificationRequest(numSources, threshold, strictMode), params);
}

function verifyStandard() {
  const res = verify(3, 0.75, false, "/verify (standard)", true);
  check(res, {
    // The locustfile's structure check: the Auditor API's answers lack these keys.
    "standard verify structure": (r) => {
      const data = r.json();
      return r.status === 200 && "overall_confidence" in data && "sentence_results" in data;
    },
  });
}

function healthCheck() {
  const res = http.get("/health", { tags: { name: "/health" }, responseType: "text" });
  check(res, { healthy: (r) => r.status === 200 && r.json("status") === "healthy" });
}

// @task weights: 10, 3, 2, 1, 1 (a 404 from /metrics is no failure to the locustfile; here
// the default rule counts it, and the demo target serves /metrics).
const TASKS = [
  [10, verifyStandard],
  [3, () => verify(4, 0.75, false, "/verify (many sources)", false)],
  [2, () => verify(3, 0.85, true, "/verify (strict mode)", false)],
  [1, healthCheck],
  [1, () => http.get("/metrics", { tags: { name: "/metrics" } })],
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

let started = false; // per user: each has its own instance

export default function () {
  if (!started) {
    http.get("/health", { tags: { name: "/health" } }); // on_start
    started = true;
  }
  pickTask()();
  sleep(1 + 2 * Math.random()); // wait_time = between(1, 3)
}
