//! `<crossResourceSubscription>` (ty 48; TS-0001 9.6.58, TS-0004 7.4.58, 7.5.1.2.18):
//! one notification when every target resource had an event within a time window.
//!
//! CREATE makes one `<subscription>` under each `rrat` target, for the originator and
//! only as far as the originator could make it itself: RETRIEVE privilege on the target
//! (the decision `<subscription>` CREATE takes), a target that holds subscriptions, and
//! criteria (`encs`) valid for it; else nothing is created and the answer is 5221 naming
//! the target and its own status. The subscriptions notify the `<crossResourceSubscription>`
//! (`nu` = its resource ID, `acrs` naming it) and are written with it in one durable
//! write; they go when it goes. Their notifications never leave the CSE: `notify.rs`
//! hands them to [`CrossResourceState::record`], whose window decides when the
//! cross-resource notification (`{"sur": …}`) goes to the resource's own `nu`.
//!
//! Bounded: at most [`MAX_CRS_TARGETS`] targets, each counted against the originator's
//! subscription cap; the window is one bit per target. Not built: `srat` (existing
//! subscriptions as targets, 5001) and targets on other CSEs (5221).

use super::{merged, new_ri, universal, NewNode, Prepared, ResourceKind};
use crate::access::Enforcer;
use crate::authz_state::{resolve_local, Mode};
use crate::checks::CreateRequest;
use crate::resolve::Target;
use crate::subscription::{
    filled_defaults, CrossResourceState, SubscriptionState, MAX_CRS_TARGETS, TWT_SLIDING,
};
use crate::tree::{Node, Ri, Tree, TypeState};
use crate::{Cse, RequestContext};
use async_trait::async_trait;
use bastion_policy::AccessOperation;
use bastion_proto::json::string_list as strings;
use bastion_proto::time::{parse_duration, Timestamp};
use bastion_proto::{RequestError, ResourceType};
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
        let targets = targets(content)?;
        let criteria = criteria_set(content, targets.len())?;
        let delivery = delivery(content, &req.fr, ctx.authenticated)?;
        let window = window_ms(content)?;
        check_cap(cse, &cse.tree.read(), &req.fr, targets.len())?;
        // Each target as the originator's own `<subscription>` CREATE would find it.
        let now = cse.now();
        let access = Enforcer::new(cse, &req.fr, ctx, now);
        for (i, target) in targets.iter().enumerate() {
            let (ri, ty) = local_target(cse, target).map_err(|e| failure(i, target, e))?;
            access
                .authorize(&Target::Node(ri), AccessOperation::Retrieve, None)
                .await
                .map_err(|e| failure(i, target, e))?;
            let attrs = subscription_attrs("-", criteria_for(&criteria, i), content);
            SubscriptionState::compile(&attrs, ty, &req.fr, ctx.authenticated)
                .map_err(|e| failure(i, target, e))?;
        }
        // The IDs first: the verification request names the resource.
        let (seq, ri, subs) = {
            let mut tree = cse.tree.write();
            let seq = tree.next_seq();
            let subs: Vec<Ri> = targets
                .iter()
                .map(|_| Ri::from(new_ri(ResourceType::Subscription, tree.next_seq())))
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
        let mut defaults = Map::new();
        let rrats = subs.iter().map(|s| Value::from(&**s)).collect();
        defaults.insert("rrats".into(), Value::Array(rrats));
        let sliding = content.get("twt").and_then(Value::as_u64) == Some(TWT_SLIDING);
        let state = CrossResourceState::new(subs, window, sliding, cse.now_ms(), delivery);
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
        let n = content
            .and_then(|c| c.get("rrat"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        check_cap(cse, tree, &req.fr, n)
    }

    /// The target subscriptions, under the write lock, with the IDs `prepare` took.
    fn companions(
        &self,
        tree: &mut Tree,
        new: &NewNode,
        attrs: &mut Map<String, Value>,
    ) -> Result<Vec<Node>, RequestError> {
        let targets = targets(attrs)?;
        let criteria = criteria_set(attrs, targets.len())?;
        let subs = strings(attrs.get("rrats"));
        let own_et = attrs
            .get("et")
            .and_then(Value::as_str)
            .and_then(Timestamp::parse)
            .unwrap_or(bastion_proto::time::MAX);
        let mut nodes = Vec::with_capacity(targets.len());
        for (i, (target, sub)) in targets.iter().zip(&subs).enumerate() {
            let parent = resolve_local(tree, new.config, target)
                .ok_or_else(|| failure(i, target, RequestError::not_found("no such target")))?;
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
                .map_err(|e| failure(i, target, e))?;
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
    /// window (TS-0004 7.4.58.2.3), as does every UPDATE.
    async fn prepare_update(
        &self,
        cse: &Cse,
        ri: &Ri,
        content: &Map<String, Value>,
    ) -> Result<Option<TypeState>, RequestError> {
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
            (merged(&node.attrs, content), old, creator)
        };
        let authenticated = old.delivery.authenticated;
        let delivery = delivery(&attrs, &creator, authenticated)?;
        super::subscription::verify_added_targets(cse, ri, &old.delivery, &delivery).await?;
        let state = state_of(&attrs, &creator, authenticated, cse.now_ms())?;
        Ok(Some(TypeState::CrossResource(Arc::new(state))))
    }

    fn reload(
        &self,
        cx: &super::Derive,
        node: &mut Node,
        _row_body: &str,
    ) -> Result<TypeState, String> {
        let creator = node.creator.clone().unwrap_or_default();
        let now_ms = cx.now.0.saturating_mul(1000);
        match state_of(&node.attrs, &creator, false, now_ms) {
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

/// The state of a stored or updated resource from its attributes.
fn state_of(
    attrs: &Map<String, Value>,
    creator: &str,
    authenticated: bool,
    now_ms: i64,
) -> Result<CrossResourceState, RequestError> {
    let delivery = delivery(attrs, creator, authenticated)?;
    let subs = strings(attrs.get("rrats"))
        .into_iter()
        .map(|s| Ri::from(s.as_str()))
        .take(MAX_CRS_TARGETS)
        .collect();
    let sliding = attrs.get("twt").and_then(Value::as_u64) == Some(TWT_SLIDING);
    Ok(CrossResourceState::new(
        subs,
        window_ms(attrs)?,
        sliding,
        now_ms,
        delivery,
    ))
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

/// `rrat`: 1 to [`MAX_CRS_TARGETS`] targets, none twice; `srat` is not built (5001);
/// neither is 4000 (TS-0004 7.4.58.2.1).
fn targets(content: &Map<String, Value>) -> Result<Vec<String>, RequestError> {
    if content.contains_key("srat") {
        return Err(RequestError::NotImplemented(
            "subscriptionResourcesAsTarget (srat) is not supported".into(),
        ));
    }
    let list = strings(content.get("rrat"));
    if list.is_empty() {
        return Err(RequestError::bad_request(
            "regularResourcesAsTarget (rrat) must name at least one target",
        ));
    }
    if list.len() > MAX_CRS_TARGETS {
        return Err(RequestError::bad_request(format!(
            "rrat names more than {MAX_CRS_TARGETS} targets"
        )));
    }
    if list.iter().enumerate().any(|(i, t)| list[..i].contains(t)) {
        return Err(RequestError::bad_request("rrat names a target twice"));
    }
    Ok(list)
}

/// `encs` (`m2m:eventNotificationCriteriaSet`, `{"enc": [...]}`): required with `rrat`,
/// one criteria for every target or one per target, in order (TS-0004 7.4.58.2.1).
fn criteria_set(content: &Map<String, Value>, targets: usize) -> Result<Vec<Value>, RequestError> {
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
    let Some(node) = resolve_local(&tree, &cse.config, target) else {
        // An SP-relative or absolute ID not under this CSE's own ID is another CSE's.
        let own = format!("{}/", cse.config.cse_id);
        if target.starts_with('/') && !target.starts_with(&own) {
            return Err(RequestError::NotImplemented(
                "targets on other CSEs are not supported".into(),
            ));
        }
        return Err(RequestError::not_found("resource does not exist"));
    };
    if !super::kind(node.ty).allows_child(node.ty, ResourceType::Subscription) {
        return Err(RequestError::TargetNotSubscribable(
            "this resource cannot be subscribed to".into(),
        ));
    }
    Ok((node.ri.clone(), node.ty))
}

/// 5221 for target `i`, with what its own subscription CREATE answered.
fn failure(i: usize, target: &str, cause: RequestError) -> RequestError {
    let shown: String = target.chars().take(60).collect();
    RequestError::CrossResourceOperationFailure(
        format!("rrat target {i} ({shown}): {} {cause}", cause.rsc().code()).into(),
    )
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
