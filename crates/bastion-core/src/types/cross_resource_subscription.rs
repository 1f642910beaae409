//! `<crossResourceSubscription>` (ty 48; TS-0001 9.6.58, TS-0004 7.4.58, 7.5.1.2.18):
//! one notification when every target resource had an event within a time window.
//!
//! `rrat` (resources as targets): CREATE makes one `<subscription>` under each target for
//! the originator and only as far as the originator could make it itself. On this CSE:
//! RETRIEVE privilege on the target (the decision `<subscription>` CREATE takes), a target
//! that holds subscriptions, and criteria (`encs`) valid for it; these subscriptions are
//! written with the resource in one durable write and go when it goes. On another CSE:
//! the originator's own `<subscription>` CREATE, sent through the whole pipeline with its
//! `fr` and binding and forwarded (`subscribe_remote`), so that CSE decides; its `nu`
//! names the resource SP-relatively, so its notifications come back here
//! (`Cse::notify_cross_resource`, which counts only those of the CSE hosting a target
//! subscription). Those are made last; a failure, or a later refusal of the CREATE,
//! deletes them again ([`Creating`]); they are deleted there when the resource ends
//! (best effort, logged).
//!
//! `srat` (subscriptions as targets, TS-0004 7.4.58.2.1 c): existing `<subscription>`s
//! join it: the resource is added to their `nu` and `acrs`, which is an UPDATE of theirs
//! by the originator. On this CSE it needs the originator's UPDATE privilege on `nu` and
//! `acrs` and a subscription that can take one more `nu` entry; the additions are
//! written with the resource (`instantiate`); an UPDATE of `srat` and the resource's
//! removal (`types::remove_node`) take them out again. On another CSE (named by its
//! resource ID, `/cse-id/ri`, which its notifications carry as `sur`): the originator's
//! own RETRIEVE of it and of its subscribed-to resource, and UPDATE of its `nu` (and
//! `acrs` where that CSE has it), forwarded there, so that CSE decides ([`edit_remote`]);
//! joined last, like the remote `rrat` subscriptions, and left again if the request
//! fails or is not written ([`Creating`]); left when an UPDATE taking it out of `srat`
//! is durable and when the resource ends (best effort, logged, as the remote `rrat`
//! cleanup). Its notifications count like those of a remote `rrat` subscription: only
//! from the CSE hosting it. UPDATEs of one resource take turns ([`Turn`]).
//!
//! Any target that fails answers 5221 naming the list, its index and its own status, and
//! nothing is created or changed. Notifications of target subscriptions here never leave
//! the CSE: `notify.rs` hands them to [`CrossResourceState::record`], whose window decides
//! when the cross-resource notification (`{"sur": …}`) goes to the resource's own `nu`.
//!
//! Bounded: at most [`MAX_CRS_TARGETS`] targets in `rrat` and `srat` together (one bit
//! each in the window); the `rrat` ones count against the originator's subscription cap;
//! requests to other CSEs go at most [`MAX_IN_FLIGHT`] at once, each bounded by
//! the outbound timeout.

use super::{merged, new_ri, universal, NewNode, Prepared, ResourceKind};
use crate::access::Enforcer;
use crate::authz_state::{resolve_local, Mode};
use crate::bounded::{join_bounded, MAX_IN_FLIGHT};
use crate::checks::CreateRequest;
use crate::resolve::Target;
use crate::subscription::{
    filled_defaults, statistics_after_write, CrossResourceState, SubscriptionState, Undo,
    MAX_CRS_TARGETS, TWT_SLIDING,
};
use crate::tree::{Node, Ri, Tree, TypeState};
use crate::{Cse, CseConfig, RequestContext};
use async_trait::async_trait;
use bastion_policy::{AccessOperation, Attributes};
use bastion_proto::json::string_list as strings;
use bastion_proto::time::{parse_duration, Timestamp};
use bastion_proto::{Operation, RequestError, ResourceType, Rsc};
use bastion_store::WriteOp;
use serde_json::{Map, Value};
use std::sync::Arc;

pub(super) struct CrossResourceSubscription;

#[async_trait]
impl ResourceKind for CrossResourceSubscription {
    fn check_content(&self, content: &Map<String, Value>) -> Result<(), RequestError> {
        if content.contains_key("tws") {
            window_ms(content)?;
        }
        Ok(())
    }

    async fn prepare(
        &self,
        cse: &Cse,
        req: &CreateRequest,
        ctx: &RequestContext,
        content: &Map<String, Value>,
        _parent: &Ri,
    ) -> Result<Prepared, RequestError> {
        let Targets { rrat, srat } = targets(content)?;
        let criteria = criteria_set(content, rrat.len())?;
        let mut delivery = delivery(content, &req.fr, ctx.authenticated)?;
        let window = window_ms(content)?;
        check_cap(cse, &cse.tree.read(), &req.fr, local_count(cse, &rrat))?;
        // Each target as the originator's own `<subscription>` CREATE would find it; one
        // on another CSE is that CSE's to decide (below).
        let now = cse.now();
        let access = Enforcer::new(cse, &req.fr, ctx, now);
        let remote: Vec<Option<String>> = rrat.iter().map(|t| remote_cse(cse, t)).collect();
        for (i, target) in rrat.iter().enumerate() {
            if let Some(id) = &remote[i] {
                if id.is_empty() {
                    let other = RequestError::NotImplemented(
                        "targets of other service providers are not supported".into(),
                    );
                    return Err(failure(RRAT, i, target, other));
                }
                continue;
            }
            let (ri, ty) = local_target(cse, target).map_err(|e| failure(RRAT, i, target, e))?;
            access
                .authorize(&Target::Node(ri), AccessOperation::Retrieve, None)
                .await
                .map_err(|e| failure(RRAT, i, target, e))?;
            let attrs = subscription_attrs("-", criteria_for(&criteria, i), content);
            SubscriptionState::compile(&attrs, ty, &req.fr, ctx.authenticated)
                .map_err(|e| failure(RRAT, i, target, e))?;
        }
        // Each `srat` subscription as the originator's own UPDATE of its `nu` would: one
        // here is checked now, one on another CSE is joined there, last (below).
        let mut joined: Vec<Ri> = Vec::with_capacity(srat.len());
        let mut checked: Vec<Value> = Vec::with_capacity(srat.len());
        let mut elsewhere: Vec<(usize, String)> = Vec::new();
        for (i, entry) in srat.iter().enumerate() {
            let keys: Vec<String> = elsewhere.iter().map(|(_, k)| k.clone()).collect();
            if let Some(key) =
                remote_entry(cse, entry, &keys).map_err(|e| failure(SRAT, i, entry, e))?
            {
                elsewhere.push((i, key));
                checked.push(Value::from(""));
                continue;
            }
            let ri = join_check(cse, &access, entry, &joined)
                .await
                .map_err(|e| failure(SRAT, i, entry, e))?;
            checked.push(Value::from(&*ri));
            joined.push(ri);
        }
        // The IDs first: the verification request names the resource.
        let (seq, ri, subs) = {
            let mut tree = cse.tree.write();
            let seq = tree.next_seq();
            let subs: Vec<Ri> = remote
                .iter()
                .map(|r| match r {
                    Some(_) => Ri::from(""),
                    None => Ri::from(new_ri(ResourceType::Subscription, tree.next_seq())),
                })
                .collect();
            (
                seq,
                new_ri(ResourceType::CrossResourceSubscription, seq),
                subs,
            )
        };
        let sur = format!("{}/{}", cse.config.cse_id, ri);
        cse.verify_targets(&sur, &req.fr, &delivery.targets())
            .await?;
        // The target subscriptions on other CSEs, last: what fails after them deletes them.
        let mut made = subscribe_remote(cse, req, ctx, &ri, &remote, &criteria, content).await?;
        join_remote(cse, &mut made, &srat, &elsewhere).await?;
        let remote_joined: Vec<String> = elsewhere.into_iter().map(|(_, k)| k).collect();
        let mut subs = subs;
        for (i, id) in &made.ids {
            subs[*i] = Ri::from(id.as_str());
        }
        Arc::make_mut(&mut delivery).remote_companions =
            made.ids.iter().map(|(_, id)| id.clone()).collect();
        Arc::make_mut(&mut delivery).remote_joined = remote_joined.clone();
        let mut defaults = Map::new();
        if !subs.is_empty() {
            let rrats = subs.iter().map(|s| Value::from(&**s)).collect();
            defaults.insert("rrats".into(), Value::Array(rrats));
        }
        if !checked.is_empty() {
            // What `companions` checks again under the lock, and takes out.
            defaults.insert(SRAT_CHECKED.into(), Value::Array(checked));
        }
        let sliding = content.get("twt").and_then(Value::as_u64) == Some(TWT_SLIDING);
        let mut all = subs;
        all.extend(joined.iter().cloned());
        all.extend(remote_joined.iter().map(|k| Ri::from(k.as_str())));
        let mut state = CrossResourceState::new(all, window, sliding, cse.now_ms(), delivery);
        state.srat = joined;
        state.creating = std::sync::Mutex::new(Some(Box::new(made)));
        Ok(Prepared {
            id: Some((seq, ri)),
            defaults,
            state: Some(TypeState::CrossResource(Arc::new(state))),
        })
    }

    fn check_locked(
        &self,
        cse: &Cse,
        tree: &Tree,
        req: &CreateRequest,
        _parent: &Ri,
    ) -> Result<(), RequestError> {
        let content = req.pc.get("m2m:crs").and_then(Value::as_object);
        let rrat = strings(content.and_then(|c| c.get("rrat")));
        check_cap(cse, tree, &req.fr, local_count(cse, &rrat))
    }

    /// The target subscriptions, under the write lock, with the IDs `prepare` took.
    fn companions(
        &self,
        tree: &mut Tree,
        new: &NewNode,
        attrs: &mut Map<String, Value>,
    ) -> Result<Vec<Node>, RequestError> {
        let Targets {
            rrat: targets,
            srat,
        } = targets(attrs)?;
        let criteria = criteria_set(attrs, targets.len())?;
        // The `srat` subscriptions here `prepare` authorized: still the ones the entries
        // name, and still able to take one more `nu` entry (those on other CSEs, empty
        // here, were joined there).
        let checked = strings(attrs.remove(SRAT_CHECKED).as_ref());
        if checked.len() != srat.len() {
            return Err(RequestError::Internal("srat not prepared".into()));
        }
        for (i, (entry, ri)) in srat.iter().zip(&checked).enumerate() {
            if ri.is_empty() {
                continue;
            }
            let same = resolve_local(tree, new.config, entry).is_some_and(|n| *n.ri == **ri);
            if !same {
                let gone = RequestError::not_found("no such subscription");
                return Err(failure(SRAT, i, entry, gone));
            }
            joinable(tree, &Ri::from(ri.as_str())).map_err(|e| failure(SRAT, i, entry, e))?;
        }
        let subs = strings(attrs.get("rrats"));
        let own_et = attrs
            .get("et")
            .and_then(Value::as_str)
            .and_then(Timestamp::parse)
            .unwrap_or(bastion_proto::time::MAX);
        let mut nodes = Vec::with_capacity(targets.len());
        for (i, (target, sub)) in targets.iter().zip(&subs).enumerate() {
            // One on another CSE was made there (`prepare`).
            if sub.starts_with('/') {
                continue;
            }
            let parent = resolve_local(tree, new.config, target).ok_or_else(|| {
                failure(RRAT, i, target, RequestError::not_found("no such target"))
            })?;
            let (pi, path, ty) = (parent.ri.clone(), parent.path.clone(), parent.ty);
            // The subscription lives as long as the cross-resource one (TS-0004
            // 7.4.58.2.1), within its parent's lifetime.
            let et = own_et.min(parent.et.unwrap_or(bastion_proto::time::MAX));
            let mut sub_attrs = universal(ResourceType::Subscription, sub, sub, &pi, new.now, et);
            sub_attrs.extend(subscription_attrs(
                new.ri,
                criteria_for(&criteria, i),
                attrs,
            ));
            let state = SubscriptionState::compile(&sub_attrs, ty, new.creator, new.authenticated)
                .map_err(|e| failure(RRAT, i, target, e))?;
            sub_attrs.extend(filled_defaults(&sub_attrs, &state));
            // Its ID was taken in `prepare`; its place in creation order is now.
            let seq = tree.next_seq();
            sub_attrs.insert("cr".into(), Value::from(new.creator));
            let mut node = Node::new(
                ResourceType::Subscription,
                sub,
                Some(pi),
                sub.to_string(),
                format!("{path}/{sub}"),
                seq,
                sub_attrs,
                Some(new.creator.to_owned()),
                Some(et),
            );
            node.state = TypeState::Subscription(Arc::new(state));
            nodes.push(node);
        }
        Ok(nodes)
    }

    /// The target subscriptions it made, while they still name it (`acrs`).
    fn linked(&self, tree: &Tree, node: &Node) -> Vec<Ri> {
        strings(node.attrs.get("rrats"))
            .iter()
            .filter_map(|s| tree.get(s.as_str()))
            .filter(|s| {
                s.ty == ResourceType::Subscription
                    && strings(s.attrs.get("acrs")).iter().any(|a| **a == *node.ri)
            })
            .map(|s| s.ri.clone())
            .collect()
    }

    /// A new `nu` entry is verified as on CREATE; a new `tws` or `twt` restarts the
    /// window (TS-0004 7.4.58.2.3), as does every UPDATE. A subscription `srat` adds is
    /// checked (here) or joined (on another CSE, last) as on CREATE, for this UPDATE's
    /// originator; one it takes out is released when the UPDATE is written
    /// ([`ResourceKind::instantiate`]; on another CSE, left then, as that originator).
    async fn prepare_update(
        &self,
        cse: &Cse,
        access: &Enforcer<'_>,
        ri: &Ri,
        content: &Map<String, Value>,
    ) -> Result<Option<TypeState>, RequestError> {
        // One UPDATE of it at a time, from here until it is written (`written`): its new
        // state is built from the attributes read now and replaces the old one whole.
        let turn = Turn::take(cse, ri).await?;
        let (attrs, old, creator) = {
            let tree = cse.tree.read();
            let node = tree
                .get(ri)
                .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
            let old = node
                .cross_resource()
                .cloned()
                .ok_or_else(|| RequestError::Internal("state missing".into()))?;
            let creator = node.creator.clone().unwrap_or_default();
            // An `et` the UPDATE is refused for anyway: before any request to another CSE.
            super::new_expiration(&tree, node, content, access.now(), &cse.config)?;
            (merged(&node.attrs, content), old, creator)
        };
        let Targets { srat, .. } = targets(&attrs)?;
        let rrats = rrats_of(&attrs);
        let was = &old.delivery.remote_joined;
        let mut joined: Vec<Ri> = Vec::with_capacity(srat.len());
        let mut keys: Vec<String> = Vec::new();
        // Its own target subscriptions on other CSEs are targets already, as those here
        // are for `join_check`.
        let mut taken: Vec<String> = rrats
            .iter()
            .filter(|r| r.starts_with('/'))
            .map(|r| r.to_string())
            .collect();
        let mut elsewhere: Vec<(usize, String)> = Vec::new();
        for (i, entry) in srat.iter().enumerate() {
            if let Some(key) =
                remote_entry(cse, entry, &taken).map_err(|e| failure(SRAT, i, entry, e))?
            {
                // Already joined: a change of it is the subscription owner's.
                if !was.contains(&key) {
                    elsewhere.push((i, key.clone()));
                }
                taken.push(key.clone());
                keys.push(key);
                continue;
            }
            let kept = {
                let tree = cse.tree.read();
                resolve_local(&tree, &cse.config, entry)
                    .map(|n| n.ri.clone())
                    .filter(|r| old.srat.contains(r))
            };
            let ri = match kept {
                // Already joined: a change of it is the subscription owner's.
                Some(ri) if !joined.contains(&ri) => ri,
                Some(_) => {
                    let twice = RequestError::bad_request("srat names a subscription twice");
                    return Err(failure(SRAT, i, entry, twice));
                }
                None => {
                    let mut taken = joined.clone();
                    taken.extend(rrats.iter().cloned());
                    join_check(cse, access, entry, &taken)
                        .await
                        .map_err(|e| failure(SRAT, i, entry, e))?
                }
            };
            joined.push(ri);
        }
        let authenticated = old.delivery.authenticated;
        let delivery = delivery(&attrs, &creator, authenticated)?;
        super::subscription::verify_added_targets(cse, ri, &old.delivery, &delivery).await?;
        let mut state = state_of(
            &cse.config,
            &attrs,
            joined,
            &creator,
            authenticated,
            cse.now_ms(),
        )?;
        state.released = old
            .srat
            .iter()
            .filter(|s| !state.srat.contains(s))
            .cloned()
            .collect();
        // Those on other CSEs last: an UPDATE not written leaves them again.
        let mut doing = Creating::new(cse, ri, access.originator(), access.ctx(), false);
        doing.turn = Some(turn);
        doing.leaving = was.iter().filter(|k| !keys.contains(k)).cloned().collect();
        join_remote(cse, &mut doing, &srat, &elsewhere).await?;
        state.creating = std::sync::Mutex::new(Some(Box::new(doing)));
        Ok(Some(TypeState::CrossResource(Arc::new(state))))
    }

    /// The `srat` subscriptions join it (their `nu` and `acrs` name it) in the write that
    /// creates or updates it; those an UPDATE took out of `srat` leave it. Each is the
    /// UPDATE of that subscription `prepare`/`prepare_update` authorized; one that is
    /// gone or changed since is left as it is (logged).
    fn instantiate(
        &self,
        _cse: &Cse,
        tree: &mut Tree,
        ri: &Ri,
        changed: Option<&Map<String, Value>>,
        _originator: &str,
        _now: Timestamp,
    ) -> Result<super::Instantiated, RequestError> {
        let Some(state) = tree.get(ri).and_then(Node::cross_resource).cloned() else {
            return Ok(super::Instantiated::default());
        };
        // Written with it: the target subscriptions on other CSEs stay. An UPDATE's are
        // settled once it is durable (`written`): the `srat` subscriptions it takes out
        // leave only then.
        if changed.is_none() {
            if let Some(creating) = state
                .creating
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                creating.keep();
            }
        }
        let mut ops = Vec::new();
        for sub in &state.srat {
            ops.extend(join(tree, sub, ri));
        }
        for sub in &state.released {
            ops.extend(leave(tree, sub, ri));
        }
        Ok(super::Instantiated {
            ops,
            ..Default::default()
        })
    }

    /// The UPDATE is settled: durable, its joins on other CSEs stay and the `srat`
    /// subscriptions it took out leave; not, its joins are undone and nothing leaves.
    /// Either way its turn ends (after those requests).
    fn written(&self, cse: &Cse, ri: &Ri, durable: bool) {
        let state = cse
            .tree
            .read()
            .get(ri)
            .and_then(Node::cross_resource)
            .cloned();
        let Some(state) = state else {
            return;
        };
        let creating = state
            .creating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let (Some(creating), true) = (creating, durable) {
            creating.keep();
        }
    }

    /// Derived once every resource is loaded: the `srat` subscriptions may be newer.
    fn reload_last(&self) -> bool {
        true
    }

    fn reload(
        &self,
        cx: &super::Derive,
        node: &mut Node,
        _row_body: &str,
    ) -> Result<TypeState, String> {
        let creator = node.creator.clone().unwrap_or_default();
        let now_ms = cx.now.0.saturating_mul(1000);
        // The `srat` subscriptions that still name it.
        let srat = strings(node.attrs.get("srat"))
            .iter()
            .filter_map(|entry| resolve_local(cx.tree, cx.config, entry))
            .filter(|s| s.ty == ResourceType::Subscription && names(s, &node.ri))
            .map(|s| s.ri.clone())
            .collect();
        match state_of(cx.config, &node.attrs, srat, &creator, false, now_ms) {
            Ok(state) => Ok(TypeState::CrossResource(Arc::new(state))),
            Err(e) => {
                tracing::error!(ri = %node.ri, reason = %e, "stored crossResourceSubscription rejected; it notifies nothing");
                Ok(TypeState::Plain)
            }
        }
    }

    fn derive(
        &self,
        _cx: &super::Derive,
        _ty: ResourceType,
        _attrs: &mut Map<String, Value>,
        _mode: Mode,
    ) -> Result<TypeState, RequestError> {
        // CREATE and UPDATE bring their state from `prepare`/`prepare_update`.
        Ok(TypeState::Plain)
    }
}

/// The state of a stored or updated resource from its attributes and its joined `srat`
/// subscriptions here; its `srat` entries on other CSEs were joined when written.
fn state_of(
    config: &CseConfig,
    attrs: &Map<String, Value>,
    srat: Vec<Ri>,
    creator: &str,
    authenticated: bool,
    now_ms: i64,
) -> Result<CrossResourceState, RequestError> {
    let mut delivery = delivery(attrs, creator, authenticated)?;
    let mut subs = rrats_of(attrs);
    let remote_joined: Vec<String> = strings(attrs.get("srat"))
        .iter()
        .filter_map(|entry| remote_key(config, entry))
        .collect();
    Arc::make_mut(&mut delivery).remote_companions = subs
        .iter()
        .filter(|s| s.starts_with('/'))
        .map(|s| s.to_string())
        .collect();
    Arc::make_mut(&mut delivery).remote_joined = remote_joined.clone();
    subs.extend(srat.iter().cloned());
    subs.extend(remote_joined.iter().map(|k| Ri::from(k.as_str())));
    subs.truncate(MAX_CRS_TARGETS);
    let sliding = attrs.get("twt").and_then(Value::as_u64) == Some(TWT_SLIDING);
    let mut state = CrossResourceState::new(subs, window_ms(attrs)?, sliding, now_ms, delivery);
    state.srat = srat;
    Ok(state)
}

/// The subscriptions it made (`rrats`).
fn rrats_of(attrs: &Map<String, Value>) -> Vec<Ri> {
    strings(attrs.get("rrats"))
        .into_iter()
        .map(|s| Ri::from(s.as_str()))
        .collect()
}

/// How the cross-resource notification is delivered: `nu`, `exc`, `su` compiled as a
/// subscription's (the same checks of targets), with no criteria of its own.
fn delivery(
    attrs: &Map<String, Value>,
    creator: &str,
    authenticated: bool,
) -> Result<Arc<SubscriptionState>, RequestError> {
    let own: Map<String, Value> = ["nu", "exc", "su"]
        .into_iter()
        .filter_map(|k| Some((k.to_owned(), attrs.get(k)?.clone())))
        .collect();
    let state = SubscriptionState::compile(
        &own,
        ResourceType::CrossResourceSubscription,
        creator,
        authenticated,
    )?;
    Ok(Arc::new(state))
}

/// The targets a resource names.
struct Targets {
    /// `regularResourcesAsTarget`: resources to subscribe to.
    rrat: Vec<String>,
    /// `subscriptionResourcesAsTarget`: existing subscriptions to join.
    srat: Vec<String>,
}

/// `rrat` and `srat`: at least one target, at most [`MAX_CRS_TARGETS`] in both, none
/// named twice in either; else 4000 (TS-0004 7.4.58.2.1).
fn targets(content: &Map<String, Value>) -> Result<Targets, RequestError> {
    let rrat = strings(content.get("rrat"));
    let srat = strings(content.get("srat"));
    if rrat.is_empty() && srat.is_empty() {
        return Err(RequestError::bad_request(
            "regularResourcesAsTarget (rrat) or subscriptionResourcesAsTarget (srat) must name a target",
        ));
    }
    if rrat.len().saturating_add(srat.len()) > MAX_CRS_TARGETS {
        return Err(RequestError::bad_request(format!(
            "rrat and srat name more than {MAX_CRS_TARGETS} targets"
        )));
    }
    for (name, list) in [(RRAT, &rrat), (SRAT, &srat)] {
        if list.iter().enumerate().any(|(i, t)| list[..i].contains(t)) {
            return Err(RequestError::bad_request(format!(
                "{name} names a target twice"
            )));
        }
    }
    Ok(Targets { rrat, srat })
}

/// `encs` (`m2m:eventNotificationCriteriaSet`, `{"enc": [...]}`): required with `rrat`,
/// one criteria for every target or one per target, in order (TS-0004 7.4.58.2.1);
/// without `rrat` it would apply to nothing, and is refused.
fn criteria_set(content: &Map<String, Value>, targets: usize) -> Result<Vec<Value>, RequestError> {
    if targets == 0 {
        if content.contains_key("encs") {
            return Err(RequestError::bad_request(
                "eventNotificationCriteriaSet (encs) applies to rrat targets only",
            ));
        }
        return Ok(Vec::new());
    }
    let set = content
        .get("encs")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            RequestError::bad_request("eventNotificationCriteriaSet (encs) is required with rrat")
        })?;
    if let Some(k) = set.keys().find(|k| *k != "enc") {
        return Err(RequestError::bad_request(format!(
            "unknown member {k} in encs"
        )));
    }
    let list = match set.get("enc") {
        Some(Value::Array(list)) => list.clone(),
        // One element of an XML list reads as one object.
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    if list.len() != 1 && list.len() != targets {
        return Err(RequestError::bad_request(
            "encs must hold one criteria, or one per rrat target",
        ));
    }
    Ok(list)
}

fn criteria_for(set: &[Value], i: usize) -> &Value {
    set.get(i).unwrap_or(&set[0])
}

/// The attributes of the `<subscription>` made for one target (TS-0004 7.4.58.2.1 c ii):
/// its criteria, the cross-resource subscription as `nu` and `acrs`, and its `nec`.
fn subscription_attrs(
    crs: &str,
    enc: &Value,
    crs_attrs: &Map<String, Value>,
) -> Map<String, Value> {
    let mut attrs = Map::new();
    attrs.insert("enc".into(), enc.clone());
    attrs.insert("nu".into(), Value::Array(vec![Value::from(crs)]));
    attrs.insert("acrs".into(), Value::Array(vec![Value::from(crs)]));
    if let Some(nec) = crs_attrs.get("nec") {
        attrs.insert("nec".into(), nec.clone());
    }
    attrs
}

/// `tws`: a non-zero `xs:duration`, in milliseconds.
fn window_ms(content: &Map<String, Value>) -> Result<i64, RequestError> {
    content
        .get("tws")
        .and_then(Value::as_str)
        .and_then(parse_duration)
        .filter(|d| !d.is_zero())
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .ok_or_else(|| RequestError::bad_request("timeWindowSize (tws) must be a duration"))
}

/// A target on this CSE that can hold a `<subscription>`: its resource ID and type.
fn local_target(cse: &Cse, target: &str) -> Result<(Ri, ResourceType), RequestError> {
    let tree = cse.tree.read();
    let node = local_node(cse, &tree, target)?;
    if !super::kind(node.ty).allows_child(node.ty, ResourceType::Subscription) {
        return Err(RequestError::TargetNotSubscribable(
            "this resource cannot be subscribed to".into(),
        ));
    }
    Ok((node.ri.clone(), node.ty))
}

/// The resource `target` names on this CSE: 4004 when there is none, 5001 when it is
/// another CSE's.
fn local_node<'t>(cse: &Cse, tree: &'t Tree, target: &str) -> Result<&'t Node, RequestError> {
    resolve_local(tree, &cse.config, target).ok_or_else(|| {
        // An SP-relative or absolute ID not under this CSE's own ID is another CSE's.
        let own = format!("{}/", cse.config.cse_id);
        if target.starts_with('/') && !target.starts_with(&own) {
            RequestError::NotImplemented("targets on other CSEs are not supported".into())
        } else {
            RequestError::not_found("resource does not exist")
        }
    })
}

/// 5221 for entry `i` of `list` (`rrat` or `srat`), with what its own subscription
/// CREATE or UPDATE answered.
fn failure(list: &str, i: usize, target: &str, cause: RequestError) -> RequestError {
    let shown: String = target.chars().take(60).collect();
    RequestError::CrossResourceOperationFailure(
        format!(
            "{list} target {i} ({shown}): {} {cause}",
            cause.rsc().code()
        )
        .into(),
    )
}

const RRAT: &str = "rrat";
const SRAT: &str = "srat";

/// Where `prepare` hands `companions` the `srat` subscriptions it authorized (an internal
/// member: never stored, never shown).
const SRAT_CHECKED: &str = "@srat";

/// A `srat` entry as its UPDATE by the originator would find it (TS-0004 7.4.58.2.1 c):
/// a `<subscription>` on this CSE, not one of `taken`, that the originator may UPDATE
/// (`nu` and `acrs`, the attributes that change), whose subscribed-to resource it may
/// RETRIEVE (as its own subscription there would need: the events it would learn of
/// are that resource's), and that can take one more `nu` entry. Its resource ID.
async fn join_check(
    cse: &Cse,
    access: &Enforcer<'_>,
    entry: &str,
    taken: &[Ri],
) -> Result<Ri, RequestError> {
    let (ri, subscribed) = {
        let tree = cse.tree.read();
        let node = local_node(cse, &tree, entry)?;
        if node.ty != ResourceType::Subscription {
            return Err(RequestError::bad_request("srat names subscriptions only"));
        }
        (node.ri.clone(), node.pi.clone())
    };
    if taken.contains(&ri) {
        return Err(RequestError::bad_request(
            "the subscription is already a target",
        ));
    }
    access
        .authorize_attributes(
            &Target::Node(ri.clone()),
            AccessOperation::Update,
            None,
            Attributes::Named(&["nu", "acrs"]),
        )
        .await?;
    let subscribed =
        subscribed.ok_or_else(|| RequestError::not_found("no subscribed-to resource"))?;
    access
        .authorize(&Target::Node(subscribed), AccessOperation::Retrieve, None)
        .await?;
    joinable(&cse.tree.read(), &ri)?;
    Ok(ri)
}

/// Whether subscription `ri` still takes one more `nu` entry (its own rules: at most 16,
/// one alone for a blocking update).
fn joinable(tree: &Tree, ri: &Ri) -> Result<(), RequestError> {
    let (node, state, parent_ty) = super::subscription::subscription_parts(tree, ri)?;
    let mut attrs = node.attrs.clone();
    let mut nu = strings(attrs.get("nu"));
    nu.push("-".into());
    attrs.insert("nu".into(), Value::from(nu));
    SubscriptionState::compile(&attrs, parent_ty, &state.creator, state.authenticated).map(|_| ())
}

/// Whether subscription `sub` names `crs` in `acrs`.
fn names(sub: &Node, crs: &str) -> bool {
    strings(sub.attrs.get("acrs")).iter().any(|a| a == crs)
}

/// Subscription `sub` joins `crs`: `crs` added to its `nu` and `acrs`. The store write,
/// or nothing when it is gone, cannot take it, or has joined already.
fn join(tree: &mut Tree, sub: &Ri, crs: &Ri) -> Option<WriteOp> {
    if tree.get(sub).is_some_and(|n| names(n, crs)) {
        return None;
    }
    if let Err(e) = joinable(tree, sub) {
        tracing::warn!(subscription = %sub, crs = %crs, reason = %e, "srat subscription changed since it was checked; not joined");
        return None;
    }
    let node = tree.get_mut(sub)?;
    edit_targets(node, |list| list.push(crs.to_string()));
    Some(WriteOp::Upsert(super::node_row(node)))
}

/// Subscription `sub` leaves `crs` (an UPDATE took it out of `srat`, or `crs` is
/// removed): `crs` out of its `nu` and `acrs`. The store write, or nothing when it
/// does not name `crs`.
pub(super) fn leave(tree: &mut Tree, sub: &Ri, crs: &Ri) -> Option<WriteOp> {
    let node = tree.get_mut(sub)?;
    if node.ty != ResourceType::Subscription || !names(node, crs) {
        return None;
    }
    edit_targets(node, |list| list.retain(|e| e != &**crs));
    Some(WriteOp::Upsert(super::node_row(node)))
}

/// Applies `edit` to a subscription's `nu` and `acrs`, and its compiled `nu` and `nsi`
/// follow. A `nu` left empty keeps its entries: it never held only a cross-resource
/// subscription (verification refuses one).
fn edit_targets(node: &mut Node, edit: impl Fn(&mut Vec<String>)) {
    let mut nu = strings(node.attrs.get("nu"));
    edit(&mut nu);
    if !nu.is_empty() {
        node.attrs.insert("nu".into(), Value::from(nu.clone()));
        if let Some(state) = node.subscription() {
            let mut state = (**state).clone();
            state.nu = nu;
            node.state = TypeState::Subscription(Arc::new(state));
        }
        statistics_after_write(&mut node.attrs, false);
    }
    let mut acrs = strings(node.attrs.get("acrs"));
    edit(&mut acrs);
    if acrs.is_empty() {
        node.attrs.remove("acrs");
    } else {
        node.attrs.insert("acrs".into(), Value::from(acrs));
    }
}

/// The CSE-ID of the CSE hosting `target` when that is not this one (TS-0004 7.3.2.8);
/// empty for a CSE of another service provider, which no route here reaches.
fn remote_cse(cse: &Cse, target: &str) -> Option<String> {
    cse.other_host(target).map(Option::unwrap_or_default)
}

/// What a CREATE or UPDATE did on other CSEs while it is not yet written: the target
/// subscriptions it made (by `rrat` index) and the `srat` subscriptions it joined.
/// Dropped without [`Creating::keep`], those are deleted and left there again; kept, the
/// `srat` subscriptions an UPDATE took out are left. Both as the request's originator,
/// with its binding. For a CREATE, also what holds the resource's ID among [`Cse`]'s
/// pending ones, so that those CSEs' verification requests are answered before it
/// exists.
struct Creating {
    cse: std::sync::Weak<Cse>,
    crs: String,
    creator: String,
    binding: RequestContext,
    ids: Vec<(usize, String)>,
    /// `srat` subscriptions on other CSEs this request joined (SP-relative IDs).
    joined: Vec<String>,
    /// `srat` subscriptions on other CSEs this UPDATE takes out.
    leaving: Vec<String>,
    pending: bool,
    kept: bool,
    /// An UPDATE's turn on the resource, held until what it does on other CSEs is done.
    turn: Option<Turn>,
}

impl std::fmt::Debug for Creating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creating")
            .field("crs", &self.crs)
            .field("ids", &self.ids)
            .field("joined", &self.joined)
            .field("leaving", &self.leaving)
            .finish()
    }
}

impl Creating {
    /// For a request of `creator` (with `ctx`) on `crs`; `pending` for its CREATE.
    fn new(cse: &Cse, crs: &str, creator: &str, ctx: &RequestContext, pending: bool) -> Creating {
        if pending {
            cse.crs_pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(crs.to_owned(), creator.to_owned());
        }
        Creating {
            cse: cse.me.clone(),
            crs: crs.to_owned(),
            creator: creator.to_owned(),
            binding: ctx.as_received(),
            ids: Vec::new(),
            joined: Vec::new(),
            leaving: Vec::new(),
            pending,
            kept: false,
            turn: None,
        }
    }
}

impl Undo for Creating {
    /// The request was written: the target subscriptions and joins stay.
    fn keep(mut self: Box<Self>) {
        self.kept = true;
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        let Some(cse) = self.cse.upgrade() else {
            return;
        };
        if self.pending {
            cse.crs_pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.crs);
        }
        let turn = self.turn.take();
        let (ids, leave): (Vec<String>, Vec<String>) = if self.kept {
            (Vec::new(), std::mem::take(&mut self.leaving))
        } else {
            let ids = self.ids.drain(..).map(|(_, id)| id).collect();
            (ids, std::mem::take(&mut self.joined))
        };
        if ids.is_empty() && leave.is_empty() {
            return;
        }
        let creator = std::mem::take(&mut self.creator);
        let crs = self.crs.clone();
        let binding = self.binding.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                delete_remote(&cse, &crs, &creator, &binding, &ids).await;
                leave_remote(&cse, &crs, &creator, &binding, &leave).await;
                drop(turn);
            });
        }
    }
}

/// The most resources whose UPDATEs take turns at once (each one's entry lives while an
/// UPDATE of it holds or waits for its turn).
const MAX_UPDATING: usize = 1024;

/// An UPDATE's turn on crossResourceSubscription `crs`: two UPDATEs of one resource that
/// overlapped would each build the new state from the same attributes and the later
/// would drop the earlier's joins and leaves. Its entry in [`Cse`]'s map goes with the
/// last UPDATE holding or waiting for it.
struct Turn {
    cse: std::sync::Weak<Cse>,
    crs: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Turn {
    /// Waits for the turn on `crs`; 5207 when [`MAX_UPDATING`] resources are updated at
    /// once already.
    async fn take(cse: &Cse, crs: &str) -> Result<Turn, RequestError> {
        let lock = {
            let mut turns = cse.crs_updates.lock().unwrap_or_else(|e| e.into_inner());
            if !turns.contains_key(crs) && turns.len() >= MAX_UPDATING {
                // Only the map's: none holds or waits for it (a wait dropped early).
                turns.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            if !turns.contains_key(crs) && turns.len() >= MAX_UPDATING {
                return Err(RequestError::NotAcceptable(
                    "too many crossResourceSubscription UPDATEs at once".into(),
                ));
            }
            turns.entry(crs.to_owned()).or_default().clone()
        };
        // Made before the wait: a request dropped while waiting removes the entry too.
        let mut turn = Turn {
            cse: cse.me.clone(),
            crs: crs.to_owned(),
            lock: lock.clone(),
            guard: None,
        };
        turn.guard = Some(lock.lock_owned().await);
        Ok(turn)
    }
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn").field("crs", &self.crs).finish()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.guard.take());
        let Some(cse) = self.cse.upgrade() else {
            return;
        };
        let mut turns = cse.crs_updates.lock().unwrap_or_else(|e| e.into_inner());
        // The map's and this one's: no other UPDATE holds or waits for it.
        if Arc::strong_count(&self.lock) == 2 {
            turns.remove(&self.crs);
        }
    }
}

/// The originator of crossResourceSubscription `crs` while it is being created, if it
/// is.
pub(crate) fn pending_creator(cse: &Cse, crs: &str) -> Option<String> {
    cse.crs_pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(crs)
        .cloned()
}

/// Creates the target subscriptions of the `rrat` entries on other CSEs (`remote`: the
/// hosting CSE-ID of each entry, `None` for a local one), each a `<subscription>` CREATE
/// the originator sends itself: through the whole pipeline with the originator's `fr`
/// and binding, forwarded to the hosting CSE, which decides (TS-0004 7.4.58.2.1 c). Its
/// `nu` and `acrs` name the resource SP-relatively, so the notifications come back here.
/// At most [`MAX_IN_FLIGHT`] at once; each bounded by the outbound timeout. One
/// that fails deletes those made and answers 5221 naming it.
async fn subscribe_remote(
    cse: &Cse,
    req: &CreateRequest,
    ctx: &RequestContext,
    crs: &str,
    remote: &[Option<String>],
    criteria: &[Value],
    content: &Map<String, Value>,
) -> Result<Creating, RequestError> {
    let mut creating = Creating::new(cse, crs, &req.fr, ctx, true);
    let own = format!("{}/{}", cse.config.cse_id, crs);
    let targets = strings(content.get("rrat"));
    let asked: Vec<usize> = (0..remote.len()).filter(|i| remote[*i].is_some()).collect();
    if asked.is_empty() {
        return Ok(creating);
    }
    let binding = creating.binding.clone();
    // They live as long as the resource asks to, or its default lifetime here (TS-0004
    // 7.4.58.2.1); the hosting CSE may shorten that.
    let et = match content.get("et") {
        Some(et) => et.clone(),
        None => {
            let default = cse.now().plus_seconds(cse.config.default_lifetime_secs);
            Value::from(default.format())
        }
    };
    let calls: Vec<_> = asked
        .iter()
        .map(|&i| {
            let mut attrs = subscription_attrs(&own, criteria_for(criteria, i), content);
            attrs.insert("et".into(), et.clone());
            let request = bastion_proto::Request {
                op: Some(Operation::Create),
                to: targets[i].clone(),
                fr: Some(req.fr.clone()),
                rqi: Some(request_id(crs, &format!("c{i}"))),
                rvi: Some(SUBSCRIPTION_RELEASE.to_owned()),
                ty: Some(u64::from(ResourceType::Subscription.number())),
                pc: Some(serde_json::json!({ "m2m:sub": attrs })),
                ..Default::default()
            };
            let binding = &binding;
            async move { Box::pin(cse.handle(request, binding)).await }
        })
        .collect();
    let answers = join_bounded(calls, MAX_IN_FLIGHT).await;
    let mut failed = None;
    for (&i, resp) in asked.iter().zip(answers) {
        let made = resp.pc.as_ref().and_then(|pc| pc["m2m:sub"]["ri"].as_str());
        match (resp.rsc, made, &remote[i]) {
            (Rsc::Created, Some(ri), Some(host)) => creating.ids.push((i, format!("{host}/{ri}"))),
            (rsc, _, _) => {
                let why = resp
                    .pc
                    .as_ref()
                    .and_then(|pc| pc["m2m:dbg"].as_str())
                    .unwrap_or("")
                    .chars()
                    .take(120)
                    .collect::<String>();
                failed.get_or_insert((i, rsc.code(), why));
            }
        }
    }
    let Some((i, code, why)) = failed else {
        return Ok(creating);
    };
    // Those made go again before the answer.
    let ids: Vec<String> = creating.ids.drain(..).map(|(_, id)| id).collect();
    delete_remote(cse, crs, &req.fr, &binding, &ids).await;
    let shown: String = targets[i].chars().take(60).collect();
    Err(RequestError::CrossResourceOperationFailure(
        format!("{RRAT} target {i} ({shown}): {code} {why}").into(),
    ))
}

/// The `rqi` of a request this CSE sends for crossResourceSubscription `crs` (`what`:
/// the step and its target), with a fresh number: the forwarding loop detector knows a
/// request in flight by its originator and `rqi`, and the same step of one resource can
/// be in flight twice (an UPDATE's join while an earlier one's leave runs).
fn request_id(crs: &str, what: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{crs}-{what}-{n}")
}

/// The release the target subscriptions on other CSEs are asked in: `acrs` is Release 4.
const SUBSCRIPTION_RELEASE: &str = "4";

/// Deletes the target subscriptions of crossResourceSubscription `crs` on other CSEs as
/// `creator` (best effort: a failure is logged, once per subscription).
pub(crate) async fn delete_remote(
    cse: &Cse,
    crs: &str,
    creator: &str,
    ctx: &RequestContext,
    ids: &[String],
) {
    let calls: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(k, id)| {
            let request = bastion_proto::Request {
                op: Some(Operation::Delete),
                to: id.clone(),
                fr: Some(creator.to_owned()),
                rqi: Some(request_id(crs, &format!("d{k}"))),
                rvi: Some(SUBSCRIPTION_RELEASE.to_owned()),
                ..Default::default()
            };
            async move { Box::pin(cse.handle(request, ctx)).await }
        })
        .collect();
    let answers = join_bounded(calls, MAX_IN_FLIGHT).await;
    for (id, resp) in ids.iter().zip(answers) {
        if resp.rsc != Rsc::Deleted {
            tracing::warn!(subscription = %id, rsc = resp.rsc.code(), "target subscription on another CSE not deleted");
        }
    }
}

/// A `srat` entry on another CSE: the subscription's SP-relative resource ID there
/// (`/cse-id/ri`, the `sur` its notifications carry), from that form or the absolute
/// one; `None` for an entry on this CSE. One of another service provider (5001), any
/// other form (4000: its notifications could not be told apart) or one of `taken`
/// (4000) fails.
fn remote_entry(cse: &Cse, entry: &str, taken: &[String]) -> Result<Option<String>, RequestError> {
    match remote_cse(cse, entry) {
        None => Ok(None),
        Some(host) if host.is_empty() => Err(RequestError::NotImplemented(
            "subscriptions of other service providers are not supported".into(),
        )),
        Some(_) => {
            let key = remote_key(&cse.config, entry).ok_or_else(|| {
                RequestError::bad_request(
                    "a subscription on another CSE is named by its resource ID (/cse-id/ri)",
                )
            })?;
            if taken.contains(&key) {
                return Err(RequestError::bad_request(
                    "the subscription is already a target",
                ));
            }
            Ok(Some(key))
        }
    }
}

/// `/cse-id/ri` for an SP-relative (`/cse-id/ri`) or absolute (`//sp-id/cse-id/ri`)
/// resource ID on another CSE of this service provider; `None` for anything else.
fn remote_key(config: &CseConfig, entry: &str) -> Option<String> {
    let relative = match entry.strip_prefix("//") {
        Some(absolute) => {
            let (sp, rest) = absolute.split_once('/')?;
            if sp != config.sp_id.trim_start_matches('/') {
                return None;
            }
            format!("/{rest}")
        }
        None if entry.starts_with('/') => entry.to_owned(),
        None => return None,
    };
    let mut parts = relative[1..].split('/');
    let (csi, ri) = (parts.next()?, parts.next()?);
    let other = !csi.is_empty()
        && !ri.is_empty()
        && parts.next().is_none()
        && config.cse_id.trim_start_matches('/') != csi;
    other.then_some(relative)
}

/// Joins the `srat` subscriptions on other CSEs (`entries`: index in `srat`, SP-relative
/// ID) to `doing`'s resource, each as its originator's own RETRIEVE and UPDATE would
/// ([`edit_remote`]): the hosting CSE decides. At most [`MAX_IN_FLIGHT`] at once. Any
/// refusal leaves those joined, deletes `doing`'s target subscriptions there, and answers
/// 5221 naming the entry.
async fn join_remote(
    cse: &Cse,
    doing: &mut Creating,
    srat: &[String],
    entries: &[(usize, String)],
) -> Result<(), RequestError> {
    if entries.is_empty() {
        return Ok(());
    }
    let calls: Vec<_> = entries
        .iter()
        .map(|(_, key)| {
            let (crs, fr, binding) = (&doing.crs, &doing.creator, &doing.binding);
            async move { edit_remote(cse, crs, fr, binding, key, true).await }
        })
        .collect();
    let answers = join_bounded(calls, MAX_IN_FLIGHT).await;
    let mut failed = None;
    for ((i, key), answer) in entries.iter().zip(answers) {
        match answer {
            Ok(true) => doing.joined.push(key.clone()),
            // It named the resource already: nothing of this request to undo.
            Ok(false) => {}
            Err(refused) => {
                failed.get_or_insert((*i, refused));
            }
        }
    }
    let Some((i, (code, why))) = failed else {
        return Ok(());
    };
    // What was done goes again before the answer.
    let joined = std::mem::take(&mut doing.joined);
    leave_remote(cse, &doing.crs, &doing.creator, &doing.binding, &joined).await;
    let ids: Vec<String> = doing.ids.drain(..).map(|(_, id)| id).collect();
    delete_remote(cse, &doing.crs, &doing.creator, &doing.binding, &ids).await;
    let shown: String = srat[i].chars().take(60).collect();
    Err(RequestError::CrossResourceOperationFailure(
        format!("{SRAT} target {i} ({shown}): {code} {why}").into(),
    ))
}

/// The `srat` subscriptions on other CSEs `joined` leave crossResourceSubscription `crs`,
/// as `creator` (best effort: a failure is logged, once per subscription).
pub(crate) async fn leave_remote(
    cse: &Cse,
    crs: &str,
    creator: &str,
    ctx: &RequestContext,
    joined: &[String],
) {
    let calls: Vec<_> = joined
        .iter()
        .map(|key| async move { edit_remote(cse, crs, creator, ctx, key, false).await })
        .collect();
    let answers = join_bounded(calls, MAX_IN_FLIGHT).await;
    for (key, answer) in joined.iter().zip(answers) {
        if let Err((code, _)) = answer {
            tracing::warn!(subscription = %key, rsc = code, "srat subscription on another CSE not left");
        }
    }
}

/// Subscription `key` on another CSE joins (`join`) or leaves crossResourceSubscription
/// `crs` (TS-0004 7.4.58.2.1 c, 7.4.58.2.4): a RETRIEVE of it, for a join one of its
/// subscribed-to resource (its `pi`), then an UPDATE of its `nu`
/// with the resource's SP-relative ID added or taken out, the other entries kept, and of
/// `acrs` likewise where the host has it (it answered in Release 4 or later). Both go
/// through the whole pipeline with `fr` and `binding`, forwarded like any transit
/// request, so the hosting CSE takes the access decision; a join is written even when
/// `nu` names the resource already ([`remote_change`]). Whether it joined anew (for a
/// leave: whether it changed); else the status and reason that stopped it. The RETRIEVE and the
/// UPDATE are two requests: a change of `nu` between them is lost (docs/decisions.md).
async fn edit_remote(
    cse: &Cse,
    crs: &str,
    fr: &str,
    binding: &RequestContext,
    key: &str,
    join: bool,
) -> Result<bool, (u16, String)> {
    let own = format!("{}/{}", cse.config.cse_id, crs);
    let tag = if join { 'j' } else { 'l' };
    let named = key.rsplit('/').next().unwrap_or_default();
    let request = |op: Operation, step: char, pc: Option<Value>| bastion_proto::Request {
        op: Some(op),
        to: key.to_owned(),
        fr: Some(fr.to_owned()),
        rqi: Some(request_id(crs, &format!("{tag}{step}-{named}"))),
        rvi: Some(SUBSCRIPTION_RELEASE.to_owned()),
        pc,
        ..Default::default()
    };
    let read = Box::pin(cse.handle(request(Operation::Retrieve, 'r', None), binding)).await;
    if read.rsc != Rsc::Ok {
        return Err(refused(&read));
    }
    let sub = read
        .pc
        .as_ref()
        .and_then(|pc| pc.get("m2m:sub"))
        .and_then(Value::as_object)
        .filter(|s| {
            s.get("ty").and_then(Value::as_u64)
                == Some(u64::from(ResourceType::Subscription.number()))
        })
        .ok_or_else(|| {
            (
                Rsc::BadRequest.code(),
                "srat names subscriptions only".to_owned(),
            )
        })?;
    if join && sub.get("ri").and_then(Value::as_str) != Some(named) {
        return Err((
            Rsc::BadRequest.code(),
            "not the subscription's resource ID".to_owned(),
        ));
    }
    if join {
        // The events it would bring are its subscribed-to resource's: the originator must
        // be able to RETRIEVE that as well (as `join_check` asks here), which its host
        // decides.
        let parent = subscribed_to(key, sub).ok_or_else(|| {
            (
                Rsc::OriginatorHasNoPrivilege.code(),
                "the subscription's parent is not shown".to_owned(),
            )
        })?;
        let mut read_parent = request(Operation::Retrieve, 'p', None);
        read_parent.to = parent;
        let parent = Box::pin(cse.handle(read_parent, binding)).await;
        if parent.rsc != Rsc::Ok {
            return Err(refused(&parent));
        }
    }
    // A representation without `nu` (not readable) would make the UPDATE replace it.
    let Some(nu) = sub.get("nu") else {
        return Err((
            Rsc::OriginatorHasNoPrivilege.code(),
            "the subscription's nu is not readable".to_owned(),
        ));
    };
    let release4 = read
        .rvi
        .as_deref()
        .and_then(|v| v.parse::<u8>().ok())
        .is_some_and(|r| r >= 4);
    let (change, joins) = remote_change(nu, sub.get("acrs"), &own, join, release4)?;
    if change.is_empty() {
        return Ok(false);
    }
    let pc = serde_json::json!({ "m2m:sub": change });
    let write = Box::pin(cse.handle(request(Operation::Update, 'u', Some(pc)), binding)).await;
    if write.rsc != Rsc::Updated {
        return Err(refused(&write));
    }
    Ok(joins || !join)
}

/// The SP-relative ID of the resource remote subscription `key` (`/cse-id/ri`, as read:
/// `sub`) is under, from its `pi` on that CSE.
fn subscribed_to(key: &str, sub: &Map<String, Value>) -> Option<String> {
    let pi = sub
        .get("pi")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())?;
    if pi.starts_with('/') {
        return Some(pi.to_owned());
    }
    let host = key.strip_prefix('/')?.split('/').next()?;
    Some(format!("/{host}/{pi}"))
}

/// The UPDATE of a remote subscription's `nu` (with `nu`, `acrs` as read) that makes it
/// join (`join`) or leave the resource `own` (SP-relative ID), `acrs` only where the host
/// has it (`release4`), and whether it joins anew. A join always writes, even one that
/// names `own` already: the UPDATE is what the host authorizes, so an originator that may
/// read the subscription but not change it never counts it joined. A leave writes only
/// what names `own`; a `nu` is never left empty. A `nu` or `acrs` that is not a list of
/// strings is refused: written back without what it held besides, the UPDATE would lose
/// that on the other CSE.
fn remote_change(
    nu: &Value,
    acrs: Option<&Value>,
    own: &str,
    join: bool,
    release4: bool,
) -> Result<(Map<String, Value>, bool), (u16, String)> {
    let list = |name: &str, v: &Value| {
        v.as_array()
            .and_then(|a| {
                a.iter()
                    .map(|e| e.as_str().map(str::to_owned))
                    .collect::<Option<Vec<String>>>()
            })
            .ok_or_else(|| {
                (
                    Rsc::BadRequest.code(),
                    format!("the subscription's {name} is not a list of strings"),
                )
            })
    };
    let mut nu = list("nu", nu)?;
    let mut acrs = match acrs {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => list("acrs", v)?,
    };
    let mut change = Map::new();
    if join {
        let joins = !nu.iter().any(|e| e == own);
        if joins {
            nu.push(own.to_owned());
        }
        change.insert("nu".into(), Value::from(nu));
        if release4 {
            if !acrs.iter().any(|e| e == own) {
                acrs.push(own.to_owned());
            }
            change.insert("acrs".into(), Value::from(acrs));
        }
        return Ok((change, joins));
    }
    if nu.iter().any(|e| e == own) && nu.len() > 1 {
        nu.retain(|e| e != own);
        change.insert("nu".into(), Value::from(nu));
    }
    if acrs.iter().any(|e| e == own) {
        acrs.retain(|e| e != own);
        let rest = if acrs.is_empty() {
            Value::Null
        } else {
            Value::from(acrs)
        };
        change.insert("acrs".into(), rest);
    }
    Ok((change, false))
}

/// The status of a refused request to another CSE and its debug text (120 characters at
/// most).
fn refused(resp: &bastion_proto::Response) -> (u16, String) {
    let why = resp
        .pc
        .as_ref()
        .and_then(|pc| pc["m2m:dbg"].as_str())
        .unwrap_or("")
        .chars()
        .take(120)
        .collect();
    (resp.rsc.code(), why)
}

/// How many of the `rrat` targets are on this CSE (the subscriptions made here).
fn local_count(cse: &Cse, rrat: &[String]) -> usize {
    rrat.iter().filter(|t| remote_cse(cse, t).is_none()).count()
}

/// The targets' subscriptions count against the originator's cap like any other.
fn check_cap(cse: &Cse, tree: &Tree, fr: &str, more: usize) -> Result<(), RequestError> {
    let max = cse.config.max_subscriptions_per_originator;
    if tree.subscriptions_of(fr).saturating_add(more) > max {
        return Err(RequestError::NotAcceptable(
            format!("the originator may hold at most {max} subscriptions").into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OWN: &str = "/id-mn/crs1";

    #[test]
    fn a_join_of_a_subscription_naming_it_already_still_writes() {
        // The host decides on the UPDATE: without it, RETRIEVE alone would join.
        let (change, joins) =
            remote_change(&json!(["Cx", OWN]), None, OWN, true, true).expect("nu");
        assert!(!joins);
        assert_eq!(
            Value::Object(change),
            json!({"nu": ["Cx", OWN], "acrs": [OWN]})
        );
        let (change, joins) = remote_change(&json!(["Cx"]), None, OWN, true, false).expect("nu");
        assert!(joins);
        assert_eq!(Value::Object(change), json!({"nu": ["Cx", OWN]}));
    }

    #[test]
    fn a_malformed_nu_or_acrs_is_refused_not_filtered() {
        // Filtered, the UPDATE would write `nu` without the members dropped.
        for (nu, acrs) in [
            (json!(["Cx", 7]), None),
            (json!("Cx"), None),
            (json!(["Cx"]), Some(json!([OWN, {"x": 1}]))),
        ] {
            for join in [true, false] {
                let refused =
                    remote_change(&nu, acrs.as_ref(), OWN, join, true).expect_err("malformed");
                assert_eq!(refused.0, 4000, "{refused:?}");
            }
        }
    }

    #[test]
    fn request_ids_never_repeat() {
        let a = request_id("crs1", "jr-sub2");
        let b = request_id("crs1", "jr-sub2");
        assert_ne!(a, b);
        assert!(a.starts_with("crs1-jr-sub2-"), "{a}");
    }

    #[test]
    fn the_subscribed_to_resource_is_on_the_subscriptions_host() {
        let sub = |pi: &str| json!({"pi": pi}).as_object().cloned().expect("object");
        assert_eq!(
            subscribed_to("/id-in/sub9", &sub("cnt3")).as_deref(),
            Some("/id-in/cnt3")
        );
        assert_eq!(
            subscribed_to("/id-in/sub9", &sub("/id-in/cnt3")).as_deref(),
            Some("/id-in/cnt3")
        );
        assert_eq!(subscribed_to("/id-in/sub9", &sub("")), None);
        assert_eq!(subscribed_to("/id-in/sub9", &Map::new()), None);
    }

    #[test]
    fn a_leave_writes_only_what_names_it_and_never_empties_nu() {
        let (change, _) = remote_change(&json!(["Cx"]), None, OWN, false, true).expect("nu");
        assert!(change.is_empty());
        let (change, _) =
            remote_change(&json!([OWN]), Some(&json!([OWN])), OWN, false, true).expect("nu");
        assert_eq!(Value::Object(change), json!({"acrs": null}));
        let (change, _) = remote_change(&json!(["Cx", OWN]), None, OWN, false, true).expect("nu");
        assert_eq!(Value::Object(change), json!({"nu": ["Cx"]}));
    }
}
