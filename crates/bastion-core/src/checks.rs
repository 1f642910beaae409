//! Primitive checks made before the target is even looked up (TS-0004 §7.3.2.1;
//! core-primitives.md §5 items 1-8), in the order the spec gives, stopping at the first
//! failure. The result is a [`Checked`] request: one typed request per operation, so a
//! later stage sees only the parameters its operation takes, already validated (a
//! [`ResultContent`], never a raw `rcn` number; a [`ResourceType`] only in a CREATE).
//!
//! The parameters every operation carries (`to`, `fr`, credentials, `rqet`, …) form the
//! [`Envelope`]; each typed request dereferences to it, so stages before the operation
//! (originator checks, resolution, access control) take `&Envelope` and serve all five.

use crate::CseConfig;
use bastion_proto::attrs::mgmt;
use bastion_proto::attrs::release::{self, Release};
use bastion_proto::filter::FilterCriteria;
use bastion_proto::primitive::ResponseType;
use bastion_proto::time::{parse_abs_rel, Timestamp};
use bastion_proto::{id, Operation, Request, RequestError, ResourceType, ResultContent};
use serde_json::{Map, Value};
use std::ops::Deref;

/// The checked parameters every operation carries.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub op: Operation,
    pub to: String,
    /// The originator; empty only for an `<AE>` CREATE that sent none.
    pub fr: String,
    pub rvi: String,
    /// The type a CREATE creates, for the stages before the operation (registration is
    /// resolved and authorized differently); `None` for every other operation.
    pub ty: Option<ResourceType>,
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

/// A checked CREATE.
#[derive(Debug)]
pub(crate) struct CreateRequest {
    pub envelope: Envelope,
    pub ty: ResourceType,
    /// The primitive content, present.
    pub pc: Value,
    pub rcn: Option<ResultContent>,
}

/// A checked RETRIEVE (discovery included: `fc.fu` = 1).
#[derive(Debug)]
pub(crate) struct RetrieveRequest {
    pub envelope: Envelope,
    /// Content of a RETRIEVE may name the attributes wanted (`atrl_from_content`).
    pub pc: Option<Value>,
    pub rcn: Option<ResultContent>,
    pub drt: DiscoveryResultType,
    pub fc: FilterCriteria,
    pub atrl: Vec<String>,
}

/// A checked UPDATE.
#[derive(Debug)]
pub(crate) struct UpdateRequest {
    pub envelope: Envelope,
    /// The primitive content, present.
    pub pc: Value,
    pub rcn: Option<ResultContent>,
    pub fc: FilterCriteria,
}

/// A checked DELETE.
#[derive(Debug)]
pub(crate) struct DeleteRequest {
    pub envelope: Envelope,
    pub rcn: Option<ResultContent>,
    pub fc: FilterCriteria,
}

/// A checked NOTIFY.
#[derive(Debug)]
pub(crate) struct NotifyRequest {
    pub envelope: Envelope,
    /// The primitive content (the notification), present.
    pub pc: Value,
}

/// `drt` of a discovery (TS-0004 6.3.4.2.22).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum DiscoveryResultType {
    #[default]
    Structured,
    Unstructured,
}

/// A request that passed the primitive checks, typed by its operation.
#[derive(Debug)]
pub(crate) enum Checked {
    Create(CreateRequest),
    Retrieve(RetrieveRequest),
    Update(UpdateRequest),
    Delete(DeleteRequest),
    Notify(NotifyRequest),
}

impl Deref for Checked {
    type Target = Envelope;

    fn deref(&self) -> &Envelope {
        match self {
            Checked::Create(r) => &r.envelope,
            Checked::Retrieve(r) => &r.envelope,
            Checked::Update(r) => &r.envelope,
            Checked::Delete(r) => &r.envelope,
            Checked::Notify(r) => &r.envelope,
        }
    }
}

/// Each typed request reads as its envelope too (`req.fr`, `cse.resolve(&req, …)`):
/// the operation's own parameters stay fields of its type alone.
macro_rules! envelope_deref {
    ($($request:ty),*) => {$(
        impl Deref for $request {
            type Target = Envelope;

            fn deref(&self) -> &Envelope {
                &self.envelope
            }
        }
    )*};
}
envelope_deref!(
    CreateRequest,
    RetrieveRequest,
    UpdateRequest,
    DeleteRequest,
    NotifyRequest
);

impl CreateRequest {
    /// The representation of the resource to create (see [`resource_content`]).
    pub fn content(&self, ty: ResourceType) -> Result<Map<String, Value>, RequestError> {
        resource_content(&self.pc, ty, None)
    }
}

/// The `<mgmtObj>` specialization whose root names the content of a CREATE or UPDATE.
pub(crate) fn mgmt_root(pc: &Value) -> Option<&'static mgmt::Spec> {
    pc.as_object()?.keys().next().and_then(|k| mgmt::by_root(k))
}

/// The resource representation inside `pc` of a CREATE or UPDATE (the default of
/// `ResourceKind::representation`): `pc` must hold exactly one member whose value is an
/// object, named `expected` (an UPDATE: the resource's own root) or else the type's root
/// (a `<mgmtObj>`: any specialization's).
pub(crate) fn resource_content(
    pc: &Value,
    ty: ResourceType,
    expected: Option<&str>,
) -> Result<Map<String, Value>, RequestError> {
    let pc = pc
        .as_object()
        .ok_or_else(|| RequestError::bad_request("content missing"))?;
    if pc.len() != 1 {
        return Err(RequestError::bad_request(
            "content must hold exactly one resource",
        ));
    }
    let (root, body) = pc.iter().next().expect("len checked");
    // A `<mgmtObj>` is named by its specialization's root (TS-0004 8.2.4).
    let root_ok = match (expected, ty) {
        (Some(expected), _) => root == expected,
        (None, ResourceType::MgmtObj) => mgmt::by_root(root).is_some(),
        (None, _) => root == ty.root(),
    };
    if !root_ok {
        return Err(RequestError::bad_request(match (expected, ty) {
            (Some(expected), _) => format!("content root must be {expected}"),
            (None, ResourceType::MgmtObj) => {
                "content root must be a mgmtObj specialization's (m2m:fwr, ...)".to_owned()
            }
            (None, _) => format!("content root must be {}", ty.root()),
        }));
    }
    body.as_object()
        .cloned()
        .ok_or_else(|| RequestError::bad_request("resource content must be an object"))
}

/// What the result of a RETRIEVE or DELETE shows: `rcn` (default attributes), `atrl`
/// (RETRIEVE only), the nesting depth `lvl` of child resources and, for a RETRIEVE, the
/// filter criteria that select which children it holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResultShape<'r> {
    pub rcn: Option<ResultContent>,
    pub atrl: &'r [String],
    pub lvl: Option<u64>,
    /// The request's release: `atrl` may name only what it defines.
    pub release: Option<Release>,
    /// Conditions a child must meet to be part of the result, with `lim` and `ofst`
    /// paging the children; `None`: every child.
    pub children: Option<&'r FilterCriteria>,
}

impl RetrieveRequest {
    /// Filter criteria of a RETRIEVE that is no discovery select the children of the
    /// result and never decide whether the target itself is returned (TS-0001 8.1.2).
    pub fn result_shape(&self) -> ResultShape<'_> {
        ResultShape {
            rcn: self.rcn,
            atrl: &self.atrl,
            lvl: self.fc.lvl,
            release: Release::from_rvi(&self.rvi),
            children: self.fc.is_present().then_some(&self.fc),
        }
    }
}

impl DeleteRequest {
    /// A DELETE's filter criteria are a condition on its target (`delete.rs`), not a
    /// selection of the children its result shows.
    pub fn result_shape(&self) -> ResultShape<'_> {
        ResultShape {
            rcn: self.rcn,
            atrl: &[],
            lvl: self.fc.lvl,
            release: Release::from_rvi(&self.rvi),
            children: None,
        }
    }
}

/// `rqet` and `rset`: each well formed and still ahead (else 4008), and the result not
/// due to expire before the request itself may (TS-0001 8.1.2; TS-0004 7.3.2.1): a
/// result expiring first could never be delivered, so the request is refused with 4000.
fn check_expirations(req: &Request, now: Timestamp) -> Result<(), RequestError> {
    let mut at = [None, None];
    for (slot, (name, value)) in at
        .iter_mut()
        .zip([("rqet", &req.rqet), ("rset", &req.rset)])
    {
        let Some(v) = value else { continue };
        let when = parse_abs_rel(v, now)
            .ok_or_else(|| RequestError::bad_request(format!("{name} is malformed")))?;
        if when <= now {
            return Err(RequestError::RequestTimeout(
                format!("{name} has already passed").into(),
            ));
        }
        *slot = Some(when);
    }
    if let [Some(rqet), Some(rset)] = at {
        if rset < rqet {
            return Err(RequestError::bad_request(
                "rset precedes rqet: the result would expire before the request",
            ));
        }
    }
    Ok(())
}

/// The longest a request may ask its execution to be delayed (`oet`), in seconds: the
/// request (or its non-blocking task) is held that long.
pub(crate) const MAX_EXECUTION_DELAY_SECS: i64 = 300;

/// The `oet` of `req` (TS-0001 8.1.2 Operation Execution Time), checked: when the
/// operation may run, `None` for at once (absent or already passed). Malformed is 4000,
/// further away than [`MAX_EXECUTION_DELAY_SECS`] 4000, not before the request's own
/// expiration (`rqet`) 4008: it would expire before it runs.
pub(crate) fn execution_time(
    req: &Request,
    now: Timestamp,
) -> Result<Option<Timestamp>, RequestError> {
    let Some(oet) = &req.oet else {
        return Ok(None);
    };
    let at =
        parse_abs_rel(oet, now).ok_or_else(|| RequestError::bad_request("oet is malformed"))?;
    if at <= now {
        return Ok(None);
    }
    if at > now.plus_seconds(MAX_EXECUTION_DELAY_SECS) {
        return Err(RequestError::bad_request(format!(
            "oet is more than {MAX_EXECUTION_DELAY_SECS} seconds away"
        )));
    }
    let expires = req.rqet.as_deref().and_then(|v| parse_abs_rel(v, now));
    if expires.is_some_and(|rqet| rqet <= at) {
        return Err(RequestError::RequestTimeout(
            "the request expires (rqet) before its execution time (oet)".into(),
        ));
    }
    Ok(Some(at))
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
    let (rvi, release) = match req.rvi.as_deref() {
        None | Some("") => {
            return Err(RequestError::ReleaseVersionNotSupported(
                "rvi missing: release 1 is not supported".into(),
            ))
        }
        Some(v) => match config.release(v) {
            Some(release) => (v.to_owned(), release),
            None => {
                return Err(RequestError::ReleaseVersionNotSupported(
                    "release version not supported".into(),
                ))
            }
        },
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
    if let (Some(pc), Operation::Create | Operation::Update) = (&req.pc, op) {
        release::check_content(release, pc)?;
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
        None | Some(1) if op == Operation::Retrieve => DiscoveryResultType::Structured,
        Some(2) if op == Operation::Retrieve => DiscoveryResultType::Unstructured,
        None => DiscoveryResultType::Structured,
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
        | Some(ResponseType::NonBlockingAsynch)
        // Performed like a blocking request; the pipeline then drops the response's
        // content (`Cse::handle`, docs/decisions.md).
        | Some(ResponseType::NoResponse) => {}
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
    check_expirations(&req, now)?;
    execution_time(&req, now)?;
    if let Some(ec) = &req.ec {
        if ec.parse::<u16>().map_or(true, |n| {
            !(n == 2 || n == 3 || n == 4 || (100..=999).contains(&n))
        }) {
            return Err(RequestError::bad_request(
                "ec is not a valid event category",
            ));
        }
    }
    let envelope = Envelope {
        op,
        to: req.to,
        fr,
        rvi,
        ty,
        rids: req.rids,
        tkns: req.tkns,
        tids: req.tids,
        ltids: req.ltids,
        tqi: req.tqi.unwrap_or(false),
        rqet: req.rqet,
    };
    // Presence of `pc` was checked above for the operations that need it.
    let present =
        |pc: Option<Value>| pc.ok_or_else(|| RequestError::bad_request("content missing"));
    Ok(match op {
        Operation::Create => Checked::Create(CreateRequest {
            envelope,
            ty: ty.ok_or_else(|| RequestError::bad_request("ty missing"))?,
            pc: present(req.pc)?,
            rcn,
        }),
        Operation::Retrieve => Checked::Retrieve(RetrieveRequest {
            envelope,
            pc: req.pc,
            rcn,
            drt,
            fc: req.fc,
            atrl: req.atrl,
        }),
        Operation::Update => Checked::Update(UpdateRequest {
            envelope,
            pc: present(req.pc)?,
            rcn,
            fc: req.fc,
        }),
        Operation::Delete => Checked::Delete(DeleteRequest {
            envelope,
            rcn,
            fc: req.fc,
        }),
        Operation::Notify => Checked::Notify(NotifyRequest {
            envelope,
            pc: present(req.pc)?,
        }),
    })
}
