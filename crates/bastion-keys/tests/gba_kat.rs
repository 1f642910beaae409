//! Known-answer tests of the GBA derivations (3GPP TS 33.220 Annex B, B-TID, the TS 33.222
//! PSK identity) against `tests/data/gba.json`, computed by an independent implementation
//! (see its `about` field), not by this crate.

use bastion_keys::gba::{derive_ks_naf, kdf, BTid, BootstrapKey, NafId, UaProtocolId};
use bastion_keys::hex;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    kdf: Vec<KdfVector>,
    ks_naf: Vec<KsNafVector>,
    btid: Vec<BtidVector>,
}

#[derive(Deserialize)]
struct KdfVector {
    key: String,
    fc: u8,
    params: Vec<String>,
    out: String,
}

#[derive(Deserialize)]
struct KsNafVector {
    ks: String,
    rand: String,
    impi: String,
    naf_fqdn: String,
    ua: String,
    naf_id: String,
    ks_naf: String,
}

#[derive(Deserialize)]
struct BtidVector {
    rand: String,
    bsf_domain: String,
    btid: String,
    psk_identity: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("data/gba.json")).expect("gba.json parses")
}

fn bytes(text: &str) -> Vec<u8> {
    hex::decode(text).expect("hex").to_vec()
}

fn rand(text: &str) -> [u8; 16] {
    bytes(text).try_into().expect("16-byte RAND")
}

#[test]
fn the_generic_kdf_matches_its_vectors() {
    let vectors = vectors().kdf;
    assert_eq!(vectors.len(), 3);
    for v in vectors {
        let params: Vec<Vec<u8>> = v.params.iter().map(|p| bytes(p)).collect();
        let refs: Vec<&[u8]> = params.iter().map(Vec::as_slice).collect();
        let out = kdf(&bytes(&v.key), v.fc, &refs).expect("kdf");
        assert_eq!(out.to_hex().as_str(), v.out);
    }
}

#[test]
fn ks_naf_matches_its_vectors() {
    let vectors = vectors().ks_naf;
    assert_eq!(vectors.len(), 4);
    for v in vectors {
        let ua = UaProtocolId::from_slice(&bytes(&v.ua)).expect("ua");
        let naf_id = NafId::new(&v.naf_fqdn, ua).expect("NAF_Id");
        assert_eq!(hex::encode(&naf_id.to_bytes()), v.naf_id);
        let ks = BootstrapKey::from_slice(&bytes(&v.ks)).expect("Ks");
        let key = derive_ks_naf(&ks, &rand(&v.rand), &v.impi, &naf_id).expect("Ks_NAF");
        assert_eq!(key.to_hex().as_str(), v.ks_naf, "{}", v.naf_fqdn);
        // What the BSF receives over Zn splits back into the same NAF_Id.
        assert_eq!(NafId::from_bytes(&bytes(&v.naf_id)).expect("split"), naf_id);
    }
}

#[test]
fn the_ua_identifiers_bastion_names_have_their_annex_h_octets() {
    let vectors = vectors().ks_naf;
    assert_eq!(
        hex::encode(UaProtocolId::ONEM2M_DEFAULT.as_bytes()),
        vectors[0].ua
    );
    assert_eq!(
        hex::encode(UaProtocolId::TLS13_SHARED_KEY.as_bytes()),
        vectors[1].ua
    );
}

#[test]
fn btid_and_psk_identity_match_their_vectors() {
    let vectors = vectors().btid;
    assert_eq!(vectors.len(), 3);
    for v in vectors {
        let btid = BTid::new(rand(&v.rand), &v.bsf_domain).expect("B-TID");
        assert_eq!(btid.to_string(), v.btid);
        assert_eq!(btid.psk_identity().expect("identity"), v.psk_identity);
        assert_eq!(BTid::parse(&v.btid).expect("parse"), btid);
        assert_eq!(
            BTid::from_psk_identity(&v.psk_identity).expect("identity parse"),
            btid
        );
        assert_eq!(hex::encode(btid.rand()), v.rand);
    }
}
