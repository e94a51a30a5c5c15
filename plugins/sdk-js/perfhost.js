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
// The plugin targets the sync world `plugin-sync` (k6's API is synchronous, and JavaScript
// toolchains cannot build async components yet): each virtual user has its own instance, so
// globals are per user, as in k6 where each VU has its own runtime. One iteration of the default
// function is one task. What differs from k6, and why:
// - `sleep(s)` waits where it is called, as in k6: the host suspends this user (its own
//   instance), never the thread; a sleep of 500 ms or more lets its connection rest.
// - Requests go to the run's target (`perfhost run -H URL`): a URL's origin is dropped and only
//   its path and query are sent, so a script written against `http://localhost:8000/...` runs
//   against any target.
// - `check()` records each check as a row of type `check` in the statistics (a failed check is
//   a failure of that row), where k6 reports a `checks` rate.
// - Run-level options (vus, duration, stages, thresholds) are `perfhost run` flags; `options`
//   holds the user class: `name` (default "VirtualUser") and `weight` (default 1).
// - `group()` is a row of type `group` per group path whose time is that of its requests;
//   `Math.random()` is the user's seeded generator (`--seed`).
// Build: see plugins/examples/build.sh (jco componentize with its QuickJS backend). The entry
// module exports `behaviourSync = plugin(script)`; build.sh writes it.

import * as hostModule from "perfhost:plugin/host-sync@0.2.3";

// The QuickJS backend hands an interface over as the default export, ComponentizeJS as named
// exports: accept both.
const host = hostModule.default ?? hostModule;

/** UTF-8 bytes of `text` (QuickJS has no TextEncoder). */
function encode(text) {
  const out = [];
  for (const ch of text) {
    const c = ch.codePointAt(0);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Uint8Array.from(out);
}

/** The text of UTF-8 `bytes` (QuickJS has no TextDecoder); bad sequences become U+FFFD. */
function decode(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    const extra = b < 0x80 ? 0 : b >= 0xf0 ? 3 : b >= 0xe0 ? 2 : b >= 0xc0 ? 1 : -1;
    if (extra < 0 || i + extra >= bytes.length + (extra === 0 ? 1 : 0)) {
      out += "\ufffd";
      i += 1;
      continue;
    }
    let c = extra === 0 ? b : b & (0x3f >> extra);
    for (let k = 1; k <= extra; k++) c = (c << 6) | (bytes[i + k] & 63);
    out += String.fromCodePoint(c);
    i += extra + 1;
  }
  return out;
}

/** The user being run: its context, the handles to drop after the iteration, the groups it is
 * in (innermost last, each with the time its requests took). */
const current = { ctx: null, handles: [], groups: [] };

function pathOf(url) {
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

/** A k6-like response: status, body (text), headers, timings.duration, json(). */
class Response {
  constructor(handle, error) {
    this.handle = handle;
    this.error = error ?? "";
    this.status = handle ? handle.status() : 0;
    this.timings = { duration: handle ? Number(handle.elapsedUs()) / 1000 : 0 };
    this.cached = undefined;
  }

  get body() {
    if (this.cached === undefined) this.cached = this.handle ? decode(this.handle.body()) : "";
    return this.cached;
  }

  get headers() {
    const out = {};
    for (const [name, value] of this.handle ? this.handle.headers() : []) out[name] = value;
    return out;
  }

  json(selector) {
    const value = JSON.parse(this.body);
    return selector === undefined ? value : selector.split(".").reduce((v, k) => v?.[k], value);
  }
}

function request(method, url, body, params = {}) {
  const path = pathOf(url);
  const name = params.tags?.name ?? path;
  const bytes =
    body === undefined || body === null
      ? new Uint8Array()
      : body instanceof Uint8Array
        ? body
        : encode(typeof body === "string" ? body : JSON.stringify(body));
  const req = new host.Request(method, path, name, bytes);
  const headers = Object.entries(params.headers ?? {}).map(([k, v]) => [k, String(v)]);
  if (headers.length > 0) req.headers(headers);
  if (params.timeout !== undefined) req.timeoutMs(Math.round(milliseconds(params.timeout)));
  if (params.redirects !== undefined && params.redirects > 0) req.followRedirects(true);
  // k6's `responseType: "none"` (or `options.discardResponseBodies` without a responseType):
  // the host counts the body and keeps none of it (`response.body` is then empty).
  const responseType = params.responseType ?? (scriptOptions.discardResponseBodies ? "none" : "text");
  if (responseType === "none") req.discardBody();
  try {
    const handle = current.ctx.send(req);
    current.handles.push(handle);
    const response = new Response(handle);
    for (const group of current.groups) group.us += response.timings.duration * 1000;
    return response;
  } catch (err) {
    // The host has recorded the failed request; k6 returns a response with status 0.
    return new Response(null, String(err?.payload?.val ?? err?.message ?? err));
  }
}

const http = {
  request,
  get: (url, params) => request("GET", url, null, params),
  head: (url, params) => request("HEAD", url, null, params),
  del: (url, body, params) => request("DELETE", url, body, params),
  post: (url, body, params) => request("POST", url, body, params),
  put: (url, body, params) => request("PUT", url, body, params),
  patch: (url, body, params) => request("PATCH", url, body, params),
};
export default http;
export { http };

/** One row of a custom kind: QuickJS passes a u64 as a Number, ComponentizeJS as a BigInt. */
function recordEvent(kind, name, durationUs, error) {
  const us = Math.round(durationUs);
  try {
    current.ctx.recordEvent(kind, name, us, 0, error);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    current.ctx.recordEvent(kind, name, BigInt(us), 0n, error);
  }
}

/** k6's group path of `name` inside the current groups: `::outer::inner::name`. */
function groupPath(name) {
  return current.groups.map((g) => `::${g.name}`).join("") + `::${name}`;
}

function recordCheck(name, ok) {
  const path = current.groups.length > 0 ? groupPath(name).slice(2) : name;
  recordEvent("check", path, 0, ok ? undefined : "check failed");
}

/** k6's `group(name, fn)`: runs `fn` and returns its value. The group is a row of type `group`
 * named by its path (`::name`, `::outer::inner`) whose time is that of its requests and sleeps
 * (k6's group_duration, but for the script's own computing); checks inside it are named
 * `group::check`. */
export function group(name, fn) {
  const path = groupPath(name);
  current.groups.push({ name, us: 0 });
  try {
    return fn();
  } finally {
    // Outer groups have counted the same requests: each request adds to every open group.
    recordEvent("group", path, current.groups.pop().us, undefined);
  }
}

/** k6's `check`: every predicate is recorded as a `check` row; true when all passed. */
export function check(value, checks) {
  let all = true;
  for (const [name, predicate] of Object.entries(checks)) {
    let ok;
    try {
      ok = Boolean(predicate(value));
    } catch {
      ok = false;
    }
    all &&= ok;
    recordCheck(name, ok);
  }
  return all;
}

/** k6's `sleep(seconds)`: this user waits here (the host's `sleep`), then the iteration goes
 * on. Only this user waits: it has its own instance. */
export function sleep(seconds) {
  const ms = Math.round(Math.max(0, Number(seconds) || 0) * 1000);
  current.ctx.sleep(Math.min(ms, 0xffffffff));
  for (const group of current.groups) group.us += ms * 1000;
}

/** The script's `options` (read by `request` for `discardResponseBodies`). */
let scriptOptions = {};

/** Turns a k6-shaped module (its `options` and default function) into `behaviour-sync`. */
export function plugin(script) {
  // Math.random is this user's seeded generator (--seed), as everything random in perfhost.
  Math.random = () => current.ctx.randomF64();
  const options = script.options ?? {};
  scriptOptions = options;
  const iteration = script.default;
  if (typeof iteration !== "function") {
    throw new Error("perfhost: the script has no `export default function`");
  }
  class User {
    constructor(classIndex, id, ctx) {
      this.ctx = ctx;
      this.id = id;
      this.iterations = 0;
    }

    onStart() {
      return { tag: "ok" };
    }

    runTask() {
      Object.assign(current, { ctx: this.ctx, handles: [], groups: [] });
      globalThis.__VU = Number(this.id) + 1;
      globalThis.__ITER = this.iterations++;
      let outcome = { tag: "ok" };
      try {
        iteration();
      } catch (err) {
        outcome = { tag: "error", val: String(err?.stack ?? err) };
      }
      for (const handle of current.handles) {
        if (typeof Symbol.dispose === "symbol" && handle[Symbol.dispose]) handle[Symbol.dispose]();
      }
      current.handles = [];
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
    User,
  };
}
