//! `<token>` (TS-0003 7.4, Token Repository): its object verified when written, its
//! `tkid` unique among stored tokens.

use super::{Audited, Derive, ResourceKind};
use crate::audit::AuditKind;
use crate::authz_state::Mode;
use crate::tree::TypeState;
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};

pub(super) struct Token;

impl ResourceKind for Token {
    fn derive(
        &self,
        cx: &Derive,
        ty: ResourceType,
        attrs: &mut Map<String, Value>,
        mode: Mode,
    ) -> Result<TypeState, RequestError> {
        let state = cx.authz_state(ty, attrs, mode)?;
        if let (Mode::Write, TypeState::Token(token)) = (mode, &state) {
            if cx.tree.token_named(&token.token.token_id).is_some() {
                return Err(RequestError::Conflict(
                    "a token with this tkid is already stored".into(),
                ));
            }
        }
        Ok(state)
    }

    fn audited(&self) -> Option<Audited> {
        Some(Audited {
            create: AuditKind::TokenChange,
            update: AuditKind::TokenChange,
            delete: AuditKind::TokenChange,
        })
    }
}
