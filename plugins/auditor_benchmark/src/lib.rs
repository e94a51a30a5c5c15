//! `AuditorBenchmark`: the request of the Auditor suite's `benchmark.py`, for `perfhost bench`.
//! `POST /verify` with its § 823 BGB answer and the first `num_sources` of its three sources
//! (`--config-value num_sources=N`, default 3; `all` is 3), each with `source_id`, `score` and
//! `metadata`. Success is status 200 only, as in benchmark.py; the body is not read. No wait:
//! each user sends its next request as soon as the last one completed.

use perfhost_sdk::prelude::*;

/// The answer benchmark.py verifies.
const ANSWER: &str = "Nach § 823 BGB haftet, wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt.";

/// benchmark.py's sources: (text, source_id, score).
const SOURCES: [(&str, &str, f64); 3] = [
    (
        "Wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt, ist dem anderen zum Ersatz des daraus entstehenden Schadens verpflichtet.",
        "bgb_823_abs1",
        0.95,
    ),
    (
        "Die gleiche Verpflichtung trifft denjenigen, welcher gegen ein den Schutz eines anderen bezweckendes Gesetz verstößt.",
        "bgb_823_abs2",
        0.88,
    ),
    (
        "Ergibt sich aus dem Inhalt des Gesetzes eine solche Schutzpflicht nicht, so ist der Schädiger dem Verletzten zum Ersatz verpflichtet.",
        "bgb_823_abs3",
        0.82,
    ),
];

/// The JSON body with the first `n` sources (serialized once per user).
fn body(n: usize) -> Vec<u8> {
    let sources: Vec<perfhost_sdk::serde_json::Value> = SOURCES
        .iter()
        .take(n.clamp(1, SOURCES.len()))
        .map(|(text, id, score)| {
            json!({
                "text": text,
                "source_id": id,
                "score": score,
                "metadata": {"law": "BGB", "section": "823"},
            })
        })
        .collect();
    perfhost_sdk::serde_json::to_vec(&json!({"answer": ANSWER, "sources": sources}))
        .unwrap_or_default()
}

/// One benchmark user: its body, built once.
pub struct AuditorBenchmark {
    body: Vec<u8>,
}

impl User for AuditorBenchmark {
    const NAME: &'static str = "AuditorBenchmark";
    const WEIGHT: u32 = 1;
    const WAIT: WaitTime = constant(0);
    const TASKS: &'static [Task<Self>] = &[task!("verify", 1, Self::verify)];

    fn new(ctx: &Context) -> Self {
        let n = match ctx.config("num_sources").as_deref() {
            Some("all") | None => SOURCES.len(),
            Some(text) => text.trim().parse().unwrap_or(SOURCES.len()),
        };
        AuditorBenchmark { body: body(n) }
    }
}

impl AuditorBenchmark {
    async fn verify(&self, ctx: &Context) -> TaskResult {
        let resp = ctx
            .post("/verify")
            .name("/verify")
            .json_bytes(self.body.as_slice())
            .catch_response()
            .discard_body()
            .send()
            .await?;
        match resp.status() {
            200 => resp.success(),
            status => resp.failure(format!("HTTP {status}")),
        }
        Ok(())
    }
}

perfhost_sdk::export_behaviour!(AuditorBenchmark);
