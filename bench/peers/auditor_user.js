// AuditorUser of the Auditor suite's locustfile (bench/peers/locustfile.py) as a k6 script, so
// bench/generators.sh can measure k6 doing what `perfhost --plugin auditor_user` and Locust do:
// GET /health once per virtual user, then weighted tasks — POST /verify standard (10), many
// sources (3), strict mode (2), GET /health (1), GET /metrics (1) — each followed by a wait of
// 1–3 s. The checks and the failure rules are the locustfile's, the standard verify's stale
// structure check included (see auditor_structure_failures).
//
//   k6 run -e URL=http://127.0.0.1:8888 -e VUS=1000 -e DURATION=40s bench/peers/auditor_user.js
//
// Bodies are read only where the locustfile reads them (the standard verify's structure check,
// the health task's status); everything else is discarded. One difference: requests (Python)
// writes JSON with ASCII escapes and ", " separators, JSON.stringify writes UTF-8 compactly, so
// the bodies here are a few dozen bytes shorter for the same content.
import http from 'k6/http';
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';

const URL = (__ENV.URL || 'http://127.0.0.1:8888').replace(/\/$/, '');

export const options = {
  vus: Number(__ENV.VUS || 10),
  duration: __ENV.DURATION || '40s',
  discardResponseBodies: true,
};

// Every failure the locustfile would count (wrong status, wrong body, no response), once per
// request: the figure bench/generators.sh reports (http_req_failed only sees statuses).
const auditorFailures = new Counter('auditor_failures');
// Of those, the standard verify's structure check: it wants `overall_confidence` and
// `sentence_results`, which the Auditor API's /verify responses do not have (they carry
// `confidence`, `verification`, …), so it fails on every 200 — as it does under Locust.
const structureFailures = new Counter('auditor_structure_failures');

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

const JSON_HEADERS = { 'Content-Type': 'application/json' };

function verify(numSources, threshold, strictMode, name, readBody) {
  const params = { headers: JSON_HEADERS, tags: { name: name } };
  if (readBody) params.responseType = 'text';
  return http.post(`${URL}/verify`, verificationRequest(numSources, threshold, strictMode), params);
}

function fail() {
  auditorFailures.add(1);
}

function verifyStandard() {
  const res = verify(3, 0.75, false, '/verify (standard)', true);
  if (res.status !== 200) return fail();
  let data;
  try {
    data = res.json();
  } catch (e) {
    return fail();
  }
  if (!data || !('overall_confidence' in data) || !('sentence_results' in data)) {
    structureFailures.add(1);
    fail();
  }
}

function verifyManySources() {
  if (verify(4, 0.75, false, '/verify (many sources)', false).status !== 200) fail();
}

function verifyStrictMode() {
  if (verify(3, 0.85, true, '/verify (strict mode)', false).status !== 200) fail();
}

function healthCheck() {
  const res = http.get(`${URL}/health`, { tags: { name: '/health' }, responseType: 'text' });
  if (res.status !== 200) return fail();
  let data;
  try {
    data = res.json();
  } catch (e) {
    return fail();
  }
  if (!data || data.status !== 'healthy') fail();
}

function getMetrics() {
  // 404 if metrics are disabled: not a failure, for the locustfile nor for http_req_failed.
  const res = http.get(`${URL}/metrics`, {
    tags: { name: '/metrics' },
    responseCallback: http.expectedStatuses(200, 404),
  });
  if (res.status !== 200 && res.status !== 404) fail();
}

// @task weights: 10, 3, 2, 1, 1.
const TASKS = [
  [10, verifyStandard],
  [3, verifyManySources],
  [2, verifyStrictMode],
  [1, healthCheck],
  [1, getMetrics],
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

let started = false; // per VU: each VU has its own copy of the init context

export default function () {
  if (!started) {
    // on_start: a health check to warm up (its body is not read; Locust fails it on an error
    // status, as it does any request without catch_response).
    const res = http.get(`${URL}/health`, { tags: { name: '/health' } });
    if (res.status < 200 || res.status >= 400) fail();
    started = true;
  }
  pickTask()();
  sleep(1 + 2 * Math.random()); // wait_time = between(1, 3)
}
