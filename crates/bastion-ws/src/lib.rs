//! The WebSocket binding (TS-0020; docs/bindings.md): the CSE as a WebSocket server for
//! its registrees, on a plain (`ws://`) and a TLS (`wss://`) listener. Each WebSocket
//! message carries one whole request or response primitive, in the serialization of the
//! subprotocol negotiated at the upgrade, and requests travel in both directions over
//! one connection: a registree's requests to the CSE, and the CSE's own (notifications)
//! to the registree.
//!
//! ```text
//!   TCP ─► [TLS: TlsServer::associate] ─► upgrade (subprotocol oneM2M.json|xml|cbor)
//!        ─► connection loop ─ request primitive ─► Association::admit ─► Cse::handle
//!              │            ◄─ response primitive ◄────────────────────────┘
//!              │  a success binds the request's `fr` (or the registered AE-ID) to
//!              │  this connection in the [`Hub`]
//!   WsTransport (NOTIFY to a `ws://`/`wss://` poa) ─► Hub: the receiver's connection
//!              ─► request primitive ─► registree ─► response, matched by rqi
//! ```
//!
//! Identity (docs/security.md): over `ws://` requests carry no association identity,
//! exactly as on the plain HTTP listener, so an identity bound to a credential is 4106.
//! Over `wss://` the association's identity (checked for revocation before every
//! request, 4107 and the connection closed when revoked) binds `fr` as over HTTPS.
//!
//! Bounds ([`WsConfig`]): connections (over the limit a plain upgrade is answered 503, a
//! TLS one closed), the upgrade (TLS included) within [`WsConfig::handshake_timeout`],
//! messages and frames of at most [`WsConfig::max_message_bytes`] (close 1009), at most
//! [`WsConfig::max_in_flight`] requests handled at once per connection (one more is
//! answered 5000) and as many own requests waiting for answers, at most
//! [`WsConfig::max_outbound_bytes`] queued for sending per connection (close 1013 when
//! full), a connection silent for [`WsConfig::idle_timeout`] is pinged, then closed, and
//! one that does not take a frame within that time is dropped.
#![forbid(unsafe_code)]

mod binding;
mod connection;
mod hub;
pub mod subprotocol;
mod transport;

pub use binding::WsBinding;
pub use hub::Hub;
pub use transport::WsTransport;

use std::time::Duration;

/// Default [`WsConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default [`WsConfig::max_message_bytes`].
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Default [`WsConfig::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;
/// Default [`WsConfig::max_outbound_bytes`].
pub const DEFAULT_MAX_OUTBOUND_BYTES: usize = 4 * 1024 * 1024;
/// Default [`WsConfig::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default [`WsConfig::response_timeout`].
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`WsConfig::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the binding needs: the CSE's identity and the bounds, shared by both listeners.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// The CSE's SP-relative CSE-ID (`/id-in`).
    pub cse_id: String,
    /// The CSE's SP-ID (`//bastion.example`).
    pub sp_id: String,
    /// Open connections, over both listeners together.
    pub max_connections: usize,
    /// The largest message (and frame) read or sent.
    pub max_message_bytes: usize,
    /// Requests handled at once per connection; also the own requests of the CSE
    /// waiting for an answer on one connection.
    pub max_in_flight: usize,
    /// Bytes of messages waiting to be sent, per connection.
    pub max_outbound_bytes: usize,
    /// Silence after which a connection is pinged; as long again without a frame and it
    /// is closed.
    pub idle_timeout: Duration,
    /// How long an own request (a NOTIFY) waits for its answer.
    pub response_timeout: Duration,
    /// How long a client may take from TCP accept to a completed upgrade (TLS included).
    pub handshake_timeout: Duration,
}

impl WsConfig {
    /// The defaults for the CSE `cse_id` of the SP `sp_id`.
    pub fn new(cse_id: impl Into<String>, sp_id: impl Into<String>) -> WsConfig {
        WsConfig {
            cse_id: cse_id.into(),
            sp_id: sp_id.into(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_outbound_bytes: DEFAULT_MAX_OUTBOUND_BYTES,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}
