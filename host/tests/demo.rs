//! The demo server (`perfhost demo-server`): real servers on 127.0.0.1 ephemeral ports,
//! a raw HTTP/1.1 client, bounded request counts. Timing checks compare against the server's
//! own `X-Service-Time-Us` and its stall schedule, never against wall-clock constants.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use perfhost_demo::{self as demo, DemoConfig, DemoServer};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const STEP_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// A tiny keep-alive HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Client-side latency: request written → response fully read.
    latency: Duration,
    /// When the request was about to be written.
    sent_at: Instant,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The server's own time for this request.
    fn service_time(&self) -> Duration {
        let us: u64 = self
            .header("x-service-time-us")
            .expect("every response carries X-Service-Time-Us")
            .parse()
            .expect("X-Service-Time-Us is an integer");
        Duration::from_micros(us)
    }
}

struct Client {
    io: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            io: BufReader::new(stream),
        }
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        tokio::time::timeout(STEP_TIMEOUT, self.exchange(method, path, headers, body))
            .await
            .unwrap_or_else(|_| panic!("{method} {path} timed out"))
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let sent_at = Instant::now();
        let mut wire = head.into_bytes();
        wire.extend_from_slice(body);
        self.io.get_mut().write_all(&wire).await.expect("write");
        let mut line = String::new();
        self.io.read_line(&mut line).await.expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.io.read_line(&mut line).await.expect("header line");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').expect("header has a colon");
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().expect("content-length"))
            .unwrap_or(0);
        let mut body = vec![0; if method == "HEAD" { 0 } else { len }];
        self.io.read_exact(&mut body).await.expect("body");
        Resp {
            status,
            headers,
            body,
            latency: sent_at.elapsed(),
            sent_at,
        }
    }

    async fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, &[], b"").await
    }

    async fn post_json(&mut self, path: &str, body: &Value) -> Resp {
        let bytes = serde_json::to_vec(body).expect("json");
        self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            &bytes,
        )
        .await
    }
}

async fn server(config: DemoConfig) -> DemoServer {
    demo::start(config, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("demo server starts")
}

const ANSWER_823: &str =
    "Nach § 823 Abs. 1 BGB haftet, wer vorsätzlich oder fahrlässig das Leben, \
den Körper ... verletzt. Die regelmäßige Verjährungsfrist beträgt nach § 195 BGB drei Jahre.";
const ANSWER_GG: &str = "Die Würde des Menschen ist unantastbar (Art. 1 GG).";

fn sources() -> Value {
    json!([
        {
            "text": "Wer vorsätzlich oder fahrlässig das Leben, den Körper, die Gesundheit, die Freiheit, \
                     das Eigentum oder ein sonstiges Recht eines anderen widerrechtlich verletzt, ist dem \
                     anderen zum Ersatz des daraus entstehenden Schadens verpflichtet.",
            "source_id": "bgb_823_abs1",
            "score": 0.95,
            "metadata": {"law": "BGB", "section": "823"}
        },
        {"text": "Die regelmäßige Verjährungsfrist beträgt drei Jahre.", "source_id": "bgb_195", "score": 0.92},
        {
            "text": "Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist Verpflichtung \
                     aller staatlichen Gewalt.",
            "source_id": "gg_art1_abs1",
            "score": 0.98
        }
    ])
}

fn valid_body(answer: &str) -> Value {
    json!({
        "answer": answer,
        "sources": sources(),
        "threshold": 0.75,
        "strict_mode": false,
        "config": {"language": "de", "domain": "legal"},
        "metadata": {"query_id": "q001", "user_id": "test_user"}
    })
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

fn unit(v: &Value) -> f64 {
    let x = v.as_f64().expect("a number");
    assert!((0.0..=1.0).contains(&x), "{x} is outside 0..1");
    x
}

// ---------------------------------------------------------------------------------------------
// /verify: validation
// ---------------------------------------------------------------------------------------------

/// Posts `body` and returns the `(type, loc)` pairs of a 422.
async fn errors_of(c: &mut Client, body: &Value) -> Vec<(String, Value)> {
    let r = c.post_json("/verify", body).await;
    assert_eq!(
        r.status,
        422,
        "{body}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let detail = r.json()["detail"].clone();
    detail
        .as_array()
        .expect("detail is a list")
        .iter()
        .map(|e| {
            assert_eq!(
                keys(e)
                    .iter()
                    .filter(|k| ["type", "loc", "msg", "input"].contains(k))
                    .count(),
                4,
                "{e}"
            );
            (
                e["type"].as_str().expect("type").to_string(),
                e["loc"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn validation_errors_have_fastapi_status_and_shape() {
    let srv = server(DemoConfig::default()).await;
    let mut c = Client::connect(srv.addr()).await;
    let src = json!([{"text": "Quelle."}]);

    // Missing fields are collected together, in field order, with the parent as input.
    let r = c.post_json("/verify", &json!({})).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json(),
        json!({"detail": [
            {"type": "missing", "loc": ["body", "answer"], "msg": "Field required", "input": {}},
            {"type": "missing", "loc": ["body", "sources"], "msg": "Field required", "input": {}}
        ]})
    );

    let r = c
        .post_json("/verify", &json!({"answer": "", "sources": src}))
        .await;
    assert_eq!(
        r.json()["detail"][0],
        json!({"type": "string_too_short", "loc": ["body", "answer"],
               "msg": "String should have at least 1 character", "input": "", "ctx": {"min_length": 1}})
    );

    let r = c.post_json("/verify", &json!({"answer": "Text."})).await;
    assert_eq!(r.json()["detail"][0]["type"], "missing");
    assert_eq!(r.json()["detail"][0]["loc"], json!(["body", "sources"]));
    assert_eq!(r.json()["detail"][0]["input"], json!({"answer": "Text."}));

    let r = c
        .post_json("/verify", &json!({"answer": "Text.", "sources": []}))
        .await;
    assert_eq!(
        r.json()["detail"][0],
        json!({"type": "too_short", "loc": ["body", "sources"],
               "msg": "List should have at least 1 item after validation, not 0", "input": [],
               "ctx": {"field_type": "List", "min_length": 1, "actual_length": 0}})
    );

    assert_eq!(
        errors_of(
            &mut c,
            &json!({"answer": "Text.", "sources": [{"text": ""}]})
        )
        .await,
        [(
            "string_too_short".to_string(),
            json!(["body", "sources", 0, "text"])
        )]
    );
    assert_eq!(
        errors_of(
            &mut c,
            &json!({"answer": "Text.", "sources": [{"source_id": "x"}]})
        )
        .await,
        [("missing".to_string(), json!(["body", "sources", 0, "text"]))]
    );

    let r = c
        .post_json(
            "/verify",
            &json!({"answer": "Text.", "sources": [{"text": "a", "score": -0.1}]}),
        )
        .await;
    assert_eq!(
        r.json()["detail"][0],
        json!({"type": "greater_than_equal", "loc": ["body", "sources", 0, "score"],
               "msg": "Input should be greater than or equal to 0", "input": -0.1, "ctx": {"ge": 0.0}})
    );
    let r = c
        .post_json(
            "/verify",
            &json!({"answer": "Text.", "sources": [{"text": "a", "score": 1.5}]}),
        )
        .await;
    assert_eq!(
        r.json()["detail"][0],
        json!({"type": "less_than_equal", "loc": ["body", "sources", 0, "score"],
               "msg": "Input should be less than or equal to 1", "input": 1.5, "ctx": {"le": 1.0}})
    );

    // Wrong types everywhere: every error is reported, in order.
    let all = errors_of(
        &mut c,
        &json!({
            "answer": 42,
            "sources": [5, {"text": 7, "source_id": 9, "score": "hoch"}, {"text": "ok", "score": []}],
            "metadata": ["not", "a", "dict"]
        }),
    )
    .await;
    assert_eq!(
        all,
        [
            ("string_type".to_string(), json!(["body", "answer"])),
            (
                "model_attributes_type".to_string(),
                json!(["body", "sources", 0])
            ),
            (
                "string_type".to_string(),
                json!(["body", "sources", 1, "text"])
            ),
            (
                "string_type".to_string(),
                json!(["body", "sources", 1, "source_id"])
            ),
            (
                "float_parsing".to_string(),
                json!(["body", "sources", 1, "score"])
            ),
            (
                "float_type".to_string(),
                json!(["body", "sources", 2, "score"])
            ),
            ("dict_type".to_string(), json!(["body", "metadata"])),
        ]
    );
    assert_eq!(
        errors_of(&mut c, &json!({"answer": "Text.", "sources": "x"})).await,
        [("list_type".to_string(), json!(["body", "sources"]))]
    );
    assert_eq!(
        errors_of(&mut c, &json!(["a", "list"])).await,
        [("model_attributes_type".to_string(), json!(["body"]))]
    );

    // Invalid JSON: json_invalid at ["body", <position>].
    let r = c
        .request(
            "POST",
            "/verify",
            &[("content-type", "application/json")],
            b"{\"answer\": ",
        )
        .await;
    assert_eq!(r.status, 422);
    let e = &r.json()["detail"][0];
    assert_eq!(e["type"], "json_invalid");
    assert_eq!(e["loc"][0], "body");
    assert!(e["loc"][1].is_u64(), "{e}");
    assert_eq!(e["msg"], "JSON decode error");

    // An empty body is a missing body.
    let r = c
        .request(
            "POST",
            "/verify",
            &[("content-type", "application/json")],
            b"",
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["loc"], json!(["body"]));
    assert_eq!(r.json()["detail"][0]["type"], "missing");

    // Bytes that are not text: FastAPI's 400.
    let r = c
        .request(
            "POST",
            "/verify",
            &[("content-type", "application/json")],
            b"{\"answer\": \"\xff\"}",
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"detail": "There was an error parsing the body"})
    );

    // Lax mode: a numeric string score is accepted; extra fields are ignored.
    let r = c
        .post_json(
            "/verify",
            &json!({"answer": "Die Würde des Menschen ist unantastbar.",
                    "sources": [{"text": "Die Würde des Menschen ist unantastbar.", "score": "0.5"}],
                    "threshold": 0.9, "strict_mode": true, "config": {"x": 1}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(srv.stats().verified, 1);
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// /verify: results
// ---------------------------------------------------------------------------------------------

fn check_result(v: &Value, answer: &str, sources: usize) {
    assert_eq!(
        keys(v),
        [
            "answer",
            "confidence",
            "duration_ms",
            "metadata",
            "sources",
            "timestamp",
            "verification",
            "verification_id"
        ]
    );
    let id = v["verification_id"].as_str().expect("id");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(id.matches('-').count(), 4);
    let ts = v["timestamp"].as_str().expect("timestamp");
    assert!(
        ts.len() >= 19 && &ts[4..5] == "-" && &ts[10..11] == "T" && &ts[13..14] == ":",
        "{ts}"
    );
    assert!(v["duration_ms"].is_f64() && v["duration_ms"].as_f64() >= Some(0.0));

    let a = &v["answer"];
    assert_eq!(
        keys(a),
        ["citations", "has_citations", "text", "total_sentences"]
    );
    assert_eq!(a["text"], answer);
    let cites = a["citations"].as_array().expect("citations");
    assert_eq!(a["has_citations"], !cites.is_empty());

    let s = &v["sources"];
    assert_eq!(keys(s), ["count", "fingerprints"]);
    assert_eq!(s["count"], sources);
    let fps = s["fingerprints"].as_array().expect("fingerprints");
    assert_eq!(fps.len(), sources);
    for fp in fps {
        let fp = fp.as_str().expect("fingerprint");
        assert!(
            fp.len() == 16 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
            "{fp}"
        );
    }

    let ver = &v["verification"];
    assert_eq!(
        keys(ver),
        ["total_sentences", "verification_rate", "verified_sentences"]
    );
    let total = ver["total_sentences"].as_u64().expect("total");
    let verified = ver["verified_sentences"].as_u64().expect("verified");
    assert_eq!(a["total_sentences"], total);
    assert!(verified <= total);
    let rate = unit(&ver["verification_rate"]);
    assert!((rate - verified as f64 / total.max(1) as f64).abs() < 1e-9);

    let c = &v["confidence"];
    assert_eq!(keys(c), ["components", "score", "trust_label", "verified"]);
    let score = unit(&c["score"]);
    assert_eq!(c["verified"], score >= 0.8);
    let label = c["trust_label"].as_str().expect("label");
    let expected = if score >= 0.8 {
        "✅ Verified"
    } else if score >= 0.6 {
        "⚠️ Review"
    } else {
        "🚫 Rejected"
    };
    assert_eq!(label, expected);
    let comp = &c["components"];
    assert_eq!(
        keys(comp),
        [
            "citation_presence",
            "coverage",
            "retrieval_quality",
            "semantic_similarity"
        ]
    );
    for k in keys(comp) {
        unit(&comp[k]);
    }
    assert!((unit(&comp["coverage"]) - rate).abs() < 1e-9);
    assert!(v.get("overall_confidence").is_none() && v.get("sentence_results").is_none());
}

#[tokio::test]
async fn valid_requests_get_every_documented_field() {
    let srv = server(DemoConfig::default()).await;
    let mut c = Client::connect(srv.addr()).await;

    let r = c.post_json("/verify", &valid_body(ANSWER_823)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    check_result(&v, ANSWER_823, 3);
    assert_eq!(v["answer"]["total_sentences"], 2);
    assert_eq!(
        v["answer"]["citations"],
        json!(["§ 823 Abs. 1 BGB", "§ 195 BGB"])
    );
    assert_eq!(v["verification"]["verified_sentences"], 2);
    assert_eq!(v["confidence"]["trust_label"], "✅ Verified");
    assert_eq!(
        v["metadata"],
        json!({"query_id": "q001", "user_id": "test_user"})
    );

    let r = c
        .post_json(
            "/verify",
            &json!({"answer": ANSWER_GG, "sources": sources()}),
        )
        .await;
    let v = r.json();
    check_result(&v, ANSWER_GG, 3);
    assert_eq!(v["answer"]["total_sentences"], 1);
    assert_eq!(v["answer"]["citations"], json!(["Art. 1 GG"]));
    assert_eq!(v["metadata"], json!({}));

    let more = "Der Kaufvertrag nach §§ 433 ff. BGB verpflichtet z.B. den Verkäufer zur Übergabe. \
                Nach Art. 1 Abs. 1 GG ist die Würde unantastbar.";
    let v = c.post_json("/verify", &valid_body(more)).await.json();
    check_result(&v, more, 3);
    assert_eq!(v["answer"]["total_sentences"], 2);
    assert_eq!(
        v["answer"]["citations"],
        json!(["§§ 433 ff. BGB", "Art. 1 Abs. 1 GG"])
    );

    // An answer the sources do not support scores low.
    let made_up =
        "Der Mond besteht vollständig aus grünem Käse. Katzen regieren heimlich die Bundesländer.";
    let v = c.post_json("/verify", &valid_body(made_up)).await.json();
    check_result(&v, made_up, 3);
    assert_eq!(v["verification"]["verified_sentences"], 0);
    assert_eq!(v["answer"]["has_citations"], false);
    assert_eq!(v["confidence"]["verified"], false);
    assert_eq!(v["confidence"]["trust_label"], "🚫 Rejected");

    // Fingerprints depend on the source text only.
    let one =
        json!([{"text": "Gleicher Text."}, {"text": "Gleicher Text."}, {"text": "Anderer Text."}]);
    let v = c
        .post_json(
            "/verify",
            &json!({"answer": "Gleicher Text.", "sources": one}),
        )
        .await
        .json();
    let fps = &v["sources"]["fingerprints"];
    assert_eq!(fps[0], fps[1]);
    assert_ne!(fps[0], fps[2]);
    srv.shutdown().await;
}

#[tokio::test]
async fn stored_results_and_statistics() {
    let srv = server(DemoConfig::default()).await;
    let mut c = Client::connect(srv.addr()).await;
    let empty = c.get("/statistics").await.json();
    assert_eq!(
        empty,
        json!({"total_verifications": 0, "valid_verifications": 0, "average_confidence": 0.0,
               "by_label": {"verified": 0, "review": 0, "rejected": 0}})
    );

    let good = c.post_json("/verify", &valid_body(ANSWER_823)).await.json();
    let bad = c
        .post_json(
            "/verify",
            &valid_body("Der Mond besteht vollständig aus grünem Käse."),
        )
        .await
        .json();
    let id = good["verification_id"].as_str().expect("id");
    let r = c.get(&format!("/verifications/{id}")).await;
    assert_eq!(r.status, 200);
    let stored = r.json();
    assert_eq!(stored["verification_id"], id);
    assert_eq!(stored["created_at"], good["timestamp"]);
    assert_eq!(stored["answer"]["text"], ANSWER_823);
    assert_eq!(stored["answer"]["sentences"], 2);
    assert_eq!(stored["answer"]["citations"], good["answer"]["citations"]);
    assert_eq!(stored["sources"], good["sources"]);
    assert_eq!(stored["confidence"]["score"], good["confidence"]["score"]);
    assert_eq!(
        stored["confidence"]["components"],
        good["confidence"]["components"]
    );
    assert_eq!(stored["is_valid"], true);

    let missing = "00000000-0000-4000-8000-000000000000";
    let r = c.get(&format!("/verifications/{missing}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"detail": format!("Verification {missing} not found")})
    );
    assert_eq!(c.get("/verifications/nope").await.status, 404);

    let stats = c.get("/statistics").await.json();
    assert_eq!(stats["total_verifications"], 2);
    assert_eq!(stats["valid_verifications"], 2);
    assert_eq!(stats["by_label"]["verified"], 1);
    assert_eq!(stats["by_label"]["rejected"], 1);
    let avg = (good["confidence"]["score"].as_f64().expect("score")
        + bad["confidence"]["score"].as_f64().expect("score"))
        / 2.0;
    assert!((stats["average_confidence"].as_f64().expect("avg") - avg).abs() < 1e-9);
    srv.shutdown().await;
}

#[tokio::test]
async fn store_evicts_the_oldest_result() {
    let srv = server(DemoConfig {
        store_capacity: 2,
        ..DemoConfig::default()
    })
    .await;
    let mut c = Client::connect(srv.addr()).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let v = c.post_json("/verify", &valid_body(ANSWER_GG)).await.json();
        ids.push(v["verification_id"].as_str().expect("id").to_string());
    }
    assert_eq!(
        c.get(&format!("/verifications/{}", ids[0])).await.status,
        404
    );
    assert_eq!(
        c.get(&format!("/verifications/{}", ids[2])).await.status,
        200
    );
    assert_eq!(srv.stats().stored, 2);
    assert_eq!(c.get("/statistics").await.json()["total_verifications"], 3);
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Other routes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn health_root_404_405_and_redirects() {
    let srv = server(DemoConfig::default()).await;
    let mut c = Client::connect(srv.addr()).await;

    let h = c.get("/health").await.json();
    assert_eq!(keys(&h), ["status", "timestamp", "version"]);
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["version"], "0.1.0");

    let root = c.get("/").await.json();
    assert_eq!(root["version"], "0.1.0");
    assert!(root["endpoints"].as_array().is_some_and(|e| e.len() == 5));

    let r = c.get("/nope").await;
    assert_eq!((r.status, r.json()), (404, json!({"detail": "Not Found"})));
    let r = c.get("/verifications/").await;
    assert_eq!(r.status, 404);

    let r = c.get("/verify").await;
    assert_eq!(
        (r.status, r.json()),
        (405, json!({"detail": "Method Not Allowed"}))
    );
    assert_eq!(r.header("allow"), Some("POST"));
    let r = c.request("POST", "/health", &[], b"").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = c.request("DELETE", "/statistics", &[], b"").await;
    assert_eq!(r.status, 405);

    let r = c.request("HEAD", "/health", &[], b"").await;
    assert_eq!(r.status, 200);

    let r = c.get("/health/").await;
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("/health"));
    srv.shutdown().await;
}

#[tokio::test]
async fn metrics_use_the_real_names_and_can_be_disabled() {
    let srv = server(DemoConfig::default()).await;
    let mut c = Client::connect(srv.addr()).await;
    assert_eq!(
        c.post_json("/verify", &valid_body(ANSWER_823)).await.status,
        200
    );
    let r = c.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain")));
    let text = String::from_utf8(r.body).expect("utf-8");
    for needle in [
        "# TYPE auditor_verify_requests_total counter",
        "auditor_verify_requests_total{status=\"success\"} 1.0",
        "# TYPE auditor_verify_latency_seconds histogram",
        "auditor_verify_latency_seconds_bucket{le=\"+Inf\"} 1.0",
        "auditor_verify_latency_seconds_sum ",
        "auditor_verify_latency_seconds_count 1.0",
        "# TYPE auditor_confidence_score histogram",
        "auditor_confidence_score_count 1.0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    srv.shutdown().await;

    let off = server(DemoConfig {
        metrics: false,
        ..DemoConfig::default()
    })
    .await;
    let mut c = Client::connect(off.addr()).await;
    assert_eq!(c.get("/metrics").await.status, 404);
    off.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Knobs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rate_limit_answers_429_with_headers() {
    let srv = server(DemoConfig {
        rate_limit: Some(demo::knobs::parse_rate_limit("5/s").expect("rate")),
        ..DemoConfig::default()
    })
    .await;
    let mut c = Client::connect(srv.addr()).await;
    let started = Instant::now();
    let mut ok = 0u32;
    let mut limited = 0u32;
    for _ in 0..20 {
        let r = c.post_json("/verify", &valid_body(ANSWER_GG)).await;
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
        let remaining: u64 = r
            .header("x-ratelimit-remaining")
            .expect("remaining")
            .parse()
            .expect("int");
        let reset: u64 = r
            .header("x-ratelimit-reset")
            .expect("reset")
            .parse()
            .expect("int");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        assert!(reset >= now && remaining <= 5);
        match r.status {
            200 => ok += 1,
            429 => {
                limited += 1;
                let retry: u64 = r
                    .header("retry-after")
                    .expect("Retry-After")
                    .parse()
                    .expect("int");
                assert!(retry >= 1);
                assert_eq!(remaining, 0);
                assert_eq!(
                    r.json(),
                    json!({"detail": "Rate limit exceeded. Please try again later."})
                );
            }
            s => panic!("unexpected status {s}"),
        }
    }
    // The burst of 5, plus whatever refilled while the test ran (slow machines refill more).
    let refill = (started.elapsed().as_secs_f64() * 5.0).ceil() as u32;
    assert!(ok >= 5 && ok <= 5 + refill + 1, "ok={ok} refill={refill}");
    assert_eq!(ok + limited, 20);
    assert!(limited >= 1);
    // Health checks are exempt, as in the real middleware.
    let h = c.get("/health").await;
    assert_eq!(h.status, 200);
    assert!(h.header("x-ratelimit-limit").is_none());
    assert_eq!(srv.stats().rate_limited, u64::from(limited));
    srv.shutdown().await;
}

async fn injected_failures(rate: f64, n: usize) -> usize {
    let srv = server(DemoConfig {
        error_rate: rate,
        seed: Some(7),
        ..DemoConfig::default()
    })
    .await;
    let mut c = Client::connect(srv.addr()).await;
    let body = serde_json::to_vec(&valid_body(ANSWER_GG)).expect("json");
    let mut failed = 0;
    for _ in 0..n {
        let r = c
            .request(
                "POST",
                "/verify",
                &[("content-type", "application/json")],
                &body,
            )
            .await;
        match r.status {
            200 => {}
            500 => {
                assert_eq!(
                    r.json(),
                    json!({"error": "internal_error", "detail": "Injected failure"})
                );
                failed += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    if failed > 0 {
        let metrics = String::from_utf8(c.get("/metrics").await.body).expect("utf-8");
        assert!(metrics.contains(&format!(
            "auditor_verify_requests_total{{status=\"error\"}} {failed}.0"
        )));
    }
    srv.shutdown().await;
    failed
}

#[tokio::test]
async fn error_injection_follows_the_rate() {
    assert_eq!(injected_failures(1.0, 30).await, 30);
    assert_eq!(injected_failures(0.0, 30).await, 0);
    let n = 400;
    let failed = injected_failures(0.5, n).await as f64;
    let sigma = (n as f64 * 0.25).sqrt();
    assert!((failed - 200.0).abs() <= 3.0 * sigma, "{failed} of {n}");
}

#[tokio::test]
async fn api_key_guards_verify_statistics_and_results() {
    let srv = server(DemoConfig {
        api_key: Some("s3cret".into()),
        ..DemoConfig::default()
    })
    .await;
    let mut c = Client::connect(srv.addr()).await;
    let body = serde_json::to_vec(&valid_body(ANSWER_GG)).expect("json");
    let ct = ("content-type", "application/json");
    let post = |extra: Vec<(&'static str, &'static str)>| {
        let mut h = vec![ct];
        h.extend(extra);
        h
    };
    for headers in [
        post(vec![]),
        post(vec![("x-api-key", "wrong")]),
        post(vec![("authorization", "Bearer wrong")]),
        post(vec![
            ("x-api-key", "wrong"),
            ("authorization", "Bearer s3cret"),
        ]),
    ] {
        let r = c.request("POST", "/verify", &headers, &body).await;
        assert_eq!(r.status, 401, "{headers:?}");
        assert_eq!(r.json(), json!({"detail": "Invalid or missing API key"}));
    }
    let r = c
        .request(
            "POST",
            "/verify",
            &post(vec![("x-api-key", "s3cret")]),
            &body,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .request(
            "POST",
            "/verify",
            &post(vec![("authorization", "Bearer s3cret")]),
            &body,
        )
        .await;
    assert_eq!(r.status, 200);
    let id = r.json()["verification_id"]
        .as_str()
        .expect("id")
        .to_string();

    assert_eq!(c.get("/health").await.status, 200);
    assert_eq!(c.get("/statistics").await.status, 401);
    assert_eq!(c.get(&format!("/verifications/{id}")).await.status, 401);
    let r = c
        .request("GET", "/statistics", &[("x-api-key", "s3cret")], b"")
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .request(
            "GET",
            &format!("/verifications/{id}"),
            &[("authorization", "bearer s3cret")],
            b"",
        )
        .await;
    assert_eq!(r.status, 200);
    srv.shutdown().await;
}

#[tokio::test]
async fn stall_holds_requests_until_the_window_ends() {
    let stall = demo::knobs::parse_stall("400ms/1s").expect("stall");
    let srv = server(DemoConfig {
        stall: Some(stall),
        ..DemoConfig::default()
    })
    .await;
    let epoch = srv.epoch();
    let window_start = epoch + Duration::from_millis(600);
    let window_end = epoch + Duration::from_secs(1);
    let addr = srv.addr();
    // Three clients poll /health until just after the first window; one starts inside it.
    let mut tasks = Vec::new();
    for (i, begin) in [(0u64, 300u64), (1, 450), (2, 700)] {
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until((epoch + Duration::from_millis(begin)).into()).await;
            let mut c = Client::connect(addr).await;
            let mut seen = Vec::new();
            while Instant::now() < epoch + Duration::from_millis(1150) {
                seen.push(c.get("/health").await);
                tokio::time::sleep(Duration::from_millis(20 + 10 * i)).await;
            }
            seen
        }));
    }
    let mut held = 0;
    for t in tasks {
        for r in t.await.expect("client task") {
            assert_eq!(r.status, 200);
            let service = r.service_time();
            assert!(service <= r.latency, "{service:?} > {:?}", r.latency);
            if r.sent_at >= window_start && r.sent_at < window_end {
                held += 1;
                // Held until the window ended: the server's own time covers what was left of
                // the window, give or take the time the request spent outside the server.
                let remaining = window_end - r.sent_at;
                let outside = r.latency - service;
                assert!(
                    service + outside + Duration::from_millis(1) >= remaining,
                    "service {service:?} + outside {outside:?} < remaining {remaining:?}"
                );
                assert!(r.sent_at + r.latency >= window_end);
            } else if r.sent_at + r.latency < window_start {
                assert!(
                    service < stall.duration / 2,
                    "unstalled request took {service:?}"
                );
            }
        }
    }
    assert!(held >= 1, "no request landed in the stall window");
    assert!(srv.stats().stalled >= 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn latency_knob_is_part_of_the_service_time() {
    let srv = server(DemoConfig {
        latency: Some(demo::knobs::parse_latency("20ms..40ms").expect("latency")),
        seed: Some(1),
        ..DemoConfig::default()
    })
    .await;
    let mut c = Client::connect(srv.addr()).await;
    let mut distinct = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let r = c.post_json("/verify", &valid_body(ANSWER_GG)).await;
        assert_eq!(r.status, 200);
        let s = r.service_time();
        assert!(s >= Duration::from_millis(20), "{s:?}");
        assert!(s <= r.latency);
        let duration_ms = r.json()["duration_ms"].as_f64().expect("duration_ms");
        assert!(duration_ms >= 20.0);
        distinct.insert(s.as_micros() / 1000);
    }
    assert!(
        distinct.len() > 1,
        "uniform latency should vary: {distinct:?}"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn service_time_header_is_on_every_response_and_plausible() {
    let srv = server(DemoConfig {
        api_key: Some("k".into()),
        ..DemoConfig::default()
    })
    .await;
    let mut c = Client::connect(srv.addr()).await;
    let key = [("x-api-key", "k"), ("content-type", "application/json")];
    let body = serde_json::to_vec(&valid_body(ANSWER_823)).expect("json");
    let responses = vec![
        c.get("/").await,
        c.get("/health").await,
        c.get("/metrics").await,
        c.request("GET", "/statistics", &key, b"").await,
        c.request("POST", "/verify", &key, &body).await,
        c.request("POST", "/verify", &key, b"{}").await,
        c.request("POST", "/verify", &key, b"{").await,
        c.request("POST", "/verify", &[], &body).await,
        c.get("/verify").await,
        c.get("/nowhere").await,
        c.get("/health/").await,
    ];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 422, 422, 401, 405, 404, 307]
    );
    for r in &responses {
        assert!(
            r.service_time() <= r.latency,
            "{:?} > {:?}",
            r.service_time(),
            r.latency
        );
    }
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_on_a_multi_thread_runtime() {
    let srv = server(DemoConfig::default()).await;
    let addr = srv.addr();
    let mut tasks = Vec::new();
    for i in 0..8 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let answer = if i % 2 == 0 { ANSWER_823 } else { ANSWER_GG };
            for _ in 0..25 {
                let r = c.post_json("/verify", &valid_body(answer)).await;
                assert_eq!(r.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    let stats = srv.stats();
    assert_eq!(stats.verified, 200);
    assert_eq!(stats.connections, 8);
    srv.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops_accepting() {
    let srv = server(DemoConfig {
        latency: Some(demo::knobs::parse_latency("300ms").expect("latency")),
        ..DemoConfig::default()
    })
    .await;
    let addr = srv.addr();
    let in_flight = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        c.get("/health").await
    });
    // Let the request reach the server, then stop while it sleeps in the latency knob.
    while srv.stats().requests == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    srv.shutdown().await;
    let r = in_flight.await.expect("client");
    assert_eq!(r.status, 200);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

// ---------------------------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------------------------

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the child did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn leak_knob_grows_rss_at_the_asked_rate() {
    let (guard, _addr) = crate::support::demo_child(&["--leak", "120MB/min", "--threads", "1"]);
    let pid = guard.0.id();
    std::thread::sleep(Duration::from_millis(500));
    let (t0, r0) = (Instant::now(), vm_rss_kib(pid));
    std::thread::sleep(Duration::from_secs(4));
    let (t1, r1) = (Instant::now(), vm_rss_kib(pid));
    let rate = (r1.saturating_sub(r0)) as f64 / (t1 - t0).as_secs_f64(); // KiB/s
    let asked = 120.0 * 1024.0 / 60.0;
    assert!(
        (rate - asked).abs() <= 0.3 * asked,
        "RSS grew {rate:.0} KiB/s, asked {asked:.0} KiB/s ({r0} → {r1} KiB)"
    );
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_0() {
    let (mut guard, addr) = crate::support::demo_child(&["--latency", "300ms"]);
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(STEP_TIMEOUT))
        .expect("timeout");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    std::thread::sleep(Duration::from_millis(100));
    let pid = libc::pid_t::try_from(guard.0.id()).expect("pid");
    // SAFETY: sending a signal to our own child process, which is still running.
    // SAFETY: kill(2) on the pid of the demo server this test started; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    assert!(reply.contains("\"healthy\""));
    let status = wait_exit(&mut guard.0);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn port_taken_exits_2_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let out = Command::new(env!("CARGO_BIN_EXE_perfhost"))
        .args(["demo-server", "--bind", &addr.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run perfhost");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: cannot listen on {addr}: address already in use — choose another with --bind"
        )
    );
}

#[test]
fn bad_knob_values_are_usage_errors() {
    for (flag, value, hint) in [
        ("--latency", "fast", "40ms"),
        ("--error-rate", "1.5", "between 0 and 1"),
        ("--rate-limit", "ten", "10/s"),
        ("--leak", "8MB", "8MB/min"),
        ("--stall", "10s/1s", "1s/10s"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_perfhost"))
            .args(["demo-server", "--bind", "127.0.0.1:0", flag, value])
            .stdin(Stdio::null())
            .output()
            .expect("run perfhost");
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("");
        assert!(first.contains(flag) && first.contains(hint), "{first}");
    }
}
