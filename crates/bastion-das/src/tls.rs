//! The DAS Server over TLS (TS-0003 8.2): the security association authenticates whoever
//! asks, by PSK or certificate, with [`bastion_tls::TlsServer`]; every request on it
//! carries [`Requester::Association`] with the identity the association is bound to.
//!
//! ```text
//!  TcpListener ─accept─► TlsServer::accept (≤ HANDSHAKE_TIMEOUT) ─► (SslStream, PeerIdentity)
//!    per request: tls.is_revoked(identity)? ── yes ─► 4107 + Connection: close
//!                 no ─► extension Requester::Association(originator) ─► server::router
//! ```
//!
//! The same shape as the CSE's TLS listener (`bastion_http::tls`), serving the DAS
//! router instead of the CSE's.

use crate::server::{router, Requester};
use crate::Das;
use axum::http::{HeaderValue, Request};
use bastion_proto::{RequestError, Response as Primitive};
use bastion_tls::TlsServer;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the DAS over TLS on `listener` until the future is dropped or accepting fails.
/// Handshake failures end that connection only and are logged without key material.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<TlsServer>,
    das: Arc<Das>,
) -> std::io::Result<()> {
    let app = router(das);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => return Err(e),
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let (stream, identity) =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
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
            let requester = Requester::Association(identity.originator().to_owned());
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                let revoked = tls.is_revoked(&identity);
                let app = app.clone();
                let requester = requester.clone();
                async move {
                    if revoked {
                        tracing::info!(%peer, "request on a revoked security association refused");
                        return Ok::<_, Infallible>(revoked_answer());
                    }
                    request.extensions_mut().insert(requester);
                    app.oneshot(request.map(axum::body::Body::new)).await
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "TLS connection ended with an error");
            }
        });
    }
}

/// 4107 with `Connection: close`: the association's credential was revoked.
fn revoked_answer() -> axum::response::Response {
    let mut r = Primitive::error(
        &RequestError::SecurityAssociationRequired(
            "the security association's credential was revoked".into(),
        ),
        String::new(),
    );
    r.rvi = Some("3".to_owned());
    let mut http = crate::server::encode(&r);
    http.headers_mut().insert(
        axum::http::header::CONNECTION,
        HeaderValue::from_static("close"),
    );
    http
}

/// Accept errors that concern one connection, not the listener.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}
