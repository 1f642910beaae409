//! Whole primitives as one message (TS-0004 §6.4.1/§6.4.2 serialized by §8): what the
//! MQTT binding (TS-0010 §6.5) carries in a PUBLISH payload, and what a WebSocket
//! binding (TS-0020) carries in a frame. A request primitive is a flat object with
//! `op`, `to`, `fr`, `rqi`, `rvi`, `ty`, `pc`, … and a response primitive one with
//! `rsc`, `rqi`, `rvi`, `pc`, …; in XML the object is the content of an `m2m:rqp` or
//! `m2m:rsp` root element (JSON and CBOR are never wrapped).
//!
//! This module maps between those objects and [`Request`]/[`Response`] and nothing
//! else: bytes go through [`Serialization::decode_pc`]/[`Serialization::encode_pc`]
//! (strict and depth-bounded), and the size of a message stays with the binding that
//! received it. Parameters this module does not know are ignored, as the HTTP mapping
//! ignores unknown headers; a known parameter of the wrong type is 4000.

use super::{Serialization, WireError};
use crate::error::RequestError;
use crate::primitive::{Operation, Request, ResponseType};
use crate::{Response, Rsc};
use serde_json::{Map, Value};

/// The root element of a request primitive in XML.
const REQUEST_ROOT: &str = "m2m:rqp";
/// The root element of a response primitive in XML.
const RESPONSE_ROOT: &str = "m2m:rsp";

/// Why a request primitive could not be read: the error to answer with, and what could
/// be recovered of the request to address that answer (`rqi`, `rvi`, `fr`).
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    pub error: RequestError,
    pub rqi: Option<String>,
    pub rvi: Option<String>,
    pub fr: Option<String>,
}

/// Decodes a request primitive received as `bytes` in `ser`.
pub fn decode_request(ser: Serialization, bytes: &[u8]) -> Result<Request, Undecodable> {
    let value = ser.decode_pc(bytes).map_err(|e| Undecodable {
        error: e.into(),
        rqi: None,
        rvi: None,
        fr: None,
    })?;
    let object = unwrap_root(ser, value, REQUEST_ROOT).map_err(|error| Undecodable {
        error,
        rqi: None,
        rvi: None,
        fr: None,
    })?;
    request_of(ser, &object).map_err(|error| Undecodable {
        error,
        rqi: text(&object, "rqi"),
        rvi: text(&object, "rvi"),
        fr: text(&object, "fr"),
    })
}

/// A string member, when it is one (what an error answer can still echo).
fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The primitive's object: the decoded value itself (JSON, CBOR) or the content of the
/// XML root `root`.
fn unwrap_root(
    ser: Serialization,
    value: Value,
    root: &str,
) -> Result<Map<String, Value>, RequestError> {
    let value = match (ser, value) {
        (Serialization::Xml, Value::Object(mut outer)) => match outer.remove(root) {
            Some(inner) if outer.is_empty() => inner,
            _ => {
                return Err(RequestError::bad_request(format!(
                    "an XML primitive is one {root} element"
                )))
            }
        },
        (_, value) => value,
    };
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(RequestError::bad_request("a primitive is an object")),
    }
}

fn wrong(key: &str, what: &str) -> RequestError {
    RequestError::bad_request(format!("{key} must be {what}"))
}

/// Reads primitives' typed members. XML text carries no types for members outside its
/// tables, so there numbers and booleans may arrive as text; JSON and CBOR are strict.
struct Reader<'a> {
    object: &'a Map<String, Value>,
    lenient: bool,
}

impl Reader<'_> {
    fn string(&self, key: &str) -> Result<Option<String>, RequestError> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if self.lenient => Ok(Some(n.to_string())),
            Some(_) => Err(wrong(key, "a string")),
        }
    }

    fn uint(&self, key: &str) -> Result<Option<u64>, RequestError> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| wrong(key, "a number")),
            Some(Value::String(s)) if self.lenient => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| wrong(key, "a number")),
            Some(_) => Err(wrong(key, "a number")),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, RequestError> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if self.lenient => match s.trim() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(wrong(key, "a boolean")),
            },
            Some(_) => Err(wrong(key, "a boolean")),
        }
    }

    /// A list of strings; XML writes a list of simple values space-separated.
    fn strings(&self, key: &str) -> Result<Vec<String>, RequestError> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| wrong(key, "a list of strings"))
                })
                .collect(),
            Some(Value::String(s)) if self.lenient => {
                Ok(s.split_whitespace().map(str::to_owned).collect())
            }
            Some(_) => Err(wrong(key, "a list of strings")),
        }
    }
}

/// A scalar as the text the query-string readers of [`crate::filter`] take.
fn scalar_text(key: &str, value: &Value) -> Result<String, RequestError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(wrong(key, "a simple value")),
    }
}

fn request_of(ser: Serialization, object: &Map<String, Value>) -> Result<Request, RequestError> {
    let r = Reader {
        object,
        lenient: ser == Serialization::Xml,
    };
    let op = r
        .uint("op")?
        .ok_or_else(|| RequestError::bad_request("op is missing"))?;
    let mut req = Request {
        op: Some(Operation::from_number(op).ok_or_else(|| wrong("op", "an operation (1-5)"))?),
        to: r
            .string("to")?
            .filter(|to| !to.is_empty())
            .ok_or_else(|| RequestError::bad_request("to is missing"))?,
        fr: r.string("fr")?,
        rqi: r.string("rqi")?,
        rvi: r.string("rvi")?,
        ty: r.uint("ty")?,
        pc: object.get("pc").filter(|pc| !pc.is_null()).cloned(),
        rcn: r.uint("rcn")?,
        drt: r.uint("drt")?,
        rp: r.string("rp")?,
        rqet: r.string("rqet")?,
        rset: r.string("rset")?,
        oet: r.string("oet")?,
        ot: r.string("ot")?,
        gid: r.string("gid")?,
        vsi: r.string("vsi")?,
        da: r.boolean("da")?,
        tqi: r.boolean("tqi")?,
        rids: r.strings("rids")?,
        tkns: r.strings("tkns")?,
        tids: r.strings("tids")?,
        ltids: r.strings("ltids")?,
        ..Request::default()
    };
    // `ec` is m2m:eventCategory, a number; the pipeline keeps it as text.
    req.ec = match object.get("ec") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::Number(_) | Value::String(_))) => Some(scalar_text("ec", v)?),
        Some(_) => return Err(wrong("ec", "an event category")),
    };
    if let Some(rt) = object.get("rt").filter(|rt| !rt.is_null()) {
        let Value::Object(rt) = rt else {
            return Err(wrong("rt", "an object with rtv"));
        };
        let inner = Reader {
            object: rt,
            lenient: r.lenient,
        };
        if let Some(rtv) = inner.uint("rtv")? {
            req.rt =
                Some(ResponseType::from_number(rtv).ok_or_else(|| wrong("rt", "a response type"))?);
        }
        let nu = inner.strings("nu")?;
        if !nu.is_empty() {
            req.rt_nu = Some(nu);
        }
    }
    if let Some(fc) = object.get("fc").filter(|fc| !fc.is_null()) {
        let Value::Object(fc) = fc else {
            return Err(wrong("fc", "an object"));
        };
        for (key, value) in fc {
            match (key.as_str(), value) {
                // attribute conditions: [{"nm": name, "val": value}, …]
                ("atr", Value::Array(conditions)) => {
                    for condition in conditions {
                        let (Some(nm), Some(val)) = (
                            condition.get("nm").and_then(Value::as_str),
                            condition.get("val"),
                        ) else {
                            return Err(wrong("atr", "a list of {nm, val}"));
                        };
                        req.fc.take_query_param(nm, &scalar_text(nm, val)?)?;
                    }
                }
                (_, Value::Array(items)) => {
                    for item in items {
                        req.fc.take_query_param(key, &scalar_text(key, item)?)?;
                    }
                }
                (_, value) => req.fc.take_query_param(key, &scalar_text(key, value)?)?,
            }
        }
    }
    Ok(req)
}

/// Why a primitive could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimitiveEncodeError {
    /// The serialization cannot represent the content.
    Wire(WireError),
    /// A parameter this mapping does not write yet (filter criteria).
    Unsupported(&'static str),
}

impl std::fmt::Display for PrimitiveEncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrimitiveEncodeError::Wire(e) => e.fmt(f),
            PrimitiveEncodeError::Unsupported(what) => {
                write!(f, "{what} cannot be sent in a primitive")
            }
        }
    }
}

impl std::error::Error for PrimitiveEncodeError {}

/// Wraps the object in the XML root, or leaves it flat.
fn rooted(ser: Serialization, object: Map<String, Value>, root: &str) -> Value {
    match ser {
        Serialization::Xml => {
            let mut outer = Map::new();
            outer.insert(root.to_owned(), Value::Object(object));
            Value::Object(outer)
        }
        _ => Value::Object(object),
    }
}

fn put(object: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        object.insert(key.to_owned(), Value::String(v.clone()));
    }
}

fn put_list(object: &mut Map<String, Value>, key: &str, values: &[String]) {
    if !values.is_empty() {
        object.insert(key.to_owned(), Value::from(values.to_vec()));
    }
}

/// Encodes a request primitive (a NOTIFY the CSE sends, a client's request). Filter
/// criteria are refused rather than dropped: nothing that sends primitives needs them.
pub fn encode_request(ser: Serialization, req: &Request) -> Result<Vec<u8>, PrimitiveEncodeError> {
    if req.fc.is_present() || !req.atrl.is_empty() {
        return Err(PrimitiveEncodeError::Unsupported("filter criteria"));
    }
    let mut o = Map::new();
    if let Some(op) = req.op {
        o.insert("op".into(), Value::from(op.number()));
    }
    o.insert("to".into(), Value::String(req.to.clone()));
    put(&mut o, "fr", &req.fr);
    put(&mut o, "rqi", &req.rqi);
    put(&mut o, "rvi", &req.rvi);
    if let Some(ty) = req.ty {
        o.insert("ty".into(), Value::from(ty));
    }
    if let Some(pc) = &req.pc {
        o.insert("pc".into(), pc.clone());
    }
    for (key, value) in [("rcn", req.rcn), ("drt", req.drt)] {
        if let Some(v) = value {
            o.insert(key.into(), Value::from(v));
        }
    }
    if req.rt.is_some() || req.rt_nu.is_some() {
        let mut rt = Map::new();
        if let Some(rtv) = req.rt {
            rt.insert("rtv".into(), Value::from(rtv.number()));
        }
        if let Some(nu) = &req.rt_nu {
            rt.insert("nu".into(), Value::from(nu.clone()));
        }
        o.insert("rt".into(), Value::Object(rt));
    }
    put(&mut o, "rp", &req.rp);
    put(&mut o, "rqet", &req.rqet);
    put(&mut o, "rset", &req.rset);
    put(&mut o, "oet", &req.oet);
    put(&mut o, "ot", &req.ot);
    if let Some(ec) = &req.ec {
        let number = ec.parse::<u64>().map(Value::from);
        o.insert(
            "ec".into(),
            number.unwrap_or_else(|_| Value::String(ec.clone())),
        );
    }
    for (key, value) in [("da", req.da), ("tqi", req.tqi)] {
        if let Some(v) = value {
            o.insert(key.into(), Value::Bool(v));
        }
    }
    put(&mut o, "gid", &req.gid);
    put(&mut o, "vsi", &req.vsi);
    put_list(&mut o, "rids", &req.rids);
    put_list(&mut o, "tkns", &req.tkns);
    put_list(&mut o, "tids", &req.tids);
    put_list(&mut o, "ltids", &req.ltids);
    ser.encode_pc(&rooted(ser, o, REQUEST_ROOT))
        .map_err(PrimitiveEncodeError::Wire)
}

/// The members of a response primitive (TS-0004 §6.4.2): `rsc`, `rqi`, and what is set
/// of `rvi`, `pc`, `fr`, `to`, `ot`, `rset`, `vsi`, `cnst`; also what an `m2m:rsp` (the
/// result of a non-blocking request) holds.
pub fn response_members(resp: &Response) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("rsc".into(), Value::from(resp.rsc.code()));
    o.insert("rqi".into(), Value::String(resp.rqi.clone()));
    put(&mut o, "rvi", &resp.rvi);
    if let Some(pc) = &resp.pc {
        o.insert("pc".into(), pc.clone());
    }
    put(&mut o, "fr", &resp.fr);
    put(&mut o, "to", &resp.to);
    put(&mut o, "ot", &resp.ot);
    put(&mut o, "rset", &resp.rset);
    put(&mut o, "vsi", &resp.vsi);
    if let Some(cnst) = resp.cnst {
        o.insert("cnst".into(), Value::from(cnst));
    }
    o
}

/// Encodes a response primitive. Content that `ser` cannot represent (a `con` object
/// whose member names are no XML names) is answered 5207 NOT_ACCEPTABLE instead, as the
/// HTTP mapping does, so there is always something to send.
pub fn encode_response(ser: Serialization, resp: &Response) -> Vec<u8> {
    match ser.encode_pc(&rooted(ser, response_members(resp), RESPONSE_ROOT)) {
        Ok(bytes) => bytes,
        Err(why) => {
            let mut refused = Response::error(
                &RequestError::NotAcceptable(why.to_string().into()),
                resp.rqi.clone(),
            );
            refused.rvi = resp.rvi.clone();
            refused.fr = resp.fr.clone();
            refused.to = resp.to.clone();
            // An `m2m:dbg` text is representable in every serialization.
            ser.encode_pc(&rooted(ser, response_members(&refused), RESPONSE_ROOT))
                .unwrap_or_default()
        }
    }
}

/// Decodes a response primitive received as `bytes` in `ser` (the answer to a request
/// this CSE sent). 4000 when it is not one, or its `rsc` is no known code.
pub fn decode_response(ser: Serialization, bytes: &[u8]) -> Result<Response, RequestError> {
    let value = ser.decode_pc(bytes)?;
    let object = unwrap_root(ser, value, RESPONSE_ROOT)?;
    let r = Reader {
        object: &object,
        lenient: ser == Serialization::Xml,
    };
    let code = r
        .uint("rsc")?
        .ok_or_else(|| RequestError::bad_request("rsc is missing"))?;
    let rsc = u16::try_from(code)
        .ok()
        .and_then(Rsc::from_code)
        .ok_or_else(|| wrong("rsc", "a known response status code"))?;
    let mut resp = Response::new(rsc, r.string("rqi")?.unwrap_or_default());
    resp.rvi = r.string("rvi")?;
    resp.pc = object.get("pc").filter(|pc| !pc.is_null()).cloned();
    resp.fr = r.string("fr")?;
    resp.to = r.string("to")?;
    resp.ot = r.string("ot")?;
    resp.rset = r.string("rset")?;
    resp.vsi = r.string("vsi")?;
    resp.cnst = r.uint("cnst")?.and_then(|c| u8::try_from(c).ok());
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_bytes(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).expect("json")
    }

    #[test]
    fn a_json_request_primitive_maps_every_parameter() {
        let bytes = json_bytes(json!({
            "op": 1, "to": "cse-in", "fr": "Cae", "rqi": "r1", "rvi": "3", "ty": 3,
            "pc": {"m2m:cnt": {"rn": "c"}}, "rcn": 1, "rt": {"rtv": 3},
            "fc": {"fu": 1, "lbl": ["a", "b"], "ty": [3, 4], "atr": [{"nm": "rn", "val": "c"}]},
            "tkns": ["t1"], "da": true, "ec": 2, "unknown": {"kept": "out"}
        }));
        let req = decode_request(Serialization::Json, &bytes).expect("decodes");
        assert_eq!(req.op, Some(Operation::Create));
        assert_eq!(req.to, "cse-in");
        assert_eq!(req.fr.as_deref(), Some("Cae"));
        assert_eq!(req.rqi.as_deref(), Some("r1"));
        assert_eq!(req.rvi.as_deref(), Some("3"));
        assert_eq!(req.ty, Some(3));
        assert_eq!(req.pc, Some(json!({"m2m:cnt": {"rn": "c"}})));
        assert_eq!(req.rcn, Some(1));
        assert_eq!(req.rt, Some(ResponseType::Blocking));
        assert_eq!(req.fc.fu, Some(1));
        assert_eq!(req.fc.lbl, vec!["a", "b"]);
        assert_eq!(req.fc.ty, vec![3, 4]);
        assert_eq!(req.fc.atr, vec![("rn".to_owned(), "c".to_owned())]);
        assert_eq!(req.tkns, vec!["t1"]);
        assert_eq!(req.da, Some(true));
        assert_eq!(req.ec.as_deref(), Some("2"));
    }

    #[test]
    fn a_bad_member_is_4000_and_keeps_what_addresses_the_answer() {
        let bytes =
            json_bytes(json!({"op": "one", "to": "x", "fr": "Cae", "rqi": "r9", "rvi": "4"}));
        let e = decode_request(Serialization::Json, &bytes).expect_err("refused");
        assert_eq!(e.error.rsc(), Rsc::BadRequest);
        assert_eq!(e.error.to_string(), "op must be a number");
        assert_eq!(
            (e.rqi.as_deref(), e.rvi.as_deref()),
            (Some("r9"), Some("4"))
        );
        assert_eq!(e.fr.as_deref(), Some("Cae"));
        for (bytes, why) in [
            (b"{".to_vec(), None),
            (json_bytes(json!([1])), Some("a primitive is an object")),
            (json_bytes(json!({"to": "x"})), Some("op is missing")),
            (
                json_bytes(json!({"op": 9, "to": "x"})),
                Some("op must be an operation (1-5)"),
            ),
            (json_bytes(json!({"op": 2})), Some("to is missing")),
            (
                json_bytes(json!({"op": 2, "to": "x", "rt": 3})),
                Some("rt must be an object with rtv"),
            ),
        ] {
            let e = decode_request(Serialization::Json, &bytes).expect_err("refused");
            assert_eq!(e.error.rsc(), Rsc::BadRequest);
            if let Some(why) = why {
                assert_eq!(e.error.to_string(), why);
            }
        }
    }

    #[test]
    fn cbor_and_xml_round_trip_a_request_and_a_response() {
        let req = Request {
            op: Some(Operation::Notify),
            to: "Cae".into(),
            fr: Some("/id-in".into()),
            rqi: Some("n1".into()),
            rvi: Some("3".into()),
            pc: Some(json!({"m2m:sgn": {"sur": "/id-in/sub1", "vrq": true}})),
            ..Request::default()
        };
        for ser in Serialization::ALL {
            let bytes = encode_request(ser, &req).expect("encodes");
            let back = decode_request(ser, &bytes).expect("decodes");
            assert_eq!(back.op, Some(Operation::Notify), "{ser:?}");
            assert_eq!(
                (back.to.as_str(), back.fr.as_deref()),
                ("Cae", Some("/id-in"))
            );
            assert_eq!(back.rqi.as_deref(), Some("n1"), "{ser:?}");
            assert_eq!(back.pc, req.pc, "{ser:?}");
        }
        let mut resp = Response::new(Rsc::Created, "r1");
        resp.rvi = Some("3".into());
        resp.pc = Some(json!({"m2m:cnt": {"rn": "c", "ty": 3, "cni": 0}}));
        for ser in Serialization::ALL {
            let bytes = encode_response(ser, &resp);
            let back = decode_response(ser, &bytes).expect("decodes");
            assert_eq!(
                (back.rsc, back.rqi.as_str()),
                (Rsc::Created, "r1"),
                "{ser:?}"
            );
            assert_eq!(back.rvi.as_deref(), Some("3"));
            assert_eq!(back.pc, resp.pc, "{ser:?}");
        }
    }

    #[test]
    fn xml_content_keeps_the_types_of_a_body_root() {
        let mut resp = Response::new(Rsc::Ok, "d1");
        resp.pc = Some(json!({"m2m:uril": ["cse-in/a", "cse-in/b"]}));
        let bytes = encode_response(Serialization::Xml, &resp);
        let back = decode_response(Serialization::Xml, &bytes).expect("decodes");
        assert_eq!(back.pc, resp.pc);
        let req = Request {
            op: Some(Operation::Retrieve),
            to: "cse-in/cnt".into(),
            rqi: Some("p1".into()),
            pc: Some(json!({"m2m:atrl": ["lbl", "rn"]})),
            ..Request::default()
        };
        let bytes = encode_request(Serialization::Xml, &req).expect("encodes");
        let back = decode_request(Serialization::Xml, &bytes).expect("decodes");
        assert_eq!(back.pc, req.pc);
    }

    #[test]
    fn json_responses_are_flat() {
        let resp = Response::error(&RequestError::bad_request("no"), "r1");
        let bytes = encode_response(Serialization::Json, &resp);
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            v,
            json!({"rsc": 4000, "rqi": "r1", "pc": {"m2m:dbg": "no"}})
        );
    }

    #[test]
    fn filter_criteria_are_refused_on_encoding_not_dropped() {
        let mut req = Request {
            op: Some(Operation::Retrieve),
            to: "x".into(),
            ..Request::default()
        };
        req.fc.fu = Some(1);
        assert_eq!(
            encode_request(Serialization::Json, &req),
            Err(PrimitiveEncodeError::Unsupported("filter criteria"))
        );
    }
}
