//! The Policy Enforcement Point and Policy Retrieval Point (TS-0003 6.2.2, 7.1.4): which
//! rules govern a request (TS-0001 9.6.1.3; security-access-control.md §3), handing them
//! to the pure decision point together with the request's context (time from the CSE
//! clock, transport peer address), and turning a deny into 4103.

use crate::audit::AuditRule;
use crate::authz_state::resolve_local;
use crate::checks::Checked;
use crate::dynamic::{self, Denied};
use crate::pip::RequestPip;
use crate::resolve::Target;
use crate::tree::{Node, Ri, Tree};
use crate::{Cse, RequestContext};
use bastion_policy::{
    decide, explain, AccessOperation, AccessRequest, Applicable, Explanation, Grant, PolicySource,
};
use bastion_proto::{RequestError, ResourceType};

/// Which rule set of the linked ACPs applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RuleKind {
    /// `pv`: operations on the resource.
    Privileges,
    /// `pvs`: changing the resource's `acpi` (TS-0001 9.6.1.3.2).
    SelfPrivileges,
}

impl Cse {
    /// Decides `op` on `target` for the request's originator; `Err(4103)` on deny. On a
    /// grant, returns the deciding rule (for the audit log). When the local decision
    /// denies and the target is linked to a Dynamic Authorization Server, the dynamic
    /// procedures of TS-0003 7.3 run first (`dynamic.rs`).
    pub(crate) async fn authorize(
        &self,
        req: &Checked,
        ctx: &RequestContext,
        target: &Target,
        op: AccessOperation,
        create_type: Option<u16>,
    ) -> Result<AuditRule, RequestError> {
        let explain_to_client = self.config.explain_denials_to_client;
        let (why, denied, path) = {
            let tree = self.tree.read();
            let node = tree
                .get(target.governing())
                .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
            if node.ty == bastion_proto::ResourceType::PollingChannel {
                return self.polling_channel_owner(&tree, req, ctx, node);
            }
            let kind = RuleKind::Privileges;
            match self.evaluate(
                &tree,
                &req.fr,
                ctx,
                node,
                op,
                create_type,
                kind,
                explain_to_client,
            ) {
                Ok(rule) => return Ok(rule),
                Err(why) => {
                    let servers = dynamic::das_servers(self, &tree, node);
                    let denied = (!servers.is_empty()).then(|| Denied {
                        originator: bastion_policy::normalize_originator(&self.local, &req.fr),
                        op,
                        target_ri: node.ri.clone(),
                        target_type: node.ty.number(),
                        peer: ctx.peer.map(|p| p.ip()),
                        roles: ctx.roles.iter().map(|r| r.to_string()).collect(),
                        servers,
                        proposed_lifetime: None,
                    });
                    (why, denied, node.path.clone())
                }
            }
        };
        if let Some(denied) = denied {
            let now = crate::now();
            if req.tqi {
                // Indirect procedure (TS-0003 7.3.2.3 step 2): no debug text, only `tqf`.
                self.audit_deny(&req.fr, ctx, &path, op);
                let tqf = denied.token_request_info(now).to_value();
                return Err(RequestError::TokenRequestInfo(Box::new(
                    serde_json::json!({ "m2m:dynAuthTokenReqInfo": tqf }),
                )));
            }
            if self.consult_das(&denied, now).await {
                let tree = self.tree.read();
                if let Some(node) = tree.get(target.governing()) {
                    let kind = RuleKind::Privileges;
                    if let Ok(rule) =
                        self.evaluate(&tree, &req.fr, ctx, node, op, create_type, kind, false)
                    {
                        return Ok(rule);
                    }
                }
            }
        }
        self.audit_deny(&req.fr, ctx, &path, op);
        Err(denial(why, explain_to_client))
    }

    /// A `<pollingChannel>` has no ACPs: only its owner may touch it (TS-0001 9.6.21). A
    /// deny is audited.
    fn polling_channel_owner(
        &self,
        tree: &Tree,
        req: &Checked,
        ctx: &RequestContext,
        node: &Node,
    ) -> Result<AuditRule, RequestError> {
        if self.owns_polling_channel(tree, &req.fr, ctx, node) {
            return Ok(AuditRule::Creator);
        }
        self.audit_deny(&req.fr, ctx, &node.path, AccessOperation::Retrieve);
        Err(RequestError::NoPrivilege(
            "only the polling channel's owner may use it".into(),
        ))
    }

    /// Whether `originator` owns the `<pollingChannel>` `node`, on an association that
    /// authenticated it when there is one: the whole access rule of a polling channel.
    fn owns_polling_channel(
        &self,
        tree: &Tree,
        originator: &str,
        ctx: &RequestContext,
        node: &Node,
    ) -> bool {
        let association_ok = ctx.identity.is_none() || ctx.authenticated;
        association_ok && crate::types::owns(self, tree, node, originator)
    }

    /// Decides `op` on `node` with the rules of kind `kind`. A deny is audited.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn authorize_node(
        &self,
        tree: &Tree,
        originator: &str,
        ctx: &RequestContext,
        node: &Node,
        op: AccessOperation,
        create_type: Option<u16>,
        kind: RuleKind,
    ) -> Result<AuditRule, RequestError> {
        let explain_to_client = self.config.explain_denials_to_client;
        match self.evaluate(
            tree,
            originator,
            ctx,
            node,
            op,
            create_type,
            kind,
            explain_to_client,
        ) {
            Ok(rule) => Ok(rule),
            Err(why) => {
                self.audit_deny(originator, ctx, &node.path, op);
                Err(denial(why, explain_to_client))
            }
        }
    }

    /// Whether the PDP grants (no audit: used where a deny only hides a resource).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn permits(
        &self,
        tree: &Tree,
        originator: &str,
        ctx: &RequestContext,
        node: &Node,
        op: AccessOperation,
        create_type: Option<u16>,
        kind: RuleKind,
    ) -> bool {
        self.evaluate(tree, originator, ctx, node, op, create_type, kind, false)
            .is_ok()
    }

    /// Whether `node` may appear in something built for `originator` beside the resource
    /// it addressed: a nested child (`op` RETRIEVE), a child reference (`op` DISCOVER, as
    /// in discovery, TS-0001 10.2.6.2), or the representation a notification carries. It
    /// is the decision a direct request for `node` would get, except that no Dynamic
    /// Authorization Server is consulted for it (it cannot be, once per child): what the
    /// local rules, tokens and earlier grants do not permit stays out. No audit: a child
    /// left out is not a denied request. A `<pollingChannel>` is its owner's only, as for
    /// a direct request.
    pub(crate) fn may_include(
        &self,
        tree: &Tree,
        originator: &str,
        ctx: &RequestContext,
        node: &Node,
        op: AccessOperation,
    ) -> bool {
        if node.ty == ResourceType::PollingChannel {
            return self.owns_polling_channel(tree, originator, ctx, node);
        }
        self.permits(tree, originator, ctx, node, op, None, RuleKind::Privileges)
    }

    /// The PDP call. On deny the full explanation goes to the debug log, never to the
    /// client (it would reveal policy), and is returned when `explained` asks for it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn evaluate(
        &self,
        tree: &Tree,
        originator: &str,
        ctx: &RequestContext,
        node: &Node,
        op: AccessOperation,
        create_type: Option<u16>,
        kind: RuleKind,
        explained: bool,
    ) -> Result<AuditRule, Option<Box<Explanation>>> {
        let pip = RequestPip::new(self, tree, originator, ctx);
        let request = AccessRequest {
            originator,
            operation: op,
            authenticated: ctx.authenticated,
            target_type: node.ty.number(),
            create_type,
            // `rq_time` from this CSE's clock; `rq_ip` from the transport peer only
            // (forwarded-for headers are never trusted); location, country, groups and
            // roles from the PIP (TS-0003 7.1.2 table 7.1.2-2, 7.4.3, annex F).
            time: Some(crate::now().0),
            peer_ip: ctx.peer.map(|a| a.ip()),
            pip: &pip,
        };
        with_applicable(tree, node, kind, |applicable| {
            let decision = decide(&self.local, &request, applicable);
            if let Some(grant) = decision.grant {
                return Ok(deciding_rule(grant, applicable, node));
            }
            // Tokens (TS-0003 7.3.2.3 step 5, 7.3.2.4): the `pv` a token carries for this
            // resource is one more applicable policy; so is what a DAS granted (7.3.2.2
            // step 5). Never for `acpi` changes.
            if kind == RuleKind::Privileges {
                if let Some(rule) = self.token_grant(tree, &ctx.tokens, node, &request) {
                    return Ok(rule);
                }
                if let Some(rule) = self.dynamic_grant(tree, originator, node, &request) {
                    return Ok(rule);
                }
            }
            let debug = tracing::enabled!(tracing::Level::DEBUG);
            if !debug && !explained {
                return Err(None);
            }
            let why = explain(&self.local, &request, applicable);
            if debug {
                tracing::debug!(target_ri = %node.ri, op = op.name(), originator, %why, "access denied");
            }
            Err(Some(Box::new(why)))
        })
    }
}

impl Cse {
    /// A live grant from a DAS for this originator on `node` that permits.
    fn dynamic_grant(
        &self,
        tree: &Tree,
        originator: &str,
        node: &Node,
        request: &AccessRequest<'_>,
    ) -> Option<AuditRule> {
        if self.dynamic.is_empty() {
            return None;
        }
        let now = request.time.unwrap_or(0);
        let who = bastion_policy::normalize_originator(&self.local, originator);
        let grant = self.dynamic.get(&who, &node.ri, now)?;
        if let Some(rules) = &grant.rules {
            let source = [PolicySource {
                acp_id: &grant.das,
                rules,
            }];
            if let Some(Grant::Rule { rule, .. }) =
                decide(&self.local, request, &Applicable::Policies(&source)).grant
            {
                return Some(AuditRule::Dynamic {
                    das: grant.das.clone(),
                    rule,
                });
            }
        }
        self.token_grant(tree, &grant.tokens, node, request)
    }

    /// The first rule of `tokens` that names `node` in `ris` and permits.
    fn token_grant(
        &self,
        tree: &Tree,
        tokens: &[std::sync::Arc<bastion_policy::ValidatedToken>],
        node: &Node,
        request: &AccessRequest<'_>,
    ) -> Option<AuditRule> {
        for token in tokens {
            for permission in &token.permissions {
                let Some(rules) = &permission.rules else {
                    continue;
                };
                // `ris` entries name resources in any ID form (TS-0003 7.3.2.6).
                let names_node = |id: &String| {
                    resolve_local(tree, &self.config, id).is_some_and(|n| n.ri == node.ri)
                };
                if !permission.resources.iter().any(names_node) {
                    continue;
                }
                let source = [PolicySource {
                    acp_id: &token.token_id,
                    rules,
                }];
                if let Some(Grant::Rule { rule, .. }) =
                    decide(&self.local, request, &Applicable::Policies(&source)).grant
                {
                    return Some(AuditRule::Token {
                        token: token.token_id.as_str().into(),
                        rule,
                    });
                }
            }
        }
        None
    }
}

/// The 4103 of a deny: the one-line explanation when the operator allows it, otherwise a
/// fixed text that reveals nothing of the policy.
fn denial(why: Option<Box<Explanation>>, explain_to_client: bool) -> RequestError {
    let message = match why {
        Some(why) if explain_to_client => why.to_string(),
        _ => "originator has no privilege".to_owned(),
    };
    RequestError::NoPrivilege(message.into())
}

/// Runs `f` on the rules that govern `node` (see [`applicable_sources`]): the PRP step
/// shared by the PEP and by [`Cse::explain`](crate::Cse::explain).
pub(crate) fn with_applicable<R>(
    tree: &Tree,
    node: &Node,
    kind: RuleKind,
    f: impl FnOnce(&Applicable<'_>) -> R,
) -> R {
    let sources = applicable_sources(tree, node, kind);
    let applicable = match &sources {
        Some(sources) => Applicable::Policies(sources),
        None => Applicable::Default {
            creator: node.creator.as_deref(),
        },
    };
    f(&applicable)
}

/// A grant as the audit log names it: the rule's ACP by resource ID. It runs on every
/// granted request, so the ID is the tree's shared `Ri`, not a new string.
fn deciding_rule(grant: Grant, applicable: &Applicable<'_>, node: &Node) -> AuditRule {
    match grant {
        Grant::Admin => AuditRule::Admin,
        Grant::Creator => AuditRule::Creator,
        Grant::Rule { source, rule } => {
            let acp_id = match applicable {
                Applicable::Policies(sources) => sources.get(source).map_or("", |s| s.acp_id),
                Applicable::Default { .. } => "",
            };
            let acp = if node.ty == ResourceType::AccessControlPolicy {
                node.ri.clone()
            } else {
                // Sources are built from these same IDs (applicable_sources).
                node.acpi
                    .iter()
                    .find(|ri| &***ri == acp_id)
                    .cloned()
                    .unwrap_or_else(|| Ri::from(acp_id))
            };
            AuditRule::Rule { acp, rule }
        }
    }
}

/// The rule sets governing `node`: its own `pvs` for an ACP, else the `pv` (or `pvs`) of
/// every ACP its `acpi` names. `None` means the default policy applies (empty `acpi`).
/// A named ACP that no longer exists contributes nothing, so it can only narrow access.
fn applicable_sources<'t>(
    tree: &'t Tree,
    node: &'t Node,
    kind: RuleKind,
) -> Option<Vec<PolicySource<'t>>> {
    if node.ty == ResourceType::AccessControlPolicy {
        let acp = node.acp()?;
        return Some(vec![PolicySource {
            acp_id: &node.ri,
            rules: &acp.pvs,
        }]);
    }
    if node.acpi.is_empty() {
        return None;
    }
    Some(
        node.acpi
            .iter()
            .filter_map(|ri| {
                let acp = tree.get(ri)?.acp()?;
                Some(PolicySource {
                    acp_id: ri,
                    rules: match kind {
                        RuleKind::Privileges => &acp.pv,
                        RuleKind::SelfPrivileges => &acp.pvs,
                    },
                })
            })
            .collect(),
    )
}
