//! [`CoapTransport`]: the outbound routes' transport for `coap://` targets (TS-0008
//! 6.3.1). Each request is one confirmable message from the CoAP listener's own socket,
//! so the answer comes back to the listener, which hands it over by token
//! ([`crate::outbound`]). Retransmission follows RFC 7252 4.2: ACK_TIMEOUT 2 s times a
//! random factor up to 1.5, doubled each time, at most MAX_RETRANSMIT (4) times; after an
//! empty ACK the separate response is awaited until the response timeout. The request
//! must fit one datagram (no Block1 on the sending side). The target's path, when it has
//! one, is the Uri-Path (a `nu` URL); else `to` is mapped (TS-0008 Table 6.2.2.3-1).

use crate::mapping;
use crate::outbound::{Event, Outbound};
use crate::CoapConfig;
use bastion_client::{ClientError, Transport};
use bastion_proto::wire::{self, Serialization};
use bastion_proto::{Request, Response};
use coap_lite::{CoapOption, MessageType, Packet};
use rand::Rng;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// RFC 7252 4.8: ACK_TIMEOUT and MAX_RETRANSMIT.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_RETRANSMIT: u32 = 4;

/// Sends request primitives as CoAP requests and waits for their responses.
#[derive(Clone)]
pub struct CoapTransport {
    socket: Arc<UdpSocket>,
    outbound: Arc<Outbound>,
    config: CoapConfig,
    next_mid: Arc<AtomicU16>,
}

impl CoapTransport {
    pub(crate) fn new(socket: Arc<UdpSocket>, outbound: Arc<Outbound>, config: CoapConfig) -> Self {
        CoapTransport {
            socket,
            outbound,
            config,
            next_mid: Arc::new(AtomicU16::new(rand::random())),
        }
    }
}

/// The Uri-Path part and the query pairs of a target's path.
fn split_path(path: Option<String>) -> (Option<String>, Vec<String>) {
    match path {
        None => (None, Vec::new()),
        Some(p) => match p.split_once('?') {
            Some((path, query)) => (
                Some(path.to_owned()).filter(|p| !p.is_empty() && p != "/"),
                query
                    .split('&')
                    .filter(|q| !q.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            None => (Some(p), Vec::new()),
        },
    }
}

/// A request primitive made into one confirmable CoAP message for a target.
pub(crate) struct Outgoing {
    /// The target's host (the DTLS server name) and its resolved address.
    pub host: String,
    pub peer: SocketAddr,
    pub bytes: Vec<u8>,
    pub token: [u8; 8],
}

impl Outgoing {
    /// Maps `req` for `target`, whose scheme must be `scheme`, with message ID `mid`; the
    /// message must fit one datagram of `config` (no Block1 on the sending side).
    pub(crate) async fn build(
        target: &str,
        scheme: &str,
        req: &Request,
        mid: u16,
        config: &CoapConfig,
    ) -> Result<Outgoing, ClientError> {
        let invalid = || ClientError::InvalidTarget(target.to_owned());
        let (sent, ser) = wire::target_serialization(target).ok_or_else(invalid)?;
        let ser = ser.unwrap_or(Serialization::Json);
        let (endpoint, path) = bastion_client::parse_target(&sent)?;
        if endpoint.scheme != scheme {
            return Err(ClientError::UnsupportedScheme(endpoint.scheme));
        }
        let peer = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(ClientError::Connect)?
            .next()
            .ok_or_else(invalid)?;
        let (path, query) = split_path(path);
        let mut packet = mapping::encode_request(req, path.as_deref(), ser)
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        for pair in query {
            packet.add_option(CoapOption::UriQuery, pair.into_bytes());
        }
        let token: [u8; 8] = rand::random();
        packet.header.set_type(MessageType::Confirmable);
        packet.header.message_id = mid;
        packet.set_token(token.to_vec());
        let bytes = packet
            .to_bytes_unlimited()
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        if bytes.len() > config.max_datagram_bytes {
            return Err(ClientError::InvalidRequest(format!(
                "the request needs {} bytes, over the CoAP datagram limit of {}",
                bytes.len(),
                config.max_datagram_bytes
            )));
        }
        Ok(Outgoing {
            host: endpoint.host,
            peer,
            bytes,
            token,
        })
    }
}

/// RFC 7252 4.2 for one confirmable request: when to send it (again), and how long to
/// wait for the next event; the response is awaited until the response timeout.
pub(crate) struct Retransmission {
    deadline: Instant,
    timeout: Duration,
    wait: Duration,
    sent: u32,
    acknowledged: bool,
    due: bool,
}

impl Retransmission {
    pub(crate) fn new(response_timeout: Duration) -> Retransmission {
        let factor = rand::rng().random_range(1.0..1.5);
        Retransmission {
            deadline: Instant::now() + response_timeout,
            timeout: response_timeout,
            wait: ACK_TIMEOUT.mul_f64(factor),
            sent: 0,
            acknowledged: false,
            due: true,
        }
    }

    /// Whether the message is to be sent now; a timeout once it was sent too often.
    pub(crate) fn send_now(&mut self) -> Result<bool, ClientError> {
        if !self.due {
            return Ok(false);
        }
        if self.sent > MAX_RETRANSMIT {
            return Err(ClientError::Timeout(self.timeout));
        }
        self.sent += 1;
        self.due = false;
        Ok(true)
    }

    /// Until when the next event is awaited.
    pub(crate) fn until(&self) -> Instant {
        if self.acknowledged {
            self.deadline
        } else {
            (Instant::now() + self.wait).min(self.deadline)
        }
    }

    /// The wait ended without an event: sent again after twice the wait, or given up.
    pub(crate) fn timed_out(&mut self) -> Result<(), ClientError> {
        if Instant::now() >= self.deadline {
            return Err(ClientError::Timeout(self.timeout));
        }
        self.wait *= 2;
        self.due = !self.acknowledged;
        Ok(())
    }

    /// The peer acknowledged the message: only the response is awaited now.
    pub(crate) fn acknowledge(&mut self) {
        self.acknowledged = true;
    }
}

/// The answer a response packet carries; one that is not a oneM2M response is a
/// malformed answer (the peer was reached), as over HTTP.
pub(crate) fn response_of(packet: &Packet) -> Result<Response, ClientError> {
    mapping::decode_response(packet).map_err(|e| ClientError::MalformedResponse(e.to_string()))
}

pub(crate) fn reset_error() -> ClientError {
    ClientError::Connect(io::Error::other("the CoAP peer reset the request"))
}

#[async_trait::async_trait]
impl Transport for CoapTransport {
    async fn send(&self, target: &str, req: &Request) -> Result<Response, ClientError> {
        let mid = self.next_mid.fetch_add(1, Ordering::Relaxed);
        let out = Outgoing::build(target, "coap", req, mid, &self.config).await?;
        let Some(events) = self.outbound.wait(out.peer, mid, &out.token) else {
            return Err(ClientError::InvalidRequest(format!(
                "{} CoAP requests already wait for an answer",
                self.config.max_pending
            )));
        };
        let result = self.exchange(out.peer, &out.bytes, events).await;
        self.outbound.forget(out.peer, &out.token);
        result
    }
}

impl CoapTransport {
    /// Sends `bytes` to `peer` until acknowledged, then waits for the response.
    async fn exchange(
        &self,
        peer: SocketAddr,
        bytes: &[u8],
        mut events: tokio::sync::mpsc::Receiver<Event>,
    ) -> Result<Response, ClientError> {
        let mut retransmission = Retransmission::new(self.config.response_timeout);
        loop {
            if retransmission.send_now()? {
                self.socket
                    .send_to(bytes, peer)
                    .await
                    .map_err(ClientError::Connect)?;
            }
            match tokio::time::timeout_at(retransmission.until(), events.recv()).await {
                Ok(Some(Event::Acknowledged)) => retransmission.acknowledge(),
                Ok(Some(Event::Reset)) => return Err(reset_error()),
                // A confirmable (separate) response was acknowledged by the endpoint.
                Ok(Some(Event::Response(packet))) => return response_of(&packet),
                Ok(None) => {
                    return Err(ClientError::Connect(io::Error::other(
                        "CoAP listener stopped",
                    )))
                }
                Err(_) => retransmission.timed_out()?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_paths_and_queries() {
        assert_eq!(split_path(None), (None, vec![]));
        assert_eq!(split_path(Some("/n".into())), (Some("/n".into()), vec![]));
        assert_eq!(
            split_path(Some("/?a=1&b".into())),
            (None, vec!["a=1".to_owned(), "b".to_owned()])
        );
    }
}
