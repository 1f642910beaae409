//! The DAS Server AE's HTTP binding (TS-0009 §6; core-bindings.md §4): it accepts only a
//! NOTIFY (POST without `ty` in Content-Type) carrying `m2m:seci` `sit` = 1, on any path.
//!
//! Every failure is a oneM2M error with `X-M2M-RSC` and `{"m2m:dbg": reason}`:
//!
//! | input | rsc |
//! |---|---|
//! | method other than POST, or POST with `ty` (CREATE) | 4005 |
//! | `X-M2M-Origin` or `X-M2M-RI` missing / repeated / not ASCII | 4000 |
//! | body without a JSON Content-Type | 4015 |
//! | body empty, too large, not strict JSON, not a securityInfo `sit` 1 | 4000 |
//! | body not complete within the body timeout (the connection then ends) | 4008 |
//! | requester neither a trusted CSE nor the originator | 4103 |
//! | over TLS: `X-M2M-Origin` other than the association's identity | 4103 |
//! | over plain HTTP without `--insecure` | 4107 |
//!
//! Who asks (the requester the policy's `trusted_cses` and the indirect flow are judged
//! by) is the AE-ID / CSE-ID the request's security association is bound to
//! ([`Requester::Association`], from the `bastion_http::tls::SaIdentity` that only the
//! TLS listener inserts); `X-M2M-Origin` must name it. A plain listener cannot
//! authenticate anyone: its requests are refused with 4107 unless it was started
//! insecure, when `X-M2M-Origin` is taken at its word ([`Requester::Unauthenticated`]).
//!
//! Taking and keeping connections (accept loop, caps, header and idle timeouts) is
//! bastion-http's ([`serve`] here, [`crate::tls`]); the body timeout is applied where the
//! body is read, with `bastion_http::read_body`.

use crate::Das;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request as HttpRequest};
use axum::response::Response as HttpResponse;
use axum::Router;
use bastion_http::listen::{self, Gate, Timeouts};
use bastion_http::tls::SaIdentity;
use bastion_proto::security_info::SecurityInfo;
use bastion_proto::wire::http as mapping;
use bastion_proto::{json, RequestError, Rsc};
use std::sync::Arc;
use std::time::Duration;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const JSON_TYPES: [&str; 3] = [
    "application/json",
    "application/vnd.onem2m-ntfy+json",
    "application/vnd.onem2m-preq+json",
];

/// Who sent a request, as the transport established it. Without either, the request is
/// refused with 4107.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requester {
    /// The AE-ID / CSE-ID (or Credential-ID) the security association is bound to: the
    /// request carries [`SaIdentity`], which only the TLS listener inserts.
    Association(String),
    /// Plain HTTP on a listener started insecure: `X-M2M-Origin` is trusted.
    Unauthenticated,
}

impl Requester {
    /// The requester of a request with these extensions: the association's identity
    /// first, then a plain listener's insecure mark.
    fn of(extensions: &axum::http::Extensions) -> Option<Requester> {
        match extensions.get::<SaIdentity>() {
            Some(SaIdentity(bound)) => Some(Requester::Association(bound.clone())),
            None => extensions
                .get::<PlainInsecure>()
                .map(|_| Requester::Unauthenticated),
        }
    }
}

/// Request extension of the plain listener started insecure ([`serve`] only).
#[derive(Clone, Copy, Debug)]
struct PlainInsecure;

#[derive(Clone)]
struct AppState {
    das: Arc<Das>,
    /// How long a request body may take to arrive (`Timeouts::body`).
    body_timeout: Duration,
}

/// The router: one handler for every method and path; request bodies are read within
/// `timeouts.body`.
pub fn router(das: Arc<Das>, timeouts: Timeouts) -> Router {
    Router::new().fallback(handle).with_state(AppState {
        das,
        body_timeout: timeouts.body,
    })
}

/// Serves the DAS over plain HTTP on `listener` until the future is dropped, on
/// bastion-http's listener machinery (accept loop, `gate`'s connection cap, `timeouts`).
/// With `insecure`, requests are answered on the strength of their `X-M2M-Origin`;
/// otherwise every request gets 4107 (a security association is required).
pub async fn serve(
    listener: tokio::net::TcpListener,
    das: Arc<Das>,
    insecure: bool,
    timeouts: Timeouts,
    gate: Gate,
) -> std::io::Result<()> {
    let mut app = router(das, timeouts);
    if insecure {
        app = app.layer(axum::Extension(PlainInsecure));
    }
    listen::serve_router(listener, app, timeouts, gate).await
}

/// A refusal, and whether the connection must end after it (body bytes left unread).
struct Refusal {
    error: RequestError,
    close_connection: bool,
}

impl From<RequestError> for Refusal {
    fn from(error: RequestError) -> Refusal {
        Refusal {
            error,
            close_connection: false,
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn handle(State(state): State<AppState>, request: HttpRequest<Body>) -> HttpResponse {
    let echoed = mapping::Echoed::from_headers(request.headers());
    let mut close_connection = false;
    let resp = match answer(&state, request).await {
        Ok(pc) => {
            let mut r = echoed.response(Rsc::Ok);
            r.pc = Some(pc);
            r
        }
        Err(refusal) => {
            let e = refusal.error;
            tracing::info!(rsc = e.rsc().code(), reason = %e, "request refused");
            close_connection = refusal.close_connection;
            echoed.error(&e)
        }
    };
    let mut http = bastion_http::encode(&resp);
    if close_connection {
        // Unread body bytes would be taken for the next request.
        http.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    http
}

async fn answer(
    state: &AppState,
    request: HttpRequest<Body>,
) -> Result<serde_json::Value, Refusal> {
    let das = &state.das;
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let Some(transport) = Requester::of(&parts.extensions) else {
        return Err(RequestError::SecurityAssociationRequired(
            "a DAS Server answers only inside a security association".into(),
        )
        .into());
    };
    let content_type = mapping::content_type(headers)?;
    let has_ty = content_type.as_ref().is_some_and(|ct| ct.ty.is_some());
    if parts.method != Method::POST || has_ty {
        return Err(RequestError::not_allowed(
            "a DAS Server accepts only NOTIFY (POST without ty)",
        )
        .into());
    }
    let requester = mapping::single_header(headers, mapping::header::ORIGIN)?
        .filter(|o| !o.is_empty())
        .ok_or_else(|| RequestError::bad_request("X-M2M-Origin missing"))?;
    bastion_proto::id::validate_originator(&requester)?;
    let requester = match transport {
        Requester::Unauthenticated => requester,
        Requester::Association(bound) => {
            let policy = das.policy();
            if policy.normalize(&requester) != policy.normalize(&bound) {
                return Err(RequestError::NoPrivilege(
                    "X-M2M-Origin does not name the security association's identity".into(),
                )
                .into());
            }
            bound
        }
    };
    if mapping::single_header(headers, mapping::header::RI)?.is_none_or(|r| r.is_empty()) {
        return Err(RequestError::bad_request("X-M2M-RI missing").into());
    }
    let bytes = bastion_http::read_body(body, MAX_BODY_BYTES, state.body_timeout)
        .await
        .map_err(|error| Refusal {
            error,
            close_connection: true,
        })?;
    if bytes.is_empty() {
        return Err(RequestError::bad_request("a securityInfo body is required").into());
    }
    match content_type.map(|ct| ct.media) {
        Some(m) if JSON_TYPES.contains(&m.as_str()) => {}
        _ => {
            return Err(RequestError::UnsupportedMediaType(
                "only JSON serializations are supported".into(),
            )
            .into())
        }
    }
    let pc = json::parse_strict(&bytes)?;
    let dreq = match SecurityInfo::from_pc(&pc) {
        Ok(SecurityInfo::DasRequest(dreq)) => dreq,
        Ok(SecurityInfo::DasResponse(_)) => {
            return Err(RequestError::bad_request(
                "securityInfo sit 2 is a response, not a request",
            )
            .into())
        }
        Err(e) => return Err(RequestError::bad_request(e.to_string()).into()),
    };
    let dres = das.decide(&requester, &dreq, unix_now())?;
    Ok(SecurityInfo::DasResponse(dres).to_pc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requester_comes_from_the_association_first() {
        let mut extensions = axum::http::Extensions::new();
        assert_eq!(Requester::of(&extensions), None);
        extensions.insert(PlainInsecure);
        assert_eq!(Requester::of(&extensions), Some(Requester::Unauthenticated));
        extensions.insert(SaIdentity("/id-in".into()));
        assert_eq!(
            Requester::of(&extensions),
            Some(Requester::Association("/id-in".into()))
        );
    }
}
