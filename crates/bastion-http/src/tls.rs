//! The HTTP binding over TLS (TS-0003 8.2, 10.2; TS-0009 over `https`): accepts TCP
//! connections, runs the security-association handshake with [`bastion_tls::TlsServer`],
//! and serves the same router as the plain listener on the resulting stream.
//! [`serve_router_tls`] is that machinery for any router; the DAS serves its own on it.
//!
//! ```text
//!  listen::accept_loop ─► handshake slot + TlsServer::associate (≤ HANDSHAKE_TIMEOUT
//!                                              together) ─► (SslStream, Association)
//!                                                                        │
//!   per request:  Association::admit(Authorization) ── Revoked ─► 4107 + Connection: close
//!                 (credential revoked in the registry, or certificate on a reloaded CRL)
//!                 ── no / rejected HTTP credentials (server-authenticated TLS) ─► 4107
//!                        │ Ok(originator)
//!                        ▼
//!   extensions: ConnectInfo(peer), Listener(https), SaIdentity(originator), SaPeer
//!                                        ─► router() ─► request_context ─► Cse::handle
//! ```
//!
//! How an association's credential becomes that identity, and whether it is still
//! valid, is [`bastion_tls::Association`]'s, shared with every binding over TLS. The
//! identity reaches the core through [`crate::request_context`] as
//! `RequestContext::new(peer, Some(originator))`; the core enforces `From` against it
//! (4106) and sets `rq_authn`. Only this module inserts [`SaIdentity`], so nothing a
//! plain-HTTP client sends can claim one. Revocation is checked before every request, so
//! a credential revoked while a connection is kept alive (in the credential registry, or
//! a certificate on a CRL reloaded since the handshake) stops working on its next
//! request: the answer is 4107 and the connection is closed.
//!
//! A router that needs the TLS session itself (keying material exported from it, state
//! that lives as long as the association) is served with [`serve_router_tls_with`] and a
//! [`SessionExtensions`] hook, run once per connection after the handshake; the MEF
//! exports its enrolment key there.

use crate::listen::{self, Busy, Gate, TimedIo, Timeouts};
use crate::{router, HttpLimits};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response};
use axum::Router;
use bastion_core::{Cse, Listener};
use bastion_proto::RequestError;
use bastion_tls::{Refusal, TlsServer};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// How long a client may take to complete the TLS handshake, waiting for a handshake slot
/// ([`Gate`]) included.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The originator (AE-ID, CSE-ID or Credential-ID) bound to the security association a
/// request arrived on. Inserted by [`serve_router_tls`] only, so a router that reads it
/// (the CSE's, the DAS's) knows the identity was authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaIdentity(pub String);

/// The peer the handshake authenticated (framework, credential, binding), for routers
/// whose rules depend on more than the originator (the EST server: which certificate a
/// renewal comes over). Inserted by [`serve_router_tls`] only, beside [`SaIdentity`], on
/// associations authenticated by the handshake.
#[derive(Clone, Debug)]
pub struct SaPeer(pub Arc<bastion_tls::PeerIdentity>);

/// Serves the CSE over TLS on `listener` until the future is dropped, counting connections
/// and handshakes against `gate` (shared with the plain listener). Handshake failures are
/// logged (never with key material) and end that connection only.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<TlsServer>,
    cse: Arc<Cse>,
    limits: HttpLimits,
    gate: Gate,
) -> std::io::Result<()> {
    let from = cse.config().cse_id.clone();
    let app = router(cse, limits);
    serve_router_tls(listener, tls, app, limits.timeouts, gate, Some(from)).await
}

/// What a router needs from the TLS session of a connection itself (keying material
/// exported from it, state that lives as long as the association), computed once right
/// after the handshake and added to the extensions of every request on that connection.
/// `None` ends the connection before any request: the hook could not do its part (the
/// hook logs why). The MEF uses it for the enrolment key of `EXPORTER-oneM2M-Bootstrap`.
pub type SessionExtensions = Arc<
    dyn Fn(&openssl::ssl::SslRef, &bastion_tls::Association) -> Option<axum::http::Extensions>
        + Send
        + Sync,
>;

/// Serves `app` over TLS on `listener` until the future is dropped: connections through
/// the one accept loop under `gate`, the handshake under a handshake slot and
/// [`HANDSHAKE_TIMEOUT`], [`TimedIo`]'s `timeouts`, the revocation check before every
/// request (4107 and `Connection: close`, answered `From` = `from` when given), and the
/// extensions `ConnectInfo(peer)`, [`Listener`] (`https`) and [`SaIdentity`] on every
/// request that passes. Used
/// by the CSE's TLS listener ([`serve_tls`]) and the DAS's.
pub async fn serve_router_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<TlsServer>,
    app: Router,
    timeouts: Timeouts,
    gate: Gate,
    from: Option<String>,
) -> std::io::Result<()> {
    serve_router_tls_with(listener, tls, app, timeouts, gate, from, None).await
}

/// [`serve_router_tls`], with the extensions `session` computes from each connection's
/// TLS session added to every request on it.
pub async fn serve_router_tls_with(
    listener: tokio::net::TcpListener,
    tls: Arc<TlsServer>,
    app: Router,
    timeouts: Timeouts,
    gate: Gate,
    from: Option<String>,
    session: Option<SessionExtensions>,
) -> std::io::Result<()> {
    let handshakes = gate.clone();
    let local = Listener {
        scheme: "https",
        local: listener.local_addr()?,
    };
    listen::accept_loop(listener, gate, "tls", move |tcp, peer| {
        let tls = tls.clone();
        let app = app.clone();
        let handshakes = handshakes.clone();
        let from = from.clone();
        let session = session.clone();
        async move {
            let handshake = async {
                let slot = handshakes.handshake().await;
                let accepted = tls.associate(tcp).await;
                drop(slot);
                accepted
            };
            let (stream, association) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await
            {
                Ok(Ok(accepted)) => accepted,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            match association.identity() {
                Some(identity) => tracing::debug!(
                    %peer,
                    framework = ?identity.framework(),
                    originator = identity.originator(),
                    "security association established"
                ),
                None => tracing::debug!(
                    %peer,
                    "server-authenticated association established: requests authenticate by HTTP credentials"
                ),
            }
            let per_session = match &session {
                Some(hook) => match hook(stream.ssl(), &association) {
                    Some(extensions) => extensions,
                    None => return,
                },
                None => axum::http::Extensions::new(),
            };
            let busy = Busy::default();
            let io = TimedIo::new(stream, timeouts, busy.clone());
            // Shared by every request of the connection: one clone per connection.
            let peer_identity = association.identity().cloned().map(Arc::new);
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                // Checked once the request head is parsed, before the router runs; the
                // refusal is built here, so a served request clones nothing for it.
                let authorization = request
                    .headers()
                    .get(axum::http::header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes);
                let admitted = association
                    .admit(authorization)
                    .map(|originator| SaIdentity(originator.into_owned()))
                    .map_err(|why| refused(why, from.as_deref(), request.headers()));
                let app = app.clone();
                let per_session = per_session.clone();
                let handling = busy.enter();
                let sa_peer = peer_identity.clone().map(SaPeer);
                async move {
                    let identity = match admitted {
                        Ok(identity) => identity,
                        Err((why, refusal)) => {
                            tracing::info!(%peer, reason = %why, "request refused: 4107");
                            return Ok::<_, Infallible>(refusal);
                        }
                    };
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request.extensions_mut().insert(local);
                    request.extensions_mut().insert(identity);
                    request.extensions_mut().extend(per_session);
                    if let Some(sa_peer) = sa_peer {
                        request.extensions_mut().insert(sa_peer);
                    }
                    let response = app.oneshot(request.map(axum::body::Body::new)).await;
                    drop(handling);
                    response
                }
            });
            if let Err(e) = listen::http1()
                .serve_connection(TokioIo::new(io), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "TLS connection ended with an error");
            }
        }
    })
    .await
}

/// The answer to a request the association does not admit: 4107 (security association
/// required) with the reason. A revoked credential also ends the connection (establish
/// a new association); missing or rejected HTTP credentials leave it open.
fn refused(
    why: Refusal,
    from: Option<&str>,
    headers: &axum::http::HeaderMap,
) -> (Refusal, Response<axum::body::Body>) {
    let echoed = bastion_proto::wire::http::Echoed::from_headers(headers);
    let mut r = echoed.error(&RequestError::SecurityAssociationRequired(
        why.to_string().into(),
    ));
    r.fr = from.map(str::to_owned);
    let mut http = crate::encode(&r);
    if why == Refusal::Revoked {
        http.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    (why, http)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_answer_is_4107_and_closes() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-m2m-ri", HeaderValue::from_static("r-7"));
        headers.insert("x-m2m-rvi", HeaderValue::from_static("4"));
        headers.insert("x-m2m-rst", HeaderValue::from_static("20991231T000000"));
        let (_, http) = refused(Refusal::Revoked, Some("/id-in"), &headers);
        assert_eq!(http.status(), 403);
        assert_eq!(http.headers()["x-m2m-rsc"], "4107");
        assert_eq!(http.headers()["connection"], "close");
        assert_eq!(http.headers()["x-m2m-ri"], "r-7");
        assert_eq!(http.headers()["x-m2m-rvi"], "4");
        assert_eq!(http.headers()["x-m2m-rst"], "20991231T000000");
    }

    #[test]
    fn missing_http_credentials_are_4107_on_an_open_connection() {
        for why in [
            Refusal::HttpCredentialMissing,
            Refusal::HttpCredentialRejected,
        ] {
            let (_, http) = refused(why, Some("/id-in"), &axum::http::HeaderMap::new());
            assert_eq!(http.headers()["x-m2m-rsc"], "4107");
            assert!(http.headers().get("connection").is_none());
        }
    }
}
