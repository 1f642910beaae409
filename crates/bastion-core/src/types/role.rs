//! `<role>` (TS-0003 7.4, Role Repository): validated when written, indexed by `rlid`.

use super::{Audited, Derive, ResourceKind};
use crate::audit::AuditKind;
use crate::authz_state::Mode;
use crate::tree::TypeState;
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};

pub(super) struct Role;

impl ResourceKind for Role {
    fn derive(
        &self,
        cx: &Derive,
        ty: ResourceType,
        attrs: &mut Map<String, Value>,
        mode: Mode,
    ) -> Result<TypeState, RequestError> {
        cx.authz_state(ty, attrs, mode)
    }

    fn audited(&self) -> Option<Audited> {
        Some(Audited {
            create: AuditKind::RoleChange,
            update: AuditKind::RoleChange,
            delete: AuditKind::RoleChange,
        })
    }
}
