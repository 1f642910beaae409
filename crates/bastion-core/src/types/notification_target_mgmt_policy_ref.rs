//! `<notificationTargetMgmtPolicyRef>` (TS-0004 7.4.30, TS-0001 9.6.31): under a
//! `<subscription>`, names the `<notificationTargetPolicy>` (`npi`) that governs the
//! removal of some of its notification targets (`ntu`); `self_removal.rs` reads it. A
//! target is named by at most one reference of a subscription (4105).

use super::ResourceKind;
use crate::checks::{CreateRequest, Envelope};
use crate::tree::{Node, Ri, Tree};
use crate::Cse;
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};

pub(super) struct NotificationTargetMgmtPolicyRef;

/// Targets one reference may name, as many as a subscription may hold (`nu`).
const MAX_TARGETS: usize = 16;

impl ResourceKind for NotificationTargetMgmtPolicyRef {
    fn check_content(&self, content: &Map<String, Value>) -> Result<(), RequestError> {
        match content.get("ntu").and_then(Value::as_array) {
            Some(ntu) if ntu.is_empty() => Err(RequestError::bad_request(
                "ntu must name at least one notification target",
            )),
            Some(ntu) if ntu.len() > MAX_TARGETS => Err(RequestError::bad_request(format!(
                "ntu names more than {MAX_TARGETS} targets"
            ))),
            _ => Ok(()),
        }
    }

    fn check_locked(
        &self,
        _cse: &Cse,
        tree: &Tree,
        req: &CreateRequest,
        parent: &Ri,
    ) -> Result<(), RequestError> {
        let content = req.pc.get("m2m:ntpr").and_then(Value::as_object);
        check_unique(tree, parent, None, content)
    }

    /// The same rule for an UPDATE of `ntu`: a target still belongs to one reference.
    fn check_update(
        &self,
        cse: &Cse,
        _req: &Envelope,
        ri: &Ri,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        let tree = cse.tree.read();
        let Some(parent) = tree.get(ri).and_then(|n| n.pi.clone()) else {
            return Ok(());
        };
        check_unique(&tree, &parent, Some(ri), Some(content))
    }
}

/// The references under the subscription `sub`, other than `except`.
fn siblings<'t>(
    tree: &'t Tree,
    sub: &Ri,
    except: Option<&'t Ri>,
) -> impl Iterator<Item = &'t Node> + 't {
    tree.get(sub)
        .into_iter()
        .flat_map(|s| s.children.iter())
        .filter(move |c| Some(*c) != except)
        .filter_map(|c| tree.get(c))
        .filter(|n| n.ty == ResourceType::NotificationTargetMgmtPolicyRef)
}

/// Refuses (4105) `ntu` entries of `content` that another reference under `sub` names
/// already (TS-0004 7.4.30.2.1).
fn check_unique(
    tree: &Tree,
    sub: &Ri,
    except: Option<&Ri>,
    content: Option<&Map<String, Value>>,
) -> Result<(), RequestError> {
    let Some(ntu) = content.and_then(|c| c.get("ntu")).and_then(Value::as_array) else {
        return Ok(());
    };
    let taken = siblings(tree, sub, except)
        .filter_map(|n| n.attrs.get("ntu").and_then(Value::as_array))
        .any(|other| ntu.iter().any(|t| other.contains(t)));
    if taken {
        return Err(RequestError::Conflict(
            "a notification target is already named by another policy reference".into(),
        ));
    }
    Ok(())
}

/// Every live reference under the subscription `sub`: its `ntu` targets and its `npi`.
pub(crate) fn references(
    tree: &Tree,
    sub: &Ri,
    now: bastion_proto::time::Timestamp,
) -> Vec<(Vec<String>, Option<String>)> {
    siblings(tree, sub, None)
        .filter(|n| !n.is_expired(now))
        .map(|n| {
            let ntu = n
                .attrs
                .get("ntu")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let npi = n
                .attrs
                .get("npi")
                .and_then(Value::as_str)
                .map(str::to_owned);
            (ntu, npi)
        })
        .collect()
}
