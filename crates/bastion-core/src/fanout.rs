//! Group fan-out (TS-0001 10.2.7.6-10.2.7.10, 9.6.13; core-resources.md §3.8): this module
//! owns requests addressed to a `<group>`'s virtual `fopt` child (`<group>/fopt` or
//! `<group>/fopt/<relative path>`), the group-level access decision for them (`macp`, else
//! `acpi`), re-issuing the request to every member through the whole pipeline (so each
//! member's own access control decides; remote members go through forwarding), the
//! aggregated response, and removing members deleted through `fopt` from `mid`. The
//! member requests one original request causes are capped across nesting
//! (`CseConfig::fanout_limit`) and the aggregate by `result_max_bytes`; beyond either the
//! answer is partial (Content Status 1).

use crate::access::Enforcer;
use crate::authz_state::{self, resolve_local, Mode};
use crate::bounded::{join_bounded, MAX_IN_FLIGHT};
use crate::checks::Envelope;
use crate::resolve::Target;
use crate::tree::Ri;
use crate::Cse;
use bastion_policy::AccessOperation;
use bastion_proto::time::{parse_abs_rel, Timestamp};
use bastion_proto::{Operation, Request, RequestError, ResourceType, Response, Rsc};
use bastion_store::WriteOp;
use serde_json::{json, Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The virtual child name of a group's fan-out point (TS-0001 9.6.14); reserved under
/// `<group>`.
pub(crate) use crate::types::group::FOPT;

tokio::task_local! {
    /// How many fan-outs enclose the current one in this task: a member that is itself a
    /// `.../fopt` fans out again, and a cycle of groups must end ([`MAX_NESTING`]).
    static DEPTH: usize;
}

tokio::task_local! {
    /// Member requests the original request may still cause, shared by every fan-out
    /// nested in it (`CseConfig::fanout_limit`).
    static MEMBER_BUDGET: Arc<AtomicUsize>;
}

/// Deepest nesting of fan-outs (a group whose member is a sub-group's `fopt`). Nested
/// fan-outs run inside the enclosing request's task, so the bound also bounds its stack.
pub(crate) const MAX_NESTING: usize = 3;

/// Whether `to` has a `fopt` segment after its first, so it may address a fan-out point.
/// A cheap test made before the primitive checks, to keep the request for re-issuing.
pub(crate) fn may_address_fopt(to: &str) -> bool {
    fopt_splits(to).next().is_some()
}

/// Every way to split `to` at a `fopt` segment: the group's address and the relative
/// path after `fopt` (empty, or starting with `/`).
fn fopt_splits(to: &str) -> impl Iterator<Item = (&str, &str)> {
    to.match_indices("/fopt").filter_map(move |(i, _)| {
        let rest = &to[i + 1 + FOPT.len()..];
        (i > 0 && (rest.is_empty() || rest.starts_with('/'))).then(|| (&to[..i], rest))
    })
}

/// What the pipeline answers for a request.
type Handled = Result<Response, RequestError>;

/// A located fan-out point.
struct FanOut {
    group: Ri,
    path: String,
    members: Vec<String>,
    /// The relative path appended to each member ID.
    rel: String,
    /// `Some` when `macp` is set: the `<accessControlPolicy>` resources it names that
    /// exist (an ID naming nothing contributes nothing, like in `acpi`).
    macp: Option<Vec<Ri>>,
}

fn access_operation(op: Operation) -> AccessOperation {
    match op {
        Operation::Create => AccessOperation::Create,
        Operation::Retrieve => AccessOperation::Retrieve,
        Operation::Update => AccessOperation::Update,
        Operation::Delete => AccessOperation::Delete,
        Operation::Notify => AccessOperation::Notify,
    }
}

impl Cse {
    /// Handles the request when `req.to` addresses a group's fan-out point; `None` when
    /// it does not (normal resolution then applies). `original` is the request as
    /// received, re-issued to the members; `access` the request's access decisions.
    ///
    /// The future is boxed: member requests run [`Cse::handle`] again, which may reach
    /// this function (nested groups), and an opaque recursive future cannot be `Send`.
    pub(crate) fn fan_out<'a>(
        &'a self,
        original: Request,
        req: &'a Envelope,
        access: &'a Enforcer<'a>,
    ) -> Pin<Box<dyn Future<Output = Option<Handled>> + Send + 'a>> {
        Box::pin(async move {
            let now = access.now();
            let fan = match self.locate_fopt(&req.to, now) {
                Ok(Some(fan)) => fan,
                Ok(None) => return None,
                Err(err) => return Some(Err(err)),
            };
            Some(self.run_fan_out(original, req, access, fan, now).await)
        })
    }

    /// The first split of `to` whose group part is a live local `<group>`.
    fn locate_fopt(&self, to: &str, now: Timestamp) -> Result<Option<FanOut>, RequestError> {
        let tree = self.tree.read();
        for (group, rel) in fopt_splits(to) {
            let Some(node) = resolve_local(&tree, &self.config, group) else {
                continue;
            };
            if node.ty != ResourceType::Group {
                continue;
            }
            if tree.expired_in_chain(&node.ri, now) {
                return Err(RequestError::not_found("resource does not exist"));
            }
            let members = node
                .attrs
                .get("mid")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let macp = node
                .attrs
                .get("macp")
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .filter_map(|id| resolve_local(&tree, &self.config, id))
                        .filter(|n| n.acp().is_some())
                        .map(|n| n.ri.clone())
                        .collect()
                });
            return Ok(Some(FanOut {
                group: node.ri.clone(),
                path: node.path.clone(),
                members,
                rel: rel.to_owned(),
                macp,
            }));
        }
        Ok(None)
    }

    /// The group-level decision (TS-0001 9.6.13 `membersAccessControlPolicyIDs`): the
    /// `pv` of the ACPs `macp` names when it is set, else the group's own `acpi` (and
    /// with it tokens, dynamic authorization and the default policy). Fails closed: a
    /// `macp` naming no existing ACP grants nobody but the administrator.
    async fn authorize_fan_out(
        &self,
        req: &Envelope,
        access: &Enforcer<'_>,
        fan: &FanOut,
    ) -> Result<(), RequestError> {
        let op = access_operation(req.op);
        let create_type = match req.op {
            Operation::Create => req.ty.map(ResourceType::number),
            _ => None,
        };
        let Some(acps) = &fan.macp else {
            let target = Target::Node(fan.group.clone());
            return access.authorize(&target, op, create_type).await.map(|_| ());
        };
        let tree = self.tree.read();
        let group = tree
            .get(&fan.group)
            .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
        access.authorize_members(&tree, group, acps, op, create_type)
    }

    async fn run_fan_out(
        &self,
        original: Request,
        req: &Envelope,
        access: &Enforcer<'_>,
        fan: FanOut,
        now: Timestamp,
    ) -> Result<Response, RequestError> {
        let depth = DEPTH.try_with(|d| *d).unwrap_or(0);
        if depth >= MAX_NESTING {
            return Err(RequestError::bad_request("group fan-out nested too deeply"));
        }
        self.authorize_fan_out(req, access, &fan).await?;
        if fan.members.is_empty() {
            return Err(RequestError::NoMembers("the group has no members".into()));
        }
        // `rset` bounds the wait for members (core-resources.md §3.8).
        let deadline = original
            .rset
            .as_deref()
            .and_then(|s| parse_abs_rel(s, now))
            .map(|at| {
                let secs = at.0.saturating_sub(self.now().0).max(0) as u64;
                tokio::time::Instant::now() + std::time::Duration::from_secs(secs)
            });
        // The members asked: as many as the original request's budget still allows,
        // counted across nested fan-outs; the others make the answer partial.
        let budget = MEMBER_BUDGET
            .try_with(Arc::clone)
            .unwrap_or_else(|_| Arc::new(AtomicUsize::new(self.config.fanout_limit)));
        let room = budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                Some(left.saturating_sub(fan.members.len()))
            })
            .unwrap_or(0);
        let asked = &fan.members[..fan.members.len().min(room)];
        let mut partial = asked.len() < fan.members.len();
        if asked.is_empty() {
            tracing::info!(group = %fan.path, "fan-out member limit reached; no member asked");
            let mut resp = Response::new(Rsc::Ok, String::new());
            resp.pc = Some(json!({ "m2m:agr": { "m2m:rsp": [] } }));
            resp.cnst = Some(bastion_proto::primitive::CONTENT_STATUS_PARTIAL);
            return Ok(resp);
        }
        // Each member request starts from what the binding knew: the pipeline verifies
        // the originator and decides access for it again, per member.
        let binding = access.ctx().as_received();
        let binding = &binding;
        let calls: Vec<_> = asked
            .iter()
            .map(|member| {
                let mut r = original.clone();
                r.to = format!("{member}{}", fan.rel);
                r.gid = Some(fan.group.to_string());
                let budget = budget.clone();
                async move {
                    let call = MEMBER_BUDGET
                        .scope(budget, DEPTH.scope(depth + 1, self.handle(r, binding)));
                    match deadline {
                        Some(at) => tokio::time::timeout_at(at, call).await.ok(),
                        None => Some(call.await),
                    }
                }
            })
            .collect();
        let answers = join_bounded(calls, MAX_IN_FLIGHT).await;
        if answers.iter().all(Option::is_none) {
            return Err(RequestError::GroupMembersNotResponded(
                "no member answered in time".into(),
            ));
        }
        // The aggregated answer is bounded like any result: entries beyond
        // `result_max_bytes` are left out.
        let mut room_bytes = self.config.result_max_bytes;
        let mut entries = Vec::with_capacity(answers.len());
        let mut deleted = Vec::new();
        for (member, answer) in asked.iter().zip(answers) {
            let Some(resp) = answer else { continue };
            if req.op == Operation::Delete && fan.rel.is_empty() && resp.rsc == Rsc::Deleted {
                deleted.push(member.clone());
            }
            partial |= resp.cnst == Some(bastion_proto::primitive::CONTENT_STATUS_PARTIAL);
            let mut entry = Map::new();
            entry.insert("rsc".into(), json!(resp.rsc.code()));
            entry.insert("rqi".into(), json!(resp.rqi));
            if let Some(pc) = resp.pc {
                entry.insert("pc".into(), pc);
            }
            entry.insert("fr".into(), json!(member));
            entry.insert("to".into(), json!(req.fr));
            let entry = Value::Object(entry);
            let size = serde_json::to_vec(&entry).map_or(usize::MAX, |v| v.len());
            if size > room_bytes {
                partial = true;
                room_bytes = 0;
                continue;
            }
            room_bytes -= size;
            entries.push(entry);
        }
        if !deleted.is_empty() {
            self.remove_members(&fan.group, &deleted, &req.fr).await?;
        }
        if partial {
            tracing::info!(group = %fan.path, "fan-out answer is partial: a member or size limit was reached");
        }
        let mut resp = Response::new(Rsc::Ok, String::new());
        resp.pc = Some(json!({ "m2m:agr": { "m2m:rsp": entries } }));
        if partial {
            resp.cnst = Some(bastion_proto::primitive::CONTENT_STATUS_PARTIAL);
        }
        Ok(resp)
    }

    /// Removes members deleted through `fopt` from `mid` and updates `cnm` (TS-0001
    /// 10.2.7.10), durably, notifying the group's subscribers like any UPDATE.
    async fn remove_members(
        &self,
        group: &Ri,
        gone: &[String],
        originator: &str,
    ) -> Result<(), RequestError> {
        self.write_guard()?;
        let now = self.now();
        let (pending, notices) = {
            let mut tree = self.tree.write();
            let Some(node) = tree.get(group) else {
                return Ok(()); // the group itself went meanwhile
            };
            let mut attrs = node.attrs.clone();
            let mid: Vec<Value> = attrs
                .get("mid")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter(|v| !v.as_str().is_some_and(|s| gone.iter().any(|g| g == s)))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            attrs.insert("mid".into(), Value::Array(mid));
            attrs.insert("lt".into(), Value::String(now.format()));
            // Load mode: only shrinking, so the limits cannot be exceeded; `cnm` follows.
            let state = authz_state::derive(
                &tree,
                &self.config,
                &self.local,
                self.tokens.verifier(),
                ResourceType::Group,
                &mut attrs,
                now,
                Mode::Load,
            )?;
            let Some(node) = tree.get_mut(group) else {
                return Ok(());
            };
            node.attrs = attrs;
            node.state = state;
            let mut ops = vec![WriteOp::Upsert(crate::types::node_row(node))];
            let modified = ["mid".to_owned(), "cnm".to_owned(), "lt".to_owned()];
            let (notices, more) = self.updated(&mut tree, group, &modified, originator);
            ops.extend(more);
            (self.committer.enqueue(ops), notices)
        };
        pending.durable().await?;
        self.dispatch(notices).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_fopt_segments_only() {
        let all: Vec<_> = fopt_splits("cse-in/g/fopt/la").collect();
        assert_eq!(all, vec![("cse-in/g", "/la")]);
        assert_eq!(
            fopt_splits("grp1/fopt").collect::<Vec<_>>(),
            vec![("grp1", "")]
        );
        assert!(!may_address_fopt("cse-in/g/fopts"));
        assert!(!may_address_fopt("/fopt"));
        assert!(!may_address_fopt("cse-in/xfopt/la"));
        let nested: Vec<_> = fopt_splits("a/fopt/b/fopt").collect();
        assert_eq!(nested, vec![("a", "/b/fopt"), ("a/fopt/b", "")]);
    }
}
