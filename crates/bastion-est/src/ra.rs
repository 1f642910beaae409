//! The registration authority's rules (TS-0003 8.3.6; RFC 7030 3.7, 4.2): which subject
//! an authenticated enrolee may get. Pure: the association's identity, what the CSR asks
//! for, and the profile or ledger entry in, a [`Grant`] or an [`EstError`] out.
//!
//! * **Initial enrolment** (`simpleenroll`, over a PSK, certificate or pinned-raw-key
//!   association): the enrolee needs a profile for the originator its association is
//!   bound to; the CSR's subjectAltName must name exactly the profile's identity; the
//!   challengePassword must match when the profile demands one. What the CSR merely asks
//!   for never decides the subject.
//! * **Renewal** (`simplereenroll`): only over a certificate association whose
//!   certificate this CA issued and has not revoked, for the same identity.

use bastion_tls::{Binding, Framework, PeerIdentity};

use crate::error::EstError;
use crate::ledger::Issued;
use crate::profile::Profiles;

/// What the CA certifies: the identity, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The absolute AE-ID or CSE-ID the certificate names.
    pub id: String,
    /// Validity in days; `None`: the server's default.
    pub validity_days: Option<u32>,
}

/// What the CSR asks for, read by the caller.
#[derive(Debug, Clone)]
pub struct CsrClaims {
    /// Its subjectAltName identity (Err when it names none, or several).
    pub identity: Result<Binding, EstError>,
    /// Its challengePassword attribute.
    pub challenge_password: Option<zeroize::Zeroizing<String>>,
}

/// `simpleenroll`: the grant for `peer` asking `claims`.
pub fn enrol(
    peer: &PeerIdentity,
    claims: &CsrClaims,
    profiles: &Profiles,
) -> Result<Grant, EstError> {
    let profile = profiles
        .for_peer(peer)
        .ok_or_else(|| EstError::NoProfile(profiles.key_of(peer).to_owned()))?;
    let asked = claims.identity.clone()?;
    if asked.originator() != profile.certify {
        return Err(EstError::IdentityMismatch {
            asked: asked.originator().to_owned(),
            allowed: profile.certify.clone(),
        });
    }
    if profile.demands_password() {
        let presented = claims
            .challenge_password
            .as_ref()
            .ok_or(EstError::ChallengePasswordMissing)?;
        if !profile.password_matches(presented) {
            return Err(EstError::ChallengePasswordWrong);
        }
    }
    Ok(Grant {
        id: profile.certify.clone(),
        validity_days: profile.validity_days,
    })
}

/// `simplereenroll`: the grant for `peer`, whose certificate the ledger knows as
/// `current` (looked up by the association's certificate fingerprint).
pub fn reenrol(
    peer: &PeerIdentity,
    claims: &CsrClaims,
    current: Option<&Issued>,
    profiles: &Profiles,
) -> Result<Grant, EstError> {
    if peer.framework() != Framework::Certificate {
        return Err(EstError::ReenrolNeedsCertificate);
    }
    let current = current.ok_or(EstError::NotIssuedHere)?;
    if current.revoked_at.is_some() {
        return Err(EstError::Revoked);
    }
    let asked = claims.identity.clone()?;
    if asked.originator() != current.id {
        return Err(EstError::IdentityMismatch {
            asked: asked.originator().to_owned(),
            allowed: current.id.clone(),
        });
    }
    // The validity of the enrolee's profile, when the renewed identity has one.
    let validity_days = profiles
        .for_originator(&current.id)
        .and_then(|p| p.validity_days);
    Ok(Grant {
        id: current.id.clone(),
        validity_days,
    })
}
