//! What the listeners and the transport share: the connection budget, each open
//! connection's send queue and waiting own requests ([`Conn`]), and which registree is
//! reached over which connection.
//!
//! A connection becomes the route to an entity when a request of that entity succeeds
//! on it (its `fr`, or the AE-ID a registration assigned): TS-0020 5.2 has at most one
//! connection between two nodes and lets it be reopened without registering again, so
//! the latest connection wins, and closing it removes the route (the notification engine
//! then keeps or drops what it could not deliver, as for any unreachable target).

use crate::WsConfig;
use bastion_core::throttle::Throttle;
use bastion_proto::wire::Serialization;
use bastion_proto::Response;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// The entities one connection may become the route to (an AE and a few more).
const MAX_ROUTES_PER_CONNECTION: usize = 8;
/// The least a queued message counts against the outbound budget, so that many empty
/// messages are bounded too.
const MIN_MESSAGE_COST: usize = 64;

/// Shared state of the WebSocket binding: one per CSE, for both listeners.
pub struct Hub {
    pub(crate) config: WsConfig,
    connections: Arc<Semaphore>,
    routes: Mutex<HashMap<String, Arc<Conn>>>,
    next_id: AtomicU64,
    /// Exhaustion warnings, once a minute each.
    pub(crate) warn_connections: Throttle,
    pub(crate) warn_in_flight: Throttle,
    pub(crate) warn_outbound: Throttle,
    pub(crate) warn_dropped: Throttle,
}

/// Why a message was not queued for a connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum QueueError {
    #[error("the message exceeds the WebSocket message limit ({0} bytes)")]
    TooLarge(usize),
    #[error("the connection's outbound queue is full ({0} bytes)")]
    Full(usize),
    #[error("the WebSocket connection is closed")]
    Closed,
}

/// A message to send and the share of the outbound budget it holds until it is sent.
pub(crate) struct Outgoing {
    pub message: Message,
    pub _permit: Option<OwnedSemaphorePermit>,
}

/// One open connection as the rest of the binding reaches it.
pub struct Conn {
    id: u64,
    pub(crate) ser: Serialization,
    /// Over TLS (`wss://`).
    pub(crate) secure: bool,
    sender: mpsc::UnboundedSender<Outgoing>,
    outbound: Arc<Semaphore>,
    outbound_limit: usize,
    pending: Mutex<HashMap<String, oneshot::Sender<Response>>>,
    routes: Mutex<Vec<String>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// The shared state for `config`.
    pub fn new(config: WsConfig) -> Arc<Hub> {
        Arc::new(Hub {
            connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
            config,
            routes: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            warn_connections: Throttle::per_minute(),
            warn_in_flight: Throttle::per_minute(),
            warn_outbound: Throttle::per_minute(),
            warn_dropped: Throttle::per_minute(),
        })
    }

    /// A connection slot, or `None` when [`WsConfig::max_connections`] are open (logged
    /// once a minute).
    pub(crate) fn admit_connection(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.connections.clone().try_acquire_owned().ok();
        if permit.is_none() && self.warn_connections.ready() {
            tracing::warn!(
                limit = self.config.max_connections,
                "WebSocket connections exhausted; new ones are refused (logged once a minute)"
            );
        }
        permit
    }

    /// A new connection's handle, and the queue its loop sends from.
    pub(crate) fn open(
        &self,
        ser: Serialization,
        secure: bool,
    ) -> (Arc<Conn>, mpsc::UnboundedReceiver<Outgoing>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let conn = Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            ser,
            secure,
            sender,
            outbound: Arc::new(Semaphore::new(self.config.max_outbound_bytes.max(1))),
            outbound_limit: self.config.max_outbound_bytes,
            pending: Mutex::new(HashMap::new()),
            routes: Mutex::new(Vec::new()),
        };
        (Arc::new(conn), receiver)
    }

    /// Removes the routes through `conn` (those no newer connection took over) and ends
    /// the waits for its answers.
    pub(crate) fn close(&self, conn: &Conn) {
        let names = std::mem::take(&mut *locked(&conn.routes));
        let mut routes = locked(&self.routes);
        for name in names {
            if routes.get(&name).is_some_and(|c| c.id == conn.id) {
                routes.remove(&name);
            }
        }
        drop(routes);
        locked(&conn.pending).clear();
    }

    /// Makes `conn` the route to the entity `id` (any written form of it).
    pub(crate) fn route(&self, id: &str, conn: &Arc<Conn>) {
        let key = self.key(id);
        if key.is_empty() {
            return;
        }
        let mut mine = locked(&conn.routes);
        if !mine.contains(&key) {
            if mine.len() >= MAX_ROUTES_PER_CONNECTION {
                return;
            }
            mine.push(key.clone());
        }
        drop(mine);
        locked(&self.routes).insert(key, conn.clone());
    }

    /// The connection the entity `id` is reached over, if one is open.
    pub(crate) fn connection_of(&self, id: &str) -> Option<Arc<Conn>> {
        locked(&self.routes).get(&self.key(id)).cloned()
    }

    /// One key for the written forms of an ID of this CSE: `//sp/cse/x`, `/cse/x` and
    /// `x` are all `x`; another CSE's IDs stay as written.
    fn key(&self, id: &str) -> String {
        let absolute_prefix = format!("{}{}/", self.config.sp_id, self.config.cse_id);
        let relative_prefix = format!("{}/", self.config.cse_id);
        id.strip_prefix(absolute_prefix.as_str())
            .or_else(|| id.strip_prefix(relative_prefix.as_str()))
            .unwrap_or(id)
            .to_owned()
    }

    /// Logs a message dropped unanswered, once a minute.
    pub(crate) fn dropped(&self, why: &str) {
        if self.warn_dropped.ready() {
            tracing::warn!(
                reason = why,
                "WebSocket message dropped (further drops are not logged for a minute)"
            );
        }
    }
}

impl Conn {
    /// Queues `bytes` (a whole primitive in the connection's serialization) within the
    /// connection's outbound budget.
    pub(crate) fn queue(&self, bytes: Vec<u8>, limit: usize) -> Result<(), QueueError> {
        if bytes.len() > limit {
            return Err(QueueError::TooLarge(limit));
        }
        let cost = u32::try_from(bytes.len().max(MIN_MESSAGE_COST)).unwrap_or(u32::MAX);
        let permit = self
            .outbound
            .clone()
            .try_acquire_many_owned(cost)
            .map_err(|_| QueueError::Full(self.outbound_limit))?;
        let message = match self.ser {
            // Text frames for the text serializations (TS-0020 Table 6.2.2.9-1); the
            // codec writes UTF-8 only.
            Serialization::Json | Serialization::Xml => match String::from_utf8(bytes) {
                Ok(text) => Message::text(text),
                Err(e) => Message::binary(e.into_bytes()),
            },
            Serialization::Cbor => Message::binary(bytes),
        };
        self.sender
            .send(Outgoing {
                message,
                _permit: Some(permit),
            })
            .map_err(|_| QueueError::Closed)
    }

    /// Queues a close frame after whatever is queued: the connection loop sends it and
    /// ends. Outside the budget, so that a full queue can still be closed.
    pub(crate) fn close_with(&self, code: CloseCode, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.sender.send(Outgoing {
            message: Message::Close(Some(frame)),
            _permit: None,
        });
    }

    /// Registers a waiter for the answer with `rqi`; `None` when `max` already wait or
    /// the rqi is waited for.
    pub(crate) fn wait_for(&self, rqi: &str, max: usize) -> Option<oneshot::Receiver<Response>> {
        let mut pending = locked(&self.pending);
        if pending.len() >= max || pending.contains_key(rqi) {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        pending.insert(rqi.to_owned(), sender);
        Some(receiver)
    }

    /// Stops waiting for the answer with `rqi`.
    pub(crate) fn forget(&self, rqi: &str) {
        locked(&self.pending).remove(rqi);
    }

    /// Hands an answer to its waiter; `false` when nothing waits for its rqi.
    pub(crate) fn answered(&self, response: Response) -> bool {
        match locked(&self.pending).remove(&response.rqi) {
            Some(waiter) => waiter.send(response).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Arc<Hub> {
        Hub::new(WsConfig::new("/id-in", "//bastion.example"))
    }

    #[test]
    fn every_written_form_of_a_local_id_reaches_the_same_connection() {
        let hub = hub();
        let (conn, _rx) = hub.open(Serialization::Json, false);
        hub.route("Cae1", &conn);
        for form in ["Cae1", "/id-in/Cae1", "//bastion.example/id-in/Cae1"] {
            assert!(hub.connection_of(form).is_some(), "{form}");
        }
        assert!(hub.connection_of("/id-mn/Cae1").is_none());
    }

    #[test]
    fn the_latest_connection_wins_and_closing_an_older_one_keeps_it() {
        let hub = hub();
        let (old, _a) = hub.open(Serialization::Json, false);
        let (new, _b) = hub.open(Serialization::Cbor, false);
        hub.route("Cae1", &old);
        hub.route("Cae1", &new);
        hub.close(&old);
        let found = hub.connection_of("Cae1").expect("route");
        assert_eq!(found.ser, Serialization::Cbor);
        hub.close(&new);
        assert!(hub.connection_of("Cae1").is_none());
    }

    #[test]
    fn the_outbound_queue_is_bounded_in_bytes() {
        let mut config = WsConfig::new("/id-in", "//sp");
        config.max_outbound_bytes = 1000;
        let hub = Hub::new(config);
        let (conn, _rx) = hub.open(Serialization::Json, false);
        assert_eq!(
            conn.queue(vec![b'x'; 2000], 1500),
            Err(QueueError::TooLarge(1500))
        );
        conn.queue(vec![b'x'; 900], 1500).expect("fits");
        assert!(matches!(
            conn.queue(vec![b'x'; 200], 1500),
            Err(QueueError::Full(_))
        ));
    }

    #[test]
    fn waiters_are_bounded_and_unique() {
        let hub = hub();
        let (conn, _rx) = hub.open(Serialization::Json, false);
        assert!(conn.wait_for("r1", 2).is_some());
        assert!(conn.wait_for("r1", 2).is_none());
        assert!(conn.wait_for("r2", 2).is_some());
        assert!(conn.wait_for("r3", 2).is_none());
        conn.forget("r1");
        assert!(conn.wait_for("r3", 2).is_some());
    }
}
