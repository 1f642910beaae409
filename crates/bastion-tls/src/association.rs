//! An established security association as every binding over it sees it: the identity
//! the association authenticated, and whether it may still be used. The one place that
//! turns a handshake's outcome into the originator identity a binding hands the core
//! (HTTPS today; DTLS for CoAP and TLS for MQTT and WebSocket reuse it):
//!
//! ```text
//!   handshake ─► TlsServer::identity_of: PSK identity ─► registry ─► binding (AE/CSE-ID)
//!                                        raw public key ─► pinned ─► binding
//!                                        certificate ─► SAN URI ─► binding
//!            ─► Association { server, identity }
//!   per request:  Association::originator() ─► Ok(AE-ID / CSE-ID)  (RequestContext)
//!                                          └─► Err(Revoked)  credential revoked in the
//!                                               registry or certificate on a reloaded CRL
//! ```
//!
//! Revocation is looked up anew on every call, so a kept-alive association stops
//! working on the request after its credential is revoked.

use crate::identity::PeerIdentity;
use crate::server::TlsServer;
use std::sync::Arc;

/// One established association and the server whose credentials and CRLs judge it.
#[derive(Clone, Debug)]
pub struct Association {
    server: Arc<TlsServer>,
    identity: PeerIdentity,
}

/// The association's credential was revoked since it was established: the binding
/// answers 4107 (establish a new association) and closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the security association's credential was revoked")]
pub struct Revoked;

impl Association {
    /// The association `server` established with the peer `identity`.
    pub fn new(server: Arc<TlsServer>, identity: PeerIdentity) -> Association {
        Association { server, identity }
    }

    /// The AE-ID, CSE-ID or Credential-ID the association is bound to, while its
    /// credential is not revoked.
    pub fn originator(&self) -> Result<&str, Revoked> {
        if self.server.is_revoked(&self.identity) {
            return Err(Revoked);
        }
        Ok(self.identity.originator())
    }

    /// The authenticated peer (framework, credential, binding), for logs and checks.
    pub fn identity(&self) -> &PeerIdentity {
        &self.identity
    }
}
