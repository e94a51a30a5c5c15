//! Before a run: which HTTP the target speaks, so that a user's concurrent requests share one
//! HTTP/2 connection from their first, and `--http-version 2` against a server without it
//! fails at once with one line instead of failing every request.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{tls, ClientConfig};
use crate::plan::{HttpVersion, Protocol};

/// What HTTP/2 sends first with prior knowledge: the preface and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Learns the protocol the run will speak and notes it in `config.speaks_h2`. https: one TLS
/// handshake, whose ALPN answer decides under `auto`; http under `2`: the HTTP/2 preface,
/// answered with a SETTINGS frame by an h2c server. Under `auto`, a handshake that fails is
/// left to the requests (they record it as they would have); under `2`, it is the error.
pub async fn negotiate(config: &mut ClientConfig, timeout: Duration) -> Result<Protocol, String> {
    let forced = config.http_version == HttpVersion::Http2;
    let origin = config.target.origin.clone();
    let found = match (&config.tls, config.http_version) {
        (_, HttpVersion::Http1) | (None, HttpVersion::Auto) => Ok(Protocol::Http1),
        (Some(tls_config), _) => {
            let handshake = async {
                let tcp = TcpStream::connect(config.target.connect_addr())
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?;
                let stream = tls::connect(tls_config, &config.target, tcp)
                    .await
                    .map_err(|e| match e {
                        super::HttpError::Tls(why) if why == tls::NO_H2 => why,
                        other => format!("TLS handshake failed: {other}"),
                    })?;
                Ok::<_, String>(match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => Protocol::Http2,
                    _ => Protocol::Http1,
                })
            };
            match tokio::time::timeout(timeout, handshake).await {
                Ok(Ok(Protocol::Http1)) if forced => Err(format!("{origin}: {}", tls::NO_H2)),
                Ok(Ok(protocol)) => Ok(protocol),
                Ok(Err(why)) if forced => Err(format!("{origin}: {why}")),
                Err(_) if forced => Err(format!("{origin}: no TLS handshake within {timeout:?}")),
                _ => Ok(Protocol::Http1),
            }
        }
        (None, HttpVersion::Http2) => match tokio::time::timeout(timeout, h2c(config)).await {
            Ok(Ok(())) => Ok(Protocol::Http2),
            Ok(Err(why)) => Err(format!(
                "{origin} does not speak HTTP/2 with prior knowledge (h2c): {why} — use \
                 --http-version auto or 1.1 (or an https:// target for HTTP/2 by ALPN)"
            )),
            Err(_) => Err(format!(
                "{origin} did not answer the HTTP/2 preface within {timeout:?} — use \
                 --http-version auto or 1.1"
            )),
        },
    };
    if let Ok(protocol) = found {
        config.speaks_h2 = protocol == Protocol::Http2;
    }
    found
}

/// Sends the HTTP/2 preface; Ok when the server answers with a SETTINGS frame.
async fn h2c(config: &ClientConfig) -> Result<(), String> {
    let mut tcp = TcpStream::connect(config.target.connect_addr())
        .await
        .map_err(|e| e.to_string())?;
    tcp.write_all(PREFACE).await.map_err(|e| e.to_string())?;
    let mut head = [0u8; 9];
    match tcp.read_exact(&mut head).await {
        // A frame header: 3 bytes length, then the type; 4 is SETTINGS.
        Ok(_) if head[3] == 4 => Ok(()),
        Ok(_) if head.starts_with(b"HTTP/") => {
            let line = String::from_utf8_lossy(&head);
            Err(format!(
                "it answered as HTTP/1 (`{}…`)",
                crate::text::terminal_safe(line.trim())
            ))
        }
        Ok(_) => Err("its answer is not an HTTP/2 SETTINGS frame".into()),
        Err(_) => Err("it closed the connection".into()),
    }
}
