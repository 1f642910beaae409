//! `<policyDeletionRules>` (TS-0004 7.4.32): one group of rules of a
//! `<notificationTargetPolicy>`. Its `dr` (`m2m:deletionContexts`) lists time windows
//! (`tod`, schedule entries) and regions (`lr`, `m2m:locationRegion`); each entry is one
//! rule, and `drr` says whether all (1, AND) or any (2, OR, the default) must hold. A
//! policy holds at most two groups (4105 for a third).

use super::ResourceKind;
use crate::checks::CreateRequest;
use crate::tree::{Ri, Tree};
use crate::Cse;
use bastion_policy::context::Region;
use bastion_policy::schedule::Schedule;
use bastion_policy::Pip;
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};

pub(super) struct PolicyDeletionRules;

/// Groups of rules one `<notificationTargetPolicy>` may hold (TS-0004 7.4.31.1).
const MAX_GROUPS: usize = 2;

/// Entries one `tod` or `lr` list may hold: every removal request evaluates them all.
const MAX_ENTRIES: usize = 16;

/// `m2m:logicalOperator` AND.
pub(crate) const AND: u64 = 1;

impl ResourceKind for PolicyDeletionRules {
    fn check_content(&self, content: &Map<String, Value>) -> Result<(), RequestError> {
        match content.get("dr") {
            Some(Value::Null) | None => Ok(()),
            Some(dr) => Rules::parse(dr).map(|_| ()),
        }
    }

    /// A third group is a conflict (TS-0004 7.4.32.2.1), counted under the write lock.
    fn check_locked(
        &self,
        _cse: &Cse,
        tree: &Tree,
        _req: &CreateRequest,
        parent: &Ri,
    ) -> Result<(), RequestError> {
        let held = tree.get(parent).map_or(0, |policy| {
            policy
                .children
                .iter()
                .filter_map(|c| tree.get(c))
                .filter(|c| c.ty == ResourceType::PolicyDeletionRules)
                .count()
        });
        if held >= MAX_GROUPS {
            return Err(RequestError::Conflict(
                "a notificationTargetPolicy holds at most two policyDeletionRules".into(),
            ));
        }
        Ok(())
    }
}

/// A compiled `dr`.
struct Rules {
    windows: Vec<Schedule>,
    regions: Vec<Region>,
}

impl Rules {
    fn parse(dr: &Value) -> Result<Rules, RequestError> {
        let bad = |why: String| RequestError::bad_request(format!("dr: {why}"));
        let dr = dr
            .as_object()
            .ok_or_else(|| bad("must be an object".into()))?;
        if let Some(other) = dr.keys().find(|k| *k != "tod" && *k != "lr") {
            return Err(bad(format!("unknown member {other}")));
        }
        let list = |name: &str| -> Result<&[Value], RequestError> {
            match dr.get(name) {
                None => Ok(&[]),
                Some(Value::Array(list)) if list.len() <= MAX_ENTRIES => Ok(list),
                Some(Value::Array(_)) => {
                    Err(bad(format!("{name} holds more than {MAX_ENTRIES} entries")))
                }
                Some(_) => Err(bad(format!("{name} must be a list"))),
            }
        };
        let windows = list("tod")?
            .iter()
            .map(|entry| {
                let text = entry
                    .as_str()
                    .ok_or_else(|| bad("tod entries must be schedule strings".into()))?;
                Schedule::parse(text).map_err(|why| bad(format!("tod: {why}")))
            })
            .collect::<Result<_, _>>()?;
        let regions = list("lr")?
            .iter()
            .map(|entry| Region::parse(entry, "dr.lr").map_err(|e| bad(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Rules { windows, regions })
    }
}

/// Whether the group of rules with attributes `attrs` holds for a request at `time`
/// (Unix seconds) from the originator the `pip` answers for. A group without rules
/// holds; one whose stored `dr` no longer compiles never does.
pub(crate) fn holds(attrs: &Map<String, Value>, time: i64, pip: &dyn Pip) -> bool {
    let rules = match attrs.get("dr") {
        None | Some(Value::Null) => return true,
        Some(dr) => match Rules::parse(dr) {
            Ok(rules) => rules,
            Err(_) => return false,
        },
    };
    let mut each = rules
        .windows
        .iter()
        .map(|w| w.matches(time))
        .chain(rules.regions.iter().map(|r| r.holds(pip)))
        .peekable();
    if each.peek().is_none() {
        return true;
    }
    if attrs.get("drr").and_then(Value::as_u64) == Some(AND) {
        each.all(|held| held)
    } else {
        each.any(|held| held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bastion_policy::{CountryCode, FixedInformation};
    use serde_json::json;

    fn attrs(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    // 2026-12-03T14:00:00Z, a Thursday.
    const T: i64 = 1_796_306_400;

    #[test]
    fn ts0004_7_4_32_rules_combine_by_drr() {
        let in_germany = FixedInformation {
            country: CountryCode::parse("DE"),
            ..Default::default()
        };
        let nowhere = FixedInformation::default();
        let daytime = "* * 8-17 * * * *";
        let night = "* * 0-5 * * * *";
        let or = attrs(json!({"dr": {"tod": [night], "lr": [{"accc": ["DE"]}]}}));
        assert!(holds(&or, T, &in_germany));
        assert!(!holds(&or, T, &nowhere));
        let and = attrs(json!({"dr": {"tod": [daytime], "lr": [{"accc": ["DE"]}]}, "drr": 1}));
        assert!(holds(&and, T, &in_germany));
        assert!(!holds(&and, T, &nowhere));
        assert!(holds(&attrs(json!({})), T, &nowhere), "no rules: holds");
        assert!(holds(&attrs(json!({"dr": {}})), T, &nowhere));
    }

    #[test]
    fn bad_rules_are_refused_and_never_hold() {
        for dr in [
            json!("x"),
            json!({"tod": ["* * *"]}),
            json!({"lr": [{"accc": ["DE"], "accr": [1, 2, 3]}]}),
            json!({"xyz": []}),
            json!({"tod": vec!["* * * * * * *"; MAX_ENTRIES + 1]}),
        ] {
            let content = attrs(json!({ "dr": dr }));
            let err = PolicyDeletionRules.check_content(&content).unwrap_err();
            assert_eq!(err.rsc(), bastion_proto::Rsc::BadRequest, "{dr}");
            assert!(!holds(&content, T, &FixedInformation::default()));
        }
    }
}
