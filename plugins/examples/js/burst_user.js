// `BurstUser` in JavaScript: the same requests as the Rust plugin `plugins/burst_user`.
//
// Short `/verify` calls in quick succession; with rate limiting on, 429 is the expected answer
// and counts as a success, a 200 is a success without reading its body. Built against the sync
// world `plugin-sync` (`send` blocks this user; the host gives each user its own instance), with
// jco's QuickJS backend by default or with ComponentizeJS (SpiderMonkey): see
// `plugins/examples/build.sh`. Only ECMAScript built-ins are used, so both engines run it.
//
// The sample answers and sources are copied from `plugins/auditor_data` and the body is built by
// the same algorithm from the same random numbers, so for a given `--seed` every user sends the
// same bodies as the Rust `BurstUser`.

import * as hostSync from "perfhost:plugin/host-sync@0.2.4";

// The QuickJS backend hands an interface over as the default export, ComponentizeJS as named
// exports: accept both.
const { Request } = hostSync.default ?? hostSync;

// [text, indices into SOURCES that back it], as in auditor_data::ANSWERS.
const ANSWERS = [
  ["Nach § 823 Abs. 1 BGB ist zum Schadensersatz verpflichtet, wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt. Der Geschädigte kann den Ersatz des daraus entstehenden Schadens verlangen.", [0]],
  ["Wer gegen ein Schutzgesetz verstößt, haftet gemäß § 823 Abs. 2 BGB ebenfalls auf Schadensersatz. Ist ein Verstoß auch ohne Verschulden möglich, tritt die Ersatzpflicht nur bei Verschulden ein.", [1, 0]],
  ["Die regelmäßige Verjährungsfrist beträgt gemäß § 195 BGB drei Jahre. Sie beginnt nach § 199 Abs. 1 BGB mit dem Schluss des Jahres, in dem der Anspruch entstanden ist und der Gläubiger davon Kenntnis erlangt hat.", [2, 3]],
  ["Durch den Kaufvertrag wird der Verkäufer nach § 433 Abs. 1 BGB verpflichtet, dem Käufer die Sache zu übergeben und ihm das Eigentum daran zu verschaffen. Der Käufer muss gemäß § 433 Abs. 2 BGB den vereinbarten Kaufpreis zahlen und die Sache abnehmen.", [4, 5]],
  ["Bei Fernabsatzverträgen steht dem Verbraucher nach § 312g Abs. 1 BGB ein Widerrufsrecht zu. Die Widerrufsfrist beträgt gemäß § 355 Abs. 2 BGB 14 Tage. Die Vorschriften gelten nach § 312 Abs. 1 BGB für Verbraucherverträge, bei denen der Verbraucher einen Preis zahlt.", [7, 8, 6]],
  ["Die Würde des Menschen ist unantastbar (Art. 1 Abs. 1 GG). Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt.", [9]],
  ["Die Verjährungsfrist für Schadensersatzansprüche aus § 823 Abs. 1 BGB beträgt nach § 195 BGB drei Jahre.", [0, 2]],
];

// [source_id, score as written in the JSON, text], as in auditor_data::SOURCES.
const SOURCES = [
  ["bgb_823", "0.92", "§ 823 Abs. 1 BGB: Wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt, ist dem anderen zum Ersatz des daraus entstehenden Schadens verpflichtet."],
  ["bgb_823_2", "0.81", "§ 823 Abs. 2 BGB: Die gleiche Verpflichtung trifft denjenigen, welcher gegen ein den Schutz eines anderen bezweckendes Gesetz verstößt. Ist nach dem Inhalt des Gesetzes ein Verstoß gegen dieses auch ohne Verschulden möglich, so tritt die Ersatzpflicht nur im Falle des Verschuldens ein."],
  ["bgb_195", "0.9", "§ 195 BGB: Die regelmäßige Verjährungsfrist beträgt drei Jahre."],
  ["bgb_199", "0.78", "§ 199 Abs. 1 BGB: Die regelmäßige Verjährungsfrist beginnt mit dem Schluss des Jahres, in dem der Anspruch entstanden ist und der Gläubiger von den den Anspruch begründenden Umständen und der Person des Schuldners Kenntnis erlangt oder ohne grobe Fahrlässigkeit erlangen müsste."],
  ["bgb_433", "0.88", "§ 433 Abs. 1 BGB: Durch den Kaufvertrag wird der Verkäufer einer Sache verpflichtet, dem Käufer die Sache zu übergeben und das Eigentum an der Sache zu verschaffen. Der Verkäufer hat dem Käufer die Sache frei von Sach- und Rechtsmängeln zu verschaffen."],
  ["bgb_433_2", "0.85", "§ 433 Abs. 2 BGB: Der Käufer ist verpflichtet, dem Verkäufer den vereinbarten Kaufpreis zu zahlen und die gekaufte Sache abzunehmen."],
  ["bgb_312", "0.74", "§ 312 Abs. 1 BGB: Die Vorschriften der Kapitel 1 und 2 dieses Untertitels sind auf Verbraucherverträge anzuwenden, bei denen sich der Verbraucher zu der Zahlung eines Preises verpflichtet."],
  ["bgb_312g", "0.8", "§ 312g Abs. 1 BGB: Dem Verbraucher steht bei außerhalb von Geschäftsräumen geschlossenen Verträgen und bei Fernabsatzverträgen ein Widerrufsrecht gemäß § 355 zu."],
  ["bgb_355", "0.76", "§ 355 Abs. 2 BGB: Die Widerrufsfrist beträgt 14 Tage. Sie beginnt mit Vertragsschluss, soweit nichts anderes bestimmt ist."],
  ["gg_1", "0.95", "Art. 1 Abs. 1 GG: Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt."],
];

/** UTF-8 bytes of `text` (QuickJS has no TextEncoder). */
function utf8(text) {
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

// The JSON fragments, encoded once when the module is initialized (the texts hold no `"`, `\`
// or control characters).
const ANSWER_JSON = ANSWERS.map(([text]) => utf8(`"${text}"`));
const SOURCE_JSON = SOURCES.map(
  ([id, score, text]) => utf8(`{"text":"${text}","source_id":"${id}","score":${score}}`),
);
const STANDARD = utf8(`"threshold":0.75,"strict_mode":false`);
const OPEN = utf8(`{"answer":`);
const MIDDLE = utf8(`,"sources":[`);
const COMMA = utf8(",");
const CLOSE_SOURCES = utf8("],");
const CLOSE = utf8("}");

const CLASS_NAME = "BurstUser";
const TASKS = ["verify"];
const TWO_POW_64 = 18446744073709551616;

/**
 * A uniform index in [low, high) from 64 random bits (the Rust SDK's `random_range`).
 * `bits` is a BigInt (ComponentizeJS: exact, the same index as Rust) or a Number (QuickJS
 * passes u64 as a double, 53 bits kept: the same index unless the rounding crosses a bucket
 * boundary, about one draw in 2^49).
 */
export function pick(bits, low, high) {
  const span = high - low;
  if (typeof bits === "bigint") return low + Number((bits * BigInt(span)) >> 64n);
  return low + Math.min(Math.floor((bits / TWO_POW_64) * span), span - 1);
}

/**
 * `{"answer":…,"sources":[…],…}`: a random answer, `sources` sources (its backing sources
 * first, then distinct random others) and `options` — `auditor_data::verify_body`.
 */
export function verifyBody(randomU64, sources, options) {
  const answer = pick(randomU64(), 0, ANSWERS.length);
  const count = Math.max(1, Math.min(sources, SOURCES.length));
  const order = SOURCES.map((_, i) => i);
  let filled = 0;
  for (const b of ANSWERS[answer][1]) {
    const pos = order.indexOf(b, filled);
    if (pos >= 0) {
      [order[filled], order[pos]] = [order[pos], order[filled]];
      filled += 1;
    }
  }
  for (let i = filled; i < count; i++) {
    const j = pick(randomU64(), i, SOURCES.length);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const parts = [OPEN, ANSWER_JSON[answer], MIDDLE];
  for (let n = 0; n < count; n++) {
    if (n > 0) parts.push(COMMA);
    parts.push(SOURCE_JSON[order[n]]);
  }
  parts.push(CLOSE_SOURCES, options, CLOSE);
  const body = new Uint8Array(parts.reduce((len, part) => len + part.length, 0));
  let at = 0;
  for (const part of parts) {
    body.set(part, at);
    at += part.length;
  }
  return body;
}

const OK = { tag: "ok" };

/** Releases a resource handle now rather than when the garbage collector finds it. */
function drop(resource) {
  const dispose = typeof Symbol.dispose === "symbol" ? resource[Symbol.dispose] : undefined;
  if (typeof dispose === "function") dispose.call(resource);
}

/** One bursting virtual user (no per-user state besides its context). */
class User {
  constructor(classIndex, id, ctx) {
    if (classIndex !== 0) {
      // The host only passes indices from `describe()`; anything else is a host bug.
      throw new Error(`perfhost: no user class ${classIndex} (this plugin has 1)`);
    }
    this.ctx = ctx;
  }

  onStart() {
    return OK;
  }

  runTask(task) {
    if (task !== 0) {
      return { tag: "error", val: `class ${CLASS_NAME} has no task ${task} (it has ${TASKS.length})` };
    }
    return this.verify();
  }

  nextTask() {
    return null;
  }

  nextWaitMs() {
    return 0;
  }

  onStop() {}

  verify() {
    const ctx = this.ctx;
    const req = new Request("POST", "/verify", "/verify (burst)", verifyBody(() => ctx.randomU64(), 2, STANDARD));
    req.headers([["Content-Type", "application/json"]]);
    req.catchResponse();
    let resp;
    try {
      resp = ctx.send(req);
    } catch {
      // The host already recorded the failed request; the task just ends (as in Locust).
      return OK;
    }
    const status = resp.status();
    if (status === 200 || status === 429) resp.success();
    else resp.failure(`HTTP ${status}`);
    drop(resp);
    return OK;
  }
}

export const behaviourSync = {
  describe() {
    return [
      {
        name: CLASS_NAME,
        weight: 2,
        wait: { tag: "between", val: { minMs: 100, maxMs: 500 } },
        tasks: [{ name: "verify", weight: 1 }],
        sequential: false,
      },
    ];
  },
  User,
};
