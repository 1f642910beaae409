//! UPDATE (TS-0004 §7.3.3.4): attribute policy, `acpi` changes governed by `pvs`
//! (TS-0001 9.6.1.3.2), expiration rules, and container limit changes that evict
//! instances immediately (TS-0004 §7.4.7.2).

use crate::access::Enforcer;
use crate::access::RuleKind;
use crate::audit::AuditKind;
use crate::authz_state::{self, Mode};
use crate::checks::UpdateRequest;
use crate::create::{
    compile_acp, container_row, evict_for, node_row, reject_distributed_authorization,
    resolve_acpi, Flush,
};
use crate::discovery::{require_match, Subject};
use crate::render::wrap;
use crate::resolve::Target;
use crate::Cse;
use bastion_policy::AccessOperation;
use bastion_proto::attrs::{self, Phase};
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType, Response, ResultContent, Rsc};
use bastion_store::WriteOp;
use serde_json::{Map, Value};
use std::sync::Arc;

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
    if ty == ResourceType::CseBase {
        return Err(RequestError::not_allowed("the CSEBase cannot be updated"));
    }
    let content = req.content(ty)?;
    attrs::validate(ty, Phase::Update, &content)?;
    crate::remote_cse::check_update(cse, &req, &ri, ty, &content)?;
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
        access
            .authorize(&Target::Node(ri.clone()), AccessOperation::Update, None)
            .await?
    };
    {
        let tree = cse.tree.read();
        let node = tree
            .get(&ri)
            .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
        let viewer = access;
        require_match(&req.fc, Subject::Node(&tree, node, viewer))?;
    }
    reject_distributed_authorization(ty, &content)?;
    let new_sub = match ty {
        ResourceType::Subscription => Some(resubscribe(cse, &ri, &content).await?),
        _ => None,
    };
    cse.write_guard()?;
    let (pending, attrs, path, notices) = {
        let mut guard = cse.tree.write();
        let tree = &mut *guard;
        let node = tree
            .get(&ri)
            .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
        let parent_et = node
            .pi
            .as_ref()
            .and_then(|p| tree.get(p))
            .and_then(|p| p.et);
        let mut new_et = node.et;
        if let Some(v) = content.get("et") {
            let et = match v {
                Value::Null => now.plus_seconds(cse.config.default_lifetime_secs),
                v => v
                    .as_str()
                    .and_then(Timestamp::parse)
                    .ok_or_else(|| RequestError::bad_request("bad et"))?,
            };
            if et <= now {
                return Err(RequestError::bad_request("expirationTime is in the past"));
            }
            let et = parent_et.map_or(et, |p| et.min(p));
            let child_later =
                node.children
                    .iter()
                    .filter_map(|c| tree.get(c))
                    .any(|c| c.et.is_some_and(|c| c > et))
                    || node.container.as_ref().is_some_and(|s| {
                        s.instances.iter().any(|i| i.et.is_some_and(|e| e > et.0))
                    });
            if child_later {
                return Err(RequestError::bad_request(
                    "expirationTime earlier than a child's",
                ));
            }
            new_et = Some(et);
        }
        let new_acpi = if acpi_change {
            Some(resolve_acpi(
                tree,
                &cse.config,
                content.get("acpi").filter(|v| !v.is_null()),
            )?)
        } else {
            None
        };
        let new_acp = if ty == ResourceType::AccessControlPolicy
            && (content.contains_key("pv") || content.contains_key("pvs"))
        {
            let pick = |k: &str| {
                content
                    .get(k)
                    .or_else(|| node.attrs.get(k))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            Some(Arc::new(compile_acp(cse, &pick("pv"), &pick("pvs"))?))
        } else {
            None
        };
        // Group members and consultation targets are re-validated on the merged
        // attributes before anything changes, so a refused update leaves no trace.
        let new_authz = if matches!(
            ty,
            ResourceType::Group | ResourceType::DynamicAuthorizationConsultation
        ) {
            let mut merged = node.attrs.clone();
            for (k, v) in &content {
                match v {
                    Value::Null => {
                        merged.remove(k);
                    }
                    v => {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
            let state = authz_state::derive(
                tree,
                &cse.config,
                &cse.local,
                cse.tokens.verifier(),
                ty,
                &mut merged,
                now,
                Mode::Write,
            )?;
            Some((merged, state))
        } else {
            None
        };
        let was_disr = node.attrs.get("disr").and_then(Value::as_bool) == Some(true);
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
        if let Some((merged, state)) = new_authz {
            node.attrs = merged;
            node.authz = state;
        }
        if let Some(et) = new_et {
            node.et = Some(et);
            node.attrs.insert("et".into(), Value::String(et.format()));
        }
        if let Some(acpi) = new_acpi {
            node.acpi = acpi;
        }
        if let Some(acp) = new_acp {
            node.acp = Some(acp);
        }
        if let Some(sub) = new_sub {
            node.sub = Some(sub);
        }
        node.attrs.insert("lt".into(), Value::String(now.format()));
        let mut ops = Vec::new();
        if ty == ResourceType::Container {
            let st = node.attrs.get("st").and_then(Value::as_u64).unwrap_or(0) + 1;
            node.attrs.insert("st".into(), Value::from(st));
            let now_disr = node.attrs.get("disr").and_then(Value::as_bool) == Some(true);
            if was_disr && !now_disr {
                // TS-0004 §7.4.7.2: re-enabling retrieval discards every instance.
                if let Some(state) = node.container.as_mut() {
                    **state = Default::default();
                }
                ops.push(WriteOp::DeleteChildren { pi: ri.to_string() });
            }
            ops.extend(evict_for(node, 0, 0, Flush::Now));
            ops.push(WriteOp::Upsert(container_row(node)));
        } else {
            ops.push(WriteOp::Upsert(node_row(node)));
        }
        let (attrs, path) = (node.attrs.clone(), node.path.clone());
        let mut modified: Vec<String> = content.keys().cloned().collect();
        modified.push("lt".into());
        if ty == ResourceType::Container {
            modified.push("st".into());
        }
        let (notices, more) = cse.updated(tree, &ri, &modified, &req.fr);
        ops.extend(more);
        (cse.committer.enqueue(ops), attrs, path, notices)
    };
    pending.durable().await?;
    cse.dispatch(notices).await;
    let changes = [
        (ty == ResourceType::AccessControlPolicy).then_some(AuditKind::AcpUpdate),
        acpi_change.then_some(AuditKind::AcpiChange),
        (ty == ResourceType::Role).then_some(AuditKind::RoleChange),
        (ty == ResourceType::Token).then_some(AuditKind::TokenChange),
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
            Some(wrap(ty, modified))
        }
        _ => Some(wrap(ty, attrs)),
    };
    Ok(resp)
}

/// A `<subscription>` UPDATE: the merged attributes compiled again, and any target not
/// verified before asked now, for the original subscriber (TS-0004 7.3.3.4).
async fn resubscribe(
    cse: &Cse,
    ri: &crate::tree::Ri,
    content: &Map<String, Value>,
) -> Result<Arc<crate::subscription::SubscriptionState>, RequestError> {
    let (merged, parent_ty, old) = {
        let tree = cse.tree.read();
        let node = tree
            .get(ri)
            .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
        let old = node
            .sub
            .clone()
            .ok_or_else(|| RequestError::Internal("subscription state missing".into()))?;
        let parent_ty = node
            .pi
            .as_ref()
            .and_then(|p| tree.get(p))
            .map(|p| p.ty)
            .ok_or_else(|| RequestError::not_found("parent no longer exists"))?;
        let mut merged = node.attrs.clone();
        for (k, v) in content {
            match v {
                Value::Null => merged.remove(k),
                v => merged.insert(k.clone(), v.clone()),
            };
        }
        (merged, parent_ty, old)
    };
    let state = crate::subscription::SubscriptionState::compile(
        &merged,
        parent_ty,
        &old.creator,
        old.authenticated,
    )?;
    let before = old.targets();
    let added: Vec<String> = state
        .targets()
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    let sur = format!("{}/{}", cse.config.cse_id, ri);
    cse.verify_targets(&sur, &old.creator, &added).await?;
    Ok(Arc::new(state))
}
