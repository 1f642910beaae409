//! The encrypted file store: protection level 1 (software, TS-0003 table 6.3.1-1).
//!
//! Keys are kept in one [`bastion_tls::sealed`] file (magic `BSTNKEY1`: AES-256-GCM under
//! the store key, mode 0600, atomic and durable replacement), the store key coming from
//! `BASTION_CREDENTIALS_KEY` or a key file as for the credential store. Keys are used in
//! this process (HMAC with the RustCrypto `hmac`, ECDSA with OpenSSL), so the store
//! protects them at rest and from other users, not from code running as this user: that
//! is what level 1 means. A non-exportable secret is still refused by
//! [`KeyStore::export_secret`], so code written against this store keeps working, with
//! more protection, on a PKCS#11 one.
//!
//! Changes take an exclusive lock on `.<file>.lock` beside the store and re-read the file
//! under it, so two processes (a server and `bastion keystore`) never lose each other's
//! changes; reads re-read the file only when it changed on disk.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bastion_keys::hex;
use bastion_tls::sealed::{self, SealError};
use bastion_tls::StoreKey;
use hmac::{Hmac, KeyInit, Mac as _};
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{
    ExportPolicy, KeyInfo, KeyKind, KeyName, KeyStore, KeyStoreError, Mac, ProtectionLevel,
    PublicKey, SecretKey, MAX_SECRET_LEN, MIN_SECRET_LEN,
};

const MAGIC: &[u8; sealed::MAGIC_LEN] = b"BSTNKEY1";
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum StoredKind {
    Secret,
    EcP256,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kind: StoredKind,
    exportable: bool,
    /// Hex of the secret, or of the PKCS#8 DER private key.
    material: Zeroizing<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredFile {
    version: u32,
    keys: BTreeMap<String, StoredKey>,
}

struct Entry {
    kind: KeyKind,
    export: ExportPolicy,
    /// The secret, or the PKCS#8 DER private key; wiped on drop.
    material: Zeroizing<Vec<u8>>,
}

type Entries = BTreeMap<KeyName, Entry>;

/// Inode, size and modification time of the file, to notice changes by other processes.
type FileStamp = (u64, u64, i64, i64);

/// The encrypted file store.
pub struct FileKeyStore {
    path: PathBuf,
    key: StoreKey,
    cache: Mutex<Option<(FileStamp, Arc<Entries>)>>,
}

impl std::fmt::Debug for FileKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileKeyStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileKeyStore {
    /// Creates an empty store at `path`; an existing file is refused (never overwritten).
    pub fn create(path: impl Into<PathBuf>, key: StoreKey) -> Result<FileKeyStore, KeyStoreError> {
        let store = FileKeyStore::unopened(path.into(), key);
        let _lock = store.lock()?;
        if store.path.exists() {
            return Err(KeyStoreError::StoreExists(store.path.clone()));
        }
        store.persist(&Entries::new())?;
        Ok(store)
    }

    /// Opens the existing store at `path`, checking that `key` decrypts it.
    pub fn open(path: impl Into<PathBuf>, key: StoreKey) -> Result<FileKeyStore, KeyStoreError> {
        let store = FileKeyStore::unopened(path.into(), key);
        store.entries()?;
        Ok(store)
    }

    fn unopened(path: PathBuf, key: StoreKey) -> FileKeyStore {
        FileKeyStore {
            path,
            key,
            cache: Mutex::new(None),
        }
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file_error(&self, source: SealError) -> KeyStoreError {
        match source {
            SealError::Io { path, source } => KeyStoreError::Io { path, source },
            source => KeyStoreError::File {
                path: self.path.clone(),
                source,
            },
        }
    }

    fn io_error(&self, path: &Path, source: std::io::Error) -> KeyStoreError {
        KeyStoreError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The exclusive lock every change holds: `.<file>.lock` beside the store.
    fn lock(&self) -> Result<File, KeyStoreError> {
        let name = self
            .path
            .file_name()
            .ok_or_else(|| KeyStoreError::InvalidSpec(self.path.display().to_string()))?
            .to_string_lossy()
            .into_owned();
        let lock_path = self.path.with_file_name(format!(".{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| self.io_error(&lock_path, e))?;
        file.lock().map_err(|e| self.io_error(&lock_path, e))?;
        Ok(file)
    }

    /// The keys as on disk now (from the cache when the file did not change).
    fn entries(&self) -> Result<Arc<Entries>, KeyStoreError> {
        let stamp = stamp_of(&self.path).map_err(|e| self.io_error(&self.path, e))?;
        let mut cache = self.cache.lock();
        if let Some((cached, entries)) = cache.as_ref() {
            if *cached == stamp {
                return Ok(Arc::clone(entries));
            }
        }
        let entries = Arc::new(self.load()?);
        *cache = Some((stamp, Arc::clone(&entries)));
        Ok(entries)
    }

    fn load(&self) -> Result<Entries, KeyStoreError> {
        let data = fs::read(&self.path).map_err(|e| self.io_error(&self.path, e))?;
        let plain = sealed::unseal(&self.key, MAGIC, &data).map_err(|e| self.file_error(e))?;
        let file: StoredFile =
            serde_json::from_slice(&plain).map_err(|e| KeyStoreError::Corrupt(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(KeyStoreError::Corrupt(format!(
                "unknown version {}",
                file.version
            )));
        }
        let mut entries = Entries::new();
        for (name, stored) in file.keys {
            let name = KeyName::new(&name).map_err(|e| KeyStoreError::Corrupt(e.to_string()))?;
            let material = hex::decode(&stored.material)
                .ok_or_else(|| KeyStoreError::Corrupt(format!("bad material for {name}")))?;
            let kind = match stored.kind {
                StoredKind::Secret => {
                    if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&material.len()) {
                        return Err(KeyStoreError::Corrupt(format!("bad length for {name}")));
                    }
                    KeyKind::Secret {
                        len: material.len(),
                    }
                }
                StoredKind::EcP256 => {
                    p256_private(&name, &material)?;
                    KeyKind::EcP256
                }
            };
            let export = match stored.exportable {
                true => ExportPolicy::Exportable,
                false => ExportPolicy::NonExportable,
            };
            entries.insert(
                name,
                Entry {
                    kind,
                    export,
                    material,
                },
            );
        }
        Ok(entries)
    }

    /// Encrypts and atomically replaces the file. The caller holds the lock.
    fn persist(&self, entries: &Entries) -> Result<(), KeyStoreError> {
        let file = StoredFile {
            version: FORMAT_VERSION,
            keys: entries
                .iter()
                .map(|(name, e)| {
                    let stored = StoredKey {
                        kind: match e.kind {
                            KeyKind::Secret { .. } => StoredKind::Secret,
                            KeyKind::EcP256 => StoredKind::EcP256,
                        },
                        exportable: e.export == ExportPolicy::Exportable,
                        material: hex::encode_secret(&e.material),
                    };
                    (name.as_str().to_owned(), stored)
                })
                .collect(),
        };
        let plain = bastion_tls::secret::to_json(&file)
            .map_err(|e| KeyStoreError::Corrupt(e.to_string()))?;
        let sealed = sealed::seal(&self.key, MAGIC, &plain).map_err(|e| self.file_error(e))?;
        sealed::write_atomically(&self.path, &sealed).map_err(|e| self.file_error(e))?;
        *self.cache.lock() = None;
        Ok(())
    }

    /// Applies `change` to the keys as on disk, under the lock, and writes them back.
    fn modify<T>(
        &self,
        change: impl FnOnce(&mut Entries) -> Result<T, KeyStoreError>,
    ) -> Result<T, KeyStoreError> {
        let _lock = self.lock()?;
        let mut entries = self.load()?;
        let out = change(&mut entries)?;
        self.persist(&entries)?;
        Ok(out)
    }

    fn insert(&self, name: &KeyName, entry: Entry) -> Result<KeyInfo, KeyStoreError> {
        self.modify(|entries| {
            if entries.contains_key(name) {
                return Err(KeyStoreError::AlreadyExists(name.to_string()));
            }
            let info = info(name, &entry);
            entries.insert(name.clone(), entry);
            Ok(info)
        })
    }

    /// The material of `name` if it is of the kind `want` accepts.
    fn material(
        &self,
        name: &KeyName,
        expected: &'static str,
        want: impl Fn(&Entry) -> bool,
    ) -> Result<(Zeroizing<Vec<u8>>, ExportPolicy), KeyStoreError> {
        let entries = self.entries()?;
        let entry = entries
            .get(name)
            .ok_or_else(|| KeyStoreError::NotFound(name.to_string()))?;
        if !want(entry) {
            return Err(KeyStoreError::WrongKind {
                name: name.to_string(),
                expected,
            });
        }
        Ok((entry.material.clone(), entry.export))
    }

    fn private_key(&self, name: &KeyName) -> Result<PKey<Private>, KeyStoreError> {
        let (der, _) = self.material(name, "an EC P-256 key", |e| e.kind == KeyKind::EcP256)?;
        p256_private(name, &der)
    }
}

fn is_secret(entry: &Entry) -> bool {
    matches!(entry.kind, KeyKind::Secret { .. })
}

fn info(name: &KeyName, entry: &Entry) -> KeyInfo {
    KeyInfo {
        name: name.clone(),
        kind: entry.kind,
        export: entry.export,
    }
}

fn p256_private(name: &KeyName, der: &[u8]) -> Result<PKey<Private>, KeyStoreError> {
    let bad = || KeyStoreError::Corrupt(format!("bad private key for {name}"));
    let key = PKey::private_key_from_pkcs8(der).map_err(|_| bad())?;
    let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
    match curve == Some(Nid::X9_62_PRIME256V1) {
        true => Ok(key),
        false => Err(bad()),
    }
}

fn stamp_of(path: &Path) -> std::io::Result<FileStamp> {
    let meta = fs::metadata(path)?;
    Ok((meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec()))
}

impl KeyStore for FileKeyStore {
    fn protection_level(&self) -> ProtectionLevel {
        ProtectionLevel::Software
    }

    fn import_secret(
        &self,
        name: &KeyName,
        secret: &SecretKey,
        export: ExportPolicy,
    ) -> Result<KeyInfo, KeyStoreError> {
        let entry = Entry {
            kind: KeyKind::Secret {
                len: secret.expose().len(),
            },
            export,
            material: Zeroizing::new(secret.expose().to_vec()),
        };
        self.insert(name, entry)
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
        let mut material = Zeroizing::new(vec![0u8; len]);
        openssl::rand::rand_bytes(&mut material)?;
        let entry = Entry {
            kind: KeyKind::Secret { len },
            export,
            material,
        };
        self.insert(name, entry)
    }

    fn hmac_sha256(&self, name: &KeyName, input: &[u8]) -> Result<Mac, KeyStoreError> {
        let (secret, _) = self.material(name, "a secret key", is_secret)?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(input);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        Mac::from_slice(out.as_slice())
            .ok_or_else(|| KeyStoreError::Corrupt("HMAC length".to_owned()))
    }

    fn export_secret(&self, name: &KeyName) -> Result<SecretKey, KeyStoreError> {
        let (secret, export) = self.material(name, "a secret key", is_secret)?;
        match export {
            ExportPolicy::Exportable => SecretKey::new(&secret),
            ExportPolicy::NonExportable => Err(KeyStoreError::NotExportable(name.to_string())),
        }
    }

    fn generate_p256(&self, name: &KeyName) -> Result<PublicKey, KeyStoreError> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let entry = Entry {
            kind: KeyKind::EcP256,
            export: ExportPolicy::NonExportable,
            material: Zeroizing::new(key.private_key_to_pkcs8()?),
        };
        self.insert(name, entry)?;
        PublicKey::from_spki_der(&key.public_key_to_der()?)
    }

    fn public_key(&self, name: &KeyName) -> Result<PublicKey, KeyStoreError> {
        PublicKey::from_spki_der(&self.private_key(name)?.public_key_to_der()?)
    }

    fn sign_digest(&self, name: &KeyName, digest: &[u8; 32]) -> Result<Vec<u8>, KeyStoreError> {
        let key = self.private_key(name)?;
        Ok(EcdsaSig::sign(digest, &*key.ec_key()?)?.to_der()?)
    }

    fn delete(&self, name: &KeyName) -> Result<(), KeyStoreError> {
        self.modify(|entries| match entries.remove(name) {
            Some(_) => Ok(()),
            None => Err(KeyStoreError::NotFound(name.to_string())),
        })
    }

    fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError> {
        Ok(self
            .entries()?
            .iter()
            .map(|(name, e)| info(name, e))
            .collect())
    }
}
