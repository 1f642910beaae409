//! Attribute policies (TS-0004 §7.4; core-resources.md §2-§4): for every implemented
//! resource type, which attributes exist, their data type, and whether a CREATE or UPDATE
//! request must, may or must not carry them. Validation here is purely syntactic; rules
//! that need the resource tree (limits against the parent, uniqueness) live in the core.

pub mod announced;
pub mod mgmt;
pub mod release;

use crate::error::RequestError;
use crate::time::Timestamp;
use crate::types::ResourceType;
use serde_json::{Map, Value};

/// How an attribute's value is typed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    NonNegInt,
    /// `m2m:positiveInteger` (`dcnt`): 1 or more.
    PositiveInt,
    /// `xs:integer`: any whole number (custom attributes of `<flexContainer>`).
    Int,
    /// `xs:float`/`xs:double`: any JSON number (custom attributes of `<flexContainer>`).
    Number,
    Bool,
    Timestamp,
    StrList,
    /// `lbl`: a list of tokens, none empty and none holding white space or a control
    /// character (TS-0004 6.3.3: labels are `m2m:labels`, a list of tokens).
    Labels,
    /// `csz`: a list of the serializations oneM2M defines, by media type (TS-0004
    /// 6.3.3, `m2m:serializations`).
    Serializations,
    /// `cnf`: `<type>/<subtype>[:<encoding>[:<content security>]]` (TS-0004 6.3.3,
    /// `m2m:contentInfo`; encodings 0 to 2 of `m2m:encodingType`).
    ContentInfo,
    /// A JSON object (complex type) validated elsewhere or opaque.
    Object,
    /// Any JSON value (`con`).
    Any,
    /// `cr`: only `null` is allowed in a CREATE.
    CreatorNull,
    /// An originator's identifier (AE-ID or CSE-ID, `cstn`): a non-empty string without
    /// wildcard or whitespace.
    Originator,
    /// An integer from the first bound to the second, both included (an enumeration such
    /// as `m2m:batteryStatus`, or a percentage).
    Range(u64, u64),
    /// `lou`: a list of `xs:duration` values (TS-0004 6.3.3, `m2m:listOfDuration`).
    Durations,
    /// `los`: a `m2m:locationSource` (TS-0004 6.3.4.2.3): 1 network-based, 2
    /// device-based, 3 sharing-based.
    LocationSource,
    /// `m2m:eventCat` (TS-0004 6.3.3): a standard category (`m2m:stdEventCats` 2 to 4)
    /// or a user-defined one (100 to 999).
    EventCat,
    /// A non-empty list of `m2m:eventCat` (`m2m:listOfEventCat`).
    EventCats,
    /// A non-empty list of `m2m:eventCatWithDef`: an event category or 0, "default"
    /// (`m2m:listOfEventCatWithDef`).
    EventCatsWithDef,
    /// A duration in milliseconds as CMDH gives it (`xs:long`, -1 meaning infinity): an
    /// integer from -1 up.
    Millis,
    /// `m2m:listOfMinMax`: two durations as [`Kind::Millis`], the minimum first (-1, the
    /// infinite maximum, is above every other value).
    MinMax,
    /// `lda` of `[cmdhLimits]`: the permitted settings of a boolean, one or both of
    /// `false` and `true`, each at most once.
    Booleans,
    /// A non-empty list of `m2m:mgmtLinkRef` (TS-0004 6.3.5.24): objects of a name
    /// (`nm`), a `m2m:mgmtDefinition` (`typ`) and the resource's address (`val`).
    MgmtLinks,
    /// `m2m:backOffParameters` (TS-0004 6.3.5.54): `bops`, a non-empty list of sets of
    /// an optional `m2m:networkAction` (`nwa`, 1 to 5), `ibt`, `abt`, `mbt` and an
    /// optional `rbt` (milliseconds).
    BackOff,
    /// A non-empty list of `m2m:suid` without repeats (`suids` of `[myCertFileCred]`).
    Suids,
    /// `dcfg:wifiCredentials` (`wcrds` of `[wifiClient]`): `enct` and the members that
    /// encryption type needs ([`mgmt::is_wifi_credentials`]).
    WifiCredentials,
    /// A non-empty list of `m2m:ipAddress` (`{"ip4"}` and/or `{"ip6"}`).
    IpAddresses,
}

/// Presence in a request's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Mandatory,
    Optional,
    NotPermitted,
}

use Presence::{Mandatory as M, NotPermitted as NP, Optional as O};

/// One attribute of one resource type.
#[derive(Clone, Copy, Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub kind: Kind,
    pub create: Presence,
    pub update: Presence,
}

/// One attribute's policy; the one constructor of the tables here and in the submodules.
const fn a(name: &'static str, kind: Kind, create: Presence, update: Presence) -> AttrDef {
    AttrDef {
        name,
        kind,
        create,
        update,
    }
}

/// Universal attributes every resource has; always set by the CSE.
const UNIVERSAL_RO: [AttrDef; 5] = [
    a("ty", Kind::NonNegInt, NP, NP),
    a("ri", Kind::Str, NP, NP),
    a("pi", Kind::Str, NP, NP),
    a("ct", Kind::Timestamp, NP, NP),
    a("lt", Kind::Timestamp, NP, NP),
];

const AE: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cstn", Kind::Originator, O, O),
    a("apn", Kind::Str, O, O),
    a("api", Kind::Str, M, NP),
    a("aei", Kind::Str, NP, NP),
    a("poa", Kind::StrList, O, O),
    a("or", Kind::Str, O, O),
    a("nl", Kind::Str, O, O),
    a("rr", Kind::Bool, M, O),
    a("csz", Kind::Serializations, O, O),
    a("esi", Kind::Object, O, O),
    a("mei", Kind::Str, O, O),
    a("srv", Kind::StrList, M, O),
    a("regs", Kind::NonNegInt, O, O),
    a("trps", Kind::Bool, O, O),
    a("scp", Kind::Object, O, O),
    a("tren", Kind::Bool, O, O),
    a("ape", Kind::Object, O, O),
    a("tri", Kind::Str, O, O),
    a("trn", Kind::NonNegInt, O, O),
];

const CNT: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cstn", Kind::Originator, O, O),
    a("cr", Kind::CreatorNull, O, NP),
    a("st", Kind::NonNegInt, NP, NP),
    a("mni", Kind::NonNegInt, O, O),
    a("mbs", Kind::NonNegInt, O, O),
    a("mia", Kind::NonNegInt, O, O),
    a("cni", Kind::NonNegInt, NP, NP),
    a("cbs", Kind::NonNegInt, NP, NP),
    a("li", Kind::Str, NP, NP),
    a("or", Kind::Str, O, O),
    a("disr", Kind::Bool, O, O),
];

const CIN: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, NP),
    a("lbl", Kind::Labels, O, NP),
    a("at", Kind::StrList, O, NP),
    a("aa", Kind::StrList, O, NP),
    a("cr", Kind::CreatorNull, O, NP),
    a("st", Kind::NonNegInt, NP, NP),
    a("cnf", Kind::ContentInfo, O, NP),
    a("cs", Kind::NonNegInt, NP, NP),
    a("conr", Kind::Str, O, NP),
    a("or", Kind::Str, O, NP),
    a("con", Kind::Any, M, NP),
    a("dgt", Kind::Timestamp, O, NP),
    a("dcnt", Kind::PositiveInt, O, NP),
];

/// `<timeSeries>` (TS-0004 7.4.36; core-resources.md §3.14). `pei`, `peid` and `mdt`
/// are milliseconds; `mdlt` and `mdc` are the CSE's missing-data record.
const TS: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cstn", Kind::Originator, O, O),
    a("cr", Kind::CreatorNull, O, NP),
    a("st", Kind::NonNegInt, NP, NP),
    a("mni", Kind::NonNegInt, O, O),
    a("mbs", Kind::NonNegInt, O, O),
    a("mia", Kind::NonNegInt, O, O),
    a("cni", Kind::NonNegInt, NP, NP),
    a("cbs", Kind::NonNegInt, NP, NP),
    a("pei", Kind::PositiveInt, O, O),
    a("peid", Kind::NonNegInt, O, O),
    a("mdd", Kind::Bool, O, O),
    a("mdn", Kind::NonNegInt, O, O),
    a("mdlt", Kind::StrList, NP, NP),
    a("mdc", Kind::NonNegInt, NP, NP),
    a("mdt", Kind::NonNegInt, O, O),
    a("cnf", Kind::ContentInfo, O, NP),
    a("or", Kind::Str, O, O),
];

/// `<timeSeriesInstance>` (TS-0004 7.4.37): `dgt` is mandatory, and nothing changes
/// after CREATE.
const TSI: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, NP),
    a("lbl", Kind::Labels, O, NP),
    a("at", Kind::StrList, O, NP),
    a("aa", Kind::StrList, O, NP),
    a("cr", Kind::CreatorNull, O, NP),
    a("cnf", Kind::ContentInfo, O, NP),
    a("cs", Kind::NonNegInt, NP, NP),
    a("dgt", Kind::Timestamp, M, NP),
    a("con", Kind::Any, M, NP),
    a("snr", Kind::NonNegInt, O, NP),
];

/// What every `<mgmtObj>` has (TS-0004 7.4.15), beside its specialization's attributes
/// (`mgmt::SPECS`). `mgd` picks the specialization and never changes.
const MGO: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("mgd", Kind::NonNegInt, M, NP),
    a("obis", Kind::StrList, O, NP),
    a("obps", Kind::StrList, O, NP),
    a("dc", Kind::Str, O, O),
];

/// `<node>` (TS-0004 7.4.18): `rms` and `nid` are the CSE's to report.
const NOD: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("ni", Kind::Str, M, O),
    a("hcl", Kind::Str, O, O),
    a("hael", Kind::StrList, O, O),
    a("hsl", Kind::StrList, O, O),
    a("mgca", Kind::Str, O, O),
    a("rms", Kind::Bool, NP, NP),
    a("nid", Kind::Str, NP, NP),
];

/// `<flexContainer>` (TS-0004 7.4.37; core-resources.md §3.13): the attributes every
/// specialization shares. Its custom attributes come from the specialization
/// (`crate::flex`) and are checked there. `mni`, `mbs` and `mia` are the limits of its
/// `<flexContainerInstance>` children (Release 4).
const FCNT: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cstn", Kind::Originator, O, O),
    a("cr", Kind::CreatorNull, O, NP),
    a("st", Kind::NonNegInt, NP, NP),
    a("cnd", Kind::Str, M, NP),
    a("or", Kind::Str, O, O),
    a("nl", Kind::Str, O, O),
    a("cs", Kind::NonNegInt, NP, NP),
    a("mni", Kind::NonNegInt, O, O),
    a("mbs", Kind::NonNegInt, O, O),
    a("mia", Kind::NonNegInt, O, O),
    a("cni", Kind::NonNegInt, NP, NP),
    a("cbs", Kind::NonNegInt, NP, NP),
];

/// `<flexContainerInstance>` (Release 4): made only by the hosting CSE, never written by
/// a request; its custom attributes are its parent's at the time it was made.
const FCI: &[AttrDef] = &[
    a("rn", Kind::Str, NP, NP),
    a("et", Kind::Timestamp, NP, NP),
    a("lbl", Kind::Labels, NP, NP),
    // The flexContainer's, when it is announced (docs/decisions.md).
    a("at", Kind::StrList, NP, NP),
    a("aa", Kind::StrList, NP, NP),
    a("st", Kind::NonNegInt, NP, NP),
    a("cs", Kind::NonNegInt, NP, NP),
    a("org", Kind::Originator, NP, NP),
];

const ACP: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("pv", Kind::Object, M, O),
    a("pvs", Kind::Object, M, O),
    a("adri", Kind::StrList, O, O),
    a("apri", Kind::StrList, O, O),
    a("airi", Kind::StrList, O, O),
];

/// `<locationPolicy>` (TS-0001 9.6.10; TS-0004 7.4.10). The source is chosen once
/// (docs/decisions.md); `loi` and `lost` are the CSE's, `lon` names the container the CSE
/// creates and is kept as written.
const LCP: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cstn", Kind::Originator, O, O),
    a("los", Kind::LocationSource, M, NP),
    a("lou", Kind::Durations, O, O),
    a("lot", Kind::Str, O, O),
    a("lor", Kind::Str, O, O),
    a("loi", Kind::Str, NP, NP),
    a("lon", Kind::Str, O, NP),
    a("lost", Kind::Str, NP, NP),
];

/// `<group>` (TS-0001 9.6.13; core-resources.md §3.8). Fan-out is not offered yet, so
/// `nar` is not accepted.
const GRP: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cstn", Kind::Originator, O, O),
    a("cr", Kind::CreatorNull, O, NP),
    a("mt", Kind::NonNegInt, O, NP),
    a("spty", Kind::Str, O, NP),
    a("cnm", Kind::NonNegInt, NP, NP),
    a("mnm", Kind::NonNegInt, M, O),
    a("mid", Kind::StrList, M, O),
    a("macp", Kind::StrList, O, O),
    a("mtv", Kind::Bool, NP, NP),
    a("csy", Kind::NonNegInt, O, NP),
    a("gn", Kind::Str, O, O),
    // Semantic support is not offered: the indicator is defined (TS-0004 7.4.13), never set.
    a("ssi", Kind::Bool, NP, NP),
];

/// `<role>` (TS-0001 9.6.38; TS-0003 7.4): the role attributes are write-once.
const ROL: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("cr", Kind::CreatorNull, O, NP),
    a("rlid", Kind::Str, M, NP),
    a("tkis", Kind::Str, M, NP),
    a("tkhd", Kind::Str, M, NP),
    a("tknb", Kind::Timestamp, M, NP),
    a("tkna", Kind::Timestamp, M, NP),
    a("rlnm", Kind::Str, O, O),
    a("rltl", Kind::Str, O, O),
];

/// `<token>` (TS-0001 9.6.39; TS-0003 7.4): the JWT in `tkob`; the plain-text claim
/// copies are filled in by the CSE from the validated token, never taken from the client.
const TK: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("cr", Kind::CreatorNull, O, NP),
    a("tkid", Kind::Str, O, NP),
    a("tkob", Kind::Str, M, NP),
    a("vr", Kind::Str, NP, NP),
    a("tkis", Kind::Str, NP, NP),
    a("tkau", Kind::StrList, NP, NP),
    a("tkhd", Kind::Str, NP, NP),
    a("tknb", Kind::Timestamp, NP, NP),
    a("tkna", Kind::Timestamp, NP, NP),
    a("tknm", Kind::Str, NP, NP),
    a("tkps", Kind::Object, NP, NP),
    a("tkex", Kind::Any, NP, NP),
];

/// `<dynamicAuthorizationConsultation>` (TS-0001 9.6.40; TS-0003 7.3.2.2).
const DAC: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cstn", Kind::Originator, O, O),
    a("cr", Kind::CreatorNull, O, NP),
    a("dae", Kind::Bool, M, O),
    a("dap", Kind::StrList, M, O),
    a("dal", Kind::Timestamp, O, O),
];

/// `<notificationTargetMgmtPolicyRef>` (TS-0004 7.4.30): `ntu` the targets of the parent
/// subscription it applies to, `npi` the `<notificationTargetPolicy>` they follow.
const NTPR: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cstn", Kind::Originator, O, O),
    a("ntu", Kind::StrList, M, O),
    a("npi", Kind::Str, O, O),
];

/// `<notificationTargetPolicy>` (TS-0004 7.4.31): `acn` is a
/// `m2m:notificationTargetPolicyAction` (1 accept, 2 reject, 3 seek the subscriber's
/// authorization, 4 inform it), `rrs` a `m2m:logicalOperator` (1 AND, 2 OR).
const NTP: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cstn", Kind::Originator, O, O),
    a("cr", Kind::CreatorNull, O, NP),
    a("acn", Kind::Range(1, 4), O, NP),
    a("plbl", Kind::Str, O, O),
    a("rrs", Kind::Range(1, 2), O, O),
];

/// `<policyDeletionRules>` (TS-0004 7.4.32): `dr` is a `m2m:deletionContexts` (`tod`
/// schedule entries, `lr` location regions; checked by the core), `drr` how its rules
/// combine.
const PDR: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cstn", Kind::Originator, O, O),
    a("dr", Kind::Object, O, O),
    a("drr", Kind::Range(1, 2), O, O),
];

/// `<subscription>` (TS-0001 9.6.8; core-resources.md §3.7). Complex members (`enc`,
/// `bn`, `rl`) are checked by the core.
const SUB: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cstn", Kind::Originator, O, O),
    a("cr", Kind::CreatorNull, O, NP),
    a("enc", Kind::Object, O, O),
    a("exc", Kind::NonNegInt, O, O),
    a("nu", Kind::StrList, M, O),
    a("gpi", Kind::Str, O, O),
    a("nfu", Kind::Str, O, O),
    a("bn", Kind::Object, O, O),
    a("rl", Kind::Object, O, O),
    a("psn", Kind::NonNegInt, O, NP),
    a("pn", Kind::NonNegInt, O, O),
    a("nsp", Kind::NonNegInt, O, O),
    a("ln", Kind::Bool, O, O),
    a("nct", Kind::NonNegInt, O, O),
    a("nec", Kind::Any, O, O),
    a("su", Kind::Str, O, NP),
    a("nse", Kind::Bool, O, O),
    a("nsi", Kind::Any, NP, NP),
    a("eeno", Kind::Bool, O, O),
    a("acrs", Kind::StrList, O, O),
];

/// `<crossResourceSubscription>` (TS-0004 7.4.58; TS-0001 9.6.58).
const CRS: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cr", Kind::CreatorNull, O, NP),
    a("rrat", Kind::StrList, O, NP),
    a("srat", Kind::StrList, O, O),
    a("rrats", Kind::StrList, NP, NP),
    // `m2m:timeWindowType`: 1 periodic, 2 sliding.
    a("twt", Kind::Range(1, 2), M, O),
    a("tws", Kind::Str, M, O),
    a("encs", Kind::Object, O, NP),
    a("nec", Kind::Any, O, NP),
    a("exc", Kind::PositiveInt, O, O),
    a("nu", Kind::StrList, M, O),
    a("su", Kind::Str, O, NP),
];

/// `<pollingChannel>` (TS-0001 9.6.21; core-resources.md §3.10).
const PCH: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("rqag", Kind::Bool, O, O),
];

/// `<remoteCSE>` (TS-0001 9.6.4; core-resources.md §3.9).
const CSR: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cst", Kind::NonNegInt, O, NP),
    a("poa", Kind::StrList, O, O),
    a("cb", Kind::Str, M, NP),
    a("csi", Kind::Str, O, NP),
    a("mei", Kind::Str, O, O),
    a("tri", Kind::Str, O, O),
    a("trn", Kind::NonNegInt, O, O),
    a("rr", Kind::Bool, M, O),
    a("nl", Kind::Str, O, O),
    a("csz", Kind::Serializations, O, O),
    a("esi", Kind::Object, O, O),
    a("mtcc", Kind::NonNegInt, O, O),
    a("egid", Kind::Str, O, O),
    a("tren", Kind::Bool, O, O),
    a("ape", Kind::Object, O, O),
    a("dcse", Kind::StrList, O, O),
    a("srv", Kind::StrList, M, O),
    // serviceProviderID of the registree (Release 4 and later; ACME sends it).
    a("spi", Kind::Str, O, O),
];

/// `<request>` (TS-0001 9.6.12): written only by the CSE, never through the API.
const REQ: &[AttrDef] = &[
    a("rn", Kind::Str, NP, NP),
    a("et", Kind::Timestamp, NP, NP),
    a("lbl", Kind::Labels, NP, NP),
    a("acpi", Kind::StrList, NP, NP),
    a("op", Kind::NonNegInt, NP, NP),
    a("tg", Kind::Str, NP, NP),
    a("org", Kind::Str, NP, NP),
    a("rid", Kind::Str, NP, NP),
    a("mi", Kind::Object, NP, NP),
    a("pc", Kind::Any, NP, NP),
    a("rs", Kind::NonNegInt, NP, NP),
    a("ors", Kind::Object, NP, NP),
];

const CB: &[AttrDef] = &[
    a("rn", Kind::Str, NP, NP),
    a("lbl", Kind::Labels, NP, NP),
    a("acpi", Kind::StrList, NP, NP),
    a("cst", Kind::NonNegInt, NP, NP),
    a("csi", Kind::Str, NP, NP),
    a("srt", Kind::Object, NP, NP),
    a("poa", Kind::StrList, NP, NP),
    a("csz", Kind::StrList, NP, NP),
    a("srv", Kind::StrList, NP, NP),
    // Defined by TS-0004 7.4.3, not held by Bastion's CSEBase: named in `atrl`, never shown.
    a("nl", Kind::Str, NP, NP),
    a("esi", Kind::Object, NP, NP),
    a("ncp", Kind::Object, NP, NP),
    a("ctm", Kind::Timestamp, NP, NP),
];

/// `<schedule>` (TS-0004 7.4.9): `se` is an `m2m:scheduleEntries` (`{"sce": [...]}`),
/// its entries checked by the core against the one `scheduleEntry` parser
/// (`bastion_policy::schedule`); `nco` only under a `<node>` (the core answers 4102).
const SCH: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::Labels, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("se", Kind::Object, M, O),
    a("nco", Kind::Bool, O, O),
];

/// The type-specific attribute table (without the universal read-only ones).
pub fn table(ty: ResourceType) -> &'static [AttrDef] {
    match ty {
        ResourceType::Ae => AE,
        ResourceType::Container => CNT,
        ResourceType::ContentInstance => CIN,
        ResourceType::AccessControlPolicy => ACP,
        ResourceType::CseBase => CB,
        ResourceType::Group => GRP,
        ResourceType::MgmtObj => MGO,
        ResourceType::Node => NOD,
        ResourceType::LocationPolicy => LCP,
        ResourceType::Role => ROL,
        ResourceType::Token => TK,
        ResourceType::DynamicAuthorizationConsultation => DAC,
        ResourceType::NotificationTargetMgmtPolicyRef => NTPR,
        ResourceType::NotificationTargetPolicy => NTP,
        ResourceType::PolicyDeletionRules => PDR,
        ResourceType::Subscription => SUB,
        ResourceType::PollingChannel => PCH,
        ResourceType::RemoteCse => CSR,
        ResourceType::Request => REQ,
        ResourceType::TimeSeries => TS,
        ResourceType::TimeSeriesInstance => TSI,
        ResourceType::FlexContainer => FCNT,
        ResourceType::FlexContainerInstance => FCI,
        ResourceType::Schedule => SCH,
        ResourceType::CrossResourceSubscription => CRS,
        ResourceType::Announced(_) => announced::table(ty),
        ResourceType::Other(_) => &[],
    }
}

/// Looks up an attribute of `ty`, universal ones included; for a `<mgmtObj>` or its
/// announced variant, those of every served specialization too (see [`validate_mgmt`]
/// and [`announced::validate_mgmt`] for one specialization's).
pub fn find(ty: ResourceType, name: &str) -> Option<&'static AttrDef> {
    let mgmt = ty == ResourceType::MgmtObj || Some(ty) == ResourceType::MgmtObj.announced();
    table(ty)
        .iter()
        .chain(UNIVERSAL_RO.iter())
        .find(|d| d.name == name)
        .or_else(|| mgmt.then(|| mgmt::any_attr(name)).flatten())
}

/// Whether `name` is an attribute of `ty` (used by discovery attribute conditions).
pub fn is_attribute(ty: ResourceType, name: &str) -> bool {
    find(ty, name).is_some()
}

/// Which request the content belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Create,
    Update,
}

/// Checks a CREATE or UPDATE content object against `ty`'s attribute policy: unknown
/// attributes, not-permitted ones, wrong value types and missing mandatory ones are all
/// 4000 BAD_REQUEST (TS-0004 7.3.3.2 / 7.3.3.4; core-primitives.md §5 items 13-14).
pub fn validate(
    ty: ResourceType,
    phase: Phase,
    content: &Map<String, Value>,
) -> Result<(), RequestError> {
    check_content(ty.short_name(), table(ty), &[], phase, content)
}

/// [`validate`] for a `<mgmtObj>` of specialization `spec`: its attributes are the shared
/// ones and the specialization's; any other is 4000, as is setting both attributes of an
/// exclusive pair to true, and a `cmlk` naming what the specialization does not let it
/// (TS-0004 annex D).
pub fn validate_mgmt(
    spec: &mgmt::Spec,
    phase: Phase,
    content: &Map<String, Value>,
) -> Result<(), RequestError> {
    check_content(spec.name, MGO, spec.attrs, phase, content)?;
    mgmt::check_link_counts(spec, content)?;
    // The stored resource is the core's to add for an UPDATE (`types::mgmt_obj`).
    mgmt::check_whole(spec, None, content)?;
    let set = |name: &str| content.get(name).and_then(Value::as_bool) == Some(true);
    if let Some((x, y)) = spec.exclusive.iter().find(|(x, y)| set(x) && set(y)) {
        return Err(RequestError::bad_request(format!(
            "{x} and {y} cannot both be true"
        )));
    }
    Ok(())
}

/// The checks of [`validate`] against the attributes of `shared` and `own` (and the
/// universal ones); `label` names the type in messages.
fn check_content(
    label: &str,
    shared: &'static [AttrDef],
    own: &'static [AttrDef],
    phase: Phase,
    content: &Map<String, Value>,
) -> Result<(), RequestError> {
    let defs = || shared.iter().chain(own).chain(UNIVERSAL_RO.iter());
    for (name, value) in content {
        let def = defs().find(|d| d.name == name).ok_or_else(|| {
            RequestError::bad_request(format!("unknown attribute {name} for {label}"))
        })?;
        let presence = match phase {
            Phase::Create => def.create,
            Phase::Update => def.update,
        };
        if presence == NP {
            return Err(RequestError::bad_request(format!(
                "attribute {name} is not permitted"
            )));
        }
        if value.is_null() {
            // null asks for the creator in CREATE and removes an attribute in UPDATE.
            // An attribute a resource must have cannot be removed (TS-0004 7.3.3.4).
            let ok = match phase {
                Phase::Create => def.kind == Kind::CreatorNull,
                Phase::Update => presence != M && def.create != M,
            };
            if !ok {
                return Err(RequestError::bad_request(format!(
                    "attribute {name} cannot be null"
                )));
            }
            continue;
        }
        check_kind(name, def.kind, value)?;
    }
    if phase == Phase::Create {
        for def in shared.iter().chain(own).filter(|d| d.create == M) {
            if content.get(def.name).is_none_or(Value::is_null) {
                return Err(RequestError::bad_request(format!(
                    "mandatory attribute {} missing",
                    def.name
                )));
            }
        }
    }
    Ok(())
}

/// A non-empty list whose every element satisfies `ok`; `false` for anything else.
fn non_empty_all(value: &Value, ok: impl Fn(&Value) -> bool) -> bool {
    value
        .as_array()
        .is_some_and(|items| !items.is_empty() && items.iter().all(ok))
}

/// `m2m:eventCat`: 2 immediate, 3 bestEffort, 4 latest (`m2m:stdEventCats`) or a
/// user-defined category from 100 to 999 (TS-0004 6.3.3).
fn is_event_cat(value: &Value) -> bool {
    value
        .as_u64()
        .is_some_and(|n| (2..=4).contains(&n) || (100..=999).contains(&n))
}

/// A CMDH duration in milliseconds: -1 (infinite) or more.
fn is_millis(value: &Value) -> bool {
    value.as_i64().is_some_and(|n| n >= -1)
}

/// `m2m:listOfMinMax`: two [`is_millis`] values, the first not above the second, -1
/// as a maximum meaning no upper limit (TS-0004 6.3.3).
fn is_min_max(value: &Value) -> bool {
    let Some([min, max]) = value.as_array().map(Vec::as_slice) else {
        return false;
    };
    let (Some(min), Some(max)) = (min.as_i64(), max.as_i64()) else {
        return false;
    };
    let rank = |n: i64| if n == -1 { i64::MAX } else { n };
    is_millis(&Value::from(min)) && is_millis(&Value::from(max)) && rank(min) <= rank(max)
}

/// Each element of a list of strings satisfies `ok`; `false` for anything else.
fn all_strings(value: &Value, ok: impl Fn(&str) -> bool) -> bool {
    value
        .as_array()
        .is_some_and(|items| items.iter().all(|i| i.as_str().is_some_and(&ok)))
}

/// A label: a token, so not empty and free of white space and control characters.
fn is_label(label: &str) -> bool {
    !label.is_empty() && !label.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A serialization oneM2M defines, named by its plain media type or by one of the
/// `application/vnd.onem2m-…` types of that serialization (ACME lists those in the
/// `csz` of its `<remoteCSE>`; docs/decisions.md).
fn is_serialization(media: &str) -> bool {
    crate::wire::Serialization::ALL
        .iter()
        .any(|s| s.media_type() == media)
        || crate::wire::media::lookup(media).is_some()
}

/// A media type's `type` or `subtype`: an RFC 6838 restricted name.
fn is_media_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 127
        && chars.all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
}

/// `m2m:contentInfo`: a media type, then optionally `:` and an encoding type (0 plain,
/// 1 base64 of a string, 2 base64 of binary data), then optionally `:` and a content
/// security number.
fn is_content_info(cnf: &str) -> bool {
    let mut parts = cnf.split(':');
    let media_ok = parts
        .next()
        .and_then(|m| m.split_once('/'))
        .is_some_and(|(kind, subtype)| is_media_name(kind) && is_media_name(subtype));
    let encoding_ok = parts.next().is_none_or(|e| matches!(e, "0" | "1" | "2"));
    let security_ok = parts
        .next()
        .is_none_or(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
    media_ok && encoding_ok && security_ok && parts.next().is_none()
}

/// Checks one value against `kind` (4000 naming `name` when it does not match).
pub fn check_kind(name: &str, kind: Kind, value: &Value) -> Result<(), RequestError> {
    let ok = match kind {
        Kind::Str => value.is_string(),
        Kind::NonNegInt => value.is_u64(),
        Kind::PositiveInt => value.as_u64().is_some_and(|n| n >= 1),
        Kind::Int => value.is_i64() || value.is_u64(),
        Kind::Number => value.is_number(),
        Kind::Bool => value.is_boolean(),
        Kind::Timestamp => value.as_str().and_then(Timestamp::parse).is_some(),
        Kind::StrList => all_strings(value, |_| true),
        Kind::Labels => all_strings(value, is_label),
        Kind::Serializations => all_strings(value, is_serialization),
        Kind::ContentInfo => value.as_str().is_some_and(is_content_info),
        Kind::Object => value.is_object(),
        Kind::Any => true,
        Kind::CreatorNull => false,
        Kind::Originator => value
            .as_str()
            .is_some_and(|s| !s.is_empty() && !s.contains(['*', ' ', '\t', '\n'])),
        Kind::Range(lo, hi) => value.as_u64().is_some_and(|n| (lo..=hi).contains(&n)),
        Kind::Durations => all_strings(value, |d| crate::time::parse_duration(d).is_some()),
        Kind::LocationSource => value.as_u64().is_some_and(|n| (1..=3).contains(&n)),
        Kind::EventCat => is_event_cat(value),
        Kind::EventCats => non_empty_all(value, is_event_cat),
        Kind::EventCatsWithDef => {
            non_empty_all(value, |v| v.as_u64() == Some(0) || is_event_cat(v))
        }
        Kind::Millis => is_millis(value),
        Kind::MinMax => is_min_max(value),
        Kind::Booleans => value.as_array().is_some_and(|items| {
            (1..=2).contains(&items.len())
                && items.iter().all(Value::is_boolean)
                && items.first() != items.get(1)
        }),
        Kind::MgmtLinks => non_empty_all(value, mgmt::is_link_ref),
        Kind::BackOff => mgmt::is_back_off(value),
        Kind::Suids => mgmt::is_suids(value),
        Kind::WifiCredentials => mgmt::is_wifi_credentials(value),
        Kind::IpAddresses => mgmt::is_ip_addresses(value),
    };
    if ok {
        Ok(())
    } else {
        let range;
        let expected = match kind {
            Kind::Str => "a string",
            Kind::NonNegInt => "a non-negative integer",
            Kind::PositiveInt => "a positive integer",
            Kind::Int => "an integer",
            Kind::Number => "a number",
            Kind::Bool => "a boolean",
            Kind::Timestamp => "a timestamp",
            Kind::StrList => "a list of strings",
            Kind::Labels => "a list of tokens without white space or control characters",
            Kind::Serializations => "a list of JSON, CBOR or XML media types",
            Kind::ContentInfo => "a media type, then optionally :0, :1 or :2",
            Kind::Object => "an object",
            Kind::Any => "a value",
            Kind::CreatorNull => "null",
            Kind::Originator => "an AE-ID or CSE-ID",
            Kind::Range(lo, hi) => {
                range = format!("an integer from {lo} to {hi}");
                range.as_str()
            }
            Kind::Durations => "a list of durations",
            Kind::LocationSource => "1 (network-based), 2 (device-based) or 3 (sharing-based)",
            Kind::EventCat => "an event category (2 to 4, or 100 to 999)",
            Kind::EventCats => "a non-empty list of event categories (2 to 4, or 100 to 999)",
            Kind::EventCatsWithDef => {
                "a non-empty list of event categories (0 default, 2 to 4, or 100 to 999)"
            }
            Kind::Millis => "an integer of milliseconds from -1 (infinite)",
            Kind::MinMax => "two integers of milliseconds from -1 (infinite), the minimum first",
            Kind::Booleans => "a list of one or both of false and true",
            Kind::MgmtLinks => {
                "a non-empty list of {nm, typ, val} links (a resource name, a defined mgd, an address)"
            }
            Kind::BackOff => {
                "{bops: [...]} sets of nwa (1 to 5, optional), ibt, abt, mbt and rbt (optional) milliseconds"
            }
            Kind::Suids => "a non-empty list of distinct suid values (10-15, 21-25, 32-35, 40-45)",
            Kind::WifiCredentials => {
                "{enct: 1 to 8} with wepk for 2, wpap for 3 to 5, unm and/or pwd for 6 to 8, and nothing else"
            }
            Kind::IpAddresses => "a non-empty list of {ip4 and/or ip6} addresses",
        };
        Err(RequestError::bad_request(format!(
            "attribute {name} must be {expected}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn ts0004_7_3_3_2_create_checks() {
        let ok = obj(json!({"rn":"c","mni":10,"lbl":["a"],"cr":null}));
        assert!(validate(ResourceType::Container, Phase::Create, &ok).is_ok());
        for bad in [
            json!({"cni": 1}),
            json!({"mni": -1}),
            json!({"mni": "10"}),
            json!({"zzz": 1}),
            json!({"cr": "Cme"}),
            json!({"lbl": "a"}),
            json!({"et": "tomorrow"}),
        ] {
            assert!(
                validate(ResourceType::Container, Phase::Create, &obj(bad.clone())).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn ts0004_mandatory_attributes() {
        let ae = obj(json!({"api":"Nx","rr":true}));
        let e = validate(ResourceType::Ae, Phase::Create, &ae).unwrap_err();
        assert!(e.reason().contains("srv"));
        let cin = obj(json!({"cnf":"text/plain:0"}));
        assert!(validate(ResourceType::ContentInstance, Phase::Create, &cin).is_err());
    }

    #[test]
    fn ts0004_7_3_3_4_update_checks() {
        assert!(validate(
            ResourceType::Container,
            Phase::Update,
            &obj(json!({"mni":null}))
        )
        .is_ok());
        assert!(validate(
            ResourceType::Container,
            Phase::Update,
            &obj(json!({"rn":"x"}))
        )
        .is_err());
        assert!(validate(ResourceType::Ae, Phase::Update, &obj(json!({"api":"Nx"}))).is_err());
    }

    #[test]
    fn ts0004_6_3_3_labels_are_tokens() {
        let ok = obj(json!({"lbl": ["a", "key/value", "k:v", "ünï"]}));
        assert!(validate(ResourceType::Container, Phase::Create, &ok).is_ok());
        for bad in [
            json!({"lbl": ["two words"]}),
            json!({"lbl": [""]}),
            json!({"lbl": ["tab\there"]}),
            json!({"lbl": ["bell\u{7}"]}),
            json!({"lbl": ["ok", "new\nline"]}),
        ] {
            let e = validate(ResourceType::Container, Phase::Update, &obj(bad.clone()));
            assert!(e.unwrap_err().reason().contains("lbl"), "{bad}");
        }
    }

    #[test]
    fn ts0004_6_3_3_serializations_are_the_defined_media_types() {
        let ok = obj(json!({"csz": ["application/cbor", "application/json", "application/xml"]}));
        assert!(validate(ResourceType::Ae, Phase::Update, &ok).is_ok());
        // The oneM2M media types of a serialization name it too (as ACME sends them).
        let vnd = obj(
            json!({"csz": ["application/json", "application/vnd.onem2m-res+json",
            "application/vnd.onem2m-res+cbor", "application/vnd.onem2m-res+xml"]}),
        );
        assert!(validate(ResourceType::RemoteCse, Phase::Update, &vnd).is_ok());
        for bad in [
            json!({"csz": ["application/yaml"]}),
            json!({"csz": ["json"]}),
            json!({"csz": ["application/json", "text/plain"]}),
            json!({"csz": ["application/vnd.onem2m-res+yaml"]}),
            json!({"csz": "application/json"}),
        ] {
            assert!(
                validate(ResourceType::Ae, Phase::Update, &obj(bad.clone())).is_err(),
                "{bad}"
            );
            assert!(
                validate(ResourceType::RemoteCse, Phase::Update, &obj(bad.clone())).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn ts0004_6_3_3_content_info_format() {
        for good in [
            "text/plain:0",
            "application/json:1",
            "image/png:2",
            "application/json",
            "application/vnd.onem2m-res+json:0",
            "application/jose:0:1",
        ] {
            let c = obj(json!({"con": "x", "cnf": good}));
            assert!(
                validate(ResourceType::ContentInstance, Phase::Create, &c).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "text",
            "text/",
            "/plain",
            "text/plain:3",
            "text/plain:",
            "text/plain:0:",
            "text/plain:0:x",
            "text/plain:0:1:2",
            "text plain/x:0",
            "",
        ] {
            let c = obj(json!({"con": "x", "cnf": bad}));
            assert!(
                validate(ResourceType::ContentInstance, Phase::Create, &c).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn ts0004_7_3_3_4_a_mandatory_attribute_cannot_be_removed() {
        for (ty, name) in [
            (ResourceType::DynamicAuthorizationConsultation, "dae"),
            (ResourceType::DynamicAuthorizationConsultation, "dap"),
            (ResourceType::Ae, "rr"),
            (ResourceType::Subscription, "nu"),
        ] {
            let e = validate(ty, Phase::Update, &obj(json!({ name: null }))).unwrap_err();
            assert!(e.reason().contains(name), "{name}");
        }
        // An optional one can.
        let dal = obj(json!({"dal": null}));
        assert!(validate(
            ResourceType::DynamicAuthorizationConsultation,
            Phase::Update,
            &dal
        )
        .is_ok());
    }

    #[test]
    fn ts0004_7_4_dac_mandatory_attributes() {
        let dac = |v: Value| {
            validate(
                ResourceType::DynamicAuthorizationConsultation,
                Phase::Create,
                &obj(v),
            )
        };
        assert!(dac(json!({"dae": true, "dap": ["http://das.example"]})).is_ok());
        assert!(dac(json!({"dap": ["http://das.example"]})).is_err());
        assert!(dac(json!({"dae": true})).is_err());
        assert!(dac(json!({"dae": "yes", "dap": ["http://das.example"]})).is_err());
    }
}
