//! Dynamic authorization (TS-0003 7.3; digest §10): what the PEP does after the local
//! decision (ACPs, roles, tokens) denied.
//!
//! * Which DAS Servers: the `dap` of the enabled `<dynamicAuthorizationConsultation>`
//!   resources linked by the nearest `daci` on the target or its ancestors (7.3.2.2 step
//!   2b). Role-ID-designated servers (step 2a) are not used.
//! * Indirect procedure (7.3.2.3): a request with `tqi` = true gets 4103 carrying
//!   `m2m:dynAuthTokenReqInfo` (the `tqf`) naming those servers and the request
//!   information, and no debug text. The originator then comes back with tokens.
//! * Direct procedure (7.3.2.2): otherwise each server is asked in turn through the
//!   [`DasConsultant`] (a NOTIFY with `securityInfo` sit 1), within the configured timeout.
//!   Granted privileges (`dai.gp`) become a dynamic policy for this originator and target,
//!   kept until their lifetime `pl` (bounded by the configured maximum); returned tokens
//!   are verified like request tokens (the DAS must be a trusted issuer) and kept with it.
//!   The decision then runs again. A server that fails, times out or answers garbage
//!   grants nothing. Dynamic ACP information counts only when it came over a security
//!   association whose peer was checked to be the DAS ([`DasAnswer::authenticated_das`]):
//!   over plain HTTP anyone on the path could write it.
//!
//! The dynamic grants live in memory only: a restart forgets them, and the next request
//! consults again.

use crate::tree::{Node, Ri, Tree};
use crate::Cse;
use bastion_policy::{AccessOperation, RuleSet, ValidatedToken};
use bastion_proto::security_info::{
    DasInfo, DynAuthDasRequest, DynAuthDasResponse, DynAuthTokenReqInfo, OriginatorIp,
};
use bastion_proto::time::Timestamp;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Most dynamic grants kept; beyond it expired ones are dropped, then all.
const MAX_GRANTS: usize = 10_000;

/// How the CSE reaches a DAS Server (implemented by the binary over the HTTP binding).
#[async_trait::async_trait]
pub trait DasConsultant: Send + Sync {
    /// Sends the dynamic authorization request to the DAS Server at `das_uri` and
    /// returns its answer, or why there is none.
    async fn consult(&self, das_uri: &str, request: DynAuthDasRequest)
        -> Result<DasAnswer, String>;
}

/// A DAS Server's answer and who gave it, as far as the transport can tell.
#[derive(Debug, Clone)]
pub struct DasAnswer {
    pub response: DynAuthDasResponse,
    /// The identity the security association to the DAS Server was bound to and checked
    /// against (its AE-ID), or `None` when the answer came without one (plain HTTP).
    /// Dynamic ACP information is accepted only with `Some`; tokens carry their own
    /// signature and are verified either way.
    pub authenticated_das: Option<String>,
}

/// Privileges a DAS granted one originator on one resource.
pub(crate) struct DynamicGrant {
    /// The `dap` URI that granted them (for the audit log).
    pub das: Box<str>,
    pub rules: Option<RuleSet>,
    pub tokens: Vec<Arc<ValidatedToken>>,
    /// Unix seconds.
    pub expires: i64,
}

/// (originator in absolute form, governing resource).
type GrantKey = (Box<str>, Ri);

/// The dynamic grants, by originator and resource.
#[derive(Default)]
pub(crate) struct DynamicGrants {
    entries: Mutex<HashMap<GrantKey, Arc<DynamicGrant>>>,
}

impl DynamicGrants {
    /// True when no grant was ever kept (the common case: no allocation per request).
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.lock().is_empty()
    }

    /// The live grant for `originator` on `ri`, if any.
    pub(crate) fn get(&self, originator: &str, ri: &Ri, now: i64) -> Option<Arc<DynamicGrant>> {
        let entries = self.entries.lock();
        let grant = entries.get(&(Box::from(originator), ri.clone()))?;
        (now < grant.expires).then(|| grant.clone())
    }

    fn put(&self, originator: &str, ri: Ri, grant: DynamicGrant, now: i64) {
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_GRANTS {
            entries.retain(|_, g| g.expires > now);
            if entries.len() >= MAX_GRANTS {
                entries.clear();
            }
        }
        entries.insert((originator.into(), ri), Arc::new(grant));
    }
}

/// The DAS Servers for `node`: the `dap` of every enabled `<dac>` named by the nearest
/// `daci` on the node or its ancestors.
pub(crate) fn das_servers(cse: &Cse, tree: &Tree, node: &Node) -> Vec<String> {
    let mut cur = Some(node);
    while let Some(n) = cur {
        if let Some(list) = n.attrs.get("daci").and_then(|v| v.as_array()) {
            let mut out = Vec::new();
            for id in list.iter().filter_map(|v| v.as_str()) {
                let dac = crate::authz_state::resolve_local(tree, &cse.config, id);
                if let Some(state) = dac.and_then(|d| d.dac()) {
                    if state.enabled {
                        out.extend(state.poa.iter().cloned());
                    }
                }
            }
            return out;
        }
        cur = n.pi.as_ref().and_then(|pi| tree.get(pi));
    }
    Vec::new()
}

/// What the PEP knows of a denied request, for the DAS.
pub(crate) struct Denied {
    pub originator: String,
    pub op: AccessOperation,
    pub target_ri: Ri,
    pub target_type: u16,
    pub peer: Option<IpAddr>,
    pub roles: Vec<String>,
    pub servers: Vec<String>,
    pub proposed_lifetime: Option<Timestamp>,
}

impl Denied {
    /// The `m2m:dynAuthDasRequest` describing the request (7.3.2.2 step 3).
    pub(crate) fn request(&self, now: Timestamp) -> DynAuthDasRequest {
        DynAuthDasRequest {
            or: self.originator.clone(),
            trt: Some(u64::from(self.target_type)),
            op: operation_number(self.op),
            oip: self.peer.map(|ip| match ip {
                IpAddr::V4(v4) => OriginatorIp {
                    ip4: Some(v4.to_string()),
                    ip6: None,
                },
                IpAddr::V6(v6) => OriginatorIp {
                    ip4: None,
                    ip6: Some(v6.to_string()),
                },
            }),
            orid: self.roles.clone(),
            rts: Some(now.format()),
            trid: Some(self.target_ri.to_string()),
            ppl: self.proposed_lifetime.map(|t| t.format()),
            ..DynAuthDasRequest::default()
        }
    }

    /// The `tqf` of the indirect procedure (7.3.2.3 step 2).
    pub(crate) fn token_request_info(&self, now: Timestamp) -> DynAuthTokenReqInfo {
        DynAuthTokenReqInfo {
            dasi: self
                .servers
                .iter()
                .map(|uri| DasInfo {
                    uri: uri.clone(),
                    dreq: Some(self.request(now)),
                    sdr: None,
                })
                .collect(),
        }
    }
}

/// `m2m:operation` numbers (TS-0004): Discovery is a Retrieve.
fn operation_number(op: AccessOperation) -> u64 {
    match op {
        AccessOperation::Create => 1,
        AccessOperation::Retrieve | AccessOperation::Discovery => 2,
        AccessOperation::Update => 3,
        AccessOperation::Delete => 4,
        AccessOperation::Notify => 5,
    }
}

impl Cse {
    /// The direct procedure: asks each server until one grants something, and keeps
    /// what it granted. Returns whether anything was granted.
    pub(crate) async fn consult_das(&self, denied: &Denied, now: Timestamp) -> bool {
        let Some(consultant) = self.das.as_ref() else {
            return false;
        };
        let timeout = Duration::from_millis(self.config.authorization.das_timeout_ms);
        for uri in &denied.servers {
            let asked = tokio::time::timeout(timeout, consultant.consult(uri, denied.request(now)));
            let answer = match asked.await {
                Ok(Ok(answer)) => answer,
                Ok(Err(why)) => {
                    tracing::warn!(das = %uri, reason = %why, "dynamic authorization failed");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(das = %uri, "dynamic authorization timed out");
                    continue;
                }
            };
            if let Some(grant) = self.accept_answer(uri, denied, answer, now) {
                self.dynamic
                    .put(&denied.originator, denied.target_ri.clone(), grant, now.0);
                return true;
            }
        }
        false
    }

    /// Turns a DAS answer into a grant (7.3.2.2 step 5): `gp` must parse as rules, tokens
    /// must verify; the lifetime is `pl` bounded by the configured maximum.
    fn accept_answer(
        &self,
        uri: &str,
        denied: &Denied,
        answer: DasAnswer,
        now: Timestamp,
    ) -> Option<DynamicGrant> {
        let DasAnswer {
            response: answer,
            authenticated_das,
        } = answer;
        if answer.dai.is_some() && authenticated_das.is_none() {
            tracing::warn!(
                das = %uri,
                "dynamic ACP info ignored: the DAS was not reached over an authenticated \
                 security association"
            );
        }
        let max = now
            .0
            .saturating_add(self.config.authorization.das_max_lifetime_secs);
        let mut expires = max;
        let trusted_dai = answer.dai.as_ref().filter(|_| authenticated_das.is_some());
        let rules = trusted_dai.and_then(|dai| {
            if let Some(pl) = dai.pl.as_deref().and_then(Timestamp::parse) {
                expires = expires.min(pl.0);
            }
            match RuleSet::parse(&dai.gp, &self.local) {
                Ok(rules) => Some(rules),
                Err(e) => {
                    tracing::warn!(das = %uri, reason = %e, "dynamic ACP info rejected");
                    None
                }
            }
        });
        let mut tokens = Vec::new();
        for jwt in &answer.tkns {
            match self.tokens.verify(jwt, &denied.originator, now.0) {
                Ok(token) => {
                    expires = expires.min(token.not_after);
                    tokens.push(token);
                }
                Err(e) => tracing::warn!(das = %uri, reason = %e, "token from DAS rejected"),
            }
        }
        if (rules.is_none() && tokens.is_empty()) || expires <= now.0 {
            return None;
        }
        Some(DynamicGrant {
            das: uri.into(),
            rules,
            tokens,
            expires,
        })
    }
}
