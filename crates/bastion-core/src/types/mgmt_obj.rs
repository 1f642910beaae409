//! `<mgmtObj>` (TS-0001 9.6.15, TS-0004 7.4.15 and annex D): a management function of a
//! `<node>`. Its specialization (`mgd`) picks its attribute policy and JSON root from
//! the one table in `bastion_proto::attrs::mgmt`; a `mgd` oneM2M defines but this CSE
//! does not serve is 5001, any other 4000. There is no device management adapter: the
//! trigger attributes (`ud`, `in`, `un`, `act`, `dea`, `rbo`, `far`, ...) are stored and
//! nothing is executed (docs/decisions.md, "mgmtObj triggers"). The CMDH specializations
//! are stored policies: their links (`cmlk`, `acmlk`) naming this CSE's resources must
//! name existing ones of the right specialization ([`check_links`]); no request is
//! buffered or forwarded by them (docs/decisions.md, "CMDH policies are data"). The
//! TS-0022 ones add rules over the whole resource (`mgmt::check_whole`: `aa` never names
//! a write-only value, `mesc`/`meil` of a dataCollection apart) and schedule entries
//! parsed as a `<schedule>`'s; write-only values are removed where resources are
//! rendered (`render::for_client`), not here.

use super::node::{link_target, Target};
use super::{Derive, Rederived, ResourceKind};
use crate::authz_state::Mode;
use crate::checks::{mgmt_root, CreateRequest, Envelope};
use crate::tree::{Node as TreeNode, Ri, Tree, TypeState};
use crate::{Cse, CseConfig, RequestContext};
use async_trait::async_trait;
use bastion_proto::attrs::mgmt::{self, LinkTarget, Spec};
use bastion_proto::attrs::{self, Phase};
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};

pub(super) struct MgmtObj;

/// The specialization `content` asks for by its `mgd`.
fn spec_of(content: &Map<String, Value>) -> Result<&'static Spec, RequestError> {
    let mgd = match content.get("mgd") {
        None | Some(Value::Null) => {
            return Err(RequestError::bad_request("mandatory attribute mgd missing"))
        }
        Some(v) => v.as_u64().ok_or_else(|| {
            RequestError::bad_request("attribute mgd must be a non-negative integer")
        })?,
    };
    match mgmt::spec(mgd) {
        Some(spec) => Ok(spec),
        None if mgmt::is_defined(mgd) => Err(RequestError::NotImplemented(
            format!("mgmtObj specialization {mgd} is not implemented").into(),
        )),
        None => Err(RequestError::bad_request(format!("unknown mgd {mgd}"))),
    }
}

#[async_trait]
impl ResourceKind for MgmtObj {
    fn validate(
        &self,
        _ty: ResourceType,
        phase: Phase,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        match phase {
            Phase::Create => {
                attrs::validate_mgmt(spec_of(content)?, phase, content)?;
                check_schedules(content)
            }
            // Checked in `check_update`, against the specialization of the resource.
            Phase::Update => Ok(()),
        }
    }

    async fn prepare(
        &self,
        _cse: &Cse,
        req: &CreateRequest,
        _ctx: &RequestContext,
        content: &Map<String, Value>,
        _parent: &Ri,
    ) -> Result<super::Prepared, RequestError> {
        let spec = spec_of(content)?;
        if mgmt_root(&req.pc).map(|s| s.mgd) != Some(spec.mgd) {
            return Err(RequestError::bad_request(format!(
                "mgd {} is a {} whose content root is {}",
                spec.mgd, spec.name, spec.root
            )));
        }
        Ok(super::Prepared::default())
    }

    fn check_update(
        &self,
        cse: &Cse,
        _req: &Envelope,
        ri: &Ri,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        let tree = cse.tree.read();
        let node = tree
            .get(ri)
            .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
        let spec = node
            .attrs
            .get("mgd")
            .and_then(Value::as_u64)
            .and_then(mgmt::spec)
            .ok_or_else(|| RequestError::bad_request("this mgmtObj has no served mgd"))?;
        attrs::validate_mgmt(spec, Phase::Update, content)?;
        mgmt::check_whole(spec, Some(&node.attrs), content)?;
        check_schedules(content)
    }

    fn derive(
        &self,
        cx: &Derive,
        _ty: ResourceType,
        attrs: &mut Map<String, Value>,
        mode: Mode,
    ) -> Result<TypeState, RequestError> {
        // A stored link may name a resource deleted since; only a write is refused.
        if mode == Mode::Write {
            if let Some(spec) = served(attrs) {
                check_links(cx.tree, cx.config, spec, attrs)?;
            }
        }
        Ok(TypeState::Plain)
    }

    fn rederive(
        &self,
        cx: &Derive,
        node: &TreeNode,
        content: &Map<String, Value>,
    ) -> Result<Option<Rederived>, RequestError> {
        if let Some(spec) = served(&node.attrs) {
            check_links(cx.tree, cx.config, spec, content)?;
        }
        Ok(None)
    }
}

/// The `m2m:scheduleEntries` a `[dataCollection]` carries (`rpsc`, `mesc`): each parsed
/// as a `<schedule>`'s `se` is (4000 otherwise).
fn check_schedules(content: &Map<String, Value>) -> Result<(), RequestError> {
    for name in ["rpsc", "mesc"] {
        if let Some(v) = content.get(name).filter(|v| !v.is_null()) {
            super::schedule::entries_of(name, v)?;
        }
    }
    Ok(())
}

/// The served specialization of a stored or new `<mgmtObj>`.
fn served(attrs: &Map<String, Value>) -> Option<&'static Spec> {
    attrs
        .get("mgd")
        .and_then(Value::as_u64)
        .and_then(mgmt::spec)
}

/// Checks the links of a `spec` in `content` under the tree's lock (TS-0004 D.12;
/// docs/decisions.md, "CMDH links"): each `cmlk` entry, and `acmlk`, naming a resource
/// of this CSE must name an existing one of its target's kind, a `<mgmtObj>` of the
/// `mgd` its `typ` gives (`acmlk`: a `[cmdhPolicy]`) or the `<schedule>` of a
/// `[cmdhNwAccessRule]` (4000 otherwise). Another CSE's resources are not checked.
fn check_links(
    tree: &Tree,
    config: &CseConfig,
    spec: &Spec,
    content: &Map<String, Value>,
) -> Result<(), RequestError> {
    let is_mgmt = |n: &TreeNode, mgd: u64| {
        n.ty == ResourceType::MgmtObj && n.attrs.get("mgd").and_then(Value::as_u64) == Some(mgd)
    };
    if let Some(id) = content.get("acmlk").and_then(Value::as_str) {
        if let Target::Local(target) = link_target(tree, config, id) {
            if !target.is_some_and(|n| is_mgmt(n, mgmt::CMDH_POLICY)) {
                return Err(RequestError::bad_request(
                    "acmlk must name an existing cmdhPolicy",
                ));
            }
        }
    }
    let entries = match content.get("cmlk") {
        Some(Value::Array(entries)) => entries.as_slice(),
        _ => &[],
    };
    for entry in entries {
        let (Some(id), typ) = (
            entry.get("val").and_then(Value::as_str),
            entry.get("typ").and_then(Value::as_u64),
        ) else {
            continue;
        };
        let Target::Local(target) = link_target(tree, config, id) else {
            continue;
        };
        let schedule = spec.links.iter().any(|r| r.target == LinkTarget::Schedule);
        let ok = if schedule {
            target.is_some_and(|n| n.ty == ResourceType::Schedule)
        } else {
            target.zip(typ).is_some_and(|(n, typ)| is_mgmt(n, typ))
        };
        if !ok {
            let wanted = if schedule {
                "schedule".to_owned()
            } else {
                let typ = typ.unwrap_or_default();
                mgmt::spec(typ)
                    .map_or_else(|| format!("mgmtObj of mgd {typ}"), |s| s.name.to_owned())
            };
            return Err(RequestError::bad_request(format!(
                "each cmlk entry must name an existing {wanted}"
            )));
        }
    }
    Ok(())
}
