// The Auditor suite's AuditorUser (bench/peers/locustfile.py) in the JavaScript SDK's async form:
// auditor_user.js with `await http.asyncRequest(...)` for k6's `http.post()`/`http.get()`, so up
// to 500 users share one instance (bench/home_peers.sh compares both forms with k6). Module
// globals are shared by those users: the on_start request keys on `__ITER`, not on a flag.
import http, { check, sleep } from "./perfhost.js";

export const options = { name: "AuditorUser", discardResponseBodies: true };

const SAMPLE_ANSWERS = [
  'Nach § 823 BGB haftet, wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt.',
  'Die Verjährungsfrist beträgt nach § 195 BGB drei Jahre.',
  'Nach Art. 1 GG ist die Würde des Menschen unantastbar.',
  'Der Kaufvertrag nach § 433 BGB verpflichtet den Verkäufer zur Übergabe der Sache und zur Verschaffung des Eigentums.',
  'Nach § 312 BGB kann bei Verträgen im elektronischen Geschäftsverkehr ein Widerrufsrecht bestehen.',
];

const SAMPLE_SOURCES = [
  {
    text: 'Wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt, ist dem anderen zum Ersatz des daraus entstehenden Schadens verpflichtet.',
    source_id: 'bgb_823_abs1',
    score: 0.95,
    metadata: { law: 'BGB', section: '823', paragraph: '1' },
  },
  {
    text: 'Die regelmäßige Verjährungsfrist beträgt drei Jahre.',
    source_id: 'bgb_195',
    score: 0.92,
    metadata: { law: 'BGB', section: '195' },
  },
  {
    text: 'Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt.',
    source_id: 'gg_art1_abs1',
    score: 0.98,
    metadata: { law: 'GG', article: '1', paragraph: '1' },
  },
  {
    text: 'Durch den Kaufvertrag wird der Verkäufer einer Sache verpflichtet, dem Käufer die Sache zu übergeben und das Eigentum an der Sache zu verschaffen.',
    source_id: 'bgb_433_abs1',
    score: 0.94,
    metadata: { law: 'BGB', section: '433', paragraph: '1' },
  },
];

// Python's random.sample: k distinct items in random order (a partial Fisher–Yates shuffle).
function sample(items, k) {
  const pool = items.slice();
  const n = Math.min(k, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(Math.random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, n);
}

// generate_verification_request(num_sources, threshold, strict_mode)
function verificationRequest(numSources = 3, threshold = 0.75, strictMode = false) {
  return JSON.stringify({
    answer: SAMPLE_ANSWERS[Math.floor(Math.random() * SAMPLE_ANSWERS.length)],
    sources: sample(SAMPLE_SOURCES, numSources),
    threshold: threshold,
    strict_mode: strictMode,
    config: { language: 'de', domain: 'legal', enable_citations: true, enable_retry: true },
  });
}

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
