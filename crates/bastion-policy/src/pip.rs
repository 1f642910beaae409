//! The Policy Information Point interface (TS-0003 6.2.2, 7.1.2, annex F; digest §12): the
//! attributes the decision point needs beyond the request itself, asked for only when a
//! rule needs them.
//!
//! The PDP stays pure: it calls these traits but never implements them with I/O. The
//! PEP (`bastion-core`) supplies a request-scoped [`Pip`] that answers from memory (the
//! resource tree for group membership, validated roles and tokens, and a
//! [`LocationService`] whose caches are kept fresh elsewhere, for example by area
//! notifications from a network location server).

use crate::Location;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// An ISO 3166-1 alpha-2 country code, upper-case ASCII (the `accc` values of
/// `m2m:locationRegion`, TS-0004).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Accepts exactly two ASCII letters, in either case; stores them upper-case.
    pub fn parse(code: &str) -> Option<CountryCode> {
        match code.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some(CountryCode([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
            ])),
            _ => None,
        }
    }

    /// The code, e.g. `"DE"`.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

/// Where the CSE learns originators' locations and countries (annex F). Implementations
/// answer from memory, quickly: the PEP asks on the request path.
pub trait LocationService: Send + Sync {
    /// The current location of `originator` (absolute form, `//sp/cse/ae`), or `None`
    /// when it is unknown, stale or only known from a source the operator does not trust.
    fn locate(&self, originator: &str) -> Option<Location>;

    /// The country the originator is in: from `location` when given, otherwise from the
    /// transport `peer` address when a prefix table covers it; `None` when neither tells.
    fn country(&self, location: Option<Location>, peer: Option<IpAddr>) -> Option<CountryCode>;

    /// How long a position the device reported itself counts (the latest entry of the
    /// container of its device-based `<locationPolicy>`), or `None` when the operator does
    /// not trust device-reported positions, which is the default (annex F).
    fn device_max_age(&self) -> Option<Duration> {
        None
    }
}

/// The request-scoped attribute source the PDP consults (TS-0003 6.2.2 PIP). Every default
/// answers "unknown", which never grants.
pub trait Pip {
    /// `rq_loc`: the originator's location.
    fn location(&self) -> Option<Location> {
        None
    }

    /// The originator's country, for `accc`.
    fn country(&self) -> Option<CountryCode> {
        None
    }

    /// Whether the originator is a member of the `<group>` named by `group_id` (an `acor`
    /// entry, as written). `None` when the group cannot be resolved (missing, not a group,
    /// too deep, cyclic): the entry then does not match (TS-0001 9.6.2.1: reject).
    fn member_of(&self, group_id: &str) -> Option<bool> {
        let _ = group_id;
        None
    }

    /// Whether the originator holds the Role-ID `role_id` (validated: from a trusted
    /// `<role>` or token, held by this originator, inside its validity window).
    fn holds_role(&self, role_id: &str) -> bool {
        let _ = role_id;
        false
    }
}

/// A PIP that knows nothing: every attribute is unknown.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoInformation;

impl Pip for NoInformation {}

/// A PIP with fixed answers, for tools and tests (`bastion acp explain --location`).
#[derive(Clone, Debug, Default)]
pub struct FixedInformation {
    pub location: Option<Location>,
    pub country: Option<CountryCode>,
    /// Group resource IDs (as written in `acor`) the originator is a member of.
    pub groups: Vec<String>,
    pub roles: Vec<String>,
}

impl Pip for FixedInformation {
    fn location(&self) -> Option<Location> {
        self.location
    }

    fn country(&self) -> Option<CountryCode> {
        self.country
    }

    fn member_of(&self, group_id: &str) -> Option<bool> {
        Some(self.groups.iter().any(|g| g == group_id))
    }

    fn holds_role(&self, role_id: &str) -> bool {
        self.roles.iter().any(|r| r == role_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_two_letters_upper_cased() {
        assert_eq!(CountryCode::parse("de").unwrap().as_str(), "DE");
        assert_eq!(CountryCode::parse("FR").unwrap().to_string(), "FR");
        for bad in ["", "D", "DEU", "D1", "é", "  "] {
            assert!(CountryCode::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn ts0003_annex_f_positions_are_lat_lon_in_degrees() {
        let berlin = Location::parse_degrees("52.52,13.405").unwrap();
        assert_eq!((berlin.latitude, berlin.longitude), (52.52, 13.405));
        let spaced = Location::parse_degrees(" -33.9 , 151.2 ").unwrap();
        assert_eq!((spaced.latitude, spaced.longitude), (-33.9, 151.2));
        for bad in [
            "",
            "52.52",
            "52.52,",
            ",13.4",
            "52.52;13.405",
            "52.52,13.405,34",
            "91,0",
            "0,180.5",
            "NaN,0",
            "0,inf",
            "north,east",
        ] {
            assert!(Location::parse_degrees(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn ts0003_annex_f_device_positions_are_untrusted_by_default() {
        struct Network;
        impl LocationService for Network {
            fn locate(&self, _: &str) -> Option<Location> {
                None
            }
            fn country(&self, _: Option<Location>, _: Option<IpAddr>) -> Option<CountryCode> {
                None
            }
        }
        assert_eq!(Network.device_max_age(), None);
    }

    #[test]
    fn no_information_never_grants() {
        let pip = NoInformation;
        assert!(pip.location().is_none());
        assert!(pip.country().is_none());
        assert_eq!(pip.member_of("grp1"), None);
        assert!(!pip.holds_role("r@x.example"));
    }
}
