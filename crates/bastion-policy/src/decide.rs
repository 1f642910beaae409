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
use crate::{AccessRequest, Applicable, Decision, Grant, LocalIdentity};

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
        Applicable::Default { creator } => {
            if is_creator(local, &subject, *creator) {
                Decision {
                    grant: Some(Grant::Creator),
                }
            } else {
                Decision::DENY
            }
        }
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
