//! Access-control contexts (`acco`, TS-0003 7.1.2 table 7.1.2-2 and annex F; digest §6):
//! strict parsing of one `accessControlContexts` element into a compiled [`Context`], and
//! its evaluation against the context of a request.
//!
//! Semantics (digest §4 `ctx_ok`, §14 item 3):
//!
//! * a rule's `acco` holds when **any** element holds (OR); an absent or empty `acco`
//!   imposes no constraint (that part lives in [`crate::rules`]);
//! * an element holds when **every** sub-parameter it carries holds (AND); an absent
//!   sub-parameter imposes no constraint; an element with no sub-parameter at all never
//!   holds (an empty object is most likely a mistake, and failing closed is the safe reading);
//! * `actw` holds when the request time (UTC) falls in any schedule entry
//!   ([`crate::schedule`]); an empty list holds never;
//! * `acip` holds when the transport peer address lies in any listed prefix (no `/n` = one
//!   host); an IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`) is compared as IPv4; no listed
//!   prefix holds never;
//! * `aclr` holds for a circle (`accr`: latitude, longitude, radius in metres) when the
//!   haversine distance from the centre is at most the radius; for country codes (`accc`)
//!   when the originator's country, as the PIP resolves it, is listed (annex F: deny when
//!   the location cannot be obtained);
//! * an unknown request time, peer, location or country makes the sub-parameter that
//!   needs it fail. Location and country come from the request's [`crate::Pip`], asked
//!   only when an element has an `aclr`.
//!
//! Parsing allocates (once, when an ACP is written); `Context::holds` does not.

use crate::explain::{ContextExplanation, ContextParameter, ContextPart};
use crate::pip::{CountryCode, Pip};
use crate::rules::{as_array, as_object, only_members};
use crate::schedule::{Civil, Schedule};
use crate::{AccessRequest, Location, PolicyError};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Mean Earth radius (IUGG), metres, used by the haversine distance.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// One compiled `accessControlContexts` element. The raw JSON is kept for explanations.
#[derive(Clone, Debug)]
pub struct Context {
    raw: Value,
    actw: Option<Box<[Schedule]>>,
    acip: Option<IpRanges>,
    aclr: Option<Region>,
}

/// A compiled `acip` (`m2m:ipv4` / `m2m:ipv6` lists).
#[derive(Clone, Debug)]
pub struct IpRanges {
    v4: Box<[Prefix<u32>]>,
    v6: Box<[Prefix<u128>]>,
}

#[derive(Clone, Debug)]
struct Prefix<T> {
    raw: Box<str>,
    net: T,
    mask: T,
}

/// A compiled `aclr` (`m2m:locationRegion`).
#[derive(Clone, Debug, PartialEq)]
pub enum Region {
    /// `accr`: a circle, degrees and metres.
    Circle {
        latitude: f64,
        longitude: f64,
        radius_m: f64,
    },
    /// `accc`: ISO 3166-1 alpha-2 codes, matched against the PIP's country.
    Countries(Box<[CountryCode]>),
}

impl Context {
    /// Parses one element, strictly: only `actw` (array of schedule strings), `acip`
    /// (object with `ipv4`/`ipv6` arrays of strings) and `aclr` (object with exactly one of
    /// `accr`/`accc`).
    pub(crate) fn parse(value: &Value, path: &str) -> Result<Context, PolicyError> {
        let obj = as_object(value, path)?;
        only_members(obj, path, &["actw", "acip", "aclr"])?;
        let actw = match obj.get("actw") {
            None => None,
            Some(v) => {
                let p = format!("{path}.actw");
                let list = as_array(v, &p)?
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let p = format!("{p}[{i}]");
                        let s = e
                            .as_str()
                            .ok_or_else(|| PolicyError::new(&p, "must be a string"))?;
                        Schedule::parse(s).map_err(|why| PolicyError::new(&p, why))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(list.into_boxed_slice())
            }
        };
        let acip = match obj.get("acip") {
            None => None,
            Some(v) => Some(IpRanges::parse(v, &format!("{path}.acip"))?),
        };
        let aclr = match obj.get("aclr") {
            None => None,
            Some(v) => Some(Region::parse(v, &format!("{path}.aclr"))?),
        };
        Ok(Context {
            raw: value.clone(),
            actw,
            acip,
            aclr,
        })
    }

    /// The element as written.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The `actw` schedule entries, if the element has `actw`.
    pub fn time_windows(&self) -> Option<&[Schedule]> {
        self.actw.as_deref()
    }

    /// The `acip` prefixes, if the element has `acip`.
    pub fn ip_ranges(&self) -> Option<&IpRanges> {
        self.acip.as_ref()
    }

    /// The `aclr` region, if the element has `aclr`.
    pub fn region(&self) -> Option<&Region> {
        self.aclr.as_ref()
    }

    /// True when the element carries no sub-parameter (it then never holds).
    pub fn is_empty(&self) -> bool {
        self.actw.is_none() && self.acip.is_none() && self.aclr.is_none()
    }

    /// `actw` against the request time; `None` when the element has no `actw`.
    pub(crate) fn time_ok(&self, time: Option<i64>) -> Option<bool> {
        let windows = self.actw.as_deref()?;
        Some(time.is_some_and(|t| {
            let c = Civil::from_unix(t);
            windows.iter().any(|w| w.matches_civil(&c))
        }))
    }

    /// `acip` against the peer address; `None` when the element has no `acip`.
    pub(crate) fn ip_ok(&self, peer: Option<IpAddr>) -> Option<bool> {
        let ranges = self.acip.as_ref()?;
        Some(peer.is_some_and(|ip| ranges.matching(ip).is_some()))
    }

    /// `aclr` against the originator's location or country, asked of the PIP only here;
    /// `None` when the element has no `aclr`.
    pub(crate) fn location_ok(&self, req: &AccessRequest<'_>) -> Option<bool> {
        Some(self.aclr.as_ref()?.holds(req.pip))
    }

    /// The element holds: it has a sub-parameter, and every one it has holds.
    pub(crate) fn holds(&self, req: &AccessRequest<'_>) -> bool {
        !self.is_empty()
            && self.time_ok(req.time) != Some(false)
            && self.ip_ok(req.peer_ip) != Some(false)
            && self.location_ok(req) != Some(false)
    }

    /// Every sub-parameter with its verdict and reason. Each verdict comes from the very
    /// functions [`Context::holds`] uses.
    pub(crate) fn explain(&self, index: usize, req: &AccessRequest<'_>) -> ContextExplanation {
        let mut parts = Vec::with_capacity(3);
        if let Some(holds) = self.time_ok(req.time) {
            parts.push(ContextPart {
                parameter: ContextParameter::Time,
                holds,
                reason: self.time_reason(req.time),
            });
        }
        if let Some(holds) = self.ip_ok(req.peer_ip) {
            parts.push(ContextPart {
                parameter: ContextParameter::Ip,
                holds,
                reason: self.ip_reason(req.peer_ip),
            });
        }
        if let Some(holds) = self.location_ok(req) {
            parts.push(ContextPart {
                parameter: ContextParameter::Location,
                holds,
                reason: self.location_reason(req),
            });
        }
        let holds = self.holds(req);
        debug_assert_eq!(holds, !parts.is_empty() && parts.iter().all(|p| p.holds));
        let reason = if parts.is_empty() {
            "element has no actw, acip or aclr: it never holds".to_owned()
        } else {
            let shown: Vec<&str> = parts
                .iter()
                .filter(|p| holds || !p.holds)
                .map(|p| p.reason.as_str())
                .collect();
            shown.join(", ")
        };
        ContextExplanation {
            element: index,
            holds,
            reason,
            parts,
        }
    }

    fn time_reason(&self, time: Option<i64>) -> String {
        let windows = self.actw.as_deref().unwrap_or_default();
        let Some(t) = time else {
            return "time unknown".to_owned();
        };
        let c = Civil::from_unix(t);
        if windows.is_empty() {
            return format!("time {c}: actw lists no window");
        }
        match windows.iter().find(|w| w.matches_civil(&c)) {
            Some(w) => format!("time {c} inside window '{}'", w.raw()),
            None => format!("time {c} outside every window"),
        }
    }

    fn ip_reason(&self, peer: Option<IpAddr>) -> String {
        let Some(ranges) = self.acip.as_ref() else {
            return String::new();
        };
        let Some(ip) = peer else {
            return "peer address unknown".to_owned();
        };
        let ip = canonical(ip);
        if ranges.is_empty() {
            return format!("peer {ip}: acip lists no prefix");
        }
        match ranges.matching(ip) {
            Some(p) => format!("peer {ip} in acip {p}"),
            None => format!("peer {ip} not in acip"),
        }
    }

    fn location_reason(&self, req: &AccessRequest<'_>) -> String {
        let Some(region) = self.aclr.as_ref() else {
            return String::new();
        };
        match region {
            Region::Countries(codes) => {
                let listed: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
                let listed = listed.join(",");
                match req.pip.country() {
                    None => format!("country unknown (needed for accc {listed})"),
                    Some(c) if codes.contains(&c) => format!("country {c} in accc {listed}"),
                    Some(c) => format!("country {c} not in accc {listed}"),
                }
            }
            Region::Circle {
                latitude,
                longitude,
                radius_m,
            } => {
                let circle = format!("circle ({latitude}, {longitude}) r {radius_m} m");
                let Some(l) = req.pip.location() else {
                    return format!("location unknown (needed for {circle})");
                };
                if !l.is_valid() {
                    return format!(
                        "location ({}, {}) invalid for {circle}",
                        l.latitude, l.longitude
                    );
                }
                let d = distance_m(l.latitude, l.longitude, *latitude, *longitude);
                let inside = if region.contains(l) {
                    "inside"
                } else {
                    "outside"
                };
                format!(
                    "location ({}, {}) {d:.1} m from centre, {inside} {circle}",
                    l.latitude, l.longitude
                )
            }
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) becomes the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl IpRanges {
    fn parse(value: &Value, path: &str) -> Result<IpRanges, PolicyError> {
        let obj = as_object(value, path)?;
        only_members(obj, path, &["ipv4", "ipv6"])?;
        let list = |member: &str| -> Result<Vec<(String, &str)>, PolicyError> {
            let Some(v) = obj.get(member) else {
                return Ok(Vec::new());
            };
            let p = format!("{path}.{member}");
            as_array(v, &p)?
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let p = format!("{p}[{i}]");
                    match e.as_str() {
                        Some(s) => Ok((p, s)),
                        None => Err(PolicyError::new(p, "must be a string")),
                    }
                })
                .collect()
        };
        let v4 = list("ipv4")?
            .into_iter()
            .map(|(p, s)| parse_v4(s).map_err(|why| PolicyError::new(p, why)))
            .collect::<Result<Vec<_>, _>>()?;
        let v6 = list("ipv6")?
            .into_iter()
            .map(|(p, s)| parse_v6(s).map_err(|why| PolicyError::new(p, why)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IpRanges {
            v4: v4.into(),
            v6: v6.into(),
        })
    }

    /// True when no prefix is listed (the sub-parameter then never holds).
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The listed IPv4 prefixes, as written.
    pub fn ipv4(&self) -> impl Iterator<Item = &str> {
        self.v4.iter().map(|p| &*p.raw)
    }

    /// The listed IPv6 prefixes, as written.
    pub fn ipv6(&self) -> impl Iterator<Item = &str> {
        self.v6.iter().map(|p| &*p.raw)
    }

    /// The first prefix (as written) containing `ip`, IPv4-mapped peers compared as IPv4.
    pub fn matching(&self, ip: IpAddr) -> Option<&str> {
        match canonical(ip) {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4
                    .iter()
                    .find(|p| a & p.mask == p.net)
                    .map(|p| &*p.raw)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6
                    .iter()
                    .find(|p| a & p.mask == p.net)
                    .map(|p| &*p.raw)
            }
        }
    }
}

/// Splits `addr[/len]`; `len` is 1-3 decimal digits without a leading zero, at most `max`.
fn split_prefix(s: &str, max: u8) -> Result<(&str, u8), String> {
    let Some((addr, len)) = s.split_once('/') else {
        return Ok((s, max));
    };
    let digits_ok = !len.is_empty()
        && len.len() <= 3
        && len.bytes().all(|b| b.is_ascii_digit())
        && (len == "0" || !len.starts_with('0'));
    match len.parse::<u8>() {
        Ok(n) if digits_ok && n <= max => Ok((addr, n)),
        _ => Err(format!(
            "prefix length '{}' must be an integer 0..={max}",
            shown(len)
        )),
    }
}

fn parse_v4(s: &str) -> Result<Prefix<u32>, String> {
    let (addr, len) = split_prefix(s, 32)?;
    let a: Ipv4Addr = addr.parse().map_err(|_| {
        if addr.parse::<Ipv6Addr>().is_ok() {
            format!("'{}' is an IPv6 address: list it under ipv6", shown(s))
        } else {
            format!("'{}' is not a dotted-decimal IPv4 address", shown(addr))
        }
    })?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let net = u32::from(a);
    if net & !mask != 0 {
        return Err(format!(
            "'{}' has host bits set: the network is {}/{len}",
            shown(s),
            Ipv4Addr::from(net & mask)
        ));
    }
    Ok(Prefix {
        raw: s.into(),
        net,
        mask,
    })
}

fn parse_v6(s: &str) -> Result<Prefix<u128>, String> {
    let (addr, len) = split_prefix(s, 128)?;
    let a: Ipv6Addr = addr.parse().map_err(|_| {
        if addr.parse::<Ipv4Addr>().is_ok() {
            format!("'{}' is an IPv4 address: list it under ipv4", shown(s))
        } else {
            format!("'{}' is not an IPv6 address", shown(addr))
        }
    })?;
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    let net = u128::from(a);
    if net & !mask != 0 {
        return Err(format!(
            "'{}' has host bits set: the network is {}/{len}",
            shown(s),
            Ipv6Addr::from(net & mask)
        ));
    }
    if len >= 96 && a.to_ipv4_mapped().is_some() {
        return Err(format!(
            "'{}' is IPv4-mapped: peers in ::ffff:0:0/96 are compared as IPv4, list it under ipv4",
            shown(s)
        ));
    }
    Ok(Prefix {
        raw: s.into(),
        net,
        mask,
    })
}

impl Region {
    /// Parses a `m2m:locationRegion` strictly (exactly one of `accr`, `accc`); `path`
    /// names it in the error.
    pub fn parse(value: &Value, path: &str) -> Result<Region, PolicyError> {
        let obj = as_object(value, path)?;
        only_members(obj, path, &["accr", "accc"])?;
        match (obj.get("accr"), obj.get("accc")) {
            (Some(_), Some(_)) => Err(PolicyError::new(
                path,
                "accr and accc are exclusive: give a circle or country codes, not both",
            )),
            (None, None) => Err(PolicyError::new(path, "needs accr or accc")),
            (Some(v), None) => {
                let p = format!("{path}.accr");
                let nums = as_array(v, &p)?;
                let [lat, lon, r] = nums.as_slice() else {
                    return Err(PolicyError::new(
                        p,
                        "must be [latitude, longitude, radius in metres]",
                    ));
                };
                let num = |v: &Value, what: &str, lo: f64, hi: f64| -> Result<f64, PolicyError> {
                    v.as_f64()
                        .filter(|x| x.is_finite() && *x >= lo && *x <= hi)
                        .ok_or_else(|| {
                            PolicyError::new(&p, format!("{what} must be a number in {lo}..={hi}"))
                        })
                };
                Ok(Region::Circle {
                    latitude: num(lat, "latitude", -90.0, 90.0)?,
                    longitude: num(lon, "longitude", -180.0, 180.0)?,
                    radius_m: num(r, "radius", 0.0, f64::MAX)?,
                })
            }
            (None, Some(v)) => {
                let p = format!("{path}.accc");
                let codes = as_array(v, &p)?
                    .iter()
                    .enumerate()
                    .map(|(i, c)| match c.as_str() {
                        Some(s) if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) => {
                            CountryCode::parse(s).ok_or_else(|| PolicyError::new(&p, "bad code"))
                        }
                        _ => Err(PolicyError::new(
                            format!("{p}[{i}]"),
                            "must be an ISO 3166-1 alpha-2 code (two upper-case letters)",
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Region::Countries(codes.into()))
            }
        }
    }

    /// Whether the originator the PIP answers for is known to be in the region: its
    /// country among the codes, or its location inside the circle; unknown never holds.
    pub fn holds(&self, pip: &dyn Pip) -> bool {
        match self {
            Region::Countries(codes) => pip.country().is_some_and(|c| codes.contains(&c)),
            Region::Circle { .. } => pip.location().is_some_and(|l| self.contains(l)),
        }
    }

    /// True when `l` is known to lie in the circle. Countries never (they are matched
    /// on the resolved country, not on coordinates); an invalid location (not finite, or
    /// outside ±90/±180) never.
    pub fn contains(&self, l: Location) -> bool {
        match self {
            Region::Countries(_) => false,
            Region::Circle {
                latitude,
                longitude,
                radius_m,
            } => {
                l.is_valid()
                    && distance_m(l.latitude, l.longitude, *latitude, *longitude) <= *radius_m
            }
        }
    }
}

/// Great-circle (haversine) distance in metres between two points given in degrees.
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let h =
        ((dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2)).clamp(0.0, 1.0);
    // atan2 rather than asin: well conditioned near the antipode too.
    2.0 * EARTH_RADIUS_M * h.sqrt().atan2((1.0 - h).sqrt())
}

fn shown(s: &str) -> String {
    s.chars().take(48).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_known_distances() {
        // A quarter of a great circle.
        let quarter = std::f64::consts::PI * EARTH_RADIUS_M / 2.0;
        assert!((distance_m(0.0, 0.0, 0.0, 90.0) - quarter).abs() < 1e-6);
        assert!((distance_m(90.0, 0.0, 0.0, 0.0) - quarter).abs() < 1e-6);
        assert_eq!(distance_m(37.5, 127.0, 37.5, 127.0), 0.0);
        // Antipodes: half the circumference (haversine is ill-conditioned there: ~0.1 m),
        // and no NaN from rounding.
        let half = std::f64::consts::PI * EARTH_RADIUS_M;
        assert!((distance_m(10.0, 20.0, -10.0, -160.0) - half).abs() < 1.0);
        // One degree of latitude is about 111.2 km.
        assert!((distance_m(0.0, 0.0, 1.0, 0.0) - 111_195.08).abs() < 0.1);
    }

    #[test]
    fn canonical_maps_only_ipv4_mapped() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap_or(IpAddr::V4(0.into()));
        assert_eq!(canonical(mapped), IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
        // IPv4-compatible (deprecated) addresses stay IPv6.
        let compat: IpAddr = "::10.1.2.3".parse().unwrap_or(IpAddr::V4(0.into()));
        assert!(canonical(compat).is_ipv6());
    }
}
