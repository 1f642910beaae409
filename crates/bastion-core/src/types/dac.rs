//! `<dynamicAuthorizationConsultation>` (TS-0003 7.3.2.2): where and whether a Dynamic
//! Authorization Server is consulted.

use super::{Derive, ResourceKind};

use crate::authz_state::Mode;
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
}
