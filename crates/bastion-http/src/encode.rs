//! Response primitive → HTTP response (TS-0009 §6.3, §6.4), its content in the
//! negotiated serialization.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response as HttpResponse;
use bastion_proto::wire::Serialization;
use bastion_proto::{RequestError, Response};

fn header(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(value).ok()
}

/// [`encode_as`] in JSON, for answers given before any negotiation.
pub fn encode(resp: &Response) -> HttpResponse {
    encode_as(resp, Serialization::Json)
}

/// Encodes a response primitive: status from the RSC table, X-M2M-RSC always, `rqi`/`rvi`
/// echoed, the content in `ser`. Content that `ser` cannot represent (a `con` object
/// whose member names are no XML names) is answered 5207 NOT_ACCEPTABLE instead.
pub fn encode_as(resp: &Response, ser: Serialization) -> HttpResponse {
    let body = match resp.pc.as_ref().map(|pc| ser.encode_pc(pc)) {
        Some(Ok(body)) => body,
        None => Vec::new(),
        Some(Err(why)) => {
            let mut refused = Response::error(
                &RequestError::NotAcceptable(why.to_string().into()),
                resp.rqi.clone(),
            );
            refused.rvi.clone_from(&resp.rvi);
            refused.fr.clone_from(&resp.fr);
            return encode_as(&refused, ser);
        }
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
        h.insert("content-type", HeaderValue::from_static(ser.media_type()));
    }
    out
}
