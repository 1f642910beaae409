//! Pre-shared keys a listener does not hold but a key server does (TS-0003 8.3.5, 8.8.2,
//! 8.3.2.3): a client that presents a PSK identity unknown to the
//! [`crate::CredentialRegistry`] may hold a key provisioned by an M2M Enrolment Function
//! (Kpsa, Kuc; identity `RelativeKeyID@FQDN`), registered with an M2M Authentication
//! Function (Kc; likewise) or bootstrapped by GBA (Ks_NAF; a B-TID). The listener then
//! asks the [`RemotePskSource`] configured in [`crate::ServerSettings::remote_psk`], which
//! fetches the key over its own security association with that server.
//!
//! The source is called from inside the OpenSSL PSK callback, which is synchronous: an
//! implementation blocks the calling thread until it has an answer, so it must bound its
//! own wait and the number of fetches in flight, and, when called on a Tokio worker,
//! hand the wait to `tokio::task::block_in_place`. Anything it cannot answer in time is
//! `None`: the handshake fails, it never grants.

use crate::credentials::PskKey;
use crate::identity::Binding;

/// A key fetched from a key server, with the identity the association is bound to.
pub struct RemotePsk {
    /// The pre-shared key (wiped on drop).
    pub key: PskKey,
    /// The AE-ID or CSE-ID the key server provisioned the key for.
    pub binding: Binding,
}

/// Where a listener looks up `RelativeKeyID@FQDN` identities its registry lacks.
pub trait RemotePskSource: Send + Sync + std::fmt::Debug {
    /// The key and binding for the PSK identity `identity` (as the client sent it, without
    /// the trailing NUL), or `None` when it is not a key server's identity, or the key
    /// server does not know it, refuses, is unreachable or is too slow. Blocking; see the
    /// module docs.
    fn fetch(&self, identity: &str) -> Option<RemotePsk>;

    /// Whether an association established with the fetched key `identity` may still be
    /// used (the key's lifetime has not ended and the key server has not revoked it).
    /// Asked before every request, so it must be cheap (a local lookup).
    fn is_current(&self, identity: &str) -> bool;
}
