//! Non-blocking synchronous requests (TS-0001 8.2.2; TS-0004 7.3.2, 7.4.11;
//! core-primitives.md §4.2; core-resources.md §3.11): this module owns accepting a request
//! with `rt` = nonBlockingRequestSynch (1001 with the address of a new `<request>`
//! resource under the CSEBase), running it in a task of its own through the whole
//! pipeline, and recording its outcome in the `<request>` (`rs`, `ors`).
//!
//! The `<request>` has no `acpi`, so the default policy applies: only its creator (the
//! originator of the original request) and the administrator may RETRIEVE or DELETE it;
//! every attribute is NP for UPDATE.

use crate::checks::Checked;
use crate::create::{new_ri, node_row, universal};
use crate::tree::{Node, Ri};
use crate::{Cse, RequestContext};
use bastion_proto::time::{parse_abs_rel, Timestamp};
use bastion_proto::{Request, RequestError, ResourceType, Response, Rsc};
use bastion_store::WriteOp;
use serde_json::{json, Map, Value};
use std::future::Future;
use std::pin::Pin;

/// `rs` (m2m:requestStatus, TS-0004 6.3.4.2.x): the values Bastion uses.
const PENDING: u64 = 1;
const COMPLETED: u64 = 2;
const FAILED: u64 = 3;

/// How long a `<request>` is kept when the request sends no `rp`.
const DEFAULT_KEEP_SECS: i64 = 3600;
/// The longest a `<request>` is kept, whatever `rp` asks.
const MAX_KEEP_SECS: i64 = 24 * 3600;

/// What the pipeline answers for a request.
type Handled = Result<Response, RequestError>;

impl Cse {
    /// Accepts `original` (already through the primitive and originator checks as
    /// `req`): stores a PENDING `<request>`, starts the request in its own task, and
    /// answers 1001 with the `<request>`'s address.
    ///
    /// Boxed because the spawned task runs [`Cse::handle`], whose future contains this
    /// one: an opaque recursive future cannot be shown to be `Send`.
    pub(crate) fn accept_non_blocking<'a>(
        &'a self,
        original: Request,
        req: &'a Checked,
        ctx: &'a RequestContext,
    ) -> Pin<Box<dyn Future<Output = Handled> + Send + 'a>> {
        Box::pin(async move {
            self.write_guard()?;
            let cse = self
                .me
                .upgrade()
                .ok_or_else(|| RequestError::Internal("the CSE is shutting down".into()))?;
            let now = crate::now();
            let (ri, path) = self.store_request(&original, req, now).await?;
            let mut inner = original;
            inner.rt = None;
            // The task starts from what the binding knew, like any request.
            let binding = RequestContext::new(ctx.peer, ctx.identity.clone());
            let originator = req.fr.clone();
            let task_ri = ri.clone();
            tokio::spawn(async move {
                let resp = cse.handle(inner, &binding).await;
                if let Err(err) = cse.complete_request(&task_ri, &originator, resp).await {
                    tracing::warn!(ri = %task_ri, error = %err, "non-blocking result not stored");
                }
            });
            let mut resp = Response::new(Rsc::AcceptedNonBlockingSynch, String::new());
            resp.pc = Some(json!({ "m2m:uri": path }));
            Ok(resp)
        })
    }

    /// Creates the PENDING `<request>` under the CSEBase (core-resources.md §3.11).
    async fn store_request(
        &self,
        original: &Request,
        req: &Checked,
        now: Timestamp,
    ) -> Result<(Ri, String), RequestError> {
        let keep = original
            .rp
            .as_deref()
            .and_then(|rp| parse_abs_rel(rp, now))
            .filter(|at| *at > now)
            .unwrap_or_else(|| now.plus_seconds(DEFAULT_KEEP_SECS))
            .min(now.plus_seconds(MAX_KEEP_SECS));
        let (pending, ri, path) = {
            let mut tree = self.tree.write();
            let base = tree.base.clone();
            let (base_path, base_et) = {
                let node = tree
                    .get(&base)
                    .ok_or_else(|| RequestError::Internal("CSEBase missing".into()))?;
                (node.path.clone(), node.et)
            };
            let et = base_et.map_or(keep, |b| keep.min(b));
            let seq = tree.next_seq();
            let ri = new_ri(ResourceType::Request, seq);
            let path = format!("{base_path}/{ri}");
            let mut attrs = universal(ResourceType::Request, &ri, &ri, &base, now, et);
            attrs.insert("lbl".into(), json!([req.fr]));
            attrs.insert("op".into(), json!(op_number(req.op)));
            attrs.insert("tg".into(), json!(req.to));
            attrs.insert("org".into(), json!(req.fr));
            attrs.insert("rid".into(), json!(original.rqi()));
            attrs.insert("mi".into(), meta_information(original));
            if let Some(pc) = &req.pc {
                attrs.insert("pc".into(), pc.clone());
            }
            attrs.insert("rs".into(), json!(PENDING));
            let node = Node::new(
                ResourceType::Request,
                &ri,
                Some(base),
                ri.clone(),
                path.clone(),
                seq,
                attrs,
                Some(req.fr.clone()),
                Some(et),
            );
            let row = node_row(&node);
            let ri = node.ri.clone();
            tree.insert(node);
            (self.committer.enqueue(vec![WriteOp::Upsert(row)]), ri, path)
        };
        pending.durable().await?;
        Ok((ri, path))
    }

    /// Records the outcome: `rs` COMPLETED for a response below 4000 (FAILED otherwise)
    /// and `ors` = the response primitive. Nothing when the `<request>` is already gone.
    async fn complete_request(
        &self,
        ri: &Ri,
        originator: &str,
        resp: Response,
    ) -> Result<(), RequestError> {
        self.write_guard()?;
        let pending = {
            let mut tree = self.tree.write();
            let Some(node) = tree.get_mut(ri) else {
                return Ok(());
            };
            let status = if resp.rsc.code() < 4000 {
                COMPLETED
            } else {
                FAILED
            };
            let mut ors = Map::new();
            ors.insert("rsc".into(), json!(resp.rsc.code()));
            ors.insert("rqi".into(), json!(resp.rqi));
            if let Some(pc) = resp.pc {
                ors.insert("pc".into(), pc);
            }
            ors.insert("to".into(), json!(originator));
            ors.insert("fr".into(), json!(resp.fr.unwrap_or_default()));
            node.attrs.insert("rs".into(), json!(status));
            node.attrs.insert("ors".into(), Value::Object(ors));
            node.attrs
                .insert("lt".into(), Value::String(crate::now().format()));
            self.committer
                .enqueue(vec![WriteOp::Upsert(node_row(node))])
        };
        pending.durable().await
    }
}

fn op_number(op: bastion_proto::Operation) -> u64 {
    use bastion_proto::Operation::*;
    match op {
        Create => 1,
        Retrieve => 2,
        Update => 3,
        Delete => 4,
        Notify => 5,
    }
}

/// `mi`: the optional parameters of the original request worth keeping.
fn meta_information(req: &Request) -> Value {
    let mut mi = Map::new();
    if let Some(ty) = req.ty {
        mi.insert("ty".into(), json!(ty));
    }
    if let Some(rvi) = &req.rvi {
        mi.insert("rvi".into(), json!(rvi));
    }
    if let Some(rcn) = req.rcn {
        mi.insert("rcn".into(), json!(rcn));
    }
    mi.insert("rt".into(), json!({ "rtv": 1 }));
    for (key, value) in [("rp", &req.rp), ("rqet", &req.rqet), ("rset", &req.rset)] {
        if let Some(v) = value {
            mi.insert(key.into(), json!(v));
        }
    }
    Value::Object(mi)
}
