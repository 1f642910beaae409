//! The credential store: Provisioned Symmetric Key credentials (KpsaID + Kpsa bound to an
//! AE-ID, CSE-ID or Credential-ID; TS-0003 8.2.2.1, 10.5), pinned raw public keys
//! (RFC 6920 identifiers bound to an AE-ID or CSE-ID; 10.1.2, 8.2.2.2) and the HTTP
//! credentials of peer CSEs (user name + secret bound to a CSE-ID; [`crate::peer_http`]).
//!
//! Owns the file's content and the store key: the file is a [`crate::sealed`] file (magic
//! `BSTNCRD1`: AES-256-GCM, mode 0600, atomic replacement) under a 32-byte store key from
//! `BASTION_CREDENTIALS_KEY` or a key file only its owner can read. One shared
//! [`CredentialRegistry`] serves the PSK callback and the per-request revocation check.
//!
//! The plaintext is a JSON document.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::rand::rand_bytes;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::hexutil;
use crate::identity::{Binding, IdentityError, NiDigest};
use crate::sealed::{self, SealError};

/// Environment variable holding the store key as 64 hex characters.
pub const KEY_ENV: &str = "BASTION_CREDENTIALS_KEY";
/// Smallest accepted Kpsa, in bytes.
pub const MIN_PSK_LEN: usize = 16;
/// Largest accepted Kpsa, in bytes.
pub const MAX_PSK_LEN: usize = 64;

const MAGIC: &[u8; sealed::MAGIC_LEN] = b"BSTNCRD1";
const FORMAT_VERSION: u32 = 1;

/// Failures of the credential store.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Reading or writing the store (or the key file) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store key is malformed (operator error).
    #[error("the credentials key must be 32 bytes given as 64 hex characters")]
    BadStoreKey,
    /// Neither `BASTION_CREDENTIALS_KEY` nor a key file was given.
    #[error("no credentials key: set BASTION_CREDENTIALS_KEY or give a key file")]
    NoStoreKey,
    /// A key file may be read by group or others (the same words as
    /// [`crate::secret::SecretFileError::Permissions`]).
    #[error("{} is accessible by group or others; make it mode 0600 (chmod 600)", .0.display())]
    KeyFilePermissions(PathBuf),
    /// Authentication of the store failed: wrong key, or the file was altered.
    #[error("{0}: cannot decrypt the credential store (wrong key or tampered file)")]
    Decrypt(PathBuf),
    /// The file is not a credential store or is truncated.
    #[error("{0}: not a Bastion credential store")]
    NotAStore(PathBuf),
    /// The decrypted content is inconsistent (unknown version, bad entry).
    #[error("{path}: corrupt credential store: {reason}")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An HTTP peer user name is not 1 to 64 characters of `[A-Za-z0-9._-]`.
    #[error("invalid HTTP user name {0:?}: expected 1 to 64 characters of [A-Za-z0-9._-]")]
    InvalidHttpUser(String),
    /// An HTTP peer credential must be bound to a CSE-ID.
    #[error("an HTTP peer credential binds a CSE-ID")]
    HttpPeerNotCse,
    /// A KpsaID is not `<relative-id>@<fqdn>` with relative part `[A-Za-z0-9._-]` (10.5).
    #[error("invalid KpsaID {0:?}: expected <relative-id>@<fqdn>, relative id of [A-Za-z0-9._-]")]
    InvalidKpsaId(String),
    /// A PSK identity for a key server is empty, longer than 128 bytes or not printable
    /// ASCII.
    #[error("invalid PSK identity {0:?}: expected 1 to 128 printable ASCII characters")]
    InvalidPskIdentity(String),
    /// A key has a bad length or encoding.
    #[error("a pre-shared key must be {MIN_PSK_LEN} to {MAX_PSK_LEN} bytes (hex-encoded)")]
    InvalidKeyLength,
    /// An identifier in the binding or a public-key identifier is malformed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The credential already exists (revoked credentials are not reused).
    #[error("credential {0:?} already exists")]
    AlreadyExists(String),
    /// No such credential.
    #[error("no credential {0:?}")]
    NotFound(String),
    /// OpenSSL failed (random numbers, cipher).
    #[error("crypto failure: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    /// A secret file is not a regular owner-only file of bounded size, or not text.
    #[error(transparent)]
    SecretFile(crate::secret::SecretFileError),
}

impl From<crate::secret::SecretFileError> for CredentialError {
    fn from(e: crate::secret::SecretFileError) -> Self {
        use crate::secret::SecretFileError;
        match e {
            SecretFileError::Io { path, source } => CredentialError::Io { path, source },
            SecretFileError::Permissions(path) => CredentialError::KeyFilePermissions(path),
            other => CredentialError::SecretFile(other),
        }
    }
}

/// The 32-byte AES-256-GCM key of the store. Wiped on drop; never printed.
#[derive(Clone)]
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

impl StoreKey {
    /// The key bytes, for [`crate::sealed`] only.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, CredentialError> {
        let bytes = hexutil::decode(text.trim()).ok_or(CredentialError::BadStoreKey)?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CredentialError> {
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            return Err(CredentialError::BadStoreKey);
        }
        key.copy_from_slice(bytes);
        Ok(Self(key))
    }

    /// A fresh random key (for `bastion credentials init`-style tooling and tests).
    pub fn generate() -> Result<Self, CredentialError> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand_bytes(key.as_mut())?;
        Ok(Self(key))
    }

    /// The key as hex, for writing a key file; wiped on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        hexutil::encode_secret(self.0.as_ref())
    }

    /// From `BASTION_CREDENTIALS_KEY`; `Ok(None)` when it is unset.
    pub fn from_env() -> Result<Option<Self>, CredentialError> {
        match std::env::var(KEY_ENV) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                Self::from_hex(&text).map(Some)
            }
            Err(_) => Ok(None),
        }
    }

    /// From a key file holding 64 hex characters or 32 raw bytes. Refused when the file
    /// is accessible by group or others.
    pub fn from_key_file(path: &Path) -> Result<Self, CredentialError> {
        let content = crate::secret::read_secret(path)?;
        if content.len() == 32 {
            return Self::from_bytes(&content);
        }
        let text = std::str::from_utf8(&content).map_err(|_| CredentialError::BadStoreKey)?;
        Self::from_hex(text)
    }

    /// The environment variable first, then the key file if one is given.
    pub fn from_env_or_file(key_file: Option<&Path>) -> Result<Self, CredentialError> {
        if let Some(key) = Self::from_env()? {
            return Ok(key);
        }
        match key_file {
            Some(path) => Self::from_key_file(path),
            None => Err(CredentialError::NoStoreKey),
        }
    }
}

/// A pre-shared key (Kpsa), 16 to 64 bytes. Wiped on drop; Debug is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PskKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for PskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PskKey(<{} bytes redacted>)", self.0.len())
    }
}

impl PskKey {
    /// From raw bytes, length-checked.
    pub fn new(bytes: &[u8]) -> Result<Self, CredentialError> {
        if !(MIN_PSK_LEN..=MAX_PSK_LEN).contains(&bytes.len()) {
            return Err(CredentialError::InvalidKeyLength);
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// From hex, length-checked.
    pub fn from_hex(text: &str) -> Result<Self, CredentialError> {
        let bytes = hexutil::decode(text.trim()).ok_or(CredentialError::InvalidKeyLength)?;
        Self::new(&bytes)
    }

    /// From a secret file holding the key in hex, read with
    /// [`crate::secret::read_secret_text`] (owner-only permissions required).
    pub fn from_file(path: &Path) -> Result<Self, CredentialError> {
        let text = crate::secret::read_secret_text(path)?;
        Self::from_hex(&text)
    }

    /// From the environment variable `name` (hex); `Ok(None)` when it is unset.
    pub fn from_env(name: &str) -> Result<Option<Self>, CredentialError> {
        match std::env::var(name) {
            Ok(text) => Self::from_hex(&Zeroizing::new(text)).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// A random key of `len` bytes.
    pub fn generate(len: usize) -> Result<Self, CredentialError> {
        if !(MIN_PSK_LEN..=MAX_PSK_LEN).contains(&len) {
            return Err(CredentialError::InvalidKeyLength);
        }
        let mut key = Zeroizing::new(vec![0u8; len]);
        rand_bytes(&mut key)?;
        Ok(Self(key))
    }

    /// The key bytes (for the TLS PSK callbacks).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The key as hex, e.g. to hand to a client once; wiped on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        hexutil::encode_secret(&self.0)
    }
}

/// Checks a KpsaID: `<issuer-relative-id>@<issuer-FQDN>`, relative part `[A-Za-z0-9._-]`
/// (TS-0003 10.5), at most 128 bytes (OpenSSL's PSK identity limit).
pub fn validate_kpsa_id(id: &str) -> Result<(), CredentialError> {
    let bad = || CredentialError::InvalidKpsaId(id.to_owned());
    if id.len() > 128 {
        return Err(bad());
    }
    let (relative, fqdn) = id.split_once('@').ok_or_else(bad)?;
    let relative_ok = !relative.is_empty()
        && relative
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let fqdn_ok = !fqdn.is_empty()
        && fqdn.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    (relative_ok && fqdn_ok).then_some(()).ok_or_else(bad)
}

/// The kind of a stored credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// KpsaID + Kpsa.
    Psk,
    /// A pinned raw public key, identified by its `ni` digest.
    RawPublicKey,
    /// A user name and secret a peer CSE presents in HTTP `Authorization` on a listener
    /// with peer HTTP authentication ([`crate::peer_http`]); bound to a CSE-ID.
    HttpPeer,
}

/// What `list` shows of a credential: never key bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialInfo {
    /// KpsaID or `ni:///...` identifier.
    pub credential: String,
    /// The kind.
    pub kind: CredentialKind,
    /// What the association is bound to.
    pub binding: Binding,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// What the store holds to reach a peer CSE or AE as (D)TLS-PSK client
/// ([`CredentialRegistry::psk_for_peer`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerPsk {
    /// An active credential: present this KpsaID with this key.
    Active {
        /// The KpsaID.
        kpsa_id: String,
        /// Its Kpsa (wiped on drop, Debug redacted).
        key: PskKey,
    },
    /// Only revoked credentials are bound to the peer: it was reached securely, and must
    /// not be reached any other way now.
    Revoked,
    /// No PSK credential is bound to the peer.
    None,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredEntry {
    kind: CredentialKind,
    binding: Binding,
    /// Hex of the Kpsa; `None` for raw keys and after revocation (the key is dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<Zeroizing<String>>,
    created: u64,
    revoked: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredFile {
    version: u32,
    credentials: BTreeMap<String, StoredEntry>,
}

#[derive(Clone)]
struct Entry {
    kind: CredentialKind,
    binding: Binding,
    key: Option<PskKey>,
    ni: Option<NiDigest>,
    created: u64,
    revoked: bool,
}

type Entries = BTreeMap<String, Entry>;

/// Inode, size and modification time of the store file, to notice outside changes.
type FileStamp = (u64, u64, i64, i64);

/// A live handle on the credential store, shared (`Arc`) between the TLS callbacks, the
/// per-request revocation check and administration. Changes are written to disk before
/// they become visible.
pub struct CredentialRegistry {
    path: PathBuf,
    key: StoreKey,
    entries: RwLock<Entries>,
    writer: Mutex<()>,
    generation: AtomicU64,
    file_stamp: Mutex<Option<FileStamp>>,
}

impl std::fmt::Debug for CredentialRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialRegistry")
            .field("path", &self.path)
            .field("credentials", &self.entries.read().len())
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl CredentialRegistry {
    /// Opens the store at `path`, creating an empty one (mode 0600) when it is missing.
    pub fn open(path: impl Into<PathBuf>, key: StoreKey) -> Result<Arc<Self>, CredentialError> {
        let path = path.into();
        let registry = Self {
            path,
            key,
            entries: RwLock::new(Entries::new()),
            writer: Mutex::new(()),
            generation: AtomicU64::new(0),
            file_stamp: Mutex::new(None),
        };
        if registry.path.exists() {
            registry.reload()?;
        } else {
            let _guard = registry.writer.lock();
            registry.persist(&Entries::new())?;
        }
        Ok(Arc::new(registry))
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A counter bumped by every change (add, revoke, reload). A server may cache checks
    /// per connection and redo them only when it moves.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Adds a PSK credential. `bound_to` is an AE-ID or CSE-ID binding; `None` binds to the
    /// Credential-ID `12-<KpsaID>` (8.2.2.1).
    pub fn add_psk(
        &self,
        kpsa_id: &str,
        key: PskKey,
        bound_to: Option<Binding>,
    ) -> Result<CredentialInfo, CredentialError> {
        validate_kpsa_id(kpsa_id)?;
        let binding = match bound_to {
            None => Binding::credential_id_for_kpsa(kpsa_id),
            Some(Binding::CredentialId(id)) => {
                return Err(IdentityError::InvalidCredentialId(id).into())
            }
            Some(b) => b,
        };
        binding.validate()?;
        self.insert(
            kpsa_id.to_owned(),
            Entry {
                kind: CredentialKind::Psk,
                binding,
                key: Some(key),
                ni: None,
                created: now_secs(),
                revoked: false,
            },
        )
    }

    /// Pins a raw public key by its RFC 6920 identifier and binds it to an AE-ID or CSE-ID.
    pub fn pin_raw_public_key(
        &self,
        ni: &str,
        bound_to: Binding,
    ) -> Result<CredentialInfo, CredentialError> {
        let digest = NiDigest::parse(ni)?;
        if let Binding::CredentialId(id) = bound_to {
            return Err(IdentityError::InvalidCredentialId(id).into());
        }
        bound_to.validate()?;
        self.insert(
            digest.to_string(),
            Entry {
                kind: CredentialKind::RawPublicKey,
                binding: bound_to,
                key: None,
                ni: Some(digest),
                created: now_secs(),
                revoked: false,
            },
        )
    }

    /// Adds the HTTP credential of a peer CSE: `user` and `secret` (16 to 64 bytes), bound
    /// to the CSE-ID `bound_to` ([`crate::peer_http`]).
    pub fn add_http_peer(
        &self,
        user: &str,
        secret: PskKey,
        bound_to: Binding,
    ) -> Result<CredentialInfo, CredentialError> {
        if !crate::peer_http::validate_user(user) {
            return Err(CredentialError::InvalidHttpUser(user.to_owned()));
        }
        if !bound_to.is_cse() {
            return Err(CredentialError::HttpPeerNotCse);
        }
        bound_to.validate()?;
        self.insert(
            user.to_owned(),
            Entry {
                kind: CredentialKind::HttpPeer,
                binding: bound_to,
                key: Some(secret),
                ni: None,
                created: now_secs(),
                revoked: false,
            },
        )
    }

    /// The identifier and binding of the active HTTP peer credential `presented` matches:
    /// Basic by user name and secret, Bearer by secret alone (every HTTP peer credential
    /// is compared, each in constant time).
    pub fn authenticate_http(
        &self,
        presented: &crate::peer_http::HttpCredential,
    ) -> Option<(String, Binding)> {
        use crate::peer_http::{secrets_equal, HttpCredential};
        let entries = self.entries.read();
        let matches = |e: &Entry| {
            e.kind == CredentialKind::HttpPeer
                && !e.revoked
                && e.key
                    .as_ref()
                    .is_some_and(|k| secrets_equal(k.expose(), presented.secret()))
        };
        match presented {
            HttpCredential::Basic { user, .. } => {
                let e = entries.get(user.as_str())?;
                matches(e).then(|| (user.clone(), e.binding.clone()))
            }
            HttpCredential::Bearer(_) => {
                let mut found = None;
                for (id, e) in entries.iter() {
                    if matches(e) && found.is_none() {
                        found = Some((id.clone(), e.binding.clone()));
                    }
                }
                found
            }
        }
    }

    fn insert(&self, id: String, entry: Entry) -> Result<CredentialInfo, CredentialError> {
        let _guard = self.writer.lock();
        let mut next = self.entries.read().clone();
        if next.contains_key(&id) {
            return Err(CredentialError::AlreadyExists(id));
        }
        let info = info(&id, &entry);
        next.insert(id, entry);
        self.persist(&next)?;
        *self.entries.write() = next;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(info)
    }

    /// Revokes a credential: it stays listed as revoked, its key is erased, and
    /// [`is_revoked`](Self::is_revoked) reports it at once.
    pub fn revoke(&self, credential: &str) -> Result<CredentialInfo, CredentialError> {
        let _guard = self.writer.lock();
        let mut next = self.entries.read().clone();
        let entry = next
            .get_mut(credential)
            .ok_or_else(|| CredentialError::NotFound(credential.to_owned()))?;
        entry.revoked = true;
        entry.key = None;
        let info = info(credential, entry);
        self.persist(&next)?;
        *self.entries.write() = next;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(info)
    }

    /// Every credential, without key material, ordered by identifier.
    pub fn list(&self) -> Vec<CredentialInfo> {
        self.entries
            .read()
            .iter()
            .map(|(id, e)| info(id, e))
            .collect()
    }

    /// Whether `credential` (a [`crate::PeerIdentity::credential`]) was revoked. Cheap: one
    /// read lock and a map lookup. Credentials the store does not hold (X.509 certificate
    /// fingerprints) are not revoked here: CRLs cover them.
    pub fn is_revoked(&self, credential: &str) -> bool {
        self.entries
            .read()
            .get(credential)
            .is_some_and(|e| e.revoked)
    }

    /// The key and binding of an active PSK credential (for the PSK callbacks).
    pub fn lookup_psk(&self, kpsa_id: &str) -> Option<(PskKey, Binding)> {
        let entries = self.entries.read();
        let entry = entries.get(kpsa_id)?;
        if entry.revoked || entry.kind != CredentialKind::Psk {
            return None;
        }
        Some((entry.key.clone()?, entry.binding.clone()))
    }

    /// The PSK credential this CSE presents as (D)TLS client to the CSE or AE known by
    /// any of `peer_ids` (a CSE's SP-relative and absolute CSE-ID, an AE's AE-ID as its
    /// credential binds it): the same KpsaID/Kpsa that peer presents here, since one
    /// pre-shared key serves both directions of the pair (TS-0003 8.2.1). Several active
    /// ones: the most recently added (a rotation adds the new key before revoking the old
    /// one).
    pub fn psk_for_peer(&self, peer_ids: &[&str]) -> PeerPsk {
        let entries = self.entries.read();
        let mut revoked = false;
        let mut best: Option<(&String, &Entry)> = None;
        for (id, e) in entries.iter() {
            let bound = matches!(&e.binding,
                Binding::Cse(c) | Binding::Ae(c) if peer_ids.contains(&c.as_str()));
            if !bound || e.kind != CredentialKind::Psk {
                continue;
            }
            if e.revoked || e.key.is_none() {
                revoked = true;
                continue;
            }
            if best.is_none_or(|(_, b)| e.created >= b.created) {
                best = Some((id, e));
            }
        }
        match best {
            Some((id, e)) => match &e.key {
                Some(key) => PeerPsk::Active {
                    kpsa_id: id.clone(),
                    key: key.clone(),
                },
                None => PeerPsk::Revoked,
            },
            None if revoked => PeerPsk::Revoked,
            None => PeerPsk::None,
        }
    }

    /// The identifier and binding of the active pinned key matching a DER
    /// SubjectPublicKeyInfo.
    pub fn lookup_raw_public_key(&self, spki_der: &[u8]) -> Option<(String, Binding)> {
        let entries = self.entries.read();
        entries.iter().find_map(|(id, e)| {
            let pinned = !e.revoked && e.ni.as_ref().is_some_and(|ni| ni.matches(spki_der));
            pinned.then(|| (id.clone(), e.binding.clone()))
        })
    }

    /// Re-reads the file (e.g. after `bastion credentials` changed it from another
    /// process).
    pub fn reload(&self) -> Result<(), CredentialError> {
        let _guard = self.writer.lock();
        let (entries, stamp) = self.load()?;
        *self.entries.write() = entries;
        *self.file_stamp.lock() = Some(stamp);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Re-reads the file only if it was replaced or modified since the last read or
    /// write; returns whether it did. Cheap enough to poll.
    pub fn reload_if_changed(&self) -> Result<bool, CredentialError> {
        let current = stamp_of(&self.path).map_err(|source| CredentialError::Io {
            path: self.path.clone(),
            source,
        })?;
        if *self.file_stamp.lock() == Some(current) {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    fn load(&self) -> Result<(Entries, FileStamp), CredentialError> {
        let io = |source| CredentialError::Io {
            path: self.path.clone(),
            source,
        };
        let stamp = stamp_of(&self.path).map_err(io)?;
        let data = fs::read(&self.path).map_err(io)?;
        let plain = sealed::unseal(&self.key, MAGIC, &data).map_err(|e| self.seal_error(e))?;
        let corrupt = |reason: String| CredentialError::Corrupt {
            path: self.path.clone(),
            reason,
        };
        let file: StoredFile =
            serde_json::from_slice(&plain).map_err(|e| corrupt(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(corrupt(format!("unknown version {}", file.version)));
        }
        let mut entries = Entries::new();
        for (id, stored) in file.credentials {
            stored
                .binding
                .validate()
                .map_err(|e| corrupt(e.to_string()))?;
            let (key, ni) = match stored.kind {
                CredentialKind::Psk => {
                    validate_kpsa_id(&id).map_err(|e| corrupt(e.to_string()))?;
                    (stored_key(&id, &stored).map_err(corrupt)?, None)
                }
                CredentialKind::RawPublicKey => (
                    None,
                    Some(NiDigest::parse(&id).map_err(|e| corrupt(e.to_string()))?),
                ),
                CredentialKind::HttpPeer => {
                    if !crate::peer_http::validate_user(&id) || !stored.binding.is_cse() {
                        return Err(corrupt(format!("bad HTTP peer credential {id}")));
                    }
                    (stored_key(&id, &stored).map_err(corrupt)?, None)
                }
            };
            entries.insert(
                id,
                Entry {
                    kind: stored.kind,
                    binding: stored.binding,
                    key,
                    ni,
                    created: stored.created,
                    revoked: stored.revoked,
                },
            );
        }
        Ok((entries, stamp))
    }

    fn seal_error(&self, e: SealError) -> CredentialError {
        match e {
            SealError::Io { path, source } => CredentialError::Io { path, source },
            SealError::NotSealed => CredentialError::NotAStore(self.path.clone()),
            SealError::Decrypt => CredentialError::Decrypt(self.path.clone()),
            SealError::Crypto(stack) => CredentialError::Crypto(stack),
        }
    }

    /// Encrypts and atomically replaces the file. The caller holds `writer`.
    fn persist(&self, entries: &Entries) -> Result<(), CredentialError> {
        let file = StoredFile {
            version: FORMAT_VERSION,
            credentials: entries
                .iter()
                .map(|(id, e)| {
                    let stored = StoredEntry {
                        kind: e.kind,
                        binding: e.binding.clone(),
                        key: e.key.as_ref().map(PskKey::to_hex),
                        created: e.created,
                        revoked: e.revoked,
                    };
                    (id.clone(), stored)
                })
                .collect(),
        };
        // Serialised into a buffer that wipes every copy it outgrows: the plaintext
        // holds every key of the store.
        let plain = crate::secret::to_json(&file).map_err(|e| CredentialError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let out = sealed::seal(&self.key, MAGIC, &plain).map_err(|e| self.seal_error(e))?;
        sealed::write_atomically(&self.path, &out).map_err(|e| self.seal_error(e))?;
        let stamp = stamp_of(&self.path).map_err(|source| CredentialError::Io {
            path: self.path.clone(),
            source,
        })?;
        *self.file_stamp.lock() = Some(stamp);
        Ok(())
    }
}

/// The key of a stored PSK or HTTP peer credential: present unless it was revoked.
fn stored_key(id: &str, stored: &StoredEntry) -> Result<Option<PskKey>, String> {
    match (&stored.key, stored.revoked) {
        (Some(hex), _) => PskKey::from_hex(hex)
            .map(Some)
            .map_err(|_| format!("bad key for {id}")),
        (None, true) => Ok(None),
        (None, false) => Err(format!("no key for {id}")),
    }
}

fn info(id: &str, e: &Entry) -> CredentialInfo {
    CredentialInfo {
        credential: id.to_owned(),
        kind: e.kind,
        binding: e.binding.clone(),
        created: e.created,
        revoked: e.revoked,
    }
}

fn stamp_of(path: &Path) -> std::io::Result<FileStamp> {
    let meta = fs::metadata(path)?;
    Ok((meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kpsa_id_rules() {
        assert!(validate_kpsa_id("test@onem2m.com").is_ok());
        assert!(validate_kpsa_id("a.b_c-1@x").is_ok());
        for bad in [
            "test",
            "@onem2m.com",
            "te st@onem2m.com",
            "a@",
            "a@b..c",
            "a@-b.c",
            "a@b@c",
            "ä@b.c",
        ] {
            assert!(
                matches!(
                    validate_kpsa_id(bad),
                    Err(CredentialError::InvalidKpsaId(_))
                ),
                "{bad}"
            );
        }
        let long = format!("{}@x.com", "a".repeat(130));
        assert!(validate_kpsa_id(&long).is_err());
    }

    #[test]
    fn key_lengths_and_redaction() {
        assert!(matches!(
            PskKey::new(&[0; 15]),
            Err(CredentialError::InvalidKeyLength)
        ));
        assert!(matches!(
            PskKey::new(&[0; 65]),
            Err(CredentialError::InvalidKeyLength)
        ));
        let key = PskKey::new(&[0xab; 16]).unwrap();
        assert_eq!(format!("{key:?}"), "PskKey(<16 bytes redacted>)");
        let store = StoreKey::from_hex(&"11".repeat(32)).unwrap();
        assert_eq!(format!("{store:?}"), "StoreKey(<redacted>)");
        assert!(matches!(
            StoreKey::from_hex("1122"),
            Err(CredentialError::BadStoreKey)
        ));
        assert!(matches!(
            PskKey::from_hex("zz"),
            Err(CredentialError::InvalidKeyLength)
        ));
    }
}
