//! Event notification (TS-0001 10.2.11.6, TS-0004 7.4.8; core-resources.md §3.7): which
//! `<subscription>`s an event concerns, what each notification says, and where it goes.
//!
//! The pipeline detects events while it holds the tree's write lock (so a notification
//! describes exactly the state it committed) but hands notifications to the delivery
//! engine only after the write is durable: nothing is announced that a crash could undo.
//! Delivery itself (queues, retries, batching, rate limits) belongs to the
//! [`NotificationSink`] the binary provides (`bastion-notify`); the core never waits
//! for a notification target.
//!
//! Every notification re-checks that the subscriber still has RETRIEVE privilege on the
//! subscribed-to resource: revoking it in the ACP stops the flow at once (TS-0003 7.1;
//! docs/decisions.md). A notification about a child shows that child only as far as the
//! subscriber may see it itself (`Cse::child_view`). Targets are verified before a
//! subscription takes effect, and an AE's own `poa` before it gets unsolicited
//! notifications (`poa.rs`). A subscription's `<schedule>` child restricts when it
//! notifies: outside its windows a notification is dropped, or with `pn` held
//! (`held.rs`) and released when a window opens (docs/notifications.md).

use crate::access::{Enforcer, RuleKind};
use crate::config::NOTIFICATION_RELEASE;
use crate::forward;
use crate::held::Held;
pub use crate::outgoing::{NotificationKind, OutgoingNotification};
use crate::pch::PollingMessage;
use crate::subscription::{
    EventFacts, SubscriptionState, NCT_MODIFIED, NCT_RI, NCT_TSN, NET_CREATE_CHILD, NET_DELETE,
    NET_DELETE_CHILD, NET_MISSING_DATA, NET_UPDATE,
};
use crate::tree::{Node, Ri, Tree};
use crate::{Cse, RequestContext};
use bastion_policy::AccessOperation;
use bastion_proto::{ResourceType, Response, Rsc};
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::sync::Arc;

/// The delivery engine, as the core sees it. `submit` must never block.
pub trait NotificationSink: Send + Sync {
    /// Queues one notification; an error says why it was dropped.
    fn submit(&self, notification: OutgoingNotification) -> Result<(), String>;
    /// Sends what is buffered for this subscription now (it is being deleted).
    fn flush(&self, subscription: &str);
}

/// A notification decided under the write lock, to be routed once the write is durable.
pub(crate) struct Notice {
    /// The subscription's resource ID.
    pub ri: Ri,
    /// Whether its notification schedule holds it back (`held.rs`): `Some(latest)`
    /// with `pn` 1 (sendLatest) or 2; `None` sends it now.
    pub held: Option<bool>,
    pub sur: String,
    pub state: Arc<SubscriptionState>,
    pub nu: Vec<String>,
    pub event: Value,
    /// The originator of the request that caused the event, when the subscription asks
    /// for it (`eeno`).
    pub originator: Option<String>,
}

/// The subscriptions an event concerns, decided under the write lock.
#[derive(Default)]
pub(crate) struct Notices {
    pub items: Vec<Notice>,
    /// Subscriptions whose `exc` ran out: deleted after dispatch.
    pub exhausted: Vec<Ri>,
}

impl Notices {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.exhausted.is_empty()
    }

    pub fn extend(&mut self, other: Notices) {
        self.items.extend(other.items);
        self.exhausted.extend(other.exhausted);
    }
}

/// What happened, to which resource, by whom.
#[derive(Clone)]
pub(crate) struct Event<'a> {
    pub net: u8,
    /// The resource whose `<subscription>` children are notified.
    pub subject: &'a Ri,
    /// The resource the notification represents: the subject itself (net 1, 2) or the
    /// child (net 3, 4).
    pub ty: ResourceType,
    pub resource: &'a Map<String, Value>,
    /// Attributes an UPDATE changed (net 1).
    pub modified: &'a [String],
    /// The request's operation (1 C … 5 N) and originator, for `om`.
    pub operation: u8,
    pub originator: &'a str,
}

/// How much of the resource a notification shows its subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View {
    /// As the subscription's `nct` asks.
    Full,
    /// Only the resource ID (as `nct` 3), whatever `nct` asks.
    Reference,
}

/// Whether `node` has any `<subscription>` child: the cheap test the hot paths make, in
/// constant time whatever the number of its other children.
pub(crate) fn has_subscriptions(tree: &Tree, node: &Node) -> bool {
    !tree.subscriptions_under(&node.ri).is_empty()
}

impl Cse {
    /// The notifications `event` causes, with each concerned subscription's `exc`
    /// counted down (the caller persists the returned rows with its own write).
    pub(crate) fn detect(&self, tree: &mut Tree, event: Event) -> (Notices, Vec<Ri>) {
        let mut notices = Notices::default();
        let mut counted = Vec::new();
        let Some(subject) = tree.get(event.subject) else {
            return (notices, counted);
        };
        let subs: Vec<(Ri, Arc<SubscriptionState>)> = tree
            .subscriptions_under(event.subject)
            .iter()
            .filter_map(|c| tree.get(c))
            .filter_map(|c| Some((c.ri.clone(), c.subscription()?.clone())))
            .filter(|(_, s)| s.net.contains(&event.net))
            // A new subscription is not told about its own creation.
            .filter(|(ri, _)| event.resource.get("ri").and_then(Value::as_str) != Some(&**ri))
            .collect();
        if subs.is_empty() {
            return (notices, counted);
        }
        let facts = EventFacts {
            net: event.net,
            resource: event.resource,
            child_type: matches!(event.net, NET_CREATE_CHILD | NET_DELETE_CHILD)
                .then(|| event.ty.number()),
            modified: event.modified,
            operation: event.operation,
            originator: event.originator,
        };
        let now = self.now();
        for (ri, state) in subs {
            if !state.criteria.admits(&facts) || !self.may_still_retrieve(tree, &state, subject) {
                continue;
            }
            let Some(held) = schedule_hold(tree, &ri, now) else {
                continue;
            };
            let Some(view) = self.child_view(tree, &state, subject, &event) else {
                continue;
            };
            // `md`: a missing-data report only once enough points fell within its window.
            let windowed;
            let event = match (&state.missing, event.net) {
                (Some(window), NET_MISSING_DATA) => {
                    let found = event.resource.get("mdlt").and_then(Value::as_array);
                    let Some(report) = found.and_then(|f| window.add(f)) else {
                        continue;
                    };
                    windowed = report;
                    Event {
                        resource: &windowed,
                        ..event.clone()
                    }
                }
                _ => event.clone(),
            };
            notices.items.push(Notice {
                ri: ri.clone(),
                held,
                sur: format!("{}/{}", self.config.cse_id, ri),
                nu: state.nu.clone(),
                event: self.event_content(tree, &event, &state, view),
                originator: state.event_originator.then(|| event.originator.to_owned()),
                state: state.clone(),
            });
            if state.exc.is_some() || state.stats {
                counted.push(ri);
            }
        }
        for ri in &counted {
            count_event(tree, ri);
            if let Some(left) = count_down(tree, ri) {
                if left == 0 {
                    notices.exhausted.push(ri.clone());
                }
            }
        }
        (notices, counted)
    }

    /// The subscriber's RETRIEVE privilege on the subscribed-to resource, now, as it was
    /// authenticated when it subscribed. A rule that needs the request's transport (IP,
    /// location) cannot be evaluated without one and so does not grant.
    pub(crate) fn may_still_retrieve(
        &self,
        tree: &Tree,
        state: &SubscriptionState,
        subject: &Node,
    ) -> bool {
        let mut ctx = RequestContext::new(None, None);
        ctx.authenticated = state.authenticated;
        Enforcer::new(self, &state.creator, &ctx, self.now()).permits(
            tree,
            subject,
            AccessOperation::Retrieve,
            None,
            RuleKind::Privileges,
        )
    }

    /// How much of the resource a child event (net 3, 4) may show this subscriber: what
    /// it could see of that child itself (docs/decisions.md). Its representation when it
    /// may RETRIEVE the child, only its resource ID when it may merely DISCOVER it (as a
    /// child reference in `rcn` 6), nothing (no notification) otherwise. A
    /// `<contentInstance>` follows its container, the subscribed-to resource, except that
    /// a container with retrieval disabled (`disr`) shows only references. Events on the
    /// subscribed-to resource itself (net 1, 2) show it in full: its RETRIEVE privilege is
    /// re-checked by [`Cse::may_still_retrieve`].
    fn child_view(
        &self,
        tree: &Tree,
        state: &SubscriptionState,
        subject: &Node,
        event: &Event,
    ) -> Option<View> {
        if !matches!(event.net, NET_CREATE_CHILD | NET_DELETE_CHILD) {
            return Some(View::Full);
        }
        if event.ty.is_instance() {
            let disabled = subject.attrs.get("disr").and_then(Value::as_bool) == Some(true);
            return Some(if disabled {
                View::Reference
            } else {
                View::Full
            });
        }
        let child = event
            .resource
            .get("ri")
            .and_then(Value::as_str)
            .and_then(|ri| tree.get(ri))?;
        let mut ctx = RequestContext::new(None, None);
        ctx.authenticated = state.authenticated;
        let creator = Enforcer::new(self, &state.creator, &ctx, self.now());
        let may = |op| creator.may_include(tree, child, op);
        if may(AccessOperation::Retrieve) {
            Some(View::Full)
        } else if may(AccessOperation::Discovery) {
            Some(View::Reference)
        } else {
            None
        }
    }

    /// `{"nev": {"rep": …, "net": n[, "om": …]}, "sur": …}` without `sur` (added later).
    fn event_content(
        &self,
        tree: &Tree,
        event: &Event,
        state: &SubscriptionState,
        view: View,
    ) -> Value {
        let root = crate::types::root_of(&self.config, tree, event.ty, event.resource);
        let nct = match view {
            View::Full => state.nct,
            View::Reference => NCT_RI,
        };
        let mut rep = match nct {
            NCT_RI => {
                json!({ "m2m:uri": event.resource.get("ri").cloned().unwrap_or(Value::Null) })
            }
            // The report itself (`mdlt`, `mdc`), not the timeSeries (TS-0004 6.3.5).
            NCT_TSN => json!({ "m2m:tsn": event.resource }),
            NCT_MODIFIED => {
                let modified: Map<String, Value> = event
                    .modified
                    .iter()
                    .filter_map(|k| Some((k.clone(), event.resource.get(k)?.clone())))
                    .collect();
                crate::render::wrap_as(&root, modified)
            }
            _ => crate::render::wrap_as(&root, event.resource.clone()),
        };
        crate::render::for_release(NOTIFICATION_RELEASE, &mut rep);
        let mut nev = json!({ "rep": rep, "net": event.net });
        if state.criteria.has_monitor() {
            nev["om"] = json!({ "op": event.operation, "org": event.originator });
        }
        nev
    }

    /// Hands notices to the delivery engine (or a polling channel) once the write that
    /// caused them is durable, then ends subscriptions whose `exc` ran out.
    pub(crate) async fn dispatch(&self, notices: Notices) {
        if notices.is_empty() {
            return;
        }
        for notice in notices.items {
            let mut event = json!({
                "nev": notice.event,
                "sur": notice.sur,
            });
            // `eeno`: who caused the event (docs/decisions.md).
            if let Some(originator) = notice.originator {
                event["cr"] = Value::String(originator);
            }
            let event = Arc::new(event);
            if let Some(latest) = notice.held {
                let held = Held {
                    sur: notice.sur,
                    nu: notice.nu,
                    event,
                    state: notice.state,
                };
                let dropped = self.held.hold(notice.ri.clone(), held, latest);
                if dropped > 0 {
                    tracing::debug!(subscription = %notice.ri, dropped,
                        "held notifications dropped (sendLatest, or a bound reached)");
                }
                continue;
            }
            // What waited for this window goes first: the order of events is kept.
            self.held
                .release(&notice.ri, |held| self.send_held(&notice.ri, held));
            for nu in &notice.nu {
                self.deliver(&notice.sur, nu, event.clone(), &notice.state);
            }
        }
        for ri in notices.exhausted {
            if let Err(err) = self.end_subscription(&ri).await {
                tracing::warn!(subscription = %ri, error = %err, "could not end an exhausted subscription");
            }
        }
    }

    /// Sends what subscriptions held while their notification schedule was closed, for
    /// those whose window is open now (the periodic pass, `expiry.rs`). What a
    /// subscription no longer asks for is dropped: it is gone, its `pn` was removed, or
    /// its subscriber may no longer retrieve the subscribed-to resource.
    pub(crate) fn release_held(&self) {
        let subscriptions = self.held.subscriptions();
        if subscriptions.is_empty() {
            return;
        }
        let now = self.now();
        for ri in subscriptions {
            let due = {
                let tree = self.tree.read();
                match tree.get(&ri) {
                    Some(sub) => crate::types::notification_window(&tree, sub, now),
                    None => true,
                }
            };
            if due {
                self.held.release(&ri, |held| self.send_held(&ri, held));
            }
        }
    }

    /// Sends the notifications subscription `ri` held, oldest first, under what the
    /// subscription asks now (TS-0004 7.4.8.2.3: `pn` removed drops them all, sendLatest
    /// keeps the newest).
    fn send_held(&self, ri: &Ri, mut held: VecDeque<Held>) {
        let allowed = {
            let tree = self.tree.read();
            let sub = tree.get(ri);
            let subject = sub
                .and_then(|s| s.pi.as_deref())
                .and_then(|pi| tree.get(pi));
            match (sub, subject) {
                (Some(sub), Some(subject)) => {
                    let pn = sub.attrs.get("pn").and_then(Value::as_u64);
                    let permitted = sub
                        .subscription()
                        .is_some_and(|state| self.may_still_retrieve(&tree, state, subject));
                    match pn.filter(|_| permitted) {
                        None => 0,
                        Some(1) => 1,
                        Some(_) => held.len(),
                    }
                }
                _ => 0,
            }
        };
        let dropped = held.len() - allowed.min(held.len());
        if dropped > 0 {
            tracing::debug!(subscription = %ri, dropped, "held notifications dropped on release");
        }
        for h in held.drain(dropped..) {
            for nu in &h.nu {
                self.deliver(&h.sur, nu, h.event.clone(), &h.state);
            }
        }
    }

    /// Routes one subscription notification to one `nu` (or `su`) entry. Sent on the
    /// subscription's behalf, not the receiving AE's: an AE's `poa` must be verified
    /// first (`poa.rs`).
    fn deliver(&self, sur: &str, nu: &str, event: Arc<Value>, state: &SubscriptionState) {
        let kind = NotificationKind::Event;
        self.route_to(sur, nu, kind, event, &state.policy, Some(&state.creator));
    }

    /// Routes one notification of `kind` to one target `nu` (resolved by
    /// [`Cse::destination`]), under `policy`, without waiting: to the delivery engine, a
    /// polling channel, or nowhere (logged). `key` names the notification's source (a
    /// subscription, a `<request>`) for the engine's queues and the logs.
    pub(crate) fn route(
        &self,
        key: &str,
        nu: &str,
        kind: NotificationKind,
        event: Arc<Value>,
        policy: &crate::subscription::Policy,
    ) {
        self.route_to(key, nu, kind, event, policy, None);
    }

    /// [`Cse::route`]; with `unsolicited` (the subscriber), an AE's `poa` gets the
    /// notification only once verified.
    fn route_to(
        &self,
        key: &str,
        nu: &str,
        kind: NotificationKind,
        event: Arc<Value>,
        policy: &crate::subscription::Policy,
        unsolicited: Option<&str>,
    ) {
        let destination = {
            let tree = self.tree.read();
            // A target subscription of a crossResourceSubscription here: counted in its
            // window, never sent.
            if let Some(crs) = crate::authz_state::resolve_local(&tree, &self.config, nu)
                .filter(|n| n.ty == ResourceType::CrossResourceSubscription)
            {
                let crs = crs.ri.clone();
                drop(tree);
                if kind == NotificationKind::Event {
                    self.cross_resource_event(&crs, key);
                }
                return;
            }
            self.destination(&tree, nu)
        };
        match destination {
            Destination::Http {
                poa: targets,
                peer,
                ae,
            } => {
                if self.notifications.is_none() {
                    tracing::warn!(subscription = %key, "no notification delivery configured");
                    return;
                }
                let outgoing = OutgoingNotification {
                    subscription: key.to_owned(),
                    targets,
                    to: nu.to_owned(),
                    peer,
                    kind,
                    event,
                    batch: policy.batch,
                    rate: policy.rate,
                    latest_only: policy.latest_only,
                    pending_latest: policy.pending_latest,
                };
                match (ae, unsolicited) {
                    (Some(ae), Some(subscriber)) => {
                        self.to_unverified_poa(ae, subscriber, outgoing)
                    }
                    _ => self.submit(outgoing),
                }
            }
            Destination::Polling(pch) => {
                let event = Arc::unwrap_or_clone(event);
                let message = PollingMessage::notify(&self.config.cse_id, nu, kind, event);
                self.polling.push(&pch, message);
            }
            Destination::Unreachable(why) => {
                tracing::warn!(subscription = %key, reason = why, "notification target unreachable");
            }
        }
    }

    /// Hands one notification to the delivery engine.
    fn submit(&self, outgoing: OutgoingNotification) {
        let Some(sink) = &self.notifications else {
            return;
        };
        let key = outgoing.subscription.clone();
        if let Err(why) = sink.submit(outgoing) {
            report_refused(&key, &why);
        }
    }

    /// A notification for the `poa` of the AE `ae`: sent when that `poa` is verified,
    /// else held while a verification request (started here when none is in flight)
    /// asks it, or dropped when it failed verification recently (`poa.rs`).
    fn to_unverified_poa(&self, ae: Ri, subscriber: &str, outgoing: OutgoingNotification) {
        let poa = outgoing.targets.clone();
        let sur = outgoing.subscription.clone();
        let to = outgoing.to.clone();
        let peer = outgoing.peer.clone();
        match self.poa_checks.admit(&ae, &poa, outgoing) {
            crate::poa::Admission::Send(outgoing) => self.submit(*outgoing),
            crate::poa::Admission::Held => {}
            crate::poa::Admission::Dropped(why) => {
                tracing::warn!(subscription = %sur, target = %to, reason = why, "notification dropped");
            }
            crate::poa::Admission::Verify => {
                let Some(cse) = self.me.upgrade() else {
                    return;
                };
                let subscriber = subscriber.to_owned();
                tokio::spawn(async move {
                    // A `poa` that cannot be reached is asked again a few times (an AE
                    // may be down for a moment); one that answers anything but 2000 is
                    // not.
                    let mut verified = false;
                    for pause in crate::poa::RETRY_UNREACHABLE {
                        tokio::time::sleep(pause).await;
                        match cse
                            .ask_poa(&to, peer.as_deref(), &poa, &sur, &subscriber)
                            .await
                        {
                            Some(answer) => {
                                verified = answer;
                                break;
                            }
                            None => continue,
                        }
                    }
                    let released = cse.poa_checks.settle(&ae, &poa, verified);
                    if verified {
                        for outgoing in released {
                            cse.submit(outgoing);
                        }
                    } else {
                        tracing::warn!(
                            subscription = %sur,
                            target = %to,
                            dropped = released.len(),
                            "the target's point of access did not confirm; notifications to it are dropped"
                        );
                    }
                });
            }
        }
    }

    /// One verification request (`vrq`, as for a new subscription's targets) to the
    /// `poa` of the AE `to` (reached over the association with `peer`, its AE-ID):
    /// whether it answered 2000, `None` when it could not be reached. Failures are
    /// logged without credentials in the URL.
    pub(crate) async fn ask_poa(
        &self,
        to: &str,
        peer: Option<&str>,
        poa: &[String],
        sur: &str,
        subscriber: &str,
    ) -> Option<bool> {
        let Some(outbound) = &self.outbound else {
            return Some(false);
        };
        let content = json!({ "m2m:sgn": { "vrq": true, "sur": sur, "cr": subscriber } });
        let request = bastion_proto::Request {
            op: Some(bastion_proto::Operation::Notify),
            to: to.to_owned(),
            fr: Some(self.config.cse_id.clone()),
            rqi: Some(format!("v-{}", fresh_id())),
            rvi: Some(NOTIFICATION_RELEASE.rvi().to_owned()),
            pc: Some(content),
            ..Default::default()
        };
        match outbound.send(peer, poa, request).await {
            Ok(resp) if resp.rsc == Rsc::Ok => Some(true),
            Ok(resp) => {
                tracing::info!(target = %to, answer = resp.rsc.code(), "point of access not verified");
                Some(false)
            }
            Err(e) => {
                tracing::info!(target = %to, reason = %without_credentials(&e.to_string()), "point of access not reached for verification");
                None
            }
        }
    }

    /// Where a notification target is: a URL as given, a local AE's `poa` (or its
    /// polling channel when it has none), or the `poa` of the remote CSE leading to it
    /// (TS-0001 10.2.11.6; core-resources.md §3.7).
    pub(crate) fn destination(&self, tree: &Tree, nu: &str) -> Destination {
        if is_url(nu) {
            return Destination::Http {
                poa: vec![nu.to_owned()],
                peer: None,
                ae: None,
            };
        }
        if let Some(node) = crate::authz_state::resolve_local(tree, &self.config, nu) {
            let poa = string_list(node.attrs.get("poa"));
            let csz = string_list(node.attrs.get("csz"));
            let usable: Vec<String> = poa
                .into_iter()
                .filter(|p| is_url(p))
                .map(|p| in_csz_serialization(p, &csz))
                .collect();
            if !usable.is_empty() {
                let is_ae = node.ty == ResourceType::Ae;
                return Destination::Http {
                    poa: usable,
                    // An AE's own points of access are reached over the association
                    // with that AE where one exists (a `coaps://` or `https://` one).
                    peer: is_ae
                        .then(|| node.attrs.get("aei").and_then(Value::as_str))
                        .flatten()
                        .map(str::to_owned),
                    ae: is_ae.then(|| node.ri.clone()),
                };
            }
            if node.ty == ResourceType::Ae {
                if let Some(pch) = crate::types::channel_of(tree, node) {
                    return Destination::Polling(pch);
                }
            }
            return Destination::Unreachable("the target has no point of access");
        }
        match self.remote_hop(tree, nu) {
            Some((csi, poa)) if !poa.is_empty() => Destination::Http {
                poa,
                peer: Some(csi),
                ae: None,
            },
            _ => Destination::Unreachable("no route to the target's CSE"),
        }
    }

    /// The CSE-ID and `poa` of the next hop towards `id` (an ID on another CSE), chosen
    /// as for a forwarded request that originates here (`forward::next_hop`: the remote
    /// CSE whose `csi` or `dcse` names it, else the registrar).
    pub(crate) fn remote_hop(&self, tree: &Tree, id: &str) -> Option<(String, Vec<String>)> {
        let dest = forward::transit(&self.config.sp_id, &self.config.cse_id, id)?;
        let peers = crate::remote_cse::peers_in(tree, self.now());
        let here = forward::Here {
            cse_id: &self.config.cse_id,
            cse_type: self.config.cse_type,
            registrar: self.config.registrar.as_deref(),
        };
        let hop = forward::next_hop(&here, &peers, &dest, forward::Owner::Local, None).ok()?;
        let poa = hop.poa.iter().filter(|p| is_url(p)).cloned().collect();
        Some((hop.csi.clone(), poa))
    }

    /// The deletion notice (`su`, TS-0001 10.2.11.5) and a flush of anything batched;
    /// a crossResourceSubscription's target subscriptions on other CSEs are deleted
    /// there, and the `srat` subscriptions there it joined are left, as its creator,
    /// without waiting (best effort).
    pub(crate) fn subscription_ended(&self, ri: &str, state: &SubscriptionState) {
        let sur = format!("{}/{}", self.config.cse_id, ri);
        if let Some(sink) = &self.notifications {
            sink.flush(&sur);
        }
        let remote = !state.remote_companions.is_empty() || !state.remote_joined.is_empty();
        if let (true, Some(cse)) = (remote, self.me.upgrade()) {
            let creator = state.creator.clone();
            let ids = state.remote_companions.clone();
            let joined = state.remote_joined.clone();
            let crs = ri.to_owned();
            tokio::spawn(async move {
                // Not the request of anyone here: no binding to speak for.
                let anonymous = RequestContext::new(None, None);
                crate::types::cross_resource_subscription::delete_remote(
                    &cse, &crs, &creator, &anonymous, &ids,
                )
                .await;
                crate::types::cross_resource_subscription::leave_remote(
                    &cse, &crs, &creator, &anonymous, &joined,
                )
                .await;
            });
        }
        let Some(su) = &state.su else {
            return;
        };
        let event = json!({ "sud": true, "sur": sur });
        let plain = SubscriptionState {
            policy: Default::default(),
            ..state.clone()
        };
        self.deliver(&sur, su, Arc::new(event), &plain);
    }

    /// Deletes a subscription whose `exc` reached 0, with its deletion notice.
    pub(crate) async fn end_subscription(
        &self,
        ri: &Ri,
    ) -> Result<(), bastion_proto::RequestError> {
        self.write_guard()?;
        let (pending, ended) = {
            let mut tree = self.tree.write();
            let ended = ended_subscriptions(&tree, ri);
            let ops = crate::types::remove_node(&mut tree, ri);
            (self.committer.enqueue(ops), ended)
        };
        pending.durable().await?;
        for (ri, state) in ended {
            self.subscription_ended(&ri, &state);
        }
        Ok(())
    }

    /// Events and deletion notices for removing the subtree at `ri` (DELETE or expiry):
    /// `net` 2 on the resource itself, `net` 4 on its parent, and the end of every
    /// subscription in the subtree. Call before removing it.
    pub(crate) fn on_remove(
        &self,
        tree: &mut Tree,
        ri: &Ri,
        originator: &str,
    ) -> (Notices, Vec<Ended>, Vec<Ri>) {
        let Some(node) = tree.get(ri) else {
            return (Notices::default(), Vec::new(), Vec::new());
        };
        let (ty, attrs, parent) = (node.ty, node.attrs.clone(), node.pi.clone());
        let ended = ended_subscriptions(tree, ri);
        let (mut notices, mut counted) = self.detect(
            tree,
            Event {
                net: NET_DELETE,
                subject: ri,
                ty,
                resource: &attrs,
                modified: &[],
                operation: 4,
                originator,
            },
        );
        // The subscriptions going with the subtree are not counted down or re-written.
        counted.retain(|c| !ended.iter().any(|(e, _)| e == c));
        notices
            .exhausted
            .retain(|c| !ended.iter().any(|(e, _)| e == c));
        if let Some(parent) = parent {
            let (more, more_counted) = self.detect(
                tree,
                Event {
                    net: NET_DELETE_CHILD,
                    subject: &parent,
                    ty,
                    resource: &attrs,
                    modified: &[],
                    operation: 4,
                    originator,
                },
            );
            notices.extend(more);
            counted.extend(more_counted);
        }
        (notices, ended, counted)
    }
}

impl Cse {
    /// A notification of target subscription `sur` reached the crossResourceSubscription
    /// `crs` (TS-0004 7.5.1.2.18): recorded in its window; when every target has notified
    /// within it, the cross-resource notification `{"sur": crs}` goes to its `nu`, and
    /// `exc` is counted down.
    fn cross_resource_event(&self, crs: &Ri, sur: &str) {
        // A target subscription here is known by its resource ID, one on another CSE by
        // its SP-relative ID.
        let sub = sur
            .strip_prefix(self.config.cse_id.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(sur);
        let state = {
            let tree = self.tree.read();
            tree.get(crs).and_then(Node::cross_resource).cloned()
        };
        let Some(state) = state else {
            return;
        };
        if !state.record(sub, self.now_ms()) {
            return;
        }
        let own = format!("{}/{}", self.config.cse_id, crs);
        let event = Arc::new(json!({ "sur": own }));
        for nu in &state.delivery.nu {
            self.deliver(&own, nu, event.clone(), &state.delivery);
        }
        if state.delivery.exc.is_none() {
            return;
        }
        let Some(cse) = self.me.upgrade() else {
            return;
        };
        let crs = crs.clone();
        tokio::spawn(async move {
            if let Err(err) = cse.count_cross_resource(&crs).await {
                tracing::warn!(subscription = %crs, error = %err, "could not count down exc");
            }
        });
    }

    /// One cross-resource notification sent: `exc` down by one, stored; at 0 the resource
    /// goes with its target subscriptions (TS-0004 7.5.1.2.18).
    async fn count_cross_resource(&self, crs: &Ri) -> Result<(), bastion_proto::RequestError> {
        self.write_guard()?;
        let mut ended = Vec::new();
        let (pending, notices) = {
            let mut tree = self.tree.write();
            let Some(node) = tree.get_mut(crs) else {
                return Ok(());
            };
            let left = node
                .attrs
                .get("exc")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .saturating_sub(1);
            node.attrs.insert("exc".into(), Value::from(left));
            let mut ops = vec![bastion_store::WriteOp::Upsert(crate::types::node_row(node))];
            let mut notices = Notices::default();
            if left == 0 {
                ops.clear();
                let cse_id = self.config.cse_id.clone();
                for ri in std::iter::once(crs.clone()).chain(crate::types::linked(&tree, crs)) {
                    let (more, gone, counted) = self.on_remove(&mut tree, &ri, &cse_id);
                    notices.extend(more);
                    ended.extend(gone);
                    ops.extend(crate::types::remove_node(&mut tree, &ri));
                    ops.extend(counted_rows(&tree, &counted));
                }
            }
            (self.committer.enqueue(ops), notices)
        };
        pending.durable().await?;
        self.dispatch(notices).await;
        for (ri, state) in ended {
            self.subscription_ended(&ri, &state);
        }
        Ok(())
    }
}

/// A subscription that ends with the resource removed, and its state.
pub(crate) type Ended = (Ri, Arc<SubscriptionState>);

/// Where one notification goes.
pub(crate) enum Destination {
    /// Points of access, and whose association reaches them: the CSE-ID of the next hop
    /// when they are another CSE's, the AE-ID when they are a local AE's own.
    Http {
        poa: Vec<String>,
        peer: Option<String>,
        /// The AE on this CSE whose own `poa` these are (verified before unsolicited
        /// traffic, `poa.rs`).
        ae: Option<Ri>,
    },
    /// The polling channel (its resource ID) of an AE that cannot be reached.
    Polling(Ri),
    Unreachable(&'static str),
}

/// Every `<subscription>` in the subtree rooted at `ri`, with its state.
pub(crate) fn ended_subscriptions(tree: &Tree, ri: &Ri) -> Vec<Ended> {
    let mut out = Vec::new();
    let mut stack = vec![ri.clone()];
    while let Some(next) = stack.pop() {
        if let Some(n) = tree.get(&next) {
            // A crossResourceSubscription ends as a subscription does (its `su` is told).
            let state = n
                .subscription()
                .or_else(|| n.cross_resource().map(|c| &c.delivery));
            if let Some(state) = state {
                out.push((n.ri.clone(), state.clone()));
            }
            stack.extend(n.children.iter().cloned());
        }
    }
    out
}

/// What subscription `ri`'s notification schedule makes of a notification now
/// (TS-0001 9.6.8 `pn`, 9.6.9; docs/decisions.md): `Some(None)` inside a window (or
/// without a schedule), `Some(Some(latest))` outside it when `pn` asks to keep it
/// (1 sendLatest, 2 sendAllPending), `None` outside it otherwise (dropped).
fn schedule_hold(
    tree: &Tree,
    ri: &Ri,
    now: bastion_proto::time::Timestamp,
) -> Option<Option<bool>> {
    let Some(sub) = tree.get(ri) else {
        return Some(None);
    };
    if crate::types::notification_window(tree, sub, now) {
        return Some(None);
    }
    sub.attrs
        .get("pn")
        .and_then(Value::as_u64)
        .map(|pn| Some(pn == 1))
}

/// Counts one event in every target's statistics record (`nsi` `noec`) of a subscription
/// that keeps statistics (`nse`).
fn count_event(tree: &mut Tree, ri: &Ri) {
    if let Some(node) = tree.get_mut(ri) {
        if node.subscription().is_some_and(|s| s.stats) {
            crate::subscription::count_statistic(&mut node.attrs, "noec", |_| true);
        }
    }
}

impl Cse {
    /// A NOTIFY of the subscription `sur` to its target `to` was sent (`answered` when a
    /// response came back): counted in that target's `nsi` record (`rqs`, `rsr`) while
    /// the subscription keeps statistics (`nse`). The counts are held in memory and
    /// stored with the subscription's next write (docs/decisions.md).
    pub fn delivery_attempted(&self, sur: &str, to: &str, answered: bool) {
        let Some(ri) = sur
            .strip_prefix(self.config.cse_id.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return;
        };
        let ri = Ri::from(ri);
        let keeps_statistics = |tree: &Tree| {
            tree.get(&ri)
                .and_then(Node::subscription)
                .is_some_and(|s| s.stats)
        };
        if !keeps_statistics(&self.tree.read()) {
            return;
        }
        let mut tree = self.tree.write();
        if let Some(node) = tree.get_mut(&ri) {
            let attrs = &mut node.attrs;
            crate::subscription::count_statistic(attrs, "rqs", |tg| tg == to);
            if answered {
                crate::subscription::count_statistic(attrs, "rsr", |tg| tg == to);
            }
        }
    }
}

/// Counts one notification off a subscription's `exc`; returns what is left.
fn count_down(tree: &mut Tree, ri: &Ri) -> Option<u64> {
    let node = tree.get_mut(ri)?;
    let state = node.subscription_mut()?;
    let left = state.exc?.saturating_sub(1);
    Arc::make_mut(state).exc = Some(left);
    node.attrs.insert("exc".into(), Value::from(left));
    Some(left)
}

pub(crate) use crate::subscription::is_url;

/// A `poa` of a target whose `csz` (TS-0001 9.6.5: the serializations it reads,
/// preferred first) names one Bastion writes other than JSON gets that one as a `ct`
/// query (TS-0004 7.4.8), which the outbound client honours and strips. A `poa` that
/// already has a query keeps its own choice.
fn in_csz_serialization(poa: String, csz: &[String]) -> String {
    if poa.contains('?') {
        return poa;
    }
    let first = csz.iter().find_map(|media| {
        let media = media
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        bastion_proto::wire::media::lookup(&media).map(|(_, ser)| ser)
    });
    match first {
        Some(ser) if ser != bastion_proto::Serialization::Json => {
            format!("{poa}?ct={}", ser.name())
        }
        _ => poa,
    }
}

use bastion_proto::json::string_list;

impl Cse {
    /// A NOTIFY addressed to a resource of this CSE. For an `<AE>` it is checked, then
    /// passed on to the AE (its `poa`, else its polling channel) and the AE's answer
    /// returned. A subscription verification request (`vrq`) is checked as TS-0004
    /// 7.5.1.2 asks: the subscription's creator (`cr`) needs NOTIFY privilege on the AE
    /// (else 4101), and so does the hosting CSE that sends it (else 5205). Other targets
    /// take no notifications (5001).
    pub(crate) async fn notify_hosted(
        &self,
        req: crate::checks::NotifyRequest,
        access: &Enforcer<'_>,
    ) -> Result<bastion_proto::Response, bastion_proto::RequestError> {
        let (ctx, now) = (access.ctx(), access.now());
        use bastion_proto::RequestError;
        if let Some(answer) = self.notify_cross_resource(&req) {
            return answer;
        }
        let target = self.resolve(&req, now).await?;
        let sgn = req.pc.get("m2m:sgn");
        let verification = sgn
            .and_then(|s| s.get("vrq"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let creator = sgn
            .and_then(|s| s.get("cr"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let ae = {
            let tree = self.tree.read();
            let node = tree
                .get(target.governing())
                .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
            if verification {
                let creator = creator.as_deref().ok_or_else(|| {
                    RequestError::bad_request("a verification request names its creator (cr)")
                })?;
                let anonymous = RequestContext::new(None, None);
                let creator_may = Enforcer::new(self, creator, &anonymous, now).permits(
                    &tree,
                    node,
                    AccessOperation::Notify,
                    None,
                    RuleKind::Privileges,
                );
                if !creator_may {
                    return Err(RequestError::SubscriptionCreatorNoPrivilege(
                        "the subscription's creator may not notify this target".into(),
                    ));
                }
                let host_may = access.permits(
                    &tree,
                    node,
                    AccessOperation::Notify,
                    None,
                    RuleKind::Privileges,
                );
                if !host_may {
                    self.audit_deny(&req.fr, ctx, &node.path, AccessOperation::Notify);
                    return Err(RequestError::SubscriptionHostNoPrivilege(
                        "the subscription's host may not notify this target".into(),
                    ));
                }
            }
            (node.ty == ResourceType::Ae).then(|| node.ri.clone())
        };
        if !verification {
            access
                .authorize(&target, AccessOperation::Notify, None)
                .await?;
        }
        let Some(ae) = ae else {
            return Err(RequestError::NotImplemented(
                "only AEs take notifications here".into(),
            ));
        };
        self.pass_to_ae(&ae, &req).await
    }

    /// A NOTIFY to a `<crossResourceSubscription>` here (or to one being created), from
    /// the CSE hosting one of its target subscriptions (TS-0004 7.5.1.2.18); `None` for
    /// any other target. A verification request is confirmed when it names the
    /// resource's originator as the subscription's creator (else 4101); a notification
    /// counts in the window when its `sur` is one of the resource's target subscriptions
    /// and the request comes from the CSE that hosts it (else 4103): the sender's
    /// identity was bound by the pipeline, so no other entity can make it count.
    fn notify_cross_resource(
        &self,
        req: &crate::checks::NotifyRequest,
    ) -> Option<Result<bastion_proto::Response, bastion_proto::RequestError>> {
        use bastion_proto::RequestError;
        let to = req.to.as_str();
        let own = format!("{}/", self.config.cse_id);
        let (crs, creator, state) = {
            let tree = self.tree.read();
            match crate::authz_state::resolve_local(&tree, &self.config, to) {
                Some(node) if node.ty == ResourceType::CrossResourceSubscription => (
                    node.ri.clone(),
                    node.creator.clone().unwrap_or_default(),
                    node.cross_resource().cloned(),
                ),
                Some(_) => return None,
                None => {
                    let ri = to.strip_prefix(own.as_str()).unwrap_or(to);
                    let creator =
                        crate::types::cross_resource_subscription::pending_creator(self, ri)?;
                    (Ri::from(ri), creator, None)
                }
            }
        };
        let sgn = req.pc.get("m2m:sgn");
        if sgn.and_then(|s| s.get("vrq")).and_then(Value::as_bool) == Some(true) {
            let named = sgn
                .and_then(|s| s.get("cr"))
                .and_then(Value::as_str)
                .map(|cr| bastion_policy::normalize_originator(&self.local, cr));
            let creator = bastion_policy::normalize_originator(&self.local, &creator);
            if named.as_ref() != Some(&creator) {
                return Some(Err(RequestError::SubscriptionCreatorNoPrivilege(
                    "the subscription's creator is not this crossResourceSubscription's".into(),
                )));
            }
            return Some(Ok(Response::new(Rsc::Ok, String::new())));
        }
        let Some(state) = state else {
            // Being created: its window has not started.
            return Some(Ok(Response::new(Rsc::Ok, String::new())));
        };
        let sur = sgn.and_then(|s| s.get("sur")).and_then(Value::as_str);
        let from = bastion_policy::normalize_originator(&self.local, &req.fr);
        let hosted_by_sender = |sur: &str| {
            let host = sur
                .strip_prefix('/')
                .and_then(|r| r.split('/').next())
                .map(|c| format!("/{c}"));
            host.is_some_and(|h| bastion_policy::normalize_originator(&self.local, &h) == from)
        };
        match sur {
            Some(sur)
                if state.targets.iter().any(|t| &**t == sur)
                    && sur.starts_with('/')
                    && hosted_by_sender(sur) =>
            {
                self.cross_resource_event(&crs, sur);
                Some(Ok(Response::new(Rsc::Ok, String::new())))
            }
            _ => Some(Err(RequestError::NoPrivilege(
                "not a notification of this crossResourceSubscription's target subscriptions"
                    .into(),
            ))),
        }
    }

    /// Sends a NOTIFY on to a hosted AE and returns its answer.
    async fn pass_to_ae(
        &self,
        ae: &Ri,
        req: &crate::checks::NotifyRequest,
    ) -> Result<bastion_proto::Response, bastion_proto::RequestError> {
        use bastion_proto::RequestError;
        let (destination, to) = {
            let tree = self.tree.read();
            let node = tree
                .get(ae)
                .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
            let to = node
                .attrs
                .get("aei")
                .and_then(Value::as_str)
                .unwrap_or(&node.ri)
                .to_owned();
            (self.destination(&tree, &node.ri), to)
        };
        match destination {
            // A hosted AE: its own points of access.
            Destination::Http { poa, .. } => {
                let outbound = self.outbound.as_ref().ok_or_else(|| {
                    RequestError::TargetNotReachable("this CSE sends no requests".into())
                })?;
                let request = bastion_proto::Request {
                    op: Some(bastion_proto::Operation::Notify),
                    to,
                    fr: Some(req.fr.clone()),
                    rqi: Some(format!("n-{}", fresh_id())),
                    rvi: Some(req.rvi.clone()),
                    pc: Some(req.pc.clone()),
                    ..Default::default()
                };
                let mut resp = outbound
                    .send(None, &poa, request)
                    .await
                    .map_err(|e| RequestError::TargetNotReachable(e.to_string().into()))?;
                resp.fr = None;
                Ok(resp)
            }
            Destination::Polling(pch) => {
                self.relay_through_channel(&pch, &to, &req.fr, Some(req.pc.clone()))
                    .await
            }
            Destination::Unreachable(why) => Err(RequestError::TargetNotReachable(why.into())),
        }
    }

    /// Verification of a new subscription's targets (TS-0004 7.3.3.2, 7.5.1.2; R3 leaves
    /// URL targets optional, Bastion verifies every target that is not the subscriber
    /// itself, so a CSE cannot be made to send unsolicited traffic to a bystander; docs/
    /// decisions.md). Any target that cannot be asked or does not answer 2000 fails the
    /// CREATE with 5204; a target on this CSE is checked here directly.
    ///
    /// Every failure answers the same [`VERIFICATION_FAILED`] text: what went wrong
    /// (refused connection, not a oneM2M server, timeout, the target's answer) would
    /// otherwise make subscription creation a probe of hosts and ports the subscriber
    /// cannot reach itself. The detail goes to the log, with any credentials in the URL
    /// removed.
    pub(crate) async fn verify_targets(
        &self,
        sur: &str,
        creator: &str,
        nu: &[String],
    ) -> Result<(), bastion_proto::RequestError> {
        for target in nu {
            if self.is_subscriber(creator, target) {
                continue;
            }
            self.verify_target(sur, creator, target).await?;
        }
        Ok(())
    }

    /// Whether the notification target `target` is the subscriber `creator` itself, in
    /// whichever form either is written (TS-0004 7.4.8.2.1: no verification request to
    /// the originator): its AE-ID or CSE-ID CSE-relative, SP-relative or absolute, or the
    /// resource ID or path of its `<AE>` on this CSE.
    pub(crate) fn is_subscriber(&self, creator: &str, target: &str) -> bool {
        if is_url(target) {
            return false;
        }
        let normalized = bastion_policy::normalize_originator(&self.local, creator);
        if bastion_policy::normalize_originator(&self.local, target) == normalized {
            return true;
        }
        let tree = self.tree.read();
        crate::authz_state::resolve_local(&tree, &self.config, target)
            .filter(|node| node.ty == ResourceType::Ae)
            .and_then(|node| node.attrs.get("aei").and_then(Value::as_str))
            .is_some_and(|aei| bastion_policy::normalize_originator(&self.local, aei) == normalized)
    }

    /// The creator as a verification request to `target` names it: a CSE-relative ID
    /// means nothing on another CSE, so a target there is given the SP-relative form
    /// (`/cse-id/AE-ID`, TS-0001 7.2); a URL or a local target keeps the ID as stored.
    fn creator_seen_by<'a>(&self, target: &str, creator: &'a str) -> std::borrow::Cow<'a, str> {
        if creator.starts_with('/') || is_url(target) {
            return creator.into();
        }
        let local = {
            let tree = self.tree.read();
            crate::authz_state::resolve_local(&tree, &self.config, target).is_some()
        };
        if local {
            creator.into()
        } else {
            format!("{}/{creator}", self.config.cse_id).into()
        }
    }

    /// Asks one target to confirm `sur` (see [`Cse::verify_targets`]).
    pub(crate) async fn verify_target(
        &self,
        sur: &str,
        creator: &str,
        target: &str,
    ) -> Result<(), bastion_proto::RequestError> {
        let creator = self.creator_seen_by(target, creator);
        let content = json!({ "m2m:sgn": { "vrq": true, "sur": sur, "cr": creator } });
        let detail = match self.ask_target(target, content).await.map(|r| r.rsc) {
            Ok(Rsc::Ok) => return Ok(()),
            Ok(rsc) => format!("the target answered {}", rsc.code()),
            Err(why) => why,
        };
        tracing::info!(
            subscription = sur,
            target = %without_credentials(target),
            reason = %without_credentials(&detail),
            "notification target not verified"
        );
        Err(bastion_proto::RequestError::SubscriptionVerificationFailed(
            VERIFICATION_FAILED.into(),
        ))
    }

    /// Sends one verification request and returns the answer. A target AE on
    /// this CSE is checked here (its ACPs must let the creator notify it, else 4101) and
    /// asked through its `poa`; one reachable only through its polling channel is
    /// verified by that check alone, since it may poll rarely (docs/decisions.md).
    /// The same path carries the CSE's other questions to a target that wait for its
    /// answer (a notification target's removal, `self_removal.rs`), so it returns the
    /// whole response.
    pub(crate) async fn ask_target(
        &self,
        target: &str,
        content: Value,
    ) -> Result<Response, String> {
        let answer = |rsc| Ok(Response::new(rsc, String::new()));
        let creator = content["m2m:sgn"]["cr"].as_str().unwrap_or("").to_owned();
        let local_ae = {
            let tree = self.tree.read();
            match crate::authz_state::resolve_local(&tree, &self.config, target) {
                Some(node) if node.ty == ResourceType::Ae => {
                    let anonymous = RequestContext::new(None, None);
                    let creator_may = Enforcer::new(self, &creator, &anonymous, self.now())
                        .permits(
                            &tree,
                            node,
                            AccessOperation::Notify,
                            None,
                            RuleKind::Privileges,
                        );
                    if !creator_may {
                        return answer(Rsc::SubscriptionCreatorHasNoPrivilege);
                    }
                    let poa = match self.destination(&tree, &node.ri) {
                        Destination::Polling(_) => return answer(Rsc::Ok),
                        Destination::Http { poa, .. } => poa,
                        Destination::Unreachable(_) => Vec::new(),
                    };
                    Some((node.ri.clone(), poa))
                }
                Some(_) => return Err("the target is not an AE".into()),
                None => None,
            }
        };
        let req = bastion_proto::Request {
            op: Some(bastion_proto::Operation::Notify),
            to: target.to_owned(),
            fr: Some(self.config.cse_id.clone()),
            rqi: Some(format!("v-{}", fresh_id())),
            rvi: Some(NOTIFICATION_RELEASE.rvi().to_owned()),
            pc: Some(content),
            ..Default::default()
        };
        if let Some((ae, poa)) = local_ae {
            let checked =
                crate::checks::check(&self.config, req, self.now()).map_err(|e| e.to_string())?;
            let crate::checks::Checked::Notify(checked) = checked else {
                return Err("a verification request is a NOTIFY".into());
            };
            return match self.pass_to_ae(&ae, &checked).await {
                Ok(resp) => {
                    if resp.rsc == Rsc::Ok {
                        // The same question the first notification would ask (`poa.rs`).
                        self.poa_checks.verified(&ae, &poa);
                    }
                    Ok(resp)
                }
                Err(e) => Err(e.to_string()),
            };
        }
        let destination = {
            let tree = self.tree.read();
            self.destination(&tree, target)
        };
        let (poa, peer) = match destination {
            Destination::Http { poa, peer, .. } => (poa, peer),
            Destination::Polling(_) => return Err("the target can only be polled".into()),
            Destination::Unreachable(why) => return Err(why.into()),
        };
        let outbound = self
            .outbound
            .as_ref()
            .ok_or_else(|| "this CSE sends no requests".to_owned())?;
        // Through another CSE: over the association with the next hop (TS-0003 8.2.1).
        let resp = outbound
            .send(peer.as_deref(), &poa, req)
            .await
            .map_err(|e| e.to_string())?;
        Ok(resp)
    }
}

/// The one text of every failed verification of a notification target (5204).
pub(crate) const VERIFICATION_FAILED: &str = "the notification target could not be verified";

/// `text` with the user information of every `scheme://user:pass@host` in it removed, for
/// logs: a target URL may carry credentials, and so may an error quoting it.
pub(crate) fn without_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(i) => {
                out.push_str("***@");
                out.push_str(&authority[i + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn fresh_id() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 12)
}

impl Cse {
    /// `net` 3 for a child just inserted under `parent`: the notices, and the rows of
    /// subscriptions whose `exc` changed, to be written with the child.
    pub(crate) fn child_created(
        &self,
        tree: &mut Tree,
        parent: &Ri,
        ty: ResourceType,
        attrs: &Map<String, Value>,
        originator: &str,
    ) -> (Notices, Vec<bastion_store::WriteOp>) {
        self.child_event(tree, parent, NET_CREATE_CHILD, ty, attrs, originator)
    }

    /// `net` (3 or 4) on `parent` for its child of type `ty` with `attrs`: the notices,
    /// and the rows of subscriptions whose `exc` changed.
    fn child_event(
        &self,
        tree: &mut Tree,
        parent: &Ri,
        net: u8,
        ty: ResourceType,
        attrs: &Map<String, Value>,
        originator: &str,
    ) -> (Notices, Vec<bastion_store::WriteOp>) {
        if !tree.get(parent).is_some_and(|p| has_subscriptions(tree, p)) {
            return (Notices::default(), Vec::new());
        }
        let operation = if net == NET_CREATE_CHILD { 1 } else { 4 };
        let (notices, counted) = self.detect(
            tree,
            Event {
                net,
                subject: parent,
                ty,
                resource: attrs,
                modified: &[],
                operation,
                originator,
            },
        );
        (notices, counted_rows(tree, &counted))
    }

    /// `net` 1 for an updated resource.
    pub(crate) fn updated(
        &self,
        tree: &mut Tree,
        ri: &Ri,
        modified: &[String],
        originator: &str,
    ) -> (Notices, Vec<bastion_store::WriteOp>) {
        let Some(node) = tree.get(ri) else {
            return (Notices::default(), Vec::new());
        };
        if !has_subscriptions(tree, node) {
            return (Notices::default(), Vec::new());
        }
        let (ty, attrs) = (node.ty, node.attrs.clone());
        let (notices, counted) = self.detect(
            tree,
            Event {
                net: NET_UPDATE,
                subject: ri,
                ty,
                resource: &attrs,
                modified,
                operation: 3,
                originator,
            },
        );
        (notices, counted_rows(tree, &counted))
    }
}

/// Rows of subscriptions whose `exc` was counted down.
pub(crate) fn counted_rows(tree: &Tree, counted: &[Ri]) -> Vec<bastion_store::WriteOp> {
    counted
        .iter()
        .filter_map(|ri| tree.get(ri))
        .map(|n| bastion_store::WriteOp::Upsert(crate::types::node_row(n)))
        .collect()
}

impl Cse {
    /// `net` 4 for a `<contentInstance>` removed from the container `parent` by a
    /// DELETE (evictions and expiry of instances notify nothing; docs/decisions.md).
    pub(crate) fn child_deleted(
        &self,
        tree: &mut Tree,
        parent: &Ri,
        attrs: &Map<String, Value>,
        originator: &str,
    ) -> (Notices, Vec<bastion_store::WriteOp>) {
        let ty = crate::types::instance_type(attrs);
        self.child_event(tree, parent, NET_DELETE_CHILD, ty, attrs, originator)
    }
}

/// Notifications the delivery engine refused (its queues full in events or bytes) since the
/// last warning.
static REFUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// A destination that stays full would otherwise log one warning per event.
static REFUSED_WARNING: crate::throttle::Throttle = crate::throttle::Throttle::per_minute();

/// Logs a notification the engine refused: the first at once, then at most one warning a
/// minute with the number refused meanwhile (each one at debug level).
fn report_refused(subscription: &str, why: &dyn std::fmt::Display) {
    use std::sync::atomic::Ordering;
    let refused = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
    if REFUSED_WARNING.ready() {
        REFUSED.store(0, Ordering::Relaxed);
        tracing::warn!(subscription, reason = %why, refused, "notification dropped: delivery queues full (logged at most once a minute)");
    } else {
        tracing::debug!(subscription, reason = %why, "notification dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::{in_csz_serialization, without_credentials};
    use crate::subscription::SubscriptionState;
    use crate::tree::{Node, Tree, LOOKUPS};
    use crate::{Cse, CseConfig};
    use bastion_proto::ResourceType;
    use serde_json::{json, Map, Value};
    use std::sync::Arc;

    #[test]
    fn ts0004_7_4_8_csz_chooses_the_notification_serialization() {
        let csz = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let poa = || "http://h:1/n".to_owned();
        assert_eq!(
            in_csz_serialization(poa(), &csz(&["application/yaml", "application/CBOR"])),
            "http://h:1/n?ct=cbor"
        );
        assert_eq!(
            in_csz_serialization(poa(), &csz(&["application/json", "application/xml"])),
            "http://h:1/n"
        );
        assert_eq!(in_csz_serialization(poa(), &[]), "http://h:1/n");
        assert_eq!(
            in_csz_serialization("http://h:1/n?ct=json".into(), &csz(&["application/xml"])),
            "http://h:1/n?ct=json"
        );
    }

    fn node(ty: ResourceType, ri: &str, parent: &Node, attrs: Value) -> Node {
        let mut attrs: Map<String, Value> = attrs.as_object().cloned().unwrap_or_default();
        attrs.insert("ri".into(), Value::from(ri));
        Node::new(
            ty,
            ri,
            Some(parent.ri.clone()),
            ri.to_owned(),
            format!("{}/{ri}", parent.path),
            1,
            attrs,
            Some("Cae".to_owned()),
            None,
        )
    }

    fn insert(tree: &mut Tree, ty: ResourceType, ri: &str, parent: &str, attrs: Value) {
        let node = node(ty, ri, tree.get(parent).expect("parent"), attrs);
        tree.insert(node);
    }

    /// Notices for one `<container>` created under an AE that has `siblings` other
    /// containers and one subscription to child creation, and the node look-ups that took.
    async fn child_created_under(siblings: usize) -> (usize, u64) {
        let store = bastion_store::MemoryStore::new();
        let cse = Cse::open(CseConfig::default(), Arc::new(store))
            .await
            .expect("cse");
        let mut tree = cse.tree.write();
        insert(&mut tree, ResourceType::Ae, "Cae", "id-in", json!({}));
        for i in 0..siblings / 2 {
            insert(
                &mut tree,
                ResourceType::Container,
                &format!("c{i}"),
                "Cae",
                json!({}),
            );
        }
        let sub_attrs = json!({"nu": ["Cae"], "enc": {"net": [3]}});
        let mut sub = node(
            ResourceType::Subscription,
            "sub",
            tree.get("Cae").expect("ae"),
            sub_attrs,
        );
        let state = SubscriptionState::compile(&sub.attrs, ResourceType::Ae, "Cae", false);
        sub.state =
            crate::state::TypeState::Subscription(Arc::new(state.expect("subscription compiles")));
        tree.insert(sub);
        for i in siblings / 2..siblings {
            insert(
                &mut tree,
                ResourceType::Container,
                &format!("c{i}"),
                "Cae",
                json!({}),
            );
        }
        insert(&mut tree, ResourceType::Container, "new", "Cae", json!({}));
        let attrs = tree.get("new").expect("new").attrs.clone();
        let parent = tree.get("Cae").expect("ae").ri.clone();
        LOOKUPS.with(|n| n.set(0));
        let (notices, _) =
            cse.child_created(&mut tree, &parent, ResourceType::Container, &attrs, "Cae");
        (notices.items.len(), LOOKUPS.with(|n| n.get()))
    }

    /// Issue 13: a child event finds its parent's subscriptions without walking the
    /// parent's other children, so its work is the same with 10 siblings or 5,000.
    #[tokio::test]
    async fn child_event_work_does_not_grow_with_siblings() {
        let (few_notices, few) = child_created_under(10).await;
        let (many_notices, many) = child_created_under(5_000).await;
        assert_eq!(few_notices, 1);
        assert_eq!(many_notices, 1);
        assert_eq!(few, many);
    }

    #[test]
    fn credentials_in_urls_never_reach_the_log() {
        assert_eq!(
            without_credentials("http://user:pw@10.0.0.1:8080/n?x=1"),
            "http://***@10.0.0.1:8080/n?x=1"
        );
        assert_eq!(
            without_credentials("error sending to https://a@h/x: refused (http://h2/)"),
            "error sending to https://***@h/x: refused (http://h2/)"
        );
        assert_eq!(without_credentials("Cae01"), "Cae01");
        assert_eq!(without_credentials("http://h:1"), "http://h:1");
    }
}
