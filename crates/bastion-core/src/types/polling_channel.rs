//! `<pollingChannel>` (TS-0001 9.6.21): only the entity itself creates its own, and an
//! AE has at most one. The channel's queues and its `pcu` live in `pch.rs`.

use super::ResourceKind;
use crate::audit::AuditRule;
use crate::checks::Checked;
use crate::resolve::Target;
use crate::tree::{Node, Ri, Tree};
use crate::{Cse, RequestContext};
use async_trait::async_trait;
use bastion_proto::{RequestError, ResourceType};
use serde_json::Value;

pub(super) struct PollingChannel;

#[async_trait]
impl ResourceKind for PollingChannel {
    async fn authorize_create(
        &self,
        cse: &Cse,
        req: &Checked,
        ctx: &RequestContext,
        _target: &Target,
        _ty: ResourceType,
        parent: &Ri,
    ) -> Result<AuditRule, RequestError> {
        polling_channel_parent(cse, req, ctx, parent)
    }
}

/// Only the AE (or remote CSE) itself may give itself a `<pollingChannel>`, and only one
/// (TS-0001 9.6.21, 10.2.5.x; docs/decisions.md).
fn polling_channel_parent(
    cse: &Cse,
    req: &Checked,
    ctx: &RequestContext,
    parent: &Ri,
) -> Result<AuditRule, RequestError> {
    let tree = cse.tree.read();
    let node = tree
        .get(parent)
        .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
    let owner = match node.ty {
        ResourceType::Ae => node.attrs.get("aei").and_then(Value::as_str),
        ResourceType::RemoteCse => node.attrs.get("csi").and_then(Value::as_str),
        _ => None,
    };
    let fr = bastion_policy::normalize_originator(&cse.local, &req.fr);
    let is_owner = owner.is_some_and(|o| bastion_policy::normalize_originator(&cse.local, o) == fr);
    if !is_owner || (ctx.identity.is_some() && !ctx.authenticated) {
        return Err(RequestError::NoPrivilege(
            "only the entity itself may create its polling channel".into(),
        ));
    }
    if node.ty == ResourceType::Ae && channel_of(&tree, node).is_some() {
        return Err(RequestError::Conflict(
            "this AE already has a polling channel".into(),
        ));
    }
    Ok(AuditRule::Creator)
}

/// The `<pollingChannel>` child of an AE, if it has one.
pub(crate) fn channel_of(tree: &Tree, ae: &Node) -> Option<Ri> {
    ae.children
        .iter()
        .filter_map(|c| tree.get(c))
        .find(|c| c.ty == ResourceType::PollingChannel)
        .map(|c| c.ri.clone())
}

/// Whether `originator` owns the channel `pch` (its parent AE or remote CSE).
pub(crate) fn owns(cse: &Cse, tree: &Tree, pch: &Node, originator: &str) -> bool {
    let Some(parent) = pch.pi.as_ref().and_then(|p| tree.get(p)) else {
        return false;
    };
    let owner = match parent.ty {
        ResourceType::Ae => parent.attrs.get("aei").and_then(Value::as_str),
        ResourceType::RemoteCse => parent.attrs.get("csi").and_then(Value::as_str),
        _ => None,
    };
    owner.is_some_and(|owner| {
        bastion_policy::normalize_originator(&cse.local, owner)
            == bastion_policy::normalize_originator(&cse.local, originator)
    })
}
