//! Response status codes (TS-0004 §6.6) and their HTTP mapping (TS-0009 Table 6.3.2-1).

/// A oneM2M response status code. Only the codes Bastion can emit are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Rsc {
    Accepted = 1000,
    /// A non-blocking synchronous request was accepted; `pc` names its `<request>`.
    AcceptedNonBlockingSynch = 1001,
    /// A non-blocking asynchronous request was accepted; the result is notified.
    AcceptedNonBlockingAsynch = 1002,
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
    /// The content names an attribute that does not fit the target (`nco` of a
    /// `<schedule>` not under a `<node>`, TS-0004 7.4.9.2.1).
    ContentsUnacceptable = 4102,
    /// Subscription verification: the creator lacks NOTIFY on the target (TS-0004 7.5.1.2).
    SubscriptionCreatorHasNoPrivilege = 4101,
    OriginatorHasNoPrivilege = 4103,
    Conflict = 4105,
    OriginatorNotAuthenticated = 4106,
    SecurityAssociationRequired = 4107,
    InvalidChildResourceType = 4108,
    /// A fan-out request to a `<group>` without members.
    NoMembers = 4109,
    GroupMemberTypeInconsistent = 4110,
    OriginatorHasAlreadyRegistered = 4117,
    AppRuleValidationFailed = 4126,
    /// The schema a `<flexContainer>`'s `cnd` names is not known (TS-0004 7.4.37.2.1).
    SpecializationSchemaNotFound = 4125,
    /// A blocking-update subscription already exists on the resource (TS-0004 7.4.8.2.1).
    BlockingSubscriptionAlreadyExists = 4124,
    /// The target of a blocking update refused it (TS-0004 7.3.2.9).
    OperationDeniedByRemoteEntity = 4127,
    InternalServerError = 5000,
    NotImplemented = 5001,
    /// The next hop towards the target CSE could not be reached (TS-0004 7.3.2.6).
    TargetNotReachable = 5103,
    /// The target of a blocking update could not be reached (TS-0004 7.3.2.9).
    RemoteEntityNotReachable = 5107,
    /// A group member's type could not be read (TS-0001 9.6.13).
    ReceiverHasNoPrivilege = 5105,
    TargetNotSubscribable = 5203,
    /// A notification target did not confirm a new subscription (TS-0004 7.3.3.2).
    SubscriptionVerificationInitiationFailed = 5204,
    /// Subscription verification: the hosting CSE lacks NOTIFY on the target.
    SubscriptionHostHasNoPrivilege = 5205,
    NotAcceptable = 5207,
    /// No group member answered before the result expiration time.
    GroupMembersNotResponded = 5209,
    /// A `<crossResourceSubscription>` could not make (or join) the subscription of one
    /// of its targets (TS-0004 7.4.58.2.1).
    CrossResourceOperationFailure = 5221,
    MaxNumberOfMemberExceeded = 6010,
}

/// Every code of [`Rsc`], for decoding.
const ALL: [Rsc; 39] = [
    Rsc::Accepted,
    Rsc::AcceptedNonBlockingSynch,
    Rsc::AcceptedNonBlockingAsynch,
    Rsc::Ok,
    Rsc::Created,
    Rsc::Deleted,
    Rsc::Updated,
    Rsc::BadRequest,
    Rsc::ReleaseVersionNotSupported,
    Rsc::NotFound,
    Rsc::OperationNotAllowed,
    Rsc::RequestTimeout,
    Rsc::UnsupportedMediaType,
    Rsc::ContentsUnacceptable,
    Rsc::SubscriptionCreatorHasNoPrivilege,
    Rsc::OriginatorHasNoPrivilege,
    Rsc::Conflict,
    Rsc::OriginatorNotAuthenticated,
    Rsc::SecurityAssociationRequired,
    Rsc::InvalidChildResourceType,
    Rsc::NoMembers,
    Rsc::GroupMemberTypeInconsistent,
    Rsc::OriginatorHasAlreadyRegistered,
    Rsc::AppRuleValidationFailed,
    Rsc::SpecializationSchemaNotFound,
    Rsc::BlockingSubscriptionAlreadyExists,
    Rsc::OperationDeniedByRemoteEntity,
    Rsc::InternalServerError,
    Rsc::NotImplemented,
    Rsc::TargetNotReachable,
    Rsc::RemoteEntityNotReachable,
    Rsc::ReceiverHasNoPrivilege,
    Rsc::TargetNotSubscribable,
    Rsc::SubscriptionVerificationInitiationFailed,
    Rsc::SubscriptionHostHasNoPrivilege,
    Rsc::NotAcceptable,
    Rsc::GroupMembersNotResponded,
    Rsc::CrossResourceOperationFailure,
    Rsc::MaxNumberOfMemberExceeded,
];

impl Rsc {
    /// The numeric code carried in `rsc` / `X-M2M-RSC`.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The code for a number, if Bastion knows it.
    pub fn from_code(code: u16) -> Option<Rsc> {
        ALL.into_iter().find(|r| r.code() == code)
    }

    /// HTTP status for this code (TS-0009 Table 6.3.2-1).
    pub fn http_status(self) -> u16 {
        match self {
            Rsc::Accepted | Rsc::AcceptedNonBlockingSynch | Rsc::AcceptedNonBlockingAsynch => 202,
            Rsc::Ok | Rsc::Deleted | Rsc::Updated => 200,
            Rsc::Created => 201,
            Rsc::BadRequest
            | Rsc::ContentsUnacceptable
            | Rsc::GroupMemberTypeInconsistent
            | Rsc::MaxNumberOfMemberExceeded => 400,
            Rsc::ReleaseVersionNotSupported
            | Rsc::NotImplemented
            | Rsc::SpecializationSchemaNotFound => 501,
            Rsc::NotFound | Rsc::TargetNotReachable | Rsc::RemoteEntityNotReachable => 404,
            Rsc::OperationNotAllowed => 405,
            Rsc::RequestTimeout => 504,
            Rsc::UnsupportedMediaType => 415,
            Rsc::OriginatorHasNoPrivilege
            | Rsc::OriginatorNotAuthenticated
            | Rsc::SecurityAssociationRequired
            | Rsc::InvalidChildResourceType
            | Rsc::OriginatorHasAlreadyRegistered
            | Rsc::AppRuleValidationFailed
            | Rsc::SubscriptionCreatorHasNoPrivilege
            | Rsc::NoMembers
            | Rsc::ReceiverHasNoPrivilege
            | Rsc::TargetNotSubscribable
            | Rsc::SubscriptionHostHasNoPrivilege
            | Rsc::OperationDeniedByRemoteEntity => 403,
            Rsc::Conflict | Rsc::BlockingSubscriptionAlreadyExists => 409,
            Rsc::InternalServerError
            | Rsc::SubscriptionVerificationInitiationFailed
            | Rsc::GroupMembersNotResponded
            | Rsc::CrossResourceOperationFailure => 500,
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
        assert_eq!(
            Rsc::SubscriptionVerificationInitiationFailed.http_status(),
            500
        );
        assert_eq!(Rsc::AcceptedNonBlockingSynch.http_status(), 202);
        assert_eq!(Rsc::TargetNotSubscribable.http_status(), 403);
        assert_eq!(Rsc::BlockingSubscriptionAlreadyExists.http_status(), 409);
        assert_eq!(Rsc::OperationDeniedByRemoteEntity.http_status(), 403);
        assert_eq!(Rsc::RemoteEntityNotReachable.http_status(), 404);
        assert_eq!(Rsc::SpecializationSchemaNotFound.http_status(), 501);
    }

    #[test]
    fn every_code_decodes_to_itself() {
        for r in ALL {
            assert_eq!(Rsc::from_code(r.code()), Some(r));
        }
        assert_eq!(Rsc::from_code(4999), None);
    }
}
