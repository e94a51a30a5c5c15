//! `HeavyUser`: the largest verifications — a random answer checked against every sample
//! source — with the same response-shape check as `AuditorUser`.

use auditor_data::{judge_verify, verify_body, SOURCES, STANDARD};
use perfhost_sdk::prelude::*;

/// One heavy virtual user (no per-user state).
pub struct HeavyUser;

impl User for HeavyUser {
    const NAME: &'static str = "HeavyUser";
    const WEIGHT: u32 = 1;
    const WAIT: WaitTime = between(2_000, 5_000);
    const TASKS: &'static [Task<Self>] = &[task!("verify", 1, Self::verify)];

    fn new(_ctx: &Context) -> Self {
        HeavyUser
    }
}

impl HeavyUser {
    async fn verify(&self, ctx: &Context) -> TaskResult {
        let resp = ctx
            .post("/verify")
            .name("/verify (large)")
            .json_bytes(verify_body(ctx, SOURCES.len(), STANDARD))
            .catch_response()
            .send()
            .await?;
        judge_verify(&resp);
        Ok(())
    }
}

perfhost_sdk::export_behaviour!(HeavyUser);
