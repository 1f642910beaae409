//! The request error type: every way a request can fail, each mapped to exactly one
//! response status code. The text is the short reason sent back in `m2m:dbg`; it never
//! carries secrets or internal details.

use crate::rsc::Rsc;
use std::borrow::Cow;

type Reason = Cow<'static, str>;

/// A failed request. `rsc()` is the single mapping from failure to status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    BadRequest(Reason),
    #[error("{0}")]
    ReleaseVersionNotSupported(Reason),
    #[error("{0}")]
    NotFound(Reason),
    /// 4102: an attribute the target cannot take (TS-0004 7.4.9.2.1).
    #[error("{0}")]
    ContentsUnacceptable(Reason),
    #[error("{0}")]
    OperationNotAllowed(Reason),
    #[error("{0}")]
    RequestTimeout(Reason),
    #[error("{0}")]
    UnsupportedMediaType(Reason),
    #[error("{0}")]
    NoPrivilege(Reason),
    #[error("{0}")]
    Conflict(Reason),
    #[error("{0}")]
    NotAuthenticated(Reason),
    #[error("{0}")]
    SecurityAssociationRequired(Reason),
    #[error("{0}")]
    InvalidChildType(Reason),
    #[error("{0}")]
    AlreadyRegistered(Reason),
    #[error("{0}")]
    AppRuleValidationFailed(Reason),
    #[error("{0}")]
    NotImplemented(Reason),
    /// 4125: no specialization is known for a `<flexContainer>`'s `cnd`.
    #[error("{0}")]
    SpecializationSchemaNotFound(Reason),
    #[error("{0}")]
    NotAcceptable(Reason),
    /// Forwarding found a next hop but could not reach it (TS-0004 7.3.2.6).
    #[error("{0}")]
    TargetNotReachable(Reason),
    #[error("{0}")]
    Internal(Reason),
    /// A `<group>` member has the wrong type and `csy` is ABANDON_GROUP (TS-0001 9.6.13).
    #[error("{0}")]
    GroupMemberTypeInconsistent(Reason),
    /// `mid` longer than `mnm`, or `mnm` below the member count.
    #[error("{0}")]
    MaxMembersExceeded(Reason),
    /// 4101: subscription verification found the creator without NOTIFY privilege.
    #[error("{0}")]
    SubscriptionCreatorNoPrivilege(Reason),
    /// 5205: subscription verification found the hosting CSE without NOTIFY privilege.
    #[error("{0}")]
    SubscriptionHostNoPrivilege(Reason),
    /// 5203: the parent cannot hold subscriptions.
    #[error("{0}")]
    TargetNotSubscribable(Reason),
    /// 5204: a notification target did not confirm a new subscription.
    #[error("{0}")]
    SubscriptionVerificationFailed(Reason),
    /// 4109: a fan-out request to a group without members.
    #[error("{0}")]
    NoMembers(Reason),
    /// 5209: no group member answered in time.
    #[error("{0}")]
    GroupMembersNotResponded(Reason),
    /// 4124: the resource already has a blocking-update subscription.
    #[error("{0}")]
    BlockingSubscriptionExists(Reason),
    /// 4127: the target of a blocking update refused it.
    #[error("{0}")]
    DeniedByRemoteEntity(Reason),
    /// 5107: the target of a blocking update could not be reached.
    #[error("{0}")]
    RemoteEntityNotReachable(Reason),
    /// 5221: a `<crossResourceSubscription>` target's subscription could not be made; the
    /// reason names the target and what its own CREATE answered.
    #[error("{0}")]
    CrossResourceOperationFailure(Reason),
    /// 4103 of the indirect dynamic authorization procedure (TS-0003 7.3.2.3 step 2): the
    /// response carries this Token Request Information (`tqf`) and no debug text.
    #[error("originator has no privilege; token request information attached")]
    TokenRequestInfo(Box<serde_json::Value>),
}

impl RequestError {
    /// The response status code this failure is reported with.
    pub fn rsc(&self) -> Rsc {
        match self {
            RequestError::BadRequest(_) => Rsc::BadRequest,
            RequestError::ReleaseVersionNotSupported(_) => Rsc::ReleaseVersionNotSupported,
            RequestError::NotFound(_) => Rsc::NotFound,
            RequestError::ContentsUnacceptable(_) => Rsc::ContentsUnacceptable,
            RequestError::OperationNotAllowed(_) => Rsc::OperationNotAllowed,
            RequestError::RequestTimeout(_) => Rsc::RequestTimeout,
            RequestError::UnsupportedMediaType(_) => Rsc::UnsupportedMediaType,
            RequestError::NoPrivilege(_) => Rsc::OriginatorHasNoPrivilege,
            RequestError::Conflict(_) => Rsc::Conflict,
            RequestError::NotAuthenticated(_) => Rsc::OriginatorNotAuthenticated,
            RequestError::SecurityAssociationRequired(_) => Rsc::SecurityAssociationRequired,
            RequestError::InvalidChildType(_) => Rsc::InvalidChildResourceType,
            RequestError::AlreadyRegistered(_) => Rsc::OriginatorHasAlreadyRegistered,
            RequestError::AppRuleValidationFailed(_) => Rsc::AppRuleValidationFailed,
            RequestError::NotImplemented(_) => Rsc::NotImplemented,
            RequestError::SpecializationSchemaNotFound(_) => Rsc::SpecializationSchemaNotFound,
            RequestError::NotAcceptable(_) => Rsc::NotAcceptable,
            RequestError::TargetNotReachable(_) => Rsc::TargetNotReachable,
            RequestError::Internal(_) => Rsc::InternalServerError,
            RequestError::GroupMemberTypeInconsistent(_) => Rsc::GroupMemberTypeInconsistent,
            RequestError::MaxMembersExceeded(_) => Rsc::MaxNumberOfMemberExceeded,
            RequestError::TokenRequestInfo(_) => Rsc::OriginatorHasNoPrivilege,
            RequestError::SubscriptionCreatorNoPrivilege(_) => {
                Rsc::SubscriptionCreatorHasNoPrivilege
            }
            RequestError::SubscriptionHostNoPrivilege(_) => Rsc::SubscriptionHostHasNoPrivilege,
            RequestError::TargetNotSubscribable(_) => Rsc::TargetNotSubscribable,
            RequestError::SubscriptionVerificationFailed(_) => {
                Rsc::SubscriptionVerificationInitiationFailed
            }
            RequestError::NoMembers(_) => Rsc::NoMembers,
            RequestError::GroupMembersNotResponded(_) => Rsc::GroupMembersNotResponded,
            RequestError::BlockingSubscriptionExists(_) => Rsc::BlockingSubscriptionAlreadyExists,
            RequestError::DeniedByRemoteEntity(_) => Rsc::OperationDeniedByRemoteEntity,
            RequestError::RemoteEntityNotReachable(_) => Rsc::RemoteEntityNotReachable,
            RequestError::CrossResourceOperationFailure(_) => Rsc::CrossResourceOperationFailure,
        }
    }

    pub fn bad_request(reason: impl Into<Reason>) -> Self {
        RequestError::BadRequest(reason.into())
    }

    pub fn not_found(reason: impl Into<Reason>) -> Self {
        RequestError::NotFound(reason.into())
    }

    pub fn not_allowed(reason: impl Into<Reason>) -> Self {
        RequestError::OperationNotAllowed(reason.into())
    }

    /// The short reason text.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}
