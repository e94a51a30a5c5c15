//! The HTTP client against real servers on 127.0.0.1: cookies, redirects, gzip, TLS.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use perfhost_core::client::{ClientConfig, Connection, HttpError, OutgoingRequest};
use perfhost_core::plan::Target;
use tokio::net::TcpListener;

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let cookie = req
        .headers()
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let response = match req.uri().path() {
        "/login" => Response::builder()
            .header("set-cookie", "session=abc123; Path=/; HttpOnly")
            .body(Full::new(Bytes::from("in"))),
        "/whoami" => Response::builder().body(Full::new(Bytes::from(cookie))),
        "/old" => Response::builder()
            .status(302)
            .header("location", "/new")
            .body(Full::new(Bytes::new())),
        "/new" => Response::builder().body(Full::new(Bytes::from("arrived"))),
        "/gzip" => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(b"hello from gzip").unwrap();
            Response::builder()
                .header("content-encoding", "gzip")
                .body(Full::new(Bytes::from(enc.finish().unwrap())))
        }
        "/close" => Response::builder()
            .header("connection", "close")
            .body(Full::new(Bytes::from("bye"))),
        _ => Response::builder()
            .status(404)
            .body(Full::new(Bytes::new())),
    };
    Ok(response.unwrap())
}

/// Serves `handle` on 127.0.0.1, over TLS when an acceptor is given.
async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service_fn(handle))
                                .await;
                        }
                    }
                    None => {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service_fn(handle))
                            .await;
                    }
                }
            });
        }
    });
    format!("{scheme}://{addr}")
}

fn connection(url: &str, tls: Option<rustls::ClientConfig>) -> Connection {
    Connection::new(ClientConfig {
        target: Arc::new(Target::parse(url).unwrap()),
        default_headers: Arc::default(),
        timeout: Duration::from_secs(5),
        tls: tls.map(Arc::new),
        max_body_size: perfhost_core::client::DEFAULT_MAX_BODY_SIZE,
        keepalive: true,
        http_version: perfhost_core::plan::HttpVersion::Auto,
        speaks_h2: false,
    })
}

async fn get(conn: &mut Connection, path: &str, follow: bool) -> Result<(u16, String), HttpError> {
    let uri = conn.target().resolve(path)?;
    let resp = conn
        .send(OutgoingRequest {
            method: Method::GET,
            uri,
            headers: vec![],
            body: Bytes::new(),
            timeout: None,
            follow_redirects: follow,
            discard_body: false,
        })
        .await?;
    Ok((
        resp.status.as_u16(),
        String::from_utf8_lossy(&resp.body).into_owned(),
    ))
}

#[tokio::test]
async fn cookies_redirects_gzip_and_reconnects() {
    let url = serve(None).await;
    let mut conn = connection(&url, None);
    assert_eq!(get(&mut conn, "/whoami", true).await.unwrap().1, "");
    get(&mut conn, "/login", true).await.unwrap();
    assert_eq!(
        get(&mut conn, "/whoami", true).await.unwrap().1,
        "session=abc123",
        "per-user cookie jar"
    );
    assert_eq!(
        get(&mut conn, "/old", true).await.unwrap(),
        (200, "arrived".to_string())
    );
    assert_eq!(
        get(&mut conn, "/old", false).await.unwrap().0,
        302,
        "redirects can be left alone"
    );
    assert_eq!(
        get(&mut conn, "/gzip", true).await.unwrap().1,
        "hello from gzip"
    );
    assert_eq!(conn.connects, 1, "one keep-alive connection so far");
    get(&mut conn, "/close", true).await.unwrap();
    get(&mut conn, "/whoami", true).await.unwrap();
    assert_eq!(conn.connects, 2, "reconnects after the server closes");
    let denied = get(&mut conn, "http://example.com/", true).await;
    assert!(matches!(denied, Err(HttpError::Denied(_))), "{denied:?}");
}

/// A self-signed certificate for 127.0.0.1, and a TLS acceptor serving it.
fn self_signed() -> (
    rcgen::CertifiedKey<rcgen::KeyPair>,
    tokio_rustls::TlsAcceptor,
) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![key.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
        )
        .unwrap();
    (key, tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

#[tokio::test]
async fn tls_with_a_private_ca_insecure_or_refused() {
    let (key, acceptor) = self_signed();
    let url = serve(Some(acceptor)).await;

    let dir = std::env::temp_dir().join(format!("perfhost-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, key.cert.pem()).unwrap();

    let trusted = perfhost_core::client::tls_config(false, Some(&ca)).unwrap();
    assert_eq!(
        get(&mut connection(&url, Some(trusted)), "/new", true)
            .await
            .unwrap()
            .1,
        "arrived"
    );
    let insecure = perfhost_core::client::tls_config(true, None).unwrap();
    assert_eq!(
        get(&mut connection(&url, Some(insecure)), "/new", true)
            .await
            .unwrap()
            .1,
        "arrived"
    );
    let strict = perfhost_core::client::tls_config(false, None).unwrap();
    let refused = get(&mut connection(&url, Some(strict)), "/new", true).await;
    assert!(matches!(refused, Err(HttpError::Tls(_))), "{refused:?}");

    let not_pem = dir.join("bad.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let err = perfhost_core::client::tls_config(false, Some(&not_pem))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--ca-cert") && err.contains("PEM"), "{err}");
}

/// Serves `handle` on 127.0.0.1, counting the connections it accepts; with `lifetime`, each
/// connection is closed that long after it was accepted (an idle timeout).
async fn serve_counted(
    lifetime: Option<Duration>,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let serving = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle));
                match lifetime {
                    Some(limit) => drop(tokio::time::timeout(limit, serving).await),
                    None => drop(serving.await),
                }
            });
        }
    });
    (url, accepted)
}

/// A resting user (`Connection::rest`, before a long wait) lets hyper's state go but keeps
/// its socket: its next requests go over the same TCP connection with its cookies; a socket
/// the server closed while it rested is replaced without a failure; TLS stays as it was.
#[tokio::test]
async fn a_resting_connection_keeps_its_socket() {
    use std::sync::atomic::Ordering::SeqCst;
    let (url, accepted) = serve_counted(None).await;
    let mut conn = connection(&url, None);
    get(&mut conn, "/login", true).await.unwrap();
    for _ in 0..3 {
        conn.rest();
        assert_eq!(
            get(&mut conn, "/whoami", true).await.unwrap(),
            (200, "session=abc123".to_string())
        );
    }
    assert_eq!(
        (conn.connects, accepted.load(SeqCst)),
        (1, 1),
        "one socket throughout"
    );

    // The server closes every connection 200 ms after accepting it.
    let (url, accepted) = serve_counted(Some(Duration::from_millis(200))).await;
    let mut conn = connection(&url, None);
    get(&mut conn, "/whoami", true).await.unwrap();
    conn.rest();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(&mut conn, "/whoami", true).await.unwrap().0, 200);
    assert_eq!(
        (conn.connects, accepted.load(SeqCst)),
        (2, 2),
        "a new socket, no failure"
    );

    // Over TLS the connection stays whole.
    let (_key, acceptor) = self_signed();
    let url = serve(Some(acceptor)).await;
    let insecure = perfhost_core::client::tls_config(true, None).unwrap();
    let mut conn = connection(&url, Some(insecure));
    get(&mut conn, "/whoami", true).await.unwrap();
    conn.rest();
    assert_eq!(get(&mut conn, "/whoami", true).await.unwrap().0, 200);
    assert_eq!(conn.connects, 1);
}
