//! [`LocationPip`]: the in-memory answer to "where is this originator, and in which
//! country" (TS-0003 6.2.2 PIP, 7.1.2 `rq_loc`, annex F), built from the `[location]`
//! configuration. It owns the three location sources and their precedence:
//!
//! 1. a fresh network fix (OMA Terminal Location; annex F's required source);
//! 2. the static table of configured node locations;
//! 3. a fresh device-reported fix, only when the operator opted in (annex F distrusts
//!    device GPS).
//!
//! Everything the PEP calls ([`LocationService`]) reads memory under a short lock and
//! never waits for the network; the network side lives in [`crate::network`].

use crate::clock::{Clock, SystemClock};
use crate::config::LocationConfig;
use crate::country::{self, CountryAt};
use crate::error::LocationError;
use crate::network::Network;
use crate::prefix::PrefixTable;
use bastion_policy::{normalize_originator, CountryCode, LocalIdentity, Location, LocationService};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Most device-reported fixes kept at once; past it, stale ones are dropped and, if none
/// is stale, reports for new originators are ignored.
pub const MAX_DEVICE_FIXES: usize = 100_000;

/// A position and when it was measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Fix {
    pub location: Location,
    pub at: SystemTime,
}

impl Fix {
    /// Fresh while its age is at most `max_age`. A fix from the future (the clock went
    /// back) counts as age zero.
    pub fn is_fresh(&self, now: SystemTime, max_age: Duration) -> bool {
        now.duration_since(self.at)
            .map_or(true, |age| age <= max_age)
    }
}

/// Why [`LocationPip::report_device_location`] did not store a fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceReport {
    /// Stored; it counts while fresh.
    Stored,
    /// The operator does not trust device-reported locations (the default).
    Untrusted,
    /// Latitude/longitude out of range or not finite.
    Invalid,
    /// Older than the fix already held, or already stale.
    Outdated,
    /// The table is full of fresh fixes ([`MAX_DEVICE_FIXES`]).
    Full,
}

/// The location Policy Information Point.
pub struct LocationPip {
    pub(crate) local: LocalIdentity,
    pub(crate) clock: Arc<dyn Clock>,
    static_nodes: HashMap<String, Location>,
    trust_device: bool,
    device_max_age: Duration,
    device: RwLock<HashMap<String, Fix>>,
    pub(crate) network: Option<Network>,
    prefixes: PrefixTable,
}

impl std::fmt::Debug for LocationPip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocationPip")
            .field("static_nodes", &self.static_nodes.len())
            .field("trust_device", &self.trust_device)
            .field("network", &self.network.is_some())
            .finish_non_exhaustive()
    }
}

impl LocationPip {
    /// Builds the PIP on the system clock. See [`LocationPip::with_clock`].
    pub fn new(
        config: &LocationConfig,
        local: &LocalIdentity,
    ) -> Result<LocationPip, LocationError> {
        LocationPip::with_clock(config, local, Arc::new(SystemClock))
    }

    /// Builds the PIP, checking the whole configuration: coordinates valid, originators
    /// non-empty and unique per source, URLs absolute `http(s)`, ages positive, prefixes
    /// and country codes well-formed. Originators are normalised with `local`. Also
    /// decodes the country boundary data, so the first request does not.
    pub fn with_clock(
        config: &LocationConfig,
        local: &LocalIdentity,
        clock: Arc<dyn Clock>,
    ) -> Result<LocationPip, LocationError> {
        let mut static_nodes = HashMap::with_capacity(config.static_nodes.len());
        for (i, node) in config.static_nodes.iter().enumerate() {
            let field = format!("static_nodes[{i}]");
            if node.originator.is_empty() {
                return Err(LocationError::config(
                    format!("{field}.originator"),
                    "empty",
                ));
            }
            let location = Location {
                latitude: node.latitude,
                longitude: node.longitude,
            };
            if !location.is_valid() {
                return Err(LocationError::config(
                    field,
                    "latitude must be within ±90 and longitude within ±180",
                ));
            }
            let id = normalize_originator(local, &node.originator);
            if static_nodes.insert(id.clone(), location).is_some() {
                return Err(LocationError::config(
                    format!("{field}.originator"),
                    format!("{id} is listed twice"),
                ));
            }
        }
        if config.device_max_age_secs == 0 {
            return Err(LocationError::config(
                "device_max_age_secs",
                "must be positive",
            ));
        }
        let network = config
            .network
            .as_ref()
            .map(|n| Network::new(n, local))
            .transpose()?;
        let prefixes = PrefixTable::new(&config.country_prefixes)?;
        if !country::preload() {
            tracing::warn!("country boundary data unavailable: countries come from prefixes only");
        }
        Ok(LocationPip {
            local: local.clone(),
            clock,
            static_nodes,
            trust_device: config.trust_device_reported,
            device_max_age: Duration::from_secs(config.device_max_age_secs),
            device: RwLock::new(HashMap::new()),
            network,
            prefixes,
        })
    }

    /// Records a location the device itself reported (e.g. from a `<locationPolicy>`
    /// with device-based source), measured at `at`. Ignored unless the operator set
    /// `trust_device_reported`.
    pub fn report_device_location(
        &self,
        originator: &str,
        location: Location,
        at: SystemTime,
    ) -> DeviceReport {
        if !self.trust_device {
            return DeviceReport::Untrusted;
        }
        if !location.is_valid() {
            return DeviceReport::Invalid;
        }
        let now = self.clock.now();
        // A fix claimed to be from the future is taken as measured now.
        let at = at.min(now);
        let fix = Fix { location, at };
        if !fix.is_fresh(now, self.device_max_age) {
            return DeviceReport::Outdated;
        }
        let id = normalize_originator(&self.local, originator);
        let mut device = self.device.write();
        match device.get(&id) {
            Some(old) if old.at > at => return DeviceReport::Outdated,
            Some(_) => {}
            None if device.len() >= MAX_DEVICE_FIXES => {
                let max_age = self.device_max_age;
                device.retain(|_, f| f.is_fresh(now, max_age));
                if device.len() >= MAX_DEVICE_FIXES {
                    return DeviceReport::Full;
                }
            }
            None => {}
        }
        device.insert(id, fix);
        DeviceReport::Stored
    }

    /// Whether a network location server is configured.
    pub fn has_network(&self) -> bool {
        self.network.is_some()
    }
}

impl LocationService for LocationPip {
    fn locate(&self, originator: &str) -> Option<Location> {
        let now = self.clock.now();
        if let Some(fix) = self
            .network
            .as_ref()
            .and_then(|n| n.fresh_fix(originator, now))
        {
            return Some(fix);
        }
        if let Some(l) = self.static_nodes.get(originator) {
            return Some(*l);
        }
        if self.trust_device {
            if let Some(f) = self.device.read().get(originator) {
                if f.is_fresh(now, self.device_max_age) {
                    return Some(f.location);
                }
            }
        }
        None
    }

    /// A valid `location` decides alone (a point at sea is in no country, whatever the
    /// peer address); without one, or when the boundary data is unavailable, the peer
    /// address is looked up in the prefix table.
    fn country(&self, location: Option<Location>, peer: Option<IpAddr>) -> Option<CountryCode> {
        if let Some(l) = location.filter(Location::is_valid) {
            match country::country_at(l) {
                CountryAt::Country(c) => return Some(c),
                CountryAt::Nowhere => return None,
                CountryAt::Unavailable => {}
            }
        }
        peer.and_then(|ip| self.prefixes.lookup(ip))
    }

    /// The same trust and age as device reports made through
    /// [`LocationPip::report_device_location`].
    fn device_max_age(&self) -> Option<Duration> {
        self.trust_device.then_some(self.device_max_age)
    }
}
