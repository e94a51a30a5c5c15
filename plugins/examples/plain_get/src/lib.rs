//! The plugin of the generator benchmark (`bench/generators.sh`, docs/benchmarks.md): every
//! user loops `GET /` as fast as the server answers — no wait, no body read, default verdict —
//! the same work as `wrk`/`oha` doing keep-alive GETs, so the per-request host CPU compares.
use perfhost_sdk::prelude::*;

/// A user that only ever fetches `/`.
pub struct PlainGet;

impl User for PlainGet {
    const NAME: &'static str = "PlainGet";
    const WEIGHT: u32 = 1;
    const WAIT: WaitTime = constant(0);
    const TASKS: &'static [Task<Self>] = &[task!("get", 1, Self::get)];

    fn new(_ctx: &Context) -> Self {
        PlainGet
    }
}

impl PlainGet {
    async fn get(&self, ctx: &Context) -> TaskResult {
        // The body is never read: the host counts it and keeps none of it.
        ctx.get("/").name("/").discard_body().send().await?;
        Ok(())
    }
}

perfhost_sdk::export_behaviour!(PlainGet);
