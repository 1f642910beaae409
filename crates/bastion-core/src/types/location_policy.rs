//! `<locationPolicy>` (TS-0001 9.6.10, 10.2.10; TS-0004 7.4.10): how the position of a
//! node is obtained, and the `<container>` its positions are kept in.
//!
//! CREATE makes two resources in one durable write: the policy, and beside it (same
//! parent) a `<container>` named by `lon` (or generated) whose `li` names the policy; the
//! policy's `loi` names the container. DELETE and expiry of the policy remove the
//! container with it (TS-0004 7.4.10.2.4). What each source does here
//! (docs/decisions.md, "locationPolicy"):
//!
//! * device-based (2): the device stores its positions as `<contentInstance>`s of the
//!   container, content `"LAT,LON"` in degrees; `lost` is empty. The location check
//!   reads the newest of them (`pip.rs`) when the operator trusts device positions;
//! * network-based (1): accepted, but this CSE sends no location-server request for a
//!   policy (its network positions come from the `[location]` PIP), so nothing is
//!   stored and `lost` says so; such a container never counts for the location check;
//! * sharing-based (3): 5001, as it needs the `<node>` topology, which is not served.

use super::{kind, universal, Derive, NewNode, ResourceKind};
use crate::authz_state::Mode;
use crate::state::LocationPolicyState;
use crate::tree::{Node, Ri, Tree, TypeState};
use async_trait::async_trait;
use bastion_proto::{id, RequestError, ResourceType};
use serde_json::{Map, Value};
use std::sync::Arc;

/// `los` values (TS-0004 6.3.4.2.3, `m2m:locationSource`).
const NETWORK_BASED: u64 = 1;
const DEVICE_BASED: u64 = 2;
const SHARING_BASED: u64 = 3;

/// `lost` of a network-based policy: this CSE reaches no location server for it.
const NO_LOCATION_SERVER: &str = "no location server is reachable";

/// Positions the created container keeps (`mni`); older ones are evicted.
const POSITIONS_KEPT: u64 = 100;

pub(super) struct LocationPolicy;

#[async_trait]
impl ResourceKind for LocationPolicy {
    fn check_content(&self, content: &Map<String, Value>) -> Result<(), RequestError> {
        if content.get("los").and_then(Value::as_u64) == Some(SHARING_BASED) {
            return Err(RequestError::NotImplemented(
                "sharing-based location needs the <node> topology, which is not served".into(),
            ));
        }
        if let Some(lon) = content.get("lon").and_then(Value::as_str) {
            id::validate_resource_name(lon)?;
        }
        Ok(())
    }

    /// The container beside the policy, and the policy's `loi` and `lost`.
    fn companions(
        &self,
        tree: &mut Tree,
        new: &NewNode,
        attrs: &mut Map<String, Value>,
    ) -> Result<Vec<Node>, RequestError> {
        let parent = tree
            .get(new.parent)
            .ok_or_else(|| RequestError::not_found("parent no longer exists"))?;
        let own_rn = attrs.get("rn").and_then(Value::as_str).unwrap_or("");
        let parent_ty = parent.ty;
        let parent_path = parent.path.clone();
        let ceiling = parent.et.unwrap_or(bastion_proto::time::MAX);
        let seq = tree.next_seq();
        let ri = super::new_ri(ResourceType::Container, seq);
        let rn = match attrs.get("lon").and_then(Value::as_str) {
            Some(lon) => {
                kind(parent_ty).check_child_name(lon)?;
                let parent = tree
                    .get(new.parent)
                    .ok_or_else(|| RequestError::not_found("parent no longer exists"))?;
                if lon == own_rn || tree.name_taken(parent, lon) {
                    return Err(RequestError::Conflict(
                        "a sibling already has the locationContainerName".into(),
                    ));
                }
                lon.to_owned()
            }
            None => ri.clone(),
        };
        // The container lives as long as its parent allows: it goes with the policy.
        let mut cnt = universal(
            ResourceType::Container,
            &ri,
            &rn,
            new.parent,
            new.now,
            ceiling,
        );
        kind(ResourceType::Container).initial_attrs(&mut cnt);
        cnt.insert("mni".into(), Value::from(POSITIONS_KEPT));
        if let Some(acpi) = attrs.get("acpi") {
            cnt.insert("acpi".into(), acpi.clone());
        }
        cnt.insert("li".into(), Value::String(new.ri.to_owned()));
        let mut node = Node::new(
            ResourceType::Container,
            &ri,
            Some(new.parent.clone()),
            rn.clone(),
            format!("{parent_path}/{rn}"),
            seq,
            cnt,
            Some(new.creator.to_owned()),
            Some(ceiling),
        );
        node.state = TypeState::Container(Box::default());
        node.acpi = new.acpi.to_vec();
        attrs.insert("loi".into(), Value::String(ri));
        let lost = match attrs.get("los").and_then(Value::as_u64) {
            Some(NETWORK_BASED) => NO_LOCATION_SERVER,
            _ => "",
        };
        attrs.insert("lost".into(), Value::String(lost.into()));
        Ok(vec![node])
    }

    fn derive(
        &self,
        _cx: &Derive,
        _ty: ResourceType,
        attrs: &mut Map<String, Value>,
        _mode: Mode,
    ) -> Result<TypeState, RequestError> {
        let container = attrs
            .get("loi")
            .and_then(Value::as_str)
            .ok_or_else(|| RequestError::bad_request("locationPolicy without its container"))?;
        Ok(TypeState::LocationPolicy(Box::new(LocationPolicyState {
            device_based: attrs.get("los").and_then(Value::as_u64) == Some(DEVICE_BASED),
            container: Arc::from(container),
        })))
    }

    /// The policy's container, while it still names the policy.
    fn linked(&self, tree: &Tree, node: &Node) -> Vec<Ri> {
        let Some(state) = node.location_policy() else {
            return Vec::new();
        };
        tree.get(&state.container)
            .filter(|c| {
                c.ty == ResourceType::Container
                    && c.attrs.get("li").and_then(Value::as_str) == Some(&*node.ri)
            })
            .map(|c| vec![c.ri.clone()])
            .unwrap_or_default()
    }
}
