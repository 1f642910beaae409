//! [`CoapsTransport`]: the outbound routes' transport for `coaps://` targets (TS-0008 7
//! with TS-0003 10.2). Each request opens its own DTLS association with the target as
//! Entity A, with the one [`DtlsClient`] it was built with (the outbound routes build one
//! per credential shared with the peer), sends one confirmable message over it, waits
//! for the answer under the same retransmission rules as over plain UDP, and closes the
//! association. The association is not kept between requests: a revocation or a key
//! change applies to the very next request, at the price of a handshake per request
//! (docs/bindings.md, "coaps targets").

use crate::endpoint::ack;
use crate::transport::{reset_error, response_of, Outgoing, Retransmission};
use crate::CoapConfig;
use bastion_client::{ClientError, Transport};
use bastion_proto::{Request, Response};
use bastion_tls::{DtlsClient, DtlsConnection, DtlsError};
use coap_lite::{MessageClass, MessageType, Packet};
use std::sync::Arc;

/// Sends request primitives over DTLS associations it opens as a client.
#[derive(Clone)]
pub struct CoapsTransport {
    client: Arc<DtlsClient>,
    config: CoapConfig,
}

impl CoapsTransport {
    /// Requests over associations made by `client`, within the limits of `config`
    /// (datagram size, response timeout).
    pub fn new(client: DtlsClient, config: CoapConfig) -> CoapsTransport {
        CoapsTransport {
            client: Arc::new(client),
            config,
        }
    }
}

/// A DTLS failure as the notifier and the forwarder sort it: a refused handshake is a
/// handshake error, everything else a connection that may work later.
fn dtls_error(err: DtlsError) -> ClientError {
    match err {
        DtlsError::Handshake(e) => ClientError::Handshake(e),
        other => ClientError::Connect(std::io::Error::other(other.to_string())),
    }
}

#[async_trait::async_trait]
impl Transport for CoapsTransport {
    async fn send(&self, target: &str, req: &Request) -> Result<Response, ClientError> {
        // Each association is new, so any message ID is fresh in it.
        let mid: u16 = rand::random();
        let out = Outgoing::build(target, "coaps", req, mid, &self.config).await?;
        let mut connection = self
            .client
            .connect(&out.host, out.peer)
            .await
            .map_err(dtls_error)?;
        let result = exchange(&mut connection, &out, mid, &self.config).await;
        let _ = connection.close().await;
        result
    }
}

/// Sends the request until acknowledged and returns its response, acknowledging a
/// confirmable (separate) one.
async fn exchange(
    connection: &mut DtlsConnection,
    out: &Outgoing,
    mid: u16,
    config: &CoapConfig,
) -> Result<Response, ClientError> {
    let mut retransmission = Retransmission::new(config.response_timeout);
    loop {
        if retransmission.send_now()? {
            connection.send(&out.bytes).await.map_err(dtls_error)?;
        }
        let datagram =
            match tokio::time::timeout_at(retransmission.until(), connection.recv()).await {
                Ok(received) => received.map_err(dtls_error)?,
                Err(_) => {
                    retransmission.timed_out()?;
                    continue;
                }
            };
        // Anything that is not about this request is ignored, as over plain UDP.
        let Ok(packet) = Packet::from_bytes(&datagram) else {
            continue;
        };
        let kind = packet.header.get_type();
        match packet.header.code {
            MessageClass::Empty if packet.header.message_id == mid => match kind {
                MessageType::Acknowledgement => retransmission.acknowledge(),
                MessageType::Reset => return Err(reset_error()),
                _ => {}
            },
            MessageClass::Response(_) if packet.get_token() == out.token => {
                if kind == MessageType::Confirmable {
                    connection
                        .send(&ack(packet.header.message_id))
                        .await
                        .map_err(dtls_error)?;
                }
                return response_of(&packet);
            }
            _ => {}
        }
    }
}
