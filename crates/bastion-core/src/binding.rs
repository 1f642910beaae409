//! The CSE's inbound port: what a protocol binding (TS-0009 HTTP, and later TS-0010 MQTT,
//! TS-0008 CoAP, TS-0020 WebSocket) implements so that `bastion serve` can start it, and
//! what it tells the pipeline about each request.
//!
//! ```text
//!   protocol message ──binding decodes──► Request + RequestContext ──► Cse::handle
//!                                          peer, association identity,      │
//!                                          Listener (binding, local addr)   ▼
//!   protocol message ◄──binding encodes── Response ◄────────────────────────┘
//! ```
//!
//! A binding owns its listener, its protocol's framing and its serialization choice; the
//! core sees only primitives and the [`RequestContext`]. The identity a security
//! association authenticated comes from `bastion_tls::Association`, the one place that
//! maps a PSK identity or a certificate to an originator and checks it is not revoked;
//! a binding over TLS or DTLS asks it before every request and answers 4107 when it is.

use crate::{Cse, RequestContext};
use std::net::SocketAddr;
use std::sync::Arc;

/// The listener a request arrived on: which binding, and the local address it is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    /// The URI scheme of the binding's point of access (`http`, `https`, `mqtt`, …).
    pub scheme: &'static str,
    /// The address the listener is bound to.
    pub local: SocketAddr,
}

impl Listener {
    /// The point of access this listener serves, as `poa` advertises it
    /// (`scheme://addr:port`).
    pub fn point_of_access(&self) -> String {
        format!("{}://{}", self.scheme, self.local)
    }
}

/// One configured listener of one protocol binding, bound and ready to serve.
///
/// `serve` runs until its future is dropped (the server stops) or the listener fails;
/// for each request it builds a [`RequestContext`] carrying the transport peer, the
/// association's identity (if any) and [`Binding::listener`], calls [`Cse::handle`] and
/// sends the response back. Every failure to decode a message is answered with the
/// oneM2M error it maps to, never by dropping the request silently or panicking.
#[async_trait::async_trait]
pub trait Binding: Send {
    /// The listener this binding serves.
    fn listener(&self) -> Listener;

    /// Serves `cse` on the listener until the future is dropped or the listener fails.
    async fn serve(self: Box<Self>, cse: Arc<Cse>) -> std::io::Result<()>;
}

impl RequestContext {
    /// The same context, naming the listener the request arrived on.
    pub fn on(mut self, listener: Listener) -> RequestContext {
        self.listener = Some(listener);
        self
    }

    /// What the binding knew, without what the pipeline derived from it (authentication,
    /// roles, tokens): the start of a request the CSE issues again on the originator's
    /// behalf (group members, non-blocking tasks) and of the pipeline's own checks.
    pub fn as_received(&self) -> RequestContext {
        RequestContext {
            listener: self.listener,
            ..RequestContext::new(self.peer, self.identity.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_received_part_keeps_peer_identity_and_listener_only() {
        let listener = Listener {
            scheme: "https",
            local: "127.0.0.1:8443".parse().expect("addr"),
        };
        let mut ctx = RequestContext::new(
            Some("127.0.0.1:5000".parse().expect("addr")),
            Some("Cae".to_owned()),
        )
        .on(listener);
        ctx.authenticated = true;
        ctx.roles.push("r1".into());
        let received = ctx.as_received();
        assert_eq!(received.peer, ctx.peer);
        assert_eq!(received.identity.as_deref(), Some("Cae"));
        assert_eq!(received.listener, Some(listener));
        assert!(!received.authenticated);
        assert!(received.roles.is_empty());
        assert_eq!(listener.point_of_access(), "https://127.0.0.1:8443");
    }
}
