//! The PKCS#11 store against a real SoftHSM2 token prepared by `scripts/softhsm-env`:
//! the KeyStore contract (tests/suite), and proof that keys are used without leaving
//! the token: the token itself withholds a non-exportable key's value, a P-256 key
//! generated in it signs a CSR `openssl req -verify` accepts, Km derived in it equals
//! the known answer. Under `CI=true` a missing SoftHSM2 fails the tests; elsewhere they
//! are skipped with the reason printed.

mod suite;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use bastion_keystore::{
    ExportPolicy, KeyName, KeyStore, KeyStoreError, Pkcs11KeyStore, ProtectionLevel, SecretKey,
    StoreSecrets, StoreSpec,
};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

/// What `scripts/softhsm-env` prints.
struct Token {
    module: PathBuf,
    label: String,
    pin: String,
}

fn token() -> Option<&'static Token> {
    static TOKEN: OnceLock<Result<Token, String>> = OnceLock::new();
    let token = TOKEN.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/softhsm-env");
        let out = Command::new(script)
            .output()
            .map_err(|e| format!("cannot run {script}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/softhsm-env failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_owned)
                .ok_or_else(|| format!("scripts/softhsm-env did not print {key}"))
        };
        // The module reads its configuration from this variable; every test of this
        // binary sets the same value, once.
        std::env::set_var("SOFTHSM2_CONF", value("SOFTHSM2_CONF")?);
        Ok(Token {
            module: PathBuf::from(value("BASTION_PKCS11_MODULE")?),
            label: value("BASTION_PKCS11_TOKEN")?,
            pin: value("BASTION_PKCS11_PIN")?,
        })
    });
    match token {
        Ok(token) => Some(token),
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("SoftHSM2 is required under CI=true: {why}")
        }
        Err(why) => {
            eprintln!("skipped: no SoftHSM2 token: {why}");
            None
        }
    }
}

/// The tests of this binary touch the token one at a time. The store serialises its own
/// sessions on a token, but `the_token_itself_withholds_sensitive_values` also opens a
/// raw session, and SoftHSM2 was seen refusing an object creation running beside it
/// (CKR_TEMPLATE_INCONSISTENT under a loaded CI machine).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn open(token: &Token) -> Pkcs11KeyStore {
    Pkcs11KeyStore::open(
        &token.module,
        &token.label,
        &Zeroizing::new(token.pin.clone()),
        None,
    )
    .unwrap()
}

#[test]
fn token_derives_inside_and_refuses_export() {
    let _serial = one_at_a_time();
    let Some(token) = token() else { return };
    suite::derivations_inside_match_the_vectors(&open(token), &suite::unique_prefix());
}

#[test]
fn token_exportable_secrets() {
    let _serial = one_at_a_time();
    let Some(token) = token() else { return };
    suite::exportable_secrets_leave_and_mac_as_openssl_does(&open(token), &suite::unique_prefix());
}

#[test]
fn token_p256_csr_verifies_with_openssl() {
    let _serial = one_at_a_time();
    let Some(token) = token() else { return };
    let dir = tempfile::tempdir().unwrap();
    suite::p256_key_signs_a_csr_openssl_verifies(&open(token), &suite::unique_prefix(), dir.path());
}

#[test]
fn token_names_list_and_delete() {
    let _serial = one_at_a_time();
    let Some(token) = token() else { return };
    suite::names_list_and_delete(&open(token), &suite::unique_prefix());
}

/// Not only the store refuses: asked directly over PKCS#11, the token withholds the
/// value of a non-exportable secret and of a private key it generated, and shows them
/// CKA_SENSITIVE and not CKA_EXTRACTABLE.
#[test]
fn the_token_itself_withholds_sensitive_values() {
    let _serial = one_at_a_time();
    let Some(token) = token() else { return };
    let store = open(token);
    let prefix = suite::unique_prefix();
    let ke = KeyName::new(&format!("{prefix}-ke")).unwrap();
    let tls = KeyName::new(&format!("{prefix}-tls")).unwrap();
    store
        .import_secret(
            &ke,
            &SecretKey::new(&[0x42; 32]).unwrap(),
            ExportPolicy::NonExportable,
        )
        .unwrap();
    store.generate_p256(&tls).unwrap();
    assert_eq!(
        store.export_secret(&ke).unwrap_err().to_string(),
        format!("key \"{ke}\" is non-exportable: it is used only inside the store")
    );

    let ctx = Pkcs11::new(&token.module).unwrap();
    // The store opened the module in this process already: a second C_Initialize is
    // refused as such, and the context works either way.
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == token.label)
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    let _ = session.login(
        UserType::User,
        Some(&AuthPin::new(token.pin.as_str().into())),
    );
    for (name, class) in [
        (&ke, cryptoki::object::ObjectClass::SECRET_KEY),
        (&tls, cryptoki::object::ObjectClass::PRIVATE_KEY),
    ] {
        let handles = session
            .find_objects(&[
                Attribute::Label(name.as_str().as_bytes().to_vec()),
                Attribute::Class(class),
            ])
            .unwrap();
        assert_eq!(handles.len(), 1, "{name}");
        let wanted = [
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::Value,
        ];
        let attributes = session.get_attributes(handles[0], &wanted).unwrap();
        assert!(attributes.contains(&Attribute::Sensitive(true)), "{name}");
        assert!(
            attributes.contains(&Attribute::Extractable(false)),
            "{name}"
        );
        assert!(
            !attributes.iter().any(|a| matches!(a, Attribute::Value(_))),
            "the token gave out the value of {name}"
        );
    }
    store.delete(&ke).unwrap();
    store.delete(&tls).unwrap();
}

#[test]
fn token_store_states_level_1_and_refuses_more() {
    let _serial = one_at_a_time();
    let Some(token) = token() else { return };
    assert_eq!(open(token).protection_level(), ProtectionLevel::Software);
    let err = Pkcs11KeyStore::open(
        &token.module,
        &token.label,
        &Zeroizing::new(token.pin.clone()),
        Some(ProtectionLevel::Isolated),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "protection level 2 cannot be claimed: the token's slot is not a hardware slot (no CKF_HW_SLOT)"
    );
}

#[test]
fn wrong_pin_and_unknown_token_are_refused() {
    let _serial = one_at_a_time();
    let Some(token) = token() else { return };
    // Another store of this process may be logged in: the wrong PIN is refused anyway.
    let _open = open(token);
    let err = Pkcs11KeyStore::open(
        &token.module,
        &token.label,
        &Zeroizing::new("not-the-pin".to_owned()),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the PIN of PKCS#11 token \"bastion-test\" is incorrect"
    );
    assert!(!format!("{err:?}").contains("not-the-pin"));
    let err = Pkcs11KeyStore::open(
        &token.module,
        "no-such-token",
        &Zeroizing::new(token.pin.clone()),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no PKCS#11 token labelled \"no-such-token\""
    );
}

#[test]
fn spec_opens_the_token_with_the_pin_from_a_file() {
    let _serial = one_at_a_time();
    let Some(token) = token() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{}\n", token.pin)).unwrap();
    let spec = StoreSpec::parse(&format!(
        "pkcs11:{}?token={}",
        token.module.display(),
        token.label
    ))
    .unwrap();
    let secrets = StoreSecrets {
        key_file: None,
        pin_file: Some(pin_file.clone()),
    };
    // A PIN file others may read is refused before the token is asked.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = bastion_keystore::open(&spec, &secrets).unwrap_err();
    assert!(matches!(err, KeyStoreError::Unlock(_)), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} is accessible by group or others; make it mode 0600 (chmod 600)",
            pin_file.display()
        )
    );
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let store = bastion_keystore::open(&spec, &secrets).unwrap();
    assert_eq!(store.protection_level(), ProtectionLevel::Software);
    store.list().unwrap();
}
