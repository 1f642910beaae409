//! The announced variants (`<AEAnnc>`, `<containerAnnc>`, …; TS-0001 9.6.26): resources
//! another CSE creates here to make its own visible. They differ from each other only by
//! data (`bastion_proto::types::announced`, `attrs::announced`), so one kind serves them
//! all. What is particular: only a CSE creates one, its `lnk` points into that CSE, and it
//! sits under that CSE's `<remoteCSE>` or `<CSEBaseAnnc>`, or under an announced resource
//! there; only that CSE changes it afterwards. A `<CSEBaseAnnc>` is created by a CSE
//! registered here or by one a registree lists in its `dcse` (announcing through it). Access control is as for every type (the `<remoteCSE>`'s policy,
//! by default its registree's). A `<mgmtObjAnnc>`, a `<flexContainerAnnc>` and a
//! `<flexContainerInstanceAnnc>` (under a `<flexContainerAnnc>` only, named by its
//! parent's) are named by their specialization (`m2m:fwrA`, `cod:binShAnnc`), which also
//! decides the attributes they hold beside their original's shared ones.
//!
//! It also bounds the instance copies (`<contentInstanceAnnc>`, `<timeSeriesInstanceAnnc>`,
//! `<flexContainerInstanceAnnc>`) a parent copy holds: the original's eviction never
//! reaches them, so a new one evicts the oldest under its parent in the same write, by
//! the parent copy's `mni` and `mbs` (over the `cs` the copies carry) when it carries
//! them, never more than [`MAX_INSTANCE_COPIES`] (docs/decisions.md).

use super::container::Limits;
use super::{flex_container, remove_node, Instantiated, ResourceKind};
use crate::access::Enforcer;
use crate::audit::AuditRule;
use crate::checks::{CreateRequest, Envelope};
use crate::originator::{owner, Owner};
use crate::resolve::Target;
use crate::tree::{Ri, Tree};
use crate::{Cse, CseConfig, RequestContext};
use async_trait::async_trait;
use bastion_policy::AccessOperation;
use bastion_proto::attrs::{self, mgmt, Phase};
use bastion_proto::flex::Specialization;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType};
use bastion_store::WriteOp;
use serde_json::{Map, Value};
use std::sync::Arc;

pub(super) struct Announced;

/// The CSE-ID (SP-relative) of the CSE whose resource `lnk` names, if it names one
/// (`/id-mn/cnt1`, or the absolute form under this SP).
fn linked_cse<'a>(sp_id: &str, lnk: &'a str) -> Option<&'a str> {
    let sp_relative = lnk.strip_prefix(sp_id).unwrap_or(lnk);
    let rest = sp_relative.strip_prefix('/')?;
    let (cse, resource) = rest.split_once('/')?;
    (!cse.is_empty() && !resource.is_empty()).then(|| &sp_relative[..cse.len() + 1])
}

/// The CSE whose place `ri` is, through announced parents: the `csi` of a
/// `<remoteCSE>`, or the CSE a `<CSEBaseAnnc>` links to.
fn announcing_cse_above(sp_id: &str, tree: &Tree, ri: &Ri) -> Option<String> {
    let mut node = tree.get(ri)?;
    loop {
        match node.ty {
            ResourceType::RemoteCse => {
                return node
                    .attrs
                    .get("csi")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }
            ResourceType::Announced(CSE_BASE) => {
                let lnk = node.attrs.get("lnk").and_then(Value::as_str)?;
                return linked_cse(sp_id, lnk).map(str::to_owned);
            }
            ResourceType::Announced(_) => node = tree.get(node.pi.as_ref()?)?,
            _ => return None,
        }
    }
}

/// The original number of `<CSEBaseAnnc>`.
const CSE_BASE: u16 = 5;

/// The `<CSEBaseAnnc>` under the CSEBase that represents the CSE `csi` (SP-relative): it
/// goes with that CSE's `<remoteCSE>` (`types/remote_cse.rs`).
pub(super) fn cse_base_copy_of(tree: &Tree, csi: &str) -> Option<Ri> {
    let base = tree.get(&tree.base)?;
    base.children
        .iter()
        .filter_map(|c| tree.get(c))
        .find(|c| {
            c.ty == ResourceType::Announced(CSE_BASE)
                && c.attrs
                    .get("lnk")
                    .and_then(Value::as_str)
                    .map(sp_relative)
                    .and_then(|lnk| lnk.strip_prefix(csi))
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .map(|c| c.ri.clone())
}

/// `lnk` without the SP-ID of its absolute form (`//sp/id-mn/x` is `/id-mn/x`).
fn sp_relative(lnk: &str) -> &str {
    match lnk.strip_prefix("//") {
        Some(rest) => rest.find('/').map_or(lnk, |i| &rest[i..]),
        None => lnk,
    }
}

/// The name of the one member of a CREATE's or UPDATE's content (4000 when there is not
/// exactly one; [`crate::checks::resource_content`] says why).
fn sole_root(pc: &Value) -> Result<&str, RequestError> {
    match pc.as_object().map(|o| (o.len(), o.keys().next())) {
        Some((1, Some(root))) => Ok(root),
        _ => Err(RequestError::bad_request(
            "content must hold exactly one resource",
        )),
    }
}

/// Refuses a specializing attribute (`mgd`, `cnd`) that differs from `expected`, and
/// sets it in a CREATE that leaves it out: the copy is named by it (TS-0004 8.2.4,
/// 7.4.37).
fn settle(
    content: &mut Map<String, Value>,
    name: &str,
    expected: Value,
    create: bool,
) -> Result<(), RequestError> {
    match content.get(name) {
        Some(v) if *v != expected => Err(RequestError::bad_request(format!(
            "{name} must be {expected}, the specialization this resource is named by"
        ))),
        None if create => {
            content.insert(name.to_owned(), expected);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The specialization of a `<mgmtObjAnnc>`: the one whose announced root (`m2m:fwrA`)
/// names a CREATE, the resource's own for an UPDATE, whose content must be named by it.
fn mgmt_spec(
    root: &str,
    current: Option<&Map<String, Value>>,
    content: &mut Map<String, Value>,
) -> Result<&'static mgmt::Spec, RequestError> {
    let spec = match current {
        None => mgmt::by_announced_root(root),
        Some(attrs) => attrs
            .get("mgd")
            .and_then(Value::as_u64)
            .and_then(mgmt::spec),
    }
    .ok_or_else(|| {
        RequestError::bad_request(
            "content root must be the announced name of a mgmtObj specialization (m2m:fwrA, ...)",
        )
    })?;
    let expected = mgmt::announced_root(spec);
    if root != expected {
        return Err(RequestError::bad_request(format!(
            "content root must be {expected}"
        )));
    }
    settle(content, "mgd", Value::from(spec.mgd), current.is_none())?;
    Ok(spec)
}

/// The specialization whose announced name (`cod:binShAnnc`) is `root`, or 4125.
fn announced_spec<'a>(
    config: &'a CseConfig,
    root: &str,
) -> Result<&'a Arc<Specialization>, RequestError> {
    config.flex.by_announced_root(root).ok_or_else(|| {
        RequestError::SpecializationSchemaNotFound(
            "no specialization is announced under this name".into(),
        )
    })
}

/// The specialization of a `<flexContainerAnnc>`: the one its `cnd` names (4125 when
/// unknown), else in a CREATE the one whose announced name (`cod:binShAnnc`) is the
/// content's root, which must be that specialization's announced name. A
/// `<flexContainerInstanceAnnc>` has no `cnd`: its name says it, and must be its
/// parent's ([`Announced::prepare`]); it is never updated, as its original.
fn flex_spec(
    config: &CseConfig,
    ty: ResourceType,
    root: &str,
    current: Option<&Map<String, Value>>,
    content: &mut Map<String, Value>,
) -> Result<Arc<Specialization>, RequestError> {
    if ty.original() == Some(ResourceType::FlexContainerInstance) {
        if current.is_some() {
            return Err(RequestError::not_allowed(
                "an announced flexContainerInstance is never updated",
            ));
        }
        return announced_spec(config, root).cloned();
    }
    let cnd = match current {
        Some(attrs) => flex_container::cnd_of(attrs),
        None => match content.get("cnd") {
            None => Some(announced_spec(config, root)?.cnd.as_str()),
            Some(Value::String(c)) => Some(c.as_str()),
            Some(_) => return Err(RequestError::bad_request("attribute cnd must be a string")),
        },
    };
    let spec = Arc::clone(flex_container::specialization(config, cnd)?);
    let expected = spec.announced_root();
    if root != expected {
        return Err(RequestError::bad_request(format!(
            "content root must be {expected}"
        )));
    }
    settle(
        content,
        "cnd",
        Value::from(spec.cnd.as_str()),
        current.is_none(),
    )?;
    Ok(spec)
}

/// Checks a `<flexContainerAnnc>`'s or `<flexContainerInstanceAnnc>`'s content: the
/// attributes of every such variant by its policy, every other one a custom attribute
/// of `spec` of the right kind (TS-0004 7.4.37); a copy holds only those the original
/// announces, so none is mandatory.
fn check_flex(
    ty: ResourceType,
    spec: &Specialization,
    phase: Phase,
    content: &Map<String, Value>,
) -> Result<(), RequestError> {
    let (own, custom): (Map<String, Value>, Map<String, Value>) = content
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| attrs::is_attribute(ty, k));
    if let Some(name) = custom.keys().find(|k| spec.attribute(k).is_none()) {
        return Err(RequestError::bad_request(format!(
            "unknown attribute {name} for {}",
            spec.announced_root()
        )));
    }
    attrs::validate(ty, phase, &own)?;
    spec.validate(Phase::Update, &custom)
}

impl Cse {
    /// Whether the CSE `csi` may hold a `<CSEBaseAnnc>` here: it is registered here, or
    /// a registree lists it in its `dcse`, so that its requests reach this CSE relayed
    /// on that registree's association (`identity.rs` has bound them to it already).
    /// The registrar's `dcse` vouches for nothing here (docs/decisions.md).
    fn may_announce_cse_base(&self, csi: &str) -> bool {
        let registrar = self.config.registrar.as_deref();
        self.peers(self.now()).iter().any(|p| {
            p.csi == csi || (Some(p.csi.as_str()) != registrar && p.dcse.iter().any(|d| d == csi))
        })
    }

    /// The announcing CSE of a request on an announced resource: `fr` as a CSE-ID, or
    /// 4005 for any other originator.
    fn announcing_cse<'a>(&self, fr: &'a str) -> Result<&'a str, RequestError> {
        match owner(&self.config.sp_id, fr) {
            Owner::Cse(cse) => Ok(cse),
            _ => Err(RequestError::not_allowed(
                "only the CSE hosting the original creates or changes an announced resource",
            )),
        }
    }
}

/// Whether an `acpi` entry names a policy of another CSE (`/id-mn/acp1`, or absolute):
/// one the announcing CSE copied from its original.
fn foreign_policy(config: &CseConfig, id: &str) -> bool {
    let sp_relative = id.strip_prefix(config.sp_id.as_str()).unwrap_or(id);
    sp_relative.starts_with("//")
        || sp_relative
            .strip_prefix('/')
            .and_then(|rest| rest.split('/').next())
            .is_some_and(|cse| cse != config.cse_id.trim_start_matches('/'))
}

/// Instance copies one announced parent holds at most, whatever its `mni`: the
/// original's eviction never reaches its copies, so without it one originator updating
/// one announced `<flexContainer>` would grow this CSE's store without end.
pub(crate) const MAX_INSTANCE_COPIES: u64 = 1000;

/// Whether `ty` is the copy of an instance (`<contentInstanceAnnc>`,
/// `<timeSeriesInstanceAnnc>`, `<flexContainerInstanceAnnc>`).
fn is_instance_copy(ty: ResourceType) -> bool {
    ty.original().is_some_and(ResourceType::is_instance)
}

/// The limits of the instance copies under `parent` (a copy of an instance holder): its
/// `mni` and `mbs` when the announcing CSE sent them, the count never above
/// [`MAX_INSTANCE_COPIES`].
fn copy_limits(parent: &crate::tree::Node) -> Limits {
    let limits = Limits::of(&parent.attrs);
    Limits {
        mni: Some(
            limits
                .mni
                .map_or(MAX_INSTANCE_COPIES, |m| m.min(MAX_INSTANCE_COPIES)),
        ),
        ..limits
    }
}

/// Removes the oldest instance copies of type `ty` under `parent` until those left
/// (`newest` among them, never removed) are within the parent's [`copy_limits`], by
/// count and by the `cs` they carry: the eviction of the original's instances, done
/// here for their copies. As an evicted `<contentInstance>`, an evicted copy notifies
/// nothing.
fn evict_copies(tree: &mut Tree, parent: &Ri, ty: ResourceType, newest: &Ri) -> Vec<WriteOp> {
    let Some(node) = tree.get(parent) else {
        return Vec::new();
    };
    let limits = copy_limits(node);
    let mut copies: Vec<(i64, Ri, u64)> = node
        .children
        .iter()
        .filter_map(|c| tree.get(c))
        .filter(|c| c.ty == ty)
        .map(|c| {
            let cs = c.attrs.get("cs").and_then(Value::as_u64).unwrap_or(0);
            (c.seq, c.ri.clone(), cs)
        })
        .collect();
    copies.sort_unstable_by_key(|(seq, ..)| *seq);
    let mut bytes = copies
        .iter()
        .fold(0u64, |sum, (.., cs)| sum.saturating_add(*cs));
    let mut ops = Vec::new();
    let mut left = copies.len() as u64;
    for (_, ri, cs) in copies {
        if ri == *newest || !limits.exceeded(left, bytes) {
            break;
        }
        ops.extend(remove_node(tree, &ri));
        left -= 1;
        bytes -= cs;
    }
    ops
}

#[async_trait]
impl ResourceKind for Announced {
    /// A copy's `acpi` as the announcing CSE sent it may name the original's policies
    /// there (ACME does): those are not this CSE's and grant nothing here, so they are
    /// left out; the copy is governed by the entries naming this CSE's policies, or by
    /// default by its creator, the announcing CSE (docs/decisions.md).
    fn representation(
        &self,
        config: &CseConfig,
        ty: ResourceType,
        pc: &Value,
        current: Option<&Map<String, Value>>,
    ) -> Result<Map<String, Value>, RequestError> {
        let specialized = ty.original().filter(|o| {
            matches!(
                o,
                ResourceType::MgmtObj
                    | ResourceType::FlexContainer
                    | ResourceType::FlexContainerInstance
            )
        });
        let mut content = match specialized {
            // Named by the specialization: checked below, once it is known.
            Some(_) => crate::checks::resource_content(pc, ty, Some(sole_root(pc)?))?,
            None => {
                crate::checks::resource_content(pc, ty, current.map(|attrs| ty.root_of(attrs)))?
            }
        };
        // A copy's CREATE may carry the original's absent attributes as null (ACME's
        // `et`): no value, as for any optional attribute of a CREATE.
        if current.is_none() {
            content.retain(|_, v| !v.is_null());
        }
        if let Some(Value::Array(acpi)) = content.get_mut("acpi") {
            acpi.retain(|id| !id.as_str().is_some_and(|id| foreign_policy(config, id)));
            if acpi.is_empty() {
                content.remove("acpi");
            }
        }
        let phase = if current.is_some() {
            Phase::Update
        } else {
            Phase::Create
        };
        let root = sole_root(pc)?;
        match specialized {
            Some(ResourceType::MgmtObj) => {
                let spec = mgmt_spec(root, current, &mut content)?;
                attrs::announced::validate_mgmt(spec, phase, &content)?;
            }
            Some(_) => {
                let spec = flex_spec(config, ty, root, current, &mut content)?;
                check_flex(ty, &spec, phase, &content)?;
            }
            None => {}
        }
        Ok(content)
    }

    /// A `<mgmtObjAnnc>`, `<flexContainerAnnc>` or `<flexContainerInstanceAnnc>` was
    /// checked whole, its specialization's attributes included, in
    /// [`Self::representation`].
    fn validate(
        &self,
        ty: ResourceType,
        phase: Phase,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        match ty.original() {
            Some(
                ResourceType::MgmtObj
                | ResourceType::FlexContainer
                | ResourceType::FlexContainerInstance,
            ) => Ok(()),
            _ => attrs::validate(ty, phase, content),
        }
    }

    async fn prepare(
        &self,
        cse: &Cse,
        req: &CreateRequest,
        _ctx: &RequestContext,
        content: &Map<String, Value>,
        parent: &Ri,
    ) -> Result<super::Prepared, RequestError> {
        let announcer = cse.announcing_cse(&req.fr)?;
        let lnk = content.get("lnk").and_then(Value::as_str).unwrap_or("");
        if linked_cse(&cse.config.sp_id, lnk) != Some(announcer) {
            return Err(RequestError::bad_request(
                "lnk must name a resource of the announcing CSE",
            ));
        }
        let registered =
            req.ty == ResourceType::Announced(CSE_BASE) && cse.may_announce_cse_base(announcer);
        let tree = cse.tree.read();
        let place = if req.ty == ResourceType::Announced(CSE_BASE) {
            // Its own `<CSEBaseAnnc>`, once per CSE, under the CSEBase.
            let taken = cse_base_copy_of(&tree, announcer).is_some();
            if taken {
                return Err(RequestError::Conflict(
                    "this CSE's CSEBase is announced here already".into(),
                ));
            }
            registered.then(|| announcer.to_owned())
        } else {
            announcing_cse_above(&cse.config.sp_id, &tree, parent)
        };
        if place.as_deref() != Some(announcer) {
            return Err(RequestError::not_allowed(
                "an announced resource is created under the announcing CSE's remoteCSE or CSEBaseAnnc",
            ));
        }
        if req.ty.original() == Some(ResourceType::FlexContainerInstance) {
            // Named by its parent's specialization, as the original by its container's.
            let cnd = tree
                .get(parent)
                .and_then(|p| flex_container::cnd_of(&p.attrs));
            let expected = cse.config.flex.root_of(req.ty, cnd);
            if sole_root(&req.pc)? != expected {
                return Err(RequestError::bad_request(format!(
                    "content root must be {expected}"
                )));
            }
        }
        Ok(super::Prepared::default())
    }

    /// An instance copy under a parent copy whose `mni` is 0 is refused, as the
    /// original instance is (TS-0004 7.4.7.2).
    fn check_locked(
        &self,
        _cse: &Cse,
        tree: &Tree,
        req: &CreateRequest,
        parent: &Ri,
    ) -> Result<(), RequestError> {
        let mni = tree
            .get(parent)
            .and_then(|p| p.attrs.get("mni"))
            .and_then(Value::as_u64);
        if is_instance_copy(req.ty) && mni == Some(0) {
            return Err(RequestError::NotAcceptable(
                "the announced parent's maxNrOfInstances is 0".into(),
            ));
        }
        Ok(())
    }

    /// A new instance copy evicts the oldest ones under its parent copy in the same
    /// write ([`evict_copies`]).
    fn instantiate(
        &self,
        _cse: &Cse,
        tree: &mut Tree,
        ri: &Ri,
        changed: Option<&Map<String, Value>>,
        _originator: &str,
        _now: Timestamp,
    ) -> Result<Instantiated, RequestError> {
        let Some(node) = tree
            .get(ri)
            .filter(|n| changed.is_none() && is_instance_copy(n.ty))
        else {
            return Ok(Instantiated::default());
        };
        let (ty, parent) = (node.ty, node.pi.clone());
        let ops = match parent {
            Some(parent) => evict_copies(tree, &parent, ty, ri),
            None => Vec::new(),
        };
        Ok(Instantiated {
            ops,
            ..Instantiated::default()
        })
    }

    /// A registered CSE, or one a registree fronts (`dcse`), announces its CSEBase under
    /// this CSE's, where the CSEBase's
    /// policy would let it create nothing (docs/decisions.md); every other copy is decided
    /// like any CREATE.
    async fn authorize_create(
        &self,
        cse: &Cse,
        access: &Enforcer<'_>,
        target: &Target,
        ty: ResourceType,
        parent: &Ri,
    ) -> Result<AuditRule, RequestError> {
        if ty == ResourceType::Announced(CSE_BASE) {
            let registered = match owner(&cse.config.sp_id, access.originator()) {
                Owner::Cse(c) => cse.may_announce_cse_base(c),
                _ => false,
            };
            if registered && *parent == cse.tree.read().base {
                return Ok(AuditRule::Registration);
            }
        }
        access
            .authorize(target, AccessOperation::Create, Some(ty.number()))
            .await
    }

    fn check_update(
        &self,
        cse: &Cse,
        req: &Envelope,
        ri: &Ri,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        let announcer = cse.announcing_cse(&req.fr)?;
        let tree = cse.tree.read();
        let node = tree
            .get(ri)
            .ok_or_else(|| RequestError::not_found("no such resource"))?;
        let current = node.attrs.get("lnk").and_then(Value::as_str).unwrap_or("");
        if linked_cse(&cse.config.sp_id, current) != Some(announcer) {
            return Err(RequestError::not_allowed(
                "only the CSE hosting the original changes an announced resource",
            ));
        }
        match content.get("lnk").and_then(Value::as_str) {
            // `INACTIVE` marks an S-type AE's copy whose AE deregistered (TS-0001 10.2.2.3).
            Some(lnk)
                if lnk != "INACTIVE" && linked_cse(&cse.config.sp_id, lnk) != Some(announcer) =>
            {
                Err(RequestError::bad_request(
                    "lnk must name a resource of the announcing CSE",
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{copy_limits, evict_copies, linked_cse, MAX_INSTANCE_COPIES};
    use crate::tree::{Node, Ri, Tree};
    use bastion_proto::ResourceType;
    use bastion_store::WriteOp;
    use serde_json::{json, Value};

    fn parent_copy(attrs: Value) -> Node {
        let Value::Object(attrs) = attrs else {
            unreachable!()
        };
        let ty = ResourceType::Container.announced().unwrap();
        Node::new(
            ty,
            "cntA1",
            None,
            "data".into(),
            "/data".into(),
            1,
            attrs,
            None,
            None,
        )
    }

    #[test]
    fn instance_copies_are_bounded_by_the_parents_mni_and_never_beyond_the_hard_limit() {
        let limits = |attrs| copy_limits(&parent_copy(attrs));
        assert_eq!(limits(json!({})).mni, Some(MAX_INSTANCE_COPIES));
        assert_eq!(limits(json!({"mni": 2})).mni, Some(2));
        assert_eq!(
            limits(json!({"mni": MAX_INSTANCE_COPIES + 1})).mni,
            Some(MAX_INSTANCE_COPIES)
        );
        assert_eq!(limits(json!({"mbs": 10})).mbs, Some(10));
        assert!(limits(json!({})).exceeded(MAX_INSTANCE_COPIES + 1, 0));
        assert!(!limits(json!({})).exceeded(MAX_INSTANCE_COPIES, u64::MAX));
    }

    #[test]
    fn a_parent_copy_without_mni_keeps_at_most_the_hard_limit_of_instance_copies() {
        let base = Node::new(
            ResourceType::CseBase,
            "cb",
            None,
            "cse-in".into(),
            "cse-in".into(),
            0,
            Default::default(),
            None,
            None,
        );
        let mut tree = Tree::new(base, 1);
        let mut parent = parent_copy(json!({}));
        parent.pi = Some(Ri::from("cb"));
        tree.insert(parent);
        let cin = ResourceType::ContentInstance.announced().unwrap();
        let count = MAX_INSTANCE_COPIES as i64 + 1;
        for seq in 1..=count {
            let ri = format!("cinA{seq}");
            let (pi, rn, path) = (Some(Ri::from("cntA1")), ri.clone(), format!("/data/{ri}"));
            tree.insert(Node::new(
                cin,
                &ri,
                pi,
                rn,
                path,
                seq + 1,
                Default::default(),
                None,
                None,
            ));
        }
        let newest = Ri::from(format!("cinA{count}").as_str());
        let ops = evict_copies(&mut tree, &Ri::from("cntA1"), cin, &newest);
        assert!(
            matches!(ops.as_slice(), [WriteOp::Delete { ri }] if ri == "cinA1"),
            "{ops:?}"
        );
        assert!(tree.get("cinA1").is_none());
        assert_eq!(
            tree.get("cntA1").unwrap().children.len() as u64,
            MAX_INSTANCE_COPIES
        );
        // Within the limit now: the next check removes nothing.
        assert!(evict_copies(&mut tree, &Ri::from("cntA1"), cin, &newest).is_empty());
    }

    #[test]
    fn ts0001_9_6_26_lnk_names_a_resource_of_a_cse() {
        assert_eq!(linked_cse("//sp", "/id-mn/cnt1"), Some("/id-mn"));
        assert_eq!(linked_cse("//sp", "//sp/id-mn/a/b"), Some("/id-mn"));
        for bad in [
            "/id-mn",
            "id-mn/cnt1",
            "//other/id-mn/x",
            "/id-mn/",
            "//sp/id-mn",
            "",
        ] {
            assert_eq!(linked_cse("//sp", bad), None, "{bad}");
        }
    }
}
