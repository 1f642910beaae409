//! The CoAP binding (TS-0008 over RFC 7252 and RFC 7959; docs/bindings.md): the CSE as
//! a CoAP server on a UDP port, and as a CoAP client for its own requests
//! (notifications) to `coap://` targets.
//!
//! ```text
//!   UDP socket ──datagram──► CoapBinding (udp.rs: receive, spawn, send back)
//!   DTLS session ─datagram─► CoapsBinding (dtls.rs: one task per session)
//!                               │
//!                               ▼
//!   CoapEndpoint::handle_datagram(datagram, peer, association) ─► datagrams to send
//!     endpoint.rs  messaging: CON/NON/ACK/RST, de-duplication, Block1/Block2
//!     mapping.rs   TS-0008 6.2: CoAP request ↔ request primitive, response ↔ CoAP
//!     codes.rs     TS-0008 Table 6.2.4-1: RSC → CoAP response code
//!     options.rs   option numbers, content formats, critical-option check
//!     buffers.rs   the bounded de-duplication and blockwise stores
//!
//!   CoapTransport (NOTIFY) ──CON from the listener's socket──► AE / coap:// target
//!   endpoint ◄── ACK / response ── matched by token (outbound.rs), retransmitted per RFC 7252
//! ```
//!
//! [`bind`] opens the socket and returns the [`CoapBinding`], which `bastion serve`
//! starts like any listener, and the [`CoapTransport`] for the `coap` scheme.
//!
//! # Security associations (DTLS)
//!
//! The message handling does not depend on the socket: [`CoapsBinding`] (dtls.rs, from
//! [`bind_dtls`]) takes each DTLS session of `bastion_tls`'s `DtlsServer`, calls
//! [`CoapEndpoint::handle_datagram`] with every datagram it decrypts and the session's
//! `bastion_tls::Association`, and encrypts each returned datagram into the same
//! session (TS-0008 7: the answer uses the request's session and epoch). With an association, the identity it authenticated is
//! the request's association identity and a revoked credential is answered 4107; over
//! plain UDP (`association` `None`) there is no identity, exactly as on the plain HTTP
//! listener: an originator bound to a credential is refused 4106 by the core, and the
//! admin is refused 4106 here (a datagram's source address proves nothing).
//!
//! # Bounds
//!
//! Datagrams over [`CoapConfig::max_datagram_bytes`] are answered 4.13; at most
//! [`CoapConfig::max_in_flight`] datagrams are handled at once; the de-duplication table
//! holds [`CoapConfig::max_exchanges`] message IDs; reassembled request bodies are at
//! most [`CoapConfig::max_request_bytes`] (4.13 beyond), and blockwise buffers hold at
//! most [`CoapConfig::max_buffered_per_peer`] per peer and
//! [`CoapConfig::max_buffered_bytes`] in all (5.03 beyond); at most
//! [`CoapConfig::max_pending`] own requests wait for answers.
#![forbid(unsafe_code)]

mod buffers;
pub mod codes;
mod dtls;
mod endpoint;
pub mod mapping;
pub mod options;
mod outbound;
mod secure_transport;
mod transport;
mod udp;

pub use dtls::{bind_dtls, CoapsBinding};
pub use endpoint::{Block, CoapEndpoint};
pub use secure_transport::CoapsTransport;
pub use transport::CoapTransport;
pub use udp::CoapBinding;

use outbound::Outbound;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Default [`CoapConfig::max_datagram_bytes`]: RFC 7252 4.6's 1152-byte message fits an
/// IPv6 minimum MTU; larger datagrams are accepted up to this, larger bodies go in blocks.
pub const DEFAULT_MAX_DATAGRAM_BYTES: usize = 1400;
/// Default [`CoapConfig::block_size`].
pub const DEFAULT_BLOCK_SIZE: usize = 1024;
/// Default [`CoapConfig::max_request_bytes`].
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Default [`CoapConfig::max_buffered_per_peer`].
pub const DEFAULT_MAX_BUFFERED_PER_PEER: usize = 2 * 1024 * 1024;
/// Default [`CoapConfig::max_buffered_bytes`].
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 32 * 1024 * 1024;
/// Default [`CoapConfig::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default [`CoapConfig::max_exchanges`].
pub const DEFAULT_MAX_EXCHANGES: usize = 8192;
/// Default [`CoapConfig::max_pending`].
pub const DEFAULT_MAX_PENDING: usize = 256;
/// Default [`CoapConfig::response_timeout`]: RFC 7252's MAX_TRANSMIT_WAIT is 93 s; an
/// answer is awaited at most this long.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// The binding's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoapConfig {
    /// Largest datagram read or sent.
    pub max_datagram_bytes: usize,
    /// Largest block of a response (a power of two, 16 to 1024; smaller when asked).
    pub block_size: usize,
    /// Largest request body reassembled from Block1 blocks.
    pub max_request_bytes: usize,
    /// Bytes of blockwise bodies buffered for one peer.
    pub max_buffered_per_peer: usize,
    /// Bytes of blockwise bodies buffered in all.
    pub max_buffered_bytes: usize,
    /// How long a blockwise body is kept after its last block.
    pub block_lifetime: Duration,
    /// Datagrams handled at once.
    pub max_in_flight: usize,
    /// Message IDs remembered for de-duplication.
    pub max_exchanges: usize,
    /// Own requests waiting for answers.
    pub max_pending: usize,
    /// How long an own request waits for its answer.
    pub response_timeout: Duration,
}

impl Default for CoapConfig {
    fn default() -> CoapConfig {
        CoapConfig {
            max_datagram_bytes: DEFAULT_MAX_DATAGRAM_BYTES,
            block_size: DEFAULT_BLOCK_SIZE,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_buffered_per_peer: DEFAULT_MAX_BUFFERED_PER_PEER,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            block_lifetime: Duration::from_secs(60),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_exchanges: DEFAULT_MAX_EXCHANGES,
            max_pending: DEFAULT_MAX_PENDING,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        }
    }
}

/// Binds the UDP socket at `addr`: the binding (to serve) and the transport (for the
/// outbound routes), which sends from the same socket.
pub async fn bind(
    addr: SocketAddr,
    config: CoapConfig,
) -> std::io::Result<(CoapBinding, CoapTransport)> {
    let socket = Arc::new(tokio::net::UdpSocket::bind(addr).await?);
    let local = socket.local_addr()?;
    let outbound = Arc::new(Outbound::new(config.max_pending));
    let transport = CoapTransport::new(socket.clone(), outbound.clone(), config.clone());
    Ok((
        CoapBinding {
            socket,
            outbound,
            config,
            local,
        },
        transport,
    ))
}
