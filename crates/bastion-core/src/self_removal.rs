//! A notification target leaving a subscription (TS-0004 7.4.33.2.4, TS-0001 9.6.34):
//! a DELETE of the subscription's virtual child `ntsr` (`<notificationTargetSelfReference>`).
//!
//! The request passes the access decision of its target like any other (DELETE, governed
//! by the subscription's policies), and its originator must be one of the subscription's
//! notification targets. The governing `<notificationTargetPolicy>`
//! (`types/notification_target_policy.rs`) then decides: the target's entries leave `nu`
//! (2002; the subscription ends when none is left), the subscriber is asked first or only
//! told (a NOTIFY carrying `trr` and `ntt`), or the target stays (4103). The policy is
//! the one a `<notificationTargetMgmtPolicyRef>` of the subscription names for the
//! target, else the default one. Every other operation on `ntsr` is 4005.

use crate::access::Enforcer;
use crate::checks::{Checked, DeleteRequest};
use crate::resolve::Target;
use crate::subscription::SubscriptionState;
use crate::tree::{Ri, TypeState};
use crate::types::notification_target_mgmt_policy_ref::references;
use crate::types::notification_target_policy::{decide, governing, referenced, Verdict};
use crate::types::subscription_parts;
use crate::Cse;
use bastion_policy::AccessOperation;
use bastion_proto::{RequestError, ResourceType, Response, Rsc};
use bastion_store::WriteOp;
use serde_json::{json, Value};
use std::sync::Arc;

/// The name of a subscription's `<notificationTargetSelfReference>`.
const NTSR: &str = "/ntsr";

/// What a removal does to the subscription.
enum Removal {
    /// Targets remain: the subscription is rewritten.
    Rewritten(crate::commit::Pending, crate::Notices),
    /// None remains: the subscription ends.
    Ended,
}

impl Cse {
    /// Requests to `<subscription>/ntsr`; `None` when `to` does not end in the `ntsr`
    /// of a live subscription on this CSE.
    pub(crate) async fn self_removal(
        &self,
        req: &Checked,
        access: &Enforcer<'_>,
    ) -> Option<Result<Response, RequestError>> {
        let subscription = req.to.strip_suffix(NTSR)?;
        let sub = {
            let tree = self.tree.read();
            let node = crate::authz_state::resolve_local(&tree, &self.config, subscription)
                .filter(|n| n.ty == ResourceType::Subscription)?;
            if tree.expired_in_chain(&node.ri, access.now()) {
                return None;
            }
            node.ri.clone()
        };
        Some(match req {
            Checked::Delete(req) => self.remove_target(&sub, req, access).await,
            _ => Err(RequestError::not_allowed(
                "notificationTargetSelfReference accepts only DELETE",
            )),
        })
    }

    async fn remove_target(
        &self,
        sub: &Ri,
        req: &DeleteRequest,
        access: &Enforcer<'_>,
    ) -> Result<Response, RequestError> {
        let originator = &req.envelope.fr;
        access
            .authorize(&Target::Node(sub.clone()), AccessOperation::Delete, None)
            .await?;
        let state = subscription_parts(&self.tree.read(), sub)?.1;
        let leaving: Vec<String> = state
            .nu
            .iter()
            .filter(|target| self.is_subscriber(originator, target))
            .cloned()
            .collect();
        if leaving.is_empty() {
            return Err(RequestError::NoPrivilege(
                "the originator is not a notification target of this subscription".into(),
            ));
        }
        // A reference naming one of the target's entries picks the policy (TS-0004
        // 7.4.33.2.4); without one, or when its `npi` names no policy, the default.
        let now = access.now();
        let refs = references(&self.tree.read(), sub, now);
        let named = refs
            .into_iter()
            .find(|(ntu, _)| ntu.iter().any(|t| self.is_subscriber(originator, t)))
            .and_then(|(_, npi)| npi);
        let verdict = {
            let tree = self.tree.read();
            let policy = named
                .and_then(|npi| referenced(&tree, &self.config, &npi, now))
                .or_else(|| governing(&tree, &self.local, &state.creator, now));
            access.with_pip(&tree, |pip| decide(&tree, policy, now, pip))
        };
        let sur = format!("{}/{}", self.config.cse_id, sub);
        let question = json!({ "m2m:sgn": {
            "sur": sur, "ntt": originator, "trr": true, "cr": state.creator,
        }});
        match verdict {
            Verdict::Remove => {}
            Verdict::Refuse(why) => return Err(RequestError::NoPrivilege(why.into())),
            Verdict::InformSubscriber => {
                if let Err(why) = self.ask_target(&state.creator, question).await {
                    tracing::info!(subscription = %sur, reason = %why, "subscriber not informed of a target's removal request");
                }
                return Err(RequestError::NoPrivilege(
                    "the subscriber was informed; the target stays".into(),
                ));
            }
            Verdict::AskSubscriber => {
                let allowed = self
                    .ask_target(&state.creator, question)
                    .await
                    .is_ok_and(|resp| resp.rsc == Rsc::Ok && allows_removal(resp.pc.as_ref()));
                if !allowed {
                    return Err(RequestError::NoPrivilege(
                        "the subscriber did not allow the removal".into(),
                    ));
                }
            }
        }
        self.drop_targets(sub, &leaving, originator).await?;
        Ok(Response::new(Rsc::Deleted, String::new()))
    }

    /// Removes `leaving` from the `nu` of `sub`, durably, notifying the subscription's
    /// own subscribers like any UPDATE; ends the subscription when no target is left.
    async fn drop_targets(
        &self,
        sub: &Ri,
        leaving: &[String],
        originator: &str,
    ) -> Result<(), RequestError> {
        self.write_guard()?;
        let now = self.now();
        let removal = {
            let mut tree = self.tree.write();
            let (node, old, parent_ty) = subscription_parts(&tree, sub)?;
            let mut attrs = node.attrs.clone();
            let nu: Vec<Value> = attrs
                .get("nu")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|t| !t.as_str().is_some_and(|t| leaving.iter().any(|l| l == t)))
                .cloned()
                .collect();
            if nu.is_empty() {
                Removal::Ended
            } else {
                attrs.insert("nu".into(), Value::Array(nu));
                attrs.insert("lt".into(), Value::String(now.format()));
                let state =
                    SubscriptionState::compile(&attrs, parent_ty, &old.creator, old.authenticated)?;
                let node = tree
                    .get_mut(sub)
                    .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
                node.attrs = attrs;
                node.state = TypeState::Subscription(Arc::new(state));
                let mut ops = vec![WriteOp::Upsert(crate::types::node_row(node))];
                let modified = ["nu".to_owned(), "lt".to_owned()];
                let (notices, more) = self.updated(&mut tree, sub, &modified, originator);
                ops.extend(more);
                Removal::Rewritten(self.committer.enqueue(ops), notices)
            }
        };
        match removal {
            Removal::Ended => self.end_subscription(sub).await,
            Removal::Rewritten(pending, notices) => {
                pending.durable().await?;
                self.dispatch(notices).await;
                Ok(())
            }
        }
    }
}

/// Whether the subscriber's answer allows the removal: a notification whose
/// `targetRemovalAllowance` (`tra`) is true.
fn allows_removal(pc: Option<&Value>) -> bool {
    pc.and_then(|pc| pc.get("m2m:sgn"))
        .and_then(|sgn| sgn.get("tra"))
        .and_then(Value::as_bool)
        == Some(true)
}
