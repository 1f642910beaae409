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
use coap_lite::{CoapOption, MessageType};
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

#[async_trait::async_trait]
impl Transport for CoapTransport {
    async fn send(&self, target: &str, req: &Request) -> Result<Response, ClientError> {
        let invalid = || ClientError::InvalidTarget(target.to_owned());
        let (sent, ser) = wire::target_serialization(target).ok_or_else(invalid)?;
        let ser = ser.unwrap_or(Serialization::Json);
        let (endpoint, path) = bastion_client::parse_target(&sent)?;
        if endpoint.scheme != "coap" {
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
        let mid = self.next_mid.fetch_add(1, Ordering::Relaxed);
        let token: [u8; 8] = rand::random();
        packet.header.set_type(MessageType::Confirmable);
        packet.header.message_id = mid;
        packet.set_token(token.to_vec());
        let bytes = packet
            .to_bytes_unlimited()
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        if bytes.len() > self.config.max_datagram_bytes {
            return Err(ClientError::InvalidRequest(format!(
                "the request needs {} bytes, over the CoAP datagram limit of {}",
                bytes.len(),
                self.config.max_datagram_bytes
            )));
        }
        let Some(events) = self.outbound.wait(peer, mid, &token) else {
            return Err(ClientError::InvalidRequest(format!(
                "{} CoAP requests already wait for an answer",
                self.config.max_pending
            )));
        };
        let result = self.exchange(peer, &bytes, events).await;
        self.outbound.forget(peer, &token);
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
        let deadline = Instant::now() + self.config.response_timeout;
        let factor = rand::rng().random_range(1.0..1.5);
        let mut wait = ACK_TIMEOUT.mul_f64(factor);
        let mut sent = 0;
        let mut acknowledged = false;
        loop {
            if !acknowledged {
                if sent > MAX_RETRANSMIT {
                    return Err(ClientError::Timeout(self.config.response_timeout));
                }
                self.socket
                    .send_to(bytes, peer)
                    .await
                    .map_err(ClientError::Connect)?;
                sent += 1;
            }
            let until = if acknowledged {
                deadline
            } else {
                (Instant::now() + wait).min(deadline)
            };
            match tokio::time::timeout_at(until, events.recv()).await {
                Ok(Some(Event::Acknowledged)) => acknowledged = true,
                Ok(Some(Event::Reset)) => {
                    return Err(ClientError::Connect(io::Error::other(
                        "the CoAP peer reset the request",
                    )))
                }
                Ok(Some(Event::Response(packet))) => {
                    // A confirmable (separate) response was acknowledged by the endpoint.
                    return mapping::decode_response(&packet)
                        .map_err(|e| ClientError::Connect(io::Error::other(e.to_string())));
                }
                Ok(None) => {
                    return Err(ClientError::Connect(io::Error::other(
                        "CoAP listener stopped",
                    )))
                }
                Err(_) if Instant::now() >= deadline => {
                    return Err(ClientError::Timeout(self.config.response_timeout))
                }
                Err(_) => wait *= 2,
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
