//! `<notificationTargetPolicy>` (TS-0004 7.4.31, TS-0001 9.6.32): what the CSE does when
//! a notification target asks to leave a subscription (`self_removal.rs`). The policy's
//! `acn` is applied when its rules hold: its `<policyDeletionRules>` children, at most
//! two, combined by `rrs`; a policy without any holds. Which policy governs a removal
//! and what follows when nothing applies is recorded in docs/decisions.md.

use super::policy_deletion_rules::{self, AND};
use super::ResourceKind;
use crate::authz_state::resolve_local;
use crate::tree::{Node, Tree};
use crate::CseConfig;
use bastion_policy::{normalize_originator, LocalIdentity, Pip};
use bastion_proto::time::Timestamp;
use bastion_proto::ResourceType;
use serde_json::Value;

pub(super) struct NotificationTargetPolicy;

impl ResourceKind for NotificationTargetPolicy {}

/// The `plbl` of a default policy (TS-0004 7.4.33.2.4; TS-0001 9.6.32 writes it in
/// lower case, so case is ignored).
const DEFAULT_LABEL: &str = "Default";

/// `m2m:notificationTargetPolicyAction` (TS-0004 6.3.4.2.32).
const ACCEPT: u64 = 1;
const SEEK_AUTHORIZATION: u64 = 3;
const INFORM: u64 = 4;

/// What a removal request gets.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The target leaves `nu`.
    Remove,
    /// The subscriber is asked; the target leaves only when it allows it.
    AskSubscriber,
    /// The subscriber is told; the target stays (4103).
    InformSubscriber,
    /// The target stays (4103), for this reason.
    Refuse(&'static str),
}

/// The policy governing a removal from a subscription whose subscriber is `subscriber`:
/// the default policy (`plbl` "Default") that subscriber created, else the oldest
/// default policy; `None` when the CSE holds none.
pub(crate) fn governing<'t>(
    tree: &'t Tree,
    local: &LocalIdentity,
    subscriber: &str,
    now: Timestamp,
) -> Option<&'t Node> {
    let subscriber = normalize_originator(local, subscriber);
    let base = tree.get(&tree.base)?;
    let mut defaults = base
        .children
        .iter()
        .filter_map(|c| tree.get(c))
        .filter(|n| n.ty == ResourceType::NotificationTargetPolicy && !n.is_expired(now))
        .filter(|n| {
            n.attrs
                .get("plbl")
                .and_then(Value::as_str)
                .is_some_and(|l| l.eq_ignore_ascii_case(DEFAULT_LABEL))
        });
    let first = defaults.next()?;
    let own = |n: &&Node| {
        n.creator
            .as_deref()
            .is_some_and(|c| normalize_originator(local, c) == subscriber)
    };
    Some(if own(&first) {
        first
    } else {
        defaults.find(own).unwrap_or(first)
    })
}

/// The live `<notificationTargetPolicy>` a reference's `npi` names on this CSE.
pub(crate) fn referenced<'t>(
    tree: &'t Tree,
    config: &CseConfig,
    npi: &str,
    now: Timestamp,
) -> Option<&'t Node> {
    resolve_local(tree, config, npi).filter(|n| {
        n.ty == ResourceType::NotificationTargetPolicy && !tree.expired_in_chain(&n.ri, now)
    })
}

/// The verdict of `policy` on a removal requested at `time` (Unix seconds) by the
/// originator the `pip` answers for. Without a policy the removal is refused.
pub(crate) fn decide(tree: &Tree, policy: Option<&Node>, now: Timestamp, pip: &dyn Pip) -> Verdict {
    let Some(policy) = policy else {
        return Verdict::Refuse("no notification target policy applies");
    };
    let mut groups = policy
        .children
        .iter()
        .filter_map(|c| tree.get(c))
        .filter(|n| n.ty == ResourceType::PolicyDeletionRules && !n.is_expired(now))
        .map(|g| policy_deletion_rules::holds(&g.attrs, now.0, pip));
    let first = groups.next();
    let second = groups.next();
    let rules_hold = match (first, second) {
        (None, _) => true,
        (Some(one), None) => one,
        // `rrs` must be given with two groups (TS-0004 7.4.31.1); without it both must
        // hold, the stricter reading.
        (Some(a), Some(b)) => match policy.attrs.get("rrs").and_then(Value::as_u64) {
            Some(rrs) if rrs != AND => a || b,
            _ => a && b,
        },
    };
    if !rules_hold {
        return Verdict::Refuse("the notification target policy's rules do not hold");
    }
    match policy.attrs.get("acn").and_then(Value::as_u64) {
        Some(ACCEPT) => Verdict::Remove,
        Some(SEEK_AUTHORIZATION) => Verdict::AskSubscriber,
        Some(INFORM) => Verdict::InformSubscriber,
        _ => Verdict::Refuse("the notification target policy rejects the removal"),
    }
}
