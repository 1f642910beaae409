//! [`CoapBinding`]: the plain-UDP socket loop. It only moves datagrams: each received
//! one goes to [`CoapEndpoint::handle_datagram`] on a task of its own (at most
//! [`CoapConfig::max_in_flight`] at once; more are dropped, and the peer's
//! retransmission brings them again), and what it returns is sent back to the peer.

use crate::endpoint::CoapEndpoint;
use crate::outbound::Outbound;
use crate::CoapConfig;
use bastion_core::throttle::Throttle;
use bastion_core::{Binding, Cse, Listener};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

/// The CoAP listener over plain UDP (`coap://`).
pub struct CoapBinding {
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) outbound: Arc<Outbound>,
    pub(crate) config: CoapConfig,
    pub(crate) local: SocketAddr,
}

#[async_trait::async_trait]
impl Binding for CoapBinding {
    fn listener(&self) -> Listener {
        Listener {
            scheme: "coap",
            local: self.local,
        }
    }

    async fn serve(self: Box<Self>, cse: Arc<Cse>) -> io::Result<()> {
        let endpoint = Arc::new(CoapEndpoint::with_outbound(
            cse,
            self.config.clone(),
            self.listener(),
            self.outbound.clone(),
        ));
        let in_flight = Arc::new(Semaphore::new(self.config.max_in_flight.max(1)));
        let warn_busy = Throttle::per_minute();
        // One byte over the limit tells an oversize datagram from one exactly at it.
        let mut buf = vec![0u8; self.config.max_datagram_bytes + 1];
        tracing::info!(addr = %self.local, "serving CoAP requests");
        loop {
            let (n, peer) = match self.socket.recv_from(&mut buf).await {
                Ok(received) => received,
                // ICMP errors of earlier sends surface here on some systems: not fatal.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
                Err(e) => return Err(e),
            };
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                if warn_busy.ready() {
                    tracing::warn!(
                        limit = self.config.max_in_flight,
                        "too many CoAP requests in flight; datagrams are dropped (logged once a minute)"
                    );
                }
                continue;
            };
            let datagram = buf[..n].to_vec();
            let endpoint = endpoint.clone();
            let socket = self.socket.clone();
            tokio::spawn(async move {
                let _permit = permit;
                // Boxed: the task stays small, so spawning it copies little; the
                // request's own (large) future is built once, on the heap.
                let answers = Box::pin(endpoint.handle_datagram(&datagram, peer, None)).await;
                for answer in answers {
                    if let Err(e) = socket.send_to(&answer, peer).await {
                        tracing::debug!(%peer, error = %e, "a CoAP answer could not be sent");
                    }
                }
            });
        }
    }
}
