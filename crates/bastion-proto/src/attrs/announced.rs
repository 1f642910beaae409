//! Attribute policies of the announced variants (TS-0001 9.6.26; TS-0004 7.4, the
//! `…Annc` tables): the attributes every announced resource has (`lnk` mandatory) and
//! the original's own attributes, which the announcing CSE copies when they are
//! announced (MA) or listed in the original's `aa` (OA). The tables are derived from the
//! originals' so both stay one definition.

use super::Kind::{Labels, Range, Str, StrList, Timestamp};
use super::Presence::{Mandatory as M, NotPermitted as NP, Optional as O};
use super::{table as original_table, AttrDef};
use crate::types::ResourceType;
use std::sync::LazyLock;

use super::a;

/// What every announced resource has beside the universal attributes. `lnk` may be
/// updated: an MN-CSE marks an S-type AE's copy `INACTIVE` when it deregisters.
const COMMON: &[AttrDef] = &[
    a("rn", Str, O, NP),
    a("et", Timestamp, O, O),
    a("lbl", Labels, O, O),
    a("acpi", StrList, O, O),
    a("daci", StrList, O, O),
    a("lnk", Str, M, O),
    // announceSyncType (R4): 1 uni-directional, 2 bi-directional.
    a("ast", Range(1, 2), O, O),
];

/// Attributes of the original that are never announced (NA): the announcement's own
/// settings and the creator.
const NOT_ANNOUNCED: &[&str] = &["at", "aa", "cr"];

/// The policy of the announced variant of `original`: [`COMMON`], then every announced
/// attribute of the original as optional (the announcing CSE sends what it announces;
/// an instance's variant, like the instance, never changes).
fn derive(original: ResourceType) -> Vec<AttrDef> {
    let update = if original.is_instance() || original == ResourceType::ContentInstance {
        NP
    } else {
        O
    };
    let own = original_table(original)
        .iter()
        .filter(|d| !NOT_ANNOUNCED.contains(&d.name) && !COMMON.iter().any(|c| c.name == d.name))
        .map(|d| a(d.name, d.kind, O, update));
    COMMON.iter().copied().chain(own).collect()
}

static TABLES: LazyLock<Vec<(u16, Vec<AttrDef>)>> = LazyLock::new(|| {
    crate::types::announced::all()
        .filter_map(|ty| Some((ty.number(), derive(ty.original()?))))
        .collect()
});

/// The tables of the `<mgmtObjAnnc>` of each specialization (`mgd`): that of the
/// generic variant, then the specialization's own attributes, optional, except those
/// holding a write-only value (`wcrds`, `crse`): a copy never carries a secret, whoever
/// made it (4000, as `aa` naming one is at the original).
static MGMT_TABLES: LazyLock<Vec<(u64, Vec<AttrDef>)>> = LazyLock::new(|| {
    super::mgmt::SPECS
        .iter()
        .map(|spec| {
            let mut t = derive(ResourceType::MgmtObj);
            t.extend(
                spec.attrs
                    .iter()
                    .filter(|d| !super::mgmt::holds_secret(spec, d.name))
                    .map(|d| a(d.name, d.kind, O, O)),
            );
            (spec.mgd, t)
        })
        .collect()
});

/// Checks the content of a CREATE or UPDATE of a `<mgmtObjAnnc>` of specialization
/// `spec` against its attributes (those of every announced variant, the shared
/// `<mgmtObj>` ones and the specialization's): 4000 as for [`super::validate`].
pub fn validate_mgmt(
    spec: &super::mgmt::Spec,
    phase: super::Phase,
    content: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), crate::RequestError> {
    let table = MGMT_TABLES
        .iter()
        .find(|(mgd, _)| *mgd == spec.mgd)
        .map_or(&[][..], |(_, t)| t.as_slice());
    super::check_content(spec.name, table, &[], phase, content)
}

/// The attribute table of announced variant `ty`; empty for any other type.
pub fn table(ty: ResourceType) -> &'static [AttrDef] {
    TABLES
        .iter()
        .find(|(n, _)| *n == ty.number())
        .map_or(&[], |(_, t)| t.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{validate, Phase};
    use serde_json::{json, Map, Value};

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn ts0001_9_6_26_lnk_is_mandatory_and_originals_attributes_are_optional() {
        let ae = ResourceType::Ae.announced().unwrap();
        let ok = obj(json!({"lnk": "/id-mn/CAE1", "api": "Nx", "rr": true, "srv": ["3"]}));
        assert!(validate(ae, Phase::Create, &ok).is_ok());
        assert!(validate(ae, Phase::Create, &obj(json!({"api": "Nx"}))).is_err());
        // Never announced: the announcement settings and the creator.
        for bad in [
            json!({"lnk": "/id-mn/x", "at": ["/id-in"]}),
            json!({"lnk": "/id-mn/x", "cr": null}),
        ] {
            assert!(validate(ae, Phase::Create, &obj(bad)).is_err());
        }
        // Typed as in the original.
        let bad = obj(json!({"lnk": "/id-mn/x", "rr": "yes"}));
        assert!(validate(ae, Phase::Create, &bad).is_err());
        let cin = ResourceType::ContentInstance.announced().unwrap();
        assert!(validate(
            cin,
            Phase::Create,
            &obj(json!({"lnk": "/id-mn/c", "con": "21"}))
        )
        .is_ok());
        assert!(validate(cin, Phase::Update, &obj(json!({"con": "22"}))).is_err());
        let cnt = ResourceType::Container.announced().unwrap();
        assert!(validate(cnt, Phase::Update, &obj(json!({"mni": 5, "lbl": ["a"]}))).is_ok());
    }

    #[test]
    fn ts0004_8_2_4_announced_mgmt_obj_has_its_specializations_attributes() {
        let fw = crate::attrs::mgmt::spec(1001).unwrap();
        // None mandatory but `lnk`: the copy holds what the original announces.
        let ok = obj(json!({"lnk": "/id-mn/fw", "mgd": 1001, "vr": "1", "dc": "d"}));
        assert!(validate_mgmt(fw, Phase::Create, &ok).is_ok());
        assert!(validate_mgmt(fw, Phase::Create, &obj(json!({"vr": "1"}))).is_err());
        // Another specialization's attribute, a wrong type.
        for bad in [
            json!({"lnk": "/id-mn/fw", "btl": 5}),
            json!({"lnk": "/id-mn/fw", "ud": "no"}),
        ] {
            assert!(validate_mgmt(fw, Phase::Create, &obj(bad)).is_err());
        }
        assert!(validate_mgmt(fw, Phase::Update, &obj(json!({"vr": "2"}))).is_ok());
    }

    #[test]
    fn ts0003_an_announced_mgmt_obj_never_carries_a_write_only_value() {
        let wific = crate::attrs::mgmt::spec(1028).unwrap();
        let phase = crate::attrs::Phase::Create;
        let secret = obj(json!({"lnk": "/id-mn/w1", "mgd": 1028,
            "wcrds": {"enct": 3, "wpap": "passphrase"}}));
        assert!(validate_mgmt(wific, phase, &secret).is_err());
        let plain = obj(json!({"lnk": "/id-mn/w1", "mgd": 1028}));
        assert!(validate_mgmt(wific, phase, &plain).is_ok());
    }
}
