//! The operator's address-prefix → country table (TS-0003 annex F: "derive the country
//! from the source IP"; the method is out of the standard's scope, so it is a configured
//! longest-prefix table). IPv4 and IPv6; an IPv4-mapped IPv6 peer is looked up as IPv4.

use crate::config::CountryPrefix;
use crate::error::LocationError;
use bastion_policy::CountryCode;
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    v4: bool,
    /// The network, left-aligned in 128 bits (IPv4 in the top 32).
    net: u128,
    len: u8,
    country: CountryCode,
}

/// A compiled prefix table.
#[derive(Clone, Debug, Default)]
pub struct PrefixTable {
    /// Longest prefix first, so the first match is the answer.
    entries: Vec<Entry>,
}

impl PrefixTable {
    /// Compiles the configured rows. Rejects unparsable prefixes, prefixes with host bits
    /// set (`10.1.2.3/8` is almost surely a typo), bad country codes, and the same prefix
    /// given twice.
    pub fn new(rows: &[CountryPrefix]) -> Result<PrefixTable, LocationError> {
        let mut entries: Vec<Entry> = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let field = format!("country_prefixes[{i}]");
            let country = CountryCode::parse(&row.country).ok_or_else(|| {
                LocationError::config(
                    format!("{field}.country"),
                    format!("{:?} is not an ISO 3166-1 alpha-2 code", row.country),
                )
            })?;
            let (v4, net, len) = parse_prefix(&row.prefix)
                .map_err(|why| LocationError::config(format!("{field}.prefix"), why))?;
            if entries
                .iter()
                .any(|e| e.v4 == v4 && e.net == net && e.len == len)
            {
                return Err(LocationError::config(
                    format!("{field}.prefix"),
                    format!("{} is listed twice", row.prefix),
                ));
            }
            entries.push(Entry {
                v4,
                net,
                len,
                country,
            });
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.len));
        Ok(PrefixTable { entries })
    }

    /// The country of the longest prefix containing `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<CountryCode> {
        let (v4, bits) = match ip {
            IpAddr::V4(a) => (true, u128::from(u32::from(a)) << 96),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(m) => (true, u128::from(u32::from(m)) << 96),
                None => (false, u128::from(a)),
            },
        };
        self.entries
            .iter()
            .find(|e| e.v4 == v4 && bits & mask(e.len) == e.net)
            .map(|e| e.country)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn mask(len: u8) -> u128 {
    match len {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n)),
    }
}

/// `(is_v4, left-aligned network, prefix length in the 128-bit space)`.
fn parse_prefix(text: &str) -> Result<(bool, u128, u8), String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => {
            let l: u8 = l
                .parse()
                .map_err(|_| format!("{text:?}: prefix length is not a number"))?;
            (a, Some(l))
        }
        None => (text, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 or IPv6 address or prefix"))?;
    let (v4, bits, max) = match ip {
        IpAddr::V4(a) => (true, u128::from(u32::from(a)) << 96, 32u8),
        IpAddr::V6(a) => (false, u128::from(a), 128u8),
    };
    let len = len.unwrap_or(max);
    if len > max {
        return Err(format!("{text:?}: prefix length above {max}"));
    }
    // Lengths live in the 128-bit space; IPv4 sits in its top 32 bits.
    let m = mask(len);
    if bits & !m != 0 {
        return Err(format!("{text:?}: address has bits set beyond the prefix"));
    }
    Ok((v4, bits, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(prefix: &str, country: &str) -> CountryPrefix {
        CountryPrefix {
            prefix: prefix.into(),
            country: country.into(),
        }
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        let t = PrefixTable::new(&[
            row("10.0.0.0/8", "DE"),
            row("10.1.0.0/16", "FR"),
            row("10.1.2.3", "IT"),
            row("2001:db8::/32", "NL"),
            row("0.0.0.0/0", "US"),
        ])
        .unwrap();
        let c = |s: &str| t.lookup(s.parse().unwrap()).map(|c| c.to_string());
        assert_eq!(c("10.9.9.9").as_deref(), Some("DE"));
        assert_eq!(c("10.1.9.9").as_deref(), Some("FR"));
        assert_eq!(c("10.1.2.3").as_deref(), Some("IT"));
        assert_eq!(c("10.1.2.4").as_deref(), Some("FR"));
        assert_eq!(c("::ffff:10.1.2.3").as_deref(), Some("IT"));
        assert_eq!(c("192.0.2.1").as_deref(), Some("US"));
        assert_eq!(c("2001:db8:1::1").as_deref(), Some("NL"));
        // IPv4's /0 never covers IPv6.
        assert_eq!(c("2001:db9::1"), None);
    }

    #[test]
    fn bad_rows_are_refused_with_their_field() {
        for (p, c, field) in [
            ("10.0.0.0/33", "DE", "country_prefixes[0].prefix"),
            ("10.1.0.0/8", "DE", "country_prefixes[0].prefix"),
            ("10.0.0.0/x", "DE", "country_prefixes[0].prefix"),
            ("ten", "DE", "country_prefixes[0].prefix"),
            ("2001:db8::/129", "DE", "country_prefixes[0].prefix"),
            ("10.0.0.0/8", "DEU", "country_prefixes[0].country"),
        ] {
            match PrefixTable::new(&[row(p, c)]) {
                Err(LocationError::Config { field: f, .. }) => assert_eq!(f, field, "{p} {c}"),
                other => panic!("{p} {c}: {other:?}"),
            }
        }
        assert!(matches!(
            PrefixTable::new(&[row("10.0.0.0/8", "DE"), row("10.0.0.0/8", "FR")]),
            Err(LocationError::Config { field, .. }) if field == "country_prefixes[1].prefix"
        ));
    }
}
