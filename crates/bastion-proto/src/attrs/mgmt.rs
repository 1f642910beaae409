//! The `<mgmtObj>` specializations (TS-0004 annex D, short names from TS-0004 8.2.3 and
//! 8.2.4), as data: one [`Spec`] per served `mgd`, each with its JSON root, its own
//! attribute policy beside the attributes every `<mgmtObj>` shares (`MGO` in
//! `attrs.rs`) and, for the CMDH ones (D.12), what its `mgmtLink` (`cmlk`) may name.
//! A specialization also lists its write-only values (`secrets`), which no rendering
//! of a resource shows ([`strip_secrets`]).
//! Adding a specialization is one entry in [`SPECS`]. Whether a link names an existing
//! resource needs the tree: the core checks that (`types::mgmt_obj`).

use super::AttrDef;
use super::Kind::{
    Any, BackOff, Bool, Booleans, EventCat, EventCats, EventCatsWithDef, Int, IpAddresses,
    MgmtLinks, Millis, MinMax, NonNegInt, Object, PositiveInt, Range, Str, StrList, Suids,
    Timestamp, WifiCredentials,
};
use super::Presence::{Mandatory as M, NotPermitted as NP, Optional as O};
use crate::error::RequestError;
use serde_json::{Map, Value};
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
    /// What the entries of its `cmlk` may name and how many of each (TS-0004 D.12):
    /// every entry matches one rule; empty for a specialization without `cmlk`.
    pub links: &'static [LinkRule],
    /// Write-only values, as `attr` or `attr/member`: accepted and stored, never in a
    /// result, a notification or an announcement (docs/decisions.md, "Secret-valued
    /// attributes"); see [`strip_secrets`].
    pub secrets: &'static [&'static str],
    /// Pairs of attributes a resource must not hold both of (4000), after the request
    /// is applied (`mesc` and `meil` of `[dataCollection]`).
    pub apart: &'static [(&'static str, &'static str)],
}

/// What one `m2m:mgmtLinkRef` of a `cmlk` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkTarget {
    /// A `<mgmtObj>` of this `mgd`, which the link's `typ` must give.
    Mgmt(u64),
    /// A `<schedule>` (`allowedSchedule` of `[cmdhNwAccessRule]`): no `mgd` names that
    /// type, so `typ` is not compared.
    Schedule,
}

/// How many links of a `cmlk` name one kind of target.
#[derive(Debug)]
pub struct LinkRule {
    pub target: LinkTarget,
    pub min: usize,
    pub max: Option<usize>,
}

const fn link(target: LinkTarget, min: usize, max: Option<usize>) -> LinkRule {
    LinkRule { target, min, max }
}

/// The `mgd` of `[cmdhPolicy]`, which `acmlk` of `[activeCmdhPolicy]` names.
pub const CMDH_POLICY: u64 = 1011;

use super::a;

/// `m2m:batteryStatus` (TS-0004 6.3.4.2.21): 1 NORMAL to 7 UNKNOWN.
const BATTERY_STATUS: super::Kind = Range(1, 7);
/// `m2m:logTypeId` and `m2m:logStatus` (TS-0004 6.3.4.2.23, 6.3.4.2.24): 1 to 5.
const LOG_ENUM: super::Kind = Range(1, 5);
/// `dcfg:wifiConnectionStatus` (TS-0022): 0 disconnected to 6 lost.
const WIFI_CONNECTION_STATUS: super::Kind = Range(0, 6);

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
        links: &[],
        secrets: &[],
        apart: &[],
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
        links: &[],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1003,
        name: "memory",
        root: "m2m:mem",
        attrs: &[a("mma", NonNegInt, M, O), a("mmt", NonNegInt, M, O)],
        exclusive: &[],
        links: &[],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1004,
        name: "areaNwkInfo",
        root: "m2m:ani",
        attrs: &[a("ant", Str, M, O), a("ldv", StrList, O, O)],
        exclusive: &[],
        links: &[],
        secrets: &[],
        apart: &[],
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
        links: &[],
        secrets: &[],
        apart: &[],
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
        links: &[],
        secrets: &[],
        apart: &[],
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
        links: &[],
        secrets: &[],
        apart: &[],
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
        links: &[],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1009,
        name: "reboot",
        root: "m2m:rbo",
        attrs: &[a("rbo", Bool, O, O), a("far", Bool, O, O)],
        exclusive: &[("rbo", "far")],
        links: &[],
        secrets: &[],
        apart: &[],
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
        links: &[],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: CMDH_POLICY,
        name: "cmdhPolicy",
        root: "m2m:cmp",
        attrs: &[a("cpn", Str, M, O), a("cmlk", MgmtLinks, M, O)],
        exclusive: &[],
        // D.12.1: one cmdhDefaults, one or more cmdhLimits, cmdhNetworkAccessRules and
        // cmdhBuffer.
        links: &[
            link(LinkTarget::Mgmt(1013), 1, Some(1)),
            link(LinkTarget::Mgmt(1016), 1, None),
            link(LinkTarget::Mgmt(1017), 1, None),
            link(LinkTarget::Mgmt(1019), 1, None),
        ],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1012,
        name: "activeCmdhPolicy",
        root: "m2m:acmp",
        attrs: &[a("acmlk", Str, M, O)],
        exclusive: &[],
        links: &[],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1013,
        name: "cmdhDefaults",
        root: "m2m:cmdf",
        attrs: &[a("cmlk", MgmtLinks, M, O)],
        exclusive: &[],
        // D.12.3: one or more cmdhDefEcValue and cmdhEcDefParamValues.
        links: &[
            link(LinkTarget::Mgmt(1014), 1, None),
            link(LinkTarget::Mgmt(1015), 1, None),
        ],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1014,
        name: "cmdhDefEcValue",
        root: "m2m:cmdv",
        attrs: &[
            a("od", PositiveInt, M, O),
            a("dev", EventCat, M, O),
            a("ror", StrList, M, O),
            a("rct", Any, O, O),
            a("rctn", Bool, O, O),
            a("rch", Any, O, O),
        ],
        exclusive: &[],
        links: &[],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1015,
        name: "cmdhEcDefParamValues",
        root: "m2m:cmpv",
        attrs: &[
            a("aec", EventCatsWithDef, M, O),
            a("dqet", Millis, M, O),
            a("dset", Millis, M, O),
            a("doet", Millis, M, O),
            a("drp", Millis, M, O),
            a("dda", Bool, M, O),
        ],
        exclusive: &[],
        links: &[],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1016,
        name: "cmdhLimits",
        root: "m2m:cml",
        attrs: &[
            a("od", PositiveInt, M, O),
            a("ror", StrList, M, O),
            a("rct", Any, O, O),
            a("rctn", Bool, O, O),
            a("rch", Any, O, O),
            a("lec", EventCats, M, O),
            a("lqet", MinMax, M, O),
            a("lset", MinMax, M, O),
            a("loet", MinMax, M, O),
            a("lrp", MinMax, M, O),
            a("lda", Booleans, M, O),
        ],
        exclusive: &[],
        links: &[],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1017,
        name: "cmdhNetworkAccessRules",
        root: "m2m:cmnr",
        attrs: &[
            a("aecs", EventCatsWithDef, M, O),
            a("cmlk", MgmtLinks, O, O),
        ],
        exclusive: &[],
        // D.12.7: zero or more cmdhNwAccessRule.
        links: &[link(LinkTarget::Mgmt(1018), 0, None)],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1018,
        name: "cmdhNwAccessRule",
        root: "m2m:cmwr",
        attrs: &[
            a("ttn", StrList, M, O),
            a("mrv", NonNegInt, M, O),
            a("swt", NonNegInt, M, O),
            a("bop", BackOff, M, O),
            a("ohc", Any, O, O),
            a("cmlk", MgmtLinks, M, O),
        ],
        exclusive: &[],
        // D.12.8: the link to its allowedSchedule <schedule>.
        links: &[link(LinkTarget::Schedule, 1, Some(1))],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1019,
        name: "cmdhBuffer",
        root: "m2m:cmbf",
        attrs: &[
            a("aec", EventCatsWithDef, M, O),
            a("mbfs", NonNegInt, M, O),
            a("sgp", Range(1, 10), M, O),
        ],
        exclusive: &[],
        links: &[],
        secrets: &[],
        apart: &[],
    },
    // TS-0022 device configuration (mgd numbers of TS-0004 6.3.4.2.22 and later
    // releases); attribute facts: docs/conformance.md, "<mgmtObj>".
    Spec {
        mgd: 1021,
        name: "dataCollection",
        root: "m2m:datc",
        attrs: &[
            a("cntp", Str, M, O),
            // m2m:scheduleEntries, whose entries the core parses as a <schedule>'s.
            a("rpsc", Object, O, O),
            a("mesc", Object, O, O),
            a("meil", PositiveInt, O, O),
        ],
        exclusive: &[],
        links: &[],
        secrets: &[],
        apart: &[("mesc", "meil")],
    },
    Spec {
        mgd: 1023,
        name: "myCertFileCred",
        root: "m2m:nycfc",
        attrs: &[
            a("suids", Suids, M, O),
            a("mcff", Str, M, NP),
            a("mcfc", Str, M, NP),
        ],
        exclusive: &[],
        links: &[],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1028,
        name: "wifiClient",
        root: "m2m:wific",
        attrs: &[
            a("ssid", Str, M, O),
            a("wcrds", WifiCredentials, O, O),
            a("maca", Str, O, O),
            a("chanl", Str, O, O),
            a("cons", WIFI_CONNECTION_STATUS, O, O),
            a("scan", Bool, M, O),
            a("scanr", StrList, O, O),
            a("ud", Bool, O, O),
            a("uds", Object, NP, O),
            a("trdst", Bool, O, O),
            a("rdst", Bool, O, O),
        ],
        exclusive: &[],
        links: &[],
        // The password and keys of dcfg:wifiCredentials; the encryption type and the
        // user name stay readable.
        secrets: &["wcrds/pwd", "wcrds/wepk", "wcrds/wpap"],
        apart: &[],
    },
    Spec {
        mgd: 1029,
        name: "credentials",
        root: "m2m:crds",
        attrs: &[
            a("pur", Str, O, O),
            a("crid", Str, O, O),
            a("crse", Str, O, O),
            a("crtk", Str, O, O),
        ],
        exclusive: &[],
        links: &[],
        secrets: &["crse", "crtk"],
        apart: &[],
    },
    Spec {
        mgd: 1030,
        name: "SIM",
        root: "m2m:sim",
        attrs: &[
            a("imsi", Str, O, O),
            a("icid", Str, M, O),
            a("sist", Range(0, 1), O, O),
            a("sity", Range(0, 3), O, O),
            a("spn", Str, O, O),
        ],
        exclusive: &[],
        links: &[],
        secrets: &[],
        apart: &[],
    },
    Spec {
        mgd: 1031,
        name: "mobileNetwork",
        root: "m2m:mnwk",
        attrs: &[
            a("cnb", Range(0, 7), M, O),
            a("rss", Int, O, O),
            a("liqu", Int, O, O),
            a("ipad", IpAddresses, O, O),
            a("ripa", IpAddresses, O, O),
            a("apna", Str, O, O),
            a("ceid", Int, O, O),
            a("smnc", Int, O, O),
            a("smcc", Int, O, O),
            a("lac", Int, O, O),
            a("coel", Range(0, 4), O, O),
        ],
        exclusive: &[],
        links: &[],
        secrets: &[],
        apart: &[],
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

/// Whether oneM2M defines `mgd` (TS-0004 6.3.4.2.22: 0 self-defined, 1001 to 1026; the
/// TS-0022 device configuration ones of later releases up to 1031, docs/decisions.md
/// "TS-0022 specializations"), so that one not served is 5001 rather than 4000.
pub fn is_defined(mgd: u64) -> bool {
    mgd == 0 || (1001..=1031).contains(&mgd)
}

/// Whether `name` is, or holds, a write-only value of `spec`.
pub fn holds_secret(spec: &Spec, name: &str) -> bool {
    spec.secrets
        .iter()
        .any(|p| p.split('/').next() == Some(name))
}

/// Removes `spec`'s write-only values from a representation of one of its resources.
/// Every rendering of a `<mgmtObj>` for anyone but the store passes here.
pub fn strip_secrets(spec: &Spec, attrs: &mut Map<String, Value>) {
    for path in spec.secrets {
        match path.split_once('/') {
            None => {
                attrs.remove(*path);
            }
            Some((outer, inner)) => {
                if let Some(Value::Object(members)) = attrs.get_mut(outer) {
                    members.remove(inner);
                }
            }
        }
    }
}

/// [`strip_secrets`] for the representation under `root`, when that is a
/// specialization's or its announced variant's (other roots are left as they are).
pub fn strip_secrets_of_root(root: &str, attrs: &mut Map<String, Value>) {
    // An announced copy (`m2m:wificA`) refuses them at CREATE; stripped here as well, so
    // that no stored copy, however made, shows one.
    if let Some(spec) = by_root(root).or_else(|| by_announced_root(root)) {
        strip_secrets(spec, attrs);
    }
}

/// Whether `name` of a stored `<mgmtObj>` (`attrs` holding its `mgd`) is, or holds, a
/// write-only value: never compared, copied or shown.
pub fn withheld(attrs: &Map<String, Value>, name: &str) -> bool {
    attrs
        .get("mgd")
        .and_then(Value::as_u64)
        .and_then(spec)
        .is_some_and(|s| holds_secret(s, name))
}

/// The rules of `spec` that look at the content as a whole: `aa` cannot name a
/// write-only attribute, and the resource as it would be (`stored` overlaid with
/// `content`, null removing) holds at most one of each [`Spec::apart`] pair (4000).
pub fn check_whole(
    spec: &Spec,
    stored: Option<&Map<String, Value>>,
    content: &Map<String, Value>,
) -> Result<(), RequestError> {
    let named = content.get("aa").and_then(Value::as_array);
    if let Some(secret) = named
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|n| holds_secret(spec, n))
    {
        return Err(RequestError::bad_request(format!(
            "aa cannot name {secret}: it holds a write-only value of a {}",
            spec.name
        )));
    }
    let has = |name: &str| match content.get(name) {
        Some(Value::Null) => false,
        Some(_) => true,
        None => stored.is_some_and(|s| s.get(name).is_some_and(|v| !v.is_null())),
    };
    if let Some((x, y)) = spec.apart.iter().find(|(x, y)| has(x) && has(y)) {
        return Err(RequestError::bad_request(format!(
            "a {} cannot hold both {x} and {y}",
            spec.name
        )));
    }
    Ok(())
}

/// Whether `value` is a `dcfg:wifiCredentials`: `enct` (`dcfg:wifiEncryptionType`, 1
/// none to 8 WPA3 Enterprise) and the strings that type needs, no others: `wepk` for 2
/// (WEP), `wpap` for 3 to 5 (personal), `unm` and/or `pwd` for 6 to 8 (enterprise).
pub fn is_wifi_credentials(value: &Value) -> bool {
    let Some(creds) = value.as_object() else {
        return false;
    };
    let Some(enct) = creds
        .get("enct")
        .and_then(Value::as_u64)
        .filter(|n| (1..=8).contains(n))
    else {
        return false;
    };
    let allowed: &[&str] = match enct {
        2 => &["wepk"],
        3..=5 => &["wpap"],
        6..=8 => &["unm", "pwd"],
        _ => &[],
    };
    let members_ok = creds.iter().all(|(k, v)| {
        k == "enct" || (allowed.contains(&k.as_str()) && v.as_str().is_some_and(|s| !s.is_empty()))
    });
    members_ok && (allowed.is_empty() || allowed.iter().any(|k| creds.contains_key(*k)))
}

/// Whether `value` is a non-empty list of `m2m:ipAddress`: objects of `ip4` and/or `ip6`
/// address text (TS-0004 6.3.5).
pub fn is_ip_addresses(value: &Value) -> bool {
    let one = |v: &Value| {
        v.as_object().is_some_and(|o| {
            !o.is_empty()
                && o.iter().all(|(k, v)| match (k.as_str(), v.as_str()) {
                    ("ip4", Some(t)) => t.parse::<std::net::Ipv4Addr>().is_ok(),
                    ("ip6", Some(t)) => t.parse::<std::net::Ipv6Addr>().is_ok(),
                    _ => false,
                })
        })
    };
    value
        .as_array()
        .is_some_and(|l| !l.is_empty() && l.iter().all(one))
}

/// Whether `value` is a non-empty list of `m2m:suid` (the security usage identifiers:
/// 10-15, 21-25, 32-35, 40-45), each at most once.
pub fn is_suids(value: &Value) -> bool {
    let ok = |n: u64| matches!(n, 10..=15 | 21..=25 | 32..=35 | 40..=45);
    value.as_array().is_some_and(|l| {
        !l.is_empty()
            && l.iter().all(|v| v.as_u64().is_some_and(ok))
            && l.iter().enumerate().all(|(i, v)| !l[..i].contains(v))
    })
}

/// Whether `value` is one `m2m:mgmtLinkRef` (TS-0004 6.3.5.24): exactly `nm` (a
/// resource name), `typ` (a `mgd` oneM2M defines) and `val` (an address without white
/// space).
pub fn is_link_ref(value: &Value) -> bool {
    let Some(link) = value.as_object() else {
        return false;
    };
    let nm_ok = link
        .get("nm")
        .and_then(Value::as_str)
        .is_some_and(|nm| crate::id::validate_resource_name(nm).is_ok());
    let typ_ok = link
        .get("typ")
        .and_then(Value::as_u64)
        .is_some_and(is_defined);
    let val_ok = link
        .get("val")
        .and_then(Value::as_str)
        .is_some_and(|v| !v.is_empty() && !v.contains(char::is_whitespace));
    link.len() == 3 && nm_ok && typ_ok && val_ok
}

/// Whether `value` is a `m2m:backOffParameters` (TS-0004 6.3.5.54, 6.3.4.2.45).
pub fn is_back_off(value: &Value) -> bool {
    let Some(Value::Array(sets)) = value
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("bops"))
    else {
        return false;
    };
    let set_ok = |set: &Value| {
        let Some(set) = set.as_object() else {
            return false;
        };
        let millis = |k: &str| set.get(k).is_some_and(Value::is_u64);
        let known = set
            .keys()
            .all(|k| matches!(k.as_str(), "nwa" | "ibt" | "abt" | "mbt" | "rbt"));
        let nwa_ok = set
            .get("nwa")
            .is_none_or(|n| n.as_u64().is_some_and(|n| (1..=5).contains(&n)));
        known
            && nwa_ok
            && millis("ibt")
            && millis("abt")
            && millis("mbt")
            && (!set.contains_key("rbt") || millis("rbt"))
    };
    !sets.is_empty() && sets.iter().all(set_ok)
}

/// The `cmlk` of `content` against what `spec` lets it name (TS-0004 D.12): every
/// entry matches a rule and each rule's count is within its bounds (4000 otherwise).
/// The entries' shape is the attribute check's.
pub fn check_link_counts(spec: &Spec, content: &Map<String, Value>) -> Result<(), RequestError> {
    let Some(Value::Array(entries)) = content.get("cmlk") else {
        return Ok(());
    };
    let matches = |rule: &LinkRule, entry: &Value| match rule.target {
        LinkTarget::Mgmt(mgd) => entry.get("typ").and_then(Value::as_u64) == Some(mgd),
        LinkTarget::Schedule => true,
    };
    if let Some(stray) = entries
        .iter()
        .find(|e| !spec.links.iter().any(|r| matches(r, e)))
    {
        return Err(RequestError::bad_request(format!(
            "cmlk of a {} cannot name a mgmtObj of mgd {}",
            spec.name,
            stray.get("typ").unwrap_or(&Value::Null)
        )));
    }
    for rule in spec.links {
        let n = entries.iter().filter(|e| matches(rule, e)).count();
        if n < rule.min || rule.max.is_some_and(|max| n > max) {
            let what = match rule.target {
                LinkTarget::Mgmt(mgd) => spec_name(mgd),
                LinkTarget::Schedule => "schedule",
            };
            let bound = match rule.max {
                Some(max) if max == rule.min => format!("exactly {max}"),
                Some(max) => format!("{} to {max}", rule.min),
                None => format!("at least {}", rule.min),
            };
            return Err(RequestError::bad_request(format!(
                "cmlk of a {} must name {bound} {what}, not {n}",
                spec.name
            )));
        }
    }
    Ok(())
}

fn spec_name(mgd: u64) -> &'static str {
    spec(mgd).map_or("mgmtObj", |s| s.name)
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
        assert!(is_defined(0) && is_defined(1011) && is_defined(1031));
        assert!(!is_defined(1032) && !is_defined(1000) && !is_defined(1));
        // TS-0004 6.3.4.2.22: 1011-1019 are the CMDH ones, served; from 1020 TS-0022,
        // of which 1021, 1023 and 1028-1031 are served.
        let cmdh: Vec<u64> = (1011..=1019).collect();
        assert!(cmdh.iter().all(|m| spec(*m).is_some()));
        let ts0022 = [1021, 1023, 1028, 1029, 1030, 1031];
        assert!(ts0022.iter().all(|m| spec(*m).is_some()));
        let unserved = [1020, 1022, 1024, 1025, 1026, 1027];
        assert!(unserved
            .iter()
            .all(|m| spec(*m).is_none() && is_defined(*m)));
        assert_eq!(by_root("m2m:cmbf").map(|s| s.mgd), Some(1019));
        assert_eq!(by_root("m2m:wific").map(|s| s.mgd), Some(1028));
        // A write-only value names an attribute (or a member of one) of its own spec.
        for s in SPECS {
            for path in s.secrets {
                let outer = path.split('/').next().unwrap_or_default();
                assert!(
                    s.attrs.iter().any(|d| d.name == outer),
                    "{}: {path}",
                    s.name
                );
            }
        }
    }

    fn links(typs: &[u64]) -> Map<String, Value> {
        let entries: Vec<Value> = typs
            .iter()
            .map(|t| json!({"nm": "x", "typ": t, "val": "cse-in/x"}))
            .collect();
        obj(json!({ "cmlk": entries }))
    }

    #[test]
    fn ts0004_d_12_1_cmdh_policy_link_counts() {
        let cmp = spec(CMDH_POLICY).unwrap();
        assert!(check_link_counts(cmp, &links(&[1013, 1016, 1017, 1019])).is_ok());
        assert!(check_link_counts(cmp, &links(&[1013, 1016, 1016, 1017, 1019, 1019])).is_ok());
        for bad in [
            &[1013, 1013, 1016, 1017, 1019][..],
            &[1016, 1017, 1019],
            &[1013, 1016, 1017],
            &[1013, 1016, 1017, 1019, 1014],
        ] {
            let e = check_link_counts(cmp, &links(bad)).unwrap_err();
            assert_eq!(e.rsc(), crate::rsc::Rsc::BadRequest, "{bad:?}");
            assert!(e.reason().contains("cmdhPolicy"), "{}", e.reason());
        }
        let nar = spec(1017).unwrap();
        assert!(check_link_counts(nar, &links(&[1018, 1018])).is_ok());
        assert!(check_link_counts(nar, &links(&[1019])).is_err());
        // A cmdhNwAccessRule links one schedule whatever its typ says.
        let rule = spec(1018).unwrap();
        assert!(check_link_counts(rule, &links(&[1018])).is_ok());
        assert!(check_link_counts(rule, &links(&[1018, 1018])).is_err());
    }

    #[test]
    fn ts0004_6_3_5_24_mgmt_link_ref_shape() {
        assert!(is_link_ref(
            &json!({"nm": "a", "typ": 1013, "val": "cse-in/a"})
        ));
        for bad in [
            json!({"typ": 1013, "val": "cse-in/a"}),
            json!({"nm": "a", "typ": 999, "val": "cse-in/a"}),
            json!({"nm": "a b", "typ": 1013, "val": "cse-in/a"}),
            json!({"nm": "a", "typ": 1013, "val": ""}),
            json!({"nm": "a", "typ": 1013, "val": "x", "extra": 1}),
            json!("cse-in/a"),
        ] {
            assert!(!is_link_ref(&bad), "{bad}");
        }
    }

    #[test]
    fn ts0004_6_3_5_54_back_off_parameters_shape() {
        assert!(is_back_off(
            &json!({"bops": [{"ibt": 0, "abt": 0, "mbt": 0}, {"nwa": 5, "ibt": 1, "abt": 2, "mbt": 3, "rbt": 4}]})
        ));
        for bad in [
            json!({"bops": []}),
            json!({"bops": [{"nwa": 0, "ibt": 1, "abt": 1, "mbt": 1}]}),
            json!({"bops": [{"ibt": 1, "abt": 1}]}),
            json!({"bops": [{"ibt": -1, "abt": 1, "mbt": 1}]}),
            json!({"bops": [{"ibt": 1, "abt": 1, "mbt": 1, "zz": 1}]}),
            json!({"bops": [{"ibt": 1, "abt": 1, "mbt": 1}], "more": 1}),
        ] {
            assert!(!is_back_off(&bad), "{bad}");
        }
    }

    #[test]
    fn ts0004_6_3_3_cmdh_value_types() {
        use crate::attrs::{check_kind, Kind};
        let ok = |k: Kind, v: Value| check_kind("x", k, &v).is_ok();
        assert!(ok(Kind::EventCat, json!(2)) && ok(Kind::EventCat, json!(999)));
        assert!(!ok(Kind::EventCat, json!(1)) && !ok(Kind::EventCat, json!(5)));
        assert!(!ok(Kind::EventCat, json!(0)) && !ok(Kind::EventCat, json!(1000)));
        assert!(ok(Kind::EventCatsWithDef, json!([0, 4, 100])));
        assert!(!ok(Kind::EventCatsWithDef, json!([])));
        assert!(!ok(Kind::EventCats, json!([0])));
        assert!(ok(Kind::Millis, json!(-1)) && !ok(Kind::Millis, json!(-2)));
        for (pair, good) in [
            (json!([10, 2560]), true),
            (json!([0, -1]), true),
            (json!([-1, -1]), true),
            (json!([5, 5]), true),
            (json!([2560, 10]), false),
            (json!([-1, 10]), false),
            (json!([-2, 10]), false),
            (json!([1]), false),
            (json!([1, 2, 3]), false),
        ] {
            assert_eq!(ok(Kind::MinMax, pair.clone()), good, "{pair}");
        }
        assert!(ok(Kind::Booleans, json!([false])) && ok(Kind::Booleans, json!([true, false])));
        assert!(!ok(Kind::Booleans, json!([])) && !ok(Kind::Booleans, json!([true, true])));
        assert!(!ok(Kind::Booleans, json!([0, 1])));
    }

    #[test]
    fn ts0022_secrets_are_stripped_and_withheld() {
        let wific = spec(1028).unwrap();
        let mut attrs = obj(json!({"mgd": 1028, "ssid": "home",
            "wcrds": {"enct": 4, "wpap": "psk-value"}}));
        strip_secrets(wific, &mut attrs);
        assert_eq!(
            Value::Object(attrs.clone()),
            json!({"mgd": 1028, "ssid": "home",
            "wcrds": {"enct": 4}})
        );
        assert!(withheld(&attrs, "wcrds") && !withheld(&attrs, "ssid"));
        let mut crds = obj(json!({"mgd": 1029, "crid": "id", "crse": "s", "crtk": "t"}));
        strip_secrets_of_root("m2m:crds", &mut crds);
        assert_eq!(Value::Object(crds), json!({"mgd": 1029, "crid": "id"}));
        // Another root is left as it is.
        let mut other = obj(json!({"crse": "s"}));
        strip_secrets_of_root("m2m:cnt", &mut other);
        assert_eq!(other.len(), 1);
        let e = check_whole(
            spec(1029).unwrap(),
            None,
            &obj(json!({"aa": ["crid", "crse"]})),
        )
        .unwrap_err();
        assert_eq!(e.rsc(), crate::rsc::Rsc::BadRequest);
        assert!(e.reason().contains("crse") && !e.reason().contains("\"s\""));
        assert!(check_whole(spec(1029).unwrap(), None, &obj(json!({"aa": ["crid"]}))).is_ok());
        assert!(check_whole(wific, None, &obj(json!({"aa": ["wcrds"]}))).is_err());
    }

    #[test]
    fn ts0022_data_collection_mesc_and_meil_apart() {
        let datc = spec(1021).unwrap();
        let mesc = json!({"sce": ["* * * * * * *"]});
        let both = obj(json!({"mesc": mesc, "meil": 5}));
        assert!(check_whole(datc, None, &both).is_err());
        let stored = obj(json!({"mesc": mesc}));
        assert!(check_whole(datc, Some(&stored), &obj(json!({"meil": 5}))).is_err());
        let swap = obj(json!({"mesc": null, "meil": 5}));
        assert!(check_whole(datc, Some(&stored), &swap).is_ok());
    }

    #[test]
    fn ts0022_value_types() {
        use crate::attrs::{check_kind, Kind};
        let ok = |k: Kind, v: Value| check_kind("x", k, &v).is_ok();
        for (v, good) in [
            (json!({"enct": 1}), true),
            (json!({"enct": 2, "wepk": "k"}), true),
            (json!({"enct": 4, "wpap": "p"}), true),
            (json!({"enct": 7, "unm": "u", "pwd": "p"}), true),
            (json!({"enct": 8, "pwd": "p"}), true),
            (json!({"enct": 0}), false),
            (json!({"enct": 9}), false),
            (json!({"enct": 2}), false),
            (json!({"enct": 3, "pwd": "p"}), false),
            (json!({"enct": 1, "wepk": "k"}), false),
            (json!({"enct": 6}), false),
            (json!({"enct": 4, "wpap": ""}), false),
            (json!({"wpap": "p"}), false),
        ] {
            assert_eq!(ok(Kind::WifiCredentials, v.clone()), good, "{v}");
        }
        assert!(ok(Kind::Suids, json!([10, 45])) && ok(Kind::Suids, json!([21])));
        for bad in [
            json!([]),
            json!([16]),
            json!([99]),
            json!([10, 10]),
            json!(["10"]),
        ] {
            assert!(!ok(Kind::Suids, bad.clone()), "{bad}");
        }
        assert!(ok(
            Kind::IpAddresses,
            json!([{"ip4": "10.0.0.1"}, {"ip6": "fe80::1"}])
        ));
        assert!(ok(
            Kind::IpAddresses,
            json!([{"ip4": "10.0.0.1", "ip6": "::1"}])
        ));
        for bad in [
            json!([]),
            json!([{}]),
            json!([{"ip4": "::1"}]),
            json!([{"ip5": "x"}]),
        ] {
            assert!(!ok(Kind::IpAddresses, bad.clone()), "{bad}");
        }
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
