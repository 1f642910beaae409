//! The EST server's operations, independent of HTTP: the CA material, the profiles, the
//! ledger and the settings, and what `cacerts`, `csrattrs`, `simpleenroll`,
//! `simplereenroll` and the CRL distribution point answer (DER; [`crate::http`] adds
//! the RFC 7030 encodings).

use std::path::Path;
use std::time::Duration;

use bastion_tls::certs::{self, CertAndKey, Subject, Validity, VerifiedCsr};
use bastion_tls::PeerIdentity;
use openssl::x509::{X509Crl, X509};

use crate::der;
use crate::error::EstError;
use crate::ledger::{serial_hex, Issued, Ledger};
use crate::profile::Profiles;
use crate::ra::{self, CsrClaims, Grant};

/// How the server issues and publishes.
#[derive(Debug, Clone, Copy)]
pub struct EstSettings {
    /// Validity of issued certificates when the profile names none, days.
    pub default_validity_days: u32,
    /// How long each CRL is valid (its nextUpdate after thisUpdate).
    pub crl_validity: Duration,
}

impl Default for EstSettings {
    fn default() -> Self {
        Self {
            default_validity_days: 365,
            crl_validity: Duration::from_secs(24 * 3600),
        }
    }
}

/// One EST server (the MEF's certificate enrolment).
pub struct Est {
    ca: CertAndKey,
    ca_der: Vec<u8>,
    profiles: Profiles,
    ledger: Ledger,
    settings: EstSettings,
}

impl std::fmt::Debug for Est {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Est")
            .field("profiles", &self.profiles.len())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// What a CSR claims, from its DER.
fn claims(csr: &VerifiedCsr) -> Result<CsrClaims, EstError> {
    let challenge_password = der::challenge_password(csr.der())
        .map_err(|e| EstError::BadCsr(e.to_string()))?
        .map(zeroize::Zeroizing::new);
    Ok(CsrClaims {
        identity: csr.identity().map_err(EstError::from),
        challenge_password,
    })
}

impl Est {
    /// An EST server signing with `ca` (P-256 CA certificate and key), admitting the
    /// enrolees of `profiles`, recording in the ledger in `state_dir`. Signs a fresh CRL
    /// when none is there yet, so the distribution point answers from the start.
    pub fn new(
        ca: CertAndKey,
        profiles: Profiles,
        state_dir: &Path,
        settings: EstSettings,
    ) -> Result<Self, EstError> {
        let ca_der = X509::from_pem(ca.cert_pem.as_bytes())
            .and_then(|c| c.to_der())
            .map_err(|e| EstError::Ca(format!("CA certificate: {e}")))?;
        certs::parse_p256_key(&ca.key_pem, "CA").map_err(|e| EstError::Ca(e.to_string()))?;
        let ledger = Ledger::open(state_dir)?;
        let est = Self {
            ca,
            ca_der,
            profiles,
            ledger,
            settings,
        };
        est.crl_der()?;
        Ok(est)
    }

    /// The ledger (for operators' listings).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// `cacerts`: the CA certificate as a certs-only PKCS#7, DER.
    pub fn cacerts(&self) -> Vec<u8> {
        der::certs_only(&[&self.ca_der])
    }

    /// `csrattrs`: the CSR attributes asked for, DER.
    pub fn csrattrs(&self) -> Vec<u8> {
        der::csr_attributes()
    }

    /// `simpleenroll`: checks the CSR (DER) of `peer` and issues its certificate;
    /// returns the certs-only PKCS#7, DER. The certificate is in the ledger on `Ok`.
    pub fn simpleenroll(&self, peer: &PeerIdentity, csr_der: &[u8]) -> Result<Vec<u8>, EstError> {
        let csr = VerifiedCsr::from_der(csr_der)?;
        let grant = ra::enrol(peer, &claims(&csr)?, &self.profiles)?;
        self.issue(&csr, &grant, peer)
    }

    /// `simplereenroll`: renews the certificate `peer`'s association was made with.
    pub fn simplereenroll(&self, peer: &PeerIdentity, csr_der: &[u8]) -> Result<Vec<u8>, EstError> {
        let csr = VerifiedCsr::from_der(csr_der)?;
        let current = self.ledger.by_fingerprint(peer.credential())?;
        let grant = ra::reenrol(peer, &claims(&csr)?, current.as_ref(), &self.profiles)?;
        self.issue(&csr, &grant, peer)
    }

    fn issue(
        &self,
        csr: &VerifiedCsr,
        grant: &Grant,
        peer: &PeerIdentity,
    ) -> Result<Vec<u8>, EstError> {
        let subject = Subject::onem2m(&grant.id).map_err(|e| EstError::Ca(e.to_string()))?;
        let days = grant
            .validity_days
            .unwrap_or(self.settings.default_validity_days);
        let validity = Validity::days(days);
        let issued = certs::issue_for_csr(&self.ca, csr, &subject, validity)?;
        let now = unix_now();
        self.ledger.record(
            Issued {
                serial: serial_hex(&issued.serial),
                id: grant.id.clone(),
                fingerprint: issued.fingerprint.clone(),
                not_after: validity.not_after,
                issued_at: now,
                revoked_at: None,
            },
            now,
        )?;
        tracing::info!(
            enrolee = peer.originator(),
            framework = ?peer.framework(),
            certified = %grant.id,
            serial = %serial_hex(&issued.serial),
            "certificate issued"
        );
        Ok(der::certs_only(&[&issued.cert_der]))
    }

    /// Revokes the certificate with serial `serial` (hex) and publishes a new CRL.
    pub fn revoke(&self, serial: &str) -> Result<(Issued, u64), EstError> {
        self.ledger.revoke(
            serial,
            &self.ca,
            unix_now(),
            secs(self.settings.crl_validity),
        )
    }

    /// The CRL in force, DER; re-signed first when there is none, or when half of its
    /// validity has passed, so a fetcher never receives one about to expire.
    pub fn crl_der(&self) -> Result<Vec<u8>, EstError> {
        let now = unix_now();
        let path = self.ledger.crl_path();
        let current = std::fs::read(&path)
            .ok()
            .and_then(|pem| X509Crl::from_pem(&pem).ok());
        let half = secs(self.settings.crl_validity) / 2;
        let fresh = current.as_ref().is_some_and(|crl| {
            crl.next_update()
                .and_then(unix_of)
                .is_some_and(|next| next - now > half)
        });
        let crl = match (fresh, current) {
            (true, Some(crl)) => crl,
            _ => {
                self.ledger
                    .publish_crl(&self.ca, now, secs(self.settings.crl_validity))?;
                let pem = std::fs::read(&path).map_err(|e| {
                    EstError::Ledger(format!("cannot read {}: {e}", path.display()))
                })?;
                X509Crl::from_pem(&pem).map_err(|e| EstError::Ledger(e.to_string()))?
            }
        };
        crl.to_der().map_err(|e| EstError::Ledger(e.to_string()))
    }
}

fn unix_of(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(t).ok()?;
    Some(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}
