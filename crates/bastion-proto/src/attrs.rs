//! Attribute policies (TS-0004 §7.4; core-resources.md §2-§4): for every implemented
//! resource type, which attributes exist, their data type, and whether a CREATE or UPDATE
//! request must, may or must not carry them. Validation here is purely syntactic; rules
//! that need the resource tree (limits against the parent, uniqueness) live in the core.

use crate::error::RequestError;
use crate::time::Timestamp;
use crate::types::ResourceType;
use serde_json::{Map, Value};

/// How an attribute's value is typed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    NonNegInt,
    Bool,
    Timestamp,
    StrList,
    /// A JSON object (complex type) validated elsewhere or opaque.
    Object,
    /// Any JSON value (`con`).
    Any,
    /// `cr`: only `null` is allowed in a CREATE.
    CreatorNull,
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
    a("lbl", Kind::StrList, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("apn", Kind::Str, O, O),
    a("api", Kind::Str, M, NP),
    a("aei", Kind::Str, NP, NP),
    a("poa", Kind::StrList, O, O),
    a("or", Kind::Str, O, O),
    a("nl", Kind::Str, O, O),
    a("rr", Kind::Bool, M, O),
    a("csz", Kind::StrList, O, O),
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
    a("lbl", Kind::StrList, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
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
    a("lbl", Kind::StrList, O, NP),
    a("at", Kind::StrList, O, NP),
    a("aa", Kind::StrList, O, NP),
    a("cr", Kind::CreatorNull, O, NP),
    a("st", Kind::NonNegInt, NP, NP),
    a("cnf", Kind::Str, O, NP),
    a("cs", Kind::NonNegInt, NP, NP),
    a("conr", Kind::Str, O, NP),
    a("or", Kind::Str, O, NP),
    a("con", Kind::Any, M, NP),
    a("dgt", Kind::Timestamp, O, NP),
];

const ACP: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("pv", Kind::Object, M, O),
    a("pvs", Kind::Object, M, O),
    a("adri", Kind::StrList, O, O),
    a("apri", Kind::StrList, O, O),
    a("airi", Kind::StrList, O, O),
];

/// `<group>` (TS-0001 9.6.13; core-resources.md §3.8). Fan-out is not offered yet, so
/// `nar` is not accepted.
const GRP: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::StrList, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
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
];

/// `<role>` (TS-0001 9.6.38; TS-0003 7.4): the role attributes are write-once.
const ROL: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::StrList, O, O),
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
    a("lbl", Kind::StrList, O, O),
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
    a("lbl", Kind::StrList, O, O),
    a("acpi", Kind::StrList, O, O),
    a("at", Kind::StrList, O, O),
    a("aa", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
    a("cr", Kind::CreatorNull, O, NP),
    a("dae", Kind::Bool, M, O),
    a("dap", Kind::StrList, M, O),
    a("dal", Kind::Timestamp, O, O),
];

/// `<subscription>` (TS-0001 9.6.8; core-resources.md §3.7). Complex members (`enc`,
/// `bn`, `rl`) are checked by the core.
const SUB: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::StrList, O, O),
    a("acpi", Kind::StrList, O, O),
    a("daci", Kind::StrList, O, O),
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
];

/// `<pollingChannel>` (TS-0001 9.6.21; core-resources.md §3.10).
const PCH: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::StrList, O, O),
];

/// `<remoteCSE>` (TS-0001 9.6.4; core-resources.md §3.9).
const CSR: &[AttrDef] = &[
    a("rn", Kind::Str, O, NP),
    a("et", Kind::Timestamp, O, O),
    a("lbl", Kind::StrList, O, O),
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
    a("csz", Kind::StrList, O, O),
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
    a("lbl", Kind::StrList, NP, NP),
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
    a("lbl", Kind::StrList, NP, NP),
    a("acpi", Kind::StrList, NP, NP),
    a("cst", Kind::NonNegInt, NP, NP),
    a("csi", Kind::Str, NP, NP),
    a("srt", Kind::Object, NP, NP),
    a("poa", Kind::StrList, NP, NP),
    a("csz", Kind::StrList, NP, NP),
    a("srv", Kind::StrList, NP, NP),
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
        ResourceType::Role => ROL,
        ResourceType::Token => TK,
        ResourceType::DynamicAuthorizationConsultation => DAC,
        ResourceType::Subscription => SUB,
        ResourceType::PollingChannel => PCH,
        ResourceType::RemoteCse => CSR,
        ResourceType::Request => REQ,
        ResourceType::Other(_) => &[],
    }
}

/// Looks up an attribute of `ty`, universal ones included.
pub fn find(ty: ResourceType, name: &str) -> Option<&'static AttrDef> {
    table(ty)
        .iter()
        .chain(UNIVERSAL_RO.iter())
        .find(|d| d.name == name)
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
    for (name, value) in content {
        let def = find(ty, name).ok_or_else(|| {
            RequestError::bad_request(format!("unknown attribute {name} for {}", ty.short_name()))
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
            let ok = match phase {
                Phase::Create => def.kind == Kind::CreatorNull,
                Phase::Update => presence != M,
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
        for def in table(ty).iter().filter(|d| d.create == M) {
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

fn check_kind(name: &str, kind: Kind, value: &Value) -> Result<(), RequestError> {
    let ok = match kind {
        Kind::Str => value.is_string(),
        Kind::NonNegInt => value.is_u64(),
        Kind::Bool => value.is_boolean(),
        Kind::Timestamp => value.as_str().and_then(Timestamp::parse).is_some(),
        Kind::StrList => value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string)),
        Kind::Object => value.is_object(),
        Kind::Any => true,
        Kind::CreatorNull => false,
    };
    if ok {
        Ok(())
    } else {
        let expected = match kind {
            Kind::Str => "a string",
            Kind::NonNegInt => "a non-negative integer",
            Kind::Bool => "a boolean",
            Kind::Timestamp => "a timestamp",
            Kind::StrList => "a list of strings",
            Kind::Object => "an object",
            Kind::Any => "a value",
            Kind::CreatorNull => "null",
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
}
