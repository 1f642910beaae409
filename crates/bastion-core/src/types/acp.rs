//! `<accessControlPolicy>` (TS-0001 9.6.2; TS-0003 7.1.2): its rules compiled when
//! written, and on start-up compiled to grant nothing when this version rejects them.

use super::{Audited, Derive, Prepared, Rederived, ResourceKind};
use crate::audit::AuditKind;
use crate::checks::CreateRequest;
use crate::tree::{AcpRules, Node, Ri, TypeState};
use crate::{Cse, RequestContext};
use async_trait::async_trait;
use bastion_policy::RuleSet;
use bastion_proto::RequestError;
use serde_json::{Map, Value};
use std::sync::Arc;

pub(super) struct Acp;

#[async_trait]
impl ResourceKind for Acp {
    /// Distributed authorization (`adri`/`apri`/`airi`, TS-0003 7.5) is not implemented:
    /// accepting the attributes would promise decisions that never happen.
    fn check_content(&self, content: &Map<String, Value>) -> Result<(), RequestError> {
        if ["adri", "apri", "airi"]
            .iter()
            .any(|k| content.contains_key(*k))
        {
            return Err(RequestError::NotImplemented(
                "distributed authorization is not supported yet".into(),
            ));
        }
        Ok(())
    }

    async fn prepare(
        &self,
        cse: &Cse,
        _req: &CreateRequest,
        _ctx: &RequestContext,
        content: &Map<String, Value>,
        _parent: &Ri,
    ) -> Result<Prepared, RequestError> {
        let rules = compile_acp(
            cse,
            content.get("pv").unwrap_or(&Value::Null),
            content.get("pvs").unwrap_or(&Value::Null),
        )?;
        Ok(Prepared {
            id: None,
            state: Some(TypeState::Acp(Arc::new(rules))),
            ..Prepared::default()
        })
    }

    fn audited(&self) -> Option<Audited> {
        Some(Audited {
            create: AuditKind::AcpCreate,
            update: AuditKind::AcpUpdate,
            delete: AuditKind::AcpDelete,
        })
    }

    fn rederive(
        &self,
        cx: &Derive,
        node: &Node,
        content: &Map<String, Value>,
    ) -> Result<Option<Rederived>, RequestError> {
        if !(content.contains_key("pv") || content.contains_key("pvs")) {
            return Ok(None);
        }
        let pick = |k: &str| {
            content
                .get(k)
                .or_else(|| node.attrs.get(k))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let rules = compile(cx.local, &pick("pv"), &pick("pvs"))?;
        Ok(Some(Rederived {
            attrs: None,
            state: TypeState::Acp(Arc::new(rules)),
        }))
    }

    /// A stored rule set that this version no longer accepts (parsing got stricter) is
    /// loaded as one that grants nothing: the CSE still starts, the ACP fails closed,
    /// and the admin can rewrite it.
    fn reload(&self, cx: &Derive, node: &mut Node, _row_body: &str) -> Result<TypeState, String> {
        let parse = |name: &str| {
            RuleSet::parse(node.attrs.get(name).unwrap_or(&Value::Null), cx.local).or_else(|e| {
                tracing::error!(acp = %node.ri, attribute = name, reason = %e, "stored rules rejected; they grant nothing");
                RuleSet::parse(&serde_json::json!({"acr": []}), cx.local)
                    .map_err(|e| format!("{name}: {e}"))
            })
        };
        Ok(TypeState::Acp(Arc::new(AcpRules {
            pv: parse("pv")?,
            pvs: parse("pvs")?,
        })))
    }
}

/// Compiles `pv`/`pvs` of an ACP's content (TS-0003 7.1.2; `pvs` needs at least one rule).
fn compile_acp(cse: &Cse, pv: &Value, pvs: &Value) -> Result<AcpRules, RequestError> {
    compile(&cse.local, pv, pvs)
}

fn compile(
    local: &bastion_policy::LocalIdentity,
    pv: &Value,
    pvs: &Value,
) -> Result<AcpRules, RequestError> {
    let parse = |name: &str, v: &Value| {
        RuleSet::parse(v, local).map_err(|e| RequestError::bad_request(format!("{name}: {e}")))
    };
    let rules = AcpRules {
        pv: parse("pv", pv)?,
        pvs: parse("pvs", pvs)?,
    };
    if rules.pvs.is_empty() {
        return Err(RequestError::bad_request("pvs must hold at least one rule"));
    }
    Ok(rules)
}
