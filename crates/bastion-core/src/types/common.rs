//! What creating and storing a resource of any type shares: `rn`, `et` and `cr`
//! handling, the universal attributes, resource IDs, `acpi` resolution, the stored row
//! and the CREATE response.

use super::kind;
use crate::authz_state;
use crate::checks::CreateRequest;
use crate::render::{store_body, wrap_as};
use crate::tree::{Node, Ri, Tree};
use crate::{Cse, CseConfig};
use bastion_proto::id;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType, Response, ResultContent, Rsc};
use bastion_store::{RowKind, StoredResource, WriteOp};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{Map, Value};

/// Settings that CREATE of any type shares.
pub(crate) struct Common {
    pub rn: String,
    pub et: Timestamp,
    pub creator_attr: bool,
}

/// `rn`, `et` and `cr` handling shared by every type.
pub(crate) fn common(
    ty: ResourceType,
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
            kind(parent.ty).check_child_name(&rn)?;
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
    check_announcement(&config.flex, ty, content)?;
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
    let root = super::root_of(&cse.config, &cse.tree.read(), ty, &attrs);
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
            let mut attrs = attrs;
            crate::render::for_client(&root, &mut attrs);
            rce.insert(root, Value::Object(attrs));
            rce.insert("uri".into(), Value::String(uri));
            resp.pc = Some(serde_json::json!({ "m2m:rce": rce }));
        }
        ResultContent::ModifiedAttributes => {
            let sent = req.pc.get(&root).and_then(Value::as_object);
            let modified: Map<String, Value> = attrs
                .into_iter()
                .filter(|(k, v)| sent.and_then(|s| s.get(k)) != Some(v))
                .collect();
            resp.pc = Some(wrap_as(&root, modified));
        }
        _ => resp.pc = Some(wrap_as(&root, attrs)),
    }
    Ok(resp)
}

/// Byte size of `con`: the UTF-8 length of a string, else of its JSON text.
pub(crate) fn content_size(con: &Value) -> u64 {
    match con {
        Value::String(s) => s.len() as u64,
        other => serde_json::to_string(other).map_or(0, |s| s.len() as u64),
    }
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
            if node.subscription().is_some_and(|s| s.authenticated) {
                crate::render::mark_subscriber_authenticated(&mut body);
            }
            if let Some(identity) = &node.bound {
                crate::render::mark_bound(&mut body, identity);
            }
            crate::render::mark_announced(&mut body, &node.announced);
            crate::render::mark_pending(&mut body, &node.pending);
            body
        },
    }
}

/// Removes a node and its subtree from the tree; returns the store ops. A removed
/// `<crossResourceSubscription>` leaves the `srat` subscriptions it joined, in the same
/// write, whichever way it goes (DELETE, expiry, `exc`).
pub(crate) fn remove_node(tree: &mut Tree, ri: &Ri) -> Vec<WriteOp> {
    let mut ops = Vec::new();
    for n in tree.remove_subtree(ri) {
        if n.container().is_some() {
            ops.push(WriteOp::DeleteChildren {
                pi: n.ri.to_string(),
            });
        }
        if let Some(crs) = n.cross_resource() {
            for sub in &crs.srat {
                ops.extend(super::cross_resource_subscription::leave(tree, sub, &n.ri));
            }
        }
        ops.push(WriteOp::Delete {
            ri: n.ri.to_string(),
        });
    }
    ops
}

/// How many CSEs one resource is announced to (`at`): each is a CREATE, an UPDATE per
/// change and a DELETE over the outbound routes (docs/decisions.md).
pub(crate) const MAX_ANNOUNCE_TARGETS: usize = 16;

/// Checks the announcement settings of a CREATE or UPDATE of `ty` (TS-0001 9.6.1.3):
/// `at` asks for announcement only of a type whose announced variant is served (else
/// 5001, rather than stored and silently not done), lists at most
/// [`MAX_ANNOUNCE_TARGETS`] distinct CSE-IDs (SP-relative, `/id-in`), and `aa` names
/// only attributes the announced variant has (a `<flexContainer>`'s and its instances':
/// the custom attributes of the specializations in `flex` too).
pub(crate) fn check_announcement(
    flex: &bastion_proto::flex::Specializations,
    ty: ResourceType,
    content: &Map<String, Value>,
) -> Result<(), RequestError> {
    let at = content.get("at").and_then(Value::as_array);
    if at.is_some_and(|a| !a.is_empty()) && ty.announced().is_none() {
        return Err(RequestError::NotImplemented(
            "announcement of this resource type is not supported".into(),
        ));
    }
    let targets = at.map(Vec::as_slice).unwrap_or_default();
    if targets.len() > MAX_ANNOUNCE_TARGETS {
        return Err(RequestError::bad_request(format!(
            "at lists more than {MAX_ANNOUNCE_TARGETS} CSEs"
        )));
    }
    for (i, target) in targets.iter().enumerate() {
        let cse_id = target.as_str().filter(|t| {
            t.strip_prefix('/')
                .is_some_and(|id| !id.is_empty() && !id.contains('/'))
        });
        if cse_id.is_none() {
            return Err(RequestError::bad_request(
                "at lists the SP-relative CSE-IDs (/id-in) of the announcement targets",
            ));
        }
        if targets[..i].contains(target) {
            return Err(RequestError::bad_request("at names a CSE twice"));
        }
    }
    let announced = ty.announced();
    for name in content
        .get("aa")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let custom = |n: &str| {
            matches!(
                ty,
                ResourceType::FlexContainer | ResourceType::FlexContainerInstance
            ) && flex.defines_attribute(n)
        };
        let known = name.as_str().zip(announced).is_some_and(|(n, a)| {
            (bastion_proto::attrs::find(a, n).is_some() || custom(n)) && n != "lnk"
        });
        if !known {
            return Err(RequestError::bad_request(
                "aa names an attribute the announced resource does not have",
            ));
        }
    }
    Ok(())
}
