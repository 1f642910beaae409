//! The announced variants (`<AEAnnc>`, `<containerAnnc>`, …; TS-0001 9.6.26): resources
//! another CSE creates here to make its own visible. They differ from each other only by
//! data (`bastion_proto::types::announced`, `attrs::announced`), so one kind serves them
//! all. What is particular: only a CSE creates one, its `lnk` points into that CSE, and it
//! sits under that CSE's `<remoteCSE>` or under an announced resource there; only that CSE
//! changes it afterwards. Access control is as for every type (the `<remoteCSE>`'s policy,
//! by default its registree's).

use super::ResourceKind;
use crate::checks::{CreateRequest, Envelope};
use crate::originator::{owner, Owner};
use crate::tree::{Ri, Tree};
use crate::{Cse, RequestContext};
use async_trait::async_trait;
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};

pub(super) struct Announced;

/// The CSE-ID (SP-relative) of the CSE whose resource `lnk` names, if it names one
/// (`/id-mn/cnt1`, or the absolute form under this SP).
fn linked_cse<'a>(sp_id: &str, lnk: &'a str) -> Option<&'a str> {
    let sp_relative = lnk.strip_prefix(sp_id).unwrap_or(lnk);
    let rest = sp_relative.strip_prefix('/')?;
    let (cse, resource) = rest.split_once('/')?;
    (!cse.is_empty() && !resource.is_empty()).then(|| &sp_relative[..cse.len() + 1])
}

/// The `csi` of the `<remoteCSE>` that `ri` is or is under, through announced parents.
fn remote_cse_above(tree: &Tree, ri: &Ri) -> Option<String> {
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
            ResourceType::Announced(_) => node = tree.get(node.pi.as_ref()?)?,
            _ => return None,
        }
    }
}

impl Cse {
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

#[async_trait]
impl ResourceKind for Announced {
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
        if remote_cse_above(&cse.tree.read(), parent).as_deref() != Some(announcer) {
            return Err(RequestError::not_allowed(
                "an announced resource is created under the announcing CSE's remoteCSE",
            ));
        }
        Ok(super::Prepared::default())
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
    use super::linked_cse;

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
