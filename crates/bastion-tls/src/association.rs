//! An established security association as every binding over it sees it: the identity
//! the association authenticated, and whether it may still be used. The one place that
//! turns a handshake's outcome into the originator identity a binding hands the core
//! (HTTPS and DTLS sessions, `crate::dtls`, today; TLS for MQTT and WebSocket reuse it):
//!
//! ```text
//!   handshake ─► TlsServer::identity_of: PSK identity ─► registry ─► binding (AE/CSE-ID)
//!                                        raw public key ─► pinned ─► binding
//!                                        certificate ─► SAN URI ─► binding
//!            ─► Association { server, identity }
//!   per request:  Association::originator() ─► Ok(AE-ID / CSE-ID)  (RequestContext)
//!                                          └─► Err(Revoked)  credential revoked in the
//!                                               registry or certificate on a reloaded CRL
//!   server-authenticated TLS (opt-in, peer_http):
//!                 Association::admit(Authorization) ─► CSE-ID of the HTTP peer credential
//! ```
//!
//! Revocation is looked up anew on every call, so a kept-alive association stops
//! working on the request after its credential is revoked.

use std::borrow::Cow;
use std::sync::Arc;

use crate::identity::PeerIdentity;
use crate::peer_http::HttpCredential;
use crate::server::TlsServer;

/// One established association and the server whose credentials and CRLs judge it.
#[derive(Clone, Debug)]
pub struct Association {
    server: Arc<TlsServer>,
    peer: Peer,
}

/// How the peer of an association is authenticated.
#[derive(Clone, Debug)]
enum Peer {
    /// By the handshake (PSK, certificate, raw public key).
    Handshake(PeerIdentity),
    /// Not by the handshake (server-authenticated TLS): by the HTTP credentials each
    /// request carries ([`crate::peer_http`]).
    PerRequestHttp,
}

/// Why a request on an association is refused; the binding answers 4107.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The association's credential was revoked since it was established: establish a
    /// new one (the binding also closes the connection).
    #[error("the security association's credential was revoked")]
    Revoked,
    /// A server-authenticated association, and the request carries no HTTP Basic or
    /// Bearer credentials.
    #[error("no HTTP Basic or Bearer credentials for this server-authenticated association")]
    HttpCredentialMissing,
    /// The request's HTTP credentials match no active peer credential.
    #[error("the HTTP credentials were not accepted")]
    HttpCredentialRejected,
}

impl Association {
    /// The association `server` established with the peer `identity`.
    pub fn new(server: Arc<TlsServer>, identity: PeerIdentity) -> Association {
        Association {
            server,
            peer: Peer::Handshake(identity),
        }
    }

    /// A server-authenticated association whose requests authenticate by HTTP
    /// credentials.
    pub(crate) fn per_request_http(server: Arc<TlsServer>) -> Association {
        Association {
            server,
            peer: Peer::PerRequestHttp,
        }
    }

    /// The AE-ID, CSE-ID or Credential-ID the association is bound to, while its
    /// credential is not revoked. A server-authenticated association has none
    /// ([`Refusal::HttpCredentialMissing`]); see [`Association::admit`].
    pub fn originator(&self) -> Result<&str, Refusal> {
        match &self.peer {
            Peer::Handshake(identity) if self.server.is_revoked(identity) => Err(Refusal::Revoked),
            Peer::Handshake(identity) => Ok(identity.originator()),
            Peer::PerRequestHttp => Err(Refusal::HttpCredentialMissing),
        }
    }

    /// The originator of one HTTP request: the association's ([`Association::originator`];
    /// `authorization` is then not looked at), or, on a server-authenticated association,
    /// the CSE-ID of the peer credential its `Authorization` value (Basic or Bearer)
    /// matches.
    pub fn admit(&self, authorization: Option<&[u8]>) -> Result<Cow<'_, str>, Refusal> {
        if let Peer::Handshake(_) = self.peer {
            return self.originator().map(Cow::Borrowed);
        }
        let presented = authorization
            .and_then(HttpCredential::parse)
            .ok_or(Refusal::HttpCredentialMissing)?;
        self.server
            .registry()
            .authenticate_http(&presented)
            .map(|(_, binding)| Cow::Owned(binding.originator().to_owned()))
            .ok_or(Refusal::HttpCredentialRejected)
    }

    /// The peer the handshake authenticated (framework, credential, binding), for logs and
    /// checks; `None` on a server-authenticated association.
    pub fn identity(&self) -> Option<&PeerIdentity> {
        match &self.peer {
            Peer::Handshake(identity) => Some(identity),
            Peer::PerRequestHttp => None,
        }
    }
}
