//! The Policy Enforcement Point and Policy Retrieval Point (TS-0003 6.2.2, 7.1.4): which
//! rules govern a request (TS-0001 9.6.1.3; security-access-control.md §3), handing them
//! to the pure decision point together with the request's context (time from the CSE
//! clock, transport peer address), and turning a deny into 4103. Every access decision
//! of the core goes through one [`Enforcer`], built once per request.

use crate::audit::AuditRule;
use crate::authz_state::resolve_local;
use crate::checks::Envelope;
use crate::dynamic::{self, Denied};
use crate::pip::RequestPip;
use crate::resolve::Target;
use crate::tree::{Node, Ri, Tree};
use crate::{Cse, RequestContext};
use bastion_policy::{
    decide, explain, is_owner, readable_attributes, AccessOperation, AccessRequest, Applicable,
    Attributes, Explanation, Grant, Location, Pip, PolicySource, ReadableAttributes,
};
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType};
use serde_json::Value;
use std::borrow::Cow;

/// Which rule set of the linked ACPs applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RuleKind {
    /// `pv`: operations on the resource.
    Privileges,
    /// `pvs`: changing the resource's `acpi` (TS-0001 9.6.1.3.2).
    SelfPrivileges,
}

/// What one decision asks: the operation, the type to create, the attributes touched.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Asked<'a> {
    pub op: AccessOperation,
    pub create_type: Option<u16>,
    pub attributes: Attributes<'a>,
}

impl Asked<'_> {
    /// `op` on the whole resource.
    pub(crate) fn whole(op: AccessOperation, create_type: Option<u16>) -> Asked<'static> {
        Asked {
            op,
            create_type,
            attributes: Attributes::Whole,
        }
    }
}

/// The access decision of one request: who asks (the originator, and what the pipeline
/// verified about it: the association's identity, `rq_authn`, roles, tokens, the
/// transport peer) and when (`rq_time`, fixed once from the CSE's clock). Built once per
/// request after the originator checks, it is the only way anything in the core decides
/// access: the addressed resource, group fan-out (`macp`), result shaping (nested
/// children, references, discovery, filters on neighbours), the re-checks of
/// notifications (for the subscription's creator, as it was authenticated) and the
/// operator explanations.
pub(crate) struct Enforcer<'a> {
    cse: &'a Cse,
    /// Owned for a request, whose typed parts move on to the operation.
    originator: Cow<'a, str>,
    ctx: &'a RequestContext,
    now: Timestamp,
    /// `tqi`: a deny that a DAS could lift answers with token-request information
    /// (TS-0003 7.3.2.3) instead of consulting it.
    token_request: bool,
}

impl<'a> Enforcer<'a> {
    /// Decisions for `originator` in `ctx` at `now`, outside a request of its own (a
    /// notification's re-check, an explanation).
    pub(crate) fn new(
        cse: &'a Cse,
        originator: &'a str,
        ctx: &'a RequestContext,
        now: Timestamp,
    ) -> Enforcer<'a> {
        Enforcer {
            cse,
            originator: Cow::Borrowed(originator),
            ctx,
            now,
            token_request: false,
        }
    }

    /// The decisions of the request `req`, which arrived in the verified `ctx`.
    pub(crate) fn for_request(
        cse: &'a Cse,
        req: &Envelope,
        ctx: &'a RequestContext,
        now: Timestamp,
    ) -> Enforcer<'a> {
        Enforcer {
            cse,
            originator: Cow::Owned(req.fr.clone()),
            ctx,
            now,
            token_request: req.tqi,
        }
    }

    /// The originator decided for.
    pub(crate) fn originator(&self) -> &str {
        &self.originator
    }

    /// The verified context of the request.
    pub(crate) fn ctx(&self) -> &'a RequestContext {
        self.ctx
    }

    /// `rq_time`: the request's "now".
    pub(crate) fn now(&self) -> Timestamp {
        self.now
    }

    /// Decides `op` on `target` for the request's originator; `Err(4103)` on deny. On a
    /// grant, returns the deciding rule (for the audit log). When the local decision
    /// denies and the target is linked to a Dynamic Authorization Server, the dynamic
    /// procedures of TS-0003 7.3 run first (`dynamic.rs`).
    pub(crate) async fn authorize(
        &self,
        target: &Target,
        op: AccessOperation,
        create_type: Option<u16>,
    ) -> Result<AuditRule, RequestError> {
        self.authorize_attributes(target, op, create_type, Attributes::Whole)
            .await
    }

    /// [`Self::authorize`] for a request that reads or writes only `attributes` (a
    /// partial RETRIEVE, a CREATE or UPDATE): a rule limited by `aca` grants it when its
    /// list covers them (attribute-level access control, TS-0004 R4 `aca`).
    pub(crate) async fn authorize_attributes(
        &self,
        target: &Target,
        op: AccessOperation,
        create_type: Option<u16>,
        attributes: Attributes<'_>,
    ) -> Result<AuditRule, RequestError> {
        self.decide(target, op, create_type, attributes, true).await
    }

    /// [`Self::authorize`] of a whole RETRIEVE whose denial may still be answered with
    /// the attributes an `aca`-limited rule lets the originator read: a denial is not
    /// audited here; the caller audits it ([`Self::audit_read_denied`]) when nothing can
    /// be shown.
    pub(crate) async fn authorize_read_unaudited(
        &self,
        target: &Target,
    ) -> Result<AuditRule, RequestError> {
        let (op, whole) = (AccessOperation::Retrieve, Attributes::Whole);
        self.decide(target, op, None, whole, false).await
    }

    /// Audits the denial of a RETRIEVE of `target` that
    /// [`Self::authorize_read_unaudited`] refused and nothing else granted.
    pub(crate) fn audit_read_denied(&self, target: &Target) {
        let path = self
            .cse
            .tree
            .read()
            .get(target.governing())
            .map(|node| node.path.clone());
        if let Some(path) = path {
            self.audit_deny(&path, AccessOperation::Retrieve);
        }
    }

    async fn decide(
        &self,
        target: &Target,
        op: AccessOperation,
        create_type: Option<u16>,
        attributes: Attributes<'_>,
        audit: bool,
    ) -> Result<AuditRule, RequestError> {
        let cse = self.cse;
        let explain_to_client = cse.config.explain_denials_to_client;
        let (why, denied, path) = {
            let tree = cse.tree.read();
            let node = tree
                .get(target.governing())
                .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
            if node.ty == ResourceType::PollingChannel {
                return self.polling_channel_owner(&tree, node);
            }
            let kind = RuleKind::Privileges;
            let asked = Asked {
                op,
                create_type,
                attributes,
            };
            match self.evaluate(&tree, node, asked, kind, explain_to_client) {
                Ok(rule) => return Ok(rule),
                Err(why) => {
                    let servers = dynamic::das_servers(cse, &tree, node);
                    let denied = (!servers.is_empty()).then(|| Denied {
                        originator: bastion_policy::normalize_originator(
                            &cse.local,
                            &self.originator,
                        ),
                        op,
                        target_ri: node.ri.clone(),
                        target_type: node.ty.number(),
                        peer: self.ctx.peer.map(|p| p.ip()),
                        roles: self.ctx.roles.iter().map(|r| r.to_string()).collect(),
                        servers,
                        proposed_lifetime: None,
                    });
                    (why, denied, node.path.clone())
                }
            }
        };
        if let Some(denied) = denied {
            if self.token_request {
                // Indirect procedure (TS-0003 7.3.2.3 step 2): no debug text, only `tqf`.
                if audit {
                    self.audit_deny(&path, op);
                }
                let tqf = denied.token_request_info(self.now).to_value();
                return Err(RequestError::TokenRequestInfo(Box::new(
                    serde_json::json!({ "m2m:dynAuthTokenReqInfo": tqf }),
                )));
            }
            if cse.consult_das(&denied, self.now).await {
                let tree = cse.tree.read();
                if let Some(node) = tree.get(target.governing()) {
                    let kind = RuleKind::Privileges;
                    let asked = Asked {
                        op,
                        create_type,
                        attributes,
                    };
                    if let Ok(rule) = self.evaluate(&tree, node, asked, kind, false) {
                        return Ok(rule);
                    }
                }
            }
        }
        if audit {
            self.audit_deny(&path, op);
        }
        Err(denial(why, explain_to_client))
    }

    /// The group-level decision of a fan-out whose `<group>` sets `macp` (TS-0001 9.6.13):
    /// only the `pv` of the ACPs in `acps` (those `macp` names that exist) apply; no
    /// token, dynamic grant or default policy. Fails closed: no ACP grants nobody but
    /// the administrator. A deny is audited and reveals nothing of the policy.
    pub(crate) fn authorize_members(
        &self,
        tree: &Tree,
        group: &Node,
        acps: &[Ri],
        op: AccessOperation,
        create_type: Option<u16>,
    ) -> Result<(), RequestError> {
        let sources: Vec<PolicySource<'_>> = acps
            .iter()
            .filter_map(|ri| {
                let acp = tree.get(ri)?.acp()?;
                Some(PolicySource {
                    acp_id: ri,
                    rules: &acp.pv,
                })
            })
            .collect();
        let pip = RequestPip::new(self.cse, tree, &self.originator, self.ctx);
        let request = self.access_request(&pip, group, Asked::whole(op, create_type));
        if decide(&self.cse.local, &request, &Applicable::Policies(&sources))
            .grant
            .is_some()
        {
            return Ok(());
        }
        self.audit_deny(&group.path, op);
        Err(RequestError::NoPrivilege(
            "originator has no privilege".into(),
        ))
    }

    /// A `<pollingChannel>` has no ACPs: only its owner may touch it (TS-0001 9.6.21). A
    /// deny is audited.
    fn polling_channel_owner(&self, tree: &Tree, node: &Node) -> Result<AuditRule, RequestError> {
        if self.owns_polling_channel(tree, node) {
            return Ok(AuditRule::Creator);
        }
        self.audit_deny(&node.path, AccessOperation::Retrieve);
        Err(RequestError::NoPrivilege(
            "only the polling channel's owner may use it".into(),
        ))
    }

    /// Whether the originator owns the `<pollingChannel>` `node`, on an association that
    /// authenticated it when there is one: the whole access rule of a polling channel.
    pub(crate) fn owns_polling_channel(&self, tree: &Tree, node: &Node) -> bool {
        self.association_ok()
            && node
                .pi
                .as_ref()
                .and_then(|p| tree.get(p))
                .is_some_and(|parent| self.is_entity(parent))
    }

    /// Whether the originator is the `<AE>` or `<remoteCSE>` `entity` itself, on an
    /// association that authenticated it when there is one: who may give it a
    /// `<pollingChannel>` (TS-0001 9.6.21).
    pub(crate) fn is_entity_itself(&self, entity: &Node) -> bool {
        self.association_ok() && self.is_entity(entity)
    }

    /// Whether `entity`, an `<AE>` or `<remoteCSE>`, is the originator itself.
    fn is_entity(&self, entity: &Node) -> bool {
        let id = match entity.ty {
            ResourceType::Ae => entity.attrs.get("aei").and_then(Value::as_str),
            ResourceType::RemoteCse => entity.attrs.get("csi").and_then(Value::as_str),
            _ => None,
        };
        id.is_some_and(|id| {
            bastion_policy::normalize_originator(&self.cse.local, id)
                == bastion_policy::normalize_originator(&self.cse.local, &self.originator)
        })
    }

    /// Inside a security association, only an originator it authenticated passes the
    /// ownership rules.
    fn association_ok(&self) -> bool {
        self.ctx.identity.is_none() || self.ctx.authenticated
    }

    /// Decides `op` on `node` with the rules of kind `kind`. A deny is audited.
    pub(crate) fn authorize_node(
        &self,
        tree: &Tree,
        node: &Node,
        op: AccessOperation,
        create_type: Option<u16>,
        kind: RuleKind,
    ) -> Result<AuditRule, RequestError> {
        let explain_to_client = self.cse.config.explain_denials_to_client;
        let asked = Asked::whole(op, create_type);
        match self.evaluate(tree, node, asked, kind, explain_to_client) {
            Ok(rule) => Ok(rule),
            Err(why) => {
                self.audit_deny(&node.path, op);
                Err(denial(why, explain_to_client))
            }
        }
    }

    /// The operator endpoints (`/__bastion/explain`) admit only the administrator: no
    /// ACP governs them. 4103 otherwise.
    pub(crate) fn operator(&self) -> Result<(), RequestError> {
        if self.cse.is_admin(&self.originator) {
            Ok(())
        } else {
            Err(RequestError::NoPrivilege(
                "originator has no privilege".into(),
            ))
        }
    }

    /// Whether the PDP grants (no audit: used where a deny only hides a resource).
    pub(crate) fn permits(
        &self,
        tree: &Tree,
        node: &Node,
        op: AccessOperation,
        create_type: Option<u16>,
        kind: RuleKind,
    ) -> bool {
        self.evaluate(tree, node, Asked::whole(op, create_type), kind, false)
            .is_ok()
    }

    /// Whether `node` may appear in something built for the originator beside the
    /// resource it addressed: a nested child (`op` RETRIEVE), a child reference (`op`
    /// DISCOVER, as in discovery, TS-0001 10.2.6.2), or the representation a notification
    /// carries. It is the decision a direct request for `node` would get, except that no
    /// Dynamic Authorization Server is consulted for it (it cannot be, once per child):
    /// what the local rules, tokens and earlier grants do not permit stays out. No audit:
    /// a child left out is not a denied request. A `<pollingChannel>` is its owner's
    /// only, as for a direct request.
    pub(crate) fn may_include(&self, tree: &Tree, node: &Node, op: AccessOperation) -> bool {
        if node.ty == ResourceType::PollingChannel {
            return self.owns_polling_channel(tree, node);
        }
        self.permits(tree, node, op, None, RuleKind::Privileges)
    }

    /// How the decision of `op` on `node` goes, rule by rule, for an operator
    /// (`explain.rs`); `location` replaces the location service when given.
    pub(crate) fn explain(
        &self,
        tree: &Tree,
        node: &Node,
        op: AccessOperation,
        create_type: Option<u16>,
        location: Option<Location>,
    ) -> Explanation {
        let pip = RequestPip::new(self.cse, tree, &self.originator, self.ctx);
        // An explicit location replaces the location service; without one the service
        // is asked, as for a real request.
        let pip = match location {
            Some(l) => pip.with_location(Some(l)),
            None => pip,
        };
        let request = self.access_request(&pip, node, Asked::whole(op, create_type));
        with_applicable(tree, node, RuleKind::Privileges, |applicable| {
            explain(&self.cse.local, &request, applicable)
        })
    }

    /// The attributes of the resource `target` governs that the originator may read in a
    /// full RETRIEVE when no rule grants it the whole resource: the union of the `aca`
    /// lists of the `pv` rules that grant RETRIEVE in every other respect; `None` when
    /// there is none (tokens and dynamic grants then decided the request alone).
    pub(crate) fn readable_attributes(&self, target: &Target) -> Option<Vec<String>> {
        let tree = self.cse.tree.read();
        let node = tree.get(target.governing())?;
        let pip = RequestPip::new(self.cse, &tree, &self.originator, self.ctx);
        let asked = Asked::whole(AccessOperation::Retrieve, None);
        let request = self.access_request(&pip, node, asked);
        with_applicable(
            &tree,
            node,
            RuleKind::Privileges,
            |applicable| match readable_attributes(&self.cse.local, &request, applicable)? {
                ReadableAttributes::Whole => None,
                ReadableAttributes::Only(names) => {
                    Some(names.into_iter().map(str::to_owned).collect())
                }
            },
        )
    }

    /// Whether the originator may appoint or change the custodian (`cstn`) of `node`:
    /// its creator, its current custodian or the administrator (docs/decisions.md). A
    /// refusal is audited.
    pub(crate) fn authorize_custodian_change(&self, node: &Node) -> Result<(), RequestError> {
        let creator = node.creator.as_deref();
        if is_owner(&self.cse.local, &self.originator, creator, custodian(node)) {
            return Ok(());
        }
        self.audit_deny(&node.path, AccessOperation::Update);
        Err(RequestError::NoPrivilege(
            "only the creator or the custodian may change the custodian".into(),
        ))
    }

    /// Runs `f` with the PIP of this request's originator over `tree`: what a rule kept
    /// outside an ACP (a `<policyDeletionRules>` region) asks about the originator.
    pub(crate) fn with_pip<R>(&self, tree: &Tree, f: impl FnOnce(&dyn Pip) -> R) -> R {
        f(&RequestPip::new(self.cse, tree, &self.originator, self.ctx))
    }

    /// The PDP call. On deny the full explanation goes to the debug log, never to the
    /// client (it would reveal policy), and is returned when `explained` asks for it.
    pub(crate) fn evaluate(
        &self,
        tree: &Tree,
        node: &Node,
        asked: Asked<'_>,
        kind: RuleKind,
        explained: bool,
    ) -> Result<AuditRule, Option<Box<Explanation>>> {
        let cse = self.cse;
        let op = asked.op;
        let originator: &str = &self.originator;
        let pip = RequestPip::new(cse, tree, originator, self.ctx);
        let request = self.access_request(&pip, node, asked);
        with_applicable(tree, node, kind, |applicable| {
            let decision = decide(&cse.local, &request, applicable);
            if let Some(grant) = decision.grant {
                return Ok(deciding_rule(grant, applicable, node));
            }
            // Tokens (TS-0003 7.3.2.3 step 5, 7.3.2.4): the `pv` a token carries for this
            // resource is one more applicable policy; so is what a DAS granted (7.3.2.2
            // step 5). Never for `acpi` changes.
            if self.registration_reads_base(tree, node, op, kind, applicable) {
                return Ok(AuditRule::Registration);
            }
            if kind == RuleKind::Privileges {
                if let Some(rule) = cse.token_grant(tree, &self.ctx.tokens, node, &request) {
                    return Ok(rule);
                }
                if let Some(rule) = cse.dynamic_grant(tree, originator, node, &request) {
                    return Ok(rule);
                }
            }
            let debug = tracing::enabled!(tracing::Level::DEBUG);
            if !debug && !explained {
                return Err(None);
            }
            let why = explain(&cse.local, &request, applicable);
            if debug {
                tracing::debug!(target_ri = %node.ri, op = op.name(), originator, %why, "access denied");
            }
            Err(Some(Box::new(why)))
        })
    }

    /// The `<CSEBase>`'s default policy beyond the administrator: a registered AE or
    /// remote CSE may RETRIEVE it (TS-0004 7.4.4 and 7.4.7 read it while registering;
    /// peers check their registration with it), unless `[access]
    /// registered-retrieve-cse-base` is off. Inside a security association only the
    /// originator it authenticated qualifies; a relayed originator never does.
    fn registration_reads_base(
        &self,
        tree: &Tree,
        node: &Node,
        op: AccessOperation,
        kind: RuleKind,
        applicable: &Applicable<'_>,
    ) -> bool {
        self.cse.config.registered_retrieve_cse_base
            && node.ty == ResourceType::CseBase
            && op == AccessOperation::Retrieve
            && kind == RuleKind::Privileges
            && matches!(applicable, Applicable::Default { .. })
            && self.association_ok()
            && self
                .cse
                .registration_of(tree, &self.cse.absolute(&self.originator))
                .is_some()
    }

    /// The PDP's view of this request on `node`: `rq_time` from the CSE's clock as the
    /// enforcer was built; `rq_ip` from the transport peer only (forwarded-for headers
    /// are never trusted); location, country, groups and roles from the PIP (TS-0003
    /// 7.1.2 table 7.1.2-2, 7.4.3, annex F).
    fn access_request<'p>(
        &'p self,
        pip: &'p RequestPip<'_>,
        node: &Node,
        asked: Asked<'p>,
    ) -> AccessRequest<'p> {
        AccessRequest {
            originator: &self.originator,
            operation: asked.op,
            authenticated: self.ctx.authenticated,
            target_type: node.ty.number(),
            create_type: asked.create_type,
            time: Some(self.now.0),
            peer_ip: self.ctx.peer.map(|a| a.ip()),
            attributes: asked.attributes,
            pip,
        }
    }

    fn audit_deny(&self, path: &str, op: AccessOperation) {
        self.cse.audit_deny(&self.originator, self.ctx, path, op);
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
/// shared by decisions and explanations.
fn with_applicable<R>(
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
            custodian: custodian(node),
        },
    };
    f(&applicable)
}

/// The resource's custodian (`cstn`, TS-0001 R4), when it has one.
fn custodian(node: &Node) -> Option<&str> {
    node.attrs.get("cstn").and_then(Value::as_str)
}

/// A grant as the audit log names it: the rule's ACP by resource ID. It runs on every
/// granted request, so the ID is the tree's shared `Ri`, not a new string.
fn deciding_rule(grant: Grant, applicable: &Applicable<'_>, node: &Node) -> AuditRule {
    match grant {
        Grant::Admin => AuditRule::Admin,
        Grant::Creator => AuditRule::Creator,
        Grant::Custodian => AuditRule::Custodian,
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
