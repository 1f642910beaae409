//! The hot-path decision (TS-0003 7.1.4-7.1.5): administrator override, default access
//! policy, then permit-overrides over every applicable rule.
//!
//! Allocation-free on every path: the originator is normalised as a borrowed `Subject`
//! view (no `String` is built) and rules are tested through the matchers compiled by
//! [`RuleSet::parse`](crate::RuleSet::parse). The verdict is by construction the one
//! [`crate::explain()`] reports: both use the condition functions of
//! [`crate::rules::Rule`] in the same order (admin, then sources and rules in
//! slice/document order; the first permitting rule wins).

use crate::originator::Subject;
use crate::{AccessRequest, Applicable, Attributes, Decision, Grant, LocalIdentity};
use std::collections::BTreeSet;

/// Decides `req` against `applicable`. Deny is `Decision { grant: None }`.
pub fn decide(
    local: &LocalIdentity,
    req: &AccessRequest<'_>,
    applicable: &Applicable<'_>,
) -> Decision {
    let subject = Subject::new(local, req.originator);
    if is_admin(local, &subject) {
        return Decision {
            grant: Some(Grant::Admin),
        };
    }
    match applicable {
        Applicable::Default { creator, custodian } => Decision {
            grant: default_grant(local, &subject, *creator, *custodian),
        },
        Applicable::Policies(sources) => {
            for (s, source) in sources.iter().enumerate() {
                for (r, rule) in source.rules.rules().iter().enumerate() {
                    if rule.permits(req, &subject) {
                        return Decision {
                            grant: Some(Grant::Rule { source: s, rule: r }),
                        };
                    }
                }
            }
            Decision::DENY
        }
    }
}

/// The configured administrator has every privilege. Exact comparison of the absolute
/// forms; an empty originator or an empty configured admin never qualifies.
pub(crate) fn is_admin(local: &LocalIdentity, subject: &Subject<'_>) -> bool {
    !subject.is_empty() && !local.admin.is_empty() && subject.same_identity(local, &local.admin)
}

/// Default access policy (digest §3): only the recorded creator, compared in absolute form.
pub(crate) fn is_creator(
    local: &LocalIdentity,
    subject: &Subject<'_>,
    creator: Option<&str>,
) -> bool {
    match creator {
        Some(c) => !subject.is_empty() && !c.is_empty() && subject.same_identity(local, c),
        None => false,
    }
}

/// Default access policy with a custodian (TS-0001 R4 `custodian`): when the resource has
/// one, the custodian alone stands where the creator stood; otherwise the creator.
pub(crate) fn default_grant(
    local: &LocalIdentity,
    subject: &Subject<'_>,
    creator: Option<&str>,
    custodian: Option<&str>,
) -> Option<Grant> {
    match custodian {
        Some(c) => is_creator(local, subject, Some(c)).then_some(Grant::Custodian),
        None => is_creator(local, subject, creator).then_some(Grant::Creator),
    }
}

/// Whether `originator` may appoint or change a resource's custodian: the administrator,
/// the resource's creator or its current custodian (Bastion's reading of TS-0001 R4
/// `custodian`, docs/decisions.md). Identities compared in absolute form.
pub fn is_owner(
    local: &LocalIdentity,
    originator: &str,
    creator: Option<&str>,
    custodian: Option<&str>,
) -> bool {
    let subject = Subject::new(local, originator);
    is_admin(local, &subject)
        || is_creator(local, &subject, creator)
        || is_creator(local, &subject, custodian)
}

/// What a full RETRIEVE may show when no rule grants the whole resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadableAttributes<'r> {
    /// The whole resource (some grant is not limited by `aca`).
    Whole,
    /// Only these attributes: the union of the `aca` of every rule that grants the
    /// operation in all other respects.
    Only(BTreeSet<&'r str>),
}

/// The attributes of the target the originator may read with `req` (its `attributes`
/// are ignored): [`ReadableAttributes::Whole`] when [`decide`] grants the whole
/// resource, else the union of the `aca` lists of the rules that hold in every other
/// condition; `None` when not even one attribute is readable. Used to shape the
/// representation of a full RETRIEVE (docs/decisions.md, attribute-level access control).
pub fn readable_attributes<'r>(
    local: &LocalIdentity,
    req: &AccessRequest<'_>,
    applicable: &Applicable<'r>,
) -> Option<ReadableAttributes<'r>> {
    let whole = AccessRequest {
        attributes: Attributes::Whole,
        ..*req
    };
    if decide(local, &whole, applicable).granted() {
        return Some(ReadableAttributes::Whole);
    }
    let Applicable::Policies(sources) = applicable else {
        return None;
    };
    let subject = Subject::new(local, req.originator);
    let mut names = BTreeSet::new();
    for source in sources.iter() {
        for rule in source.rules.rules() {
            if let Some(aca) = rule.attributes() {
                if rule.permits_apart_from_attributes(&whole, &subject) {
                    names.extend(aca.iter().map(|a| &**a));
                }
            }
        }
    }
    (!names.is_empty()).then_some(ReadableAttributes::Only(names))
}
