//! Every way an MEF request can fail, each with one oneM2M response status code
//! (docs/provisioning.md, "Answers of the MEF"). The text is the short reason sent back
//! in `m2m:dbg`: it names no key and no internal path.

use bastion_proto::{RequestError, Rsc};

/// A refused MEF request. Variant docs say whose fault it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MefError {
    /// Requester: a header or the body is missing or malformed (4000).
    #[error("{0}")]
    BadRequest(String),
    /// Requester: no such path, or no enrolment with this KeID (4004).
    #[error("{0}")]
    NotFound(String),
    /// Requester: the method is not defined for the path (4005).
    #[error("{0}")]
    NotAllowed(String),
    /// Requester: the body is not JSON (4015).
    #[error("only JSON bodies are accepted")]
    UnsupportedMediaType,
    /// Operator policy: the credential has no enrolee profile, or a target may not
    /// fetch this enrolee's key for this SUID (4103).
    #[error("{0}")]
    NoPrivilege(String),
    /// Requester: a replayed or out-of-order enrolment exchange message (4105).
    #[error("replayed or out-of-order enrolment exchange message: {0}")]
    Replay(String),
    /// Requester: `X-M2M-Origin` is not the association's bound identity (4106).
    #[error("X-M2M-Origin does not name the security association's identity")]
    OriginMismatch,
    /// Operator: the enrolee was revoked (4005).
    #[error("enrolee {0} is revoked")]
    Revoked(String),
    /// The enrolment expired: the enrolee must enrol again (4107).
    #[error("enrolment expired")]
    Expired,
    /// Ours: the enrolment could not be made durable, or the store is full (5000).
    #[error("{0}")]
    Internal(String),
}

impl MefError {
    /// The response status code of this refusal.
    pub fn rsc(&self) -> Rsc {
        self.as_request_error().rsc()
    }

    /// The same refusal as the request error the wire layer encodes.
    pub fn as_request_error(&self) -> RequestError {
        let reason = self.to_string().into();
        match self {
            MefError::BadRequest(_) => RequestError::BadRequest(reason),
            MefError::NotFound(_) => RequestError::NotFound(reason),
            MefError::NotAllowed(_) | MefError::Revoked(_) => {
                RequestError::OperationNotAllowed(reason)
            }
            MefError::UnsupportedMediaType => RequestError::UnsupportedMediaType(reason),
            MefError::NoPrivilege(_) => RequestError::NoPrivilege(reason),
            MefError::Replay(_) => RequestError::Conflict(reason),
            MefError::OriginMismatch => RequestError::NotAuthenticated(reason),
            MefError::Expired => RequestError::SecurityAssociationRequired(reason),
            MefError::Internal(_) => RequestError::Internal(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_code() {
        let cases = [
            (MefError::BadRequest("x".into()), 4000),
            (MefError::NotFound("x".into()), 4004),
            (MefError::NotAllowed("x".into()), 4005),
            (MefError::Revoked("Cs".into()), 4005),
            (MefError::UnsupportedMediaType, 4015),
            (MefError::NoPrivilege("x".into()), 4103),
            (MefError::Replay("x".into()), 4105),
            (MefError::OriginMismatch, 4106),
            (MefError::Expired, 4107),
            (MefError::Internal("x".into()), 5000),
        ];
        for (error, code) in cases {
            assert_eq!(error.rsc().code(), code, "{error}");
        }
    }
}
