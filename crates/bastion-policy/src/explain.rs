//! The on-demand explanation of a decision: for every candidate rule, each TS-0003 7.1.5
//! condition with whether it held and why, and for every `acor` entry whether it matched.
//!
//! This path allocates freely; it is meant for the deny path (the `m2m:dbg` of a 4103)
//! and for operator tooling. It never decides on its own: each condition is computed by
//! the very functions [`crate::decide`] uses, in the same order, so the grant reported here
//! is always the verdict `decide` returns. `Display` gives a one-line reason; `Serialize`
//! gives the full structure.

use crate::decide::{default_grant, is_admin, is_creator};
use crate::originator::{normalize_originator, EntryKind, Subject};
use crate::rules::{ObjectDetails, Rule};
use crate::{
    AccessOperation, AccessRequest, Applicable, Attributes, Decision, Grant, LocalIdentity,
};
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// Longest originator/ACP-ID shown in the one-line reason before it is cut.
const SHOWN_MAX: usize = 64;

/// Everything that went into one decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `From` as received.
    pub originator: String,
    /// `From` in absolute form (what was compared).
    pub normalized_originator: String,
    pub operation: AccessOperation,
    pub authenticated: bool,
    pub target_type: u16,
    pub create_type: Option<u16>,
    /// `rq_time`, Unix seconds (UTC), when known.
    pub time: Option<i64>,
    /// `rq_ip`, when known.
    pub peer_ip: Option<IpAddr>,
    /// `rq_loc` as `latitude,longitude`, when known.
    pub location: Option<String>,
    /// The originator's country (for `accc`), when known.
    pub country: Option<String>,
    /// The originator is the configured administrator.
    pub admin: bool,
    /// The verdict; identical to [`crate::decide`]'s.
    pub grant: Option<Grant>,
    /// How the applicable rules were evaluated.
    pub basis: Basis,
}

/// The applicable-rule part of an explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Basis {
    /// No `acpi`: default access policy.
    Default {
        creator: Option<String>,
        normalized_creator: Option<String>,
        is_creator: bool,
        /// The custodian (`cstn`): when set, it alone has access (the creator none).
        custodian: Option<String>,
    },
    /// Permit-overrides over these sources.
    Policies { sources: Vec<SourceExplanation> },
}

/// One ACP's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceExplanation {
    pub acp_id: String,
    pub rules: Vec<RuleExplanation>,
}

/// One rule: every condition, and every originator entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleExplanation {
    /// Index of the rule in its set.
    pub rule: usize,
    /// All conditions held.
    pub permits: bool,
    /// In order: operation, authentication, context, object details, originator, attributes.
    pub checks: Vec<Check>,
    pub originators: Vec<EntryExplanation>,
    /// Every `acco` element against the request context (empty when there is no `acco`).
    pub contexts: Vec<ContextExplanation>,
}

/// One `acco` element: whether it held, and each of its sub-parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextExplanation {
    /// Index of the element in `acco`.
    pub element: usize,
    /// Every sub-parameter held (and there was at least one).
    pub holds: bool,
    /// One line: all parts when the element holds, else the parts that failed.
    pub reason: String,
    /// The sub-parameters present, in the order time, IP, location.
    pub parts: Vec<ContextPart>,
}

/// One sub-parameter of an `acco` element against the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextPart {
    pub parameter: ContextParameter,
    pub holds: bool,
    pub reason: String,
}

/// The context sub-parameters of TS-0003 7.1.2 table 7.1.2-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextParameter {
    /// `actw` vs `rq_time`
    Time,
    /// `acip` vs `rq_ip`
    Ip,
    /// `aclr` vs `rq_loc`
    Location,
}

/// One condition of TS-0003 7.1.5 `rule_ok(k)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub condition: Condition,
    pub holds: bool,
    pub reason: String,
}

/// The five per-rule conditions of TS-0003 7.1.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// `acop`
    Operation,
    /// `acaf` vs `rq_authn`
    Authentication,
    /// `acco`
    Context,
    /// `acod`
    ObjectDetails,
    /// `acor`
    Originator,
    /// `aca` vs the attributes the request reads or writes
    Attributes,
}

/// One `acor` entry against the originator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryExplanation {
    pub entry: String,
    pub normalized: String,
    pub kind: EntryKind,
    pub matches: bool,
    /// For group, role and malformed entries: what was looked up and found.
    pub note: Option<String>,
}

impl Explanation {
    /// The verdict as a [`Decision`].
    pub fn decision(&self) -> Decision {
        Decision { grant: self.grant }
    }

    /// True when the request is permitted.
    pub fn granted(&self) -> bool {
        self.grant.is_some()
    }

    /// Every rule explanation with its source index.
    fn all_rules(&self) -> impl Iterator<Item = (&SourceExplanation, &RuleExplanation)> {
        let sources: &[SourceExplanation] = match &self.basis {
            Basis::Policies { sources } => sources,
            Basis::Default { .. } => &[],
        };
        sources
            .iter()
            .flat_map(|s| s.rules.iter().map(move |r| (s, r)))
    }
}

/// Explains how `req` is decided against `applicable`. Same verdict as [`crate::decide`].
pub fn explain(
    local: &LocalIdentity,
    req: &AccessRequest<'_>,
    applicable: &Applicable<'_>,
) -> Explanation {
    let subject = Subject::new(local, req.originator);
    let admin = is_admin(local, &subject);
    let mut grant = admin.then_some(Grant::Admin);

    let basis = match applicable {
        Applicable::Default { creator, custodian } => {
            let owner = default_grant(local, &subject, *creator, *custodian);
            if grant.is_none() {
                grant = owner;
            }
            Basis::Default {
                creator: creator.map(str::to_owned),
                normalized_creator: creator.map(|c| normalize_originator(local, c)),
                is_creator: is_creator(local, &subject, *creator),
                custodian: custodian.map(str::to_owned),
            }
        }
        Applicable::Policies(sources) => {
            let mut out = Vec::with_capacity(sources.len());
            for (s, source) in sources.iter().enumerate() {
                let mut rules = Vec::with_capacity(source.rules.len());
                for (r, rule) in source.rules.rules().iter().enumerate() {
                    let explained = explain_rule(r, rule, req, &subject);
                    debug_assert_eq!(explained.permits, rule.permits(req, &subject));
                    if grant.is_none() && explained.permits {
                        grant = Some(Grant::Rule { source: s, rule: r });
                    }
                    rules.push(explained);
                }
                out.push(SourceExplanation {
                    acp_id: source.acp_id.to_owned(),
                    rules,
                });
            }
            Basis::Policies { sources: out }
        }
    };

    Explanation {
        originator: req.originator.to_owned(),
        normalized_originator: normalize_originator(local, req.originator),
        operation: req.operation,
        authenticated: req.authenticated,
        target_type: req.target_type,
        create_type: req.create_type,
        time: req.time,
        peer_ip: req.peer_ip,
        location: req
            .pip
            .location()
            .map(|l| format!("{},{}", l.latitude, l.longitude)),
        country: req.pip.country().map(|c| c.to_string()),
        admin,
        grant,
        basis,
    }
}

fn explain_rule(
    index: usize,
    rule: &Rule,
    req: &AccessRequest<'_>,
    subject: &Subject<'_>,
) -> RuleExplanation {
    let op = req.operation;
    let mut checks = Vec::with_capacity(6);

    // TS-0004 6.3.4.2.29: acop bit of the requested operation.
    let holds = rule.op_ok(op);
    checks.push(Check {
        condition: Condition::Operation,
        holds,
        reason: format!(
            "acop {} {} {op} ({})",
            rule.operations(),
            if holds {
                "includes"
            } else {
                "does not include"
            },
            op.bit()
        ),
    });

    // TS-0003 7.1.5 table 7.1.5-1: acaf vs rq_authn.
    let holds = rule.authn_ok(req.authenticated);
    checks.push(Check {
        condition: Condition::Authentication,
        holds,
        reason: if !rule.requires_authentication() {
            "acaf absent or false: no authentication required".to_owned()
        } else if holds {
            "acaf requires an authenticated originator: it is".to_owned()
        } else {
            "acaf requires an authenticated originator: it is not".to_owned()
        },
    });

    // TS-0003 7.1.2/7.1.5 ctx_ok: OR over elements, AND inside one.
    let contexts: Vec<ContextExplanation> = rule
        .contexts()
        .iter()
        .enumerate()
        .map(|(i, c)| c.explain(i, req))
        .collect();
    let holds = rule.ctx_ok(req);
    checks.push(Check {
        condition: Condition::Context,
        holds,
        reason: context_reason(&contexts),
    });

    // TS-0003 7.1.5 objd_ok.
    checks.push(Check {
        condition: Condition::ObjectDetails,
        holds: rule.objd_ok(req),
        reason: object_details_reason(rule, req),
    });

    // TS-0003 7.1.3 orig_ok.
    let originators: Vec<EntryExplanation> = rule
        .originators()
        .iter()
        .map(|e| EntryExplanation {
            entry: e.raw().to_owned(),
            normalized: e.normalized().to_owned(),
            kind: e.kind(),
            matches: e.matches(subject, req.pip),
            note: e.note(subject, req.pip),
        })
        .collect();
    let holds = rule.orig_ok(subject, req.pip);
    checks.push(Check {
        condition: Condition::Originator,
        holds,
        reason: originator_reason(holds, subject, &originators),
    });

    // R4 attribute-level access control: aca vs the request's attributes.
    checks.push(Check {
        condition: Condition::Attributes,
        holds: rule.attr_ok(req.attributes),
        reason: attributes_reason(rule, req.attributes),
    });

    RuleExplanation {
        rule: index,
        permits: checks.iter().all(|c| c.holds),
        checks,
        originators,
        contexts,
    }
}

fn context_reason(contexts: &[ContextExplanation]) -> String {
    if contexts.is_empty() {
        return "no acco: no context constraint".to_owned();
    }
    if let Some(c) = contexts.iter().find(|c| c.holds) {
        return format!("acco[{}] holds: {}", c.element, c.reason);
    }
    let why: Vec<String> = contexts
        .iter()
        .map(|c| format!("[{}] {}", c.element, c.reason))
        .collect();
    format!("no acco element holds: {}", why.join("; "))
}

fn object_details_reason(rule: &Rule, req: &AccessRequest<'_>) -> String {
    let details = rule.object_details();
    if details.is_empty() {
        return "no acod: no object constraint".to_owned();
    }
    if req.operation != AccessOperation::Create {
        return "acod constrains CREATE only (TS-0003 7.1.5)".to_owned();
    }
    let child = req
        .create_type
        .map_or_else(|| "an unknown type".to_owned(), |c| format!("ty {c}"));
    if let Some(i) = details
        .iter()
        .position(|d| d.allows(req.target_type, req.create_type))
    {
        return format!(
            "acod[{i}] allows creating {child} under ty {}",
            req.target_type
        );
    }
    let why: Vec<String> = details
        .iter()
        .enumerate()
        .map(|(i, d)| format!("[{i}] {}", element_failure(d, req)))
        .collect();
    format!(
        "no acod element allows creating {child} under ty {}: {}",
        req.target_type,
        why.join("; ")
    )
}

fn element_failure(d: &ObjectDetails, req: &AccessRequest<'_>) -> String {
    if let Some(t) = d.target_type().filter(|&t| t != req.target_type) {
        return format!("ty {t} is not the target type");
    }
    if d.specialization().is_some() {
        return "spty present: specializations not evaluated yet".to_owned();
    }
    match req.create_type {
        None => "type to create unknown".to_owned(),
        Some(c) => format!("ty {c} not in chty {:?}", d.child_types()),
    }
}

fn attributes_reason(rule: &Rule, attributes: Attributes<'_>) -> String {
    let Some(aca) = rule.attributes() else {
        return "no aca: the rule covers every attribute".to_owned();
    };
    match attributes {
        Attributes::Whole => format!("aca {aca:?} does not cover the whole resource"),
        Attributes::Named(names) => match names.iter().find(|n| !aca.iter().any(|a| &**a == **n)) {
            None => format!("aca {aca:?} covers {names:?}"),
            Some(n) => format!("aca {aca:?} does not cover '{n}'"),
        },
    }
}

fn originator_reason(holds: bool, subject: &Subject<'_>, entries: &[EntryExplanation]) -> String {
    if subject.is_empty() {
        return "empty originator matches no entry".to_owned();
    }
    if let Some(e) = entries.iter().find(|e| e.matches) {
        return format!("entry '{}' matches", e.entry);
    }
    debug_assert!(!holds);
    let malformed = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Malformed)
        .count();
    let mut reason = if entries.is_empty() {
        "acor is empty".to_owned()
    } else {
        "no entry matches".to_owned()
    };
    if malformed > 0 {
        reason.push_str(&format!(
            " ({malformed} malformed entr{} never match)",
            if malformed == 1 { "y" } else { "ies" }
        ));
    }
    reason
}

/// Cuts `s` to [`SHOWN_MAX`] characters for the one-line reason.
fn shown(s: &str) -> String {
    if s.chars().count() <= SHOWN_MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(SHOWN_MAX).collect();
        out.push('…');
        out
    }
}

impl fmt::Display for Explanation {
    /// One line, suitable for an `m2m:dbg`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.operation;
        let who = if self.originator.is_empty() {
            "an empty originator".to_owned()
        } else {
            shown(&self.originator)
        };
        match self.grant {
            Some(Grant::Admin) => write!(f, "{op} granted: {who} is the CSE administrator"),
            Some(Grant::Creator) => write!(
                f,
                "{op} granted: {who} created the resource (default access policy)"
            ),
            Some(Grant::Custodian) => write!(
                f,
                "{op} granted: {who} is the resource's custodian (default access policy)"
            ),
            Some(Grant::Rule { source, rule }) => {
                let acp = match &self.basis {
                    Basis::Policies { sources } => sources
                        .get(source)
                        .map_or_else(String::new, |s| shown(&s.acp_id)),
                    Basis::Default { .. } => String::new(),
                };
                write!(f, "{op} granted by rule {rule} of {acp}")
            }
            None => match &self.basis {
                Basis::Default {
                    creator: None,
                    custodian: None,
                    ..
                } => write!(
                    f,
                    "no access control policy and no known creator: {op} denied to {who}"
                ),
                Basis::Default {
                    custodian: Some(_), ..
                } => write!(
                    f,
                    "default access policy: only the custodian has access, {op} denied to {who}"
                ),
                Basis::Default { .. } => write!(
                    f,
                    "default access policy: only the creator has access, {op} denied to {who}"
                ),
                Basis::Policies { .. } => {
                    write!(f, "no rule grants {op} to {who}")?;
                    if self.all_rules().next().is_none() {
                        return f.write_str(" (no rules apply)");
                    }
                    // Point at the rule that came closest: first one that names the
                    // originator and the operation but still failed (usually the
                    // surprising case), else the first that names the originator.
                    let holds = |r: &RuleExplanation, cond: Condition| {
                        r.checks.iter().any(|c| c.condition == cond && c.holds)
                    };
                    let near = self
                        .all_rules()
                        .find(|(_, r)| {
                            holds(r, Condition::Originator) && holds(r, Condition::Operation)
                        })
                        .or_else(|| {
                            self.all_rules()
                                .find(|(_, r)| holds(r, Condition::Originator))
                        });
                    if let Some((source, rule)) = near {
                        if let Some(failed) = rule.checks.iter().find(|c| !c.holds) {
                            write!(
                                f,
                                "; rule {} of {} matches the originator but {}",
                                rule.rule,
                                shown(&source.acp_id),
                                failed.reason
                            )?;
                        }
                    }
                    Ok(())
                }
            },
        }
    }
}
