//! The DAS Server over TLS (TS-0003 8.2): the security association authenticates whoever
//! asks, by PSK or certificate, with [`bastion_tls::TlsServer`]; every request on it
//! carries [`bastion_http::tls::SaIdentity`], the identity the association is bound to,
//! which the DAS router takes as [`crate::Requester::Association`].
//!
//! ```text
//!  bastion_http::tls::serve_router_tls
//!    one accept loop (back-off on EMFILE…), connection cap, handshake cap + timeout,
//!    header/idle timeouts per connection
//!    per request: revoked? ── yes ─► 4107 + Connection: close
//!                 no ─► SaIdentity(originator) ─► server::router (body timeout)
//! ```
//!
//! Nothing of the listener is here: the DAS serves its router on the CSE's TLS listener
//! machinery, so both get the same caps, timeouts and revocation checks
//! (docs/security.md, "Availability").

use crate::server::router;
use crate::Das;
use bastion_http::listen::{Gate, Timeouts};
use bastion_tls::TlsServer;
use std::sync::Arc;

pub use bastion_http::tls::HANDSHAKE_TIMEOUT;

/// Serves the DAS over TLS on `listener` until the future is dropped, counting
/// connections and handshakes against `gate` (shared with the plain listener), each
/// connection under `timeouts`. Handshake failures end that connection only and are
/// logged without key material.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<TlsServer>,
    das: Arc<Das>,
    timeouts: Timeouts,
    gate: Gate,
) -> std::io::Result<()> {
    let app = router(das, timeouts);
    bastion_http::tls::serve_router_tls(listener, tls, app, timeouts, gate, None).await
}
