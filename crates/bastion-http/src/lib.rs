//! The HTTP binding (TS-0009; core-bindings.md §4): decodes an HTTP request into a
//! request primitive, hands it to the CSE, and encodes the response primitive back.
//!
//! Every failure to decode becomes a oneM2M error response with an exact `X-M2M-RSC`;
//! nothing here answers with a bare HTTP error or panics on client input. The one path
//! outside oneM2M addressing, `/__bastion/explain`, is the admin's explanation API
//! ([`admin`]); it answers with `X-M2M-RSC` too.
//!
//! [`serve`] is the plain listener (no security association); [`tls::serve_tls`] serves
//! the same router over TLS and hands the core the identity bound to the association.
//! Both take connections through [`listen`]: one accept loop, shared caps, timeouts.
//! [`HttpBinding`] and [`HttpsBinding`] are the two as the core's `Binding` port, which
//! `bastion serve` starts; [`request_context`] builds what the core learns of a request.
//! Other servers of the workspace (the DAS of `bastion-das`) serve their own routers on
//! the same machinery: [`listen::serve_router`] and [`tls::serve_router_tls`].
#![forbid(unsafe_code)]

pub mod admin;
mod binding;
mod decode;
mod encode;
pub mod listen;
pub mod tls;

use axum::body::Body;
use axum::extract::State;
use axum::http::Request as HttpRequest;
use axum::response::Response as HttpResponse;
use axum::Router;
use bastion_core::Cse;
use listen::{Gate, Timeouts};
use std::sync::Arc;

pub use binding::{request_context, HttpBinding, HttpsBinding};
pub use decode::{decode, decode_head, read_body, DecodeFailure, Decoded};
pub use encode::{encode, encode_as};

/// Limits applied before a request reaches the CSE.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Header, body and idle timeouts of every connection ([`listen`]).
    pub timeouts: Timeouts,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body_bytes: 1024 * 1024,
            timeouts: Timeouts::default(),
        }
    }
}

#[derive(Clone)]
struct AppState {
    cse: Arc<Cse>,
    limits: HttpLimits,
}

/// The router: one handler for every method and path.
pub fn router(cse: Arc<Cse>, limits: HttpLimits) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(AppState { cse, limits })
}

/// Serves the CSE on `listener` until the future is dropped, under the default caps.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cse: Arc<Cse>,
    limits: HttpLimits,
) -> std::io::Result<()> {
    serve_with(listener, cse, limits, Router::new(), Gate::default()).await
}

/// Like [`serve`], with `extra` routes (e.g. the location PIP's notification receiver)
/// answered before the oneM2M fallback, and connections counted against `gate` (shared
/// with the TLS listener). `extra` must not have a fallback of its own.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    cse: Arc<Cse>,
    limits: HttpLimits,
    extra: Router,
    gate: Gate,
) -> std::io::Result<()> {
    let app = extra.merge(router(cse, limits));
    listen::serve_router(listener, app, limits.timeouts, gate).await
}

async fn handle(State(state): State<AppState>, request: HttpRequest<Body>) -> HttpResponse {
    let ctx = request_context(request.extensions());
    if request.uri().path() == admin::EXPLAIN_PATH {
        return admin::explain(&state.cse, request, &ctx).await;
    }
    match decode(
        request,
        state.limits.max_body_bytes,
        state.limits.timeouts.body,
    )
    .await
    {
        Ok(Decoded { request, answer }) => {
            encode_as(&state.cse.handle(request, &ctx).await, answer)
        }
        Err(failure) => {
            let mut r = failure.echoed.error(&failure.error);
            r.fr = Some(state.cse.config().cse_id.clone());
            let mut http = encode_as(&r, failure.answer);
            if failure.close_connection {
                // Unread body bytes would be taken for the next request: tell the client
                // this connection ends here so it does not reuse it.
                http.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            http
        }
    }
}
