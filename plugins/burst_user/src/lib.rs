//! `BurstUser`: short verifications in quick succession. With rate limiting on, 429 is the
//! expected answer and counts as a success; a 200 is a success without reading its body (this
//! class measures throughput and limiting, `AuditorUser` checks the response shape).

use auditor_data::{verify_body, STANDARD};
use perfhost_sdk::prelude::*;

/// One bursting virtual user (no per-user state).
pub struct BurstUser;

impl User for BurstUser {
    const NAME: &'static str = "BurstUser";
    const WEIGHT: u32 = 2;
    const WAIT: WaitTime = between(100, 500);
    const TASKS: &'static [Task<Self>] = &[task!("verify", 1, Self::verify)];

    fn new(_ctx: &Context) -> Self {
        BurstUser
    }
}

impl BurstUser {
    async fn verify(&self, ctx: &Context) -> TaskResult {
        let resp = ctx
            .post("/verify")
            .name("/verify (burst)")
            .json_bytes(verify_body(ctx, 2, STANDARD))
            .catch_response()
            .send()
            .await?;
        match resp.status() {
            200 | 429 => resp.success(),
            status => resp.failure(format!("HTTP {status}")),
        }
        Ok(())
    }
}

perfhost_sdk::export_behaviour!(BurstUser);
