//! DELETE (TS-0004 §7.3.3.5): a resource with its whole subtree, or one instance of a
//! container (also through `la`/`ol`) with the container's counters kept exact. Expiry
//! uses the same removal paths.

use crate::access::Enforcer;
use crate::audit::AuditKind;
use crate::checks::DeleteRequest;
use crate::discovery::{require_match, Subject};
use crate::notify::counted_rows;
use crate::resolve::Target;
use crate::retrieve::{instance_attrs, shape};
use crate::tree::{Ri, Tree};
use crate::types::{self, instance_type, remove_instance, remove_node};
use crate::Cse;
use bastion_policy::AccessOperation;
use bastion_proto::{RequestError, Response, ResultContent, Rsc};
use serde_json::Value;
use std::sync::Arc;

pub(crate) async fn delete(
    cse: &Cse,
    req: DeleteRequest,
    access: &Enforcer<'_>,
) -> Result<Response, RequestError> {
    let (ctx, now) = (access.ctx(), access.now());
    let target = cse.resolve(&req, now).await?;
    if let Target::Node(ri) = &target {
        if **ri == *cse.tree.read().base {
            return Err(RequestError::not_allowed("the CSEBase cannot be deleted"));
        }
    }
    if let Target::Node(ri) = &target {
        let ty = cse.tree.read().get(ri).map(|n| n.ty);
        if let Some(ty) = ty {
            types::kind(ty).check_delete(cse, &req)?;
        }
    }
    let rule = access
        .authorize(&target, AccessOperation::Delete, None)
        .await?;
    let rcn = req.rcn.unwrap_or(ResultContent::Nothing);
    let (ty, attrs, node) = match &target {
        Target::Node(ri) => {
            let tree = cse.tree.read();
            let n = tree
                .get(ri)
                .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
            (n.ty, Arc::new(n.attrs.clone()), Some(ri.clone()))
        }
        Target::Instance { parent, ri, .. } => {
            let attrs = instance_attrs(cse, parent, Some(ri), None).await?;
            (instance_type(&attrs), attrs, None)
        }
        Target::Virtual { parent, which } => {
            let attrs = instance_attrs(cse, parent, None, Some(*which)).await?;
            (instance_type(&attrs), attrs, None)
        }
    };
    match &node {
        Some(ri) => {
            let tree = cse.tree.read();
            let n = tree
                .get(ri)
                .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
            let viewer = access;
            require_match(&req.fc, Subject::Node(&tree, n, viewer))?;
        }
        None => require_match(&req.fc, Subject::Instance(&attrs))?,
    }
    let shaped = if rcn == ResultContent::Nothing {
        None
    } else {
        Some(
            shape(
                cse,
                req.result_shape(),
                access,
                ty,
                attrs.clone(),
                node.as_ref(),
            )
            .await?,
        )
    };
    cse.write_guard()?;
    let mut deleted_acps = Vec::new();
    let mut ended = Vec::new();
    let mut copies = Vec::new();
    let (pending, notices) = {
        let mut tree = cse.tree.write();
        let (ops, notices) = match &target {
            Target::Node(ri) => {
                deleted_acps = audited_under(&tree, ri);
                let mut ops = Vec::new();
                let mut notices = crate::notify::Notices::default();
                // The resource, then what goes with it (a locationPolicy's container).
                for ri in std::iter::once(ri.clone()).chain(types::linked(&tree, ri)) {
                    copies.extend(crate::announce::copies_under(&tree, &ri));
                    let (more, gone, counted) = cse.on_remove(&mut tree, &ri, &req.fr);
                    notices.extend(more);
                    ended.extend(gone);
                    ops.extend(remove_node(&mut tree, &ri));
                    ops.extend(counted_rows(&tree, &counted));
                }
                (ops, notices)
            }
            Target::Instance { parent, ri, seq } => {
                let mut ops = remove_instance(&mut tree, parent, ri, Some(*seq))
                    .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
                let (notices, more) = cse.child_deleted(&mut tree, parent, &attrs, &req.fr);
                ops.extend(more);
                (ops, notices)
            }
            Target::Virtual { parent, .. } => {
                let ri = attrs.get("ri").and_then(Value::as_str).unwrap_or("");
                let mut ops = remove_instance(&mut tree, parent, ri, None)
                    .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
                let (notices, more) = cse.child_deleted(&mut tree, parent, &attrs, &req.fr);
                ops.extend(more);
                (ops, notices)
            }
        };
        (cse.committer.enqueue(ops), notices)
    };
    pending.durable().await?;
    if let Target::Node(ri) = &target {
        cse.polling.remove(ri);
    }
    cse.dispatch(notices).await;
    for (ri, state) in ended {
        cse.subscription_ended(&ri, &state);
    }
    cse.withdraw(copies).await;
    cse.audit_changes(
        &req.fr,
        ctx,
        AccessOperation::Delete,
        Rsc::Deleted,
        &rule,
        deleted_acps
            .iter()
            .map(|(kind, path)| (*kind, path.as_str())),
    );
    Ok(match shaped {
        Some(shaped) => shaped.into_response(Rsc::Deleted),
        None => Response::new(Rsc::Deleted, String::new()),
    })
}

/// The audited resources (`<accessControlPolicy>`, `<role>`, `<token>`: `types/`) in the subtree
/// rooted at `ri`, with their paths: the audit log records each one a DELETE removes,
/// also when it goes with an ancestor.
fn audited_under(tree: &Tree, ri: &Ri) -> Vec<(AuditKind, String)> {
    let mut out = Vec::new();
    let mut stack = vec![ri.clone()];
    while let Some(next) = stack.pop() {
        if let Some(n) = tree.get(&next) {
            if let Some(audited) = types::kind(n.ty).audited() {
                out.push((audited.delete, n.path.clone()));
            }
            stack.extend(n.children.iter().cloned());
        }
    }
    out
}
