//! The live board as Locust 2.x's `GET /stats/requests` answers it, so scripts and dashboards
//! written against Locust's web API read perfhost unchanged: the same field names, in
//! milliseconds, with `current_rps` over the last one-second interval.

use serde_json::{json, Value};

use perfhost_core::stats::live::Board;
use perfhost_core::stats::{EndpointStats, Percentile};

fn row(s: &EndpointStats, current_rps: f64, current_fail_per_sec: f64) -> Value {
    let p = |q: Percentile| s.percentile(q);
    json!({
        "method": s.method,
        "name": s.name,
        "safe_name": s.name,
        "num_requests": s.requests,
        "num_failures": s.failures,
        "avg_response_time": s.avg_ms,
        "min_response_time": if s.requests > 0 { Some(s.min_ms) } else { None },
        "max_response_time": s.max_ms,
        "median_response_time": s.median_ms,
        "ninetieth_response_time": p(Percentile::P90),
        "ninety_ninth_response_time": p(Percentile::P99),
        "response_time_percentile_0.95": p(Percentile::P95),
        "response_time_percentile_0.99": p(Percentile::P99),
        "current_rps": current_rps,
        "current_fail_per_sec": current_fail_per_sec,
        "total_rps": s.rps,
        "total_fail_per_sec": s.failures_per_s,
        "avg_content_length": s.avg_content_bytes,
    })
}

/// `/stats/requests` of the run so far.
pub fn stats_requests(board: &Board) -> Value {
    let seconds = board.elapsed_s;
    let (stats, total) = perfhost_core::stats::endpoint_rows(&board.all, seconds);
    let interval = board.last.as_ref();
    // The interval's length, from its own rate: requests / (requests per second).
    let per_request = interval
        .filter(|p| p.requests > 0)
        .map_or(1.0, |p| p.rps / p.requests as f64);
    let per_s = |n: u64| n as f64 * per_request;
    let current = |method: &str, name: &str| {
        interval
            .and_then(|p| {
                p.endpoints
                    .iter()
                    .find(|e| e.method == method && e.name == name)
            })
            .map_or((0.0, 0.0), |e| (per_s(e.requests), per_s(e.failures)))
    };
    let mut rows: Vec<Value> = stats
        .iter()
        .map(|s| {
            let (rps, fps) = current(&s.method, &s.name);
            row(s, rps, fps)
        })
        .collect();
    let (total_rps, total_fps) = interval.map_or((0.0, 0.0), |p| (p.rps, p.failures_per_s));
    let window = interval.and_then(|p| p.window_ms.as_ref());
    rows.push(row(&total, total_rps, total_fps));
    let mut errors: Vec<Value> = board
        .all
        .failure_counts()
        .map(|(method, name, error, n)| {
            json!({"method": method, "name": name, "error": error, "occurrences": n})
        })
        .collect();
    errors.sort_by(|a, b| b["occurrences"].as_u64().cmp(&a["occurrences"].as_u64()));
    let fail_ratio = if total.requests > 0 {
        total.failures as f64 / total.requests as f64
    } else {
        0.0
    };
    json!({
        "stats": rows,
        "errors": errors,
        "total_rps": total_rps,
        "total_fail_per_sec": total_fps,
        "fail_ratio": fail_ratio,
        // Over the last 10 s, as Locust's "current" percentiles.
        "current_response_time_percentiles": {
            "response_time_percentile_0.5": window.map_or(0.0, |w| w.get(Percentile::P50)),
            "response_time_percentile_0.95": window.map_or(0.0, |w| w.get(Percentile::P95)),
        },
        "state": if board.finished { "stopped" } else { "running" },
        "user_count": board.users,
    })
}
