//! `BenchVerify`: the WASM side of `perfhost bench`. Verifies in a loop with no wait, exactly as
//! perfhost's native benchmark user does (same body building and response check from
//! `auditor_data`), so the difference in host CPU per request is the cost of the sandbox.

use auditor_data::{judge_verify, verify_body, STANDARD};
use perfhost_sdk::prelude::*;

/// One benchmark user (no per-user state).
pub struct BenchVerify;

impl User for BenchVerify {
    const NAME: &'static str = "BenchVerify";
    const WEIGHT: u32 = 1;
    const WAIT: WaitTime = constant(0);
    const TASKS: &'static [Task<Self>] = &[task!("verify", 1, Self::verify)];

    fn new(_ctx: &Context) -> Self {
        BenchVerify
    }
}

impl BenchVerify {
    async fn verify(&self, ctx: &Context) -> TaskResult {
        let resp = ctx
            .post("/verify")
            .name("/verify (bench)")
            .json_bytes(verify_body(ctx, 3, STANDARD))
            .catch_response()
            .send()
            .await?;
        judge_verify(&resp);
        Ok(())
    }
}

perfhost_sdk::export_behaviour!(BenchVerify);
