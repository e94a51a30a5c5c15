//! A misbehaving HTTP target on 127.0.0.1, written on raw TCP so it can break the protocol.
//! The path of each request picks the fault:
//!
//! | path | answer |
//! |---|---|
//! | `/ok` | 200 with a small body |
//! | `/echo…` | 200 echoing the request line, every header and the query string, and a `Set-Cookie` holding the `Authorization` header |
//! | `/echo500…` | the same with status 500 |
//! | `/rst` | a TCP reset before any answer |
//! | `/close` | the connection closed before any answer |
//! | `/garbage` | bytes that are not HTTP |
//! | `/short` | a `Content-Length` of 1000 and 10 bytes, then close |
//! | `/trickle` | a 200 whose 20-byte body comes one byte per 100 ms |
//! | `/hang` | nothing, ever (the connection stays open) |
//! | `/bigheader` | a 10 MB response header |
//! | `/big` | 200 with a 100 MB body (`Content-Length`) |
//! | `/bigchunked` | 200 with a 100 MB chunked body |
//! | `/redirect-foreign` | 302 to `http://example.invalid/` |
//! | `/redirect-loop` | 302 to itself |
//! | `/slow600` | 200 after 600 ms |
//! | `/health` | 200 `{"status":"healthy"}` |
//! | `/503` | 503 |
//! | anything else | 404 |

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct FaultServer {
    pub addr: SocketAddr,
    /// Requests whose head was read, over all paths.
    pub requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, counter.clone()));
            }
        });
        FaultServer {
            addr,
            requests,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head (and a Content-Length body) from `stream`; `None` at EOF.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + length;
            while buf.len() < total {
                let mut chunk = vec![0u8; (total - buf.len()).min(1 << 20)];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..total);
            return Some(head);
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

async fn serve(mut stream: TcpStream, requests: Arc<AtomicU64>) {
    let mut buf = Vec::new();
    while let Some(head) = read_request(&mut stream, &mut buf).await {
        requests.fetch_add(1, Ordering::Relaxed);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/")
            .to_string();
        let path = target.split('?').next().unwrap_or("/").to_string();
        let ok = match path.as_str() {
            "/ok" => stream.write_all(&response("200 OK", &[], b"fine")).await,
            "/health" => {
                stream
                    .write_all(&response("200 OK", &[], br#"{"status":"healthy"}"#))
                    .await
            }
            "/503" => {
                stream
                    .write_all(&response("503 Service Unavailable", &[], b"down"))
                    .await
            }
            p if p.starts_with("/echo") => {
                let status = if p.starts_with("/echo500") {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let auth = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("authorization")
                            .then(|| v.trim().to_string())
                    })
                    .unwrap_or_default();
                let cookie = ("set-cookie", format!("session={}", auth.replace(' ', "_")));
                let body = format!("{head}\r\nquery: {target}\r\n");
                stream
                    .write_all(&response(status, &[cookie], body.as_bytes()))
                    .await
            }
            "/rst" => {
                // A zero linger makes the close a reset (and never blocks, unlike a nonzero one).
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                return;
            }
            "/close" => return,
            "/garbage" => {
                let _ = stream
                    .write_all(b"\x00\x01 this is not HTTP at all\r\n\r\n")
                    .await;
                return;
            }
            "/short" => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789")
                    .await;
                return;
            }
            "/trickle" => {
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\n";
                let mut ok = stream.write_all(head).await;
                for _ in 0..20 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    ok = ok.and(stream.write_all(b"x").await);
                }
                ok
            }
            "/hang" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            "/slow600" => {
                tokio::time::sleep(Duration::from_millis(600)).await;
                stream.write_all(&response("200 OK", &[], b"slow")).await
            }
            "/bigheader" => {
                let big = "a".repeat(10 << 20);
                stream
                    .write_all(&response("200 OK", &[("x-big", big)], b""))
                    .await
            }
            "/big" => {
                let mut ok = stream
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", 100 << 20)
                            .as_bytes(),
                    )
                    .await;
                let chunk = vec![b'b'; 1 << 20];
                for _ in 0..100 {
                    ok = ok.and(stream.write_all(&chunk).await);
                }
                ok
            }
            "/bigchunked" => {
                let mut ok = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await;
                let mut chunk = format!("{:x}\r\n", 1 << 20).into_bytes();
                chunk.extend(std::iter::repeat_n(b'c', 1 << 20));
                chunk.extend_from_slice(b"\r\n");
                for _ in 0..100 {
                    ok = ok.and(stream.write_all(&chunk).await);
                }
                ok.and(stream.write_all(b"0\r\n\r\n").await)
            }
            "/redirect-foreign" => {
                let location = ("location", "http://example.invalid/".to_string());
                stream
                    .write_all(&response("302 Found", &[location], b""))
                    .await
            }
            "/redirect-loop" => {
                let location = ("location", "/redirect-loop".to_string());
                stream
                    .write_all(&response("302 Found", &[location], b""))
                    .await
            }
            _ => {
                stream
                    .write_all(&response("404 Not Found", &[], b"no"))
                    .await
            }
        };
        if ok.is_err() {
            return;
        }
    }
}
