//! The two-task example of docs/plugins.md (keep the two in sync).
use perfhost_sdk::prelude::*;
use std::cell::Cell;

/// A visitor: mostly checks the service's health, sometimes opens an item.
#[derive(Default)]
pub struct Visitor {
    items_seen: Cell<u32>, // per-user state lives in the user, never in a global
}

impl User for Visitor {
    const WAIT: WaitTime = between(1_000, 3_000);
    const TASKS: &'static [Task<Self>] = &[task!(Self::health, 3), task!(Self::item)];

    fn new(_ctx: &Context) -> Self {
        Visitor::default()
    }
}

impl Visitor {
    async fn health(&self, ctx: &Context) -> TaskResult {
        let resp = ctx
            .get("/health")
            .name("/health")
            .catch_response()
            .send()
            .await?;
        match resp.json_value() {
            Ok(body) if body["status"] == "healthy" => resp.success(),
            _ => resp.failure("status is not healthy"),
        }
        Ok(())
    }

    async fn item(&self, ctx: &Context) -> TaskResult {
        let id = ctx.random_range(1, 1_000);
        ctx.get(format!("/items/{id}"))
            .name("/items/[id]")
            .send()
            .await?;
        self.items_seen.set(self.items_seen.get() + 1);
        Ok(())
    }
}

perfhost_sdk::export_behaviour!(Visitor);
