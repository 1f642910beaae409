//! Operator explanations: how the access decision for a hypothetical request would go,
//! rule by rule, for `bastion acp explain` and the admin API of the HTTP binding.
//!
//! [`Cse::explain`] resolves the target exactly as a request would (`resolve.rs`), picks
//! the node whose rules govern it as the PEP does (the parent for CREATE; the container
//! for an instance, `la` and `ol`) and asks the request's own [`Enforcer`] to explain:
//! the same rules, the same PIP and [`bastion_policy::explain()`], which uses the very
//! conditions of the decision. Only the request context differs: the caller chooses the
//! time, peer address and location.
//!
//! Not part of the explanation: the registered-originator checks made before access
//! control (4106/4107), and `<AE>` registration, which no ACP governs.

use crate::access::Enforcer;
use crate::checks::Envelope;
use crate::Cse;
use bastion_policy::{AccessOperation, Explanation, Location};
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, RequestError};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// A request to explain.
#[derive(Clone, Debug)]
pub struct ExplainQuery {
    /// `From`, as a request would carry it.
    pub originator: String,
    pub operation: AccessOperation,
    /// The `to` address (structured or unstructured, CSE-relative or longer).
    pub to: String,
    /// CREATE only: the type to be created (`acod`).
    pub create_type: Option<u16>,
    /// `rq_time`; `None` means now.
    pub time: Option<Timestamp>,
    /// `rq_ip`; `None` means unknown, so every `acip` fails.
    pub peer_ip: Option<IpAddr>,
    /// `rq_loc`; `None` asks the configured location service, as a request would.
    pub location: Option<Location>,
}

impl Cse {
    /// Explains how the PEP would decide `query` now. Errors are those the request itself
    /// would meet before the decision (4000 bad address, 4004 no such resource, 4005
    /// CREATE under a virtual resource, 4108 CREATE under an instance).
    pub async fn explain(&self, query: &ExplainQuery) -> Result<Explanation, RequestError> {
        let now = self.now();
        let envelope = Envelope {
            op: match query.operation {
                AccessOperation::Create => Operation::Create,
                AccessOperation::Retrieve | AccessOperation::Discovery => Operation::Retrieve,
                AccessOperation::Update => Operation::Update,
                AccessOperation::Delete => Operation::Delete,
                AccessOperation::Notify => Operation::Notify,
            },
            to: query.to.clone(),
            fr: query.originator.clone(),
            rvi: "3".to_owned(),
            ty: None,
            rids: Vec::new(),
            tkns: Vec::new(),
            tids: Vec::new(),
            ltids: Vec::new(),
            tqi: false,
            rqet: None,
        };
        let target = self.resolve(&envelope, now).await?;
        if query.operation == AccessOperation::Create {
            target.create_parent()?;
        }
        let tree = self.tree.read();
        let node = tree
            .get(target.governing())
            .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
        let ctx = crate::RequestContext::new(
            query.peer_ip.map(|ip| std::net::SocketAddr::new(ip, 0)),
            None,
        );
        // The request's own enforcer, but at the time the operator asks about.
        let access = Enforcer::new(self, &query.originator, &ctx, query.time.unwrap_or(now));
        let create_type = query
            .create_type
            .filter(|_| query.operation == AccessOperation::Create);
        Ok(access.explain(&tree, node, query.operation, create_type, query.location))
    }
}

/// The JSON both operator interfaces show: the explanation's own members, preceded by
/// `summary` (its one-line form) and `target` (the address explained).
pub fn explanation_json(explanation: &Explanation, target: &str) -> Value {
    let mut out = Map::new();
    out.insert("summary".into(), Value::String(explanation.to_string()));
    out.insert("target".into(), Value::String(target.to_owned()));
    if let Ok(Value::Object(members)) = serde_json::to_value(explanation) {
        out.extend(members);
    }
    Value::Object(out)
}
