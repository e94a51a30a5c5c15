//! TLS for https targets: the trusted roots, `--insecure`, and the protocols offered by ALPN.

use std::path::Path;
use std::sync::Arc;

use super::ClientError;
use crate::plan::HttpVersion;

/// What ALPN offers for `version`: both (the server picks), or only the one forced.
pub(super) fn alpn(version: HttpVersion) -> Vec<Vec<u8>> {
    match version {
        HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
        HttpVersion::Http2 => vec![b"h2".to_vec()],
    }
}

/// TLS settings for https targets: the webpki roots plus `--ca-cert` (PEM), or `--insecure`.
pub fn tls_config(
    insecure: bool,
    ca_cert: Option<&Path>,
) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    if insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_cert {
        use rustls::pki_types::pem::PemObject;
        let bad = |e: &dyn std::fmt::Display| ClientError::CaCert {
            path: path.display().to_string(),
            why: e.to_string(),
        };
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))?;
        let mut added = 0;
        for cert in certs {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad(&"no certificate found"));
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `--insecure`: accepts any server certificate (signatures are still checked).
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a connection forced to HTTP/2 over TLS was not made.
pub(super) const NO_H2: &str = "the server did not agree to HTTP/2 (ALPN): it speaks HTTP/1.1 only — use --http-version auto or 1.1";

/// The TLS handshake with `target` over `tcp`, SNI from the target's host name.
pub(super) async fn connect(
    tls: &Arc<rustls::ClientConfig>,
    target: &crate::plan::Target,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, super::HttpError> {
    use super::HttpError;
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| HttpError::Tls(format!("bad server name {}: {e}", target.host)))?;
    tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| {
            // A server that speaks none of the protocols ALPN offered ends the handshake with
            // this alert: offered only `h2` (`--http-version 2`), it speaks HTTP/1.1 only.
            let no_protocol = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
                == Some(&rustls::Error::AlertReceived(
                    rustls::AlertDescription::NoApplicationProtocol,
                ));
            if no_protocol && tls.alpn_protocols == [b"h2".to_vec()] {
                HttpError::Tls(NO_H2.into())
            } else {
                HttpError::Tls(e.to_string())
            }
        })
}
