//! The MEF's durable enrolment store: one sealed file (`bastion_tls::sealed`, AES-256-GCM
//! under the credential store's key, so Ke is encrypted at rest), rewritten atomically on
//! every change before the change is acknowledged.
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
use crate::rules::{Enrolment, Grant};

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
    ke: Zeroizing<String>,
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
    pub fn record(&self, enrolment: &Enrolment, now: i64) -> Result<(), MefError> {
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
            file.enrolments.retain(|_, e| e.expires > now);
            if file.enrolments.len() >= max {
                return Ok(Outcome::Refused(MefError::Internal(
                    "the enrolment store is full".into(),
                )));
            }
            file.enrolments.insert(
                enrolment.ke_id.clone(),
                StoredEnrolment {
                    ke: bastion_keys::hex::encode_secret(enrolment.ke.as_slice()),
                    enrolee_id: enrolment.enrolee_id.clone(),
                    credential: enrolment.credential.clone(),
                    created: enrolment.created,
                    expires: enrolment.expires,
                    grants: enrolment.grants.clone(),
                    revoked: false,
                },
            );
            Ok(Outcome::Done)
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
        let bytes = bastion_keys::hex::decode(&stored.ke).ok_or_else(corrupt)?;
        let ke: [u8; 32] = bytes.as_slice().try_into().map_err(|_| corrupt())?;
        let ke = Zeroizing::new(ke);
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
    /// again. Returns how many enrolments were revoked.
    pub fn revoke(&self, enrolee_id: &str) -> Result<usize, StoreError> {
        self.locked(|file| {
            let mut count = 0;
            for e in file.enrolments.values_mut() {
                if e.enrolee_id == enrolee_id && !e.revoked {
                    e.revoked = true;
                    count += 1;
                }
            }
            file.revoked_enrolees.insert(enrolee_id.to_owned());
            Ok(Count(count))
        })
        .map(|Count(n)| n)
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

/// Whether a change must be written.
trait Changed {
    fn changed(&self) -> bool;
}

impl Changed for bool {
    fn changed(&self) -> bool {
        *self
    }
}

struct Count(usize);

impl Changed for Count {
    fn changed(&self) -> bool {
        true
    }
}

enum Outcome {
    Done,
    Refused(MefError),
}

impl Changed for Outcome {
    fn changed(&self) -> bool {
        matches!(self, Outcome::Done)
    }
}

impl Outcome {
    fn into_result(self) -> Result<(), MefError> {
        match self {
            Outcome::Done => Ok(()),
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
            ke: Zeroizing::new([9u8; 32]),
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
        assert_eq!(e.ke.as_slice(), &[9u8; 32]);
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
        assert_eq!(operator.revoke("Cc").unwrap(), 1);
        assert!(store.get("a3@m.example").unwrap().unwrap().revoked);
        assert!(store.is_revoked("Cc").unwrap());
        assert!(matches!(
            store.record(&enrolment("a4@m.example", "Cc", 300), 150),
            Err(MefError::Revoked(_))
        ));
    }
}
