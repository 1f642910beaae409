//! Request primitive → HTTP request and HTTP response → response primitive (TS-0009
//! §6.2-§6.4, the client side of `bastion-http`'s decode/encode).

use crate::{rsc_from_code, Body, ClientError, Endpoint};
use bastion_proto::primitive::ResponseType;
use bastion_proto::wire::{self, Serialization};
use bastion_proto::{Operation, Request, Response};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// Bytes escaped in a path: everything outside the RFC 3986 `pchar` set except `/`.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Bytes escaped in a query value; `+` is escaped because it separates list members.
const QUERY: &AsciiSet = &PATH.add(b'&').add(b'=').add(b'+').add(b'/');

/// The HTTP path of `to` (TS-0009 Table 6.2.2.1-1): `//x` → `/_/x`, `/x` → `/~/x`,
/// `x` → `/x`; the empty `to` → `/`.
pub fn http_path(to: &str) -> String {
    let raw = if let Some(abs) = to.strip_prefix("//") {
        format!("/_/{abs}")
    } else if to.starts_with('/') {
        format!("/~{to}")
    } else {
        format!("/{to}")
    };
    utf8_percent_encode(&raw, PATH).to_string()
}

fn push(out: &mut Vec<String>, key: &str, value: &str) {
    out.push(format!("{key}={}", utf8_percent_encode(value, QUERY)));
}

fn push_list<T: ToString>(out: &mut Vec<String>, key: &str, values: &[T]) {
    if !values.is_empty() {
        let joined: Vec<String> = values
            .iter()
            .map(|v| utf8_percent_encode(&v.to_string(), QUERY).to_string())
            .collect();
        out.push(format!("{key}={}", joined.join("+")));
    }
}

fn rt_number(rt: ResponseType) -> u8 {
    match rt {
        ResponseType::NonBlockingSynch => 1,
        ResponseType::NonBlockingAsynch => 2,
        ResponseType::Blocking => 3,
        ResponseType::FlexBlocking => 4,
        ResponseType::NoResponse => 5,
    }
}

/// The query string (without `?`) of `req` (TS-0009 Table 6.2.2.2-1): request parameters,
/// then filter-criteria members, then attribute conditions. Lists are `+`-joined.
pub fn query_string(req: &Request) -> String {
    let mut q = Vec::new();
    if let Some(rt) = req.rt {
        push(&mut q, "rt", &rt_number(rt).to_string());
    }
    if let Some(v) = &req.rp {
        push(&mut q, "rp", v);
    }
    if let Some(v) = req.rcn {
        push(&mut q, "rcn", &v.to_string());
    }
    if let Some(v) = req.da {
        push(&mut q, "da", &v.to_string());
    }
    if let Some(v) = req.drt {
        push(&mut q, "drt", &v.to_string());
    }
    push_list(&mut q, "rids", &req.rids);
    push_list(&mut q, "tids", &req.tids);
    push_list(&mut q, "ltids", &req.ltids);
    if let Some(v) = req.tqi {
        push(&mut q, "tqi", &v.to_string());
    }
    push_list(&mut q, "atrl", &req.atrl);
    let fc = &req.fc;
    for (key, value) in [
        ("fu", fc.fu),
        ("fo", fc.fo),
        ("sts", fc.sts),
        ("stb", fc.stb),
        ("sza", fc.sza),
        ("szb", fc.szb),
        ("lim", fc.lim),
        ("lvl", fc.lvl),
        ("ofst", fc.ofst),
    ] {
        if let Some(v) = value {
            push(&mut q, key, &v.to_string());
        }
    }
    for (key, value) in [
        ("crb", fc.crb),
        ("cra", fc.cra),
        ("ms", fc.ms),
        ("us", fc.us),
        ("exb", fc.exb),
        ("exa", fc.exa),
    ] {
        if let Some(t) = value {
            push(&mut q, key, &t.format());
        }
    }
    push_list(&mut q, "ty", &fc.ty);
    push_list(&mut q, "chty", &fc.chty);
    push_list(&mut q, "pty", &fc.pty);
    push_list(&mut q, "lbl", &fc.lbl);
    push_list(&mut q, "clbl", &fc.clbl);
    push_list(&mut q, "palb", &fc.palb);
    push_list(&mut q, "cty", &fc.cty);
    if let Some(v) = &fc.arp {
        push(&mut q, "arp", v);
    }
    for (name, value) in &fc.atr {
        push(&mut q, name, value);
    }
    q.join("&")
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(value)
        .map_err(|_| ClientError::InvalidRequest(format!("{name} is not a valid header value")))
}

/// Builds the HTTP request. `base_path` is the target URI's own path, if any.
pub(crate) fn request(
    endpoint: &Endpoint,
    base_path: Option<&str>,
    req: &Request,
    rqi: &str,
    ser: Serialization,
) -> Result<http::Request<Body>, ClientError> {
    let op = req
        .op
        .ok_or_else(|| ClientError::InvalidRequest("op missing".into()))?;
    let method = match op {
        Operation::Create => http::Method::POST,
        Operation::Retrieve => http::Method::GET,
        Operation::Update => http::Method::PUT,
        Operation::Delete => http::Method::DELETE,
        Operation::Notify => http::Method::POST,
    };
    let ty = match (op, req.ty) {
        (Operation::Create, Some(ty)) => Some(ty),
        (Operation::Create, None) => {
            return Err(ClientError::InvalidRequest("CREATE needs ty".into()))
        }
        _ => None,
    };
    let path = match base_path {
        Some(p) => p.to_owned(),
        None => http_path(&req.to),
    };
    let query = query_string(req);
    let path_and_query = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let uri = http::Uri::builder()
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| ClientError::InvalidRequest(format!("target path: {e}")))?;
    let host = if endpoint.host.contains(':') {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    };

    let body = match &req.pc {
        Some(pc) => Bytes::from(
            ser.encode_pc(pc)
                .map_err(|e| ClientError::InvalidRequest(e.to_string()))?,
        ),
        None => Bytes::new(),
    };
    let mut out = http::Request::new(Body::new(body.clone()));
    *out.method_mut() = method;
    *out.uri_mut() = uri;
    let h = out.headers_mut();
    h.insert(http::header::HOST, header_value("Host", &host)?);
    h.insert(
        http::header::ACCEPT,
        HeaderValue::from_static(ser.media_type()),
    );
    let mut set = |name: &'static str, value: Option<&str>| -> Result<(), ClientError> {
        if let Some(v) = value {
            h.insert(HeaderName::from_static(name), header_value(name, v)?);
        }
        Ok(())
    };
    set("x-m2m-origin", req.fr.as_deref())?;
    set("x-m2m-ri", Some(rqi))?;
    set("x-m2m-rvi", Some(req.rvi.as_deref().unwrap_or("3")))?;
    set("x-m2m-gid", req.gid.as_deref())?;
    set("x-m2m-ot", req.ot.as_deref())?;
    set("x-m2m-rst", req.rset.as_deref())?;
    set("x-m2m-ret", req.rqet.as_deref())?;
    set("x-m2m-oet", req.oet.as_deref())?;
    set("x-m2m-ec", req.ec.as_deref())?;
    set("x-m2m-vsi", req.vsi.as_deref())?;
    let rtu = req.rt_nu.as_ref().map(|nu| nu.join("&"));
    set("x-m2m-rtu", rtu.as_deref())?;
    if !req.tkns.is_empty() {
        if req.tkns.iter().any(|t| t.is_empty() || t.contains('+')) {
            return Err(ClientError::InvalidRequest(
                "a token is empty or contains '+'".into(),
            ));
        }
        set("authorization", Some(&req.tkns.join("+")))?;
    }
    let content_type = match ty {
        Some(ty) => Some(format!("{};ty={ty}", ser.media_type())),
        // A NOTIFY must carry no `ty`; the receiver tells it from CREATE by that alone.
        None if !body.is_empty() || op == Operation::Notify => Some(ser.media_type().into()),
        None => None,
    };
    set("content-type", content_type.as_deref())?;
    Ok(out)
}

fn header_text(parts: &http::response::Parts, name: &str) -> Result<Option<String>, ClientError> {
    match parts.headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|_| ClientError::MalformedResponse(format!("{name} is not visible ASCII"))),
    }
}

/// Maps the HTTP response onto a response primitive.
pub(crate) fn response(
    parts: &http::response::Parts,
    body: &[u8],
) -> Result<Response, ClientError> {
    let code = header_text(parts, "x-m2m-rsc")?
        .ok_or_else(|| {
            ClientError::MalformedResponse(format!(
                "no X-M2M-RSC (HTTP status {})",
                parts.status.as_u16()
            ))
        })?
        .parse::<u16>()
        .map_err(|_| ClientError::MalformedResponse("X-M2M-RSC is not a number".into()))?;
    let rsc = rsc_from_code(code).ok_or(ClientError::UnknownRsc(code))?;
    let mut resp = Response::new(rsc, header_text(parts, "x-m2m-ri")?.unwrap_or_default());
    resp.rvi = header_text(parts, "x-m2m-rvi")?;
    resp.fr = header_text(parts, "x-m2m-origin")?;
    resp.ot = header_text(parts, "x-m2m-ot")?;
    resp.vsi = header_text(parts, "x-m2m-vsi")?;
    resp.content_location = header_text(parts, "content-location")?;
    resp.cnst = header_text(parts, "x-m2m-cts")?.and_then(|v| v.parse().ok());
    if !body.is_empty() {
        // The body is read in the serialization its Content-Type names; a peer that
        // names none Bastion knows is taken to answer in JSON, as before negotiation.
        let ser = header_text(parts, "content-type")?
            .and_then(|raw| wire::parse_content_type(&raw).ok())
            .and_then(|ct| ct.serialization)
            .unwrap_or(Serialization::Json);
        let value = ser
            .decode_pc(body)
            .map_err(|e| ClientError::MalformedResponse(format!("body: {e}")))?;
        resp.pc = Some(value);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts0009_6_2_2_1_paths() {
        assert_eq!(http_path("cse-in/ae1"), "/cse-in/ae1");
        assert_eq!(http_path("/id-in/cse-in"), "/~/id-in/cse-in");
        assert_eq!(http_path("//sp.example/id-in/c1"), "/_/sp.example/id-in/c1");
        assert_eq!(http_path(""), "/");
        assert_eq!(http_path("cse-in/a b"), "/cse-in/a%20b");
    }

    #[test]
    fn ts0009_6_2_2_2_query() {
        let mut req = Request {
            rcn: Some(4),
            tqi: Some(true),
            tids: vec!["t1@das.example".into(), "t2@das.example".into()],
            rids: vec!["r1@roles.example".into()],
            ..Request::default()
        };
        req.fc.fu = Some(1);
        req.fc.ty = vec![3, 4];
        req.fc.lbl = vec!["a b".into()];
        assert_eq!(
            query_string(&req),
            "rcn=4&rids=r1@roles.example&tids=t1@das.example+t2@das.example&tqi=true\
             &fu=1&ty=3+4&lbl=a%20b"
        );
    }

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
