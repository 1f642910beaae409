//! The resource-type registry: one module per resource type this CSE serves, each giving
//! one [`ResourceKind`], and [`kind`] mapping a [`ResourceType`] to it.
//!
//! A kind says what is particular to its type: its attribute policy and allowed children
//! (from `bastion_proto`), how CREATE of it is authorized and prepared, the state it
//! derives from its attributes ([`TypeState`]) on CREATE, UPDATE and start-up, what its
//! writes store, and which audit events it raises. The operations (`create.rs`,
//! `update.rs`, `delete.rs`, `load.rs`) run the same steps for every type and ask the
//! kind at each; they hold no per-type branches. Adding a type is one module here and
//! one arm in [`kind`].
//!
//! Layering: this module sits above `tree`, `state`, `authz_state` and `access` (a
//! kind's CREATE decision goes through the request's [`Enforcer`]) and below the
//! operations; it reaches the rest of the CSE only through methods of [`Cse`].

mod acp;
mod ae;
mod announced;
mod common;
mod container;
mod content_instance;
pub(crate) mod cross_resource_subscription;
mod cse_base;
mod dac;
mod flex_container;
pub(crate) mod group;
mod location_policy;
mod mgmt_obj;
mod node;
pub(crate) mod notification_target_mgmt_policy_ref;
pub(crate) mod notification_target_policy;
mod policy_deletion_rules;
mod polling_channel;
mod remote_cse;
mod request;
mod role;
mod schedule;
mod subscription;
mod time_series;
mod token;

pub(crate) use common::{
    check_announcement, common, content_size, created, new_ri, node_row, remove_node,
    resolve_acp_id, resolve_acpi, universal, MAX_ANNOUNCE_TARGETS,
};
pub(crate) use container::{evict_for, live_instances, remove_instance, Flush};
pub(crate) use content_instance::count_retrieval;
pub(crate) use flex_container::root_of;
pub(crate) use node::check_links;
pub(crate) use polling_channel::channel_of;
pub(crate) use remote_cse::{check_dcse, csr_of};
pub(crate) use schedule::notification_window;
pub(crate) use subscription::subscription_parts;
pub(crate) use time_series::{missing_due, restore_series, take_missing};

use crate::access::Enforcer;
use crate::audit::{AuditKind, AuditRule};
use crate::authz_state::Mode;
use crate::checks::{CreateRequest, Envelope};
use crate::resolve::Target;
use crate::tree::{Node, Ri, Tree, TypeState};
use crate::{Cse, CseConfig, RequestContext};
use async_trait::async_trait;
use bastion_policy::{AccessOperation, LocalIdentity, TokenVerifier};
use bastion_proto::attrs::{self, Phase};
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType, Response};
use bastion_store::WriteOp;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The registry: the kind of every resource type. Types this CSE does not implement get
/// [`Unimplemented`], which the generic steps answer with 5001.
pub(crate) fn kind(ty: ResourceType) -> &'static dyn ResourceKind {
    match ty {
        ResourceType::AccessControlPolicy => &acp::Acp,
        ResourceType::Ae => &ae::Ae,
        ResourceType::Container => &container::Container,
        ResourceType::ContentInstance => &content_instance::ContentInstance,
        ResourceType::CseBase => &cse_base::CseBase,
        ResourceType::Group => &group::Group,
        ResourceType::MgmtObj => &mgmt_obj::MgmtObj,
        ResourceType::Node => &node::Node,
        ResourceType::LocationPolicy => &location_policy::LocationPolicy,
        ResourceType::Role => &role::Role,
        ResourceType::Token => &token::Token,
        ResourceType::DynamicAuthorizationConsultation => &dac::Dac,
        ResourceType::PollingChannel => &polling_channel::PollingChannel,
        ResourceType::RemoteCse => &remote_cse::RemoteCse,
        ResourceType::Request => &request::Request,
        ResourceType::Subscription => &subscription::Subscription,
        ResourceType::TimeSeries => &time_series::TimeSeries,
        ResourceType::TimeSeriesInstance => &time_series::TimeSeriesInstance,
        ResourceType::FlexContainer => &flex_container::FlexContainer,
        ResourceType::FlexContainerInstance => &flex_container::FlexContainerInstance,
        ResourceType::Schedule => &schedule::Schedule,
        ResourceType::NotificationTargetMgmtPolicyRef => {
            &notification_target_mgmt_policy_ref::NotificationTargetMgmtPolicyRef
        }
        ResourceType::NotificationTargetPolicy => {
            &notification_target_policy::NotificationTargetPolicy
        }
        ResourceType::PolicyDeletionRules => &policy_deletion_rules::PolicyDeletionRules,
        ResourceType::CrossResourceSubscription => {
            &cross_resource_subscription::CrossResourceSubscription
        }
        ResourceType::Announced(_) => &announced::Announced,
        ResourceType::Other(_) => &Unimplemented,
    }
}

/// A type oneM2M defines and this CSE does not implement: every hook keeps its default,
/// and no parent allows it as a child, so CREATE ends in 5001.
struct Unimplemented;

impl ResourceKind for Unimplemented {}

/// What a derivation needs besides the attributes: the tree (for members and references)
/// and the CSE's identity, configuration and trusted token issuers.
pub(crate) struct Derive<'a> {
    pub tree: &'a Tree,
    pub config: &'a CseConfig,
    pub local: &'a LocalIdentity,
    pub verifier: &'a TokenVerifier,
    pub now: Timestamp,
}

impl Derive<'_> {
    /// The access-control state of a `<group>`, `<role>`, `<token>` or
    /// `<dynamicAuthorizationConsultation>` (`authz_state.rs`), derived in this context.
    pub(crate) fn authz_state(
        &self,
        ty: ResourceType,
        attrs: &mut Map<String, Value>,
        mode: Mode,
    ) -> Result<TypeState, RequestError> {
        crate::authz_state::derive(
            self.tree,
            self.config,
            self.local,
            self.verifier,
            ty,
            attrs,
            self.now,
            mode,
        )
    }
}

/// [`ResourceKind::rederive`] for a type whose whole state follows from its attributes:
/// derived again on the merged attributes before anything changes, so a refused update
/// leaves no trace.
pub(crate) fn rederive_merged(
    kind: &dyn ResourceKind,
    cx: &Derive,
    node: &Node,
    content: &Map<String, Value>,
) -> Result<Option<Rederived>, RequestError> {
    let mut attrs = merged(&node.attrs, content);
    let state = kind.derive(cx, node.ty, &mut attrs, Mode::Write)?;
    Ok(Some(Rederived {
        attrs: Some(attrs),
        state,
    }))
}

impl Cse {
    /// The derivation context over `tree` at `now`.
    pub(crate) fn derive_in<'a>(&'a self, tree: &'a Tree, now: Timestamp) -> Derive<'a> {
        Derive {
            tree,
            config: &self.config,
            local: &self.local,
            verifier: self.tokens.verifier(),
            now,
        }
    }
}

/// What a kind prepared for CREATE before the tree is locked.
#[derive(Default)]
pub(crate) struct Prepared {
    /// The sequence number and resource ID, when they had to be taken early (a
    /// verification request names the resource).
    pub id: Option<(i64, String)>,
    /// The state, when it was derived here rather than under the lock.
    pub state: Option<TypeState>,
    /// Attributes the CSE fills in where the content leaves them out (defaults).
    pub defaults: Map<String, Value>,
}

/// A resource being created, as [`ResourceKind::companions`] sees it: not yet in the
/// tree.
pub(crate) struct NewNode<'a> {
    pub ri: &'a str,
    pub parent: &'a Ri,
    /// Its resolved `acpi`.
    pub acpi: &'a [Ri],
    pub creator: &'a str,
    /// Whether the originator was authenticated (for the subscriptions it makes).
    pub authenticated: bool,
    pub config: &'a CseConfig,
    pub now: Timestamp,
}

/// The resources removed together with `ri` although they are not in its subtree
/// ([`ResourceKind::linked`]).
pub(crate) fn linked(tree: &Tree, ri: &Ri) -> Vec<Ri> {
    tree.get(ri)
        .map(|node| kind(node.ty).linked(tree, node))
        .unwrap_or_default()
}

/// The audit events a type raises when it is created, updated or deleted.
#[derive(Clone, Copy)]
pub(crate) struct Audited {
    pub create: AuditKind,
    pub update: AuditKind,
    pub delete: AuditKind,
}

/// A node's new state for an UPDATE, with its attributes when the derivation fixed
/// them up.
pub(crate) struct Rederived {
    pub attrs: Option<Map<String, Value>>,
    pub state: TypeState,
}

/// What an UPDATE stores for a node, with the attributes the CSE changed beside those
/// in the request and `lt`.
pub(crate) struct Written {
    pub ops: Vec<WriteOp>,
    pub also_modified: &'static [&'static str],
}

/// What [`ResourceKind::instantiate`] did: the writes to queue, the notifications to send
/// once they are durable, and the instance it made, announced after them (under its
/// container's copies, `Cse::announce_instance`).
#[derive(Default)]
pub(crate) struct Instantiated {
    pub ops: Vec<WriteOp>,
    pub notices: crate::Notices,
    pub instance: Option<Arc<Map<String, Value>>>,
}

/// A resource type's behaviour. Every hook has the default most types want, so a type
/// module implements only what differs.
#[async_trait]
pub(crate) trait ResourceKind: Sync {
    /// Refuses every CREATE of this type, before the target is resolved.
    fn check_creatable(&self) -> Result<(), RequestError> {
        Ok(())
    }

    /// The answer when the addressed resource cannot be a parent of this type.
    fn refuse_parent(&self, ty: ResourceType, refused: RequestError) -> RequestError {
        let _ = ty;
        refused
    }

    /// The answer when the parent's type does not hold this type.
    fn not_a_child(&self, ty: ResourceType) -> RequestError {
        if !ty.is_creatable() {
            return RequestError::NotImplemented(
                format!("resource type {} is not implemented", ty.number()).into(),
            );
        }
        RequestError::InvalidChildType("this parent cannot hold that resource type".into())
    }

    /// A registration: CREATE that follows its own rules of access, content and storage
    /// (`<AE>`, `<remoteCSE>`). `None` for types created by the generic steps.
    async fn register(
        &self,
        _cse: &Cse,
        _req: &CreateRequest,
        _ctx: &RequestContext,
        _parent: &Ri,
        _now: Timestamp,
    ) -> Option<Result<Response, RequestError>> {
        None
    }

    /// The access decision for creating a resource of type `ty` under `target`.
    async fn authorize_create(
        &self,
        _cse: &Cse,
        access: &Enforcer<'_>,
        target: &Target,
        ty: ResourceType,
        _parent: &Ri,
    ) -> Result<AuditRule, RequestError> {
        access
            .authorize(target, AccessOperation::Create, Some(ty.number()))
            .await
    }

    /// Whether a resource of this type holds children of type `child`.
    fn allows_child(&self, parent: ResourceType, child: ResourceType) -> bool {
        parent.allows_child(child)
    }

    /// The resource representation in the content `pc` of a CREATE (`current` is
    /// `None`) or of an UPDATE of a resource with the attributes `current`: `pc` holds
    /// exactly one member, named by the type's root, whose value is an object.
    fn representation(
        &self,
        _config: &CseConfig,
        ty: ResourceType,
        pc: &Value,
        current: Option<&Map<String, Value>>,
    ) -> Result<Map<String, Value>, RequestError> {
        // An UPDATE names the resource by its own root (a `<mgmtObj>`'s specialization).
        crate::checks::resource_content(pc, ty, current.map(|attrs| ty.root_of(attrs)))
    }

    /// Checks content against the type's attribute policy.
    fn validate(
        &self,
        ty: ResourceType,
        phase: Phase,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        attrs::validate(ty, phase, content)
    }

    /// Refuses a child resource name this type reserves.
    fn check_child_name(&self, _rn: &str) -> Result<(), RequestError> {
        Ok(())
    }

    /// Content checks beyond the attribute policy, before anything else of a CREATE or
    /// UPDATE.
    fn check_content(&self, _content: &Map<String, Value>) -> Result<(), RequestError> {
        Ok(())
    }

    /// CREATE of a child that is not a node of the tree (`<contentInstance>`): the whole
    /// creation, content taken from `content`. `None` for types held as nodes.
    async fn create_entry(
        &self,
        _cse: &Cse,
        _req: &CreateRequest,
        _content: &mut Map<String, Value>,
        _parent: &Ri,
        _now: Timestamp,
    ) -> Option<Result<Response, RequestError>> {
        None
    }

    /// Work done before the tree is locked for a CREATE: compiling, verifying.
    async fn prepare(
        &self,
        _cse: &Cse,
        _req: &CreateRequest,
        _ctx: &RequestContext,
        _content: &Map<String, Value>,
        _parent: &Ri,
    ) -> Result<Prepared, RequestError> {
        Ok(Prepared::default())
    }

    /// Checks under the tree's write lock, before a CREATE writes anything.
    fn check_locked(
        &self,
        _cse: &Cse,
        _tree: &Tree,
        _req: &CreateRequest,
        _parent: &Ri,
    ) -> Result<(), RequestError> {
        Ok(())
    }

    /// Attributes the CSE gives a new resource before the content's.
    fn initial_attrs(&self, _attrs: &mut Map<String, Value>) {}

    /// Resources the CSE creates beside a new resource of this type, in the same durable
    /// write (the `<container>` of a `<locationPolicy>`), under the write lock before the
    /// state is derived; `attrs` are the new resource's, for the attributes naming them.
    fn companions(
        &self,
        _tree: &mut Tree,
        _new: &NewNode,
        _attrs: &mut Map<String, Value>,
    ) -> Result<Vec<Node>, RequestError> {
        Ok(Vec::new())
    }

    /// Resources outside its subtree that go when `node` is deleted or expires.
    fn linked(&self, _tree: &Tree, _node: &Node) -> Vec<Ri> {
        Vec::new()
    }

    /// The state derived from the attributes, fixing up those the CSE owns. In
    /// [`Mode::Write`] a bad value is refused; in [`Mode::Load`] the caller makes the
    /// resource grant nothing instead.
    fn derive(
        &self,
        _cx: &Derive,
        _ty: ResourceType,
        _attrs: &mut Map<String, Value>,
        _mode: Mode,
    ) -> Result<TypeState, RequestError> {
        Ok(TypeState::Plain)
    }

    /// The audit events of this type, if it is audited.
    fn audited(&self) -> Option<Audited> {
        None
    }

    /// Attributes sampled when the resource is retrieved rather than stored (the
    /// CSEBase's `currentTime`), added to `attrs` for a request of release `rvi` at
    /// `now`.
    fn add_sampled(&self, _attrs: &mut Map<String, Value>, _now: Timestamp, _rvi: &str) {}

    /// Refuses every UPDATE of this type.
    fn check_updatable(&self) -> Result<(), RequestError> {
        Ok(())
    }

    /// Rules of UPDATE beyond the attribute policy, checked before access control.
    fn check_update(
        &self,
        _cse: &Cse,
        _req: &Envelope,
        _ri: &Ri,
        _content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        Ok(())
    }

    /// Work done before the tree is locked for an UPDATE; a new state when it yields one.
    async fn prepare_update(
        &self,
        _cse: &Cse,
        _access: &crate::access::Enforcer<'_>,
        _ri: &Ri,
        _content: &Map<String, Value>,
    ) -> Result<Option<TypeState>, RequestError> {
        Ok(None)
    }

    /// The new state for an UPDATE of `node` with `content`, checked before anything
    /// changes. `None` keeps the state.
    fn rederive(
        &self,
        _cx: &Derive,
        _node: &Node,
        _content: &Map<String, Value>,
    ) -> Result<Option<Rederived>, RequestError> {
        Ok(None)
    }

    /// After an UPDATE of resource `ri` was written: `durable` when it reached the store
    /// (also taken when the request was dropped after enqueuing the write, which goes on).
    /// What the type did elsewhere for that UPDATE is kept, or undone, now.
    fn written(&self, _cse: &Cse, _ri: &Ri, _durable: bool) {}

    /// What the CSE does to resource `ri` of this type, under the tree's write lock,
    /// after its CREATE (`changed` is `None`) or after an UPDATE that applied `changed`,
    /// by `originator`: the instances it makes of it (`<flexContainerInstance>`), and the
    /// other resources it changes with it (the `srat` subscriptions of a
    /// `<crossResourceSubscription>`), with their writes and notifications. Anything
    /// that can refuse was checked before the lock (`prepare`, `companions`).
    fn instantiate(
        &self,
        _cse: &Cse,
        _tree: &mut Tree,
        _ri: &Ri,
        _changed: Option<&Map<String, Value>>,
        _originator: &str,
        _now: Timestamp,
    ) -> Result<Instantiated, RequestError> {
        Ok(Instantiated::default())
    }

    /// What an UPDATE of `node` stores, after the content was applied; `previous` holds
    /// the values the content replaced.
    fn write_update(&self, node: &mut Node, _previous: &Map<String, Value>) -> Written {
        Written {
            ops: vec![WriteOp::Upsert(node_row(node))],
            also_modified: &[],
        }
    }

    /// Rules of DELETE beyond access control, checked before it.
    fn check_delete(&self, _cse: &Cse, _req: &Envelope) -> Result<(), RequestError> {
        Ok(())
    }

    /// Whether a resource of this type is bound to the security association it was
    /// registered over (`identity.rs`).
    fn binds_identity(&self) -> bool {
        false
    }

    /// Whether the state is derived only once every stored resource is loaded (it
    /// refers to resources created later than itself).
    fn reload_last(&self) -> bool {
        false
    }

    /// The state of a stored resource at start-up. A value that no longer validates
    /// makes it `Plain`; `Err` only for a row that cannot be read at all.
    fn reload(&self, cx: &Derive, node: &mut Node, _row_body: &str) -> Result<TypeState, String> {
        match self.derive(cx, node.ty, &mut node.attrs, Mode::Load) {
            Ok(state) => Ok(state),
            Err(e) => {
                tracing::warn!(ri = %node.ri, reason = %e, "stored resource no longer validates; it grants nothing");
                Ok(TypeState::Plain)
            }
        }
    }
}

/// The type of a stored instance (`<contentInstance>` or `<timeSeriesInstance>`), from
/// its own `ty`.
pub(crate) fn instance_type(attrs: &Map<String, Value>) -> ResourceType {
    attrs
        .get("ty")
        .and_then(Value::as_u64)
        .and_then(ResourceType::from_number)
        .filter(|ty| ty.is_instance())
        .unwrap_or(ResourceType::ContentInstance)
}

/// The expiration time an UPDATE's `content` gives `node` (TS-0004 7.3.2.6: null is the
/// default lifetime from `now`), within its parent's; `None` when it has no `et`. One in
/// the past, or earlier than a child's, is 4000. Checked again under the write lock; a
/// type that sends requests before that (`prepare_update`) checks it first, so an UPDATE
/// that fails anyway sends nothing.
pub(crate) fn new_expiration(
    tree: &Tree,
    node: &Node,
    content: &Map<String, Value>,
    now: Timestamp,
    config: &CseConfig,
) -> Result<Option<Timestamp>, RequestError> {
    let Some(v) = content.get("et") else {
        return Ok(None);
    };
    let et = match v {
        Value::Null => now.plus_seconds(config.default_lifetime_secs),
        v => v
            .as_str()
            .and_then(Timestamp::parse)
            .ok_or_else(|| RequestError::bad_request("bad et"))?,
    };
    if et <= now {
        return Err(RequestError::bad_request("expirationTime is in the past"));
    }
    let parent_et = node
        .pi
        .as_ref()
        .and_then(|p| tree.get(p))
        .and_then(|p| p.et);
    let et = parent_et.map_or(et, |p| et.min(p));
    let child_later = node
        .children
        .iter()
        .filter_map(|c| tree.get(c))
        .any(|c| c.et.is_some_and(|c| c > et))
        || node
            .container()
            .is_some_and(|s| s.instances.iter().any(|i| i.et.is_some_and(|e| e > et.0)));
    if child_later {
        return Err(RequestError::bad_request(
            "expirationTime earlier than a child's",
        ));
    }
    Ok(Some(et))
}

/// Resource ID → the lock its UPDATEs take turns on ([`Cse`]'s `crs_updates`).
pub(crate) type UpdateTurns =
    std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

/// The attributes of `attrs` after `content` is applied (a null removes).
pub(crate) fn merged(
    attrs: &Map<String, Value>,
    content: &Map<String, Value>,
) -> Map<String, Value> {
    let mut merged = attrs.clone();
    for (k, v) in content {
        match v {
            Value::Null => merged.remove(k),
            v => merged.insert(k.clone(), v.clone()),
        };
    }
    merged
}
