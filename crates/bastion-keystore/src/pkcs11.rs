//! The PKCS#11 store: keys generated in, imported into and used inside a token (a
//! hardware security module, a smart card, or SoftHSM2 for tests), through the `cryptoki`
//! crate.
//!
//! What stays inside: every private key (CKA_SENSITIVE, not CKA_EXTRACTABLE; signatures
//! by CKM_ECDSA in the token) and every non-exportable secret (CKA_SENSITIVE, not
//! CKA_EXTRACTABLE; HMAC by CKM_SHA256_HMAC in the token). The token refuses to reveal
//! their value to anyone, this process included. What leaves: public keys, signatures,
//! MACs (a key derived from Ke is a MAC: it has to reach its holder), and exportable
//! secrets (stored with CKA_SENSITIVE false, because OpenSSL needs a TLS PSK's bytes).
//!
//! Objects are token objects named by CKA_LABEL = the [`KeyName`]; a key pair is two
//! objects with the same label. The protection level is what the operator declares for
//! the device, level 1 unless said otherwise, and a level above 1 is refused on a slot
//! that is not a hardware slot (SoftHSM2 is software, in this process: level 1).

use std::collections::HashMap;
use std::os::raw::c_ulong;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::{AuthPin, Ulong};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use parking_lot::{Mutex, MutexGuard};
use zeroize::Zeroizing;

use crate::{
    ExportPolicy, KeyInfo, KeyKind, KeyName, KeyStore, KeyStoreError, Mac, ProtectionLevel,
    PublicKey, SecretKey, MAX_SECRET_LEN, MIN_SECRET_LEN,
};

/// DER of the OID 1.2.840.10045.3.1.7 (prime256v1), the CKA_EC_PARAMS of a P-256 key.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A store on one token of a PKCS#11 module, logged in as its user.
pub struct Pkcs11KeyStore {
    module: PathBuf,
    token: String,
    level: ProtectionLevel,
    /// Shared by every store of this process on the same token.
    token_lock: Arc<Mutex<()>>,
    session: Mutex<Session>,
}

/// A session to use, with the token to itself within this process.
struct Locked<'a> {
    _token: MutexGuard<'a, ()>,
    session: MutexGuard<'a, Session>,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

/// The lock of one token (module and slot) in this process. Operations on a token are
/// serialised: SoftHSM2 was seen failing concurrent object creation from two sessions
/// (CKR_TEMPLATE_INCONSISTENT, CKR_GENERAL_ERROR), and other modules differ in how much
/// concurrency they take; key operations are rare enough not to need it.
fn token_lock(module: &Path, slot: u64) -> Arc<Mutex<()>> {
    type Locks = HashMap<(PathBuf, u64), Arc<Mutex<()>>>;
    static LOCKS: OnceLock<Mutex<Locks>> = OnceLock::new();
    let mut locks = LOCKS.get_or_init(Default::default).lock();
    Arc::clone(locks.entry((module.to_owned(), slot)).or_default())
}

impl std::fmt::Debug for Pkcs11KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11KeyStore")
            .field("module", &self.module)
            .field("token", &self.token)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

fn ck(operation: &'static str) -> impl FnOnce(CkError) -> KeyStoreError {
    move |source| KeyStoreError::Pkcs11 { operation, source }
}

/// The module loaded and initialised once per process: PKCS#11 allows one C_Initialize
/// per application, shared by every store on the module.
fn context(module: &Path) -> Result<Pkcs11, KeyStoreError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut contexts = CONTEXTS.get_or_init(Default::default).lock();
    if let Some(ctx) = contexts.get(module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(ck("loading the module"))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(ck("initialising the module")(e)),
    }
    contexts.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

/// Logs the user in. PKCS#11 login is per application and token: once one store of this
/// process is logged in, the token answers every later login "already logged in", PIN
/// right or wrong. So the first good PIN's SHA-256 is kept per token and a later store
/// must present the same PIN (compared in constant time), or it is refused like a wrong
/// PIN: a PIN never opens a store merely because another store is open.
fn login(
    session: &Session,
    module: &Path,
    slot: u64,
    token: &str,
    pin: &Zeroizing<String>,
) -> Result<(), KeyStoreError> {
    type Logins = HashMap<(PathBuf, u64), [u8; 32]>;
    static LOGINS: OnceLock<Mutex<Logins>> = OnceLock::new();
    let mut logins = LOGINS.get_or_init(Default::default).lock();
    let digest = openssl::sha::sha256(pin.as_bytes());
    let incorrect =
        || KeyStoreError::Unlock(format!("the PIN of PKCS#11 token {token:?} is incorrect"));
    let key = (module.to_owned(), slot);
    let auth = AuthPin::new(pin.as_str().into());
    match session.login(UserType::User, Some(&auth)) {
        Ok(()) => {
            logins.insert(key, digest);
            Ok(())
        }
        Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => match logins.get(&key) {
            Some(known) if openssl::memcmp::eq(known, &digest) => Ok(()),
            _ => Err(incorrect()),
        },
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(incorrect()),
        Err(e) => Err(ck("login")(e)),
    }
}

impl Pkcs11KeyStore {
    /// Opens the token labelled `token` of `module` and logs in with `pin`. `declared` is
    /// the protection level the operator gives the device (level 1 when `None`).
    pub fn open(
        module: &Path,
        token: &str,
        pin: &Zeroizing<String>,
        declared: Option<ProtectionLevel>,
    ) -> Result<Pkcs11KeyStore, KeyStoreError> {
        let ctx = context(module)?;
        let mut found = None;
        for slot in ctx.get_slots_with_token().map_err(ck("listing slots"))? {
            let info = ctx.get_token_info(slot).map_err(ck("reading a token"))?;
            if info.label().trim_end() == token {
                found = Some(slot);
                break;
            }
        }
        let slot = found.ok_or_else(|| KeyStoreError::TokenNotFound(token.to_owned()))?;
        let level = declared.unwrap_or(ProtectionLevel::Software);
        if level > ProtectionLevel::Software {
            let hardware = ctx
                .get_slot_info(slot)
                .map_err(ck("reading the slot"))?
                .hardware_slot();
            if !hardware {
                return Err(KeyStoreError::LevelNotSupported {
                    declared: level.number(),
                    reason: "the token's slot is not a hardware slot (no CKF_HW_SLOT)",
                });
            }
        }
        let token_lock = token_lock(module, slot.id());
        let session = {
            let _token = token_lock.lock();
            let session = ctx.open_rw_session(slot).map_err(ck("opening a session"))?;
            login(&session, module, slot.id(), token, pin)?;
            session
        };
        Ok(Pkcs11KeyStore {
            module: module.to_owned(),
            token: token.to_owned(),
            level,
            token_lock,
            session: Mutex::new(session),
        })
    }

    fn lock(&self) -> Locked<'_> {
        let token = self.token_lock.lock();
        Locked {
            _token: token,
            session: self.session.lock(),
        }
    }

    /// The token objects labelled `name`, of `class` when given.
    fn objects(
        session: &Session,
        name: &KeyName,
        class: Option<ObjectClass>,
    ) -> Result<Vec<ObjectHandle>, KeyStoreError> {
        let mut template = vec![
            Attribute::Token(true),
            Attribute::Label(name.as_str().as_bytes().to_vec()),
        ];
        if let Some(class) = class {
            template.push(Attribute::Class(class));
        }
        session
            .find_objects(&template)
            .map_err(ck("finding objects"))
    }

    /// The one object of `class` labelled `name`; a key of another class is `WrongKind`.
    fn object(
        session: &Session,
        name: &KeyName,
        class: ObjectClass,
        expected: &'static str,
    ) -> Result<ObjectHandle, KeyStoreError> {
        if let Some(handle) = Self::objects(session, name, Some(class))?.first() {
            return Ok(*handle);
        }
        match Self::objects(session, name, None)?.is_empty() {
            true => Err(KeyStoreError::NotFound(name.to_string())),
            false => Err(KeyStoreError::WrongKind {
                name: name.to_string(),
                expected,
            }),
        }
    }

    fn ensure_absent(session: &Session, name: &KeyName) -> Result<(), KeyStoreError> {
        match Self::objects(session, name, None)?.is_empty() {
            true => Ok(()),
            false => Err(KeyStoreError::AlreadyExists(name.to_string())),
        }
    }

    fn secret_template(name: &KeyName, export: ExportPolicy) -> Vec<Attribute> {
        let exportable = export == ExportPolicy::Exportable;
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(name.as_str().as_bytes().to_vec()),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Sensitive(!exportable),
            Attribute::Extractable(exportable),
        ]
    }

    fn secret_info(
        session: &Session,
        name: &KeyName,
        handle: ObjectHandle,
    ) -> Result<KeyInfo, KeyStoreError> {
        let mut len = 0;
        let mut sensitive = true;
        let attributes = session
            .get_attributes(handle, &[AttributeType::ValueLen, AttributeType::Sensitive])
            .map_err(ck("reading attributes"))?;
        for attribute in attributes {
            match attribute {
                Attribute::ValueLen(n) => len = usize::try_from(u64::from(n)).unwrap_or(0),
                Attribute::Sensitive(s) => sensitive = s,
                _ => {}
            }
        }
        Ok(KeyInfo {
            name: name.clone(),
            kind: KeyKind::Secret { len },
            export: match sensitive {
                true => ExportPolicy::NonExportable,
                false => ExportPolicy::Exportable,
            },
        })
    }

    fn public_key_of(session: &Session, name: &KeyName) -> Result<PublicKey, KeyStoreError> {
        let handle = Self::object(session, name, ObjectClass::PUBLIC_KEY, "an EC P-256 key")?;
        let attributes = session
            .get_attributes(handle, &[AttributeType::EcPoint])
            .map_err(ck("reading the public key"))?;
        let point = attributes
            .into_iter()
            .find_map(|a| match a {
                Attribute::EcPoint(p) => Some(p),
                _ => None,
            })
            .ok_or_else(|| KeyStoreError::Corrupt(format!("{name} has no CKA_EC_POINT")))?;
        // CKA_EC_POINT is the DER OCTET STRING of the X9.62 point (PKCS#11 2.40); some
        // modules give the bare point.
        let bare = match point.as_slice() {
            [0x04, 0x41, rest @ ..] if rest.len() == 0x41 => rest,
            other => other,
        };
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let mut bn = openssl::bn::BigNumContext::new()?;
        let point = EcPoint::from_bytes(&group, bare, &mut bn)
            .map_err(|_| KeyStoreError::Corrupt(format!("{name} has a bad CKA_EC_POINT")))?;
        let key = PKey::from_ec_key(EcKey::from_public_key(&group, &point)?)?;
        PublicKey::from_spki_der(&key.public_key_to_der()?)
    }
}

impl KeyStore for Pkcs11KeyStore {
    fn protection_level(&self) -> ProtectionLevel {
        self.level
    }

    fn import_secret(
        &self,
        name: &KeyName,
        secret: &SecretKey,
        export: ExportPolicy,
    ) -> Result<KeyInfo, KeyStoreError> {
        let session = self.lock();
        Self::ensure_absent(&session, name)?;
        let mut template = Self::secret_template(name, export);
        template.push(Attribute::Value(secret.expose().to_vec()));
        let created = session.create_object(&template);
        // The template's copy of the key is wiped before anything else happens.
        for attribute in &mut template {
            if let Attribute::Value(bytes) = attribute {
                zeroize::Zeroize::zeroize(bytes);
            }
        }
        let handle = created.map_err(ck("importing a secret"))?;
        Self::secret_info(&session, name, handle)
    }

    fn generate_secret(
        &self,
        name: &KeyName,
        len: usize,
        export: ExportPolicy,
    ) -> Result<KeyInfo, KeyStoreError> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
            return Err(KeyStoreError::InvalidSecretLength(len));
        }
        let session = self.lock();
        Self::ensure_absent(&session, name)?;
        let mut template = Self::secret_template(name, export);
        template.retain(|a| !matches!(a, Attribute::Class(_) | Attribute::KeyType(_)));
        template.push(Attribute::ValueLen(Ulong::from(len as c_ulong)));
        let handle = session
            .generate_key(&Mechanism::GenericSecretKeyGen, &template)
            .map_err(ck("generating a secret"))?;
        Self::secret_info(&session, name, handle)
    }

    fn hmac_sha256(&self, name: &KeyName, input: &[u8]) -> Result<Mac, KeyStoreError> {
        let session = self.lock();
        let handle = Self::object(&session, name, ObjectClass::SECRET_KEY, "a secret key")?;
        let mac = Zeroizing::new(
            session
                .sign(&Mechanism::Sha256Hmac, handle, input)
                .map_err(ck("HMAC"))?,
        );
        Mac::from_slice(&mac).ok_or_else(|| KeyStoreError::Corrupt("HMAC length".to_owned()))
    }

    fn export_secret(&self, name: &KeyName) -> Result<SecretKey, KeyStoreError> {
        let session = self.lock();
        let handle = Self::object(&session, name, ObjectClass::SECRET_KEY, "a secret key")?;
        let info = Self::secret_info(&session, name, handle)?;
        if info.export == ExportPolicy::NonExportable {
            return Err(KeyStoreError::NotExportable(name.to_string()));
        }
        let attributes = session
            .get_attributes(handle, &[AttributeType::Value])
            .map_err(ck("reading a secret"))?;
        let mut value = None;
        for attribute in attributes {
            if let Attribute::Value(bytes) = attribute {
                value = Some(Zeroizing::new(bytes));
            }
        }
        // A token that still withholds the value (it was made sensitive since) is as
        // good as non-exportable.
        let value = value.ok_or_else(|| KeyStoreError::NotExportable(name.to_string()))?;
        SecretKey::new(&value)
    }

    fn generate_p256(&self, name: &KeyName) -> Result<PublicKey, KeyStoreError> {
        let session = self.lock();
        Self::ensure_absent(&session, name)?;
        let label = name.as_str().as_bytes().to_vec();
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(label.clone()),
            Attribute::Verify(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(label),
            Attribute::Sign(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
        ];
        session
            .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
            .map_err(ck("generating a P-256 key pair"))?;
        Self::public_key_of(&session, name)
    }

    fn public_key(&self, name: &KeyName) -> Result<PublicKey, KeyStoreError> {
        let session = self.lock();
        Self::public_key_of(&session, name)
    }

    fn sign_digest(&self, name: &KeyName, digest: &[u8; 32]) -> Result<Vec<u8>, KeyStoreError> {
        let session = self.lock();
        let handle = Self::object(&session, name, ObjectClass::PRIVATE_KEY, "an EC P-256 key")?;
        let raw = session
            .sign(&Mechanism::Ecdsa, handle, digest)
            .map_err(ck("ECDSA signing"))?;
        // CKM_ECDSA gives r || s, each as long as the group order (32 bytes for P-256).
        if raw.len() != 64 {
            return Err(KeyStoreError::Corrupt(format!(
                "an ECDSA signature of {} bytes",
                raw.len()
            )));
        }
        let (r, s) = raw.split_at(32);
        let signature =
            EcdsaSig::from_private_components(BigNum::from_slice(r)?, BigNum::from_slice(s)?)?;
        Ok(signature.to_der()?)
    }

    fn delete(&self, name: &KeyName) -> Result<(), KeyStoreError> {
        let session = self.lock();
        let handles = Self::objects(&session, name, None)?;
        if handles.is_empty() {
            return Err(KeyStoreError::NotFound(name.to_string()));
        }
        for handle in handles {
            session
                .destroy_object(handle)
                .map_err(ck("deleting a key"))?;
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError> {
        let session = self.lock();
        let handles = session
            .find_objects(&[Attribute::Token(true)])
            .map_err(ck("finding objects"))?;
        let mut keys = Vec::new();
        for handle in handles {
            let attributes = session
                .get_attributes(handle, &[AttributeType::Class, AttributeType::Label])
                .map_err(ck("reading attributes"))?;
            let (mut class, mut label) = (None, None);
            for attribute in attributes {
                match attribute {
                    Attribute::Class(c) => class = Some(c),
                    Attribute::Label(l) => label = String::from_utf8(l).ok(),
                    _ => {}
                }
            }
            // Objects this store did not name (another application's) are not its keys.
            let Some(name) = label.and_then(|l| KeyName::new(&l).ok()) else {
                continue;
            };
            match class {
                Some(ObjectClass::SECRET_KEY) => {
                    keys.push(Self::secret_info(&session, &name, handle)?)
                }
                Some(ObjectClass::PRIVATE_KEY) => keys.push(KeyInfo {
                    name,
                    kind: KeyKind::EcP256,
                    export: ExportPolicy::NonExportable,
                }),
                _ => {}
            }
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }
}
