//! Discovery (TS-0004 §7.3.3.14-17; core-resources.md §5): walking the subtree below the
//! target, keeping what matches the filter criteria and what the originator may DISCOVER,
//! and the same criteria used as a condition on a single resource (conditional UPDATE
//! and DELETE) or on the children of a RETRIEVE's result.

use crate::access::Enforcer;
use crate::access::RuleKind;
use crate::checks::{DiscoveryResultType, RetrieveRequest};
use crate::render::{child_ref, parse_body};
use crate::resolve::Target;
use crate::tree::{Node, Ri, Tree};
use crate::types::live_instances;
use crate::Cse;
use bastion_policy::AccessOperation;
use bastion_proto::filter::FilterCriteria;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType, Response, ResultContent, Rsc};
use serde_json::{json, Map, Value};

/// What a filter needs to know of a resource's neighbours.
#[derive(Default)]
pub(crate) struct Relations<'a> {
    pub parent_ty: Option<u16>,
    pub parent_labels: Option<&'a Value>,
    pub child_types: Vec<u16>,
    pub child_labels: Vec<&'a Value>,
}

fn ts_attr(attrs: &Map<String, Value>, name: &str) -> Option<Timestamp> {
    attrs
        .get(name)
        .and_then(Value::as_str)
        .and_then(Timestamp::parse)
}

fn labels_contain(labels: Option<&Value>, wanted: &[String]) -> bool {
    labels.and_then(Value::as_array).is_some_and(|l| {
        l.iter()
            .filter_map(Value::as_str)
            .any(|x| wanted.iter().any(|w| w == x))
    })
}

/// Glob match of an attribute condition value: `*` matches any run (discovery only).
fn value_matches(pattern: &str, text: &str, wildcard: bool) -> bool {
    if !wildcard || !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

fn attr_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether a resource satisfies the conditions of `fc`. Different conditions combine per
/// `fo` (AND by default); repeated values of one condition are OR-ed.
pub(crate) fn matches(
    fc: &FilterCriteria,
    ty: u16,
    attrs: &Map<String, Value>,
    rel: &Relations<'_>,
) -> bool {
    let mut results: Vec<bool> = Vec::new();
    let mut push = |r: bool| results.push(r);
    let ct = ts_attr(attrs, "ct");
    let lt = ts_attr(attrs, "lt");
    let et = ts_attr(attrs, "et");
    let st = attrs.get("st").and_then(Value::as_u64);
    let cs = attrs.get("cs").and_then(Value::as_u64);
    if let Some(t) = fc.crb {
        push(ct.is_some_and(|c| c < t));
    }
    if let Some(t) = fc.cra {
        push(ct.is_some_and(|c| c >= t));
    }
    if let Some(t) = fc.ms {
        push(lt.is_some_and(|l| l >= t));
    }
    if let Some(t) = fc.us {
        push(lt.is_some_and(|l| l < t));
    }
    if let Some(t) = fc.exb {
        push(et.is_some_and(|e| e < t));
    }
    if let Some(t) = fc.exa {
        push(et.is_some_and(|e| e >= t));
    }
    if let Some(n) = fc.sts {
        push(st.is_some_and(|s| s < n));
    }
    if let Some(n) = fc.stb {
        push(st.is_some_and(|s| s >= n));
    }
    if let Some(n) = fc.sza {
        push(cs.is_some_and(|s| s >= n));
    }
    if let Some(n) = fc.szb {
        push(cs.is_some_and(|s| s < n));
    }
    if !fc.lbl.is_empty() {
        push(labels_contain(attrs.get("lbl"), &fc.lbl));
    }
    if !fc.ty.is_empty() {
        push(fc.ty.contains(&ty));
    }
    if !fc.cty.is_empty() {
        let media = attrs
            .get("cnf")
            .and_then(Value::as_str)
            .map(|c| c.split(':').next().unwrap_or(""));
        push(media.is_some_and(|m| fc.cty.iter().any(|c| c == m)));
    }
    if !fc.pty.is_empty() {
        push(rel.parent_ty.is_some_and(|p| fc.pty.contains(&p)));
    }
    if !fc.palb.is_empty() {
        push(labels_contain(rel.parent_labels, &fc.palb));
    }
    if !fc.chty.is_empty() {
        push(rel.child_types.iter().any(|t| fc.chty.contains(t)));
    }
    if !fc.clbl.is_empty() {
        push(
            rel.child_labels
                .iter()
                .any(|l| labels_contain(Some(l), &fc.clbl)),
        );
    }
    if !fc.atr.is_empty() {
        let wildcard = fc.is_discovery();
        // A write-only value is never compared: a filter must not reveal it.
        push(fc.atr.iter().any(|(name, want)| {
            !bastion_proto::attrs::mgmt::withheld(attrs, name)
                && attrs
                    .get(name)
                    .and_then(attr_text)
                    .is_some_and(|have| value_matches(want, &have, wildcard))
        }));
    }
    if results.is_empty() {
        return true;
    }
    if fc.fo == Some(2) {
        results.iter().any(|r| *r)
    } else {
        results.iter().all(|r| *r)
    }
}

fn needs_relations(fc: &FilterCriteria) -> bool {
    !fc.pty.is_empty() || !fc.palb.is_empty() || !fc.chty.is_empty() || !fc.clbl.is_empty()
}

/// Whom a filter is evaluated for: conditions on a resource's neighbours (`chty`,
/// `clbl`, `palb`) see only the neighbours this originator may DISCOVER, so a filter
/// cannot probe the types or labels of resources hidden from it.
pub(crate) type Viewer<'a> = &'a Enforcer<'a>;

/// Relations of an in-memory node as `viewer` may know them, computed only when the
/// filter uses them.
pub(crate) fn node_relations<'t>(
    tree: &'t Tree,
    node: &'t Node,
    fc: &FilterCriteria,
    viewer: Viewer<'_>,
) -> Relations<'t> {
    if !needs_relations(fc) {
        return Relations::default();
    }
    let parent = node.pi.as_ref().and_then(|p| tree.get(p));
    let children: Vec<&Node> = node
        .children
        .iter()
        .filter_map(|c| tree.get(c))
        .filter(|c| viewer.may_include(tree, c, AccessOperation::Discovery))
        .collect();
    let mut child_types: Vec<u16> = children.iter().map(|c| c.ty.number()).collect();
    if node.container().is_some_and(|c| !c.instances.is_empty()) {
        child_types.extend(node.ty.instance_type().map(ResourceType::number));
    }
    Relations {
        parent_ty: parent.map(|p| p.ty.number()),
        parent_labels: parent
            .filter(|p| viewer.may_include(tree, p, AccessOperation::Discovery))
            .and_then(|p| p.attrs.get("lbl")),
        child_types,
        child_labels: children.iter().filter_map(|c| c.attrs.get("lbl")).collect(),
    }
}

/// What a conditional operation is checked against.
pub(crate) enum Subject<'a> {
    Node(&'a Tree, &'a Node, Viewer<'a>),
    Instance(&'a Map<String, Value>),
}

/// Conditional UPDATE/DELETE (TS-0004 7.3.3.17): a target that does not satisfy the
/// request's filter criteria is 4004. (A RETRIEVE's criteria select the children of its
/// result instead: `retrieve.rs`.)
pub(crate) fn require_match(fc: &FilterCriteria, subject: Subject<'_>) -> Result<(), RequestError> {
    if !fc.has_conditions() {
        return Ok(());
    }
    let matched = match subject {
        Subject::Node(tree, node, viewer) => matches(
            fc,
            node.ty.number(),
            &node.attrs,
            &node_relations(tree, node, fc, viewer),
        ),
        Subject::Instance(attrs) => matches(
            fc,
            crate::types::instance_type(attrs).number(),
            attrs,
            &Relations::default(),
        ),
    };
    if matched {
        Ok(())
    } else {
        Err(RequestError::not_found(
            "resource does not match the filter criteria",
        ))
    }
}

struct Hit {
    rn: String,
    ty: u16,
    structured: String,
    ri: String,
}

/// Runs a discovery request below `target`.
pub(crate) async fn discover(
    cse: &Cse,
    req: &RetrieveRequest,
    access: &Enforcer<'_>,
    target: &Target,
) -> Result<Response, RequestError> {
    let now = access.now();
    let Target::Node(root) = target else {
        return Err(RequestError::bad_request(
            "discovery needs a resource as root",
        ));
    };
    let fc = &req.fc;
    let max_level = fc.lvl.unwrap_or(u64::MAX);
    let want_instances = |ty: ResourceType| {
        ty.instance_type()
            .is_some_and(|i| fc.ty.is_empty() || fc.ty.contains(&i.number()))
    };
    let limit = fc.lim.map_or(cse.config.discovery_limit, |l| l as usize);
    let offset = fc.ofst.map_or(0, |o| o.saturating_sub(1) as usize);
    // One hit beyond the page is looked for, to know whether the page is all there is.
    let enough = offset.saturating_add(limit).saturating_add(1);
    let mut hits: Vec<Hit> = Vec::new();
    let mut containers: Vec<(Ri, String, u64)> = Vec::new();
    {
        let tree = cse.tree.read();
        let viewer = access;
        // Pre-order, children oldest first: parents precede children. Each level is a
        // cursor into its parent's child list, so the walk costs what it visits, and it
        // stops once `enough` resources matched: every instance hit comes after every
        // resource hit, so nothing later could enter the page.
        let mut levels: Vec<(std::slice::Iter<'_, Ri>, u64)> = Vec::new();
        let mut next = Some((root.clone(), 0));
        while let Some((ri, depth)) = next.take() {
            if let Some(node) = tree.get(&ri).filter(|n| !n.is_expired(now)) {
                let has_instances = want_instances(node.ty)
                    && depth < max_level
                    && node.container().is_some_and(|c| !c.instances.is_empty());
                // One decision per node serves the node itself and its instances (which
                // inherit the container's rules).
                let may_discover = (depth > 0 || has_instances)
                    && access.permits(
                        &tree,
                        node,
                        AccessOperation::Discovery,
                        None,
                        RuleKind::Privileges,
                    );
                if depth > 0 && may_discover {
                    let rel = node_relations(&tree, node, fc, viewer);
                    if matches(fc, node.ty.number(), &node.attrs, &rel) {
                        hits.push(Hit {
                            rn: node.rn.clone(),
                            ty: node.ty.number(),
                            structured: node.path.clone(),
                            ri: node.ri.to_string(),
                        });
                    }
                }
                if hits.len() >= enough {
                    break;
                }
                if depth < max_level {
                    if has_instances && may_discover {
                        containers.push((node.ri.clone(), node.path.clone(), depth + 1));
                    }
                    levels.push((node.children.iter(), depth + 1));
                }
            }
            while let Some((children, depth)) = levels.last_mut() {
                match children.next() {
                    Some(child) => {
                        next = Some((child.clone(), *depth));
                        break;
                    }
                    None => {
                        levels.pop();
                    }
                }
            }
        }
    }
    for (ri, path, _) in containers {
        if hits.len() >= enough {
            break;
        }
        let rows = live_instances(cse, &ri, now).await?;
        let parent_rel = {
            let tree = cse.tree.read();
            tree.get(&ri)
                .map(|n| (n.attrs.get("lbl").cloned(), n.ty.number()))
        };
        for row in rows {
            let Ok((attrs, _)) = parse_body(&row.body) else {
                continue;
            };
            let rel = Relations {
                parent_ty: parent_rel.as_ref().map(|p| p.1),
                parent_labels: parent_rel.as_ref().and_then(|p| p.0.as_ref()),
                ..Relations::default()
            };
            if matches(fc, row.ty, &attrs, &rel) {
                hits.push(Hit {
                    structured: format!("{path}/{}", row.rn),
                    rn: row.rn,
                    ty: row.ty,
                    ri: row.ri,
                });
            }
        }
    }
    // Cut by this CSE's limit, not by the originator's own `lim`: partial (TS-0001 8.1.2).
    let partial = fc.lim.is_none() && hits.len() >= enough;
    let selected = hits.into_iter().skip(offset).take(limit);
    let address = |h: &Hit| {
        if req.drt == DiscoveryResultType::Unstructured {
            h.ri.clone()
        } else {
            h.structured.clone()
        }
    };
    let mut resp = Response::new(Rsc::Ok, String::new());
    resp.pc = Some(match req.rcn {
        Some(ResultContent::ChildReferences) => {
            let rrf: Vec<Value> = selected
                .map(|h| child_ref(&h.rn, h.ty, &address(&h)))
                .collect();
            json!({ "m2m:rrl": { "rrf": rrf } })
        }
        _ => {
            let uril: Vec<Value> = selected.map(|h| Value::String(address(&h))).collect();
            json!({ "m2m:uril": uril })
        }
    });
    if partial {
        resp.cnst = Some(bastion_proto::primitive::CONTENT_STATUS_PARTIAL);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::LOOKUPS;
    use crate::{CseConfig, RequestContext};
    use bastion_proto::{Operation, Request, ResourceType};
    use std::sync::Arc;

    /// A CSE whose AE `Cae` holds `containers` containers `c0`, `c1`, … (oldest first),
    /// each holding one container `cN-in`, inserted straight into the tree.
    async fn cse_with(containers: usize, discovery_limit: usize) -> Arc<Cse> {
        let store = bastion_store::MemoryStore::new();
        let config = CseConfig {
            discovery_limit,
            ..CseConfig::default()
        };
        let cse = Cse::open(config, Arc::new(store)).await.expect("cse");
        {
            let mut tree = cse.tree.write();
            let mut add = |ty: ResourceType, ri: &str, parent: &str| {
                let parent = tree.get(parent).expect("parent");
                let node = Node::new(
                    ty,
                    ri,
                    Some(parent.ri.clone()),
                    ri.to_owned(),
                    format!("{}/{ri}", parent.path),
                    1,
                    Map::new(),
                    Some("Cae".to_owned()),
                    None,
                );
                tree.insert(node);
            };
            add(ResourceType::Ae, "Cae", "id-in");
            for i in 0..containers {
                add(ResourceType::Container, &format!("c{i}"), "Cae");
                add(
                    ResourceType::Container,
                    &format!("c{i}-in"),
                    &format!("c{i}"),
                );
            }
        }
        cse
    }

    /// Discovery below `Cae` as the admin: the addresses found, whether the result is
    /// marked partial, and the node look-ups it took.
    async fn discover_below(cse: &Cse, fc: FilterCriteria) -> (Value, bool, u64) {
        let req = Request {
            op: Some(Operation::Retrieve),
            to: "cse-in/Cae".into(),
            fr: Some(cse.config().admin.clone()),
            rqi: Some("d".into()),
            rvi: Some("3".into()),
            fc: FilterCriteria { fu: Some(1), ..fc },
            ..Request::default()
        };
        LOOKUPS.with(|n| n.set(0));
        let resp = cse.handle(req, &RequestContext::new(None, None)).await;
        let lookups = LOOKUPS.with(|n| n.get());
        assert_eq!(resp.rsc, Rsc::Ok, "{:?}", resp.pc);
        let partial = resp.cnst == Some(bastion_proto::primitive::CONTENT_STATUS_PARTIAL);
        (
            resp.pc.expect("content")["m2m:uril"].clone(),
            partial,
            lookups,
        )
    }

    /// Issue 13: `lim` and `ofst` end the walk once the page and one more hit are found, so
    /// the work does not grow with the resources after them; the page is the same.
    #[tokio::test]
    async fn lim_stops_the_walk() {
        let few = cse_with(10, 1000).await;
        let many = cse_with(3_000, 1000).await;
        let fc = || FilterCriteria {
            lim: Some(3),
            ofst: Some(3),
            ..FilterCriteria::default()
        };
        let (found, partial, few_lookups) = discover_below(&few, fc()).await;
        assert_eq!(
            found,
            json!(["cse-in/Cae/c1", "cse-in/Cae/c1/c1-in", "cse-in/Cae/c2"])
        );
        assert!(!partial);
        let (found_many, partial, many_lookups) = discover_below(&many, fc()).await;
        assert_eq!(found_many, found);
        assert!(!partial);
        assert_eq!(few_lookups, many_lookups);
        // A type filter skips what it rejects, and still stops at the page.
        let fc = || FilterCriteria {
            lim: Some(2),
            ty: vec![3],
            lvl: Some(1),
            ..FilterCriteria::default()
        };
        let (found, _, few_lookups) = discover_below(&few, fc()).await;
        assert_eq!(found, json!(["cse-in/Cae/c0", "cse-in/Cae/c1"]));
        let (found_many, _, many_lookups) = discover_below(&many, fc()).await;
        assert_eq!(found_many, found);
        assert_eq!(few_lookups, many_lookups);
    }

    /// Without `lim`, the CSE's own limit cuts the result, which is then marked partial;
    /// a result that fits is complete.
    #[tokio::test]
    async fn cse_limit_marks_partial_content() {
        let cse = cse_with(3, 4).await;
        let (found, partial, _) = discover_below(&cse, FilterCriteria::default()).await;
        assert_eq!(
            found,
            json!([
                "cse-in/Cae/c0",
                "cse-in/Cae/c0/c0-in",
                "cse-in/Cae/c1",
                "cse-in/Cae/c1/c1-in"
            ])
        );
        assert!(partial);
        let cse = cse_with(2, 4).await;
        let (found, partial, _) = discover_below(&cse, FilterCriteria::default()).await;
        assert_eq!(found.as_array().map(Vec::len), Some(4));
        assert!(!partial);
    }

    #[test]
    fn attribute_wildcards_only_in_discovery() {
        assert!(value_matches("Cab*", "Cabc", true));
        assert!(!value_matches("Cab*", "Cabc", false));
        assert!(value_matches("*b*", "abc", true));
        assert!(!value_matches("a*d", "abc", true));
        assert!(value_matches("abc", "abc", true));
    }
}
