//! Known-answer tests: every derivation and the exporter split against the fixed vectors
//! in `tests/data/kat.json`, which were computed by an independent implementation (see
//! its `about` field), not by this crate.

use bastion_keys::{
    derive_km, derive_kpsa, derive_kuc, hex, EnrolmentKey, ExportedKey, KeyIdentifier, Suid,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Kat {
    derivations: Vec<Derivation>,
    split: Vec<Split>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Derivation {
    Km {
        ke: String,
        maf_id: String,
        key: String,
    },
    Kpsa {
        ke: String,
        enrolee_id: String,
        key: String,
    },
    Kuc {
        ke: String,
        suid: u32,
        target_id: String,
        key: String,
    },
}

#[derive(Deserialize)]
struct Split {
    export: String,
    fqdn: String,
    key_id: String,
    key: String,
    key_identifier: String,
    km_maf_id: String,
    km: String,
}

fn kat() -> Kat {
    let text = include_str!("data/kat.json");
    serde_json::from_str(text).expect("kat.json parses")
}

fn ke(hex_text: &str) -> EnrolmentKey {
    let bytes = hex::decode(hex_text).expect("hex Ke");
    EnrolmentKey::from_slice(&bytes).expect("32-byte Ke")
}

#[test]
fn every_derivation_matches_its_vector() {
    let vectors = kat().derivations;
    assert!(vectors.len() >= 8, "the data file lost vectors");
    for vector in vectors {
        let (got, want) = match &vector {
            Derivation::Km { ke: k, maf_id, key } => (derive_km(&ke(k), maf_id), key),
            Derivation::Kpsa {
                ke: k,
                enrolee_id,
                key,
            } => (derive_kpsa(&ke(k), enrolee_id), key),
            Derivation::Kuc {
                ke: k,
                suid,
                target_id,
                key,
            } => {
                let suid = Suid::from_code(*suid).expect("defined SUID");
                (derive_kuc(&ke(k), suid, target_id), key)
            }
        };
        assert_eq!(got.expect("derivation").to_hex().as_str(), want.as_str());
    }
}

#[test]
fn export_split_key_identifier_and_chained_km_match() {
    for vector in kat().split {
        let raw = hex::decode(&vector.export).unwrap();
        let split = ExportedKey::split(&raw).unwrap();
        assert_eq!(hex::encode(split.key_id()), vector.key_id);
        assert_eq!(hex::encode(split.key()), vector.key);
        let id = split.key_identifier(&vector.fqdn).unwrap();
        assert_eq!(id.to_string(), vector.key_identifier);
        assert_eq!(KeyIdentifier::parse(&vector.key_identifier).unwrap(), id);
        let km = derive_km(&split.enrolment_key(), &vector.km_maf_id).unwrap();
        assert_eq!(km.to_hex().as_str(), vector.km);
    }
}
