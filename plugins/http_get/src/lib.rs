//! `HttpGet`: the built-in generic behaviour for any HTTP service. Every user requests one path
//! in a loop with no wait — what `wrk` or `oha` do — and the default verdict applies (success
//! below 400). Configure with `--config-value path=/api/items` (default `/`) and
//! `--config-value method=HEAD` (default `GET`).

use perfhost_sdk::prelude::*;

/// A user that requests the configured path over and over.
pub struct HttpGet {
    method: String,
    path: String,
}

impl User for HttpGet {
    const NAME: &'static str = "HttpGet";
    const WEIGHT: u32 = 1;
    const WAIT: WaitTime = constant(0);
    const TASKS: &'static [Task<Self>] = &[task!("request", 1, Self::request)];

    fn new(ctx: &Context) -> Self {
        HttpGet {
            method: ctx.config_or("method", "GET".to_string()),
            path: ctx.config_or("path", "/".to_string()),
        }
    }
}

impl HttpGet {
    async fn request(&self, ctx: &Context) -> TaskResult {
        // The body is never read: the host counts it and keeps none of it.
        ctx.request(self.method.as_str(), self.path.as_str())
            .name(self.path.as_str())
            .discard_body()
            .send()
            .await?;
        Ok(())
    }
}

perfhost_sdk::export_behaviour!(HttpGet);
