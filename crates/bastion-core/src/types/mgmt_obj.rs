//! `<mgmtObj>` (TS-0001 9.6.15, TS-0004 7.4.15 and annex D): a management function of a
//! `<node>`. Its specialization (`mgd`) picks its attribute policy and JSON root from
//! the one table in `bastion_proto::attrs::mgmt`; a `mgd` oneM2M defines but this CSE
//! does not serve is 5001, any other 4000. There is no device management adapter: the
//! trigger attributes (`ud`, `in`, `un`, `act`, `dea`, `rbo`, `far`, ...) are stored and
//! nothing is executed (docs/decisions.md, "mgmtObj triggers").

use super::ResourceKind;
use crate::checks::{mgmt_root, CreateRequest, Envelope};
use crate::tree::Ri;
use crate::{Cse, RequestContext};
use async_trait::async_trait;
use bastion_proto::attrs::mgmt::{self, Spec};
use bastion_proto::attrs::{self, Phase};
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};

pub(super) struct MgmtObj;

/// The specialization `content` asks for by its `mgd`.
fn spec_of(content: &Map<String, Value>) -> Result<&'static Spec, RequestError> {
    let mgd = match content.get("mgd") {
        None | Some(Value::Null) => {
            return Err(RequestError::bad_request("mandatory attribute mgd missing"))
        }
        Some(v) => v.as_u64().ok_or_else(|| {
            RequestError::bad_request("attribute mgd must be a non-negative integer")
        })?,
    };
    match mgmt::spec(mgd) {
        Some(spec) => Ok(spec),
        None if mgmt::is_defined(mgd) => Err(RequestError::NotImplemented(
            format!("mgmtObj specialization {mgd} is not implemented").into(),
        )),
        None => Err(RequestError::bad_request(format!("unknown mgd {mgd}"))),
    }
}

#[async_trait]
impl ResourceKind for MgmtObj {
    fn validate(
        &self,
        _ty: ResourceType,
        phase: Phase,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        match phase {
            Phase::Create => attrs::validate_mgmt(spec_of(content)?, phase, content),
            // Checked in `check_update`, against the specialization of the resource.
            Phase::Update => Ok(()),
        }
    }

    async fn prepare(
        &self,
        _cse: &Cse,
        req: &CreateRequest,
        _ctx: &RequestContext,
        content: &Map<String, Value>,
        _parent: &Ri,
    ) -> Result<super::Prepared, RequestError> {
        let spec = spec_of(content)?;
        if mgmt_root(&req.pc).map(|s| s.mgd) != Some(spec.mgd) {
            return Err(RequestError::bad_request(format!(
                "mgd {} is a {} whose content root is {}",
                spec.mgd, spec.name, spec.root
            )));
        }
        Ok(super::Prepared::default())
    }

    fn check_update(
        &self,
        cse: &Cse,
        _req: &Envelope,
        ri: &Ri,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        let spec = {
            let tree = cse.tree.read();
            let node = tree
                .get(ri)
                .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
            node.attrs
                .get("mgd")
                .and_then(Value::as_u64)
                .and_then(mgmt::spec)
                .ok_or_else(|| RequestError::bad_request("this mgmtObj has no served mgd"))?
        };
        attrs::validate_mgmt(spec, Phase::Update, content)
    }
}
