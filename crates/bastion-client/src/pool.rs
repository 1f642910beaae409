//! Idle kept-alive connections, per endpoint, for one [`crate::Client`] and its clones.
//!
//! A connection is kept only after a complete exchange the peer did not end with
//! `Connection: close`, for at most [`MAX_IDLE`] (below the 5 s idle timeout common in
//! HTTP servers, so a peer rarely closes one just as it is reused) and at most
//! [`MAX_IDLE_PER_ENDPOINT`] per endpoint. Connections belong to the client that opened
//! them, so a client holding one credential never lends a connection to another.

use crate::{Body, Endpoint};
use hyper::client::conn::http1::SendRequest;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How long an idle connection is kept.
pub(crate) const MAX_IDLE: Duration = Duration::from_secs(4);
/// Idle connections kept per endpoint; more are closed.
pub(crate) const MAX_IDLE_PER_ENDPOINT: usize = 64;

/// One HTTP/1.1 connection: the handle requests go through and the task driving it.
pub(crate) struct Connection {
    pub(crate) sender: SendRequest<Body>,
    driver: JoinHandle<()>,
    idle_since: Instant,
}

impl Connection {
    pub(crate) fn new(sender: SendRequest<Body>, driver: JoinHandle<()>) -> Connection {
        Connection {
            sender,
            driver,
            idle_since: Instant::now(),
        }
    }

    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.duration_since(self.idle_since) < MAX_IDLE
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Closes the socket now rather than when the peer notices.
        self.driver.abort();
    }
}

/// Idle connections by endpoint.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<Endpoint, Vec<Connection>>>,
}

impl Pool {
    /// The most recently used idle connection to `endpoint` that is still open.
    pub(crate) fn take(&self, endpoint: &Endpoint) -> Option<Connection> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(endpoint)?;
        let found = loop {
            match list.pop() {
                Some(conn) if conn.usable(now) => break Some(conn),
                Some(_stale) => continue,
                None => break None,
            }
        };
        if list.is_empty() {
            idle.remove(endpoint);
        }
        found
    }

    /// Keeps `conn` for reuse, if it is still open and there is room.
    pub(crate) fn put(&self, endpoint: &Endpoint, mut conn: Connection) {
        if conn.sender.is_closed() {
            return;
        }
        let now = Instant::now();
        conn.idle_since = now;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(endpoint.clone()).or_default();
        list.retain(|c| c.usable(now));
        if list.len() < MAX_IDLE_PER_ENDPOINT {
            list.push(conn);
        }
    }
}
