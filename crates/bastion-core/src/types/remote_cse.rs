//! `<remoteCSE>` (TS-0001 9.6.4): registration and its rules for UPDATE and DELETE.
//! The registration itself, and what routing needs of registered CSEs, live with the
//! CSE's methods in `remote_cse.rs`.

use super::ResourceKind;
use crate::checks::{CreateRequest, Envelope};
use crate::tree::{Node, Ri, Tree};
use crate::{Cse, RequestContext};
use async_trait::async_trait;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType, Response};
use serde_json::{Map, Value};

pub(super) struct RemoteCse;

#[async_trait]
impl ResourceKind for RemoteCse {
    async fn register(
        &self,
        cse: &Cse,
        req: &CreateRequest,
        ctx: &RequestContext,
        parent: &Ri,
        now: Timestamp,
    ) -> Option<Result<Response, RequestError>> {
        Some(cse.register_remote_cse(req, ctx, parent, now).await)
    }

    fn check_update(
        &self,
        cse: &Cse,
        req: &Envelope,
        ri: &Ri,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        cse.check_remote_cse_update(req, ri, content)
    }

    fn check_delete(&self, cse: &Cse, req: &Envelope) -> Result<(), RequestError> {
        cse.check_remote_cse_delete(req)
    }

    fn binds_identity(&self) -> bool {
        true
    }

    /// The registree's `<CSEBaseAnnc>` (under the CSEBase, where ACME announces) goes
    /// with its registration, as its copies under the `<remoteCSE>` do; so do those of
    /// the CSEs its `dcse` lists, which announced through it (docs/decisions.md).
    fn linked(&self, tree: &crate::tree::Tree, node: &crate::tree::Node) -> Vec<Ri> {
        let csi = node.attrs.get("csi").and_then(Value::as_str);
        let dcse = node
            .attrs
            .get("dcse")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        // A listed CSE that has since registered here itself holds its copy on its own
        // registration, not on this one.
        let through_this = dcse.filter(|c| csr_of(tree, c).is_none());
        csi.into_iter()
            .chain(through_this)
            .filter_map(|c| super::announced::cse_base_copy_of(tree, c))
            .collect()
    }

    fn rederive(
        &self,
        cx: &super::Derive,
        node: &crate::tree::Node,
        content: &Map<String, Value>,
    ) -> Result<Option<super::Rederived>, RequestError> {
        super::node::rederive_links(cx, node, content)
    }
}

/// The `<remoteCSE>` node registered for `csi`, if any (expired ones included: the
/// CSE-ID stays taken until the sweep removes it).
pub(crate) fn csr_of<'t>(tree: &'t Tree, csi: &str) -> Option<&'t Node> {
    let base = tree.get(&tree.base)?;
    base.children
        .iter()
        .filter_map(|ri| tree.get(ri))
        .find(|n| {
            n.ty == ResourceType::RemoteCse
                && n.attrs.get("csi").and_then(Value::as_str) == Some(csi)
        })
}
