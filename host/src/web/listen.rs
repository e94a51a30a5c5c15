//! How the web UI and the `--metrics-port` endpoint take connections (one place for both):
//! at most [`MAX_CONNECTIONS`] at once, a request head read within [`HEADER_TIMEOUT`] (an idle
//! kept-alive connection too), and a pause instead of a busy loop when `accept` fails (out of
//! file descriptors). A client beyond the cap gets a 503 and the connection is closed, so the
//! listen queue never fills with connections nobody reads.

use std::future::Future;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once; the next one is answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 128;
/// Time a client has to send a request's head (the request line and headers), counted from
/// the connection's start or the end of its previous answer. A slow or idle client is then
/// disconnected and frees its place.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a request body (`POST /swarm`'s form).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause after `accept` failed for want of file descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Refusals (a 503 written, the request read and dropped) under way at once; beyond them a
/// connection over the cap is closed without a word.
const MAX_REFUSALS: usize = 32;
/// Time a refused client has to take its 503.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

fn busy() -> String {
    let body = format!(
        "503: perfhost serves {MAX_CONNECTIONS} connections at once: try again in a moment\n"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answers a connection over the cap with a 503 and closes it. What the client sent is read
/// (up to a little) first: closing with unread bytes would reset the connection, and the
/// client would see the reset instead of the answer.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(busy().as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut read = 0;
        while read < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => read += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Serves every connection `listener` accepts with the service `make` builds, until `stop`
/// resolves.
pub async fn serve<S, M>(listener: TcpListener, make: M, stop: impl Future<Output = ()>)
where
    M: Fn() -> S,
    S: HttpService<Incoming> + Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let places = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stop => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // The client gave up before it was accepted: nothing to wait for.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted
                        | ErrorKind::ConnectionReset
                        | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            // EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying at once would spin a core and serve
            // nobody; a pause lets connections end and descriptors come back.
            Err(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    _ = &mut stop => return,
                }
            }
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            // Full: a 503 when a refusal's place is free, else just closed (never queued:
            // the listen queue would fill with connections nobody reads).
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let service = make();
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(place);
        });
    }
}
