//! The operator API on the HTTP listener: `GET /__bastion/explain`, answering the
//! configured admin originator with the explanation of an access decision
//! ([`bastion_core::Cse::explain`]) as JSON.
//!
//! Query parameters: `originator`, `op` (`retrieve`, `create`, `update`, `delete`,
//! `notify`, `discovery`) and `to` (written like a request path: `/cse-in/ae/cnt`,
//! `/~/id-in/…`, `/_/…`) are required; `ty` (the type to create), `at` (a oneM2M
//! timestamp, default now), `ip` (the peer address to assume) and `loc` (`lat,lon`) are
//! optional. Every answer carries `X-M2M-RSC`: 2000 with the explanation, 4106 when
//! `X-M2M-Origin` names an identity the request's security association does not hold
//! (the admin's included, when the admin has a credential), 4103 when it is not the
//! admin, 4000 for a bad parameter, 4005 for a method other than GET, and the target's
//! own error (4004, …) when it cannot be resolved.
//!
//! The caller passes the same identity binding as every oneM2M request
//! ([`Cse::authorize_operator`]; docs/security.md, "Identity binding").

use crate::encode;
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{Method, Request as HttpRequest};
use axum::response::Response as HttpResponse;
use bastion_core::{explanation_json, Cse, ExplainQuery, RequestContext};
use bastion_policy::{AccessOperation, Location};
use bastion_proto::time::Timestamp;
use bastion_proto::wire::http as mapping;
use bastion_proto::{RequestError, Response, Rsc};
use percent_encoding::percent_decode_str;
use std::net::IpAddr;

/// Path of the explanation endpoint. `__bastion` is never a valid first segment of a
/// oneM2M address on this CSE unless the CSEBase itself is named so.
pub const EXPLAIN_PATH: &str = "/__bastion/explain";

/// Answers `GET /__bastion/explain`.
pub async fn explain(cse: &Cse, request: HttpRequest<Body>, ctx: &RequestContext) -> HttpResponse {
    // The body is ignored; only the (Sync) head is kept across the await.
    let (request, _) = request.into_parts();
    let rqi = header(&request, mapping::header::RI).unwrap_or_default();
    let mut resp = match answer(cse, &request, ctx).await {
        Ok(resp) => resp,
        Err(err) => Response::error(&err, String::new()),
    };
    resp.rqi = rqi;
    resp.rvi = Some(header(&request, mapping::header::RVI).unwrap_or_else(|| "3".to_owned()));
    resp.fr = Some(cse.config().cse_id.clone());
    encode(&resp)
}

async fn answer(
    cse: &Cse,
    request: &Parts,
    ctx: &RequestContext,
) -> Result<Response, RequestError> {
    if request.method != Method::GET {
        return Err(RequestError::not_allowed(
            "the explain API answers GET only",
        ));
    }
    cse.authorize_operator(header(request, mapping::header::ORIGIN).as_deref(), ctx)?;
    let query = parse_query(request.uri.query().unwrap_or(""))?;
    let explanation = cse.explain(&query).await?;
    let mut resp = Response::new(Rsc::Ok, String::new());
    resp.pc = Some(explanation_json(&explanation, &query.to));
    Ok(resp)
}

fn header(request: &Parts, name: &str) -> Option<String> {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn bad(message: String) -> RequestError {
    RequestError::bad_request(message)
}

/// Parses the query string into an [`ExplainQuery`].
pub fn parse_query(query: &str) -> Result<ExplainQuery, RequestError> {
    let (mut originator, mut op, mut to) = (None, None, None);
    let mut out = ExplainQuery {
        originator: String::new(),
        operation: AccessOperation::Retrieve,
        to: String::new(),
        create_type: None,
        time: None,
        peer_ip: None,
        location: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| bad(format!("{key}: not UTF-8 after percent-decoding")))?
            .into_owned();
        match key {
            "originator" => originator = Some(value),
            "op" => {
                op = Some(parse_operation(&value).ok_or_else(|| {
                    bad(format!(
                    "op '{value}': expected retrieve, create, update, delete, notify or discovery"
                ))
                })?)
            }
            "to" => to = Some(value),
            "ty" => {
                out.create_type = Some(
                    value
                        .parse::<u16>()
                        .map_err(|_| bad(format!("ty '{value}': not a resource type number")))?,
                )
            }
            "at" => {
                out.time = Some(Timestamp::parse(&value).ok_or_else(|| {
                    bad(format!(
                        "at '{value}': not a oneM2M timestamp (YYYYMMDDThhmmss)"
                    ))
                })?)
            }
            "ip" => {
                out.peer_ip = Some(
                    value
                        .parse::<IpAddr>()
                        .map_err(|_| bad(format!("ip '{value}': not an IP address")))?,
                )
            }
            "loc" => out.location = Some(parse_location(&value).map_err(bad)?),
            other => return Err(bad(format!("unknown parameter '{other}'"))),
        }
    }
    out.originator = originator.ok_or_else(|| bad("originator missing".to_owned()))?;
    out.operation = op.ok_or_else(|| bad("op missing".to_owned()))?;
    let to = to
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("to missing".to_owned()))?;
    out.to = target_from_path(&to)?;
    Ok(out)
}

/// The `to` of an address written like an HTTP request path (TS-0009 Table 6.2.2.1-1):
/// `/cse-in/ae` is CSE-relative, `/~/id-in/cse-in/ae` SP-relative, `/_/sp/id-in/…`
/// absolute.
pub fn target_from_path(path: &str) -> Result<String, RequestError> {
    bastion_proto::wire::http::target_decoded(path)
}

/// `retrieve`, `create`, … (case-insensitive) as an access-control operation.
pub fn parse_operation(text: &str) -> Option<AccessOperation> {
    AccessOperation::ALL
        .into_iter()
        .find(|op| op.name().eq_ignore_ascii_case(text))
}

/// `LAT,LON` in degrees; latitude within ±90, longitude within ±180.
pub fn parse_location(text: &str) -> Result<Location, String> {
    Location::parse_degrees(text)
        .ok_or_else(|| format!("location '{text}': expected LAT,LON in degrees, e.g. 48.85,2.35"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = parse_query(
            "originator=Creader&op=RETRIEVE&to=%2Fcse-in%2Fae&at=20250102T030405&ip=10.0.0.1&loc=1.5,2",
        )
        .expect("parses");
        assert_eq!(q.originator, "Creader");
        assert_eq!(q.operation, AccessOperation::Retrieve);
        assert_eq!(q.to, "cse-in/ae");
        assert_eq!(
            q.time.map(Timestamp::format).as_deref(),
            Some("20250102T030405")
        );
        assert_eq!(q.peer_ip, "10.0.0.1".parse().ok());
        assert_eq!(q.location.map(|l| l.latitude), Some(1.5));
        for bad in [
            "op=retrieve&to=/x",
            "originator=C&to=/x",
            "originator=C&op=read&to=/x",
            "originator=C&op=create&to=/x&ty=x",
            "originator=C&op=create&to=/x&at=yesterday",
            "originator=C&op=create&to=/x&ip=300.1.1.1",
            "originator=C&op=create&to=/x&loc=91,0",
            "originator=C&op=create&to=/x&zz=1",
            "originator=C&op=create&to=",
        ] {
            let err = parse_query(bad).err();
            assert_eq!(err.map(|e| e.rsc()), Some(Rsc::BadRequest), "{bad}");
        }
    }
}
