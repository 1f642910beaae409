//! Identity binding (TS-0003 7.2.1, 7.1.2): which originators are bound to a security
//! association, where a request may claim them, and when a claim makes the request
//! authenticated (`rq_authn`) for `acaf` rules.
//!
//! An identity is bound to an association when
//!
//! * an `<AE>` or `<remoteCSE>` registered over one: the identity of that association is
//!   stored with the resource (an internal member of its stored body, so it survives a
//!   restart; [`Node::bound`](crate::tree::Node));
//! * the binary's credential store holds a credential (active or revoked) for it: the
//!   admin, an AE or a CSE provisioned with a PSK or a pinned key ([`CredentialBindings`]).
//!
//! A bound identity claimed outside that association, on the plain listener included,
//! is 4106. Inside an association `From` must be the identity bound to it, an AE
//! registered over it, or an originator its CSE may relay (`remote_cse.rs`); a relayed
//! originator is never authenticated here (it was authenticated, if at all, by the CSE
//! that relayed it, and TS-0003 table 7.1.2-3 lets a hosting CSE count only its own
//! registrees as authenticated). Identity strings are compared in their absolute form
//! and in constant time.

pub(crate) use crate::originator::same_identity;
use crate::originator::{owner, Owner};
use crate::tree::{Node, Tree};
use crate::{checks, Cse, RequestContext};
use bastion_proto::{Operation, RequestError, ResourceType};

/// The binary's credential store, as the core needs it: whether an identity has a
/// credential, so that it may only be claimed inside an association.
pub trait CredentialBindings: Send + Sync {
    /// Whether a credential (active or revoked: a revoked one must not open the way to
    /// the plain listener) is bound to the identity written in any of `forms` (its
    /// absolute, SP-relative and, for an AE of this CSE, CSE-relative forms).
    fn is_bound(&self, forms: &[&str]) -> bool;
}

fn impersonation() -> RequestError {
    RequestError::NotAuthenticated("originator does not match the authenticated identity".into())
}

fn bound_elsewhere() -> RequestError {
    RequestError::NotAuthenticated(
        "originator is bound to a security association and must use it".into(),
    )
}

impl Cse {
    /// The absolute form of an originator or association identity.
    pub(crate) fn absolute(&self, id: &str) -> String {
        bastion_policy::normalize_originator(&self.local, id)
    }

    /// Whether `fr` (any form) is the configured administrator, compared in constant time.
    pub fn is_admin(&self, fr: &str) -> bool {
        !fr.is_empty() && same_identity(&self.absolute(fr), &self.admin_absolute)
    }

    /// The ways `absolute` can be written: itself, its SP-relative form when it belongs to
    /// this SP, and its CSE-relative form when it is an AE-ID (or the admin) of this CSE.
    fn written_forms<'a>(&self, absolute: &'a str) -> Vec<&'a str> {
        let mut forms = vec![absolute];
        let sp_relative = absolute
            .strip_prefix(self.config.sp_id.as_str())
            .filter(|r| r.starts_with('/') && !r.starts_with("//"));
        if let Some(sp_relative) = sp_relative {
            forms.push(sp_relative);
            let stem = sp_relative
                .strip_prefix(self.config.cse_id.as_str())
                .and_then(|r| r.strip_prefix('/'));
            if let Some(stem) = stem {
                forms.push(stem);
            }
            if sp_relative.starts_with("/S") && !sp_relative[1..].contains('/') {
                forms.push(&sp_relative[1..]);
            }
        }
        forms
    }

    /// The `<AE>` or `<remoteCSE>` registered for the originator `absolute`, if any.
    pub(crate) fn registration_of<'t>(&self, tree: &'t Tree, absolute: &str) -> Option<&'t Node> {
        let sp_relative = absolute.strip_prefix(self.config.sp_id.as_str())?;
        let ae_stem = sp_relative
            .strip_prefix(self.config.cse_id.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .or_else(|| sp_relative.strip_prefix('/').filter(|s| s.starts_with('S')));
        if let Some(stem) = ae_stem {
            return tree.get(stem).filter(|n| n.ty == ResourceType::Ae);
        }
        match owner(&self.config.sp_id, sp_relative) {
            Owner::Cse(csi) => crate::remote_cse::csr_of(tree, csi),
            _ => None,
        }
    }

    /// Whether the originator `absolute` is bound to some security association: its
    /// registration was made over one, it is an AE of a CSE registered over one (whose
    /// requests that CSE relays on its association), or the credential store holds a
    /// credential for it.
    pub(crate) fn is_bound(&self, absolute: &str, with_relayed: bool) -> bool {
        {
            let tree = self.tree.read();
            if self
                .registration_of(&tree, absolute)
                .is_some_and(|n| n.bound.is_some())
            {
                return true;
            }
            if with_relayed {
                let relay_bound = match absolute.strip_prefix(self.config.sp_id.as_str()) {
                    Some(sp_relative) => match owner(&self.config.sp_id, sp_relative) {
                        Owner::AeOf(csi) if csi != self.config.cse_id => {
                            crate::remote_cse::csr_of(&tree, csi).is_some_and(|n| n.bound.is_some())
                        }
                        _ => false,
                    },
                    None => false,
                };
                if relay_bound {
                    return true;
                }
            }
        }
        self.credentials
            .as_ref()
            .is_some_and(|c| c.is_bound(&self.written_forms(absolute)))
    }

    /// Whether the originator `absolute` is an AE registered over the association whose
    /// identity is `association` (an association bound to a Credential-ID carries the AE-ID
    /// assigned at registration; TS-0003 7.2.1).
    fn registered_over(&self, absolute: &str, association: &str) -> bool {
        let tree = self.tree.read();
        self.registration_of(&tree, absolute).is_some_and(|n| {
            n.ty == ResourceType::Ae
                && n.bound
                    .as_deref()
                    .is_some_and(|b| same_identity(b, association))
        })
    }

    /// Impersonation prevention (TS-0003 7.2.1): binds `From` to the request's security
    /// association, or, outside one, refuses an identity that is bound to one (4106). A
    /// match makes the request authenticated for `acaf` rules. An `<AE>` CREATE asking for
    /// an assigned AE-ID (empty, `C` or `S` originator) is left to the registration rules.
    pub(crate) fn verify_identity(
        &self,
        req: &checks::Envelope,
        ctx: &RequestContext,
    ) -> Result<RequestContext, RequestError> {
        let asks_for_id = req.op == Operation::Create
            && req.ty == Some(ResourceType::Ae)
            && matches!(req.fr.as_str(), "" | "C" | "S");
        let authenticated = if asks_for_id {
            false
        } else {
            self.bind_originator(&req.fr, ctx.identity.as_deref())?
        };
        let mut verified = ctx.as_received();
        verified.authenticated = authenticated;
        Ok(verified)
    }

    /// The binding rule itself, for oneM2M requests and the operator endpoints alike:
    /// `Ok(true)` when `fr` is authenticated by the association `identity`, `Ok(false)`
    /// when it is accepted unauthenticated, 4106 when it is an impersonation.
    fn bind_originator(&self, fr: &str, identity: Option<&str>) -> Result<bool, RequestError> {
        let claimed = self.absolute(fr);
        let Some(identity) = identity else {
            return if self.is_bound(&claimed, true) {
                Err(bound_elsewhere())
            } else {
                Ok(false)
            };
        };
        let association = self.absolute(identity);
        if same_identity(&claimed, &association) || self.registered_over(&claimed, &association) {
            return Ok(true);
        }
        if self.is_bound(&claimed, false) {
            return Err(impersonation());
        }
        // A registered CSE's association also carries what that CSE relays
        // (TS-0001 7.3.2.6; `remote_cse.rs`, docs/decisions.md), unauthenticated.
        if self.relays(identity, fr) {
            Ok(false)
        } else {
            Err(impersonation())
        }
    }

    /// Admits the operator endpoints' caller (`/__bastion/explain`): `From` passes the same
    /// binding as any request (4106 when it names an identity the request's association
    /// does not hold, the admin's included), then must be the administrator (4103).
    pub fn authorize_operator(
        &self,
        fr: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<(), RequestError> {
        let fr = fr.unwrap_or("");
        if !fr.is_empty() {
            self.bind_originator(fr, ctx.identity.as_deref())?;
        }
        crate::access::Enforcer::new(self, fr, ctx, self.now()).operator()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_compare_exactly() {
        assert!(same_identity("CAdmin", "CAdmin"));
        assert!(!same_identity("CAdmin", "CAdmio"));
        assert!(!same_identity("CAdmin", "CAdmin "));
        assert!(!same_identity("", "C"));
    }
}
