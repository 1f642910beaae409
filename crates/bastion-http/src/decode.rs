//! HTTP request → request primitive (TS-0009 §6.2; core-bindings.md §4.1-§4.4) as the
//! server receives it: the body read within its size and time bounds, then mapped by
//! [`bastion_proto::wire::http`] (method, path, headers, query, body and `Accept`).

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request as HttpRequest};
use bastion_proto::wire::http as mapping;
use bastion_proto::wire::Serialization;
use bastion_proto::{Request, RequestError};
use http_body_util::BodyExt;

/// A request that could not be decoded, with what is known for echoing.
#[derive(Debug)]
pub struct DecodeFailure {
    pub error: RequestError,
    /// `rqi`, `rvi` and `rset` as far as they could be read.
    pub echoed: mapping::Echoed,
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
    let echoed = mapping::Echoed::from_headers(&parts.headers);
    // The answer's serialization is settled first so that even a failure below is
    // reported in the one the client asked for.
    let answer = mapping::answer_serialization(&parts.headers).unwrap_or(Serialization::Json);
    let fail = |error: RequestError| DecodeFailure {
        error,
        echoed: echoed.clone(),
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
/// is 4008). After a failure the connection should end with the answer: a slow body is
/// left unread, an oversized one is read only up to a bounded tail. Public for the other routers served on [`crate::listen`] (the DAS).
pub async fn read_body(
    body: Body,
    max_body: usize,
    body_timeout: std::time::Duration,
) -> Result<bytes::Bytes, RequestError> {
    tokio::time::timeout(body_timeout, collect_within(body, max_body))
        .await
        .map_err(|_| {
            RequestError::RequestTimeout(
                format!(
                    "request body not received within {} ms",
                    body_timeout.as_millis()
                )
                .into(),
            )
        })?
}

/// How much of an oversized body is still read (and dropped), as a multiple of the bound.
/// A server that answers and closes while the client is still sending leaves unread bytes
/// in the socket; the kernel then resets the connection and the client may lose the 4000
/// it was sent. Reading a bounded tail lets the answer arrive; a body larger than this is
/// cut off as before.
const DRAIN_FACTOR: usize = 4;

/// Collects the body up to `max_body` bytes. Past the bound nothing more is kept: the rest
/// is read and dropped up to [`DRAIN_FACTOR`] times the bound, then the body is refused.
async fn collect_within(mut body: Body, max_body: usize) -> Result<bytes::Bytes, RequestError> {
    let drain_limit = max_body.saturating_mul(DRAIN_FACTOR);
    // Chunks are kept as they came: a body in one chunk (the usual case) is not copied.
    let mut kept: Vec<bytes::Bytes> = Vec::new();
    let mut received: usize = 0;
    while let Some(frame) = body.frame().await {
        // A body that fails mid-way (the client went away) is refused like one too large,
        // as the size-limited collector did before.
        let frame = frame.map_err(|_| too_large(max_body))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry no content
        };
        received = received.saturating_add(data.len());
        if received <= max_body {
            kept.push(data);
        } else if received > drain_limit {
            break;
        } else {
            kept = Vec::new();
        }
    }
    if received > max_body {
        return Err(too_large(max_body));
    }
    Ok(match kept.as_slice() {
        [only] => only.clone(),
        chunks => chunks.concat().into(),
    })
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
