//! Coordinates → country (TS-0003 annex F: "fetch network coordinates and map them to a
//! country"), offline, from the `country-boundaries` data compiled into the binary
//! (derived from OpenStreetMap, ODbL, © OpenStreetMap contributors).
//!
//! The data is decoded once per process, on first use or by [`preload`]; after that a
//! lookup is a raster cell index plus a point-in-polygon test over that cell's edges.

use bastion_policy::{CountryCode, Location};
use country_boundaries::{CountryBoundaries, LatLon, BOUNDARIES_ODBL_180X90};
use std::sync::OnceLock;

static BOUNDARIES: OnceLock<Option<CountryBoundaries>> = OnceLock::new();

fn boundaries() -> Option<&'static CountryBoundaries> {
    BOUNDARIES
        .get_or_init(
            || match CountryBoundaries::from_reader(BOUNDARIES_ODBL_180X90) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::error!(error = %e, "country boundary data does not decode");
                    None
                }
            },
        )
        .as_ref()
}

/// Decodes the boundary data now, so that the first request does not pay for it.
/// Returns whether the data is usable.
pub fn preload() -> bool {
    boundaries().is_some()
}

/// The result of a coordinate lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountryAt {
    /// Inside this country (the smallest area with an ISO 3166-1 alpha-2 code, so an
    /// overseas territory with its own code answers that code).
    Country(CountryCode),
    /// In no country: high seas, Antarctica, or an invalid location.
    Nowhere,
    /// The boundary data could not be decoded: no answer from coordinates.
    Unavailable,
}

/// The country containing `location`.
pub fn country_at(location: Location) -> CountryAt {
    if !location.is_valid() {
        return CountryAt::Nowhere;
    }
    let Some(b) = boundaries() else {
        return CountryAt::Unavailable;
    };
    let Ok(pos) = LatLon::new(location.latitude, location.longitude) else {
        return CountryAt::Nowhere;
    };
    // Ids are ordered smallest area first and mix subdivisions (`US-TX`) with countries;
    // take the first two-letter one.
    b.ids(pos)
        .into_iter()
        .filter(|id| id.len() == 2)
        .find_map(CountryCode::parse)
        .map_or(CountryAt::Nowhere, CountryAt::Country)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(latitude: f64, longitude: f64) -> Option<String> {
        match country_at(Location {
            latitude,
            longitude,
        }) {
            CountryAt::Country(c) => Some(c.to_string()),
            CountryAt::Nowhere => None,
            CountryAt::Unavailable => panic!("boundary data unavailable"),
        }
    }

    #[test]
    fn known_places() {
        assert!(preload());
        assert_eq!(at(52.5200, 13.4050).as_deref(), Some("DE")); // Berlin
        assert_eq!(at(48.8566, 2.3522).as_deref(), Some("FR")); // Paris
        assert_eq!(at(33.0, -97.0).as_deref(), Some("US")); // Texas, not US-TX
        assert_eq!(at(-33.8688, 151.2093).as_deref(), Some("AU")); // Sydney
        assert_eq!(at(47.6973, 8.6910).as_deref(), Some("DE")); // Büsingen, inside CH
        assert_eq!(at(30.0, -40.0), None); // mid-Atlantic
    }

    #[test]
    fn edges_and_invalid_points_do_not_panic() {
        for (lat, lon) in [
            (90.0, 180.0),
            (-90.0, -180.0),
            (90.0, -180.0),
            (-90.0, 180.0),
            (0.0, 0.0),
        ] {
            let _ = at(lat, lon);
        }
        for (lat, lon) in [
            (91.0, 0.0),
            (0.0, 181.0),
            (f64::NAN, 0.0),
            (0.0, f64::INFINITY),
        ] {
            assert_eq!(at(lat, lon), None, "{lat} {lon}");
        }
    }
}
