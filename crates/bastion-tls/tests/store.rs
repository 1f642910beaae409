//! The credential store on disk: round trip, file mode, wrong key, tampering, and that
//! listing never exposes key material.

use std::os::unix::fs::PermissionsExt;

use bastion_tls::{Binding, CredentialError, CredentialKind, CredentialRegistry, PskKey, StoreKey};

const KEY_HEX: &str = "00112233445566778899aabbccddeeff0011223344556677";

fn setup() -> (tempfile::TempDir, std::path::PathBuf, StoreKey) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.bin");
    (dir, path, StoreKey::generate().unwrap())
}

#[test]
fn round_trip_survives_reopen() {
    let (_dir, path, key) = setup();
    let reg = CredentialRegistry::open(&path, key.clone()).unwrap();
    reg.add_psk(
        "ae1@sp.example.com",
        PskKey::from_hex(KEY_HEX).unwrap(),
        Some(Binding::ae("Cae1").unwrap()),
    )
    .unwrap();
    reg.add_psk(
        "cse1@sp.example.com",
        PskKey::from_hex(KEY_HEX).unwrap(),
        None,
    )
    .unwrap();
    reg.revoke("cse1@sp.example.com").unwrap();
    drop(reg);

    let reg = CredentialRegistry::open(&path, key).unwrap();
    let (k, binding) = reg.lookup_psk("ae1@sp.example.com").unwrap();
    assert_eq!(k.to_hex().as_str(), KEY_HEX);
    assert_eq!(binding, Binding::Ae("Cae1".into()));
    assert!(reg.lookup_psk("cse1@sp.example.com").is_none());
    assert!(reg.is_revoked("cse1@sp.example.com"));
    assert!(!reg.is_revoked("ae1@sp.example.com"));
    let list = reg.list();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].credential, "cse1@sp.example.com");
    assert_eq!(
        list[1].binding,
        Binding::CredentialId("12-cse1@sp.example.com".into())
    );
    assert!(list[1].revoked);
    assert_eq!(list[0].kind, CredentialKind::Psk);
    assert!(matches!(
        reg.add_psk(
            "ae1@sp.example.com",
            PskKey::from_hex(KEY_HEX).unwrap(),
            None
        ),
        Err(CredentialError::AlreadyExists(_))
    ));
    assert!(matches!(
        reg.revoke("none@sp.example.com"),
        Err(CredentialError::NotFound(_))
    ));
}

#[test]
fn file_is_0600_and_contains_no_plaintext() {
    let (_dir, path, key) = setup();
    let reg = CredentialRegistry::open(&path, key).unwrap();
    reg.add_psk(
        "ae1@sp.example.com",
        PskKey::from_hex(KEY_HEX).unwrap(),
        None,
    )
    .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("ae1@sp.example.com"));
    assert!(!text.contains(KEY_HEX));
    assert!(bytes.starts_with(b"BSTNCRD1"));
    // No temp files left behind.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );
}

#[test]
fn wrong_key_and_tampering_are_refused() {
    let (_dir, path, key) = setup();
    let reg = CredentialRegistry::open(&path, key.clone()).unwrap();
    reg.add_psk(
        "ae1@sp.example.com",
        PskKey::from_hex(KEY_HEX).unwrap(),
        None,
    )
    .unwrap();
    drop(reg);
    let wrong = StoreKey::generate().unwrap();
    assert!(matches!(
        CredentialRegistry::open(&path, wrong),
        Err(CredentialError::Decrypt(_))
    ));

    let original = std::fs::read(&path).unwrap();
    let mut tampered = original.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    std::fs::write(&path, &tampered).unwrap();
    assert!(matches!(
        CredentialRegistry::open(&path, key.clone()),
        Err(CredentialError::Decrypt(_))
    ));

    std::fs::write(&path, &original[..20]).unwrap();
    assert!(matches!(
        CredentialRegistry::open(&path, key.clone()),
        Err(CredentialError::NotAStore(_))
    ));
    std::fs::write(&path, &original).unwrap();
    assert!(CredentialRegistry::open(&path, key).is_ok());
}

#[test]
fn list_and_debug_never_show_key_bytes() {
    let (_dir, path, key) = setup();
    let reg = CredentialRegistry::open(&path, key).unwrap();
    reg.add_psk(
        "ae1@sp.example.com",
        PskKey::from_hex(KEY_HEX).unwrap(),
        None,
    )
    .unwrap();
    let listed = format!(
        "{:?} {}",
        reg.list(),
        serde_json::to_string(&reg.list()).unwrap()
    );
    assert!(listed.contains("ae1@sp.example.com"));
    assert!(!listed.to_lowercase().contains("00112233"));
    let (k, _) = reg.lookup_psk("ae1@sp.example.com").unwrap();
    assert_eq!(format!("{k:?}"), "PskKey(<24 bytes redacted>)");
    assert!(!format!("{reg:?}").contains("00112233"));
}

#[test]
fn key_file_permissions_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.key");
    std::fs::write(&file, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(
        StoreKey::from_key_file(&file),
        Err(CredentialError::KeyFilePermissions(_))
    ));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = StoreKey::from_key_file(&file).unwrap();
    assert_eq!(key.to_hex().as_str(), "ab".repeat(32));
    std::fs::write(&file, "abcd").unwrap();
    assert!(matches!(
        StoreKey::from_key_file(&file),
        Err(CredentialError::BadStoreKey)
    ));
}

#[test]
fn another_handle_sees_changes_after_reload() {
    let (_dir, path, key) = setup();
    let server = CredentialRegistry::open(&path, key.clone()).unwrap();
    let admin = CredentialRegistry::open(&path, key).unwrap();
    admin
        .add_psk(
            "ae1@sp.example.com",
            PskKey::from_hex(KEY_HEX).unwrap(),
            None,
        )
        .unwrap();
    assert!(server.lookup_psk("ae1@sp.example.com").is_none());
    assert!(server.reload_if_changed().unwrap());
    assert!(server.lookup_psk("ae1@sp.example.com").is_some());
    assert!(!server.reload_if_changed().unwrap());
    admin.revoke("ae1@sp.example.com").unwrap();
    assert!(server.reload_if_changed().unwrap());
    assert!(server.is_revoked("ae1@sp.example.com"));
}

#[test]
fn invalid_inputs_are_refused() {
    let (_dir, path, key) = setup();
    let reg = CredentialRegistry::open(&path, key).unwrap();
    let k = || PskKey::from_hex(KEY_HEX).unwrap();
    assert!(matches!(
        reg.add_psk("no-at-sign", k(), None),
        Err(CredentialError::InvalidKpsaId(_))
    ));
    assert!(matches!(
        reg.add_psk("a@b.c", k(), Some(Binding::Ae("bad".into()))),
        Err(CredentialError::Identity(_))
    ));
    assert!(matches!(
        reg.pin_raw_public_key("ni:///md5;AA", Binding::Ae("Cx".into())),
        Err(CredentialError::Identity(_))
    ));
    assert!(reg.list().is_empty());
}

/// TS-0003 8.2.1: the key a peer CSE presents here is the one used to reach it; an AE's
/// key or a key bound to another CSE never is, and a revoked one is reported as such.
#[test]
fn ts0003_8_2_1_psk_for_a_peer_cse() {
    use bastion_tls::PeerPsk;
    let (_dir, path, key) = setup();
    let reg = CredentialRegistry::open(&path, key).unwrap();
    let forms = ["/id-mn", "//sp.example.com/id-mn"];
    assert_eq!(reg.psk_for_peer(&forms), PeerPsk::None);
    for (id, binding) in [
        ("ae@sp.example.com", Binding::ae("Cid-mn").unwrap()),
        ("other@sp.example.com", Binding::cse("/id-asn").unwrap()),
    ] {
        reg.add_psk(id, PskKey::from_hex(KEY_HEX).unwrap(), Some(binding))
            .unwrap();
    }
    reg.add_psk(
        "unbound@sp.example.com",
        PskKey::from_hex(KEY_HEX).unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(reg.psk_for_peer(&forms), PeerPsk::None);
    reg.add_psk(
        "mn@sp.example.com",
        PskKey::from_hex(KEY_HEX).unwrap(),
        Some(Binding::cse("//sp.example.com/id-mn").unwrap()),
    )
    .unwrap();
    match reg.psk_for_peer(&forms) {
        PeerPsk::Active { kpsa_id, key } => {
            assert_eq!(kpsa_id, "mn@sp.example.com");
            assert_eq!(key.to_hex().as_str(), KEY_HEX);
        }
        other => panic!("{other:?}"),
    }
    reg.revoke("mn@sp.example.com").unwrap();
    assert_eq!(reg.psk_for_peer(&forms), PeerPsk::Revoked);
    // A fresh key after the revocation is used again.
    reg.add_psk(
        "mn2@sp.example.com",
        PskKey::from_hex(KEY_HEX).unwrap(),
        Some(Binding::cse("/id-mn").unwrap()),
    )
    .unwrap();
    assert!(matches!(
        reg.psk_for_peer(&forms),
        PeerPsk::Active { kpsa_id, .. } if kpsa_id == "mn2@sp.example.com"
    ));
}
