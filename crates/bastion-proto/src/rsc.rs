//! Response status codes (TS-0004 §6.6) and their HTTP mapping (TS-0009 Table 6.3.2-1).

/// A oneM2M response status code. Only the codes Bastion can emit are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Rsc {
    Accepted = 1000,
    Ok = 2000,
    Created = 2001,
    Deleted = 2002,
    Updated = 2004,
    BadRequest = 4000,
    ReleaseVersionNotSupported = 4001,
    NotFound = 4004,
    OperationNotAllowed = 4005,
    RequestTimeout = 4008,
    UnsupportedMediaType = 4015,
    OriginatorHasNoPrivilege = 4103,
    Conflict = 4105,
    OriginatorNotAuthenticated = 4106,
    SecurityAssociationRequired = 4107,
    InvalidChildResourceType = 4108,
    GroupMemberTypeInconsistent = 4110,
    OriginatorHasAlreadyRegistered = 4117,
    AppRuleValidationFailed = 4126,
    InternalServerError = 5000,
    NotImplemented = 5001,
    NotAcceptable = 5207,
    MaxNumberOfMemberExceeded = 6010,
}

impl Rsc {
    /// The numeric code carried in `rsc` / `X-M2M-RSC`.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// HTTP status for this code (TS-0009 Table 6.3.2-1).
    pub fn http_status(self) -> u16 {
        match self {
            Rsc::Accepted => 202,
            Rsc::Ok | Rsc::Deleted | Rsc::Updated => 200,
            Rsc::Created => 201,
            Rsc::BadRequest | Rsc::GroupMemberTypeInconsistent | Rsc::MaxNumberOfMemberExceeded => {
                400
            }
            Rsc::ReleaseVersionNotSupported | Rsc::NotImplemented => 501,
            Rsc::NotFound => 404,
            Rsc::OperationNotAllowed => 405,
            Rsc::RequestTimeout => 504,
            Rsc::UnsupportedMediaType => 415,
            Rsc::OriginatorHasNoPrivilege
            | Rsc::OriginatorNotAuthenticated
            | Rsc::SecurityAssociationRequired
            | Rsc::InvalidChildResourceType
            | Rsc::OriginatorHasAlreadyRegistered
            | Rsc::AppRuleValidationFailed => 403,
            Rsc::Conflict => 409,
            Rsc::InternalServerError => 500,
            Rsc::NotAcceptable => 406,
        }
    }

    /// True for 2xxx codes.
    pub fn is_success(self) -> bool {
        (2000..3000).contains(&self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts0009_6_3_2_http_status_mapping() {
        assert_eq!(Rsc::Created.http_status(), 201);
        assert_eq!(Rsc::Deleted.http_status(), 200);
        assert_eq!(Rsc::Conflict.http_status(), 409);
        assert_eq!(Rsc::OriginatorHasNoPrivilege.http_status(), 403);
        assert_eq!(Rsc::NotAcceptable.http_status(), 406);
        assert_eq!(Rsc::ReleaseVersionNotSupported.http_status(), 501);
        assert_eq!(Rsc::RequestTimeout.http_status(), 504);
    }
}
