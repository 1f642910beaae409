//! `<remoteCSE>` (TS-0001 9.6.4): registration and its rules for UPDATE and DELETE.
//! The registration itself, and what routing needs of registered CSEs, live with the
//! CSE's methods in `remote_cse.rs`.

use super::ResourceKind;
use crate::checks::{CreateRequest, Envelope};
use crate::originator::{owner, Owner};
use crate::tree::{Node, Ri, Tree};
use crate::{Cse, CseConfig, RequestContext};
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
        _ri: &Ri,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        cse.check_remote_cse_update(req, content)
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
        let csi = node.attrs.get("csi").and_then(Value::as_str).unwrap_or("");
        check_dcse(cx.config, cx.tree, csi, content.get("dcse"))?;
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

/// `dcse` entries of `csi`'s registration: SP-relative CSE-IDs, neither this CSE, nor the
/// registree itself, nor a CSE registered here directly, nor one another registree
/// already lists (each would let one registree claim another's originators, traffic or
/// announced copies; docs/decisions.md). Called under the tree's write lock, at
/// registration and at UPDATE, so the answer still holds when the list is written.
pub(crate) fn check_dcse(
    config: &CseConfig,
    tree: &Tree,
    csi: &str,
    dcse: Option<&Value>,
) -> Result<(), RequestError> {
    let Some(list) = dcse.and_then(Value::as_array) else {
        return Ok(());
    };
    for entry in list {
        let d = entry.as_str().unwrap_or("");
        let is_cse_id = matches!(owner(&config.sp_id, d), Owner::Cse(c) if c == d);
        if !is_cse_id || d == config.cse_id || d == csi || csr_of(tree, d).is_some() {
            return Err(RequestError::bad_request(
                "dcse must list SP-relative CSE-IDs of CSEs below the registree",
            ));
        }
        if listed_by_another_registree(config, tree, csi, d) {
            return Err(RequestError::bad_request(
                "dcse lists a CSE another registree already lists",
            ));
        }
    }
    Ok(())
}

/// Whether a `<remoteCSE>` other than `csi`'s and the registrar's lists `cse` in its
/// `dcse` (the registrar's list vouches for nothing here).
fn listed_by_another_registree(config: &CseConfig, tree: &Tree, csi: &str, cse: &str) -> bool {
    let Some(base) = tree.get(&tree.base) else {
        return false;
    };
    let registrar = config.registrar.as_deref();
    base.children
        .iter()
        .filter_map(|ri| tree.get(ri))
        .filter(|n| n.ty == ResourceType::RemoteCse)
        .filter(|n| {
            let other = n.attrs.get("csi").and_then(Value::as_str);
            other != Some(csi) && other != registrar
        })
        .any(|n| {
            n.attrs
                .get("dcse")
                .and_then(Value::as_array)
                .is_some_and(|l| l.iter().any(|d| d.as_str() == Some(cse)))
        })
}
