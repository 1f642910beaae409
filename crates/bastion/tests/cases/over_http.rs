//! The HTTP runner: each case gets a fresh `bastion serve` (the harness of
//! `tests/common`), and each step travels as TS-0009 HTTP in one serialization.

use super::format::{Omit, Op, Step};
use super::{member_values, query_text, Outcome, Target};
use crate::common::Server;
use bastion_proto::Rsc;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

/// A serialization of primitive content (TS-0004 8.3; TS-0009 6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serialization {
    Json,
    Cbor,
    Xml,
}

/// The serializations every case runs in. CBOR and XML join the list once
/// `bastion-proto` has their codec (see [`Serialization::encode`]).
pub const SERIALIZATIONS: &[Serialization] = &[Serialization::Json];

impl Serialization {
    /// The media type of `Content-Type` and `Accept`.
    pub fn media_type(self) -> &'static str {
        match self {
            Serialization::Json => "application/json",
            Serialization::Cbor => "application/cbor",
            Serialization::Xml => "application/xml",
        }
    }

    /// Content → body. The one place a serialization is written; CBOR and XML call the
    /// `bastion-proto` codec here once it exists.
    pub fn encode(self, pc: &Value) -> Result<Vec<u8>, String> {
        match self {
            Serialization::Json => serde_json::to_vec(pc).map_err(|e| e.to_string()),
            Serialization::Cbor | Serialization::Xml => Err(self.no_codec()),
        }
    }

    /// Body → content. The one place a serialization is read.
    pub fn decode(self, body: &[u8]) -> Result<Value, String> {
        match self {
            Serialization::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
            Serialization::Cbor | Serialization::Xml => Err(self.no_codec()),
        }
    }

    fn no_codec(self) -> String {
        format!("no {self:?} codec in bastion-proto yet")
    }
}

/// A fresh binary spoken to in one serialization.
pub struct OverHttp {
    pub server: Server,
    pub serialization: Serialization,
}

impl Target for OverHttp {
    async fn send(&self, step: &Step, rqi: Option<String>) -> Outcome {
        let mut problems = Vec::new();
        let method = match step.op {
            Op::Create | Op::Notify => reqwest::Method::POST,
            Op::Retrieve => reqwest::Method::GET,
            Op::Update => reqwest::Method::PUT,
            Op::Delete => reqwest::Method::DELETE,
        };
        let url = self
            .server
            .url(&format!("{}{}", path(&step.to), query(step)));
        let media = self.serialization.media_type();
        let mut rb = self
            .server
            .client()
            .request(method, &url)
            .header("Accept", media);
        if let Some(fr) = &step.fr {
            rb = rb.header("X-M2M-Origin", fr.as_str());
        }
        if let Some(rqi) = &rqi {
            rb = rb.header("X-M2M-RI", rqi.as_str());
        }
        if !step.omit.contains(&Omit::Rvi) {
            rb = rb.header("X-M2M-RVI", step.rvi.as_deref().unwrap_or("3"));
        }
        // TS-0009 6.4.3: `ty` travels in Content-Type and makes a POST a CREATE.
        match (step.op, step.ty) {
            (Op::Create, Some(ty)) => rb = rb.header("Content-Type", format!("{media};ty={ty}")),
            (Op::Create, None) => problems.push("a CREATE needs ty over HTTP".to_owned()),
            _ if step.pc.is_some() => rb = rb.header("Content-Type", media),
            _ => {}
        }
        if let Some(pc) = &step.pc {
            match self.serialization.encode(pc) {
                Ok(body) => rb = rb.body(body),
                Err(e) => problems.push(format!("cannot encode the content: {e}")),
            }
        }
        let resp = match rb.send().await {
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
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let rsc: u16 = header("x-m2m-rsc")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        match Rsc::from_code(rsc) {
            Some(r) if r.http_status() == status => {}
            Some(r) => problems.push(format!(
                "rsc {rsc} travels as HTTP {}, got HTTP {status}",
                r.http_status()
            )),
            None => problems.push(format!("no valid X-M2M-RSC (HTTP {status})")),
        }
        if let Some(rqi) = rqi.filter(|r| header("x-m2m-ri").as_ref() != Some(r)) {
            problems.push(format!(
                "X-M2M-RI {rqi} not echoed: got {:?}",
                header("x-m2m-ri")
            ));
        }
        let content_type = header("content-type");
        let body = resp.bytes().await.unwrap_or_default();
        let pc = if body.is_empty() {
            Value::Null
        } else {
            if content_type.as_deref() != Some(media) {
                problems.push(format!("content type {content_type:?}, asked for {media}"));
            }
            self.serialization.decode(&body).unwrap_or_else(|e| {
                problems.push(format!("cannot decode the content: {e}"));
                Value::Null
            })
        };
        Outcome { rsc, pc, problems }
    }
}

/// `to` → request path (TS-0009 6.2.2.1): CSE-relative as it is, SP-relative under
/// `/~`, absolute under `/_`.
fn path(to: &str) -> String {
    let encoded = |s: &str| {
        s.split('/')
            .map(|seg| utf8_percent_encode(seg, NON_ALPHANUMERIC).to_string())
            .collect::<Vec<_>>()
            .join("/")
    };
    if let Some(abs) = to.strip_prefix("//") {
        format!("/_/{}", encoded(abs))
    } else if to.starts_with('/') {
        format!("/~{}", encoded(to))
    } else {
        format!("/{}", encoded(to))
    }
}

/// The query string of a step's `rcn`, `drt`, `atrl` and filter criteria (TS-0009
/// 6.2.2.2); a multi-valued member is repeated.
fn query(step: &Step) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(rcn) = step.rcn {
        pairs.push(("rcn".into(), rcn.to_string()));
    }
    if let Some(drt) = step.drt {
        pairs.push(("drt".into(), drt.to_string()));
    }
    if !step.atrl.is_empty() {
        pairs.push(("atrl".into(), step.atrl.join(" ")));
    }
    for (key, v) in &step.fc {
        match v {
            Value::Array(_) => pairs.extend(member_values(v).into_iter().map(|x| (key.clone(), x))),
            one => pairs.push((key.clone(), query_text(one))),
        }
    }
    if pairs.is_empty() {
        return String::new();
    }
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("?{}", joined.join("&"))
}
