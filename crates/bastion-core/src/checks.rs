//! Primitive checks made before the target is even looked up (TS-0004 §7.3.2.1;
//! core-primitives.md §5 items 1-8), in the order the spec gives, stopping at the first
//! failure. The result is a [`Checked`] request whose parameters are known to be valid.

use crate::CseConfig;
use bastion_proto::filter::FilterCriteria;
use bastion_proto::primitive::ResponseType;
use bastion_proto::time::{parse_abs_rel, Timestamp};
use bastion_proto::{id, Operation, Request, RequestError, ResourceType, ResultContent};
use serde_json::{Map, Value};

/// A request that passed the primitive checks.
#[derive(Debug)]
pub(crate) struct Checked {
    pub op: Operation,
    pub to: String,
    /// The originator; empty only for an `<AE>` CREATE that sent none.
    pub fr: String,
    pub rvi: String,
    pub ty: Option<ResourceType>,
    pub pc: Option<Value>,
    pub rcn: Option<ResultContent>,
    /// 1 structured (default), 2 unstructured.
    pub drt: u64,
    pub fc: FilterCriteria,
    pub atrl: Vec<String>,
    /// `rids`, `tkns`, `tids`, `ltids` (TS-0003 7.3, 7.4; checked in `credentials.rs`).
    pub rids: Vec<String>,
    pub tkns: Vec<String>,
    pub tids: Vec<String>,
    pub ltids: Vec<String>,
    /// `tqi`: the originator asks for token-request information in a 4103.
    pub tqi: bool,
    /// Request expiration time (`rqet`), as sent; already checked to be in the future.
    pub rqet: Option<String>,
}

impl Checked {
    /// The resource representation inside `pc` for CREATE/UPDATE: `pc` must hold exactly
    /// one member, `m2m:<type>`, whose value is an object.
    pub fn content(&self, ty: ResourceType) -> Result<Map<String, Value>, RequestError> {
        let pc = self
            .pc
            .as_ref()
            .and_then(Value::as_object)
            .ok_or_else(|| RequestError::bad_request("content missing"))?;
        if pc.len() != 1 {
            return Err(RequestError::bad_request(
                "content must hold exactly one resource",
            ));
        }
        let (root, body) = pc.iter().next().expect("len checked");
        if root != ty.root() {
            return Err(RequestError::bad_request(format!(
                "content root must be {}",
                ty.root()
            )));
        }
        body.as_object()
            .cloned()
            .ok_or_else(|| RequestError::bad_request("resource content must be an object"))
    }
}

pub(crate) fn check(
    config: &CseConfig,
    req: Request,
    now: Timestamp,
) -> Result<Checked, RequestError> {
    if req.rqi.as_deref().is_none_or(str::is_empty) {
        return Err(RequestError::bad_request("rqi missing"));
    }
    if req.to.is_empty() {
        return Err(RequestError::bad_request("to missing"));
    }
    let op = req
        .op
        .ok_or_else(|| RequestError::bad_request("op missing or invalid"))?;
    let rvi = match req.rvi.as_deref() {
        None | Some("") => {
            return Err(RequestError::ReleaseVersionNotSupported(
                "rvi missing: release 1 is not supported".into(),
            ))
        }
        Some(v) if config.releases.iter().any(|r| r == v) => v.to_owned(),
        Some(_) => {
            return Err(RequestError::ReleaseVersionNotSupported(
                "release version not supported".into(),
            ))
        }
    };
    let ty = match (op, req.ty) {
        (Operation::Create, None) => return Err(RequestError::bad_request("ty missing")),
        (Operation::Create, Some(n)) => Some(
            ResourceType::from_number(n)
                .ok_or_else(|| RequestError::bad_request("unknown resource type"))?,
        ),
        (_, Some(_)) => return Err(RequestError::bad_request("ty is only allowed in CREATE")),
        (_, None) => None,
    };
    let fr = match req.fr.as_deref() {
        Some(fr) if !fr.is_empty() => {
            id::validate_originator(fr)?;
            fr.to_owned()
        }
        _ if op == Operation::Create && ty == Some(ResourceType::Ae) => String::new(),
        _ => return Err(RequestError::bad_request("originator (fr) missing")),
    };
    match op {
        Operation::Create | Operation::Update | Operation::Notify if req.pc.is_none() => {
            return Err(RequestError::bad_request("content missing"))
        }
        Operation::Delete if req.pc.is_some() => {
            return Err(RequestError::bad_request("DELETE carries no content"))
        }
        _ => {}
    }
    if req.fc.is_present() && matches!(op, Operation::Create | Operation::Notify) {
        return Err(RequestError::bad_request(
            "filter criteria not allowed in this operation",
        ));
    }
    let rcn = match req.rcn {
        None => None,
        Some(n) => {
            let rcn = ResultContent::from_number(n)
                .ok_or_else(|| RequestError::bad_request("invalid rcn"))?;
            let ok = if op == Operation::Retrieve && req.fc.is_discovery() {
                matches!(
                    rcn,
                    ResultContent::ChildReferences | ResultContent::DiscoveryResultReferences
                )
            } else {
                rcn.valid_for(op)
            };
            if !ok {
                return Err(RequestError::bad_request(
                    "rcn not valid for this operation",
                ));
            }
            Some(rcn)
        }
    };
    let drt = match req.drt {
        None => 1,
        Some(d @ (1 | 2)) if op == Operation::Retrieve => d,
        Some(1 | 2) => return Err(RequestError::bad_request("drt is only allowed in RETRIEVE")),
        Some(_) => return Err(RequestError::bad_request("drt must be 1 or 2")),
    };
    match req.rt {
        // Both non-blocking forms are accepted by `nonblocking.rs` (TS-0004 7.3.2); the
        // asynchronous one's `nu` is checked there, against the originator's registration.
        None
        | Some(ResponseType::Blocking)
        | Some(ResponseType::FlexBlocking)
        | Some(ResponseType::NonBlockingSynch)
        | Some(ResponseType::NonBlockingAsynch) => {}
        Some(ResponseType::NoResponse) => {
            return Err(RequestError::NotImplemented(
                "response type noResponse is not supported".into(),
            ))
        }
    }
    // `nu` only means something to an asynchronous request (core-primitives.md §2).
    if req.rt_nu.is_some() && req.rt != Some(ResponseType::NonBlockingAsynch) {
        return Err(RequestError::bad_request(
            "notification targets need a non-blocking asynchronous request",
        ));
    }
    if let Some(u) = req.fc.unsupported.first() {
        return Err(RequestError::NotImplemented(
            format!("filter criterion {u} is not supported").into(),
        ));
    }
    if !req.atrl.is_empty() && op != Operation::Retrieve {
        return Err(RequestError::bad_request(
            "atrl is only allowed in RETRIEVE",
        ));
    }
    for (name, value) in [("rqet", &req.rqet), ("rset", &req.rset)] {
        if let Some(v) = value {
            let at = parse_abs_rel(v, now)
                .ok_or_else(|| RequestError::bad_request(format!("{name} is malformed")))?;
            if at <= now {
                return Err(RequestError::RequestTimeout(
                    format!("{name} has already passed").into(),
                ));
            }
        }
    }
    if let Some(oet) = &req.oet {
        let at =
            parse_abs_rel(oet, now).ok_or_else(|| RequestError::bad_request("oet is malformed"))?;
        if at > now {
            return Err(RequestError::NotImplemented(
                "delayed execution (oet) is not supported".into(),
            ));
        }
    }
    if let Some(ec) = &req.ec {
        if ec.parse::<u16>().map_or(true, |n| {
            !(n == 2 || n == 3 || n == 4 || (100..=999).contains(&n))
        }) {
            return Err(RequestError::bad_request(
                "ec is not a valid event category",
            ));
        }
    }
    Ok(Checked {
        op,
        to: req.to,
        fr,
        rvi,
        ty,
        pc: req.pc,
        rcn,
        drt,
        fc: req.fc,
        atrl: req.atrl,
        rids: req.rids,
        tkns: req.tkns,
        tids: req.tids,
        ltids: req.ltids,
        tqi: req.tqi.unwrap_or(false),
        rqet: req.rqet,
    })
}
