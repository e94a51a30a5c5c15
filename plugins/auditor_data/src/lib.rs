//! Shared by the three Auditor behaviours (`auditor_user`, `burst_user`, `heavy_user`): German
//! legal sample answers and sources, `/verify` request bodies built cheaply from pre-serialized
//! JSON fragments, and the check of a `/verify` response's shape.
//!
//! Bodies are assembled by copying static JSON text (no serde on the hot path); the sample
//! texts therefore must not contain `"`, `\` or control characters — a unit test checks that
//! every fragment is valid JSON.

#![warn(missing_docs)]

use std::fmt;

#[cfg(feature = "sdk")]
use perfhost_sdk::{Context, Response};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// A sample answer to verify.
pub struct Answer {
    /// The answer text (1–3 sentences with citations such as `§ 823 Abs. 1 BGB`).
    pub text: &'static str,
    /// Indices into [`SOURCES`] that back this answer; sent first, before random others.
    pub backing: &'static [usize],
    /// The answer as a JSON string literal (quoted).
    pub json: &'static str,
}

/// A sample legal source.
pub struct Source {
    /// The source text.
    pub text: &'static str,
    /// Its id, e.g. `bgb_823`.
    pub source_id: &'static str,
    /// Its retrieval score in `[0, 1]`.
    pub score: f64,
    /// The source as a JSON object `{"text":…,"source_id":…,"score":…}`.
    pub json: &'static str,
}

macro_rules! answer {
    ($text:literal, [$($backing:expr),*]) => {
        Answer { text: $text, backing: &[$($backing),*], json: concat!("\"", $text, "\"") }
    };
}

macro_rules! source {
    ($id:literal, $score:literal, $text:literal) => {
        Source {
            text: $text,
            source_id: $id,
            score: $score,
            json: concat!(
                "{\"text\":\"",
                $text,
                "\",\"source_id\":\"",
                $id,
                "\",\"score\":",
                $score,
                "}"
            ),
        }
    };
}

/// The sample sources (German statutes). [`SOURCES`]`.len()` is what "all sources" means.
pub const SOURCES: &[Source] = &[
    // 0
    source!("bgb_823", 0.92, "§ 823 Abs. 1 BGB: Wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt, ist dem anderen zum Ersatz des daraus entstehenden Schadens verpflichtet."),
    // 1
    source!("bgb_823_2", 0.81, "§ 823 Abs. 2 BGB: Die gleiche Verpflichtung trifft denjenigen, welcher gegen ein den Schutz eines anderen bezweckendes Gesetz verstößt. Ist nach dem Inhalt des Gesetzes ein Verstoß gegen dieses auch ohne Verschulden möglich, so tritt die Ersatzpflicht nur im Falle des Verschuldens ein."),
    // 2
    source!("bgb_195", 0.9, "§ 195 BGB: Die regelmäßige Verjährungsfrist beträgt drei Jahre."),
    // 3
    source!("bgb_199", 0.78, "§ 199 Abs. 1 BGB: Die regelmäßige Verjährungsfrist beginnt mit dem Schluss des Jahres, in dem der Anspruch entstanden ist und der Gläubiger von den den Anspruch begründenden Umständen und der Person des Schuldners Kenntnis erlangt oder ohne grobe Fahrlässigkeit erlangen müsste."),
    // 4
    source!("bgb_433", 0.88, "§ 433 Abs. 1 BGB: Durch den Kaufvertrag wird der Verkäufer einer Sache verpflichtet, dem Käufer die Sache zu übergeben und das Eigentum an der Sache zu verschaffen. Der Verkäufer hat dem Käufer die Sache frei von Sach- und Rechtsmängeln zu verschaffen."),
    // 5
    source!("bgb_433_2", 0.85, "§ 433 Abs. 2 BGB: Der Käufer ist verpflichtet, dem Verkäufer den vereinbarten Kaufpreis zu zahlen und die gekaufte Sache abzunehmen."),
    // 6
    source!("bgb_312", 0.74, "§ 312 Abs. 1 BGB: Die Vorschriften der Kapitel 1 und 2 dieses Untertitels sind auf Verbraucherverträge anzuwenden, bei denen sich der Verbraucher zu der Zahlung eines Preises verpflichtet."),
    // 7
    source!("bgb_312g", 0.8, "§ 312g Abs. 1 BGB: Dem Verbraucher steht bei außerhalb von Geschäftsräumen geschlossenen Verträgen und bei Fernabsatzverträgen ein Widerrufsrecht gemäß § 355 zu."),
    // 8
    source!("bgb_355", 0.76, "§ 355 Abs. 2 BGB: Die Widerrufsfrist beträgt 14 Tage. Sie beginnt mit Vertragsschluss, soweit nichts anderes bestimmt ist."),
    // 9
    source!("gg_1", 0.95, "Art. 1 Abs. 1 GG: Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt."),
];

/// The sample answers.
pub const ANSWERS: &[Answer] = &[
    answer!("Nach § 823 Abs. 1 BGB ist zum Schadensersatz verpflichtet, wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt. Der Geschädigte kann den Ersatz des daraus entstehenden Schadens verlangen.", [0]),
    answer!("Wer gegen ein Schutzgesetz verstößt, haftet gemäß § 823 Abs. 2 BGB ebenfalls auf Schadensersatz. Ist ein Verstoß auch ohne Verschulden möglich, tritt die Ersatzpflicht nur bei Verschulden ein.", [1, 0]),
    answer!("Die regelmäßige Verjährungsfrist beträgt gemäß § 195 BGB drei Jahre. Sie beginnt nach § 199 Abs. 1 BGB mit dem Schluss des Jahres, in dem der Anspruch entstanden ist und der Gläubiger davon Kenntnis erlangt hat.", [2, 3]),
    answer!("Durch den Kaufvertrag wird der Verkäufer nach § 433 Abs. 1 BGB verpflichtet, dem Käufer die Sache zu übergeben und ihm das Eigentum daran zu verschaffen. Der Käufer muss gemäß § 433 Abs. 2 BGB den vereinbarten Kaufpreis zahlen und die Sache abnehmen.", [4, 5]),
    answer!("Bei Fernabsatzverträgen steht dem Verbraucher nach § 312g Abs. 1 BGB ein Widerrufsrecht zu. Die Widerrufsfrist beträgt gemäß § 355 Abs. 2 BGB 14 Tage. Die Vorschriften gelten nach § 312 Abs. 1 BGB für Verbraucherverträge, bei denen der Verbraucher einen Preis zahlt.", [7, 8, 6]),
    answer!("Die Würde des Menschen ist unantastbar (Art. 1 Abs. 1 GG). Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt.", [9]),
    answer!("Die Verjährungsfrist für Schadensersatzansprüche aus § 823 Abs. 1 BGB beträgt nach § 195 BGB drei Jahre.", [0, 2]),
];

/// Options of a standard verification: `"threshold": 0.75`, no strict mode.
pub const STANDARD: &str = r#""threshold":0.75,"strict_mode":false"#;

/// Options of a strict verification: `"threshold": 0.85, "strict_mode": true`.
pub const STRICT: &str = r#""threshold":0.85,"strict_mode":true"#;

/// Builds a `/verify` body: a random answer, `sources` sources (its backing sources first,
/// then distinct random others; at most [`SOURCES`]`.len()`), and `options` (one of
/// [`STANDARD`], [`STRICT`]) — all chosen with the user's seeded RNG.
///
/// `{"answer":…,"sources":[…],"threshold":…,"strict_mode":…}`, assembled by copying static
/// JSON fragments into one exactly sized buffer.
#[cfg(feature = "sdk")]
pub fn verify_body(ctx: &Context, sources: usize, options: &str) -> Vec<u8> {
    verify_body_with(&mut |lo, hi| ctx.random_range(lo, hi), sources, options)
}

/// [`verify_body`] with the random source passed in: `pick(lo, hi)` returns a uniform index in
/// `lo..hi`. Lets a native (non-WASM) user build exactly the same bodies.
pub fn verify_body_with(
    pick: &mut dyn FnMut(usize, usize) -> usize,
    sources: usize,
    options: &str,
) -> Vec<u8> {
    let answer = &ANSWERS[pick(0, ANSWERS.len())];
    let count = sources.clamp(1, SOURCES.len());

    // Source order: the answer's backing sources, then the rest shuffled (partial
    // Fisher–Yates on a stack array; only the first `count` are drawn).
    let mut order = [0usize; SOURCES.len()];
    for (i, slot) in order.iter_mut().enumerate() {
        *slot = i;
    }
    let mut filled = 0;
    for &b in answer.backing {
        if let Some(pos) = order[filled..].iter().position(|&i| i == b) {
            order.swap(filled, filled + pos);
            filled += 1;
        }
    }
    for i in filled..count {
        let j = pick(i, SOURCES.len());
        order.swap(i, j);
    }
    let chosen = &order[..count];

    let len = r#"{"answer":,"sources":[],}"#.len()
        + answer.json.len()
        + chosen
            .iter()
            .map(|&i| SOURCES[i].json.len() + 1)
            .sum::<usize>()
        + options.len();
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(br#"{"answer":"#);
    body.extend_from_slice(answer.json.as_bytes());
    body.extend_from_slice(br#","sources":["#);
    for (n, &i) in chosen.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(SOURCES[i].json.as_bytes());
    }
    body.extend_from_slice(b"],");
    body.extend_from_slice(options.as_bytes());
    body.push(b'}');
    body
}

/// Checks a `/verify` response and records the verdict (the request must have used
/// `catch_response`): success for a 200 whose body has the real response shape, else a
/// failure naming what is wrong. The body is read only for a 200.
#[cfg(feature = "sdk")]
pub fn judge_verify(resp: &Response) {
    match resp.status() {
        200 => match check_verify_body(&resp.body()) {
            Ok(()) => resp.success(),
            Err(reason) => resp.failure(reason),
        },
        status => resp.failure(format!("HTTP {status}")),
    }
}

/// Checks the shape of a 200 `/verify` body: `verification_id` a string, `confidence.score`
/// a number in `[0, 1]`, `verification` and `answer` objects. Returns what is wrong.
pub fn check_verify_body(body: &[u8]) -> Result<(), String> {
    let shape: VerifyShape = serde_json::from_slice(body)
        .map_err(|err| format!("unexpected /verify response: {err}"))?;
    if shape.verification_id.is_none() {
        return Err("verification_id missing".into());
    }
    let Some(confidence) = shape.confidence else {
        return Err("confidence missing".into());
    };
    match confidence.score {
        None => return Err("confidence.score missing".into()),
        Some(score) if !(0.0..=1.0).contains(&score) => {
            return Err(format!("confidence.score {score} outside 0..1"))
        }
        Some(_) => {}
    }
    if shape.verification.is_none() {
        return Err("verification missing".into());
    }
    if shape.answer.is_none() {
        return Err("answer missing".into());
    }
    Ok(())
}

/// Only the fields the check needs; everything else is skipped without allocating.
#[derive(Deserialize)]
struct VerifyShape {
    verification_id: Option<JsonString>,
    confidence: Option<Confidence>,
    verification: Option<JsonObject>,
    answer: Option<JsonObject>,
}

#[derive(Deserialize)]
struct Confidence {
    score: Option<f64>,
}

/// Any JSON string, not kept.
struct JsonString;

impl<'de> Deserialize<'de> for JsonString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<JsonString, E> {
                Ok(JsonString)
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// Any JSON object, contents skipped.
struct JsonObject;

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(JsonObject)
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_valid_json() {
        for a in ANSWERS {
            let v: String = serde_json::from_str(a.json).expect(a.text);
            assert_eq!(v, a.text);
            assert!(
                a.text.contains("BGB") || a.text.contains("GG"),
                "{}",
                a.text
            );
            for &b in a.backing {
                assert!(b < SOURCES.len());
            }
        }
        for s in SOURCES {
            let v: serde_json::Value = serde_json::from_str(s.json).expect(s.text);
            assert_eq!(v["text"], s.text);
            assert_eq!(v["source_id"], s.source_id);
            assert_eq!(v["score"].as_f64(), Some(s.score));
            assert!((0.0..=1.0).contains(&s.score));
        }
        for opts in [STANDARD, STRICT] {
            let v: serde_json::Value = serde_json::from_str(&format!("{{{opts}}}")).unwrap();
            assert!(v["threshold"].is_f64() && v["strict_mode"].is_boolean());
        }
    }

    const GOOD: &str = r#"{"verification_id":"abc","timestamp":"t","duration_ms":3.5,
        "answer":{"text":"x","total_sentences":1,"has_citations":true,"citations":["§ 823 BGB"]},
        "sources":{"count":1,"fingerprints":["f"]},
        "verification":{"verified_sentences":1,"total_sentences":1,"verification_rate":1.0},
        "confidence":{"score":0.82,"verified":true,"trust_label":"high","components":{"coverage":1.0}},
        "metadata":{}}"#;

    #[test]
    fn accepts_the_real_shape() {
        assert_eq!(check_verify_body(GOOD.as_bytes()), Ok(()));
    }

    #[test]
    fn names_what_is_wrong() {
        let cases = [
            (
                GOOD.replace(r#""verification_id":"abc","#, ""),
                "verification_id missing",
            ),
            (
                GOOD.replace(r#""verification_id":"abc""#, r#""verification_id":7"#),
                "expected a string",
            ),
            (
                GOOD.replace(r#""score":0.82"#, r#""score":1.5"#),
                "confidence.score 1.5 outside 0..1",
            ),
            (
                GOOD.replace(r#""score":0.82,"#, ""),
                "confidence.score missing",
            ),
            (
                GOOD.replace(r#""score":0.82"#, r#""score":"high""#),
                "invalid type",
            ),
            (
                GOOD.replace(r#""verification":{"#, r#""verification_x":{"#),
                "verification missing",
            ),
            (
                GOOD.replace(r#""answer":{"#, r#""answer":"x","a":{"#),
                "expected an object",
            ),
            (
                r#"{"overall_confidence":0.9}"#.to_string(),
                "verification_id missing",
            ),
            ("not json".to_string(), "unexpected /verify response"),
        ];
        for (body, want) in cases {
            let err = check_verify_body(body.as_bytes()).unwrap_err();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }
}
