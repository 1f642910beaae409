//! `<pollingChannel>` (TS-0001 9.6.21): only the entity itself creates its own, and an
//! AE has at most one. The channel's queues and its `pcu` live in `pch.rs`.

use super::ResourceKind;
use crate::access::Enforcer;
use crate::audit::AuditRule;
use crate::resolve::Target;
use crate::tree::{Node, Ri, Tree};
use crate::Cse;
use async_trait::async_trait;
use bastion_proto::{RequestError, ResourceType};

pub(super) struct PollingChannel;

#[async_trait]
impl ResourceKind for PollingChannel {
    async fn authorize_create(
        &self,
        cse: &Cse,
        access: &Enforcer<'_>,
        _target: &Target,
        _ty: ResourceType,
        parent: &Ri,
    ) -> Result<AuditRule, RequestError> {
        polling_channel_parent(cse, access, parent)
    }
}

/// Only the AE (or remote CSE) itself may give itself a `<pollingChannel>`, and only one
/// (TS-0001 9.6.21, 10.2.5.x; docs/decisions.md).
fn polling_channel_parent(
    cse: &Cse,
    access: &Enforcer<'_>,
    parent: &Ri,
) -> Result<AuditRule, RequestError> {
    let tree = cse.tree.read();
    let node = tree
        .get(parent)
        .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
    if !access.is_entity_itself(node) {
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
