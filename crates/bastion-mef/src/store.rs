//! The MEF's durable enrolment store: one sealed file (`bastion_tls::sealed`, AES-256-GCM
//! under the credential store's key, so Ke is encrypted at rest), rewritten atomically on
//! every change before the change is acknowledged. With `[mef] key-store` a record holds
//! the name of Ke in that store instead of Ke ([`KeHeld`]); the store reports the names of
//! the keys whose records expire or are revoked, and the MEF deletes them.
//!
//! Two processes write it: the running MEF (new enrolments) and the operator's `bastion
//! mef revoke`. Every change runs under an exclusive lock on `<file>.lock` and re-reads the
//! file first when another process changed it; every read re-reads it when its stamp
//! moved, so a revocation applies to the next fetch without a restart.
//!
//! Bounded: at most `max` records; expired records are dropped on every change, and
//! when the store is still full a new enrolment is refused (5000) rather than evicting a
//! live one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bastion_tls::sealed::{self, SealError};
use bastion_tls::StoreKey;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::MefError;
use crate::rules::{Enrolment, Grant, KeHeld};
use bastion_keystore::KeyName;

const MAGIC: &[u8; 8] = b"BSTNMEF1";
const FORMAT_VERSION: u32 = 1;

/// Failures of the store itself (not refusals of a request).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The sealed file could not be read, opened or written.
    #[error("{0}: {1}")]
    Sealed(PathBuf, SealError),
    /// The lock file could not be opened or locked.
    #[error("{path}: cannot lock: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The decrypted content is not a valid store.
    #[error("{0}: corrupt enrolment store: {1}")]
    Corrupt(PathBuf, String),
}

#[derive(Default, Serialize, Deserialize)]
struct StoredFile {
    version: u32,
    enrolments: BTreeMap<String, StoredEnrolment>,
    revoked_enrolees: BTreeSet<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredEnrolment {
    /// Ke in hex, when no key store holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ke: Option<Zeroizing<String>>,
    /// The name of Ke in the MEF's key store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ke_name: Option<String>,
    enrolee_id: String,
    credential: String,
    created: i64,
    expires: i64,
    grants: Vec<Grant>,
    revoked: bool,
}

/// What the operator sees of an enrolment (no key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentInfo {
    /// KeID.
    pub ke_id: String,
    /// The enrolee ID.
    pub enrolee_id: String,
    /// How the enrolee authenticated.
    pub credential: String,
    /// Unix seconds.
    pub expires: i64,
    /// Revoked by the operator.
    pub revoked: bool,
}

impl StoredEnrolment {
    /// The name of its key in the key store, if it is there.
    fn key_name(&self) -> Option<KeyName> {
        self.ke_name.as_deref().and_then(|n| KeyName::new(n).ok())
    }
}

/// What a revocation changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Enrolments newly revoked.
    pub count: usize,
    /// Their keys in the key store, to delete.
    pub keys: Vec<KeyName>,
}

/// Inode, size and modification time of the file, to notice another process's changes.
type FileStamp = (u64, u64, i64, i64);

fn stamp_of(path: &Path) -> std::io::Result<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec()))
}

struct Loaded {
    file: StoredFile,
    stamp: Option<FileStamp>,
}

/// A handle on the store file.
pub struct EnrolmentStore {
    path: PathBuf,
    lock_path: PathBuf,
    key: StoreKey,
    max: usize,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for EnrolmentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolmentStore")
            .field("path", &self.path)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl EnrolmentStore {
    /// Opens the store at `path`, creating an empty one when it is missing.
    pub fn open(path: &Path, key: StoreKey, max: usize) -> Result<EnrolmentStore, StoreError> {
        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".lock");
        let store = EnrolmentStore {
            path: path.to_owned(),
            lock_path: PathBuf::from(lock_name),
            key,
            max,
            loaded: Mutex::new(Loaded {
                file: StoredFile {
                    version: FORMAT_VERSION,
                    ..StoredFile::default()
                },
                stamp: None,
            }),
        };
        store.locked(|_| Ok(false))?;
        Ok(store)
    }

    /// Runs `change` on the up-to-date content under the file lock; persists when it
    /// returns true.
    fn locked<T>(
        &self,
        change: impl FnOnce(&mut StoredFile) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>
    where
        T: Changed,
    {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|source| self.lock_error(source))?;
        lock.lock().map_err(|source| self.lock_error(source))?;
        let mut loaded = self.loaded.lock();
        self.refresh(&mut loaded)?;
        let out = change(&mut loaded.file)?;
        if out.changed() || loaded.stamp.is_none() {
            let plain = bastion_tls::secret::to_json(&loaded.file)
                .map_err(|e| StoreError::Corrupt(self.path.clone(), e.to_string()))?;
            let sealed = sealed::seal(&self.key, MAGIC, &plain).map_err(|e| self.sealed(e))?;
            sealed::write_atomically(&self.path, &sealed).map_err(|e| self.sealed(e))?;
            loaded.stamp = stamp_of(&self.path).ok();
        }
        drop(lock);
        Ok(out)
    }

    fn sealed(&self, e: SealError) -> StoreError {
        StoreError::Sealed(self.path.clone(), e)
    }

    fn lock_error(&self, source: std::io::Error) -> StoreError {
        StoreError::Lock {
            path: self.lock_path.clone(),
            source,
        }
    }

    /// Re-reads the file when another process changed it since the last read or write.
    fn refresh(&self, loaded: &mut Loaded) -> Result<(), StoreError> {
        let io = |source| {
            self.sealed(SealError::Io {
                path: self.path.clone(),
                source,
            })
        };
        let stamp = match stamp_of(&self.path) {
            Ok(stamp) => stamp,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(io(source)),
        };
        if loaded.stamp == Some(stamp) {
            return Ok(());
        }
        let data = std::fs::read(&self.path).map_err(io)?;
        let plain = sealed::unseal(&self.key, MAGIC, &data).map_err(|e| self.sealed(e))?;
        let file: StoredFile = serde_json::from_slice(&plain)
            .map_err(|e| StoreError::Corrupt(self.path.clone(), e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(StoreError::Corrupt(
                self.path.clone(),
                format!("unknown version {}", file.version),
            ));
        }
        loaded.file = file;
        loaded.stamp = Some(stamp);
        Ok(())
    }

    /// Records `enrolment` durably at `now`. Refused when its enrolee is revoked, when its
    /// KeID is already recorded (a replay), or when the store is full of live records.
    /// Expired records are dropped first; returns the names of their keys in the key
    /// store, to delete.
    pub fn record(&self, enrolment: &Enrolment, now: i64) -> Result<Vec<KeyName>, MefError> {
        let max = self.max;
        self.locked(|file| {
            if file.revoked_enrolees.contains(&enrolment.enrolee_id) {
                return Ok(Outcome::Refused(MefError::Revoked(
                    enrolment.enrolee_id.clone(),
                )));
            }
            if file.enrolments.contains_key(&enrolment.ke_id) {
                return Ok(Outcome::Refused(MefError::Replay(
                    "this KeID is already enrolled".into(),
                )));
            }
            let dropped = drop_expired(file, now);
            if file.enrolments.len() >= max {
                return Ok(Outcome::Refused(MefError::Internal(
                    "the enrolment store is full".into(),
                )));
            }
            let (ke, ke_name) = match &enrolment.ke {
                KeHeld::Sealed(bytes) => (
                    Some(bastion_keys::hex::encode_secret(bytes.as_slice())),
                    None,
                ),
                KeHeld::InStore(name) => (None, Some(name.as_str().to_owned())),
            };
            file.enrolments.insert(
                enrolment.ke_id.clone(),
                StoredEnrolment {
                    ke,
                    ke_name,
                    enrolee_id: enrolment.enrolee_id.clone(),
                    credential: enrolment.credential.clone(),
                    created: enrolment.created,
                    expires: enrolment.expires,
                    grants: enrolment.grants.clone(),
                    revoked: false,
                },
            );
            Ok(Outcome::Done(dropped.keys))
        })
        .map_err(|e| {
            tracing::error!(error = %e, "enrolment not recorded");
            MefError::Internal("the enrolment could not be recorded".into())
        })?
        .into_result()
    }

    /// The enrolment recorded under `ke_id`.
    pub fn get(&self, ke_id: &str) -> Result<Option<Enrolment>, StoreError> {
        let mut loaded = self.loaded.lock();
        self.refresh(&mut loaded)?;
        let Some(stored) = loaded.file.enrolments.get(ke_id) else {
            return Ok(None);
        };
        let corrupt = || StoreError::Corrupt(self.path.clone(), format!("bad Ke for {ke_id}"));
        let ke = match (&stored.ke, &stored.ke_name) {
            (Some(hex), None) => {
                let bytes = bastion_keys::hex::decode(hex).ok_or_else(corrupt)?;
                let ke: [u8; 32] = bytes.as_slice().try_into().map_err(|_| corrupt())?;
                KeHeld::Sealed(Zeroizing::new(ke))
            }
            (None, Some(_)) => KeHeld::InStore(stored.key_name().ok_or_else(corrupt)?),
            _ => return Err(corrupt()),
        };
        Ok(Some(Enrolment {
            ke_id: ke_id.to_owned(),
            ke,
            enrolee_id: stored.enrolee_id.clone(),
            credential: stored.credential.clone(),
            created: stored.created,
            expires: stored.expires,
            grants: stored.grants.clone(),
            revoked: stored.revoked || loaded.file.revoked_enrolees.contains(&stored.enrolee_id),
        }))
    }

    /// Whether `enrolee_id` was revoked.
    pub fn is_revoked(&self, enrolee_id: &str) -> Result<bool, StoreError> {
        let mut loaded = self.loaded.lock();
        self.refresh(&mut loaded)?;
        Ok(loaded.file.revoked_enrolees.contains(enrolee_id))
    }

    /// Revokes `enrolee_id`: its enrolments stop releasing keys and it cannot enrol
    /// again. Returns how many enrolments were revoked and their keys in the key store.
    pub fn revoke(&self, enrolee_id: &str) -> Result<Revocation, StoreError> {
        self.locked(|file| {
            let mut revocation = Revocation {
                count: 0,
                keys: Vec::new(),
            };
            for e in file.enrolments.values_mut() {
                if e.enrolee_id == enrolee_id && !e.revoked {
                    e.revoked = true;
                    revocation.count += 1;
                    revocation.keys.extend(e.key_name());
                }
            }
            file.revoked_enrolees.insert(enrolee_id.to_owned());
            Ok(revocation)
        })
    }

    /// Drops the records expired at `now`; returns the names of their keys in the key
    /// store, to delete. Writes only when something was dropped.
    pub fn expire(&self, now: i64) -> Result<Vec<KeyName>, StoreError> {
        self.locked(|file| Ok(drop_expired(file, now)))
            .map(|dropped| dropped.keys)
    }

    /// Every enrolment, without keys, by KeID.
    pub fn list(&self) -> Result<Vec<EnrolmentInfo>, StoreError> {
        let mut loaded = self.loaded.lock();
        self.refresh(&mut loaded)?;
        let file = &loaded.file;
        Ok(file
            .enrolments
            .iter()
            .map(|(id, e)| EnrolmentInfo {
                ke_id: id.clone(),
                enrolee_id: e.enrolee_id.clone(),
                credential: e.credential.clone(),
                expires: e.expires,
                revoked: e.revoked || file.revoked_enrolees.contains(&e.enrolee_id),
            })
            .collect())
    }

    /// The revoked enrolee IDs.
    pub fn revoked_enrolees(&self) -> Result<Vec<String>, StoreError> {
        let mut loaded = self.loaded.lock();
        self.refresh(&mut loaded)?;
        Ok(loaded.file.revoked_enrolees.iter().cloned().collect())
    }
}

/// Removes the expired records of `file`.
fn drop_expired(file: &mut StoredFile, now: i64) -> Dropped {
    let mut dropped = Dropped {
        count: 0,
        keys: Vec::new(),
    };
    file.enrolments.retain(|_, e| {
        let live = e.expires > now;
        if !live {
            dropped.count += 1;
            dropped.keys.extend(e.key_name());
        }
        live
    });
    dropped
}

/// Whether a change must be written.
trait Changed {
    fn changed(&self) -> bool;
}

impl Changed for bool {
    fn changed(&self) -> bool {
        *self
    }
}

impl Changed for Revocation {
    fn changed(&self) -> bool {
        true
    }
}

/// What dropping expired records removed: written only when there was something.
struct Dropped {
    count: usize,
    /// The names of their keys in the key store.
    keys: Vec<KeyName>,
}

impl Changed for Dropped {
    fn changed(&self) -> bool {
        self.count > 0
    }
}

enum Outcome {
    Done(Vec<KeyName>),
    Refused(MefError),
}

impl Changed for Outcome {
    fn changed(&self) -> bool {
        matches!(self, Outcome::Done(_))
    }
}

impl Outcome {
    fn into_result(self) -> Result<Vec<KeyName>, MefError> {
        match self {
            Outcome::Done(dropped) => Ok(dropped),
            Outcome::Refused(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enrolment(ke_id: &str, enrolee: &str, expires: i64) -> Enrolment {
        Enrolment {
            ke_id: ke_id.into(),
            ke: KeHeld::Sealed(Zeroizing::new([9u8; 32])),
            enrolee_id: enrolee.into(),
            credential: "kpm:dev1@factory.example.com".into(),
            created: 0,
            expires,
            grants: vec![],
            revoked: false,
        }
    }

    #[test]
    fn records_survive_reopening_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrolments.sealed");
        let key = StoreKey::generate().unwrap();
        let store = EnrolmentStore::open(&path, key.clone(), 10).unwrap();
        store
            .record(&enrolment("a1@mef.example.com", "Csensor1", 100), 0)
            .unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(8).any(|w| w == b"09090909"), "Ke in clear");
        assert!(!raw.windows(8).any(|w| w == b"Csensor1"), "not encrypted");
        let again = EnrolmentStore::open(&path, key, 10).unwrap();
        let e = again.get("a1@mef.example.com").unwrap().unwrap();
        assert_eq!(e.ke, KeHeld::Sealed(Zeroizing::new([9u8; 32])));
        assert_eq!((e.enrolee_id.as_str(), e.expires), ("Csensor1", 100));
        let wrong = EnrolmentStore::open(&path, StoreKey::generate().unwrap(), 10);
        assert!(matches!(
            wrong,
            Err(StoreError::Sealed(_, SealError::Decrypt))
        ));
    }

    #[test]
    fn replays_revoked_enrolees_and_a_full_store_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrolments.sealed");
        let key = StoreKey::generate().unwrap();
        let store = EnrolmentStore::open(&path, key.clone(), 2).unwrap();
        store
            .record(&enrolment("a1@m.example", "Ca", 100), 0)
            .unwrap();
        assert!(matches!(
            store.record(&enrolment("a1@m.example", "Ca", 100), 0),
            Err(MefError::Replay(_))
        ));
        store
            .record(&enrolment("a2@m.example", "Cb", 100), 0)
            .unwrap();
        assert!(matches!(
            store.record(&enrolment("a3@m.example", "Cc", 100), 0),
            Err(MefError::Internal(_))
        ));
        // Expired records make room.
        store
            .record(&enrolment("a3@m.example", "Cc", 300), 150)
            .unwrap();
        assert_eq!(store.list().unwrap().len(), 1);

        // Revocation by another handle (another process) applies to this one.
        let operator = EnrolmentStore::open(&path, key, 2).unwrap();
        assert_eq!(operator.revoke("Cc").unwrap().count, 1);
        assert!(store.get("a3@m.example").unwrap().unwrap().revoked);
        assert!(store.is_revoked("Cc").unwrap());
        assert!(matches!(
            store.record(&enrolment("a4@m.example", "Cc", 300), 150),
            Err(MefError::Revoked(_))
        ));
    }

    #[test]
    fn a_key_in_a_store_is_recorded_by_name_and_reported_when_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrolments.sealed");
        let key = StoreKey::generate().unwrap();
        let store = EnrolmentStore::open(&path, key.clone(), 10).unwrap();
        let in_store = |ke_id: &str, enrolee: &str, name: &str, expires| Enrolment {
            ke: KeHeld::InStore(KeyName::new(name).unwrap()),
            ..enrolment(ke_id, enrolee, expires)
        };
        let none = store
            .record(&in_store("b1@m.example", "Ca", "mef.ke.b1", 100), 0)
            .unwrap();
        assert!(none.is_empty());
        store
            .record(&in_store("b2@m.example", "Cb", "mef.ke.b2", 100), 0)
            .unwrap();
        store
            .record(&enrolment("b3@m.example", "Cb", 100), 0)
            .unwrap();
        let again = EnrolmentStore::open(&path, key, 10).unwrap();
        let e = again.get("b1@m.example").unwrap().unwrap();
        assert_eq!(e.ke, KeHeld::InStore(KeyName::new("mef.ke.b1").unwrap()));

        let revocation = again.revoke("Cb").unwrap();
        assert_eq!(revocation.count, 2);
        assert_eq!(revocation.keys, vec![KeyName::new("mef.ke.b2").unwrap()]);
        // Expiry drops every record and names the keys of those in the store.
        assert!(store.expire(99).unwrap().is_empty());
        let mut gone = store.expire(100).unwrap();
        gone.sort();
        assert_eq!(
            gone,
            vec![
                KeyName::new("mef.ke.b1").unwrap(),
                KeyName::new("mef.ke.b2").unwrap()
            ]
        );
        assert!(again.list().unwrap().is_empty());
        // Dropped by the next record, too.
        store
            .record(&in_store("b4@m.example", "Cd", "mef.ke.b4", 200), 0)
            .unwrap();
        let dropped = store
            .record(&enrolment("b5@m.example", "Ce", 300), 250)
            .unwrap();
        assert_eq!(dropped, vec![KeyName::new("mef.ke.b4").unwrap()]);
    }
}
