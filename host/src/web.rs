//! The run's HTTP endpoint while it goes (`perfhost run --metrics-port P`): `/metrics` in the
//! Prometheus text format, from the board the collector publishes each second. Bound to
//! 127.0.0.1 unless `--web-host` says otherwise, and then only with `--web-token`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::plan::{MetricsPlan, Secret};
use crate::stats::live::LiveBoard;

/// A running endpoint; dropping it (or `shutdown`) stops it.
pub struct WebServer {
    pub addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
}

impl WebServer {
    pub fn shutdown(self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts serving `board` on `plan.addr`.
pub async fn serve(plan: &MetricsPlan, board: Arc<LiveBoard>) -> std::io::Result<WebServer> {
    let listener = TcpListener::bind(plan.addr).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let token = plan.token.clone().map(Arc::new);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = stopped.changed() => return,
            };
            let board = board.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let response = answer(&req, &board, token.as_deref());
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(WebServer { addr, stop })
}

fn answer<B>(req: &Request<B>, board: &LiveBoard, token: Option<&Secret>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", kind)
            .body(Full::new(Bytes::from(body)))
            .expect("static headers are valid")
    };
    if let Some(token) = token {
        let expected = format!("Bearer {}", token.0);
        let given = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return reply(
                StatusCode::UNAUTHORIZED,
                "text/plain",
                "401: send `Authorization: Bearer <--web-token>`\n".into(),
            );
        }
    }
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/metrics") => {
            let board = board.snapshot().unwrap_or_default();
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::report::prometheus::render(&board),
            )
        }
        ("GET", "/stats/requests") => {
            let board = board.snapshot().unwrap_or_default();
            reply(
                StatusCode::OK,
                "application/json",
                crate::report::locust_api::stats_requests(&board).to_string(),
            )
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "404: perfhost serves /metrics and /stats/requests\n".into(),
        ),
    }
}
