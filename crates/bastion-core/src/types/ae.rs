//! `<AE>` (TS-0001 9.6.5): registration, where the originator chooses the AE-ID and
//! access control does not apply (TS-0001 10.2.2.2).

use super::{common, created, node_row, resolve_acpi, universal, ResourceKind};
use crate::checks::CreateRequest;
use crate::tree::{Node, Ri};
use crate::{Cse, RequestContext};
use async_trait::async_trait;
use bastion_proto::attrs::{self, Phase};
use bastion_proto::id;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType, Response};
use bastion_store::WriteOp;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::Value;

pub(super) struct Ae;

#[async_trait]
impl ResourceKind for Ae {
    async fn register(
        &self,
        cse: &Cse,
        req: &CreateRequest,
        ctx: &RequestContext,
        parent: &Ri,
        now: Timestamp,
    ) -> Option<Result<Response, RequestError>> {
        Some(register_ae(cse, req, ctx, parent, now).await)
    }

    fn binds_identity(&self) -> bool {
        true
    }

    fn rederive(
        &self,
        cx: &super::Derive,
        node: &Node,
        content: &serde_json::Map<String, Value>,
    ) -> Result<Option<super::Rederived>, RequestError> {
        super::node::rederive_links(cx, node, content)
    }
}

/// AE registration (TS-0001 §10.2.2.2; core-primitives.md §8). Access control does not
/// apply; the originator decides the AE-ID.
async fn register_ae(
    cse: &Cse,
    req: &CreateRequest,
    ctx: &RequestContext,
    parent_ri: &Ri,
    now: Timestamp,
) -> Result<Response, RequestError> {
    let mut content = req.content(ResourceType::Ae)?;
    {
        let tree = cse.tree.read();
        if *parent_ri != tree.base {
            return Err(RequestError::InvalidChildType(
                "an AE can only be created under the CSEBase".into(),
            ));
        }
    }
    attrs::validate(ResourceType::Ae, Phase::Create, &content)?;
    let api = content.get("api").and_then(Value::as_str).unwrap_or("");
    let lower_r_allowed = matches!(req.rvi.as_str(), "2a" | "3");
    let api_ok = api.len() > 1
        && (api.starts_with('R')
            || api.starts_with('N')
            || (lower_r_allowed && api.starts_with('r')));
    if !api_ok {
        return Err(RequestError::bad_request("api must start with R or N"));
    }
    let aei = match req.fr.as_str() {
        "" | "C" => format!("C{}", Alphanumeric.sample_string(&mut rand::rng(), 16)),
        "S" => format!("S{}", Alphanumeric.sample_string(&mut rand::rng(), 16)),
        fr if (fr.starts_with('C') || fr.starts_with('S')) && !fr.contains('/') => {
            id::validate_resource_name(fr)
                .map_err(|_| RequestError::bad_request("originator is not a valid AE-ID-Stem"))?;
            fr.to_owned()
        }
        _ => {
            return Err(RequestError::bad_request(
                "an AE registers with an empty, C, S or AE-ID-Stem originator",
            ))
        }
    };
    // The administrator's ID, in any form, is never an AE-ID: an AE holding it would be
    // granted everything and named like the admin in every log.
    if cse.is_admin(&aei) {
        return Err(RequestError::not_allowed(
            "the administrator's ID cannot be registered as an AE-ID",
        ));
    }
    cse.write_guard()?;
    let (pending, attrs, notices) = {
        let mut tree = cse.tree.write();
        if tree.get(&aei).is_some() {
            return Err(RequestError::AlreadyRegistered(
                "an AE with this AE-ID is already registered".into(),
            ));
        }
        super::check_links(&tree, &cse.config, ResourceType::Ae, &content)?;
        let base = tree
            .get(parent_ri)
            .ok_or_else(|| RequestError::not_found("CSEBase missing"))?;
        let c = common(
            ResourceType::Ae,
            &tree,
            base,
            &mut content,
            || aei.clone(),
            &cse.config,
            now,
        )?;
        let acpi = resolve_acpi(&tree, &cse.config, content.get("acpi"))?;
        let path = format!("{}/{}", base.path, c.rn);
        let mut attrs = universal(ResourceType::Ae, &aei, &c.rn, parent_ri, now, c.et);
        attrs.extend(content);
        attrs.insert("aei".into(), Value::String(aei.clone()));
        let seq = tree.next_seq();
        let mut node = Node::new(
            ResourceType::Ae,
            &aei,
            Some(parent_ri.clone()),
            c.rn,
            path,
            seq,
            attrs,
            Some(aei.clone()),
            Some(c.et),
        );
        node.acpi = acpi;
        // Registered over an association: the AE-ID is bound to it from now on.
        node.bound = ctx.identity.as_deref().map(|i| cse.absolute(i).into());
        let row = node_row(&node);
        let attrs = node.attrs.clone();
        tree.insert(node);
        let (notices, mut ops) =
            cse.child_created(&mut tree, parent_ri, ResourceType::Ae, &attrs, &aei);
        ops.insert(0, WriteOp::Upsert(row));
        (cse.committer.enqueue(ops), attrs, notices)
    };
    pending.durable().await?;
    cse.dispatch(notices).await;
    let attrs = cse.announce_created(attrs).await;
    created(cse, req, ResourceType::Ae, attrs)
}
