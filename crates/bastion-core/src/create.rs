//! CREATE (TS-0004 §7.3.3.2): `<AE>` registration (TS-0001 §10.2.2.2), generic resource
//! creation, and `<contentInstance>` creation with container semantics (TS-0004 §7.4.7.2:
//! size limits, eviction of the oldest instances, counters, state tag).

use crate::access::Enforcer;
use crate::audit::{AuditKind, AuditRule};
use crate::authz_state::{self, Mode};
use crate::checks::CreateRequest;
use crate::render::{store_body, wrap};
use crate::tree::{AcpRules, AuthzState, Instance, Node, Ri, Tree};
use crate::{Cse, CseConfig, RequestContext};
use bastion_policy::{AccessOperation, RuleSet};
use bastion_proto::attrs::{self, Phase};
use bastion_proto::id;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType, Response, ResultContent, Rsc};
use bastion_store::{RowKind, StoredResource, WriteOp};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Names a container's virtual children use; no real child may take them.
const RESERVED_UNDER_CONTAINER: [&str; 2] = ["la", "ol"];

pub(crate) async fn create(
    cse: &Cse,
    req: CreateRequest,
    access: &Enforcer<'_>,
) -> Result<Response, RequestError> {
    let (ctx, now) = (access.ctx(), access.now());
    let ty = req.ty;
    if ty == ResourceType::CseBase {
        return Err(RequestError::not_allowed("a CSEBase cannot be created"));
    }
    let target = cse.resolve(&req, now).await?;
    let parent = match target.create_parent() {
        Ok(parent) => parent.clone(),
        Err(_) if ty == ResourceType::Subscription => {
            return Err(RequestError::TargetNotSubscribable(
                "this resource cannot be subscribed to".into(),
            ))
        }
        Err(e) => return Err(e),
    };
    if ty == ResourceType::Ae {
        let content = req.content(ty)?;
        return register_ae(cse, &req, ctx, content, &parent, now).await;
    }
    if ty == ResourceType::RemoteCse {
        let content = req.content(ty)?;
        return crate::remote_cse::register(cse, &req, ctx, content, &parent, now).await;
    }
    // Subscribing needs RETRIEVE privilege on the subscribed-to resource, not CREATE
    // (TS-0001 10.2.11.2; docs/decisions.md).
    let (op, create_type) = match ty {
        ResourceType::Subscription => (AccessOperation::Retrieve, None),
        _ => (AccessOperation::Create, Some(ty.number())),
    };
    let rule = if ty == ResourceType::PollingChannel {
        polling_channel_parent(cse, access, &parent)?
    } else {
        access.authorize(&target, op, create_type).await?
    };
    {
        let tree = cse.tree.read();
        let parent_ty = tree.get(&parent).map(|n| n.ty);
        if !parent_ty.is_some_and(|p| p.allows_child(ty)) {
            if ty == ResourceType::Subscription {
                return Err(RequestError::TargetNotSubscribable(
                    "this resource cannot be subscribed to".into(),
                ));
            }
            if !ty.is_creatable() {
                return Err(RequestError::NotImplemented(
                    format!("resource type {} is not implemented", ty.number()).into(),
                ));
            }
            return Err(RequestError::InvalidChildType(
                "this parent cannot hold that resource type".into(),
            ));
        }
    }
    // The content is read only now: an unimplemented type has no attribute policy, and
    // must be answered 5001 whatever its content (TS-0004 7.3.3.2).
    let content = req.content(ty)?;
    attrs::validate(ty, Phase::Create, &content)?;
    if ty == ResourceType::ContentInstance {
        create_instance(cse, &req, content, &parent, now).await
    } else {
        create_node(cse, &req, ty, content, &parent, now, (ctx, rule)).await
    }
}

/// Settings that CREATE of any type shares.
pub(crate) struct Common {
    pub rn: String,
    pub et: Timestamp,
    pub creator_attr: bool,
}

/// `rn`, `et` and `cr` handling shared by every type.
pub(crate) fn common(
    tree: &Tree,
    parent: &Node,
    content: &mut Map<String, Value>,
    generated: impl FnOnce() -> String,
    config: &CseConfig,
    now: Timestamp,
) -> Result<Common, RequestError> {
    let rn = match content.remove("rn") {
        Some(Value::String(rn)) => {
            id::validate_resource_name(&rn)?;
            if parent.container.is_some() && RESERVED_UNDER_CONTAINER.contains(&rn.as_str()) {
                return Err(RequestError::bad_request("la and ol are reserved names"));
            }
            // `fopt` is a group's fan-out point (TS-0001 9.6.14), never a child.
            if parent.ty == ResourceType::Group && rn == crate::fanout::FOPT {
                return Err(RequestError::bad_request("fopt is a reserved name"));
            }
            rn
        }
        _ => generated(),
    };
    if tree.name_taken(parent, &rn) {
        return Err(RequestError::Conflict(
            "a sibling already has this resource name".into(),
        ));
    }
    let ceiling = parent.et.unwrap_or(bastion_proto::time::MAX);
    let et = match content.remove("et") {
        Some(Value::String(s)) => {
            let et = Timestamp::parse(&s).ok_or_else(|| RequestError::bad_request("bad et"))?;
            if et <= now {
                return Err(RequestError::bad_request("expirationTime is in the past"));
            }
            et.min(ceiling)
        }
        _ => now.plus_seconds(config.default_lifetime_secs).min(ceiling),
    };
    let creator_attr = matches!(content.remove("cr"), Some(Value::Null));
    if content
        .get("at")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(RequestError::NotImplemented(
            "announcement is not supported yet".into(),
        ));
    }
    // Null optional attributes in a CREATE mean "no value".
    content.retain(|_, v| !v.is_null());
    Ok(Common {
        rn,
        et,
        creator_attr,
    })
}

/// Builds the universal attributes in wire order.
pub(crate) fn universal(
    ty: ResourceType,
    ri: &str,
    rn: &str,
    pi: &str,
    now: Timestamp,
    et: Timestamp,
) -> Map<String, Value> {
    let ts = now.format();
    let mut m = Map::new();
    m.insert("ty".into(), Value::from(ty.number()));
    m.insert("ri".into(), Value::String(ri.to_owned()));
    m.insert("rn".into(), Value::String(rn.to_owned()));
    m.insert("pi".into(), Value::String(pi.to_owned()));
    m.insert("ct".into(), Value::String(ts.clone()));
    m.insert("lt".into(), Value::String(ts));
    m.insert("et".into(), Value::String(et.format()));
    m
}

/// Digits of the creation-order part of resource IDs, in ascending ASCII order so IDs
/// sort by creation.
const ORDERED_DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh resource ID: the type's short name, the creation sequence number as 8 base-62
/// digits, then 8 random alphanumerics (~47 bits). Sorting by creation keeps storage index
/// inserts at the end of their B-trees (few dirty pages per commit); the random part means
/// an ID is never handed out again even if a sequence number is, after the newest
/// resources were deleted and the CSE restarted.
pub(crate) fn new_ri(ty: ResourceType, seq: i64) -> String {
    let mut ri = String::with_capacity(ty.short_name().len() + 16);
    ri.push_str(ty.short_name());
    let mut digits = [b'0'; 8];
    let mut n = seq.max(0) as u64;
    for d in digits.iter_mut().rev() {
        *d = ORDERED_DIGITS[(n % 62) as usize];
        n /= 62;
    }
    ri.extend(digits.iter().map(|&b| b as char));
    Alphanumeric.append_string(&mut rand::rng(), &mut ri, 8);
    ri
}

/// Resolves one `acpi` entry to an existing `<accessControlPolicy>` of this CSE.
pub(crate) fn resolve_acp_id(tree: &Tree, config: &CseConfig, id: &str) -> Option<Ri> {
    authz_state::resolve_local(tree, config, id)
        .filter(|n| n.ty == ResourceType::AccessControlPolicy)
        .map(|n| n.ri.clone())
}

/// Checks an `acpi` value and resolves it; every entry must name an existing ACP.
pub(crate) fn resolve_acpi(
    tree: &Tree,
    config: &CseConfig,
    value: Option<&Value>,
) -> Result<Vec<Ri>, RequestError> {
    let Some(list) = value.and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|v| {
            v.as_str()
                .and_then(|id| resolve_acp_id(tree, config, id))
                .ok_or_else(|| {
                    RequestError::bad_request(
                        "acpi names a resource that is not an accessControlPolicy",
                    )
                })
        })
        .collect()
}

/// Distributed authorization (`adri`/`apri`/`airi`, TS-0003 7.5) is not implemented:
/// accepting the attributes would promise decisions that never happen.
pub(crate) fn reject_distributed_authorization(
    ty: ResourceType,
    content: &Map<String, Value>,
) -> Result<(), RequestError> {
    if ty == ResourceType::AccessControlPolicy
        && ["adri", "apri", "airi"]
            .iter()
            .any(|k| content.contains_key(*k))
    {
        return Err(RequestError::NotImplemented(
            "distributed authorization is not supported yet".into(),
        ));
    }
    Ok(())
}

/// Compiles `pv`/`pvs` of an ACP's content (TS-0003 7.1.2; `pvs` needs at least one rule).
pub(crate) fn compile_acp(cse: &Cse, pv: &Value, pvs: &Value) -> Result<AcpRules, RequestError> {
    let parse = |name: &str, v: &Value| {
        RuleSet::parse(v, &cse.local).map_err(|e| RequestError::bad_request(format!("{name}: {e}")))
    };
    let rules = AcpRules {
        pv: parse("pv", pv)?,
        pvs: parse("pvs", pvs)?,
    };
    if rules.pvs.is_empty() {
        return Err(RequestError::bad_request("pvs must hold at least one rule"));
    }
    Ok(rules)
}

async fn create_node(
    cse: &Cse,
    req: &CreateRequest,
    ty: ResourceType,
    mut content: Map<String, Value>,
    parent_ri: &Ri,
    now: Timestamp,
    (ctx, rule): (&RequestContext, AuditRule),
) -> Result<Response, RequestError> {
    reject_distributed_authorization(ty, &content)?;
    let prepared = match ty {
        ResourceType::Subscription => {
            // Also before the verification request, which a refused one must not cost.
            let max = cse.config.max_subscriptions_per_originator;
            check_subscription_cap(&cse.tree.read(), &req.fr, max)?;
            Some(prepare_subscription(cse, req, ctx, &content, parent_ri).await?)
        }
        _ => None,
    };
    let acp = if ty == ResourceType::AccessControlPolicy {
        Some(Arc::new(compile_acp(
            cse,
            content.get("pv").unwrap_or(&Value::Null),
            content.get("pvs").unwrap_or(&Value::Null),
        )?))
    } else {
        None
    };
    cse.write_guard()?;
    let (pending, attrs, path, sets_acpi, notices) = {
        let mut tree = cse.tree.write();
        let (seq, ri) = match &prepared {
            Some(p) => (p.seq, p.ri.clone()),
            None => {
                let seq = tree.next_seq();
                (seq, new_ri(ty, seq))
            }
        };
        if ty == ResourceType::Subscription {
            check_subscription_cap(&tree, &req.fr, cse.config.max_subscriptions_per_originator)?;
        }
        let parent = tree
            .get(parent_ri)
            .ok_or_else(|| RequestError::not_found("parent no longer exists"))?;
        let c = common(&tree, parent, &mut content, || ri.clone(), &cse.config, now)?;
        let acpi = resolve_acpi(&tree, &cse.config, content.get("acpi"))?;
        let path = format!("{}/{}", parent.path, c.rn);
        let mut attrs = universal(ty, &ri, &c.rn, parent_ri, now, c.et);
        if c.creator_attr {
            attrs.insert("cr".into(), Value::String(req.fr.clone()));
        }
        if ty == ResourceType::Container {
            attrs.insert("st".into(), Value::from(0));
            attrs.insert("cni".into(), Value::from(0));
            attrs.insert("cbs".into(), Value::from(0));
        }
        attrs.extend(content);
        let authz = authz_state::derive(
            &tree,
            &cse.config,
            &cse.local,
            cse.tokens.verifier(),
            ty,
            &mut attrs,
            now,
            Mode::Write,
        )?;
        if let Some(AuthzState::Token(token)) = authz.as_deref() {
            if tree.token_named(&token.token.token_id).is_some() {
                return Err(RequestError::Conflict(
                    "a token with this tkid is already stored".into(),
                ));
            }
        }
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
        node.acp = acp;
        node.authz = authz;
        node.sub = prepared.map(|p| p.state);
        let sets_acpi = !acpi.is_empty();
        node.acpi = acpi;
        let row = node_row(&node);
        let attrs = node.attrs.clone();
        let path = node.path.clone();
        tree.insert(node);
        let (notices, mut ops) = cse.child_created(&mut tree, parent_ri, ty, &attrs, &req.fr);
        ops.insert(0, WriteOp::Upsert(row));
        (cse.committer.enqueue(ops), attrs, path, sets_acpi, notices)
    };
    pending.durable().await?;
    cse.dispatch(notices).await;
    let changes = [
        (ty == ResourceType::AccessControlPolicy).then_some(AuditKind::AcpCreate),
        sets_acpi.then_some(AuditKind::AcpiChange),
        (ty == ResourceType::Role).then_some(AuditKind::RoleChange),
        (ty == ResourceType::Token).then_some(AuditKind::TokenChange),
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
    created(cse, req, ty, attrs)
}

/// Shapes the CREATE response per `rcn` (default 1, attributes).
pub(crate) fn created(
    cse: &Cse,
    req: &CreateRequest,
    ty: ResourceType,
    attrs: Map<String, Value>,
) -> Result<Response, RequestError> {
    let mut resp = Response::new(Rsc::Created, String::new());
    let address = || {
        let tree = cse.tree.read();
        let pi = attrs.get("pi").and_then(Value::as_str).unwrap_or("");
        let rn = attrs.get("rn").and_then(Value::as_str).unwrap_or("");
        tree.get(pi)
            .map(|p| format!("{}/{}", p.path, rn))
            .unwrap_or_default()
    };
    match req.rcn.unwrap_or(ResultContent::Attributes) {
        ResultContent::Nothing => {}
        ResultContent::HierarchicalAddress => {
            let uri = address();
            resp.content_location = Some(uri.clone());
            resp.pc = Some(serde_json::json!({ "m2m:uri": uri }));
        }
        ResultContent::HierarchicalAddressAndAttributes => {
            let uri = address();
            resp.content_location = Some(uri.clone());
            let mut rce = Map::new();
            rce.insert(ty.root().to_owned(), Value::Object(attrs));
            rce.insert("uri".into(), Value::String(uri));
            resp.pc = Some(serde_json::json!({ "m2m:rce": rce }));
        }
        ResultContent::ModifiedAttributes => {
            let sent = req.pc.get(ty.root()).and_then(Value::as_object);
            let modified: Map<String, Value> = attrs
                .into_iter()
                .filter(|(k, v)| sent.and_then(|s| s.get(k)) != Some(v))
                .collect();
            resp.pc = Some(wrap(ty, modified));
        }
        _ => resp.pc = Some(wrap(ty, attrs)),
    }
    Ok(resp)
}

/// AE registration (TS-0001 §10.2.2.2; core-primitives.md §8). Access control does not
/// apply; the originator decides the AE-ID.
async fn register_ae(
    cse: &Cse,
    req: &CreateRequest,
    ctx: &RequestContext,
    mut content: Map<String, Value>,
    parent_ri: &Ri,
    now: Timestamp,
) -> Result<Response, RequestError> {
    {
        let tree = cse.tree.read();
        if *parent_ri != tree.base {
            return Err(RequestError::InvalidChildType(
                "an AE can only be created under the CSEBase".into(),
            ));
        }
    }
    attrs::validate(ResourceType::Ae, Phase::Create, &content)?;
    let api = content.get("api").and_then(Value::as_str).unwrap_or("");
    let lower_r_allowed = matches!(req.rvi.as_str(), "2a" | "3");
    let api_ok = api.len() > 1
        && (api.starts_with('R')
            || api.starts_with('N')
            || (lower_r_allowed && api.starts_with('r')));
    if !api_ok {
        return Err(RequestError::bad_request("api must start with R or N"));
    }
    let aei = match req.fr.as_str() {
        "" | "C" => format!("C{}", Alphanumeric.sample_string(&mut rand::rng(), 16)),
        "S" => format!("S{}", Alphanumeric.sample_string(&mut rand::rng(), 16)),
        fr if (fr.starts_with('C') || fr.starts_with('S')) && !fr.contains('/') => {
            id::validate_resource_name(fr)
                .map_err(|_| RequestError::bad_request("originator is not a valid AE-ID-Stem"))?;
            fr.to_owned()
        }
        _ => {
            return Err(RequestError::bad_request(
                "an AE registers with an empty, C, S or AE-ID-Stem originator",
            ))
        }
    };
    // The administrator's ID, in any form, is never an AE-ID: an AE holding it would be
    // granted everything and named like the admin in every log.
    if cse.is_admin(&aei) {
        return Err(RequestError::not_allowed(
            "the administrator's ID cannot be registered as an AE-ID",
        ));
    }
    cse.write_guard()?;
    let (pending, attrs, notices) = {
        let mut tree = cse.tree.write();
        if tree.get(&aei).is_some() {
            return Err(RequestError::AlreadyRegistered(
                "an AE with this AE-ID is already registered".into(),
            ));
        }
        let base = tree
            .get(parent_ri)
            .ok_or_else(|| RequestError::not_found("CSEBase missing"))?;
        let c = common(&tree, base, &mut content, || aei.clone(), &cse.config, now)?;
        let acpi = resolve_acpi(&tree, &cse.config, content.get("acpi"))?;
        let path = format!("{}/{}", base.path, c.rn);
        let mut attrs = universal(ResourceType::Ae, &aei, &c.rn, parent_ri, now, c.et);
        attrs.extend(content);
        attrs.insert("aei".into(), Value::String(aei.clone()));
        let seq = tree.next_seq();
        let mut node = Node::new(
            ResourceType::Ae,
            &aei,
            Some(parent_ri.clone()),
            c.rn,
            path,
            seq,
            attrs,
            Some(aei.clone()),
            Some(c.et),
        );
        node.acpi = acpi;
        // Registered over an association: the AE-ID is bound to it from now on.
        node.bound = ctx.identity.as_deref().map(|i| cse.absolute(i).into());
        let row = node_row(&node);
        let attrs = node.attrs.clone();
        tree.insert(node);
        let (notices, mut ops) =
            cse.child_created(&mut tree, parent_ri, ResourceType::Ae, &attrs, &aei);
        ops.insert(0, WriteOp::Upsert(row));
        (cse.committer.enqueue(ops), attrs, notices)
    };
    pending.durable().await?;
    cse.dispatch(notices).await;
    created(cse, req, ResourceType::Ae, attrs)
}

/// Byte size of `con`: the UTF-8 length of a string, else of its JSON text.
pub(crate) fn content_size(con: &Value) -> u64 {
    match con {
        Value::String(s) => s.len() as u64,
        other => serde_json::to_string(other).map_or(0, |s| s.len() as u64),
    }
}

fn attr_u64(attrs: &Map<String, Value>, name: &str) -> Option<u64> {
    attrs.get(name).and_then(Value::as_u64)
}

/// Evicted instances whose rows may stay on disk before one range delete removes them.
const EVICTION_FLUSH: u32 = 64;

/// Whether evicted rows must reach the disk now or may wait for the next flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flush {
    WhenDue,
    Now,
}

/// Evicts oldest instances until `incoming_count` more instances of `incoming_bytes` fit
/// (TS-0004 §7.4.7.2). Evicted instances leave the index at once; their rows are removed
/// by one `DeleteInstancesBefore` per [`EVICTION_FLUSH`] evictions. A crash in between
/// cannot resurrect them: start-up enforces `mni`/`mbs` again (load.rs), and reads of
/// stored rows keep only those the index still holds.
pub(crate) fn evict_for(
    node: &mut Node,
    incoming_count: u64,
    incoming_bytes: u64,
    flush: Flush,
) -> Vec<WriteOp> {
    let mni = attr_u64(&node.attrs, "mni");
    let mbs = attr_u64(&node.attrs, "mbs");
    let mut ops = Vec::new();
    let Some(state) = node.container.as_mut() else {
        return ops;
    };
    loop {
        let over_count = mni.is_some_and(|m| state.cni() + incoming_count > m);
        let over_bytes = mbs.is_some_and(|m| state.cbs + incoming_bytes > m);
        if !(over_count || over_bytes) {
            break;
        }
        let Some(old) = state.instances.pop_front() else {
            break;
        };
        state.cbs -= old.cs;
        state.names.remove(&old.name_hash);
        if state.instances.is_empty() {
            state.latest = None;
        }
        state.evicted_through = state.evicted_through.max(old.seq);
        state.unflushed_evictions += 1;
    }
    let due = state.unflushed_evictions >= EVICTION_FLUSH;
    if state.unflushed_evictions > 0 && (due || flush == Flush::Now) {
        ops.push(WriteOp::DeleteInstancesBefore {
            pi: node.ri.to_string(),
            seq: state.evicted_through + 1,
        });
        state.unflushed_evictions = 0;
    }
    ops
}

/// Writes the container's counters into its attributes.
pub(crate) fn refresh_counters(node: &mut Node) {
    if let Some(state) = node.container.as_ref() {
        node.attrs.insert("cni".into(), Value::from(state.cni()));
        node.attrs.insert("cbs".into(), Value::from(state.cbs));
    }
}

/// Writes the container's counters into its attributes and returns its stored row.
pub(crate) fn container_row(node: &mut Node) -> StoredResource {
    refresh_counters(node);
    node_row(node)
}

/// The stored row of an in-memory node.
pub(crate) fn node_row(node: &Node) -> StoredResource {
    StoredResource {
        ri: node.ri.to_string(),
        pi: node.pi.as_deref().unwrap_or("").to_owned(),
        rn: node.rn.clone(),
        ty: node.ty.number(),
        kind: RowKind::Tree,
        seq: node.seq,
        size: 0,
        et: node.et.map(Timestamp::format),
        body: {
            let mut body = store_body(&node.attrs, node.creator.as_deref());
            if node.sub.as_ref().is_some_and(|s| s.authenticated) {
                crate::render::mark_subscriber_authenticated(&mut body);
            }
            if let Some(identity) = &node.bound {
                crate::render::mark_bound(&mut body, identity);
            }
            body
        },
    }
}

async fn create_instance(
    cse: &Cse,
    req: &CreateRequest,
    mut content: Map<String, Value>,
    parent_ri: &Ri,
    now: Timestamp,
) -> Result<Response, RequestError> {
    let cs = content_size(content.get("con").unwrap_or(&Value::Null));
    cse.write_guard()?;
    let (pending, attrs, notices) = {
        let mut guard = cse.tree.write();
        let tree = &mut *guard;
        let seq = tree.next_seq();
        let parent = tree
            .get(parent_ri)
            .ok_or_else(|| RequestError::not_found("container no longer exists"))?;
        if attr_u64(&parent.attrs, "mbs").is_some_and(|mbs| cs > mbs) {
            return Err(RequestError::NotAcceptable(
                "content is larger than the container's maxByteSize".into(),
            ));
        }
        if attr_u64(&parent.attrs, "mni") == Some(0) {
            return Err(RequestError::NotAcceptable(
                "the container's maxNrOfInstances is 0".into(),
            ));
        }
        let ri = new_ri(ResourceType::ContentInstance, seq);
        let mut c = common(tree, parent, &mut content, || ri.clone(), &cse.config, now)?;
        if let Some(mia) = attr_u64(&parent.attrs, "mia") {
            c.et = c.et.min(now.plus_seconds(mia.min(i64::MAX as u64) as i64));
        }
        let name_hash = tree.name_hash(&c.rn);
        let parent = tree.get_mut(parent_ri).expect("looked up above");
        let mut ops = evict_for(parent, 1, cs, Flush::WhenDue);
        let st = attr_u64(&parent.attrs, "st").unwrap_or(0) + 1;
        parent.attrs.insert("st".into(), Value::from(st));
        let mut attrs = universal(
            ResourceType::ContentInstance,
            &ri,
            &c.rn,
            parent_ri,
            now,
            c.et,
        );
        attrs.insert("st".into(), Value::from(st));
        attrs.insert("cs".into(), Value::from(cs));
        if c.creator_attr {
            attrs.insert("cr".into(), Value::String(req.fr.clone()));
        }
        attrs.extend(content);
        let state = parent.container.as_mut().expect("parent is a container");
        state.instances.push_back(Instance {
            seq,
            ri: ri.clone().into_boxed_str(),
            name_hash,
            cs,
            et: Some(c.et.0),
        });
        state.names.insert(name_hash);
        state.cbs += cs;
        let shared = Arc::new(attrs);
        state.latest = Some(shared.clone());
        // The container's row is not rewritten: cni/cbs are rebuilt from the instance index
        // at start-up and st from the newest instance (see load.rs), which saves a row
        // write and a serialization per instance.
        refresh_counters(parent);
        ops.push(WriteOp::Upsert(StoredResource {
            ri,
            pi: parent_ri.to_string(),
            rn: c.rn,
            ty: 4,
            // Kept on disk and indexed at start-up without its body (see load.rs).
            kind: RowKind::Instance,
            seq,
            size: cs as i64,
            et: Some(c.et.format()),
            body: store_body(&shared, None),
        }));
        let (notices, more) = cse.child_created(
            tree,
            parent_ri,
            ResourceType::ContentInstance,
            &shared,
            &req.fr,
        );
        ops.extend(more);
        (cse.committer.enqueue(ops), shared, notices)
    };
    pending.durable().await?;
    cse.dispatch(notices).await;
    let attrs = Arc::try_unwrap(attrs).unwrap_or_else(|shared| (*shared).clone());
    created(cse, req, ResourceType::ContentInstance, attrs)
}

/// One originator may hold at most `max` subscriptions on this CSE, whatever form it
/// writes its ID in: each costs memory, event matching on every write below its parent
/// and notification queues (5207; docs/decisions.md). Checked under the tree's write lock,
/// so concurrent creations cannot overshoot.
fn check_subscription_cap(tree: &Tree, fr: &str, max: usize) -> Result<(), RequestError> {
    if tree.subscriptions_of(fr) >= max {
        return Err(RequestError::NotAcceptable(
            format!("the originator already holds the maximum of {max} subscriptions").into(),
        ));
    }
    Ok(())
}

/// A `<subscription>` compiled and verified before it is created.
struct PreparedSubscription {
    seq: i64,
    ri: String,
    state: Arc<crate::subscription::SubscriptionState>,
}

/// Compiles the subscription and verifies its targets (TS-0004 7.3.3.2) before anything
/// is written; the resource ID is taken first because the verification request names
/// the subscription.
async fn prepare_subscription(
    cse: &Cse,
    req: &CreateRequest,
    ctx: &RequestContext,
    content: &Map<String, Value>,
    parent_ri: &Ri,
) -> Result<PreparedSubscription, RequestError> {
    let parent_ty = cse
        .tree
        .read()
        .get(parent_ri)
        .map(|n| n.ty)
        .ok_or_else(|| RequestError::not_found("parent no longer exists"))?;
    let state = crate::subscription::SubscriptionState::compile(
        content,
        parent_ty,
        &req.fr,
        ctx.authenticated,
    )?;
    let seq = cse.tree.write().next_seq();
    let ri = new_ri(ResourceType::Subscription, seq);
    let sur = format!("{}/{}", cse.config.cse_id, ri);
    cse.verify_targets(&sur, &req.fr, &state.targets()).await?;
    Ok(PreparedSubscription {
        seq,
        ri,
        state: Arc::new(state),
    })
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
    if node.ty == ResourceType::Ae && crate::pch::channel_of(&tree, node).is_some() {
        return Err(RequestError::Conflict(
            "this AE already has a polling channel".into(),
        ));
    }
    Ok(AuditRule::Creator)
}
