//! `<schedule>` (TS-0001 9.6.9; TS-0004 7.4.9): time windows, each a `scheduleEntry`
//! line of `se`'s `sce` list, parsed by the one parser of that syntax,
//! `bastion_policy::schedule` (the same that reads `actw`). A time is in the schedule
//! when any entry matches it, in UTC, by the CSE's clock.
//!
//! Where it sits decides what it does (docs/decisions.md, "schedule"):
//!
//! * under a `<subscription>` (at most one, as under the CSEBase): the windows in which that subscription's
//!   notifications are sent; `notify.rs` asks [`notification_window`] for every event,
//!   and holds (`pn`) or drops what falls outside;
//! * under the CSEBase or a `<node>`: stored, served, discoverable and subscribable;
//!   nothing in Bastion acts on it (no underlying-network scheduling).
//!
//! `nco` is accepted only under a `<node>` (4102 elsewhere, TS-0004 7.4.9.2.1), and a
//! `<node>`'s schedule without it gets `false`.

use super::{rederive_merged, Derive, Prepared, Rederived, ResourceKind};
use crate::authz_state::Mode;
use crate::checks::{CreateRequest, Envelope};
use crate::tree::{Node, Ri, Tree, TypeState};
use crate::{Cse, RequestContext};
use async_trait::async_trait;
use bastion_policy::schedule::Schedule as Entry;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};

/// The most entries one `se` may hold: every event of a subscription with a schedule
/// tries them in turn.
pub(crate) const MAX_ENTRIES: usize = 64;

pub(super) struct Schedule;

#[async_trait]
impl ResourceKind for Schedule {
    fn check_content(&self, content: &Map<String, Value>) -> Result<(), RequestError> {
        match content.get("se") {
            Some(se) => entries(se).map(drop),
            None => Ok(()),
        }
    }

    async fn prepare(
        &self,
        cse: &Cse,
        _req: &CreateRequest,
        _ctx: &RequestContext,
        content: &Map<String, Value>,
        parent: &Ri,
    ) -> Result<Prepared, RequestError> {
        let parent_ty = cse.tree.read().get(parent).map(|n| n.ty);
        check_nco(parent_ty, content)?;
        let mut prepared = Prepared::default();
        if parent_ty == Some(ResourceType::Node) && !content.contains_key("nco") {
            prepared.defaults.insert("nco".into(), Value::Bool(false));
        }
        Ok(prepared)
    }

    fn check_locked(
        &self,
        _cse: &Cse,
        tree: &Tree,
        _req: &CreateRequest,
        parent: &Ri,
    ) -> Result<(), RequestError> {
        // TS-0004 7.4.3.1, 7.4.8.1: the CSEBase and a subscription hold at most one.
        let parent = tree
            .get(parent)
            .ok_or_else(|| RequestError::not_found("parent no longer exists"))?;
        let single = matches!(
            parent.ty,
            ResourceType::CseBase | ResourceType::Subscription
        );
        if single && schedule_of(tree, parent).is_some() {
            return Err(RequestError::Conflict(
                "this parent already has a schedule".into(),
            ));
        }
        Ok(())
    }

    fn derive(
        &self,
        _cx: &Derive,
        _ty: ResourceType,
        attrs: &mut Map<String, Value>,
        _mode: Mode,
    ) -> Result<TypeState, RequestError> {
        let se = attrs
            .get("se")
            .ok_or_else(|| RequestError::bad_request("mandatory attribute se missing"))?;
        Ok(TypeState::Schedule(entries(se)?.into()))
    }

    fn rederive(
        &self,
        cx: &Derive,
        node: &Node,
        content: &Map<String, Value>,
    ) -> Result<Option<Rederived>, RequestError> {
        rederive_merged(self, cx, node, content)
    }

    fn check_update(
        &self,
        cse: &Cse,
        _req: &Envelope,
        ri: &Ri,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        let tree = cse.tree.read();
        let parent_ty = tree
            .get(ri)
            .and_then(|n| n.pi.as_deref())
            .and_then(|pi| tree.get(pi))
            .map(|p| p.ty);
        check_nco(parent_ty, content)
    }
}

/// `nco` only where TS-0004 7.4.9.2.1 applies it: under a `<node>`.
fn check_nco(
    parent: Option<ResourceType>,
    content: &Map<String, Value>,
) -> Result<(), RequestError> {
    if content.contains_key("nco") && parent != Some(ResourceType::Node) {
        return Err(RequestError::ContentsUnacceptable(
            "nco applies only to the schedule of a node".into(),
        ));
    }
    Ok(())
}

/// The entries of an `m2m:scheduleEntries` value, `{"sce": ["<7 fields>", ...]}`: at
/// least one and at most [`MAX_ENTRIES`], each valid (4000 naming the first that is not).
fn entries(se: &Value) -> Result<Vec<Entry>, RequestError> {
    entries_of("se", se)
}

/// [`entries`] of the `m2m:scheduleEntries` attribute `name` of another type (`rpsc`,
/// `mesc` of a `[dataCollection]`), its reasons naming it.
pub(super) fn entries_of(name: &str, se: &Value) -> Result<Vec<Entry>, RequestError> {
    let bad = |why: String| RequestError::bad_request(format!("{name}: {why}"));
    let se = se
        .as_object()
        .ok_or_else(|| bad("must be an object holding sce".into()))?;
    if let Some(other) = se.keys().find(|k| *k != "sce") {
        return Err(bad(format!("unknown member {other}")));
    }
    let list = match se.get("sce") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => {
            return Err(bad(
                "sce must be a non-empty list of schedule entries".into()
            ))
        }
    };
    if list.len() > MAX_ENTRIES {
        return Err(bad(format!("at most {MAX_ENTRIES} entries")));
    }
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            let text = entry
                .as_str()
                .ok_or_else(|| bad(format!("entry {} must be a string", i + 1)))?;
            Entry::parse(text).map_err(|why| bad(format!("entry {}: {why}", i + 1)))
        })
        .collect()
}

/// The `<schedule>` child of `parent`, if it has one.
fn schedule_of<'a>(tree: &'a Tree, parent: &Node) -> Option<&'a Node> {
    parent
        .children
        .iter()
        .filter_map(|c| tree.get(c))
        .find(|c| c.ty == ResourceType::Schedule)
}

/// Whether a notification of `subscription` may be sent at `now` (TS-0001 9.6.9): always
/// without a `<schedule>` child (TS-0004 7.4.9.1: no schedule, no constraint), else when
/// one of its entries matches. A stored schedule whose entries no longer parse matches
/// nothing (fail closed).
pub(crate) fn notification_window(tree: &Tree, subscription: &Node, now: Timestamp) -> bool {
    match schedule_of(tree, subscription) {
        None => true,
        Some(schedule) => schedule
            .schedule()
            .is_some_and(|entries| entries.iter().any(|e| e.matches(now.0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reason(se: Value) -> String {
        match entries(&se) {
            Ok(_) => panic!("accepted {se}"),
            Err(e) => {
                assert_eq!(e.rsc().code(), 4000, "{se}");
                e.reason()
            }
        }
    }

    #[test]
    fn ts0004_7_4_9_1_entries_parse_with_the_actw_parser() {
        let parsed = entries(&json!({"sce": ["* 0-5 2,6,10 * * * *", "* * 8-20 * * 1-5 *"]}))
            .expect("valid");
        assert_eq!(parsed.len(), 2);
        // 2026-12-03 02:04:00 UTC, a Thursday.
        let t = 1_796_263_440;
        assert!(parsed[0].matches(t));
        assert!(!parsed[1].matches(t));
    }

    #[test]
    fn ts0004_7_4_9_1_bad_schedule_elements_are_bad_requests() {
        assert!(reason(json!(["* * * * * * *"])).contains("object"));
        assert!(reason(json!({})).contains("non-empty"));
        assert!(reason(json!({"sce": []})).contains("non-empty"));
        assert!(reason(json!({"sce": "* * * * * * *"})).contains("non-empty"));
        assert!(reason(json!({"sce": ["* * * * * * *"], "x": 1})).contains("unknown member x"));
        assert!(reason(json!({"sce": [7]})).contains("entry 1 must be a string"));
        let r = reason(json!({"sce": ["* * * * * * *", "* * 24 * * * *"]}));
        assert!(r.contains("entry 2") && r.contains("hour"), "{r}");
        assert!(reason(json!({"sce": ["* * * * * *"]})).contains("7 fields"));
        let many = vec!["* * * * * * *"; MAX_ENTRIES + 1];
        assert!(reason(json!({ "sce": many })).contains("at most 64"));
        let most = vec!["* * * * * * *"; MAX_ENTRIES];
        assert!(entries(&json!({ "sce": most })).is_ok());
    }

    #[test]
    fn ts0004_7_4_9_2_1_nco_only_under_a_node() {
        let with = json!({"nco": true})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(check_nco(Some(ResourceType::Node), &with).is_ok());
        for parent in [ResourceType::CseBase, ResourceType::Subscription] {
            let e = check_nco(Some(parent), &with).expect_err("refused");
            assert_eq!(e.rsc().code(), 4102);
        }
        assert!(check_nco(Some(ResourceType::CseBase), &Map::new()).is_ok());
    }
}
