//! HTTP request → request primitive (TS-0009 §6.2; core-bindings.md §4.1-§4.4): method and
//! `ty` to operation, path to `to`, X-M2M-* headers and query to parameters, body to `pc`
//! in the serialization its `Content-Type` names, and `Accept` to the serialization of the
//! answer (both negotiated by [`bastion_proto::wire::media`]).

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request as HttpRequest};
use bastion_proto::filter::REQUEST_QUERY_KEYS;
use bastion_proto::primitive::ResponseType;
use bastion_proto::wire::{self, ContentType, Serialization};
use bastion_proto::{Operation, Request, RequestError};
use http_body_util::{BodyExt, Limited};
use percent_encoding::percent_decode_str;

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
    let rqi = single_header(&parts.headers, "x-m2m-ri")
        .ok()
        .flatten()
        .unwrap_or_default();
    let rvi = single_header(&parts.headers, "x-m2m-rvi").ok().flatten();
    // The answer's serialization is settled first so that even a failure below is
    // reported in the one the client asked for.
    let answer = negotiate(&parts.headers).unwrap_or(Serialization::Json);
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
    let (mut req, ct) =
        decode_head_typed(&parts.method, &parts.uri, &parts.headers).map_err(fail_unread)?;
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
    if !bytes.is_empty() {
        let Some(ct) = ct else {
            return Err(fail(RequestError::UnsupportedMediaType(
                "a body needs a Content-Type".into(),
            )));
        };
        let ser = ct.body_serialization().map_err(fail)?;
        req.pc = Some(
            ser.decode_pc(&bytes)
                .map_err(|e| fail(RequestError::from(e)))?,
        );
    }
    Ok(Decoded {
        request: req,
        answer,
    })
}

/// The answer's serialization: `Accept` (TS-0009 §6.4.3), where `*/*` or no `Accept`
/// means the serialization of the request's body, else JSON. 5207 when nothing the
/// client accepts can be produced.
fn negotiate(headers: &HeaderMap) -> Result<Serialization, RequestError> {
    let preferred = content_type(headers)?
        .and_then(|ct| ct.serialization)
        .unwrap_or(Serialization::Json);
    let accept = single_header(headers, "accept")?;
    wire::negotiate_accept(accept.as_deref(), preferred)
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
    decode_head_typed(method, uri, headers).map(|(req, _)| req)
}

/// [`decode_head`], also returning the parsed `Content-Type` for the body.
fn decode_head_typed(
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<(Request, Option<ContentType>), RequestError> {
    let mut req = Request::default();
    let ct = content_type(headers)?;
    let ty = ct.as_ref().and_then(|ct| ct.ty);
    req.op = Some(match *method {
        Method::GET => Operation::Retrieve,
        Method::PUT => Operation::Update,
        Method::DELETE => Operation::Delete,
        Method::POST if ty.is_some() => Operation::Create,
        Method::POST => Operation::Notify,
        _ => {
            return Err(RequestError::not_allowed(
                "HTTP method not supported by oneM2M",
            ))
        }
    });
    req.ty = ty;
    req.to = target(uri.path())?;
    req.fr = single_header(headers, "x-m2m-origin")?;
    req.rqi = single_header(headers, "x-m2m-ri")?;
    req.rvi = single_header(headers, "x-m2m-rvi")?;
    req.gid = single_header(headers, "x-m2m-gid")?;
    req.ot = single_header(headers, "x-m2m-ot")?;
    req.rset = single_header(headers, "x-m2m-rst")?;
    req.rqet = single_header(headers, "x-m2m-ret")?;
    req.oet = single_header(headers, "x-m2m-oet")?;
    req.ec = single_header(headers, "x-m2m-ec")?;
    req.vsi = single_header(headers, "x-m2m-vsi")?;
    if let Some(rtu) = single_header(headers, "x-m2m-rtu")? {
        req.rt_nu = Some(
            rtu.split('&')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        );
    }
    if let Some(auth) = single_header(headers, "authorization")? {
        req.tkns = auth
            .split('+')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    }
    negotiate(headers)?;
    if let Some(query) = uri.query() {
        apply_query(&mut req, query)?;
    }
    Ok((req, ct))
}

/// One X-M2M-* (or other) header: absent, or exactly one visible-ASCII value.
fn single_header(headers: &HeaderMap, name: &str) -> Result<Option<String>, RequestError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(RequestError::bad_request(format!(
            "header {name} given twice"
        )));
    }
    let text = first
        .to_str()
        .map_err(|_| RequestError::bad_request(format!("header {name} is not visible ASCII")))?;
    Ok(Some(text.trim().to_owned()))
}

/// The parsed `Content-Type`, when there is one.
fn content_type(headers: &HeaderMap) -> Result<Option<ContentType>, RequestError> {
    single_header(headers, "content-type")?
        .map(|raw| wire::parse_content_type(&raw))
        .transpose()
}

/// Path → `to` (TS-0009 Table 6.2.2.1-1): `/~/x` is SP-relative `/x`, `/_/x` absolute
/// `//x`, anything else CSE-relative.
fn target(path: &str) -> Result<String, RequestError> {
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| RequestError::bad_request("path is not UTF-8"))?;
    target_decoded(&decoded)
}

/// [`target`] of a path that is already percent-decoded.
pub(crate) fn target_decoded(decoded: &str) -> Result<String, RequestError> {
    let rest = decoded.strip_prefix('/').unwrap_or(decoded);
    let to = if let Some(sp) = rest.strip_prefix("~/") {
        format!("/{sp}")
    } else if let Some(abs) = rest.strip_prefix("_/") {
        format!("//{abs}")
    } else if rest == "~" || rest == "_" {
        return Err(RequestError::bad_request("incomplete target address"));
    } else {
        rest.to_owned()
    };
    Ok(to)
}

fn decode_component(s: &str) -> Result<String, RequestError> {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| RequestError::bad_request("query is not UTF-8"))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, RequestError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(RequestError::bad_request(format!(
            "{key} must be a boolean"
        ))),
    }
}

fn parse_uint(key: &str, v: &str) -> Result<u64, RequestError> {
    v.parse::<u64>()
        .map_err(|_| RequestError::bad_request(format!("{key} must be an unsigned integer")))
}

fn words(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Query parameters (TS-0009 Table 6.2.2.2-1): request parameters, then filter criteria,
/// then attribute conditions. A single-valued parameter given twice is a bad request.
fn apply_query(req: &mut Request, query: &str) -> Result<(), RequestError> {
    let mut seen: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode_component(k)?;
        let value = decode_component(v)?;
        let multi = matches!(
            key.as_str(),
            "rids"
                | "tids"
                | "ltids"
                | "atrl"
                | "ty"
                | "lbl"
                | "cty"
                | "chty"
                | "pty"
                | "clbl"
                | "palb"
        );
        if !multi {
            if seen.contains(&key) {
                return Err(RequestError::bad_request(format!(
                    "query parameter {key} given twice"
                )));
            }
            seen.push(key.clone());
        }
        if !REQUEST_QUERY_KEYS.contains(&key.as_str()) {
            req.fc.take_query_param(&key, &value)?;
            continue;
        }
        match key.as_str() {
            "rcn" => req.rcn = Some(parse_uint("rcn", &value)?),
            "drt" => req.drt = Some(parse_uint("drt", &value)?),
            "rt" => {
                req.rt = Some(
                    ResponseType::from_number(parse_uint("rt", &value)?)
                        .ok_or_else(|| RequestError::bad_request("rt is not a response type"))?,
                )
            }
            "rp" => req.rp = Some(value),
            "da" => req.da = Some(parse_bool("da", &value)?),
            "tqi" => req.tqi = Some(parse_bool("tqi", &value)?),
            "rids" => req.rids.extend(words(&value)),
            "tids" => req.tids.extend(words(&value)),
            "ltids" => req.ltids.extend(words(&value)),
            "atrl" => req.atrl.extend(words(&value)),
            "asi" | "auri" | "sqi" if parse_bool(&key, &value)? => {
                return Err(RequestError::NotImplemented(
                    format!("{key} is not supported yet").into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts0009_6_2_2_1_path_forms() {
        assert_eq!(target("/cse-in/ae").unwrap(), "cse-in/ae");
        assert_eq!(target("/~/id-in/cse-in").unwrap(), "/id-in/cse-in");
        assert_eq!(
            target("/_/sp.example/id-in/cin1").unwrap(),
            "//sp.example/id-in/cin1"
        );
        assert!(target("/~").is_err());
        assert!(target("/%ff").is_err());
    }

    #[test]
    fn ts0009_query_mapping() {
        let mut req = Request::default();
        apply_query(&mut req, "rcn=4&fu=1&ty=3+4&lbl=a&lbl=b&drt=2&atrl=rn+lbl").unwrap();
        assert_eq!(req.rcn, Some(4));
        assert_eq!(req.drt, Some(2));
        assert_eq!(req.fc.fu, Some(1));
        assert_eq!(req.fc.ty, vec![3, 4]);
        assert_eq!(req.fc.lbl, vec!["a", "b"]);
        assert_eq!(req.atrl, vec!["rn", "lbl"]);
        let mut dup = Request::default();
        assert!(apply_query(&mut dup, "rcn=1&rcn=2").is_err());
        let mut bad = Request::default();
        assert!(apply_query(&mut bad, "rcn=x").is_err());
    }
}
