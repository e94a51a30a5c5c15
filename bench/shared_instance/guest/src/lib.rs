//! plain_get for the shared-instance prototype: each user GETs its path in a loop; the
//! response is dropped unread. `run_task` is async, so one instance serves every user.
wit_bindgen::generate!({ world: "plugin", path: "../wit" });

use exports::prototype::shared_instance::behaviour::{Guest, GuestUser};
use prototype::shared_instance::host::{Request, UserContext};

struct Component;

impl Guest for Component {
    type User = User;
}

pub struct User {
    path: String,
    ctx: UserContext,
}

impl GuestUser for User {
    fn new(path: String, ctx: UserContext) -> Self {
        User { path, ctx }
    }

    async fn run_task(&self, _task: u32) -> u32 {
        let req = Request::new("GET", &self.path, &self.path);
        match self.ctx.send(req).await {
            Ok(resp) => u32::from(resp.status()),
            Err(code) => 1000 + code,
        }
    }
}

export!(Component);
