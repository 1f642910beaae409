//! CREATE (TS-0004 §7.3.3.2): the steps every resource type goes through, asking the
//! type's kind (`types/`) at each: refusal of the type, the parent, registrations, the
//! access decision, the attribute policy, preparation, derived state, the durable write,
//! notifications and audit.

use crate::access::Enforcer;
use crate::audit::{AuditKind, AuditRule};
use crate::authz_state::Mode;
use crate::checks::CreateRequest;
use crate::tree::{Node, Ri};
use crate::types::{
    self, common, created, new_ri, node_row, resolve_acpi, universal, NewNode, ResourceKind,
};
use crate::{Cse, RequestContext};
use bastion_policy::AccessOperation;
use bastion_proto::attrs::Phase;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType, Response, Rsc};
use bastion_store::WriteOp;
use serde_json::{Map, Value};

pub(crate) async fn create(
    cse: &Cse,
    req: CreateRequest,
    access: &Enforcer<'_>,
) -> Result<Response, RequestError> {
    let (ctx, now) = (access.ctx(), access.now());
    let ty = req.ty;
    let kind = types::kind(ty);
    kind.check_creatable()?;
    let target = cse.resolve(&req, now).await?;
    let parent = match target.create_parent() {
        Ok(parent) => parent.clone(),
        Err(e) => return Err(kind.refuse_parent(ty, e)),
    };
    if let Some(registered) = kind.register(cse, &req, ctx, &parent, now).await {
        return registered;
    }
    let rule = kind
        .authorize_create(cse, access, &target, ty, &parent)
        .await?;
    {
        let tree = cse.tree.read();
        let parent_ty = tree.get(&parent).map(|n| n.ty);
        if !parent_ty.is_some_and(|p| types::kind(p).allows_child(p, ty)) {
            return Err(kind.not_a_child(ty));
        }
    }
    // The content is read only now: an unimplemented type has no attribute policy, and
    // must be answered 5001 whatever its content (TS-0004 7.3.3.2).
    let mut content = kind.representation(&cse.config, ty, &req.pc, None)?;
    kind.validate(ty, Phase::Create, &content)?;
    if let Some(created) = kind
        .create_entry(cse, &req, &mut content, &parent, now)
        .await
    {
        return created;
    }
    create_node(cse, &req, (ty, kind), content, &parent, now, (ctx, rule)).await
}

async fn create_node(
    cse: &Cse,
    req: &CreateRequest,
    (ty, kind): (ResourceType, &dyn ResourceKind),
    mut content: Map<String, Value>,
    parent_ri: &Ri,
    now: Timestamp,
    (ctx, rule): (&RequestContext, AuditRule),
) -> Result<Response, RequestError> {
    kind.check_content(&content)?;
    let prepared = kind.prepare(cse, req, ctx, &content, parent_ri).await?;
    cse.write_guard()?;
    let (pending, attrs, path, sets_acpi, notices, instance) = {
        let mut tree = cse.tree.write();
        let (seq, ri) = match prepared.id {
            Some(id) => id,
            None => {
                let seq = tree.next_seq();
                (seq, new_ri(ty, seq))
            }
        };
        kind.check_locked(cse, &tree, req, parent_ri)?;
        let parent = tree
            .get(parent_ri)
            .ok_or_else(|| RequestError::not_found("parent no longer exists"))?;
        let c = common(
            ty,
            &tree,
            parent,
            &mut content,
            || ri.clone(),
            &cse.config,
            now,
        )?;
        let acpi = resolve_acpi(&tree, &cse.config, content.get("acpi"))?;
        let path = format!("{}/{}", parent.path, c.rn);
        let mut attrs = universal(ty, &ri, &c.rn, parent_ri, now, c.et);
        if c.creator_attr {
            attrs.insert("cr".into(), Value::String(req.fr.clone()));
        }
        kind.initial_attrs(&mut attrs);
        attrs.extend(content);
        attrs.extend(prepared.defaults);
        let new = NewNode {
            ri: &ri,
            parent: parent_ri,
            acpi: &acpi,
            creator: &req.fr,
            authenticated: ctx.authenticated,
            config: &cse.config,
            now,
        };
        let companions = kind.companions(&mut tree, &new, &mut attrs)?;
        let state = match prepared.state {
            Some(state) => state,
            None => kind.derive(&cse.derive_in(&tree, now), ty, &mut attrs, Mode::Write)?,
        };
        let mut node = Node::new(
            ty,
            &ri,
            Some(parent_ri.clone()),
            c.rn,
            path,
            seq,
            attrs,
            Some(req.fr.clone()),
            Some(c.et),
        );
        node.state = state;
        let sets_acpi = !acpi.is_empty();
        node.acpi = acpi;
        let row = node_row(&node);
        let attrs = node.attrs.clone();
        let path = node.path.clone();
        tree.insert(node);
        let (mut notices, mut ops) = cse.child_created(&mut tree, parent_ri, ty, &attrs, &req.fr);
        ops.insert(0, WriteOp::Upsert(row));
        // Instances the CSE makes of the new resource (`<flexContainerInstance>`).
        let new_ri = Ri::from(ri.as_str());
        let made = kind.instantiate(cse, &mut tree, &new_ri, None, &req.fr, now)?;
        let attrs = if made.ops.is_empty() {
            attrs
        } else {
            ops.extend(made.ops);
            notices.extend(made.notices);
            tree.get(&ri).map_or(attrs, |n| n.attrs.clone())
        };
        for companion in companions {
            let (cty, cattrs) = (companion.ty, companion.attrs.clone());
            ops.push(WriteOp::Upsert(node_row(&companion)));
            // A companion may live elsewhere (a crossResourceSubscription's targets).
            let cparent = companion.pi.clone().unwrap_or_else(|| parent_ri.clone());
            tree.insert(companion);
            let (more, more_ops) = cse.child_created(&mut tree, &cparent, cty, &cattrs, &req.fr);
            notices.extend(more);
            ops.extend(more_ops);
        }
        let instance = made.instance.map(|i| (new_ri, i));
        (
            cse.committer.enqueue(ops),
            attrs,
            path,
            sets_acpi,
            notices,
            instance,
        )
    };
    pending.durable().await?;
    cse.dispatch(notices).await;
    // A policy's own creation is logged before the `acpi` change, other types' after.
    let own = kind.audited().map(|a| a.create);
    let changes = [
        own.filter(|k| *k == AuditKind::AcpCreate),
        sets_acpi.then_some(AuditKind::AcpiChange),
        own.filter(|k| *k != AuditKind::AcpCreate),
    ];
    cse.audit_changes(
        &req.fr,
        ctx,
        AccessOperation::Create,
        Rsc::Created,
        &rule,
        changes
            .into_iter()
            .flatten()
            .map(|kind| (kind, path.as_str())),
    );
    let attrs = cse.announce_created(attrs).await;
    // The instance made with it goes under the copies just made.
    if let Some((ri, instance)) = instance {
        cse.announce_instance(&ri, (*instance).clone()).await;
    }
    created(cse, req, ty, attrs)
}
