//! One WebSocket connection, from the upgrade to the close: the subprotocol negotiation
//! (an upgrade offering no oneM2M subprotocol is answered HTTP 400, TS-0020 6.2.3.1;
//! docs/decisions.md), then one loop that reads messages, sends what is queued and
//! reaps the connection when it falls silent.
//!
//! A message is one whole primitive. A response is handed to the own request waiting for
//! its `rqi`. A request is decoded here and handled in a task of its own (so that an
//! answer the CSE waits for, such as a subscription's verification NOTIFY, can still be
//! read): a request that cannot be decoded but whose `rqi` can be read is answered 4000
//! with `m2m:dbg`; one without a readable `rqi` ends the connection with close code 1007,
//! a frame of the wrong type for the subprotocol with 1003, a message over the limit
//! with 1009 and a protocol violation with 1002.

use crate::hub::{Conn, Hub, QueueError};
use bastion_core::{Cse, Listener, RequestContext};
use bastion_proto::primitive::Operation;
use bastion_proto::wire::{primitive, Serialization};
use bastion_proto::{Request, RequestError, ResourceType, Response};
use bastion_tls::{Association, Refusal};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::Response as Switching;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request as Upgrade};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// What the connection knows about its peer, for every request on it.
pub(crate) struct Peer {
    pub addr: SocketAddr,
    pub listener: Listener,
    /// The TLS security association (`wss://`), `None` on the plain listener.
    pub association: Option<Association>,
}

/// What the upgrade settled: the subprotocol's serialization and the `Authorization`
/// header (HTTP credentials of a server-authenticated TLS association, checked by
/// [`Association::admit`] before every request).
struct Upgraded {
    ser: Serialization,
    authorization: Option<Vec<u8>>,
}

/// Runs the upgrade of `stream` (by `deadline`) and then the connection, until it closes.
pub(crate) async fn run<S>(hub: Arc<Hub>, cse: Arc<Cse>, stream: S, peer: Peer, deadline: Instant)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut upgraded = None;
    let config = WebSocketConfig::default()
        .max_message_size(Some(hub.config.max_message_bytes))
        .max_frame_size(Some(hub.config.max_message_bytes));
    // The error type is tungstenite's `Callback` contract: the refusal it sends.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Upgrade, response: Switching| {
        upgrade(request, response).map(|(response, settled)| {
            upgraded = Some(settled);
            response
        })
    };
    let accepting = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let ws = match tokio::time::timeout_at(deadline, accepting).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::info!(peer = %peer.addr, error = %e, "WebSocket upgrade refused");
            return;
        }
        Err(_) => {
            tracing::info!(peer = %peer.addr, "WebSocket upgrade timed out");
            return;
        }
    };
    let Some(upgraded) = upgraded else {
        return;
    };
    let (conn, outgoing) = hub.open(upgraded.ser, peer.association.is_some());
    tracing::debug!(
        peer = %peer.addr,
        serialization = upgraded.ser.label(),
        secure = conn.secure,
        "WebSocket connection open"
    );
    let session = Session {
        hub: hub.clone(),
        cse,
        conn: conn.clone(),
        peer: Arc::new(peer),
        authorization: upgraded.authorization.map(Arc::new),
        in_flight: Arc::new(Semaphore::new(hub.config.max_in_flight.max(1))),
    };
    session.serve(ws, outgoing).await;
    hub.close(&conn);
}

/// The server's side of the upgrade: the subprotocol chosen from the client's offer and
/// echoed, or the refusal (400, with the names accepted). The error type is
/// tungstenite's `Callback` contract.
#[allow(clippy::result_large_err)]
fn upgrade(
    request: &Upgrade,
    mut response: Switching,
) -> Result<(Switching, Upgraded), ErrorResponse> {
    let offered = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let Some((name, ser)) = crate::subprotocol::negotiate(offered) else {
        let mut refusal = ErrorResponse::new(Some(format!(
            "no acceptable WebSocket subprotocol: offer one of {}\n",
            crate::subprotocol::ACCEPTED
        )));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        return Err(refusal);
    };
    let echoed = HeaderValue::from_str(&name).map_err(|_| {
        let mut refusal = ErrorResponse::new(None);
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        refusal
    })?;
    response
        .headers_mut()
        .insert("sec-websocket-protocol", echoed);
    let authorization = request
        .headers()
        .get("authorization")
        .map(|v| v.as_bytes().to_vec());
    Ok((response, Upgraded { ser, authorization }))
}

/// One open connection and what its requests share.
#[derive(Clone)]
struct Session {
    hub: Arc<Hub>,
    cse: Arc<Cse>,
    conn: Arc<Conn>,
    peer: Arc<Peer>,
    authorization: Option<Arc<Vec<u8>>>,
    in_flight: Arc<Semaphore>,
}

/// Why the loop ends the connection, as the close frame says it.
struct Closing(CloseCode, String);

impl Session {
    /// Reads, sends and reaps until the connection ends.
    async fn serve<S>(
        self,
        mut ws: WebSocketStream<S>,
        mut outgoing: tokio::sync::mpsc::UnboundedReceiver<crate::hub::Outgoing>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let idle = self.hub.config.idle_timeout;
        let mut last_seen = Instant::now();
        let mut pinged = false;
        loop {
            let reap_at = last_seen + if pinged { idle * 2 } else { idle };
            tokio::select! {
                incoming = ws.next() => {
                    let message = match incoming {
                        None => return,
                        Some(Ok(message)) => message,
                        Some(Err(e)) => {
                            if let Some(Closing(code, why)) = read_failure(&e) {
                                tracing::info!(peer = %self.peer.addr, reason = %why, "WebSocket connection closed");
                                within(idle, ws.close(Some(frame(code, &why)))).await;
                            }
                            return;
                        }
                    };
                    last_seen = Instant::now();
                    pinged = false;
                    if let Some(Closing(code, why)) = self.on_message(message) {
                        tracing::info!(peer = %self.peer.addr, reason = %why, "WebSocket connection closed");
                        within(idle, ws.close(Some(frame(code, &why)))).await;
                        return;
                    }
                }
                Some(out) = outgoing.recv() => {
                    let closing = matches!(out.message, Message::Close(_));
                    if !within(idle, ws.send(out.message)).await || closing {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(reap_at) => {
                    if pinged {
                        within(idle, ws.close(Some(frame(CloseCode::Away, "idle")))).await;
                        return;
                    }
                    pinged = true;
                    if !within(idle, ws.send(Message::Ping(Default::default()))).await {
                        return;
                    }
                }
            }
        }
    }

    /// Handles one received message; `Some` ends the connection.
    fn on_message(&self, message: Message) -> Option<Closing> {
        let text = matches!(message, Message::Text(_));
        let bytes = match message {
            Message::Text(t) => t.as_bytes().to_vec(),
            Message::Binary(b) => b.to_vec(),
            // Pings are answered by the library; pongs only count as life; a close is
            // answered by the library, and the stream then ends.
            _ => return None,
        };
        let ser = self.conn.ser;
        if text != (ser != Serialization::Cbor) {
            return Some(Closing(
                CloseCode::Unsupported,
                format!(
                    "{} frames do not carry {} primitives",
                    if text { "text" } else { "binary" },
                    ser.label()
                ),
            ));
        }
        let value = match ser.decode_pc(&bytes) {
            Ok(value) => value,
            Err(e) => return Some(Closing(CloseCode::Invalid, format!("not a primitive: {e}"))),
        };
        if is_response(&value) {
            match primitive::decode_response(ser, &bytes) {
                Ok(response) => {
                    if !self.conn.answered(response) {
                        self.hub
                            .dropped("an answer no request of this CSE waits for");
                    }
                }
                Err(_) => self.hub.dropped("an answer that is no response primitive"),
            }
            return None;
        }
        self.on_request(&bytes)
    }

    /// Decodes one request and hands it to a task, within the in-flight bound.
    fn on_request(&self, bytes: &[u8]) -> Option<Closing> {
        let req = match primitive::decode_request(self.conn.ser, bytes) {
            Ok(req) => req,
            Err(bad) => {
                let Some(rqi) = bad.rqi.filter(|r| !r.is_empty()) else {
                    return Some(unanswerable(&bad.error.to_string()));
                };
                self.send(self.refusal(&bad.error, rqi, bad.rvi, bad.fr));
                return None;
            }
        };
        let Some(rqi) = req.rqi.clone().filter(|r| !r.is_empty()) else {
            return Some(unanswerable("a request primitive without rqi"));
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            if self.hub.warn_in_flight.ready() {
                tracing::warn!(
                    peer = %self.peer.addr,
                    limit = self.hub.config.max_in_flight,
                    "WebSocket requests in flight exhausted on a connection; more are refused (logged once a minute)"
                );
            }
            let busy = RequestError::Internal(
                format!(
                    "{} requests are already in flight on this WebSocket connection",
                    self.hub.config.max_in_flight
                )
                .into(),
            );
            self.send(self.refusal(&busy, rqi, req.rvi.clone(), req.fr.clone()));
            return None;
        };
        let session = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (response, revoked) = session.handle(req, rqi).await;
            session.send(response);
            if revoked {
                session
                    .conn
                    .close_with(CloseCode::Policy, "credential revoked");
            }
        });
        None
    }

    /// The response to one decoded request: refused 4107 when the association does not
    /// admit it (and the connection closed after the answer when its credential was
    /// revoked: then `true`), otherwise the core's; a success makes this connection the
    /// route to the originator.
    async fn handle(&self, req: Request, rqi: String) -> (Response, bool) {
        let identity = match &self.peer.association {
            None => None,
            Some(association) => {
                match association.admit(self.authorization.as_deref().map(Vec::as_slice)) {
                    Ok(originator) => Some(originator.into_owned()),
                    Err(why) => {
                        tracing::info!(peer = %self.peer.addr, reason = %why, "request refused: 4107");
                        let refused =
                            RequestError::SecurityAssociationRequired(why.to_string().into());
                        let answer = self.refusal(&refused, rqi, req.rvi.clone(), req.fr.clone());
                        return (answer, why == Refusal::Revoked);
                    }
                }
            }
        };
        let ctx = RequestContext::new(Some(self.peer.addr), identity).on(self.peer.listener);
        let fr = req.fr.clone();
        let registration = req.op == Some(Operation::Create)
            && req.ty.and_then(ResourceType::from_number) == Some(ResourceType::Ae);
        let mut response = self.cse.handle(req, &ctx).await;
        response.to = fr.clone();
        if response.rsc.is_success() {
            let registered = registration
                .then(|| response.pc.as_ref().and_then(assigned_ae_id))
                .flatten();
            if let Some(id) = registered.or(fr).filter(|id| !id.is_empty()) {
                self.hub.route(&id, &self.conn);
            }
        }
        (response, false)
    }

    /// An error answer from this CSE to the request `rqi`.
    fn refusal(
        &self,
        error: &RequestError,
        rqi: String,
        rvi: Option<String>,
        fr: Option<String>,
    ) -> Response {
        let mut r = Response::error(error, rqi);
        r.rvi = rvi;
        r.fr = Some(self.hub.config.cse_id.clone());
        r.to = fr;
        r
    }

    /// Queues `response`; an answer over the message limit becomes 5207, and a full
    /// queue (a peer that does not read) ends the connection with 1013.
    fn send(&self, response: Response) {
        let ser = self.conn.ser;
        let limit = self.hub.config.max_message_bytes;
        let mut bytes = primitive::encode_response(ser, &response);
        if bytes.len() > limit {
            let too_large = RequestError::NotAcceptable(
                "the response exceeds the WebSocket message limit".into(),
            );
            let mut refused = Response::error(&too_large, response.rqi.clone());
            refused.rvi = response.rvi.clone();
            refused.fr = response.fr.clone();
            refused.to = response.to.clone();
            bytes = primitive::encode_response(ser, &refused);
        }
        match self.conn.queue(bytes, limit) {
            Ok(()) | Err(QueueError::Closed) => {}
            Err(e) => {
                if self.hub.warn_outbound.ready() {
                    tracing::warn!(peer = %self.peer.addr, reason = %e, "WebSocket outbound queue full; the connection is closed (logged once a minute)");
                }
                self.conn
                    .close_with(CloseCode::Again, "outbound queue full");
            }
        }
    }
}

/// Whether `sending` completed within `limit`: a peer that stops reading cannot hold the
/// connection loop (and its connection slot) longer than that.
async fn within(
    limit: std::time::Duration,
    sending: impl std::future::Future<Output = Result<(), WsError>>,
) -> bool {
    matches!(tokio::time::timeout(limit, sending).await, Ok(Ok(())))
}

/// A primitive is a response when it is wrapped as one (XML) or has `rsc` and no `op`
/// (JSON and CBOR, TS-0020 Annex A).
fn is_response(value: &Value) -> bool {
    match value {
        Value::Object(map) if map.contains_key("m2m:rsp") => true,
        Value::Object(map) => map.contains_key("rsc") && !map.contains_key("op"),
        _ => false,
    }
}

/// The AE-ID a successful registration assigned (`aei` of the created `<AE>`).
fn assigned_ae_id(pc: &Value) -> Option<String> {
    pc.get("m2m:ae")?.get("aei")?.as_str().map(str::to_owned)
}

fn unanswerable(why: &str) -> Closing {
    Closing(
        CloseCode::Invalid,
        format!("a primitive without a readable rqi cannot be answered: {why}"),
    )
}

fn frame(code: CloseCode, reason: &str) -> CloseFrame {
    // A close frame's reason is at most 123 bytes (RFC 6455 5.5).
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code,
        reason: reason[..end].into(),
    }
}

/// The close a read failure earns, when the connection can still be told.
fn read_failure(e: &WsError) -> Option<Closing> {
    match e {
        WsError::Capacity(c) => Some(Closing(CloseCode::Size, c.to_string())),
        WsError::Protocol(p) => Some(Closing(CloseCode::Protocol, p.to_string())),
        WsError::Utf8(_) => Some(Closing(
            CloseCode::Invalid,
            "a text frame that is not UTF-8".into(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_are_told_from_requests() {
        assert!(is_response(&json!({"rsc": 2000, "rqi": "r"})));
        assert!(is_response(&json!({"m2m:rsp": {"rsc": 2000}})));
        assert!(!is_response(&json!({"op": 5, "rsc": 2000})));
        assert!(!is_response(&json!({"op": 2, "rqi": "r"})));
        assert!(!is_response(&json!([1])));
    }

    #[test]
    fn whole_primitives_are_told_apart_in_every_serialization() {
        let mut response = Response::new(bastion_proto::Rsc::Ok, "r1");
        response.rvi = Some("3".into());
        let request = Request {
            op: Some(Operation::Retrieve),
            to: "cse-in".into(),
            fr: Some("Cae".into()),
            rqi: Some("r2".into()),
            rvi: Some("3".into()),
            ..Request::default()
        };
        for ser in Serialization::ALL {
            let answer = primitive::encode_response(ser, &response);
            let asked = primitive::encode_request(ser, &request).expect("encodable");
            let read = |bytes: &[u8]| ser.decode_pc(bytes).expect("decodable");
            assert!(is_response(&read(&answer)), "{ser:?}");
            assert!(!is_response(&read(&asked)), "{ser:?}");
        }
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(100);
        assert!(frame(CloseCode::Invalid, &long).reason.len() <= 123);
    }

    #[test]
    fn the_registered_ae_id_is_read_from_the_created_resource() {
        assert_eq!(
            assigned_ae_id(&json!({"m2m:ae": {"aei": "Cae1", "rn": "a"}})).as_deref(),
            Some("Cae1")
        );
        assert_eq!(assigned_ae_id(&json!({"m2m:uri": "x"})), None);
    }
}
