//! The HTTP runner: each case gets a fresh `bastion serve` (the harness of
//! `tests/common`), and each step travels as TS-0009 HTTP in one serialization.

use super::format::{Omit, Op, Step};
use super::{member_values, query_text, rvi_echo_problem, sent_rvi, Outcome, Target};
use crate::common::Server;
use bastion_proto::wire::http as mapping;
use bastion_proto::wire::Serialization;
use bastion_proto::{Operation, Request};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

/// The serializations every case runs in: all that `bastion-proto`'s wire layer has.
pub const SERIALIZATIONS: &[Serialization] = &Serialization::ALL;

/// A fresh binary spoken to in one serialization.
pub struct OverHttp {
    pub server: Server,
    pub serialization: Serialization,
}

impl Target for OverHttp {
    async fn send(&self, step: &Step, rqi: Option<String>) -> Outcome {
        let mut problems = Vec::new();
        let op = match step.op {
            Op::Create => Operation::Create,
            Op::Retrieve => Operation::Retrieve,
            Op::Update => Operation::Update,
            Op::Delete => Operation::Delete,
            Op::Notify => Operation::Notify,
        };
        let primitive = Request {
            op: Some(op),
            to: step.to.clone(),
            fr: step.fr.clone(),
            rqi: rqi.clone(),
            rvi: Some(step.rvi.clone().unwrap_or_else(|| "3".into())),
            ty: step.ty,
            pc: step.pc.clone(),
            rcn: step.rcn,
            drt: step.drt,
            atrl: step.atrl.clone(),
            rqet: step.rqet.clone(),
            rset: step.rset.clone(),
            ..Request::default()
        };
        // The binding's own mapping writes the request; the filter criteria are added as
        // raw query text, since cases also send values the mapping would refuse to write.
        let http = match mapping::encode_request(&primitive, self.serialization) {
            Ok(http) => http,
            Err(e) => {
                problems.push(format!("cannot write the request: {e}"));
                return Outcome {
                    rsc: 0,
                    pc: Value::Null,
                    problems,
                };
            }
        };
        let (mut parts, body) = http.into_parts();
        if step.omit.contains(&Omit::Rvi) {
            parts.headers.remove(mapping::header::RVI);
        }
        let mut path_and_query = parts.uri.to_string();
        let fc = fc_query(step);
        if !fc.is_empty() {
            path_and_query.push(if parts.uri.query().is_some() {
                '&'
            } else {
                '?'
            });
            path_and_query.push_str(&fc);
        }
        let resp = match self
            .server
            .client()
            .request(parts.method, self.server.url(&path_and_query))
            .headers(parts.headers)
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("transport error: {e}"));
                return Outcome {
                    rsc: 0,
                    pc: Value::Null,
                    problems,
                };
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap_or_default();
        let media = self.serialization.media_type();
        let content_type = headers
            .get(mapping::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !body.is_empty() && content_type != Some(media) {
            problems.push(format!("content type {content_type:?}, asked for {media}"));
        }
        let answer = match mapping::decode_response(status, &headers, &body) {
            Ok(answer) => answer,
            Err(e) => {
                problems.push(format!("not a oneM2M response (HTTP {status}): {e}"));
                return Outcome {
                    rsc: 0,
                    pc: Value::Null,
                    problems,
                };
            }
        };
        let rsc = answer.rsc;
        if rsc.http_status() != status.as_u16() {
            problems.push(format!(
                "rsc {} travels as HTTP {}, got HTTP {status}",
                rsc.code(),
                rsc.http_status()
            ));
        }
        if let Some(rqi) = rqi.filter(|r| *r != answer.rqi) {
            problems.push(format!("X-M2M-RI {rqi} not echoed: got {:?}", answer.rqi));
        }
        problems.extend(rvi_echo_problem(
            sent_rvi(step).as_deref(),
            rsc.code(),
            answer.rvi.as_deref(),
        ));
        Outcome {
            rsc: rsc.code(),
            pc: answer.pc.unwrap_or(Value::Null),
            problems,
        }
    }
}

/// The query text of a step's filter criteria (TS-0009 6.2.2.2), written as the case
/// states them; a multi-valued member is repeated.
fn fc_query(step: &Step) -> String {
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let mut pairs: Vec<String> = Vec::new();
    for (key, v) in &step.fc {
        let values = match v {
            Value::Array(_) => member_values(v),
            one => vec![query_text(one)],
        };
        pairs.extend(values.iter().map(|x| format!("{}={}", enc(key), enc(x))));
    }
    pairs.join("&")
}
