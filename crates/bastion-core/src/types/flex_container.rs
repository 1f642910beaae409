//! `<flexContainer>` (TS-0001 9.6.35; TS-0004 7.4.37) and `<flexContainerInstance>`
//! (Release 4): a container whose content is the custom attributes of a specialization,
//! and the copies of that content the CSE keeps.
//!
//! The specialization comes from the `cnd` through the CSE's registry
//! (`bastion_proto::flex`, `CseConfig::flex`): it names the member the resource is
//! serialized under ([`root_of`]) and checks the custom attributes of every CREATE and
//! UPDATE. A `cnd` the registry does not know is 4125 (SPECIALIZATION_SCHEMA_NOT_FOUND).
//!
//! Instances (docs/decisions.md, "flexContainerInstance"): while any of `mni`, `mbs`,
//! `mia` is set, the CSE makes a `<flexContainerInstance>` holding the custom
//! attributes, `lbl`, `st` and `cs` when the flexContainer is created and whenever an
//! UPDATE changes a custom attribute. They are made, limited and evicted by the
//! container's machinery (`content_instance::insert_instance`, `container::evict_for`):
//! the one home of instance limits. An instance of an announced flexContainer takes its
//! `at` (and of its `aa` the custom attributes) and is announced under the
//! flexContainer's copies once durable (`Cse::announce_instance`; docs/decisions.md).

use super::container::{bump_state_tag, container_row, write_limits};
use super::content_instance::{insert_instance, InstanceRules};
use super::{content_size, merged, Derive, Instantiated, Rederived, ResourceKind, Written};
use crate::authz_state::Mode;
use crate::tree::{ContainerState, Node, Ri, Tree, TypeState};
use crate::{Cse, CseConfig, Notices};
use bastion_proto::attrs::{self, Phase};
use bastion_proto::flex::{self, Specialization};
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType};
use bastion_store::WriteOp;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The limits that make the CSE keep instances.
const LIMITS: [&str; 3] = ["mni", "mbs", "mia"];

pub(super) struct FlexContainer;

/// The specialization `cnd` names, or 4125.
pub(super) fn specialization<'a>(
    config: &'a CseConfig,
    cnd: Option<&str>,
) -> Result<&'a Arc<Specialization>, RequestError> {
    let cnd = cnd.ok_or_else(|| RequestError::bad_request("mandatory attribute cnd missing"))?;
    config.flex.by_cnd(cnd).ok_or_else(|| {
        RequestError::SpecializationSchemaNotFound(
            "no specialization is known for this containerDefinition".into(),
        )
    })
}

pub(super) fn cnd_of(attrs: &Map<String, Value>) -> Option<&str> {
    attrs.get("cnd").and_then(Value::as_str)
}

/// `cs`: the sum of the sizes of the custom attributes (TS-0004 7.4.37.2.1), each
/// measured as a `con` is.
fn custom_size(spec: &Specialization, attrs: &Map<String, Value>) -> u64 {
    spec.custom(attrs).map(|(_, v)| content_size(v)).sum()
}

/// Whether the CSE keeps instances of a flexContainer with these attributes.
fn keeps_instances(attrs: &Map<String, Value>) -> bool {
    LIMITS
        .iter()
        .any(|l| attrs.get(*l).is_some_and(|v| !v.is_null()))
}

/// `mbs` must leave room for the content (else no instance could ever be kept).
fn check_room(spec: &Specialization, attrs: &Map<String, Value>) -> Result<(), RequestError> {
    let mbs = attrs.get("mbs").and_then(Value::as_u64);
    if mbs.is_some_and(|mbs| mbs < custom_size(spec, attrs)) {
        return Err(RequestError::bad_request(
            "maxByteSize is smaller than the custom attributes",
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl ResourceKind for FlexContainer {
    /// The content's one member must be the root of the specialization its `cnd` (the
    /// resource's own, for an UPDATE) names, and its custom attributes must be that
    /// specialization's (TS-0004 7.4.37.2.1, 7.4.37.2.3).
    fn representation(
        &self,
        config: &CseConfig,
        _ty: ResourceType,
        pc: &Value,
        current: Option<&Map<String, Value>>,
    ) -> Result<Map<String, Value>, RequestError> {
        let pc = pc
            .as_object()
            .ok_or_else(|| RequestError::bad_request("content missing"))?;
        let mut members = pc.iter();
        let (Some((root, body)), None) = (members.next(), members.next()) else {
            return Err(RequestError::bad_request(
                "content must hold exactly one resource",
            ));
        };
        let body = body
            .as_object()
            .ok_or_else(|| RequestError::bad_request("resource content must be an object"))?;
        let (phase, cnd) = match current {
            None => {
                if body.get("cnd").is_some_and(|c| !c.is_string()) {
                    return Err(RequestError::bad_request("attribute cnd must be a string"));
                }
                (Phase::Create, cnd_of(body))
            }
            Some(attrs) => (Phase::Update, cnd_of(attrs)),
        };
        let spec = specialization(config, cnd)?;
        if *root != spec.root {
            return Err(RequestError::bad_request(format!(
                "content root must be {}",
                spec.root
            )));
        }
        spec.validate(phase, body)?;
        Ok(body.clone())
    }

    /// The attributes every flexContainer has, by its attribute policy; the custom
    /// ones were checked against the specialization in [`Self::representation`].
    fn validate(
        &self,
        ty: ResourceType,
        phase: Phase,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        let common: Map<String, Value> = content
            .iter()
            .filter(|(k, _)| flex::is_common(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        attrs::validate(ty, phase, &common)
    }

    fn check_child_name(&self, rn: &str) -> Result<(), RequestError> {
        super::container::check_instance_holder_child_name(rn)
    }

    fn initial_attrs(&self, attrs: &mut Map<String, Value>) {
        super::container::initial_instance_counters(attrs);
    }

    /// An empty instance index, and `cs` from the custom attributes. A stored resource
    /// whose specialization is no longer known keeps its stored `cs`.
    fn derive(
        &self,
        cx: &Derive,
        _ty: ResourceType,
        attrs: &mut Map<String, Value>,
        mode: Mode,
    ) -> Result<TypeState, RequestError> {
        match specialization(cx.config, cnd_of(attrs)) {
            Ok(spec) => {
                if mode == Mode::Write {
                    check_room(spec, attrs)?;
                }
                let cs = custom_size(spec, attrs);
                attrs.insert("cs".into(), Value::from(cs));
            }
            Err(e) if mode == Mode::Write => return Err(e),
            Err(_) => {}
        }
        Ok(TypeState::Container(Box::<ContainerState>::default()))
    }

    /// Refused before anything changes when `mbs` would not hold the new content.
    fn rederive(
        &self,
        cx: &Derive,
        node: &Node,
        content: &Map<String, Value>,
    ) -> Result<Option<Rederived>, RequestError> {
        let spec = specialization(cx.config, cnd_of(&node.attrs))?;
        check_room(spec, &merged(&node.attrs, content))?;
        Ok(None)
    }

    /// Every UPDATE bumps `st` and recomputes `cs`; lowered limits evict at once.
    fn write_update(&self, node: &mut Node, _previous: &Map<String, Value>) -> Written {
        bump_state_tag(node);
        Written {
            ops: write_limits(node),
            also_modified: &["st", "cs"],
        }
    }

    /// The instance of TS-0001 9.6.35 (Release 4): made while a limit is set, at
    /// CREATE and when an UPDATE changed a custom attribute; `mni` 0 keeps none. After
    /// an UPDATE the row is stored again with the new `cs` and counters. The instance
    /// of an announced flexContainer carries its `at` (the targets it is announced to
    /// after this request) and, of its `aa`, the custom attributes.
    fn instantiate(
        &self,
        cse: &Cse,
        tree: &mut Tree,
        ri: &Ri,
        changed: Option<&Map<String, Value>>,
        originator: &str,
        now: Timestamp,
    ) -> Result<Instantiated, RequestError> {
        let Some(node) = tree.get_mut(ri) else {
            return Ok(Instantiated::default());
        };
        let spec = specialization(&cse.config, cnd_of(&node.attrs))?.clone();
        // `cs` follows the content after an UPDATE too (TS-0004 7.4.37.2.3).
        let cs = custom_size(&spec, &node.attrs);
        node.attrs.insert("cs".into(), Value::from(cs));
        let content_changed = changed.is_none_or(|c| c.keys().any(|k| spec.attribute(k).is_some()));
        let zero = node.attrs.get("mni").and_then(Value::as_u64) == Some(0);
        let (mut ops, notices, instance) =
            if keeps_instances(&node.attrs) && content_changed && !zero {
                let mut content: Map<String, Value> = spec
                    .custom(&node.attrs)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if let Some(lbl) = node.attrs.get("lbl") {
                    content.insert("lbl".into(), lbl.clone());
                }
                content.insert("org".into(), Value::String(originator.to_owned()));
                content.extend(announcement(&spec, &node.attrs));
                let rules = FlexContainerInstance;
                let made = insert_instance(&rules, cse, tree, ri, content, cs, originator, now)?;
                (made.ops, made.notices, Some(made.attrs))
            } else {
                (Vec::new(), Notices::default(), None)
            };
        if changed.is_some() {
            if let Some(node) = tree.get_mut(ri) {
                ops.push(WriteOp::Upsert(container_row(node)));
            }
        }
        Ok(Instantiated {
            ops,
            notices,
            instance,
        })
    }
}

/// What an instance of a flexContainer with `attrs` takes of its announcement: its `at`,
/// the CSEs its copies go to (under the flexContainer's copies there), and of its `aa`
/// the custom attributes (the others are not the instance's). Nothing when it is not
/// announced.
fn announcement(spec: &Specialization, attrs: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(at) = attrs
        .get("at")
        .filter(|at| at.as_array().is_some_and(|a| !a.is_empty()))
    else {
        return out;
    };
    out.insert("at".into(), at.clone());
    let aa: Vec<Value> = attrs
        .get("aa")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|name| name.as_str().is_some_and(|n| spec.attribute(n).is_some()))
        .cloned()
        .collect();
    if !aa.is_empty() {
        out.insert("aa".into(), Value::Array(aa));
    }
    out
}

pub(super) struct FlexContainerInstance;

impl InstanceRules for FlexContainerInstance {
    fn ty(&self) -> ResourceType {
        ResourceType::FlexContainerInstance
    }

    /// It takes the state tag the flexContainer's CREATE or UPDATE set.
    fn bumps_state_tag(&self) -> bool {
        false
    }
}

impl ResourceKind for FlexContainerInstance {
    /// Instances are made by the hosting CSE only.
    fn check_creatable(&self) -> Result<(), RequestError> {
        Err(RequestError::not_allowed(
            "flexContainerInstances are created by the hosting CSE",
        ))
    }

    fn check_updatable(&self) -> Result<(), RequestError> {
        Err(RequestError::not_allowed(
            "flexContainerInstances cannot be updated",
        ))
    }
}

/// The original number of `<flexContainerInstanceAnnc>`.
const FCI: u16 = 58;

/// The member name a resource of type `ty` with attributes `attrs` is serialized under:
/// `m2m:<short name>`, or for a `<flexContainer>` its specialization's root, which its
/// `<flexContainerInstance>`s share (found through their parent in `tree`), and their
/// announced variants the root and `Annc` (a `<flexContainerInstanceAnnc>` by its
/// parent `<flexContainerAnnc>`'s `cnd`).
pub(crate) fn root_of(
    config: &CseConfig,
    tree: &Tree,
    ty: ResourceType,
    attrs: &Map<String, Value>,
) -> String {
    match ty {
        ResourceType::FlexContainer => config.flex.root_of(ty, cnd_of(attrs)),
        // A `<flexContainerAnnc>` by its specialization's announced name.
        ResourceType::Announced(n) if n == ResourceType::FlexContainer.number() => {
            config.flex.root_of(ty, cnd_of(attrs))
        }
        ResourceType::FlexContainerInstance | ResourceType::Announced(FCI) => {
            let parent = attrs
                .get("pi")
                .and_then(Value::as_str)
                .and_then(|pi| tree.get(pi));
            config
                .flex
                .root_of(ty, parent.and_then(|p| cnd_of(&p.attrs)))
        }
        // A `<mgmtObj>` by its specialization, every other type by its own root.
        _ => ty.root_of(attrs).to_owned(),
    }
}
