//! `GET path` on the target must answer 2xx: the health gate of `perfhost bench` and the
//! check `perfhost profile` makes before it samples.

use std::sync::Arc;
use std::time::Duration;

use perfhost_core::client::{ClientConfig, ClientError, Connection, HttpError, OutgoingRequest};
use perfhost_core::plan::{ClientOptions, Target};

/// Why the target is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("health check failed: GET {url} {why} — start the service, or check -H/--url (the suite's `health` path can be changed)")]
    Failed { url: String, why: String },
    #[error("{0}")]
    Client(#[from] ClientError),
}

impl From<HealthError> for crate::failure::Failure {
    fn from(err: HealthError) -> Self {
        crate::failure::Failure::of(err.exit_code(), &err)
    }
}

impl HealthError {
    /// The exit code (README's table): 3 for an unhealthy target, 2 for a client that cannot
    /// be built from the options.
    pub fn exit_code(&self) -> u8 {
        match self {
            HealthError::Failed { .. } => crate::exit::UNREACHABLE,
            HealthError::Client(_) => crate::exit::USAGE,
        }
    }
}

/// `GET path` on the target, with these client options, must answer 2xx.
pub async fn check(
    target: &Arc<Target>,
    options: &ClientOptions,
    path: &str,
) -> Result<(), HealthError> {
    let url = format!("{}{}{}", target.origin, target.base_path, path);
    let bad = |why: String| HealthError::Failed {
        url: url.clone(),
        why,
    };
    let client = ClientConfig::new(target.clone(), options)?;
    let mut conn = Connection::new(client);
    let uri = target.resolve(path).map_err(|e| bad(e.to_string()))?;
    let request = OutgoingRequest {
        method: http::Method::GET,
        uri,
        headers: Vec::new(),
        body: bytes::Bytes::new(),
        timeout: Some(Duration::from_secs(10)),
        follow_redirects: true,
        discard_body: true,
    };
    match conn.send(request).await {
        Ok(resp) if resp.status.is_success() => Ok(()),
        Ok(resp) => Err(bad(format!("answered {}", resp.status))),
        Err(HttpError::Connect(why)) => Err(bad(format!("could not connect ({why})"))),
        Err(err) => Err(bad(format!("failed: {err}"))),
    }
}
