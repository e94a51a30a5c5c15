//! The two-task example of docs/plugins.md (keep the two in sync).
use perfhost_sdk::prelude::*;

/// A visitor: mostly checks the service's health, sometimes opens an item.
#[derive(Default)]
pub struct Visitor;

user!(Visitor, wait = between(1_000, 3_000), tasks = [health: 3, item]);

impl Visitor {
    async fn health(&self, ctx: &Context) -> TaskResult {
        let resp = ctx.get("/health").catch_response().send().await?;
        let healthy = resp.json_value().is_ok_and(|b| b["status"] == "healthy");
        resp.check(healthy, "status is not healthy")
    }

    async fn item(&self, ctx: &Context) -> TaskResult {
        let path = format!("/items/{}", ctx.random_range(1, 1_000));
        ctx.get(path).name("/items/[id]").send().await?;
        Ok(())
    }
}

perfhost_sdk::export_behaviour!(Visitor);
