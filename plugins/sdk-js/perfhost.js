// perfhost's JavaScript SDK: a virtual user written the way a k6 script is written.
//
//     import http, { check, group, sleep } from "./perfhost.js";
//
//     export const options = { name: "Shopper" };
//
//     export default function () {
//       const res = http.get("/health", { tags: { name: "/health" } });
//       check(res, { "status is 200": (r) => r.status === 200 });
//       sleep(1);
//     }
//
// A script comes in one of two forms, and its default function says which:
// - `export default function` (k6's usual, synchronous form) targets the sync world
//   `plugin-sync`: k6's `http.get()` returns the response, so a user blocks its instance while
//   it waits, and each virtual user has its own instance. Globals are per user, as in k6 where
//   each VU has its own runtime.
// - `export default async function` targets the async world `plugin`: requests are
//   `await http.asyncRequest(method, url, body, params)` (k6's API) and up to 500 users share
//   one instance, taking turns at each `await` — far less memory per user. Module globals are
//   then shared by those users: keep per-user state out of them (`__VU` and `__ITER` say which
//   user and iteration is running). `http.get()` and the other synchronous methods throw here
//   (they would hold every user of the instance). `sleep(s)` returns a promise: `await
//   sleep(1)`, or k6's plain `sleep(1)`, after which this user's next request waits for it.
// One iteration of the default function is one task. What differs from k6, and why:
// - `sleep(s)` waits where it is called, as in k6: the host suspends this user, never the
//   thread; a sleep of 500 ms or more lets its connection rest.
// - Requests go to the run's target (`perfhost run -H URL`): a URL's origin is dropped and only
//   its path and query are sent, so a script written against `http://localhost:8000/...` runs
//   against any target.
// - `check()` records each check as a row of type `check` in the statistics (a failed check is
//   a failure of that row), where k6 reports a `checks` rate.
// - Run-level options (vus, duration, stages, thresholds) are `perfhost run` flags; `options`
//   holds the user class: `name` (default "VirtualUser") and `weight` (default 1).
// - `group()` is a row of type `group` per group path whose time is that of its requests;
//   `Math.random()` is the user's seeded generator (`--seed`).
// Build: see plugins/examples/build.sh (the sync form with jco's QuickJS backend, the async
// form with componentize-qjs). The entry module imports the world's host interface and exports
// `plugin(script, host)` as `behaviourSync` (sync form) or `behaviour` (async form); build.sh
// writes it.

/** UTF-8 bytes of `text` (QuickJS has no TextEncoder); a lone surrogate becomes U+FFFD, as
 * TextEncoder makes it. One indexed pass into a typed array: this runs for every request body. */
function encode(text) {
  const n = text.length;
  const out = new Uint8Array(n * 3); // a UTF-16 unit is at most 3 bytes (a pair, 4 for 2)
  let j = 0;
  for (let i = 0; i < n; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out[j++] = c;
      continue;
    }
    if (c < 0x800) {
      out[j++] = 0xc0 | (c >> 6);
      out[j++] = 0x80 | (c & 63);
      continue;
    }
    if (c >= 0xd800 && c < 0xe000) {
      const d = c < 0xdc00 && i + 1 < n ? text.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d < 0xe000) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        out[j++] = 0xf0 | (c >> 18);
        out[j++] = 0x80 | ((c >> 12) & 63);
        out[j++] = 0x80 | ((c >> 6) & 63);
        out[j++] = 0x80 | (c & 63);
        continue;
      }
      c = 0xfffd;
    }
    out[j++] = 0xe0 | (c >> 12);
    out[j++] = 0x80 | ((c >> 6) & 63);
    out[j++] = 0x80 | (c & 63);
  }
  return out.slice(0, j);
}

/** The text of UTF-8 `bytes` (QuickJS has no TextDecoder); bad sequences become U+FFFD. UTF-16
 * units are gathered and turned into text a chunk at a time (no string grown per character). */
function decode(bytes) {
  const n = bytes.length;
  const units = [];
  let out = "";
  for (let i = 0; i < n; ) {
    const b = bytes[i];
    if (b < 0x80) {
      units.push(b);
      i += 1;
    } else {
      const extra = b >= 0xf0 ? 3 : b >= 0xe0 ? 2 : b >= 0xc0 ? 1 : -1;
      if (extra < 0 || i + extra >= n) {
        units.push(0xfffd);
        i += 1;
      } else {
        let c = b & (0x3f >> extra);
        for (let k = 1; k <= extra; k++) c = (c << 6) | (bytes[i + k] & 63);
        i += extra + 1;
        if (c > 0x10ffff) units.push(0xfffd);
        else if (c > 0xffff) units.push(0xd800 + ((c - 0x10000) >> 10), 0xdc00 + ((c - 0x10000) & 0x3ff));
        else units.push(c);
      }
    }
    if (units.length >= 4096) {
      out += String.fromCharCode.apply(null, units);
      units.length = 0;
    }
  }
  return out + String.fromCharCode.apply(null, units);
}

/** The host interface (`host-sync` or `host`, given to `plugin()` by the entry module) and
 * whether the script is of the async form. */
let host = null;
let asyncForm = false;

/** The user being run: its context, the responses to release after the iteration, the groups it is
 * in (innermost last, each with the time its requests took), its sleep not yet awaited and its
 * requests not yet settled (async form). In the async form many users share this module:
 * `enter()` makes a user current again each time it resumes after waiting on the host. */
let current = null;

function enter(vu) {
  current = vu;
  globalThis.__VU = vu.id + 1;
  globalThis.__ITER = vu.iterations - 1;
}

function pathOf(url) {
  if (url.charCodeAt(0) === 47) return url; // "/…": the common case, no regex
  const match = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(.*)$/i.exec(url);
  const path = match ? match[1] : url;
  return path.startsWith("/") ? path : `/${path}`;
}

function milliseconds(value) {
  if (typeof value === "number") return value;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(String(value));
  if (!match) throw new Error(`perfhost: timeout ${value} is not a duration like "10s" or 500`);
  return Number(match[1]) * { ms: 1, s: 1000, m: 60000 }[match[2]];
}

/** A k6-like response: status, body (text), headers, timings.duration, json(). What it reads
 * from the host it reads when first asked (each is a call into the host), during the iteration
 * that sent it: its host resource is released when that iteration ends. */
class Response {
  constructor(handle, error) {
    this.handle = handle;
    this.error = error ?? "";
    this.released = false;
    this.cachedStatus = handle ? undefined : 0;
    this.cachedTimings = handle ? undefined : { duration: 0 };
    this.cachedBody = handle ? undefined : "";
  }

  live() {
    if (this.released) {
      throw new Error(
        "perfhost: this response was released when the iteration that sent it ended — read what you need from it during that iteration",
      );
    }
    return this.handle;
  }

  get status() {
    if (this.cachedStatus === undefined) this.cachedStatus = this.live().status();
    return this.cachedStatus;
  }

  get timings() {
    if (this.cachedTimings === undefined) {
      this.cachedTimings = { duration: Number(this.live().elapsedUs()) / 1000 };
    }
    return this.cachedTimings;
  }

  get body() {
    if (this.cachedBody === undefined) this.cachedBody = decode(this.live().body());
    return this.cachedBody;
  }

  get headers() {
    const out = {};
    for (const [name, value] of this.handle ? this.live().headers() : []) out[name] = value;
    return out;
  }

  json(selector) {
    const value = JSON.parse(this.body);
    return selector === undefined ? value : selector.split(".").reduce((v, k) => v?.[k], value);
  }

  /** Drops the host resource (the end of the iteration). */
  release() {
    if (this.handle && DISPOSE && this.handle[DISPOSE]) this.handle[DISPOSE]();
    this.released = this.handle !== null;
  }
}

const DISPOSE = typeof Symbol.dispose === "symbol" ? Symbol.dispose : undefined;
// Shared by every request without them: nothing allocated per request for what it lacks.
const NO_BODY = new Uint8Array();
const NO_PARAMS = Object.freeze({});
const OK = Object.freeze({ tag: "ok" });

/** The host's request for k6's (method, url, body, params). */
function newRequest(method, url, body, params) {
  const path = pathOf(url);
  const name = params.tags?.name ?? path;
  const bytes =
    body === undefined || body === null
      ? NO_BODY
      : body instanceof Uint8Array
        ? body
        : encode(typeof body === "string" ? body : JSON.stringify(body));
  const req = new host.Request(method, path, name, bytes);
  if (params.headers !== undefined) {
    const headers = Object.entries(params.headers).map(([k, v]) => [k, String(v)]);
    if (headers.length > 0) req.headers(headers);
  }
  if (params.timeout !== undefined) req.timeoutMs(Math.round(milliseconds(params.timeout)));
  if (params.redirects !== undefined && params.redirects > 0) req.followRedirects(true);
  // k6's `responseType: "none"` (or `options.discardResponseBodies` without a responseType):
  // the host counts the body and keeps none of it (`response.body` is then empty).
  const responseType = params.responseType ?? (scriptOptions.discardResponseBodies ? "none" : "text");
  if (responseType === "none") req.discardBody();
  return req;
}

/** The response of a sent request: its time counts in every open group. */
function received(vu, handle) {
  const response = new Response(handle);
  vu.responses.push(response);
  if (vu.groups.length > 0) {
    for (const group of vu.groups) group.us += response.timings.duration * 1000;
  }
  return response;
}

/** The host has recorded the failed request; k6 returns a response with status 0. */
function failed(err) {
  return new Response(null, String(err?.payload?.val ?? err?.message ?? err));
}

function request(method, url, body, params = NO_PARAMS) {
  if (asyncForm) {
    throw new Error(
      `perfhost: http.${method === "DELETE" ? "del" : method.toLowerCase()}() would hold every user of this instance while it waits: in an async script use \`await http.asyncRequest("${method}", url, body, params)\``,
    );
  }
  const req = newRequest(method, url, body, params);
  try {
    return received(current, current.ctx.send(req));
  } catch (err) {
    return failed(err);
  }
}

/** k6's `http.asyncRequest`: a promise of the response. In the async form only this user
 * waits for it; a `sleep()` not awaited before it is waited out first. */
function asyncRequest(method, url, body, params = NO_PARAMS) {
  if (!asyncForm) {
    try {
      return Promise.resolve(request(method, url, body, params));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  const vu = current;
  const sent = sendAsync(vu, method, url, body, params);
  // Kept until the iteration's end, which waits for any the script did not await.
  vu.inflight.push(sent);
  return sent;
}

async function sendAsync(vu, method, url, body, params) {
  vu.pending++;
  try {
    if (vu.sleeping !== null) {
      await vu.sleeping;
      enter(vu);
    }
    const req = newRequest(method, url, body, params);
    let response;
    try {
      response = received(vu, await vu.ctx.send(req));
    } catch (err) {
      response = failed(err);
    }
    enter(vu);
    return response;
  } finally {
    vu.pending--;
  }
}

/** One request of `http.batch` as k6 takes it: a URL (GET), `[method, url, body, params]`, or
 * `{ method, url, body, params }`. */
function batchRequest(item) {
  if (typeof item === "string") return newRequest("GET", item, null, NO_PARAMS);
  if (Array.isArray(item)) {
    const [method, url, body, params] = item;
    return newRequest(String(method).toUpperCase(), url, body, params ?? NO_PARAMS);
  }
  return newRequest(String(item.method ?? "GET").toUpperCase(), item.url, item.body, item.params ?? NO_PARAMS);
}

/** k6's `http.batch(requests)`: sends all of them at once — streams of the user's HTTP/2
 * connection, or up to six HTTP/1.1 connections — and returns their responses in the same
 * shape: an array in order, or an object with the same keys. */
function batch(requests) {
  if (asyncForm) {
    throw new Error(
      "perfhost: http.batch() would hold every user of this instance while it waits: in an async script use `await Promise.all([http.asyncRequest(...), ...])`",
    );
  }
  const keys = Array.isArray(requests) ? null : Object.keys(requests);
  const items = keys === null ? requests : keys.map((k) => requests[k]);
  const vu = current;
  let results;
  try {
    results = vu.ctx.sendBatch(items.map(batchRequest));
  } catch (err) {
    const response = failed(err);
    results = items.map(() => response);
  }
  // A `result` inside a list comes as `{ tag: "ok" | "err", val }`.
  const responses = results.map((r) =>
    r instanceof Response ? r : r.tag === "ok" ? received(vu, r.val) : failed({ payload: r.val }),
  );
  if (keys === null) return responses;
  const out = {};
  keys.forEach((k, i) => {
    out[k] = responses[i];
  });
  return out;
}

const http = {
  request,
  asyncRequest,
  batch,
  get: (url, params) => request("GET", url, null, params),
  head: (url, params) => request("HEAD", url, null, params),
  del: (url, body, params) => request("DELETE", url, body, params),
  post: (url, body, params) => request("POST", url, body, params),
  put: (url, body, params) => request("PUT", url, body, params),
  patch: (url, body, params) => request("PATCH", url, body, params),
};
export default http;
export { http };

/** Whether this toolchain's bindings take a `u64` as a BigInt (componentize-qjs 0.5,
 * ComponentizeJS) or as a Number (jco 1.35's QuickJS backend): seen from a user's `id`. */
let u64AsBigInt = false;

/** One row of a custom kind. */
function recordEvent(vu, kind, name, durationUs, error) {
  const us = Math.round(durationUs);
  if (u64AsBigInt) vu.ctx.recordEvent(kind, name, BigInt(us), 0n, error);
  else vu.ctx.recordEvent(kind, name, us, 0, error);
}

/** k6's group path of `name` inside the current groups: `::outer::inner::name`. */
function groupPath(vu, name) {
  return vu.groups.map((g) => `::${g.name}`).join("") + `::${name}`;
}

/** k6's `group(name, fn)`: runs `fn` and returns its value. The group is a row of type `group`
 * named by its path (`::name`, `::outer::inner`) whose time is that of its requests and sleeps
 * (k6's group_duration, but for the script's own computing); checks inside it are named
 * `group::check`. An async `fn` (async form) keeps the group open until its promise settles. */
export function group(name, fn) {
  const vu = current;
  const path = groupPath(vu, name);
  const open = { name, us: 0 };
  vu.groups.push(open);
  // Outer groups have counted the same requests: each request adds to every open group.
  const close = () => {
    vu.groups.splice(vu.groups.lastIndexOf(open), 1);
    recordEvent(vu, "group", path, open.us, undefined);
  };
  let value;
  try {
    value = fn();
  } catch (err) {
    close();
    throw err;
  }
  if (typeof value?.then !== "function") {
    close();
    return value;
  }
  return Promise.resolve(value).finally(() => {
    close();
    enter(vu);
  });
}

/** k6's `check`: every predicate is recorded as a `check` row; true when all passed. */
export function check(value, checks) {
  const vu = current;
  let all = true;
  for (const [name, predicate] of Object.entries(checks)) {
    let ok;
    try {
      ok = Boolean(predicate(value));
    } catch {
      ok = false;
    }
    all &&= ok;
    const path = vu.groups.length > 0 ? groupPath(vu, name).slice(2) : name;
    recordEvent(vu, "check", path, 0, ok ? undefined : "check failed");
  }
  return all;
}

/** k6's `sleep(seconds)`: this user waits here (the host's `sleep`), then the iteration goes
 * on; only this user waits. In the async form it returns a promise: `await sleep(1)`; a plain
 * `sleep(1)` (k6's way) is waited out before this user's next request or the iteration's end. */
export function sleep(seconds) {
  const vu = current;
  const ms = Math.min(Math.round(Math.max(0, Number(seconds) || 0) * 1000), 0xffffffff);
  for (const group of vu.groups) group.us += ms * 1000;
  if (!asyncForm) {
    vu.ctx.sleep(ms);
    return undefined;
  }
  // Sleeps not awaited add up one after another, as k6's blocking sleeps do.
  const before = vu.sleeping ?? Promise.resolve();
  const slept = before
    .then(() => vu.ctx.sleep(ms))
    .then(() => {
      if (vu.sleeping === slept) vu.sleeping = null;
      enter(vu);
    });
  vu.sleeping = slept;
  return slept;
}

/** The script's `options` (read by `request` for `discardResponseBodies`). */
let scriptOptions = {};

/** A new user's state: see `current`. */
function newUser(id, ctx) {
  u64AsBigInt = typeof id === "bigint";
  return { ctx, id: Number(id), iterations: 0, responses: [], groups: [], sleeping: null, inflight: [], pending: 0 };
}

/** After an iteration: release its responses (their host resources go with them). */
function releaseResponses(vu) {
  const responses = vu.responses;
  for (let i = 0; i < responses.length; i++) responses[i].release();
  vu.responses.length = 0;
}

function failure(err) {
  return { tag: "error", val: String(err?.stack ?? err) };
}

/** Turns a k6-shaped module (its `options` and plain default function) into the contract's
 * `behaviour-sync`. `hostInterface` is `perfhost:plugin/host-sync`, imported by the entry. */
export function plugin(script, hostInterface) {
  return behaviourOf(script, hostInterface, false);
}

/** Turns a k6-shaped module with an async default function into the contract's `behaviour`.
 * `hostInterface` is `perfhost:plugin/host`, imported by the entry. */
export function asyncPlugin(script, hostInterface) {
  return behaviourOf(script, hostInterface, true);
}

function behaviourOf(script, hostInterface, async) {
  if (hostInterface === undefined) {
    throw new Error(
      'perfhost: plugin(script, host) needs the host interface — the entry module imports it: `import * as host from "perfhost:plugin/host-sync@0.2.4"` (or `perfhost:plugin/host@0.2.4` with asyncPlugin for an async script); plugins/examples/build.sh writes it',
    );
  }
  // The QuickJS backend hands an interface over as the default export, ComponentizeJS as named
  // exports: accept both.
  host = hostInterface.default ?? hostInterface;
  const options = script.options ?? {};
  scriptOptions = options;
  const iteration = script.default;
  if (typeof iteration !== "function") {
    throw new Error("perfhost: the script has no `export default function`");
  }
  asyncForm = async;
  if ((iteration.constructor?.name === "AsyncFunction") !== async) {
    throw new Error(
      async
        ? "perfhost: the script's default function is not async, but it is built for the async world: build it with plugin() for the sync world"
        : "perfhost: the script's default function is async: build it with asyncPlugin() for the async world (build.sh does when the script says `export default async`)",
    );
  }
  // Math.random is this user's seeded generator (--seed), as everything random in perfhost.
  Math.random = () => current.ctx.randomF64();

  class SyncUser {
    constructor(classIndex, id, ctx) {
      this.vu = newUser(id, ctx);
    }

    onStart() {
      return OK;
    }

    runTask() {
      this.vu.iterations++;
      enter(this.vu);
      let outcome = OK;
      try {
        iteration();
      } catch (err) {
        outcome = failure(err);
      }
      releaseResponses(this.vu);
      return outcome;
    }

    nextTask() {
      return null;
    }

    nextWaitMs() {
      return 0;
    }

    onStop() {}
  }

  class AsyncUser {
    constructor(classIndex, id, ctx) {
      this.vu = newUser(id, ctx);
    }

    async onStart() {
      return OK;
    }

    async runTask() {
      const vu = this.vu;
      vu.iterations++;
      enter(vu);
      let outcome = OK;
      try {
        await iteration();
      } catch (err) {
        outcome = failure(err);
      }
      // What the iteration started and did not await ends inside it, as in k6.
      while (vu.sleeping !== null || vu.pending > 0) {
        await Promise.allSettled([vu.sleeping, ...vu.inflight]);
        enter(vu);
      }
      vu.inflight.length = 0;
      releaseResponses(vu);
      return outcome;
    }

    nextTask() {
      return null;
    }

    nextWaitMs() {
      return 0;
    }

    async onStop() {}
  }

  return {
    describe() {
      return [
        {
          name: options.name ?? "VirtualUser",
          weight: options.weight ?? 1,
          wait: { tag: "constant", val: 0 },
          tasks: [{ name: "default", weight: 1 }],
          sequential: false,
        },
      ];
    },
    User: asyncForm ? AsyncUser : SyncUser,
  };
}
