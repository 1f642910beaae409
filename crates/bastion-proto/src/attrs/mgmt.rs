//! The `<mgmtObj>` specializations (TS-0004 annex D, short names from TS-0004 8.2.3 and
//! 8.2.4), as data: one [`Spec`] per served `mgd`, each with its JSON root and its own
//! attribute policy beside the attributes every `<mgmtObj>` shares (`MGO` in
//! `attrs.rs`). Adding a specialization is one entry in [`SPECS`].

use super::AttrDef;
use super::Kind::{Bool, NonNegInt, Object, Range, Str, StrList, Timestamp};
use super::Presence::{Mandatory as M, NotPermitted as NP, Optional as O};
use std::sync::LazyLock;

/// One `<mgmtObj>` specialization.
#[derive(Debug)]
pub struct Spec {
    /// `mgmtDefinition`.
    pub mgd: u64,
    /// The long name (`firmware`), for messages.
    pub name: &'static str,
    /// The JSON root of its representation (`m2m:fwr`).
    pub root: &'static str,
    /// Its attributes beyond the shared ones.
    pub attrs: &'static [AttrDef],
    /// Pairs of trigger attributes that one request must not both set to true
    /// (TS-0004 D.3.2.2, D.9.2.3, D.10.2.2, D.11.2.2: 4000).
    pub exclusive: &'static [(&'static str, &'static str)],
}

const fn a(
    name: &'static str,
    kind: super::Kind,
    create: super::Presence,
    update: super::Presence,
) -> AttrDef {
    AttrDef {
        name,
        kind,
        create,
        update,
    }
}

/// `m2m:batteryStatus` (TS-0004 6.3.4.2.21): 1 NORMAL to 7 UNKNOWN.
const BATTERY_STATUS: super::Kind = Range(1, 7);
/// `m2m:logTypeId` and `m2m:logStatus` (TS-0004 6.3.4.2.23, 6.3.4.2.24): 1 to 5.
const LOG_ENUM: super::Kind = Range(1, 5);

/// The served specializations, by `mgd`.
pub const SPECS: &[Spec] = &[
    Spec {
        mgd: 1001,
        name: "firmware",
        root: "m2m:fwr",
        attrs: &[
            a("vr", Str, M, O),
            a("fwn", Str, M, O),
            a("url", Str, M, O),
            a("ud", Bool, M, O),
            a("uds", Object, NP, O),
        ],
        exclusive: &[],
    },
    Spec {
        mgd: 1002,
        name: "software",
        root: "m2m:swr",
        attrs: &[
            a("vr", Str, M, O),
            a("swn", Str, M, O),
            a("url", Str, M, O),
            a("in", Bool, NP, O),
            a("un", Bool, NP, O),
            a("ins", Object, NP, O),
            a("act", Bool, NP, O),
            a("dea", Bool, NP, O),
            a("acts", Object, NP, O),
        ],
        exclusive: &[("in", "un"), ("act", "dea")],
    },
    Spec {
        mgd: 1003,
        name: "memory",
        root: "m2m:mem",
        attrs: &[a("mma", NonNegInt, M, O), a("mmt", NonNegInt, M, O)],
        exclusive: &[],
    },
    Spec {
        mgd: 1004,
        name: "areaNwkInfo",
        root: "m2m:ani",
        attrs: &[a("ant", Str, M, O), a("ldv", StrList, O, O)],
        exclusive: &[],
    },
    Spec {
        mgd: 1005,
        name: "areaNwkDeviceInfo",
        root: "m2m:andi",
        attrs: &[
            a("dvd", Str, M, O),
            a("dvt", Str, M, O),
            a("awi", Str, M, O),
            a("sli", NonNegInt, O, O),
            a("sld", NonNegInt, O, O),
            a("ss", Str, O, O),
            a("lnh", StrList, O, O),
        ],
        exclusive: &[],
    },
    Spec {
        mgd: 1006,
        name: "battery",
        root: "m2m:bat",
        attrs: &[
            a("btl", Range(0, 100), M, O),
            a("bts", BATTERY_STATUS, M, O),
        ],
        exclusive: &[],
    },
    Spec {
        mgd: 1007,
        name: "deviceInfo",
        root: "m2m:dvi",
        attrs: &[
            a("dlb", Str, M, O),
            a("man", Str, M, NP),
            a("mfdl", Str, O, O),
            a("mfd", Timestamp, O, NP),
            a("mod", Str, M, NP),
            a("smod", Str, O, NP),
            a("dty", Str, M, O),
            a("dvnm", Str, O, O),
            a("fwv", Str, O, O),
            a("swv", Str, O, O),
            a("hwv", Str, O, NP),
            a("osv", Str, O, O),
            a("cnty", Str, O, NP),
            a("loc", Str, O, O),
            a("syst", Timestamp, O, O),
            a("spur", Str, O, O),
            a("purl", Str, O, O),
            a("ptl", StrList, O, O),
        ],
        exclusive: &[],
    },
    Spec {
        mgd: 1008,
        name: "deviceCapability",
        root: "m2m:dvc",
        attrs: &[
            a("can", Str, M, O),
            a("att", Bool, M, O),
            a("cas", Object, M, O),
            a("cus", Bool, M, O),
            a("ena", Bool, O, O),
            a("dis", Bool, O, O),
        ],
        exclusive: &[("ena", "dis")],
    },
    Spec {
        mgd: 1009,
        name: "reboot",
        root: "m2m:rbo",
        attrs: &[a("rbo", Bool, O, O), a("far", Bool, O, O)],
        exclusive: &[("rbo", "far")],
    },
    Spec {
        mgd: 1010,
        name: "eventLog",
        root: "m2m:evl",
        attrs: &[
            a("lgt", LOG_ENUM, M, O),
            a("lgd", Str, M, O),
            a("lgst", LOG_ENUM, M, O),
            a("lga", Bool, O, O),
            a("lgo", Bool, O, O),
        ],
        exclusive: &[("lga", "lgo")],
    },
];

/// The specialization of `mgd`, when served.
pub fn spec(mgd: u64) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.mgd == mgd)
}

/// The specialization whose JSON root is `root` (`m2m:fwr`).
pub fn by_root(root: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.root == root)
}

/// The JSON roots of the specializations' announced variants (`<mgmtObjAnnc>`, TS-0004
/// 8.2.4): each specialization's root and `A` (`m2m:fwrA`), in [`SPECS`] order, so a
/// specialization added there is announced without more code.
static ANNOUNCED_ROOTS: LazyLock<Vec<String>> =
    LazyLock::new(|| SPECS.iter().map(|s| format!("{}A", s.root)).collect());

/// The JSON root of the announced variant of `spec` (`m2m:fwrA`).
pub fn announced_root(spec: &Spec) -> &'static str {
    SPECS
        .iter()
        .position(|s| s.mgd == spec.mgd)
        .map_or("m2m:mgoA", |i| ANNOUNCED_ROOTS[i].as_str())
}

/// The specialization whose announced variant's JSON root is `root` (`m2m:fwrA`).
pub fn by_announced_root(root: &str) -> Option<&'static Spec> {
    ANNOUNCED_ROOTS
        .iter()
        .position(|r| r == root)
        .map(|i| &SPECS[i])
}

/// Whether oneM2M defines `mgd` (TS-0004 6.3.4.2.22: 0 self-defined, 1001 to 1026), so
/// that one not served is 5001 rather than 4000.
pub fn is_defined(mgd: u64) -> bool {
    mgd == 0 || (1001..=1026).contains(&mgd)
}

/// An attribute of any served specialization (the XML codec types members by it).
pub fn any_attr(name: &str) -> Option<&'static AttrDef> {
    SPECS.iter().flat_map(|s| s.attrs).find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{validate_mgmt, Phase};
    use crate::types::ResourceType;
    use serde_json::{json, Map, Value};

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn ts0004_8_2_4_every_specialization_has_its_own_root() {
        for s in SPECS {
            assert!(is_defined(s.mgd), "{}", s.name);
            assert_eq!(SPECS.iter().filter(|o| o.root == s.root).count(), 1);
            assert_eq!(ResourceType::from_root(s.root), Some(ResourceType::MgmtObj));
            let attrs = obj(json!({ "mgd": s.mgd }));
            assert_eq!(ResourceType::MgmtObj.root_of(&attrs), s.root);
            // Its announced variant: the root and `A` (`m2m:fwrA`).
            let annc = ResourceType::MgmtObj.announced().unwrap();
            assert_eq!(annc.root_of(&attrs), format!("{}A", s.root));
            assert_eq!(
                by_announced_root(announced_root(s)).map(|o| o.mgd),
                Some(s.mgd)
            );
        }
        assert_eq!(ResourceType::from_root("m2m:mgo"), None);
        assert_eq!(ResourceType::from_root("m2m:nod"), Some(ResourceType::Node));
        assert!(!is_defined(1027) && is_defined(0) && is_defined(1011));
    }

    #[test]
    fn ts0004_d_attributes_of_one_specialization() {
        let fw = spec(1001).unwrap();
        let ok =
            obj(json!({"mgd": 1001, "vr": "1", "fwn": "f", "url": "u", "ud": false, "dc": "d"}));
        assert!(validate_mgmt(fw, Phase::Create, &ok).is_ok());
        let mut foreign = ok.clone();
        foreign.insert("btl".into(), json!(5));
        let e = validate_mgmt(fw, Phase::Create, &foreign).unwrap_err();
        assert!(e.reason().contains("btl"), "{}", e.reason());
        let e = validate_mgmt(fw, Phase::Update, &obj(json!({"mgd": 1002}))).unwrap_err();
        assert!(e.reason().contains("mgd"));
        let bat = spec(1006).unwrap();
        for (btl, good) in [(0, true), (100, true), (101, false)] {
            let c = obj(json!({"mgd": 1006, "btl": btl, "bts": 7}));
            assert_eq!(validate_mgmt(bat, Phase::Create, &c).is_ok(), good, "{btl}");
        }
        let rbo = spec(1009).unwrap();
        let both = obj(json!({"rbo": true, "far": true}));
        assert!(validate_mgmt(rbo, Phase::Update, &both).is_err());
        let one = obj(json!({"rbo": true, "far": false}));
        assert!(validate_mgmt(rbo, Phase::Update, &one).is_ok());
    }
}
