//! HTTP request → request primitive (TS-0009 §6.2; core-bindings.md §4.1-§4.4) as the
//! server receives it: the body read within its size and time bounds, then mapped by
//! [`bastion_proto::wire::http`] (method, path, headers, query, body and `Accept`).

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request as HttpRequest};
use bastion_proto::wire::http as mapping;
use bastion_proto::wire::Serialization;
use bastion_proto::{Request, RequestError};
use http_body_util::{BodyExt, Limited};

/// A request that could not be decoded, with what is known for echoing.
#[derive(Debug)]
pub struct DecodeFailure {
    pub error: RequestError,
    pub rqi: String,
    pub rvi: Option<String>,
    /// The body was not read to its end, so the connection cannot carry another request.
    pub close_connection: bool,
    /// The serialization to answer in: the negotiated one when `Accept` was understood,
    /// else JSON.
    pub answer: Serialization,
}

/// A decoded request and the serialization its response is to use.
#[derive(Debug)]
pub struct Decoded {
    pub request: Request,
    pub answer: Serialization,
}

/// Decodes a whole HTTP request, reading at most `max_body` bytes of body, for at most
/// `body_timeout` (a stalled body is 4008 and ends the connection).
pub async fn decode(
    http: HttpRequest<Body>,
    max_body: usize,
    body_timeout: std::time::Duration,
) -> Result<Decoded, DecodeFailure> {
    let (parts, body) = http.into_parts();
    let (rqi, rvi) = mapping::echo_ids(&parts.headers);
    // The answer's serialization is settled first so that even a failure below is
    // reported in the one the client asked for.
    let answer = mapping::answer_serialization(&parts.headers).unwrap_or(Serialization::Json);
    let fail = |error: RequestError| DecodeFailure {
        error,
        rqi: rqi.clone(),
        rvi: rvi.clone(),
        close_connection: false,
        answer,
    };
    let fail_unread = |error: RequestError| DecodeFailure {
        close_connection: true,
        ..fail(error)
    };
    let (mut req, ct) = mapping::decode_request_head(&parts.method, &parts.uri, &parts.headers)
        .map_err(fail_unread)?;
    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return Err(fail_unread(too_large(max_body)));
    }
    // No body (most reads): no timer to set up.
    let bytes = if hyper::body::Body::is_end_stream(&body) {
        bytes::Bytes::new()
    } else {
        read_body(body, max_body, body_timeout)
            .await
            .map_err(fail_unread)?
    };
    req.pc = mapping::decode_body(ct.as_ref(), &bytes).map_err(fail)?;
    Ok(Decoded {
        request: req,
        answer,
    })
}

/// The whole body, at most `max_body` bytes (more is 4000), within `body_timeout` (later
/// is 4008). Either failure leaves body bytes unread: the connection should end after the
/// answer. Public for the other routers served on [`crate::listen`] (the DAS).
pub async fn read_body(
    body: Body,
    max_body: usize,
    body_timeout: std::time::Duration,
) -> Result<bytes::Bytes, RequestError> {
    let collected = tokio::time::timeout(body_timeout, Limited::new(body, max_body).collect())
        .await
        .map_err(|_| {
            RequestError::RequestTimeout(
                format!(
                    "request body not received within {} ms",
                    body_timeout.as_millis()
                )
                .into(),
            )
        })?;
    Ok(collected.map_err(|_| too_large(max_body))?.to_bytes())
}

fn too_large(max: usize) -> RequestError {
    RequestError::bad_request(format!("request body exceeds {max} bytes"))
}

/// Everything but the body: method, path, `X-M2M-*` and other headers, query. Public so
/// that the fuzz target `http_head` reaches it without an async body.
pub fn decode_head(
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<Request, RequestError> {
    mapping::decode_request_head(method, uri, headers).map(|(req, _)| req)
}
