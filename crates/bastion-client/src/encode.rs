//! Request primitive → HTTP request and HTTP response → response primitive, as this
//! client sends and reads them: the TS-0009 mapping is [`bastion_proto::wire::http`];
//! here it gains the authority it connects to, its own `rqi` and target path.

use crate::{Body, ClientError, Endpoint};
use bastion_proto::wire::http::{self as mapping, ResponseError};
use bastion_proto::wire::Serialization;
use bastion_proto::{Request, Response};
use bytes::Bytes;
use http::header::HeaderValue;

fn header_value(name: &str, value: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(value)
        .map_err(|_| ClientError::InvalidRequest(format!("{name} is not a valid header value")))
}

/// `req` as an HTTP request to `endpoint` with request identifier `rqi`; `base_path`,
/// when the target URI has one, replaces the path `to` maps to.
pub(crate) fn request(
    endpoint: &Endpoint,
    base_path: Option<&str>,
    req: &Request,
    rqi: &str,
    ser: Serialization,
) -> Result<http::Request<Body>, ClientError> {
    let mapped = mapping::encode_request(req, ser)
        .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
    let (mut parts, body) = mapped.into_parts();
    if let Some(path) = base_path {
        let path_and_query = match parts.uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        parts.uri = http::Uri::builder()
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| ClientError::InvalidRequest(format!("target path: {e}")))?;
    }
    let host = if endpoint.host.contains(':') {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    };
    parts
        .headers
        .insert(http::header::HOST, header_value("Host", &host)?);
    parts
        .headers
        .insert(mapping::header::RI, header_value("rqi", rqi)?);
    Ok(http::Request::from_parts(
        parts,
        Body::new(Bytes::from(body)),
    ))
}

/// A received response (its body read to the end) as a response primitive.
pub(crate) fn response(
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<Response, ClientError> {
    mapping::decode_response(parts.status, &parts.headers, body).map_err(|e| match e {
        ResponseError::Malformed(why) => ClientError::MalformedResponse(why),
        ResponseError::UnknownRsc(code) => ClientError::UnknownRsc(code),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bastion_proto::Operation;

    #[test]
    fn ts0009_6_4_headers_and_method() {
        let endpoint = Endpoint {
            scheme: "http".into(),
            host: "127.0.0.1".into(),
            port: 1,
        };
        let req = Request {
            op: Some(Operation::Create),
            to: "cse-in".into(),
            fr: Some("Cae".into()),
            ty: Some(3),
            pc: Some(serde_json::json!({"m2m:cnt": {}})),
            tkns: vec!["a.b.c".into(), "d.e.f".into()],
            rt_nu: Some(vec!["http://a".into(), "http://b".into()]),
            ..Request::default()
        };
        let http = request(&endpoint, None, &req, "r1", Serialization::Json).unwrap();
        assert_eq!(http.method(), http::Method::POST);
        assert_eq!(http.uri().path(), "/cse-in");
        let h = http.headers();
        assert_eq!(h["content-type"], "application/json;ty=3");
        assert_eq!(h["authorization"], "a.b.c+d.e.f");
        assert_eq!(h["x-m2m-rtu"], "http://a&http://b");
        assert_eq!(h["x-m2m-ri"], "r1");
        assert_eq!(h["x-m2m-rvi"], "3");
        assert_eq!(h["host"], "127.0.0.1:1");
        let notify = Request {
            op: Some(Operation::Notify),
            to: "Cdas".into(),
            ..Request::default()
        };
        let http = request(&endpoint, Some("/das"), &notify, "r2", Serialization::Json).unwrap();
        assert_eq!(http.method(), http::Method::POST);
        assert_eq!(http.uri().path(), "/das");
        assert_eq!(http.headers()["content-type"], "application/json");
        let no_ty = Request {
            op: Some(Operation::Create),
            ..Request::default()
        };
        assert!(matches!(
            request(&endpoint, None, &no_ty, "r3", Serialization::Json),
            Err(ClientError::InvalidRequest(_))
        ));
    }

    #[test]
    fn ts0004_7_4_8_notification_in_the_asked_serialization() {
        let endpoint = Endpoint {
            scheme: "http".into(),
            host: "127.0.0.1".into(),
            port: 1,
        };
        let pc = serde_json::json!({"m2m:sgn": {"sur": "cse-in/s", "vrq": true}});
        let notify = Request {
            op: Some(Operation::Notify),
            to: "Cae".into(),
            pc: Some(pc.clone()),
            ..Request::default()
        };
        let http = request(&endpoint, Some("/n"), &notify, "r", Serialization::Cbor).unwrap();
        assert_eq!(http.headers()["content-type"], "application/cbor");
        assert_eq!(http.headers()["accept"], "application/cbor");
        let body = Serialization::Cbor.encode_pc(&pc).unwrap();
        assert_eq!(Serialization::Cbor.decode_pc(&body).unwrap(), pc);
        // A response is read in the serialization its Content-Type names.
        let xml = Serialization::Xml
            .encode_pc(&serde_json::json!({"m2m:dbg": "x"}))
            .unwrap();
        let (parts, ()) = http::Response::builder()
            .header("x-m2m-rsc", "4000")
            .header("content-type", "application/vnd.onem2m-res+xml")
            .body(())
            .unwrap()
            .into_parts();
        let resp = response(&parts, &xml).unwrap();
        assert_eq!(resp.pc, Some(serde_json::json!({"m2m:dbg": "x"})));
    }
}
