//! `<group>` (TS-0001 9.6.13): members validated and resolved when written, resolved
//! again at start-up once every resource is loaded; `fopt` is its fan-out point.

use super::{Derive, ResourceKind};

use crate::authz_state::Mode;
use crate::tree::{Node, TypeState};
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};

/// The virtual resource addressing a group's members (TS-0001 9.6.14).
pub(crate) const FOPT: &str = "fopt";

pub(super) struct Group;

impl ResourceKind for Group {
    fn derive(
        &self,
        cx: &Derive,
        ty: ResourceType,
        attrs: &mut Map<String, Value>,
        mode: Mode,
    ) -> Result<TypeState, RequestError> {
        cx.authz_state(ty, attrs, mode)
    }

    fn rederive(
        &self,
        cx: &Derive,
        node: &Node,
        content: &Map<String, Value>,
    ) -> Result<Option<super::Rederived>, RequestError> {
        super::rederive_merged(self, cx, node, content)
    }

    /// `fopt` is a group's fan-out point (TS-0001 9.6.14), never a child.
    fn check_child_name(&self, rn: &str) -> Result<(), RequestError> {
        if rn == FOPT {
            return Err(RequestError::bad_request("fopt is a reserved name"));
        }
        Ok(())
    }

    /// Members may have been created after their group.
    fn reload_last(&self) -> bool {
        true
    }

    fn reload(&self, cx: &Derive, node: &mut Node, _row_body: &str) -> Result<TypeState, String> {
        Ok(self
            .derive(cx, node.ty, &mut node.attrs, Mode::Load)
            .unwrap_or_default())
    }
}
