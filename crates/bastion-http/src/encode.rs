//! Response primitive → HTTP response (TS-0009 §6.3, §6.4) as axum sends it; the mapping
//! itself is [`bastion_proto::wire::http::encode_response`].

use axum::body::Body;
use axum::response::Response as HttpResponse;
use bastion_proto::wire::{http as mapping, Serialization};
use bastion_proto::Response;

/// [`encode_as`] in JSON, for answers given before any negotiation.
pub fn encode(resp: &Response) -> HttpResponse {
    encode_as(resp, Serialization::Json)
}

/// Encodes a response primitive with its content in `ser` (5207 when `ser` cannot
/// represent it).
pub fn encode_as(resp: &Response, ser: Serialization) -> HttpResponse {
    mapping::encode_response(resp, ser).map(Body::from)
}
