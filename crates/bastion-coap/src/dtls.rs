//! [`CoapsBinding`]: CoAP over DTLS (`coaps://`, TS-0008 7 with TS-0003 10.2). It only
//! moves datagrams between `bastion_tls`'s DTLS sessions and the same
//! [`CoapEndpoint`] the plain-UDP loop uses: each session's decrypted datagrams are
//! handled with `Some(association)`, and the answers are encrypted into the same session
//! (TS-0008 7: an answer uses its request's session).
//!
//! The association decides the originator exactly as over TLS: the endpoint answers a
//! revoked credential 4107, and this loop then drops the session, so that the peer has
//! to handshake again (and is refused, its credential being revoked).

use crate::endpoint::CoapEndpoint;
use crate::outbound::Outbound;
use crate::CoapConfig;
use bastion_core::{Binding, Cse, Listener};
use bastion_tls::{DtlsServer, DtlsSession};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// The CoAP listener over DTLS (`coaps://`).
pub struct CoapsBinding {
    server: DtlsServer,
    config: CoapConfig,
    local: SocketAddr,
}

/// Binds the DTLS socket at `addr`; handshakes are judged by `tls` (the HTTPS listener's
/// server: one credential store, one set of frameworks and CRLs).
pub async fn bind_dtls(
    addr: SocketAddr,
    tls: Arc<bastion_tls::TlsServer>,
    limits: bastion_tls::DtlsLimits,
    config: CoapConfig,
) -> Result<CoapsBinding, bastion_tls::DtlsError> {
    let server = DtlsServer::bind(addr, tls, limits).await?;
    let local = server.local_addr();
    Ok(CoapsBinding {
        server,
        config,
        local,
    })
}

#[async_trait::async_trait]
impl Binding for CoapsBinding {
    fn listener(&self) -> Listener {
        Listener {
            scheme: "coaps",
            local: self.local,
        }
    }

    async fn serve(mut self: Box<Self>, cse: Arc<Cse>) -> io::Result<()> {
        // The endpoint's outbound table stays empty: this CSE sends no requests of its
        // own from the DTLS socket (docs/bindings.md, "coaps targets").
        let outbound = Arc::new(Outbound::new(self.config.max_pending));
        let endpoint = Arc::new(CoapEndpoint::with_outbound(
            cse,
            self.config.clone(),
            self.listener(),
            outbound,
        ));
        tracing::info!(addr = %self.local, "serving CoAP requests over DTLS");
        while let Some(session) = self.server.accept().await {
            tokio::spawn(serve_session(endpoint.clone(), session));
        }
        Err(io::Error::other("the DTLS server loop stopped"))
    }
}

/// One session's requests, one at a time (the peer's sessions are bounded by the DTLS
/// limits, its queued datagrams by the session queue).
async fn serve_session(endpoint: Arc<CoapEndpoint>, mut session: DtlsSession) {
    let peer = session.peer();
    while let Some(datagram) = session.recv().await {
        let association = session.association();
        // Decided before the request is handled: a credential revoked while it is being
        // answered must not end the session after a success the peer was never told
        // about; its next request is answered 4107 and then the session ends.
        let admitted = association.originator().is_ok();
        for answer in endpoint
            .handle_datagram(&datagram, peer, Some(association))
            .await
        {
            if let Err(e) = session.send(&answer).await {
                tracing::debug!(%peer, error = %e, "a CoAPS answer could not be sent");
            }
        }
        if !admitted {
            // Answered 4107 (or no originator at all): the association is over.
            tracing::info!(%peer, "DTLS session dropped: its credential no longer admits it");
            return;
        }
    }
}
