//! The EST HTTP surface (RFC 7030 3.2.2, 4): `GET /.well-known/est/cacerts`,
//! `GET /.well-known/est/csrattrs`, `POST /.well-known/est/simpleenroll` and
//! `POST /.well-known/est/simplereenroll`, plus the CRL distribution point `GET /crl`
//! (DER, `application/pkix-crl`, RFC 2585).
//!
//! [`router`] is meant for a TLS listener served by `bastion_http::tls::serve_router_tls`
//! (the MEF's, or `bastion est`'s): the enrolee is the [`SaPeer`] that listener's
//! handshake authenticated, so HTTP-based client authentication never enters (TS-0003
//! 8.3.6). [`crl_router`] serves the CRL alone, for a plain listener: a CRL is signed, and
//! CSEs check the signature ([`crate::crl_fetch`]).
//!
//! Bodies: requests `application/pkcs10`, base64 (whitespace ignored), at most
//! [`MAX_BODY`] bytes; answers `application/pkcs7-mime; smime-type=certs-only` or
//! `application/csrattrs`, base64 in lines of 64 characters ending in LF (what `base64 -d` and `openssl base64 -d` read), with
//! `Content-Transfer-Encoding: base64`. Errors: the status of [`EstError::status`] and
//! the reason as `text/plain`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::routing::{get, post};
use axum::Router;
use base64ct::{Base64, Encoding};
use bastion_http::listen::Timeouts;
use bastion_http::tls::SaPeer;
use http::{header, HeaderValue, Response};

use crate::error::EstError;
use crate::service::Est;

/// The largest request body accepted: a base64 P-256 CSR is well under 2 KiB.
pub const MAX_BODY: usize = 16 * 1024;

/// `application/pkcs7-mime; smime-type=certs-only` (RFC 7030 4.1.3, 4.2.3).
pub const PKCS7_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";
/// `application/csrattrs` (RFC 7030 4.5.2).
pub const CSRATTRS: &str = "application/csrattrs";
/// `application/pkcs10` (RFC 7030 4.2.1).
pub const PKCS10: &str = "application/pkcs10";
/// `application/pkix-crl` (RFC 2585 4.2).
pub const PKIX_CRL: &str = "application/pkix-crl";

#[derive(Clone)]
struct Shared {
    est: Arc<Est>,
    timeouts: Timeouts,
}

/// The four EST operations and `/crl`, for a TLS listener.
pub fn router(est: Arc<Est>, timeouts: Timeouts) -> Router {
    Router::new()
        .route("/.well-known/est/cacerts", get(cacerts))
        .route("/.well-known/est/csrattrs", get(csrattrs))
        .route("/.well-known/est/simpleenroll", post(simpleenroll))
        .route("/.well-known/est/simplereenroll", post(simplereenroll))
        .route("/crl", get(crl))
        .with_state(Shared { est, timeouts })
}

/// `/crl` alone, for a plain CRL distribution listener.
pub fn crl_router(est: Arc<Est>, timeouts: Timeouts) -> Router {
    Router::new()
        .route("/crl", get(crl))
        .with_state(Shared { est, timeouts })
}

fn base64_lines(der: &[u8]) -> String {
    let text = Base64::encode_string(der);
    let mut out = String::with_capacity(text.len() + text.len() / 64 + 1);
    for chunk in text.as_bytes().chunks(64) {
        // Base64 output is ASCII: every chunk boundary is a character boundary.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn ok_base64(content_type: &'static str, der: &[u8]) -> Response<Body> {
    let mut r = Response::new(Body::from(base64_lines(der)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    r
}

fn refused(e: &EstError) -> Response<Body> {
    let mut r = Response::new(Body::from(format!("{e}\n")));
    *r.status_mut() = e.status();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn cacerts(State(s): State<Shared>) -> Response<Body> {
    ok_base64(PKCS7_CERTS_ONLY, &s.est.cacerts())
}

async fn csrattrs(State(s): State<Shared>) -> Response<Body> {
    ok_base64(CSRATTRS, &s.est.csrattrs())
}

async fn crl(State(s): State<Shared>) -> Response<Body> {
    let est = s.est.clone();
    match tokio::task::spawn_blocking(move || est.crl_der()).await {
        Ok(Ok(der)) => {
            let mut r = Response::new(Body::from(der));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(PKIX_CRL));
            r
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "CRL not available");
            refused(&e)
        }
        Err(_) => refused(&EstError::Ledger("CRL task failed".into())),
    }
}

#[derive(Clone, Copy, Debug)]
enum Operation {
    Enrol,
    Reenrol,
}

async fn simpleenroll(State(s): State<Shared>, request: Request) -> Response<Body> {
    enrolment(s, request, Operation::Enrol).await
}

async fn simplereenroll(State(s): State<Shared>, request: Request) -> Response<Body> {
    enrolment(s, request, Operation::Reenrol).await
}

/// The CSR of an enrolment request: content type, size, base64.
async fn csr_of(request: Request, timeouts: Timeouts) -> Result<Vec<u8>, EstError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(PKCS10) {
        return Err(EstError::UnsupportedMediaType);
    }
    let body = bastion_http::read_body(request.into_body(), MAX_BODY, timeouts.body)
        .await
        .map_err(|e| match e {
            bastion_proto::RequestError::RequestTimeout(_) => EstError::BodyTimeout,
            _ => EstError::BodyTooLarge(MAX_BODY),
        })?;
    let text: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    Base64::decode_vec(std::str::from_utf8(&text).map_err(|_| EstError::NotBase64)?)
        .map_err(|_| EstError::NotBase64)
}

async fn enrolment(s: Shared, request: Request, operation: Operation) -> Response<Body> {
    let peer = request.extensions().get::<SaPeer>().map(|p| p.0.clone());
    let outcome = async {
        let peer = peer.clone().ok_or(EstError::NotAuthenticated)?;
        let csr = csr_of(request, s.timeouts).await?;
        let est = s.est.clone();
        // Signing and the durable ledger write block: off the async workers.
        tokio::task::spawn_blocking(move || match operation {
            Operation::Enrol => est.simpleenroll(&peer, &csr),
            Operation::Reenrol => est.simplereenroll(&peer, &csr),
        })
        .await
        .map_err(|_| EstError::Ca("enrolment task failed".into()))?
    }
    .await;
    match outcome {
        Ok(der) => ok_base64(PKCS7_CERTS_ONLY, &der),
        Err(e) => {
            tracing::info!(
                ?operation,
                enrolee = peer.as_ref().map(|p| p.originator()),
                status = e.status().as_u16(),
                reason = %e,
                "enrolment refused"
            );
            refused(&e)
        }
    }
}
