//! RETRIEVE (TS-0004 §7.3.3.3): plain, partial (`atrl`), conditional (filter criteria
//! without `fu`=1) and with every `rcn` shape; `la`/`ol` of containers; discovery is
//! handed to [`crate::discovery`].

use crate::checks::Checked;
use crate::discovery::{self, require_match, Subject};
use crate::render::{atrl_from_content, child_ref, parse_body, partial, wrap};
use crate::resolve::{Target, Virtual};
use crate::tree::Ri;
use crate::{Cse, RequestContext};
use bastion_policy::AccessOperation;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType, Response, ResultContent, Rsc};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub(crate) async fn retrieve(
    cse: &Cse,
    mut req: Checked,
    ctx: &RequestContext,
    now: Timestamp,
) -> Result<Response, RequestError> {
    if let Some(pc) = req.pc.take() {
        req.atrl.extend(atrl_from_content(&pc)?);
    }
    let target = cse.resolve(&req, now).await?;
    if req.fc.is_discovery() {
        return discovery::discover(cse, &req, ctx, &target, now).await;
    }
    cse.authorize(&req, ctx, &target, AccessOperation::Retrieve, None)
        .await?;
    let (ty, attrs, node_ri) = match &target {
        Target::Node(ri) => {
            let tree = cse.tree.read();
            let node = tree
                .get(ri)
                .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
            require_match(&req.fc, Subject::Node(&tree, node))?;
            (node.ty, Arc::new(node.attrs.clone()), Some(ri.clone()))
        }
        Target::Instance { parent, ri, .. } => {
            let attrs = instance_attrs(cse, parent, Some(ri), None).await?;
            (ResourceType::ContentInstance, attrs, None)
        }
        Target::Virtual { parent, which } => {
            let attrs = instance_attrs(cse, parent, None, Some(*which)).await?;
            (ResourceType::ContentInstance, attrs, None)
        }
    };
    if node_ri.is_none() {
        require_match(&req.fc, Subject::Instance(&attrs))?;
    }
    let mut resp = Response::new(Rsc::Ok, String::new());
    resp.pc = Some(shape(cse, &req, ty, attrs, node_ri.as_ref(), now).await?);
    Ok(resp)
}

/// The attributes of one instance of `parent`: by resource ID, or the newest/oldest.
pub(crate) async fn instance_attrs(
    cse: &Cse,
    parent: &Ri,
    ri: Option<&String>,
    which: Option<Virtual>,
) -> Result<Arc<Map<String, Value>>, RequestError> {
    let wanted: String = {
        let tree = cse.tree.read();
        let node = tree
            .get(parent)
            .ok_or_else(|| RequestError::not_found("container does not exist"))?;
        if node.attrs.get("disr").and_then(Value::as_bool) == Some(true) {
            return Err(RequestError::not_allowed(
                "retrieval is disabled on this container",
            ));
        }
        let state = node
            .container
            .as_ref()
            .ok_or_else(|| RequestError::not_found("not a container"))?;
        match (ri, which) {
            (Some(ri), _) => ri.clone(),
            (None, Some(Virtual::Latest)) => {
                if let Some(latest) = &state.latest {
                    return Ok(latest.clone());
                }
                state
                    .instances
                    .back()
                    .map(|i| i.ri.to_string())
                    .ok_or_else(|| RequestError::not_found("container has no instances"))?
            }
            (None, _) => state
                .instances
                .front()
                .map(|i| i.ri.to_string())
                .ok_or_else(|| RequestError::not_found("container has no instances"))?,
        }
    };
    let row = cse
        .store
        .get(&wanted)
        .await
        .map_err(|_| RequestError::Internal("storage read failed".into()))?
        .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
    let (attrs, _) = parse_body(&row.body)
        .map_err(|_| RequestError::Internal("stored resource is corrupt".into()))?;
    Ok(Arc::new(attrs))
}

/// Builds the response content for `rcn` (default: attributes).
pub(crate) async fn shape(
    cse: &Cse,
    req: &Checked,
    ty: ResourceType,
    attrs: Arc<Map<String, Value>>,
    node: Option<&Ri>,
    now: Timestamp,
) -> Result<Value, RequestError> {
    // Takes the Arc by value: a representation built for this request alone is moved,
    // not cloned; a shared one (the cached latest instance) is cloned once.
    let own = |attrs: Arc<Map<String, Value>>| -> Result<Map<String, Value>, RequestError> {
        if req.atrl.is_empty() {
            Ok(Arc::unwrap_or_clone(attrs))
        } else {
            partial(ty, &attrs, &req.atrl)
        }
    };
    let rcn = req.rcn.unwrap_or(ResultContent::Attributes);
    Ok(match rcn {
        ResultContent::Attributes => wrap(ty, own(attrs)?),
        ResultContent::AttributesAndChildResources | ResultContent::ChildResources => {
            let mut out = if rcn == ResultContent::ChildResources {
                Map::new()
            } else {
                own(attrs)?
            };
            if let Some(ri) = node {
                let levels = req.fc.lvl.unwrap_or(u64::MAX);
                nest_children(cse, ri, &mut out, levels, now).await?;
            }
            wrap(ty, out)
        }
        ResultContent::AttributesAndChildReferences => {
            let mut out = own(attrs)?;
            let refs = child_refs(cse, node, now).await?;
            out.insert("ch".into(), Value::Array(refs));
            wrap(ty, out)
        }
        ResultContent::ChildReferences => {
            let refs = child_refs(cse, node, now).await?;
            json!({ "m2m:rrl": { "rrf": refs } })
        }
        ResultContent::OriginalResource => {
            return Err(RequestError::bad_request(
                "rcn 7 applies only to announced resources",
            ))
        }
        _ => {
            return Err(RequestError::NotImplemented(
                "this result content is not supported".into(),
            ))
        }
    })
}

/// Direct children as `{nm, typ, val}` references.
async fn child_refs(
    cse: &Cse,
    node: Option<&Ri>,
    now: Timestamp,
) -> Result<Vec<Value>, RequestError> {
    let Some(ri) = node else {
        return Ok(Vec::new());
    };
    let (mut refs, container_path) = {
        let tree = cse.tree.read();
        let Some(n) = tree.get(ri) else {
            return Ok(Vec::new());
        };
        let refs: Vec<Value> = n
            .children
            .iter()
            .filter_map(|c| tree.get(c))
            .filter(|c| !c.is_expired(now))
            .map(|c| child_ref(&c.rn, c.ty.number(), &c.path))
            .collect();
        let container = n
            .container
            .as_ref()
            .is_some_and(|c| !c.instances.is_empty());
        (refs, container.then(|| n.path.clone()))
    };
    if let Some(path) = container_path {
        for row in live_instances(cse, ri, now).await? {
            refs.push(child_ref(&row.rn, 4, &format!("{path}/{}", row.rn)));
        }
    }
    Ok(refs)
}

/// The stored instances of a container that are still live: not expired, and still in
/// the container's index (rows of evicted instances may linger until a range delete).
pub(crate) async fn live_instances(
    cse: &Cse,
    ri: &Ri,
    now: Timestamp,
) -> Result<Vec<bastion_store::StoredResource>, RequestError> {
    let rows = cse
        .store
        .children(ri, Some(4))
        .await
        .map_err(|_| RequestError::Internal("storage read failed".into()))?;
    let tree = cse.tree.read();
    let Some(state) = tree.get(ri).and_then(|n| n.container.as_ref()) else {
        return Ok(Vec::new());
    };
    Ok(rows
        .into_iter()
        .filter(|r| {
            state.holds_row(r.seq)
                && r.et
                    .as_deref()
                    .and_then(Timestamp::parse)
                    .is_none_or(|et| et > now)
        })
        .collect())
}

/// Nests children (recursively, up to `levels`) as arrays under their `m2m:<type>` names.
fn nest_children<'a>(
    cse: &'a Cse,
    ri: &'a Ri,
    out: &'a mut Map<String, Value>,
    levels: u64,
    now: Timestamp,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), RequestError>> + Send + 'a>> {
    Box::pin(async move {
        if levels == 0 {
            return Ok(());
        }
        let (children, is_container) = {
            let tree = cse.tree.read();
            let Some(n) = tree.get(ri) else { return Ok(()) };
            let children: Vec<(Ri, ResourceType, Map<String, Value>)> = n
                .children
                .iter()
                .filter_map(|c| tree.get(c))
                .filter(|c| !c.is_expired(now))
                .map(|c| (c.ri.clone(), c.ty, c.attrs.clone()))
                .collect();
            (
                children,
                n.container
                    .as_ref()
                    .is_some_and(|c| !c.instances.is_empty()),
            )
        };
        for (child_ri, ty, mut attrs) in children {
            nest_children(cse, &child_ri, &mut attrs, levels - 1, now).await?;
            push_child(out, ty, attrs);
        }
        if is_container {
            for row in live_instances(cse, ri, now).await? {
                if let Ok((attrs, _)) = parse_body(&row.body) {
                    push_child(out, ResourceType::ContentInstance, attrs);
                }
            }
        }
        Ok(())
    })
}

fn push_child(out: &mut Map<String, Value>, ty: ResourceType, attrs: Map<String, Value>) {
    let slot = out
        .entry(ty.root().to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = slot {
        list.push(Value::Object(attrs));
    }
}
