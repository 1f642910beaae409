//! `<dynamicAuthorizationConsultation>` (TS-0003 7.3.2.2): where and whether a Dynamic
//! Authorization Server is consulted.

use super::{Derive, ResourceKind};

use crate::authz_state::{self, Mode};
use crate::tree::{Node, TypeState};
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};

pub(super) struct Dac;

impl ResourceKind for Dac {
    fn derive(
        &self,
        cx: &Derive,
        ty: ResourceType,
        attrs: &mut Map<String, Value>,
        mode: Mode,
    ) -> Result<TypeState, RequestError> {
        authz_state::derive(
            cx.tree,
            cx.config,
            cx.local,
            cx.verifier,
            ty,
            attrs,
            cx.now,
            mode,
        )
    }

    /// Re-validated on the merged attributes before anything changes, so a refused
    /// update leaves no trace.
    fn rederive(
        &self,
        cx: &Derive,
        node: &Node,
        content: &Map<String, Value>,
    ) -> Result<Option<super::Rederived>, RequestError> {
        let mut merged = super::merged(&node.attrs, content);
        let state = self.derive(cx, node.ty, &mut merged, Mode::Write)?;
        Ok(Some(super::Rederived {
            attrs: Some(merged),
            state,
        }))
    }
}
