//! Filter criteria (TS-0004 §6.3.5.8; core-resources.md §5): the conditions of discovery
//! and conditional operations, and how they are read from query parameters (TS-0009
//! Table 6.2.2.2-1), shared by every binding that carries them in a query string.

use crate::error::RequestError;
use crate::time::Timestamp;

/// `fu` values (m2m:filterUsage).
pub const FU_DISCOVERY: u64 = 1;
pub const FU_CONDITIONAL: u64 = 2;

/// The filter criteria of a request. Empty lists and `None` mean "no condition".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FilterCriteria {
    pub fu: Option<u64>,
    pub fo: Option<u64>,
    pub crb: Option<Timestamp>,
    pub cra: Option<Timestamp>,
    pub ms: Option<Timestamp>,
    pub us: Option<Timestamp>,
    pub exb: Option<Timestamp>,
    pub exa: Option<Timestamp>,
    pub sts: Option<u64>,
    pub stb: Option<u64>,
    pub sza: Option<u64>,
    pub szb: Option<u64>,
    pub lbl: Vec<String>,
    pub clbl: Vec<String>,
    pub palb: Vec<String>,
    pub ty: Vec<u16>,
    pub chty: Vec<u16>,
    pub pty: Vec<u16>,
    pub cty: Vec<String>,
    pub lim: Option<u64>,
    pub lvl: Option<u64>,
    pub ofst: Option<u64>,
    pub arp: Option<String>,
    /// Attribute conditions `name=value` (`*` is a wildcard in the value during discovery).
    pub atr: Vec<(String, String)>,
    /// Members Bastion recognises but does not evaluate yet (answered with 5001).
    pub unsupported: Vec<&'static str>,
}

/// Query keys that are request parameters, not filter members or attribute conditions.
pub const REQUEST_QUERY_KEYS: &[&str] = &[
    "rt", "rp", "rcn", "da", "drt", "rids", "tids", "ltids", "tqi", "asi", "auri", "sqi", "atrl",
];

const UNSUPPORTED: &[&str] = &[
    "smf", "cfs", "cfq", "lbq", "catr", "patr", "gmty", "geom", "gsf", "aq",
];

impl FilterCriteria {
    /// True when the request is a discovery (`fu` = 1).
    pub fn is_discovery(&self) -> bool {
        self.fu == Some(FU_DISCOVERY)
    }

    /// True when any condition (not counting `fu`, `fo`, `lim`, `lvl`, `ofst`, `arp`) is set.
    pub fn has_conditions(&self) -> bool {
        self.crb.is_some()
            || self.cra.is_some()
            || self.ms.is_some()
            || self.us.is_some()
            || self.exb.is_some()
            || self.exa.is_some()
            || self.sts.is_some()
            || self.stb.is_some()
            || self.sza.is_some()
            || self.szb.is_some()
            || !self.lbl.is_empty()
            || !self.clbl.is_empty()
            || !self.palb.is_empty()
            || !self.ty.is_empty()
            || !self.chty.is_empty()
            || !self.pty.is_empty()
            || !self.cty.is_empty()
            || !self.atr.is_empty()
    }

    /// True when any filter member at all was given.
    pub fn is_present(&self) -> bool {
        self.has_conditions()
            || self.fu.is_some()
            || self.fo.is_some()
            || self.lim.is_some()
            || self.lvl.is_some()
            || self.ofst.is_some()
            || self.arp.is_some()
            || !self.unsupported.is_empty()
    }

    /// Takes one query parameter that is not a request parameter. Multi-valued members
    /// accept repeated keys and `+`/space separated lists. Any other key becomes an
    /// attribute condition, as TS-0009 asks.
    pub fn take_query_param(&mut self, key: &str, value: &str) -> Result<(), RequestError> {
        let ts = |v: &str| {
            Timestamp::parse(v)
                .ok_or_else(|| RequestError::bad_request(format!("{key} is not a timestamp")))
        };
        let uint = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| RequestError::bad_request(format!("{key} is not an unsigned integer")))
        };
        let types = |v: &str, into: &mut Vec<u16>| -> Result<(), RequestError> {
            for part in v.split([' ', '+']).filter(|p| !p.is_empty()) {
                let n = part.parse::<u16>().map_err(|_| {
                    RequestError::bad_request(format!("{key} is not a list of resource types"))
                })?;
                into.push(n);
            }
            Ok(())
        };
        let words = |v: &str, into: &mut Vec<String>| {
            into.extend(
                v.split([' ', '+'])
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            )
        };
        match key {
            "fu" => {
                self.fu = Some(uint(value)?)
                    .filter(|v| (1..=3).contains(v))
                    .map_or_else(
                        || Err(RequestError::bad_request("fu must be 1, 2 or 3")),
                        |v| Ok(Some(v)),
                    )?
            }
            "fo" => {
                self.fo = Some(uint(value)?)
                    .filter(|v| (1..=2).contains(v))
                    .map_or_else(
                        || Err(RequestError::bad_request("fo must be 1 or 2")),
                        |v| Ok(Some(v)),
                    )?
            }
            "crb" => self.crb = Some(ts(value)?),
            "cra" => self.cra = Some(ts(value)?),
            "ms" => self.ms = Some(ts(value)?),
            "us" => self.us = Some(ts(value)?),
            "exb" => self.exb = Some(ts(value)?),
            "exa" => self.exa = Some(ts(value)?),
            "sts" => self.sts = Some(uint(value)?),
            "stb" => self.stb = Some(uint(value)?),
            "sza" => self.sza = Some(uint(value)?),
            "szb" => self.szb = Some(uint(value)?),
            "lim" => self.lim = Some(uint(value)?),
            "lvl" => self.lvl = Some(uint(value)?),
            "ofst" => self.ofst = Some(uint(value)?),
            "arp" => self.arp = Some(value.to_owned()),
            "lbl" => words(value, &mut self.lbl),
            "clbl" => words(value, &mut self.clbl),
            "palb" => words(value, &mut self.palb),
            "cty" => words(value, &mut self.cty),
            "ty" => types(value, &mut self.ty)?,
            "chty" => types(value, &mut self.chty)?,
            "pty" => types(value, &mut self.pty)?,
            k => {
                if let Some(u) = UNSUPPORTED.iter().find(|u| **u == k) {
                    self.unsupported.push(u);
                } else if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(RequestError::bad_request("malformed query parameter name"));
                } else {
                    self.atr.push((k.to_owned(), value.to_owned()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts0009_multi_valued_members() {
        let mut fc = FilterCriteria::default();
        fc.take_query_param("ty", "2+3").unwrap();
        fc.take_query_param("ty", "4").unwrap();
        fc.take_query_param("lbl", "a b").unwrap();
        assert_eq!(fc.ty, vec![2, 3, 4]);
        assert_eq!(fc.lbl, vec!["a", "b"]);
    }

    #[test]
    fn unknown_keys_become_attribute_conditions() {
        let mut fc = FilterCriteria::default();
        fc.take_query_param("cr", "Cabc").unwrap();
        assert_eq!(fc.atr, vec![("cr".into(), "Cabc".into())]);
        assert!(fc.take_query_param("a-b", "x").is_err());
    }

    #[test]
    fn malformed_values_are_bad_requests() {
        let mut fc = FilterCriteria::default();
        assert!(fc.take_query_param("fu", "7").is_err());
        assert!(fc.take_query_param("crb", "yesterday").is_err());
        assert!(fc.take_query_param("lim", "-1").is_err());
        assert!(fc.take_query_param("ty", "x").is_err());
    }
}
