//! The KeyStore contract, one test function per rule, run against every store
//! (`file_store.rs`, `pkcs11_softhsm.rs`). Each function takes a name prefix unique to
//! the run, since a token keeps its objects between runs.

use std::path::Path;
use std::process::Command;

use bastion_keys::{derive_km, hex, DerivationInput, EnrolmentKey, Suid};
use bastion_keystore::{ExportPolicy, KeyKind, KeyName, KeyStore, KeyStoreError, SecretKey};
use bastion_tls::certs::{self, Subject, Validity};

/// A prefix no earlier run used: process ID and the time in nanoseconds.
pub fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{}-{nanos}", std::process::id())
}

fn name(prefix: &str, what: &str) -> KeyName {
    KeyName::new(&format!("{prefix}-{what}")).unwrap()
}

/// The known-answer vectors of bastion-keys (computed outside Bastion).
fn kat() -> serde_json::Value {
    let text = include_str!("../../../bastion-keys/tests/data/kat.json");
    serde_json::from_str(text).unwrap()
}

/// Km, Kpsa and Kuc derived inside the store from a Ke imported non-exportable equal
/// the vectors, and equal bastion_keys's own derivation; Ke cannot be exported.
pub fn derivations_inside_match_the_vectors(store: &dyn KeyStore, prefix: &str) {
    let vectors = kat();
    for (i, vector) in vectors["derivations"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let ke_bytes = hex::decode(vector["ke"].as_str().unwrap()).unwrap();
        let ke_name = name(prefix, &format!("ke{i}"));
        let info = store
            .import_secret(
                &ke_name,
                &SecretKey::new(&ke_bytes).unwrap(),
                ExportPolicy::NonExportable,
            )
            .unwrap();
        assert_eq!(info.kind, KeyKind::Secret { len: 32 });
        assert_eq!(info.export, ExportPolicy::NonExportable);
        let input = match vector["kind"].as_str().unwrap() {
            "km" => DerivationInput::km(vector["maf_id"].as_str().unwrap()),
            "kpsa" => DerivationInput::kpsa(vector["enrolee_id"].as_str().unwrap()),
            "kuc" => DerivationInput::kuc(
                Suid::from_code(vector["suid"].as_u64().unwrap() as u32).unwrap(),
                vector["target_id"].as_str().unwrap(),
            ),
            other => panic!("unknown kind {other}"),
        }
        .unwrap();
        let inside = store.derive(&ke_name, &input).unwrap();
        assert_eq!(
            &*inside.to_hex(),
            vector["key"].as_str().unwrap(),
            "vector {i}"
        );
        let outside = input.derive(&EnrolmentKey::from_slice(&ke_bytes).unwrap());
        assert_eq!(inside, outside);
        if vector["kind"] == "km" {
            let km = derive_km(
                &EnrolmentKey::from_slice(&ke_bytes).unwrap(),
                vector["maf_id"].as_str().unwrap(),
            )
            .unwrap();
            assert_eq!(inside, km);
        }
        let refused = store.export_secret(&ke_name).unwrap_err();
        assert_eq!(
            refused.to_string(),
            format!("key \"{ke_name}\" is non-exportable: it is used only inside the store")
        );
        store.delete(&ke_name).unwrap();
    }
}

/// An exportable secret comes back byte for byte; a generated one has the asked length
/// and MACs like the same bytes MACed by OpenSSL.
pub fn exportable_secrets_leave_and_mac_as_openssl_does(store: &dyn KeyStore, prefix: &str) {
    let psk = name(prefix, "psk");
    let bytes: Vec<u8> = (0u8..24).collect();
    store
        .import_secret(
            &psk,
            &SecretKey::new(&bytes).unwrap(),
            ExportPolicy::Exportable,
        )
        .unwrap();
    assert_eq!(store.export_secret(&psk).unwrap().expose(), &bytes[..]);

    let generated = name(prefix, "gen");
    let info = store
        .generate_secret(&generated, 48, ExportPolicy::Exportable)
        .unwrap();
    assert_eq!(info.kind, KeyKind::Secret { len: 48 });
    let exported = store.export_secret(&generated).unwrap();
    assert_eq!(exported.expose().len(), 48);
    let key = openssl::pkey::PKey::hmac(exported.expose()).unwrap();
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    signer.update(b"message").unwrap();
    let expected = signer.sign_to_vec().unwrap();
    assert_eq!(
        &store
            .hmac_sha256(&generated, b"message")
            .unwrap()
            .as_bytes()[..],
        &expected[..]
    );
    assert!(matches!(
        store.generate_secret(&name(prefix, "short"), 15, ExportPolicy::Exportable),
        Err(KeyStoreError::InvalidSecretLength(15))
    ));
    store.delete(&psk).unwrap();
    store.delete(&generated).unwrap();
}

/// A P-256 key generated in the store signs a CSR that `openssl req -verify` accepts and
/// a CA turns into a certificate naming the identity; the private key never leaves.
pub fn p256_key_signs_a_csr_openssl_verifies(store: &dyn KeyStore, prefix: &str, dir: &Path) {
    let key = name(prefix, "tls");
    let public = store.generate_p256(&key).unwrap();
    assert_eq!(store.public_key(&key).unwrap(), public);
    let subject = Subject::onem2m("//sp.example.com/id-in/Cdevice01").unwrap();
    let csr = store.create_csr(&key, &subject).unwrap();
    let path = dir.join(format!("{key}.csr"));
    std::fs::write(&path, &csr).unwrap();
    let out = Command::new("openssl")
        .args(["req", "-verify", "-noout", "-in"])
        .arg(&path)
        .output()
        .expect("the openssl command runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl req -verify: {said}");
    assert!(said.contains("verify OK"), "{said}");
    // The request carries the store's public key.
    let req = openssl::x509::X509Req::from_pem(csr.as_bytes()).unwrap();
    assert_eq!(
        req.public_key().unwrap().public_key_to_der().unwrap(),
        public.spki_der()
    );
    let ca = certs::create_ca("Keystore test CA", Validity::days(1)).unwrap();
    let cert = certs::sign_csr(&ca, &csr, &[], Validity::days(1)).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        store.export_secret(&key).unwrap_err().to_string(),
        format!("key \"{key}\" is not a secret key")
    );
    store.delete(&key).unwrap();
    assert_eq!(
        store.public_key(&key).unwrap_err().to_string(),
        format!("no key \"{key}\"")
    );
}

/// Names are unique, listed with their kind and export policy, and gone once deleted.
pub fn names_list_and_delete(store: &dyn KeyStore, prefix: &str) {
    let a = name(prefix, "a");
    let b = name(prefix, "b");
    store
        .generate_secret(&a, 32, ExportPolicy::NonExportable)
        .unwrap();
    store.generate_p256(&b).unwrap();
    assert_eq!(
        store
            .generate_secret(&a, 32, ExportPolicy::Exportable)
            .unwrap_err()
            .to_string(),
        format!("key \"{a}\" already exists")
    );
    assert!(matches!(
        store.generate_p256(&a),
        Err(KeyStoreError::AlreadyExists(_))
    ));
    let mine: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .filter(|k| k.name.as_str().starts_with(prefix))
        .map(|k| (k.name.to_string(), k.kind, k.export))
        .collect();
    assert_eq!(
        mine,
        vec![
            (
                a.to_string(),
                KeyKind::Secret { len: 32 },
                ExportPolicy::NonExportable
            ),
            (b.to_string(), KeyKind::EcP256, ExportPolicy::NonExportable),
        ]
    );
    assert_eq!(
        store.hmac_sha256(&b, b"x").unwrap_err().to_string(),
        format!("key \"{b}\" is not a secret key")
    );
    assert_eq!(
        store.sign_digest(&a, &[0; 32]).unwrap_err().to_string(),
        format!("key \"{a}\" is not an EC P-256 key")
    );
    store.delete(&a).unwrap();
    store.delete(&b).unwrap();
    assert_eq!(
        store.delete(&a).unwrap_err().to_string(),
        format!("no key \"{a}\"")
    );
    assert!(!store
        .list()
        .unwrap()
        .iter()
        .any(|k| k.name.as_str().starts_with(prefix)));
}
