//! Why an EST request or an operator's revocation fails, and the one mapping of each
//! failure to its HTTP status (RFC 7030 4.2.3: an error status with a short
//! human-readable reason as `text/plain`). Reasons name identities, never secrets.

use http::StatusCode;

/// A refused EST request or revocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EstError {
    /// The request body exceeds [`crate::MAX_BODY`] (client's fault).
    #[error("request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// The body did not arrive within the body timeout (client's fault).
    #[error("request body not received in time")]
    BodyTimeout,
    /// The request's Content-Type is not `application/pkcs10` (client's fault).
    #[error("Content-Type must be application/pkcs10")]
    UnsupportedMediaType,
    /// The body is not base64 (client's fault).
    #[error("the body is not base64")]
    NotBase64,
    /// The body is not a PKCS#10 request, or its attributes are malformed.
    #[error("the body is not a valid PKCS#10 request: {0}")]
    BadCsr(String),
    /// The CSR's key is not EC P-256 (TS-0003 10.1.1).
    #[error("the CSR key is not an EC P-256 key")]
    CsrKeyNotP256,
    /// The CSR's self-signature does not verify.
    #[error("the CSR signature does not verify")]
    CsrSignature,
    /// The CSR names no single absolute AE-ID / CSE-ID in a subjectAltName URI.
    #[error("the CSR names no AE-ID or CSE-ID in a subjectAltName URI")]
    CsrIdentity,
    /// The request did not arrive over an association authenticated by its handshake.
    #[error("no security association authenticated by the TLS handshake")]
    NotAuthenticated,
    /// No enrolment profile for the authenticated enrolee (RA policy).
    #[error("no enrolment profile for {0}")]
    NoProfile(String),
    /// The CSR asks for another identity than the enrolee may be certified as.
    #[error("the CSR asks for {asked}; this enrolee may be certified as {allowed} only")]
    IdentityMismatch {
        /// What the CSR's subjectAltName names.
        asked: String,
        /// What the association or profile allows.
        allowed: String,
    },
    /// The profile demands a challengePassword and the CSR carries none.
    #[error("the CSR carries no challengePassword")]
    ChallengePasswordMissing,
    /// The CSR's challengePassword is not the profile's.
    #[error("the challengePassword is wrong")]
    ChallengePasswordWrong,
    /// simplereenroll over an association not authenticated by a certificate.
    #[error("simplereenroll needs a certificate-authenticated association")]
    ReenrolNeedsCertificate,
    /// simplereenroll with a certificate this CA did not issue (or has forgotten).
    #[error("the association's certificate was not issued by this CA")]
    NotIssuedHere,
    /// simplereenroll with a revoked certificate.
    #[error("the association's certificate is revoked")]
    Revoked,
    /// `revoke`: no certificate with this serial in the ledger.
    #[error("no issued certificate has serial {0}")]
    UnknownSerial(String),
    /// `revoke`: the certificate is already revoked.
    #[error("the certificate with serial {0} is already revoked")]
    AlreadyRevoked(String),
    /// The ledger holds [`crate::ledger::MAX_ENTRIES`] unexpired certificates.
    #[error("the issued-certificate ledger is full")]
    LedgerFull,
    /// The ledger or the CRL could not be read or written durably (server's fault).
    #[error("ledger: {0}")]
    Ledger(String),
    /// The CA failed to sign (server's fault).
    #[error("CA: {0}")]
    Ca(String),
}

impl EstError {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        use EstError::*;
        match self {
            BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            NotBase64 | BadCsr(_) | CsrKeyNotP256 | CsrSignature | CsrIdentity => {
                StatusCode::BAD_REQUEST
            }
            NotAuthenticated => StatusCode::UNAUTHORIZED,
            NoProfile(_)
            | IdentityMismatch { .. }
            | ChallengePasswordMissing
            | ChallengePasswordWrong
            | ReenrolNeedsCertificate
            | NotIssuedHere
            | Revoked => StatusCode::FORBIDDEN,
            UnknownSerial(_) => StatusCode::NOT_FOUND,
            AlreadyRevoked(_) => StatusCode::CONFLICT,
            LedgerFull => StatusCode::SERVICE_UNAVAILABLE,
            Ledger(_) | Ca(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<bastion_tls::CertError> for EstError {
    fn from(e: bastion_tls::CertError) -> Self {
        use bastion_tls::CertError as C;
        match e {
            C::NotP256(_) => EstError::CsrKeyNotP256,
            C::BadCsrSignature => EstError::CsrSignature,
            C::Identity(_) => EstError::CsrIdentity,
            C::Pem("CSR") => EstError::BadCsr("cannot parse".into()),
            other => EstError::Ca(other.to_string()),
        }
    }
}
