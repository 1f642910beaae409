//! Releases of the attribute model: which oneM2M release a request or response speaks
//! (`rvi`), and which attributes of the served types a release does not define yet.
//!
//! The Release Version Indicator of a response applies to the resource representations
//! it carries (TS-0001 8.1.3), so a client of an older release is shown only what its
//! release defines; a request naming an attribute its release does not define asks for
//! something the receiver does not support in that release (TS-0001 9.5.1), answered 4000.
//!
//! [`INTRODUCED`] is the one table. An attribute absent from it is defined in every
//! release Bastion accepts (2a and later); only attributes introduced after 2a are rows.

use crate::error::RequestError;
use crate::types::ResourceType;
use serde_json::{Map, Value};

/// A release Bastion can speak, oldest first (so `<` means "older than").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Release {
    R2a,
    R3,
    R4,
    R5,
}

impl Release {
    /// Every release Bastion can speak, oldest first.
    pub const ALL: [Release; 4] = [Release::R2a, Release::R3, Release::R4, Release::R5];

    /// The release an `rvi` value names; `None` for Release 1 (no `rvi`), `"2"` (which no
    /// CSE speaks any more) and anything unknown.
    pub fn from_rvi(rvi: &str) -> Option<Release> {
        Some(match rvi {
            "2a" => Release::R2a,
            "3" => Release::R3,
            "4" => Release::R4,
            "5" => Release::R5,
            _ => return None,
        })
    }

    /// The `rvi` value of this release.
    pub fn rvi(self) -> &'static str {
        match self {
            Release::R2a => "2a",
            Release::R3 => "3",
            Release::R4 => "4",
            Release::R5 => "5",
        }
    }
}

/// One attribute introduced after Release 2a.
struct Introduced {
    name: &'static str,
    /// The types it belongs to; empty: every type that has it (a common attribute).
    types: &'static [ResourceType],
    since: Release,
}

const fn since(name: &'static str, types: &'static [ResourceType], since: Release) -> Introduced {
    Introduced { name, types, since }
}

const EVERY_TYPE: &[ResourceType] = &[];

use ResourceType::{Ae, Container, ContentInstance, CseBase, PollingChannel, RemoteCse};

/// Attributes of the served types introduced after Release 2a. The rows are those the
/// spec digest marks as later than Release 3 (core-resources.md §2-§3, "[R4+]"); the
/// digest cannot tell Release 4 from Release 5, so each is taken as Release 4, the
/// earliest it can be (docs/decisions.md, "Issue 14").
const INTRODUCED: &[Introduced] = &[
    since("cstn", EVERY_TYPE, Release::R4),
    since("ast", EVERY_TYPE, Release::R4),
    since("loc", &[Ae, CseBase, RemoteCse, Container], Release::R4),
    since("ctm", &[CseBase], Release::R4),
    since("spi", &[CseBase], Release::R4),
    since("dgt", &[ContentInstance], Release::R4),
    since("dcnt", &[ContentInstance], Release::R4),
    since("nse", &[ResourceType::Subscription], Release::R4),
    since("nsi", &[ResourceType::Subscription], Release::R4),
    since("eeno", &[ResourceType::Subscription], Release::R4),
    since("ma", &[ResourceType::Subscription], Release::R4),
    since("acrs", &[ResourceType::Subscription], Release::R4),
    since("rqag", &[PollingChannel], Release::R4),
];

/// The release that introduced attribute `name` of `ty`, when it is later than 2a.
fn introduced_in(ty: ResourceType, name: &str) -> Option<Release> {
    INTRODUCED
        .iter()
        .find(|row| row.name == name && (row.types.is_empty() || row.types.contains(&ty)))
        .map(|row| row.since)
}

/// Whether `release` defines attribute `name` of `ty` (anything [`INTRODUCED`] does not
/// list counts as defined: the table only takes attributes away from older releases).
pub fn defines(release: Release, ty: ResourceType, name: &str) -> bool {
    introduced_in(ty, name).is_none_or(|since| since <= release)
}

/// Refuses content of a CREATE or UPDATE (`{"m2m:<type>": {...}}`) naming an attribute
/// the originator's release does not define: 4000, naming the attribute and release.
/// Content that is not a resource representation is left to the later checks.
pub fn check_content(release: Release, pc: &Value) -> Result<(), RequestError> {
    let Some((ty, attrs)) = representation(pc) else {
        return Ok(());
    };
    match attrs.keys().find(|name| !defines(release, ty, name)) {
        Some(name) => Err(RequestError::bad_request(format!(
            "{name} is not defined in release {}",
            release.rvi()
        ))),
        None => Ok(()),
    }
}

/// The type and attributes of a content object holding exactly one served resource.
fn representation(pc: &Value) -> Option<(ResourceType, &Map<String, Value>)> {
    let map = pc.as_object().filter(|m| m.len() == 1)?;
    let (root, inner) = map.iter().next()?;
    Some((from_root(root)?, inner.as_object()?))
}

/// The served type whose JSON root is `root` (`m2m:cnt`).
fn from_root(root: &str) -> Option<ResourceType> {
    // Most members walked are plain attributes: only `m2m:` names can be roots.
    if !root.starts_with("m2m:") {
        return None;
    }
    ResourceType::SUPPORTED
        .into_iter()
        .find(|t| t.root() == root)
}

/// Removes from response content every attribute `release` does not define: in each
/// resource representation (`m2m:<type>` members, at any depth, so nested children of
/// `rcn` 4, discovery results and fan-out answers too). Members that are not attributes
/// (`ch`, nested `m2m:` children, `m2m:dbg`) stay.
pub fn shape_for(release: Release, content: &mut Value) {
    // A release the table takes nothing from (4 and 5 today) needs no walk.
    if INTRODUCED.iter().all(|row| row.since <= release) {
        return;
    }
    shape_value(release, None, content);
}

/// Walks `value`; `ty` is the type whose representation `value` is, if it is one.
fn shape_value(release: Release, ty: Option<ResourceType>, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(ty) = ty {
                map.retain(|name, _| defines(release, ty, name));
            }
            for (key, member) in map.iter_mut() {
                shape_value(release, from_root(key), member);
            }
        }
        // A list of representations (`"m2m:cin": [...]`) keeps its type for each element.
        Value::Array(items) => {
            for item in items {
                shape_value(release, ty, item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rvi_values_round_trip_and_order() {
        for r in Release::ALL {
            assert_eq!(Release::from_rvi(r.rvi()), Some(r));
        }
        for unknown in ["", "1", "2", "6", "3a", " 3"] {
            assert_eq!(Release::from_rvi(unknown), None, "{unknown:?}");
        }
        assert!(Release::R2a < Release::R3 && Release::R3 < Release::R4);
        assert!(Release::R4 < Release::R5);
    }

    #[test]
    fn ts0001_8_1_3_older_release_sees_only_its_attributes() {
        let mut pc = json!({"m2m:cnt": {"rn": "c", "cstn": "Cx", "loc": [1],
            "m2m:cin": [{"rn": "i", "dgt": "20260101T000000", "con": "x"}],
            "ch": [{"nm": "i", "typ": 4, "val": "x"}]}});
        shape_for(Release::R3, &mut pc);
        assert_eq!(
            pc,
            json!({"m2m:cnt": {"rn": "c",
                "m2m:cin": [{"rn": "i", "con": "x"}],
                "ch": [{"nm": "i", "typ": 4, "val": "x"}]}})
        );
        let mut newest = json!({"m2m:cb": {"ctm": "20260101T000000", "srv": ["5"]}});
        let before = newest.clone();
        shape_for(Release::R4, &mut newest);
        assert_eq!(newest, before);
        shape_for(Release::R2a, &mut newest);
        assert_eq!(newest, json!({"m2m:cb": {"srv": ["5"]}}));
    }

    #[test]
    fn an_attribute_of_another_type_is_not_taken_away() {
        // `ma` is a <subscription> attribute only; an unknown `m2m:` root is untouched.
        let mut pc = json!({"m2m:agr": {"m2m:rsp": [{"pc": {"m2m:sub": {"ma": "PT1S", "nu": []}}}]},
            "m2m:grp": {"ma": 1}, "m2m:xyz": {"cstn": "C"}});
        shape_for(Release::R3, &mut pc);
        assert_eq!(
            pc,
            json!({"m2m:agr": {"m2m:rsp": [{"pc": {"m2m:sub": {"nu": []}}}]},
                "m2m:grp": {"ma": 1}, "m2m:xyz": {"cstn": "C"}})
        );
    }

    #[test]
    fn ts0001_9_5_1_content_of_an_older_release_is_refused() {
        let cin = json!({"m2m:cin": {"con": "x", "dgt": "20260101T000000"}});
        let err = check_content(Release::R3, &cin).unwrap_err();
        assert_eq!(err.rsc(), crate::Rsc::BadRequest);
        assert_eq!(err.reason(), "dgt is not defined in release 3");
        assert!(check_content(Release::R4, &cin).is_ok());
        assert!(check_content(Release::R5, &cin).is_ok());
        let cnt = json!({"m2m:cnt": {"cstn": "Cme"}});
        assert!(check_content(Release::R2a, &cnt).is_err());
        // Not a served representation: left to the type checks.
        assert!(check_content(Release::R3, &json!({"m2m:xyz": {"cstn": 1}})).is_ok());
        assert!(check_content(Release::R3, &json!("text")).is_ok());
    }
}
