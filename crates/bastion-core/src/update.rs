//! UPDATE (TS-0004 §7.3.3.4): attribute policy, `acpi` changes governed by `pvs`
//! (TS-0001 9.6.1.3.2) and expiration rules for every type; what a type derives from
//! the new attributes and what it stores is its kind's (`types/`).

use crate::access::Enforcer;
use crate::access::RuleKind;
use crate::audit::AuditKind;
use crate::checks::UpdateRequest;
use crate::discovery::{require_match, Subject};
use crate::render::wrap_as;
use crate::resolve::Target;
use crate::types::{self, resolve_acpi};
use crate::Cse;
use bastion_policy::{AccessOperation, Attributes};
use bastion_proto::attrs::Phase;
use bastion_proto::{RequestError, Response, ResultContent, Rsc};
use serde_json::{Map, Value};

pub(crate) async fn update(
    cse: &Cse,
    req: UpdateRequest,
    access: &Enforcer<'_>,
) -> Result<Response, RequestError> {
    let (ctx, now) = (access.ctx(), access.now());
    let target = cse.resolve(&req, now).await?;
    let Target::Node(ri) = target else {
        return Err(RequestError::not_allowed(
            "contentInstances cannot be updated",
        ));
    };
    let ty = cse
        .tree
        .read()
        .get(&ri)
        .map(|n| n.ty)
        .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
    let kind = types::kind(ty);
    kind.check_updatable()?;
    let content = {
        let tree = cse.tree.read();
        let current = tree.get(&ri).map(|n| &n.attrs);
        kind.representation(&cse.config, ty, &req.pc, current)?
    };
    kind.validate(ty, Phase::Update, &content)?;
    types::check_announcement(&cse.config.flex, ty, &content)?;
    kind.check_update(cse, &req, &ri, &content)?;
    let acpi_change = content.contains_key("acpi");
    if acpi_change && content.len() != 1 {
        return Err(RequestError::bad_request(
            "an update of acpi must not change anything else",
        ));
    }
    // An `acpi` change is decided by `pvs` alone; any other UPDATE like every operation,
    // dynamic authorization included.
    let rule = if acpi_change {
        let tree = cse.tree.read();
        let node = tree
            .get(&ri)
            .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
        access.authorize_node(
            &tree,
            node,
            AccessOperation::Update,
            None,
            RuleKind::SelfPrivileges,
        )?
    } else {
        // Attribute-level access control: a rule limited by `aca` grants the UPDATE when
        // it covers every attribute the content changes.
        let names: Vec<&str> = content.keys().map(String::as_str).collect();
        let target = Target::Node(ri.clone());
        access
            .authorize_attributes(
                &target,
                AccessOperation::Update,
                None,
                Attributes::Named(&names),
            )
            .await?
    };
    if content.contains_key("cstn") {
        let tree = cse.tree.read();
        let node = tree
            .get(&ri)
            .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
        access.authorize_custodian_change(node)?;
    }
    {
        let tree = cse.tree.read();
        let node = tree
            .get(&ri)
            .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
        let viewer = access;
        require_match(&req.fc, Subject::Node(&tree, node, viewer))?;
    }
    kind.check_content(&content)?;
    let prepared = kind.prepare_update(cse, access, &ri, &content).await?;
    // A blocking-update subscription is asked before anything changes.
    cse.blocking_update(&ri, &content, &req.fr).await?;
    cse.write_guard()?;
    let (pending, attrs, path, notices, instance) = {
        let mut guard = cse.tree.write();
        let tree = &mut *guard;
        let node = tree
            .get(&ri)
            .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
        let new_et = types::new_expiration(tree, node, &content, now, &cse.config)?.or(node.et);
        let new_acpi = if acpi_change {
            Some(resolve_acpi(
                tree,
                &cse.config,
                content.get("acpi").filter(|v| !v.is_null()),
            )?)
        } else {
            None
        };
        // A type's new state is derived before anything changes, so a refused update
        // leaves no trace.
        let rederived = match prepared {
            Some(state) => Some(types::Rederived { attrs: None, state }),
            None => kind.rederive(&cse.derive_in(tree, now), node, &content)?,
        };
        let previous: Map<String, Value> = content
            .keys()
            .map(|k| (k.clone(), node.attrs.get(k).cloned().unwrap_or(Value::Null)))
            .collect();
        let node = tree.get_mut(&ri).expect("looked up above");
        for (k, v) in &content {
            match (k.as_str(), v) {
                ("et", _) => {}
                (_, Value::Null) => {
                    node.attrs.remove(k);
                }
                _ => {
                    node.attrs.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(rederived) = rederived {
            if let Some(attrs) = rederived.attrs {
                node.attrs = attrs;
            }
            node.state = rederived.state;
        }
        if let Some(et) = new_et {
            node.et = Some(et);
            node.attrs.insert("et".into(), Value::String(et.format()));
        }
        if let Some(acpi) = new_acpi {
            node.acpi = acpi;
        }
        node.attrs.insert("lt".into(), Value::String(now.format()));
        let written = kind.write_update(node, &previous);
        let mut ops = written.ops;
        let made = kind.instantiate(cse, tree, &ri, Some(&content), &req.fr, now)?;
        ops.extend(made.ops);
        let node = tree
            .get(&ri)
            .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
        let (attrs, path) = (node.attrs.clone(), node.path.clone());
        let mut modified: Vec<String> = content.keys().cloned().collect();
        modified.push("lt".into());
        modified.extend(written.also_modified.iter().map(|m| m.to_string()));
        let (mut notices, more) = cse.updated(tree, &ri, &modified, &req.fr);
        ops.extend(more);
        notices.extend(made.notices);
        let instance = made.instance;
        (cse.committer.enqueue(ops), attrs, path, notices, instance)
    };
    let written = Written {
        kind,
        cse,
        ri: &ri,
        durable: None,
    };
    let durable = pending.durable().await;
    written.settle(durable.is_ok());
    durable?;
    cse.dispatch(notices).await;
    // A policy's own change is logged before the `acpi` change, other types' after.
    let own = kind.audited().map(|a| a.update);
    let changes = [
        own.filter(|k| *k == AuditKind::AcpUpdate),
        acpi_change.then_some(AuditKind::AcpiChange),
        own.filter(|k| *k != AuditKind::AcpUpdate),
    ];
    cse.audit_changes(
        &req.fr,
        ctx,
        AccessOperation::Update,
        Rsc::Updated,
        &rule,
        changes
            .into_iter()
            .flatten()
            .map(|kind| (kind, path.as_str())),
    );
    let attrs = cse.announce_updated(&ri, &content, attrs).await;
    // The instance the UPDATE made goes under the copies as they are now.
    if let Some(instance) = instance {
        cse.announce_instance(&ri, (*instance).clone()).await;
    }
    let root = types::root_of(&cse.config, &cse.tree.read(), ty, &attrs);
    let mut resp = Response::new(Rsc::Updated, String::new());
    resp.pc = match req.rcn.unwrap_or(ResultContent::Attributes) {
        ResultContent::Nothing => None,
        ResultContent::ModifiedAttributes => {
            let modified: Map<String, Value> = attrs
                .into_iter()
                .filter(|(k, v)| {
                    content.get(k) != Some(v) && (content.contains_key(k) || k == "lt" || k == "st")
                })
                .collect();
            Some(wrap_as(&root, modified))
        }
        _ => Some(wrap_as(&root, attrs)),
    };
    Ok(resp)
}

/// Tells the resource's kind when its UPDATE's write is settled
/// ([`types::ResourceKind::written`]): once the store answered, or when the request is
/// dropped while it waits (the write was enqueued and goes on, so taken as durable).
struct Written<'a> {
    kind: &'static dyn types::ResourceKind,
    cse: &'a Cse,
    ri: &'a crate::tree::Ri,
    durable: Option<bool>,
}

impl Written<'_> {
    fn settle(mut self, durable: bool) {
        self.durable = Some(durable);
    }
}

impl Drop for Written<'_> {
    fn drop(&mut self) {
        self.kind
            .written(self.cse, self.ri, self.durable.unwrap_or(true));
    }
}
