//! The encrypted file store: the KeyStore contract (tests/suite) and what is the file's
//! own: level 1, mode 0600, the store key, refusal of other files, changes by two
//! handles on one file.

mod suite;

use std::os::unix::fs::PermissionsExt;

use bastion_keystore::{ExportPolicy, FileKeyStore, KeyName, KeyStore, ProtectionLevel, SecretKey};
use bastion_tls::StoreKey;

fn store(dir: &std::path::Path) -> (FileKeyStore, StoreKey) {
    let key = StoreKey::generate().unwrap();
    (
        FileKeyStore::create(dir.join("keys.store"), key.clone()).unwrap(),
        key,
    )
}

#[test]
fn file_store_derives_inside_and_refuses_export() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    suite::derivations_inside_match_the_vectors(&store, &suite::unique_prefix());
}

#[test]
fn file_store_exportable_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    suite::exportable_secrets_leave_and_mac_as_openssl_does(&store, &suite::unique_prefix());
}

#[test]
fn file_store_p256_csr_verifies_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    suite::p256_key_signs_a_csr_openssl_verifies(&store, &suite::unique_prefix(), dir.path());
}

#[test]
fn file_store_names_list_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    suite::names_list_and_delete(&store, &suite::unique_prefix());
}

#[test]
fn file_store_is_level_1_owner_only_and_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, key) = store(dir.path());
    assert_eq!(store.protection_level(), ProtectionLevel::Software);
    let name = KeyName::new("kpm").unwrap();
    let secret = [0x5au8; 32];
    store
        .import_secret(
            &name,
            &SecretKey::new(&secret).unwrap(),
            ExportPolicy::NonExportable,
        )
        .unwrap();
    let path = dir.path().join("keys.store");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(&raw[..8], b"BSTNKEY1");
    let hex = bastion_keys::hex::encode(&secret);
    assert!(
        !String::from_utf8_lossy(&raw).contains(&hex),
        "the key is not in clear"
    );
    assert!(!format!("{store:?}").contains(&hex));

    // The same key reopens it; another key, or a credential store, is refused.
    let again = FileKeyStore::open(&path, key.clone()).unwrap();
    assert_eq!(again.list().unwrap().len(), 1);
    let wrong = FileKeyStore::open(&path, StoreKey::generate().unwrap()).unwrap_err();
    assert_eq!(
        wrong.to_string(),
        format!(
            "{}: cannot decrypt (wrong key or tampered file)",
            path.display()
        )
    );
    let credentials = dir.path().join("credentials.store");
    bastion_tls::CredentialRegistry::open(&credentials, key.clone()).unwrap();
    let other = FileKeyStore::open(&credentials, key.clone()).unwrap_err();
    assert_eq!(
        other.to_string(),
        format!(
            "{}: not a sealed file of the expected kind",
            credentials.display()
        )
    );
    let exists = FileKeyStore::create(&path, key).unwrap_err();
    assert_eq!(
        exists.to_string(),
        format!(
            "{} exists already: a key store is never overwritten",
            path.display()
        )
    );
    assert_eq!(again.list().unwrap().len(), 1, "create did not overwrite");
}

#[test]
fn two_handles_on_one_file_keep_each_others_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (first, key) = store(dir.path());
    let second = FileKeyStore::open(first.path(), key).unwrap();
    first
        .generate_secret(&KeyName::new("one").unwrap(), 32, ExportPolicy::Exportable)
        .unwrap();
    second
        .generate_secret(&KeyName::new("two").unwrap(), 32, ExportPolicy::Exportable)
        .unwrap();
    let names = |s: &FileKeyStore| -> Vec<String> {
        s.list()
            .unwrap()
            .into_iter()
            .map(|k| k.name.to_string())
            .collect()
    };
    assert_eq!(names(&first), ["one", "two"]);
    assert_eq!(names(&second), ["one", "two"]);
    // A handle that read the file before another changed it sees the change.
    second.delete(&KeyName::new("one").unwrap()).unwrap();
    assert_eq!(names(&first), ["two"]);
}
