//! Blocking update (TS-0001 10.2.11, TS-0004 7.3.2.9; `net` 7): an UPDATE of a resource
//! with a blocking-update `<subscription>` waits for that subscription's target to agree
//! before anything changes. The subscription's own rules are in `subscription.rs`.

use crate::notify::{fresh_id, has_subscriptions, without_credentials, Destination};
use crate::subscription::{EventFacts, NET_BLOCKING_UPDATE};
use crate::tree::Ri;
use crate::Cse;
use bastion_proto::Rsc;
use serde_json::{json, Map, Value};

impl Cse {
    /// A blocking update (TS-0001 10.2.11, TS-0004 7.3.2.9; `net` 7): before the UPDATE of
    /// `ri` by `originator` with `content` is performed, the resource's blocking-update
    /// subscription (at most one) notifies its target of the attributes about to change
    /// and waits for the answer. 2000 lets the update go on; a target that cannot be
    /// reached is 5107, any other answer 4127 (docs/decisions.md). Nothing is asked when
    /// `atr` names none of the attributes, or when the subscriber may no longer RETRIEVE
    /// the resource (its subscription is silent, as for every other notification).
    pub(crate) async fn blocking_update(
        &self,
        ri: &Ri,
        content: &Map<String, Value>,
        originator: &str,
    ) -> Result<(), bastion_proto::RequestError> {
        use bastion_proto::RequestError;
        let Some(asked) = self.blocking_notification(ri, content, originator) else {
            return Ok(());
        };
        let (sur, target) = (asked.sur.clone(), asked.target.clone());
        let answer = self.blocking_answer(asked).await;
        match answer {
            Ok(Rsc::Ok) => Ok(()),
            Ok(Rsc::TargetNotReachable) | Err(_) => {
                tracing::info!(subscription = %sur, target = %target, reason = ?answer.err(), "blocking update: target not reached");
                Err(RequestError::RemoteEntityNotReachable(
                    "the target of the blocking update could not be reached".into(),
                ))
            }
            Ok(rsc) => {
                tracing::info!(subscription = %sur, target = %target, answer = rsc.code(), "blocking update refused");
                Err(RequestError::DeniedByRemoteEntity(
                    "the target of the blocking update refused it".into(),
                ))
            }
        }
    }

    /// The blocking-update subscription of `ri` that `content` concerns: its `sur`, its
    /// target and the `m2m:sgn` to send (the attributes of the request, `net` 7, and the
    /// update's originator as `cr`).
    fn blocking_notification(
        &self,
        ri: &Ri,
        content: &Map<String, Value>,
        originator: &str,
    ) -> Option<BlockingAsk> {
        let tree = self.tree.read();
        let subject = tree.get(ri)?;
        if !has_subscriptions(&tree, subject) {
            return None;
        }
        let (sub_ri, state) = tree
            .subscriptions_under(ri)
            .iter()
            .filter_map(|c| tree.get(c))
            .filter_map(|c| Some((c.ri.clone(), c.subscription()?.clone())))
            .find(|(_, s)| s.is_blocking_update())?;
        let modified: Vec<String> = content.keys().cloned().collect();
        let facts = EventFacts {
            net: NET_BLOCKING_UPDATE,
            resource: &subject.attrs,
            child_type: None,
            modified: &modified,
            operation: 3,
            originator,
        };
        let atr = &state.criteria.attributes;
        let watched = atr.is_empty() || atr.iter().any(|a| modified.contains(a));
        if !watched
            || !state.criteria.admits(&facts)
            || !self.may_still_retrieve(&tree, &state, subject)
        {
            return None;
        }
        let sur = format!("{}/{}", self.config.cse_id, sub_ri);
        let root = crate::types::root_of(&self.config, &tree, subject.ty, &subject.attrs);
        // The content as asked for, as any representation leaving the CSE: without the
        // write-only values it may set (a wifiClient's new passphrase).
        let rep = crate::render::wrap_as(&root, content.clone());
        let notification = json!({ "m2m:sgn": {
            "nev": { "rep": rep, "net": NET_BLOCKING_UPDATE },
            "sur": sur,
            "cr": originator,
        }});
        Some(BlockingAsk {
            target: state.nu.first()?.clone(),
            subscriber: state.creator.clone(),
            sur,
            notification,
        })
    }

    /// Sends the blocking-update notification to its target (a resource ID: an AE's
    /// `poa`, verified first as for any notification (`poa.rs`), its polling channel, or
    /// the CSE leading to it) and returns the answer's status.
    async fn blocking_answer(&self, asked: BlockingAsk) -> Result<Rsc, String> {
        let BlockingAsk {
            sur,
            target,
            subscriber,
            notification: pc,
        } = asked;
        let target = target.as_str();
        let destination = {
            let tree = self.tree.read();
            self.destination(&tree, target)
        };
        let req = bastion_proto::Request {
            op: Some(bastion_proto::Operation::Notify),
            to: target.to_owned(),
            fr: Some(self.config.cse_id.clone()),
            rqi: Some(format!("b-{}", fresh_id())),
            rvi: Some("3".to_owned()),
            pc: Some(pc),
            ..Default::default()
        };
        match destination {
            Destination::Http { poa, peer, ae } => {
                let outbound = self
                    .outbound
                    .as_ref()
                    .ok_or_else(|| "this CSE sends no requests".to_owned())?;
                if let Some(ae) = ae.filter(|ae| !self.poa_checks.is_verified(ae, &poa)) {
                    let asked = self.ask_poa(target, peer.as_deref(), &poa, &sur, &subscriber);
                    if asked.await != Some(true) {
                        return Err("the point of access was not verified".into());
                    }
                    self.poa_checks.verified(&ae, &poa);
                }
                let resp = outbound
                    .send(peer.as_deref(), &poa, req)
                    .await
                    .map_err(|e| without_credentials(&e.to_string()))?;
                Ok(resp.rsc)
            }
            Destination::Polling(pch) => {
                let fr = self.config.cse_id.clone();
                self.relay_through_channel(&pch, target, &fr, req.pc)
                    .await
                    .map(|r| r.rsc)
                    .map_err(|e| e.to_string())
            }
            Destination::Unreachable(why) => Err(why.into()),
        }
    }
}

/// A blocking-update notification about to be sent.
struct BlockingAsk {
    sur: String,
    /// The subscription's one target.
    target: String,
    subscriber: String,
    /// The `m2m:sgn`.
    notification: Value,
}
