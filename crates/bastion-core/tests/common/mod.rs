//! What the core's integration tests share: a request primitive as a binding would hand
//! it over, and sending it with no transport facts.
#![allow(dead_code)] // each test file uses its own part

use bastion_core::{Cse, RequestContext};
use bastion_proto::{Operation, Request, Response};
use serde_json::Value;

/// A request from `fr` with a fixed `rqi` and release 3.
pub fn request(op: Operation, to: &str, fr: &str, ty: Option<u64>, pc: Option<Value>) -> Request {
    Request {
        op: Some(op),
        to: to.to_owned(),
        fr: Some(fr.to_owned()),
        rqi: Some("r1".to_owned()),
        rvi: Some("3".to_owned()),
        ty,
        pc,
        ..Request::default()
    }
}

/// Handles `req` as one received outside any security association, peer unknown.
pub async fn send(cse: &Cse, req: Request) -> Response {
    cse.handle(req, &RequestContext::new(None, None)).await
}
