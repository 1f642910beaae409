//! [`WsTransport`]: the outbound routes' transport for `ws://` and `wss://` points of
//! access. The CSE is the WebSocket server of its registrees and never dials them
//! (TS-0020 5.2): a request (a NOTIFY) to such a point of access goes over the open
//! connection of its receiver, the entity the request's `to` names (an AE-ID, or the
//! CSE an address starts with), and its answer is the response primitive with the same
//! `rqi` on that connection. The point of access's authority is not dialled; a `wss://`
//! one is reached only over a connection with a TLS security association. With no open
//! connection of the receiver the point of access is unreachable (the notification
//! engine keeps or drops the event by the subscription's policy), docs/decisions.md.

use crate::Hub;
use bastion_client::{ClientError, Transport};
use bastion_proto::wire::{self, primitive};
use bastion_proto::{Request, Response};
use std::io;
use std::sync::Arc;

/// Sends request primitives over registrees' open connections.
#[derive(Clone)]
pub struct WsTransport {
    hub: Arc<Hub>,
}

impl WsTransport {
    /// The transport over the connections of `hub`.
    pub fn new(hub: Arc<Hub>) -> WsTransport {
        WsTransport { hub }
    }
}

fn unreachable(why: String) -> ClientError {
    ClientError::Connect(io::Error::other(why))
}

#[async_trait::async_trait]
impl Transport for WsTransport {
    async fn send(&self, target: &str, req: &Request) -> Result<Response, ClientError> {
        let (sent, _) = wire::target_serialization(target)
            .ok_or_else(|| ClientError::InvalidTarget(target.to_owned()))?;
        let (endpoint, _) = bastion_client::parse_target(&sent)?;
        let secure = match endpoint.scheme.as_str() {
            "ws" => false,
            "wss" => true,
            other => return Err(ClientError::UnsupportedScheme(other.to_owned())),
        };
        let receiver = receiver_of(&req.to).ok_or_else(|| {
            ClientError::InvalidRequest("no receiver ID in the request's target".into())
        })?;
        let conn = self
            .hub
            .connection_of(receiver)
            .ok_or_else(|| unreachable(format!("{receiver} has no open WebSocket connection")))?;
        if secure && !conn.secure {
            return Err(unreachable(format!(
                "{receiver} is connected without TLS; {target} asks for wss"
            )));
        }
        let rqi = req
            .rqi
            .as_deref()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                ClientError::InvalidRequest("a WebSocket request needs an rqi".into())
            })?;
        let payload = primitive::encode_request(conn.ser, req)
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        let answer = conn
            .wait_for(rqi, self.hub.config.max_in_flight.max(1))
            .ok_or_else(|| {
                ClientError::InvalidRequest(
                    "too many requests, or one with this rqi, wait on this WebSocket connection"
                        .into(),
                )
            })?;
        if let Err(e) = conn.queue(payload, self.hub.config.max_message_bytes) {
            conn.forget(rqi);
            return Err(unreachable(e.to_string()));
        }
        let timeout = self.hub.config.response_timeout;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(ClientError::Http(
                "the WebSocket connection closed before the answer".into(),
            )),
            Err(_) => {
                conn.forget(rqi);
                Err(ClientError::Timeout(timeout))
            }
        }
    }
}

/// The entity a request's `to` is addressed to: an unstructured ID as is, the CSE-ID
/// an SP-relative address starts with, or the CSE an absolute address starts with.
fn receiver_of(to: &str) -> Option<&str> {
    if let Some(rest) = to.strip_prefix("//") {
        let sp_end = rest.find('/')?;
        let csi_end = rest[sp_end + 1..]
            .find('/')
            .map_or(to.len(), |i| 2 + sp_end + 1 + i);
        return Some(&to[..csi_end]);
    }
    if let Some(rest) = to.strip_prefix('/') {
        let segments: Vec<&str> = rest.splitn(3, '/').collect();
        // `/cse/AE-ID…` of an AE registered with this CSE is the AE.
        return match segments.as_slice() {
            [_, ae, ..] if ae.starts_with(['C', 'S']) => {
                Some(&to[..2 + segments[0].len() + ae.len()])
            }
            _ => Some(&to[..1 + segments[0].len()]),
        };
    }
    let id = to.split('/').next().unwrap_or("");
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receiver_is_the_entity_the_target_names() {
        assert_eq!(receiver_of("Cae1"), Some("Cae1"));
        assert_eq!(receiver_of("Cae1/cnt"), Some("Cae1"));
        assert_eq!(receiver_of("/id-in/Cae1"), Some("/id-in/Cae1"));
        assert_eq!(receiver_of("/id-mn"), Some("/id-mn"));
        assert_eq!(receiver_of("/id-mn/cse-mn"), Some("/id-mn"));
        assert_eq!(receiver_of("//sp/id-mn/x"), Some("//sp/id-mn"));
        assert_eq!(receiver_of(""), None);
    }
}
