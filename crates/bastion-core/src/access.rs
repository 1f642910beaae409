//! The Policy Enforcement Point and Policy Retrieval Point (TS-0003 6.2.2, 7.1.4): which
//! rules govern a request (TS-0001 9.6.1.3; security-access-control.md §3), handing them
//! to the pure decision point together with the request's context (time from the CSE
//! clock, transport peer address), and turning a deny into 4103.

use crate::audit::AuditRule;
use crate::checks::Checked;
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
    /// grant, returns the deciding rule (for the audit log).
    pub(crate) fn authorize(
        &self,
        req: &Checked,
        ctx: &RequestContext,
        target: &Target,
        op: AccessOperation,
        create_type: Option<u16>,
    ) -> Result<AuditRule, RequestError> {
        let tree = self.tree.read();
        let node = tree
            .get(target.governing())
            .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
        self.authorize_node(
            &tree,
            &req.fr,
            ctx,
            node,
            op,
            create_type,
            RuleKind::Privileges,
        )
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
                let message = match why {
                    Some(why) if explain_to_client => why.to_string(),
                    _ => "originator has no privilege".to_owned(),
                };
                Err(RequestError::NoPrivilege(message.into()))
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

    /// The PDP call. On deny the full explanation goes to the debug log, never to the
    /// client (it would reveal policy), and is returned when `explained` asks for it.
    #[allow(clippy::too_many_arguments)]
    fn evaluate(
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
        let request = AccessRequest {
            originator,
            operation: op,
            authenticated: ctx.authenticated,
            target_type: node.ty.number(),
            create_type,
            // `rq_time` from this CSE's clock; `rq_ip` from the transport peer only
            // (forwarded-for headers are never trusted); no location PIP exists yet, so
            // `aclr` fails closed (TS-0003 7.1.2 table 7.1.2-2, annex F).
            time: Some(crate::now().0),
            peer_ip: ctx.peer.map(|a| a.ip()),
            location: None,
        };
        with_applicable(tree, node, kind, |applicable| {
            let decision = decide(&self.local, &request, applicable);
            if let Some(grant) = decision.grant {
                return Ok(deciding_rule(grant, applicable, node));
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
        let acp = node.acp.as_ref()?;
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
                let acp = tree.get(ri)?.acp.as_ref()?;
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
