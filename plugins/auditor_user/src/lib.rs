//! `AuditorUser`: the typical user of the JuraGPT Auditor API. Checks health on start, then
//! mostly verifies answers against three sources, sometimes against four or in strict mode, and
//! now and then reads `/health` and `/metrics`.

use auditor_data::{judge_verify, verify_body, STANDARD, STRICT};
use perfhost_sdk::prelude::*;

/// One virtual user of the Auditor API (no per-user state).
pub struct AuditorUser;

impl User for AuditorUser {
    const NAME: &'static str = "AuditorUser";
    const WEIGHT: u32 = 7;
    const WAIT: WaitTime = between(1_000, 3_000);
    const TASKS: &'static [Task<Self>] = &[
        task!("verify_standard", 10, Self::verify_standard),
        task!("verify_many_sources", 3, Self::verify_many_sources),
        task!("verify_strict", 2, Self::verify_strict),
        task!("health", 1, Self::health),
        task!("metrics", 1, Self::metrics),
    ];

    fn new(_ctx: &Context) -> Self {
        AuditorUser
    }

    async fn on_start(&self, ctx: &Context) -> TaskResult {
        ctx.get("/health").name("/health").send().await?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct Health {
    status: Option<String>,
}

impl AuditorUser {
    async fn verify(
        ctx: &Context,
        sources: usize,
        options: &str,
        name: &'static str,
    ) -> TaskResult {
        let body = verify_body(ctx, sources, options);
        let resp = ctx
            .post("/verify")
            .name(name)
            .json_bytes(body)
            .catch_response()
            .send()
            .await?;
        judge_verify(&resp);
        Ok(())
    }

    async fn verify_standard(&self, ctx: &Context) -> TaskResult {
        Self::verify(ctx, 3, STANDARD, "/verify (standard)").await
    }

    async fn verify_many_sources(&self, ctx: &Context) -> TaskResult {
        Self::verify(ctx, 4, STANDARD, "/verify (many sources)").await
    }

    async fn verify_strict(&self, ctx: &Context) -> TaskResult {
        Self::verify(ctx, 3, STRICT, "/verify (strict mode)").await
    }

    async fn health(&self, ctx: &Context) -> TaskResult {
        let resp = ctx
            .get("/health")
            .name("/health")
            .catch_response()
            .send()
            .await?;
        match resp.status() {
            200 => match resp.json::<Health>() {
                Ok(Health { status: Some(s) }) if s == "healthy" => resp.success(),
                Ok(Health { status: Some(s) }) => {
                    resp.failure(format!("status is {s:?}, not \"healthy\""))
                }
                Ok(Health { status: None }) => resp.failure("status missing"),
                Err(err) => resp.failure(format!("unexpected /health response: {err}")),
            },
            status => resp.failure(format!("HTTP {status}")),
        }
        Ok(())
    }

    async fn metrics(&self, ctx: &Context) -> TaskResult {
        let resp = ctx
            .get("/metrics")
            .name("/metrics")
            .catch_response()
            .send()
            .await?;
        // 404: metrics are disabled on this deployment, which is fine.
        match resp.status() {
            200 | 404 => resp.success(),
            status => resp.failure(format!("HTTP {status}")),
        }
        Ok(())
    }
}

perfhost_sdk::export_behaviour!(AuditorUser);
