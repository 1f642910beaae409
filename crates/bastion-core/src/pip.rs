//! The Policy Information Point (TS-0003 6.2.2, 7.4.3, annex F; digest §12): the
//! request-scoped attribute source the PDP asks when a rule needs more than the request.
//!
//! * group membership comes from the in-memory tree (`authz_state::is_member`);
//! * roles are those the pipeline validated for this request (`credentials.rs`): Role-IDs
//!   backed by a trusted `<role>` and the roles of verified tokens;
//! * location and country come from the configured [`LocationService`], asked at most
//!   once per request and only when an `aclr` needs them; when it knows no position and
//!   the operator trusts device-reported ones, the position is the newest entry of the
//!   container of a device-based `<locationPolicy>` the originator created
//!   ([`device_position`]).
//!
//! Nothing here blocks or does I/O: every answer is read from memory.

use crate::authz_state::{is_member, resolve_local};
use crate::tree::Tree;
use crate::{Cse, RequestContext};
use bastion_policy::{normalize_originator, CountryCode, Location, Pip};
use bastion_proto::time::Timestamp;
use bastion_proto::ResourceType;
use serde_json::Value;
use std::cell::OnceCell;
use std::time::Duration;

/// The PIP of one request (or one explanation).
pub(crate) struct RequestPip<'a> {
    cse: &'a Cse,
    tree: &'a Tree,
    originator: &'a str,
    ctx: &'a RequestContext,
    /// Set by `bastion acp explain --location`: replaces the location service.
    location_override: Option<Option<Location>>,
    normalized: OnceCell<String>,
    location: OnceCell<Option<Location>>,
    country: OnceCell<Option<CountryCode>>,
}

impl<'a> RequestPip<'a> {
    pub(crate) fn new(
        cse: &'a Cse,
        tree: &'a Tree,
        originator: &'a str,
        ctx: &'a RequestContext,
    ) -> Self {
        RequestPip {
            cse,
            tree,
            originator,
            ctx,
            location_override: None,
            normalized: OnceCell::new(),
            location: OnceCell::new(),
            country: OnceCell::new(),
        }
    }

    /// Uses `location` instead of asking the location service (operator explanations).
    pub(crate) fn with_location(mut self, location: Option<Location>) -> Self {
        self.location_override = Some(location);
        self
    }

    fn normalized(&self) -> &str {
        self.normalized
            .get_or_init(|| normalize_originator(&self.cse.local, self.originator))
    }
}

impl Pip for RequestPip<'_> {
    fn location(&self) -> Option<Location> {
        *self.location.get_or_init(|| match self.location_override {
            Some(fixed) => fixed,
            None => {
                let service = self.cse.location.as_ref()?;
                service.locate(self.normalized()).or_else(|| {
                    let max_age = service.device_max_age()?;
                    device_position(self.tree, self.normalized(), self.cse.now(), max_age)
                })
            }
        })
    }

    fn country(&self) -> Option<CountryCode> {
        *self.country.get_or_init(|| {
            let service = self.cse.location.as_ref()?;
            service.country(self.location(), self.ctx.peer.map(|p| p.ip()))
        })
    }

    fn member_of(&self, group_id: &str) -> Option<bool> {
        let group = resolve_local(self.tree, &self.cse.config, group_id)?;
        if group.ty != ResourceType::Group {
            return None;
        }
        is_member(self.tree, group, self.normalized())
    }

    fn holds_role(&self, role_id: &str) -> bool {
        self.ctx.roles.iter().any(|r| &**r == role_id)
    }
}

/// The position `originator` (normalized) reported itself: of the containers of its
/// device-based `<locationPolicy>` resources, the newest `<contentInstance>` (by creation
/// time; the later policy on a tie). `None`, so no location condition holds, when that
/// entry is older than `max_age` or its content is not `"LAT,LON"` in degrees, and when
/// there is none: an unreadable newest position never falls back to an older one.
pub(crate) fn device_position(
    tree: &Tree,
    originator: &str,
    now: Timestamp,
    max_age: Duration,
) -> Option<Location> {
    let newest = tree
        .location_policies_of(originator)
        .filter_map(|policy| policy.location_policy())
        .filter(|state| state.device_based)
        .filter_map(|state| tree.get(&state.container)?.container()?.latest.clone())
        .filter_map(|latest| {
            let ct = latest
                .get("ct")
                .and_then(Value::as_str)
                .and_then(Timestamp::parse)?;
            Some((ct, latest))
        })
        .max_by_key(|(ct, _)| *ct)?;
    let (ct, latest) = newest;
    let age = u64::try_from(now.0.saturating_sub(ct.0)).unwrap_or(0);
    if age > max_age.as_secs() {
        return None;
    }
    latest
        .get("con")
        .and_then(Value::as_str)
        .and_then(Location::parse_degrees)
}
