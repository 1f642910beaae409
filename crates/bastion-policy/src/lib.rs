//! Bastion's Policy Decision Point (PDP): access-control rule parsing, originator matching
//! and the permit-only decision of oneM2M TS-0003 clause 7.1, with an on-demand explanation.
//!
//! This file owns the request/answer vocabulary shared by the rest of the crate: the local
//! CSE identity, the operation bits, the access request, the applicable-policy input and
//! the decision. The work itself lives in the modules:
//!
//! * [`rules`]: strict parsing of an `m2m:setOfAcrs` into a compiled [`RuleSet`];
//! * [`originator`]: absolute-form normalisation and the `acor` wildcard matcher;
//! * [`context`]: the `acco` context elements (time windows, IP prefixes, location);
//! * [`schedule`]: the extended-crontab `scheduleEntry` of `actw`;
//! * `decide` (private): the allocation-free hot-path decision, [`decide`];
//! * [`explain`](mod@explain): the full, allocating explanation, [`explain()`];
//! * [`pip`]: the Policy Information Point traits (location, country, groups, roles);
//! * [`token`]: strict validation of oneM2M dynamic-authorization JWTs (TS-0003 7.3.2.4),
//!   [`TokenVerifier::verify`], giving a [`ValidatedToken`] (not yet fed into [`decide`]).
//!
//! The crate is pure: no I/O, no clock, no async, no global state: the request time, peer
//! address and location come in the [`AccessRequest`] (and the time and `From` of a token
//! check in the [`TokenContext`]). The Policy Enforcement Point (`bastion-core`) gathers
//! the applicable rules and calls [`decide`]; on a deny it may call [`explain()`] to build
//! the debug message of a 4103 response.
#![forbid(unsafe_code)]

pub mod context;
mod decide;
pub mod error;
pub mod explain;
pub mod originator;
pub mod pip;
pub mod rules;
pub mod schedule;
pub mod token;

use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

pub use context::Context;
pub use decide::{decide, is_owner, readable_attributes, ReadableAttributes};
pub use error::PolicyError;
pub use explain::{explain, Explanation};
pub use originator::normalize_originator;
pub use pip::{CountryCode, FixedInformation, LocationService, NoInformation, Pip};
pub use rules::{Rule, RuleSet};
pub use token::{
    Algorithm, IssuerKey, KeyError, TokenContext, TokenError, TokenPermission, TokenVerifier,
    ValidatedToken,
};

/// Who "we" are: needed to turn relative identifiers into the absolute form before any
/// comparison (TS-0001 7.2 identifier formats; digest §5 "normalise `From` and every
/// `acor` entry").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalIdentity {
    /// M2M-SP-ID, e.g. `//bastion.example` (no trailing slash).
    pub sp_id: String,
    /// SP-relative CSE-ID, e.g. `/id-in`.
    pub cse_id: String,
    /// The administrator originator as configured, e.g. `CAdmin`.
    pub admin: String,
}

impl LocalIdentity {
    /// Checks that the identity has the shapes the normaliser relies on: `sp_id` is
    /// `//fqdn` (one non-empty segment, no `*`), `cse_id` is `/name` (one non-empty
    /// segment, no `*`), `admin` is non-empty. Meant for the configuration loader; the PDP
    /// itself never panics on a bad identity, it just fails closed.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let sp = self
            .sp_id
            .strip_prefix("//")
            .ok_or_else(|| PolicyError::new("sp_id", "must start with //"))?;
        if sp.is_empty() || sp.contains('/') || sp.contains('*') {
            return Err(PolicyError::new(
                "sp_id",
                "must be //fqdn with no further '/' and no '*'",
            ));
        }
        let cse = self
            .cse_id
            .strip_prefix('/')
            .ok_or_else(|| PolicyError::new("cse_id", "must start with /"))?;
        if cse.is_empty() || cse.contains('/') || cse.contains('*') {
            return Err(PolicyError::new(
                "cse_id",
                "must be /name with no further '/' and no '*'",
            ));
        }
        if self.admin.is_empty() {
            return Err(PolicyError::new("admin", "must not be empty"));
        }
        Ok(())
    }
}

/// One operation as seen by access control, with its `accessControlOperations` bit
/// (TS-0004 6.3.4.2.29; digest §2.2). Discovery is a Retrieve carrying `fu = 1` and is
/// checked against its own bit, never against Retrieve's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessOperation {
    Create,
    Retrieve,
    Update,
    Delete,
    Notify,
    Discovery,
}

impl AccessOperation {
    /// Every operation, in bit order.
    pub const ALL: [AccessOperation; 6] = [
        AccessOperation::Create,
        AccessOperation::Retrieve,
        AccessOperation::Update,
        AccessOperation::Delete,
        AccessOperation::Notify,
        AccessOperation::Discovery,
    ];

    /// The bit of this operation in an `acop` mask: 1, 2, 4, 8, 16, 32.
    pub fn bit(self) -> u8 {
        match self {
            AccessOperation::Create => 1,
            AccessOperation::Retrieve => 2,
            AccessOperation::Update => 4,
            AccessOperation::Delete => 8,
            AccessOperation::Notify => 16,
            AccessOperation::Discovery => 32,
        }
    }

    /// Upper-case name used in messages, e.g. `RETRIEVE`.
    pub fn name(self) -> &'static str {
        match self {
            AccessOperation::Create => "CREATE",
            AccessOperation::Retrieve => "RETRIEVE",
            AccessOperation::Update => "UPDATE",
            AccessOperation::Delete => "DELETE",
            AccessOperation::Notify => "NOTIFY",
            AccessOperation::Discovery => "DISCOVERY",
        }
    }
}

impl fmt::Display for AccessOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for AccessOperation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A point on Earth, WGS 84 degrees (`rq_loc`, TS-0003 7.1.2 table 7.1.2-2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
}

impl Location {
    /// Finite, latitude within ±90 and longitude within ±180. An invalid location is
    /// treated like an unknown one: it never lies in a region.
    pub fn is_valid(&self) -> bool {
        self.latitude.is_finite()
            && self.longitude.is_finite()
            && (-90.0..=90.0).contains(&self.latitude)
            && (-180.0..=180.0).contains(&self.longitude)
    }

    /// `LAT,LON` in decimal degrees (white space around either number allowed), e.g.
    /// `48.85,2.35`: the one text form of a position, for operators (`bastion acp
    /// explain --location`) and for the positions devices store in a `<locationPolicy>`
    /// container. `None` unless it names a valid location.
    pub fn parse_degrees(text: &str) -> Option<Location> {
        let (lat, lon) = text.split_once(',')?;
        let location = Location {
            latitude: lat.trim().parse().ok()?,
            longitude: lon.trim().parse().ok()?,
        };
        location.is_valid().then_some(location)
    }
}

/// The access-control view of one request (TS-0003 7.1.2 tables 7.1.2-1 and 7.1.2-2).
/// Context values the PEP does not know are `None`; a context sub-parameter that needs an
/// unknown value does not hold.
#[derive(Clone, Copy)]
pub struct AccessRequest<'a> {
    /// The `From` parameter exactly as received (may be empty).
    pub originator: &'a str,
    pub operation: AccessOperation,
    /// `rq_authn` (TS-0003 7.1.2 table 7.1.2-3); false until security associations land.
    pub authenticated: bool,
    /// `ty` of the addressed resource (for CREATE: the parent).
    pub target_type: u16,
    /// CREATE only: `ty` of the resource to be created.
    pub create_type: Option<u16>,
    /// `rq_time`: when the hosting CSE received the request, Unix seconds (UTC), from its
    /// own clock.
    pub time: Option<i64>,
    /// `rq_ip`: the transport source address (never a forwarded-for header).
    pub peer_ip: Option<IpAddr>,
    /// The attributes the request reads or writes (TS-0003 7.1.5 `rq_attrs`, R4): what a
    /// rule limited by `aca` must cover for it to grant.
    pub attributes: Attributes<'a>,
    /// Everything else the decision may need, asked only when a rule needs it: `rq_loc`
    /// and country (annex F), group membership for group `acor` entries, validated
    /// Role-IDs for role entries (TS-0003 7.4).
    pub pip: &'a dyn Pip,
}

impl fmt::Debug for AccessRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessRequest")
            .field("originator", &self.originator)
            .field("operation", &self.operation)
            .field("authenticated", &self.authenticated)
            .field("target_type", &self.target_type)
            .field("create_type", &self.create_type)
            .field("time", &self.time)
            .field("peer_ip", &self.peer_ip)
            .field("attributes", &self.attributes)
            .finish_non_exhaustive()
    }
}

/// The attributes a request touches, as attribute-level access control sees them
/// (`accessControlAttributes`, `aca`, of an `accessControlRule`, TS-0004 R4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attributes<'a> {
    /// The whole resource: a full RETRIEVE, DELETE, NOTIFY, DISCOVERY; only a rule
    /// without `aca` covers it.
    Whole,
    /// Exactly these attributes (short names): the `atrl` of a partial RETRIEVE, the
    /// members of the content of a CREATE or UPDATE.
    Named(&'a [&'a str]),
}

/// One ACP's rule set together with its identifier (used only in explanations).
#[derive(Clone, Copy, Debug)]
pub struct PolicySource<'a> {
    pub acp_id: &'a str,
    pub rules: &'a RuleSet,
}

/// The rules that govern the request, as gathered by the PEP/PRP (digest §3).
#[derive(Clone, Copy, Debug)]
pub enum Applicable<'a> {
    /// Permit-overrides over every rule of every source (TS-0003 7.1.4).
    Policies(&'a [PolicySource<'a>]),
    /// The target has no `acpi`: only its custodian (`cstn`, TS-0001 R4) when it has
    /// one, else its creator gets (full) access; neither known means nobody but the
    /// administrator is let in (default access policy of the TS-0001 `acpi` attribute,
    /// digest §3).
    Default {
        creator: Option<&'a str>,
        custodian: Option<&'a str>,
    },
}

/// Why access was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum Grant {
    /// The originator is the configured CSE administrator.
    Admin,
    /// Default policy: the originator created the resource (which has no custodian).
    Creator,
    /// Default policy: the originator is the resource's custodian.
    Custodian,
    /// `rule` of the `RuleSet` at `source` in the [`Applicable::Policies`] slice.
    Rule { source: usize, rule: usize },
}

/// The verdict. `grant == None` is a deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Decision {
    pub grant: Option<Grant>,
}

impl Decision {
    /// The deny verdict.
    pub const DENY: Decision = Decision { grant: None };

    /// True when the request is permitted.
    pub fn granted(&self) -> bool {
        self.grant.is_some()
    }
}
