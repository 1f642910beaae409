//! Response primitive → HTTP response (TS-0009 §6.3, §6.4).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response as HttpResponse;
use bastion_proto::Response;

fn header(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(value).ok()
}

/// Encodes a response primitive: status from the RSC table, X-M2M-RSC always, `rqi`/`rvi`
/// echoed, the content as JSON.
pub fn encode(resp: &Response) -> HttpResponse {
    let body = match &resp.pc {
        Some(pc) => serde_json::to_vec(pc).unwrap_or_default(),
        None => Vec::new(),
    };
    let has_body = !body.is_empty();
    let mut out = HttpResponse::new(Body::from(body));
    *out.status_mut() =
        StatusCode::from_u16(resp.rsc.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = out.headers_mut();
    h.insert("x-m2m-rsc", HeaderValue::from(resp.rsc.code()));
    if let Some(v) = header(&resp.rqi) {
        h.insert("x-m2m-ri", v);
    }
    if let Some(v) = resp.rvi.as_deref().and_then(header) {
        h.insert("x-m2m-rvi", v);
    }
    if let Some(v) = resp.ot.as_deref().and_then(header) {
        h.insert("x-m2m-ot", v);
    }
    if let Some(v) = resp.vsi.as_deref().and_then(header) {
        h.insert("x-m2m-vsi", v);
    }
    if let Some(status) = resp.cnst {
        h.insert("x-m2m-cts", HeaderValue::from(u16::from(status)));
    }
    if let Some(v) = resp.content_location.as_deref().and_then(header) {
        h.insert("content-location", v);
    }
    if has_body {
        h.insert("content-type", HeaderValue::from_static("application/json"));
    }
    out
}
