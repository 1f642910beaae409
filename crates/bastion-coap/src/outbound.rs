//! The requests this CSE sent over CoAP and waits on (notifications, forwarded
//! requests): matched by peer and message ID for empty ACK/RST, by peer and token for
//! responses (RFC 7252 5.3.2). At most `max_pending` wait at once.

use coap_lite::Packet;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// What happened to a sent request.
#[derive(Debug)]
pub(crate) enum Event {
    /// The peer acknowledged it with an empty ACK: the response comes separately.
    Acknowledged,
    /// The peer rejected it (RST).
    Reset,
    /// The response.
    Response(Box<Packet>),
}

struct Waiter {
    mid: u16,
    events: mpsc::Sender<Event>,
}

/// The table of waiting requests.
pub(crate) struct Outbound {
    max_pending: usize,
    waiting: Mutex<HashMap<(SocketAddr, Vec<u8>), Waiter>>,
}

impl Outbound {
    pub(crate) fn new(max_pending: usize) -> Outbound {
        Outbound {
            max_pending: max_pending.max(1),
            waiting: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<(SocketAddr, Vec<u8>), Waiter>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a request sent to `peer` with `mid` and `token`; `None` when
    /// `max_pending` already wait or the token is in use.
    pub(crate) fn wait(
        &self,
        peer: SocketAddr,
        mid: u16,
        token: &[u8],
    ) -> Option<mpsc::Receiver<Event>> {
        let mut table = self.table();
        let key = (peer, token.to_vec());
        if table.len() >= self.max_pending || table.contains_key(&key) {
            return None;
        }
        let (events, rx) = mpsc::channel(4);
        table.insert(key, Waiter { mid, events });
        Some(rx)
    }

    pub(crate) fn forget(&self, peer: SocketAddr, token: &[u8]) {
        self.table().remove(&(peer, token.to_vec()));
    }

    fn by_mid(&self, peer: SocketAddr, mid: u16, event: Event) {
        let table = self.table();
        if let Some(w) = table.iter().find(|((p, _), w)| *p == peer && w.mid == mid) {
            let _ = w.1.events.try_send(event);
        }
    }

    pub(crate) fn acknowledged(&self, peer: SocketAddr, mid: u16) {
        self.by_mid(peer, mid, Event::Acknowledged);
    }

    pub(crate) fn reset(&self, peer: SocketAddr, mid: u16) {
        self.by_mid(peer, mid, Event::Reset);
    }

    /// Hands a response to the request with its token; false when none waits for it.
    pub(crate) fn answered(&self, peer: SocketAddr, packet: Packet) -> bool {
        let table = self.table();
        match table.get(&(peer, packet.get_token().to_vec())) {
            Some(w) => {
                let _ = w.events.try_send(Event::Response(Box::new(packet)));
                true
            }
            None => false,
        }
    }
}
