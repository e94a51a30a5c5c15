//! Two Goose scenarios doing what perfhost's plugins do in bench/home_peers.sh:
//! `PlainGet` loops `GET /` with no wait (the body read and dropped), `AuditorUser` is the
//! Auditor suite's locustfile user (bench/peers/locustfile.py): `GET /health` on start, then
//! weighted tasks — POST /verify standard (10), many sources (3), strict mode (2), GET /health
//! (1), GET /metrics (1) — with 1–3 s between them. Pick one with `--scenarios plainget` or
//! `--scenarios auditoruser`.

use std::time::Duration;

use goose::prelude::*;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};

async fn plain_get(user: &mut GooseUser) -> TransactionResult {
    let goose = user.get("/").await?;
    if let Ok(response) = goose.response {
        let _ = response.bytes().await;
    }
    Ok(())
}

const ANSWERS: [&str; 5] = [
    "Nach § 823 BGB haftet, wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt.",
    "Die Verjährungsfrist beträgt nach § 195 BGB drei Jahre.",
    "Nach Art. 1 GG ist die Würde des Menschen unantastbar.",
    "Der Kaufvertrag nach § 433 BGB verpflichtet den Verkäufer zur Übergabe der Sache und zur Verschaffung des Eigentums.",
    "Nach § 312 BGB kann bei Verträgen im elektronischen Geschäftsverkehr ein Widerrufsrecht bestehen.",
];

fn sources() -> Vec<Value> {
    vec![
        json!({"text": "Wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt, ist dem anderen zum Ersatz des daraus entstehenden Schadens verpflichtet.", "source_id": "bgb_823_abs1", "score": 0.95, "metadata": {"law": "BGB", "section": "823", "paragraph": "1"}}),
        json!({"text": "Die regelmäßige Verjährungsfrist beträgt drei Jahre.", "source_id": "bgb_195", "score": 0.92, "metadata": {"law": "BGB", "section": "195"}}),
        json!({"text": "Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist Verpflichtung aller staatlichen Gewalt.", "source_id": "gg_art1_abs1", "score": 0.98, "metadata": {"law": "GG", "article": "1", "paragraph": "1"}}),
        json!({"text": "Durch den Kaufvertrag wird der Verkäufer einer Sache verpflichtet, dem Käufer die Sache zu übergeben und das Eigentum an der Sache zu verschaffen.", "source_id": "bgb_433_abs1", "score": 0.94, "metadata": {"law": "BGB", "section": "433", "paragraph": "1"}}),
    ]
}

/// The locustfile's `generate_verification_request`.
fn verification_request(num_sources: usize, threshold: f64, strict_mode: bool) -> Value {
    let mut rng = rand::thread_rng();
    let chosen: Vec<Value> = sources()
        .choose_multiple(&mut rng, num_sources)
        .cloned()
        .collect();
    json!({
        "answer": ANSWERS[rng.gen_range(0..ANSWERS.len())],
        "sources": chosen,
        "threshold": threshold,
        "strict_mode": strict_mode,
        "config": {"language": "de", "domain": "legal", "enable_citations": true, "enable_retry": true},
    })
}

async fn verify(
    user: &mut GooseUser,
    num_sources: usize,
    threshold: f64,
    strict_mode: bool,
    name: &str,
    check_structure: bool,
) -> TransactionResult {
    let body = verification_request(num_sources, threshold, strict_mode);
    let request = user
        .get_request_builder(&GooseMethod::Post, "/verify")?
        .json(&body);
    let goose_request = GooseRequest::builder()
        .set_request_builder(request)
        .name(name)
        .build();
    let mut goose = user.request(goose_request).await?;
    let Ok(response) = goose.response else {
        return Ok(());
    };
    let status = response.status();
    let data: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return user.set_failure(&format!("HTTP {status}"), &mut goose.request, None, None);
    }
    if check_structure
        && (data.get("overall_confidence").is_none() || data.get("sentence_results").is_none())
    {
        return user.set_failure("Invalid response structure", &mut goose.request, None, None);
    }
    Ok(())
}

async fn verify_standard(user: &mut GooseUser) -> TransactionResult {
    verify(user, 3, 0.75, false, "/verify (standard)", true).await
}

async fn verify_many_sources(user: &mut GooseUser) -> TransactionResult {
    verify(user, 4, 0.75, false, "/verify (many sources)", false).await
}

async fn verify_strict_mode(user: &mut GooseUser) -> TransactionResult {
    verify(user, 3, 0.85, true, "/verify (strict mode)", false).await
}

async fn health(user: &mut GooseUser) -> TransactionResult {
    let mut goose = user.get_named("/health", "/health").await?;
    if let Ok(response) = goose.response {
        let data: Value = response.json().await.unwrap_or(Value::Null);
        if data.get("status").and_then(Value::as_str) != Some("healthy") {
            return user.set_failure("unhealthy", &mut goose.request, None, None);
        }
    }
    Ok(())
}

async fn metrics(user: &mut GooseUser) -> TransactionResult {
    let goose = user.get_named("/metrics", "/metrics").await?;
    if let Ok(response) = goose.response {
        let _ = response.bytes().await;
    }
    Ok(())
}

async fn on_start(user: &mut GooseUser) -> TransactionResult {
    let goose = user.get("/health").await?;
    if let Ok(response) = goose.response {
        let _ = response.bytes().await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    GooseAttack::initialize()?
        .register_scenario(scenario!("PlainGet").register_transaction(transaction!(plain_get)))
        .register_scenario(
            scenario!("AuditorUser")
                .set_wait_time(Duration::from_secs(1), Duration::from_secs(3))?
                .register_transaction(transaction!(on_start).set_on_start())
                .register_transaction(transaction!(verify_standard).set_weight(10)?)
                .register_transaction(transaction!(verify_many_sources).set_weight(3)?)
                .register_transaction(transaction!(verify_strict_mode).set_weight(2)?)
                .register_transaction(transaction!(health))
                .register_transaction(transaction!(metrics)),
        )
        .execute()
        .await?;
    Ok(())
}
