//! `<subscription>` (TS-0001 9.6.8): subscribing needs RETRIEVE on the subscribed-to
//! resource, its criteria are compiled and its notification targets verified before it
//! is created or changed, and each originator holds a bounded number.

use super::{merged, new_ri, Prepared, ResourceKind};
use crate::access::Enforcer;
use crate::audit::AuditRule;
use crate::checks::CreateRequest;
use crate::resolve::Target;
use crate::subscription::{filled_defaults, statistics_after_write, SubscriptionState};
use crate::tree::{Node, Ri, Tree, TypeState};
use crate::{Cse, RequestContext};
use async_trait::async_trait;
use bastion_policy::AccessOperation;
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};
use std::sync::Arc;

pub(super) struct Subscription;

#[async_trait]
impl ResourceKind for Subscription {
    fn refuse_parent(&self, _ty: ResourceType, _refused: RequestError) -> RequestError {
        not_subscribable()
    }

    fn not_a_child(&self, _ty: ResourceType) -> RequestError {
        not_subscribable()
    }

    /// RETRIEVE privilege on the subscribed-to resource, not CREATE (TS-0001 10.2.11.2;
    /// docs/decisions.md).
    async fn authorize_create(
        &self,
        _cse: &Cse,
        access: &Enforcer<'_>,
        target: &Target,
        _ty: ResourceType,
        _parent: &Ri,
    ) -> Result<AuditRule, RequestError> {
        access
            .authorize(target, AccessOperation::Retrieve, None)
            .await
    }

    async fn prepare(
        &self,
        cse: &Cse,
        req: &CreateRequest,
        ctx: &RequestContext,
        content: &Map<String, Value>,
        parent: &Ri,
    ) -> Result<Prepared, RequestError> {
        // Also before the verification request, which a refused one must not cost.
        let max = cse.config.max_subscriptions_per_originator;
        check_subscription_cap(&cse.tree.read(), &req.fr, max)?;
        let (seq, ri, state) = prepare_subscription(cse, req, ctx, content, parent).await?;
        let mut defaults = filled_defaults(content, &state);
        // The subscriber is its creator when it is not its only target (TS-0004
        // 7.4.8.2.1 Recv-6.5).
        if state.nu.iter().any(|nu| !cse.is_subscriber(&req.fr, nu)) {
            defaults.insert("cr".into(), Value::String(req.fr.clone()));
        }
        Ok(Prepared {
            id: Some((seq, ri)),
            defaults,
            state: Some(TypeState::Subscription(state)),
        })
    }

    fn check_locked(
        &self,
        cse: &Cse,
        tree: &Tree,
        req: &CreateRequest,
        parent: &Ri,
    ) -> Result<(), RequestError> {
        check_subscription_cap(tree, &req.fr, cse.config.max_subscriptions_per_originator)?;
        let content = req.pc.get("m2m:sub").and_then(Value::as_object);
        if asks_blocking_update(content) {
            check_one_blocking(tree, parent)?;
        }
        Ok(())
    }

    /// A subscription cannot become a blocking-update one by UPDATE (TS-0004 7.4.8.2.3).
    fn check_update(
        &self,
        _cse: &Cse,
        _req: &crate::checks::Envelope,
        _ri: &Ri,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        if asks_blocking_update(Some(content)) {
            return Err(RequestError::bad_request(
                "notificationEventType blocking update cannot be set by UPDATE",
            ));
        }
        Ok(())
    }

    async fn prepare_update(
        &self,
        cse: &Cse,
        _access: &crate::access::Enforcer<'_>,
        ri: &Ri,
        content: &Map<String, Value>,
    ) -> Result<Option<TypeState>, RequestError> {
        let state = resubscribe(cse, ri, content).await?;
        Ok(Some(TypeState::Subscription(state)))
    }

    /// The defaults an UPDATE left out are filled in again (a new `bn` without `dur`), and
    /// `nsi` follows `nse` and `nu` (reset when this UPDATE enables statistics).
    fn write_update(&self, node: &mut Node, previous: &Map<String, Value>) -> super::Written {
        if let Some(state) = node.subscription().cloned() {
            let mut defaults = filled_defaults(&node.attrs, &state);
            defaults.remove("nsi");
            node.attrs.extend(defaults);
        }
        statistics_after_write(&mut node.attrs, previous.contains_key("nse"));
        super::Written {
            ops: vec![bastion_store::WriteOp::Upsert(super::node_row(node))],
            also_modified: &[],
        }
    }

    /// One that no longer compiles (this version became stricter) is kept as a resource
    /// that notifies nothing.
    fn reload(
        &self,
        cx: &super::Derive,
        node: &mut Node,
        row_body: &str,
    ) -> Result<TypeState, String> {
        let authenticated = crate::render::subscriber_authenticated(row_body);
        let Some(parent_ty) = node.pi.as_ref().and_then(|p| cx.tree.get(p)).map(|p| p.ty) else {
            return Ok(TypeState::Plain);
        };
        let creator = node.creator.as_deref().unwrap_or("");
        match SubscriptionState::compile(&node.attrs, parent_ty, creator, authenticated) {
            Ok(state) => Ok(TypeState::Subscription(Arc::new(state))),
            Err(e) => {
                tracing::error!(subscription = %node.ri, reason = %e, "stored subscription rejected; it notifies nothing");
                Ok(TypeState::Plain)
            }
        }
    }
}

/// Whether subscription content asks for a blocking update (`enc.net` holds 7).
fn asks_blocking_update(content: Option<&Map<String, Value>>) -> bool {
    content
        .and_then(|c| c.get("enc"))
        .and_then(|e| e.get("net"))
        .and_then(Value::as_array)
        .is_some_and(|net| net.iter().any(|n| n.as_u64() == Some(7)))
}

/// At most one blocking-update subscription per resource (TS-0004 7.4.8.2.1: 4124).
fn check_one_blocking(tree: &Tree, parent: &Ri) -> Result<(), RequestError> {
    let taken = tree
        .subscriptions_under(parent)
        .iter()
        .filter_map(|c| tree.get(c))
        .filter_map(Node::subscription)
        .any(|s| s.is_blocking_update());
    if taken {
        return Err(RequestError::BlockingSubscriptionExists(
            "the resource already has a blocking-update subscription".into(),
        ));
    }
    Ok(())
}

fn not_subscribable() -> RequestError {
    RequestError::TargetNotSubscribable("this resource cannot be subscribed to".into())
}

/// One originator may hold at most `max` subscriptions on this CSE, whatever form it
/// writes its ID in: each costs memory, event matching on every write below its parent
/// and notification queues (5207; docs/decisions.md). Checked under the tree's write lock,
/// so concurrent creations cannot overshoot.
fn check_subscription_cap(tree: &Tree, fr: &str, max: usize) -> Result<(), RequestError> {
    if tree.subscriptions_of(fr) >= max {
        return Err(RequestError::NotAcceptable(
            format!("the originator already holds the maximum of {max} subscriptions").into(),
        ));
    }
    Ok(())
}

/// Compiles the subscription and verifies its targets (TS-0004 7.3.3.2) before anything
/// is written; the resource ID is taken first because the verification request names
/// the subscription.
async fn prepare_subscription(
    cse: &Cse,
    req: &CreateRequest,
    ctx: &RequestContext,
    content: &Map<String, Value>,
    parent_ri: &Ri,
) -> Result<(i64, String, Arc<SubscriptionState>), RequestError> {
    let parent_ty = cse
        .tree
        .read()
        .get(parent_ri)
        .map(|n| n.ty)
        .ok_or_else(|| RequestError::not_found("parent no longer exists"))?;
    let state = SubscriptionState::compile(content, parent_ty, &req.fr, ctx.authenticated)?;
    if state.is_blocking_update() {
        // `nct` is the CSE's to fill in here (TS-0004 7.4.8.2.1).
        if content.contains_key("nct") {
            return Err(RequestError::bad_request(
                "a blocking-update subscription cannot hold nct",
            ));
        }
        check_one_blocking(&cse.tree.read(), parent_ri)?;
    }
    let seq = cse.tree.write().next_seq();
    let ri = new_ri(ResourceType::Subscription, seq);
    let sur = format!("{}/{}", cse.config.cse_id, ri);
    cse.verify_targets(&sur, &req.fr, &state.targets()).await?;
    Ok((seq, ri, Arc::new(state)))
}

/// A `<subscription>` UPDATE: the merged attributes compiled again, and any target not
/// verified before asked now, for the original subscriber (TS-0004 7.3.3.4).
async fn resubscribe(
    cse: &Cse,
    ri: &Ri,
    content: &Map<String, Value>,
) -> Result<Arc<SubscriptionState>, RequestError> {
    let (merged, parent_ty, old) = {
        let tree = cse.tree.read();
        let (node, old, parent_ty) = subscription_parts(&tree, ri)?;
        (merged(&node.attrs, content), parent_ty, old)
    };
    let state = SubscriptionState::compile(&merged, parent_ty, &old.creator, old.authenticated)?;
    verify_added_targets(cse, ri, &old, &state).await?;
    Ok(Arc::new(state))
}

/// Verifies, for the original subscriber, the targets `new` has and `old` had not (an
/// UPDATE of `ri`, a `<subscription>` or a `<crossResourceSubscription>`).
pub(super) async fn verify_added_targets(
    cse: &Cse,
    ri: &Ri,
    old: &SubscriptionState,
    new: &SubscriptionState,
) -> Result<(), RequestError> {
    let before = old.targets();
    let added: Vec<String> = new
        .targets()
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    let sur = format!("{}/{}", cse.config.cse_id, ri);
    cse.verify_targets(&sur, &old.creator, &added).await
}

/// The subscription `ri` with its compiled state and the type of the resource it watches:
/// what compiling it again needs.
pub(crate) fn subscription_parts<'t>(
    tree: &'t Tree,
    ri: &Ri,
) -> Result<(&'t Node, Arc<SubscriptionState>, ResourceType), RequestError> {
    let node = tree
        .get(ri)
        .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
    let state = node
        .subscription()
        .cloned()
        .ok_or_else(|| RequestError::Internal("subscription state missing".into()))?;
    let parent_ty = node
        .pi
        .as_ref()
        .and_then(|p| tree.get(p))
        .map(|p| p.ty)
        .ok_or_else(|| RequestError::not_found("parent no longer exists"))?;
    Ok((node, state, parent_ty))
}
