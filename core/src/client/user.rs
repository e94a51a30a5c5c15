//! A user's connections: leased to its requests in flight and given back after, so that its
//! concurrent requests (async joins, `send-batch`) go out at once — as streams of one HTTP/2
//! connection, or over HTTP/1.1 on up to [`MAX_HTTP1_CONNECTIONS`] connections.

use std::sync::Arc;

use tokio::sync::Notify;

use super::{ClientConfig, Connection, Shared};
use crate::plan::Protocol;

/// HTTP/1.1 connections one user keeps at most to its origin, as browsers do; a seventh
/// concurrent request waits for one of them. Over HTTP/2 they are streams of one connection.
pub const MAX_HTTP1_CONNECTIONS: usize = 6;

/// One user's connections to the target.
#[derive(Default)]
pub struct UserClient {
    /// Connections no request of the user holds now (the one of a user sending one request at
    /// a time is always here between requests).
    idle: Vec<Connection>,
    /// Connections its requests hold now.
    leased: usize,
    /// Shared by all of the user's connections: cookies and its HTTP/2 connection.
    shared: Option<Arc<Shared>>,
    /// Woken when a connection comes back, for a request waiting for one.
    freed: Option<Arc<Notify>>,
}

impl UserClient {
    /// A connection for one request: an idle one, a new one, or `None` when the user already
    /// holds six HTTP/1.1 connections (wait on [`UserClient::freed`] and ask again).
    pub fn lease(&mut self, config: &ClientConfig) -> Option<Connection> {
        if let Some(conn) = self.idle.pop() {
            self.leased += 1;
            return Some(conn);
        }
        let shared = self
            .shared
            .get_or_insert_with(|| Arc::new(Shared::new(config.speaks_h2)));
        if self.leased < MAX_HTTP1_CONNECTIONS || shared.speaks_h2() {
            self.leased += 1;
            return Some(Connection::sharing(config.clone(), shared.clone()));
        }
        None
    }

    /// Takes back a connection leased to a request that has ended.
    pub fn give_back(&mut self, conn: Connection) {
        self.leased = self.leased.saturating_sub(1);
        // Handles on the one HTTP/2 connection: one idle is enough to reuse.
        let spare_h2 = conn.protocol() == Some(Protocol::Http2)
            && self
                .idle
                .iter()
                .any(|c| c.protocol() == Some(Protocol::Http2));
        if !spare_h2 {
            self.idle.push(conn);
        }
        if let Some(freed) = &self.freed {
            freed.notify_one();
        }
    }

    /// Notified whenever a connection comes back (see [`UserClient::lease`]).
    pub fn freed(&mut self) -> Arc<Notify> {
        self.freed.get_or_insert_with(Arc::default).clone()
    }

    /// Lets the idle connections rest while the user waits (`Connection::rest`); true when
    /// one of them did.
    pub fn rest(&mut self) -> bool {
        let mut rested = false;
        for conn in &mut self.idle {
            rested |= conn.rest();
        }
        rested
    }

    /// Connections opened so far by the connections now idle.
    pub fn connects(&self) -> u64 {
        self.idle.iter().map(|c| c.connects).sum()
    }
}
