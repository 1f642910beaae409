//! The MEF's durable enrolment store: an append-only journal of individually sealed
//! entries (`bastion_tls::sealed`, AES-256-GCM under the credential store's key, so Ke
//! is encrypted at rest), with the index of live records in memory. An enrolment appends
//! one entry and fsyncs it before it is acknowledged, so its cost does not grow with the
//! number of records; the journal is rewritten (compacted, atomically) only when its dead
//! entries outnumber the live ones. With `[mef] key-store` a record holds the name of Ke
//! in that store instead of Ke ([`KeHeld`]); the store reports the names of the keys
//! whose records expire or are revoked, and the MEF deletes them. Layout:
//! docs/provisioning.md, "The enrolment store".
//!
//! Two processes write it: the running MEF (new enrolments) and the operator's `bastion
//! mef revoke`. Every change runs under an exclusive lock on `<file>.lock` after reading
//! the entries another process appended (only the new tail: the handle remembers how far
//! it read, and its own appends move that mark without a re-read); every read does the
//! same when the file's stamp moved, so a revocation applies to the next fetch without a
//! restart. A file in the earlier format (one sealed JSON document) is read and rewritten
//! as a journal by the first change.
//!
//! Bounded: at most `max` records; expired records are dropped on every change, and
//! when the store is still full a new enrolment is refused (5000) rather than evicting a
//! live one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bastion_tls::sealed::{self, SealError};
use bastion_tls::StoreKey;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::MefError;
use crate::rules::{Enrolment, Grant, KeHeld};
use bastion_keystore::KeyName;

/// The earlier format: one sealed JSON document of every record.
const LEGACY_MAGIC: &[u8; 8] = b"BSTNMEF1";
const LEGACY_VERSION: u32 = 1;
/// Opens a journal, followed by its generation.
const JOURNAL_MAGIC: &[u8; 8] = b"BSTNMEJ1";
/// Each journal entry is a sealed file of this kind.
const ENTRY_MAGIC: &[u8; 8] = b"BSTNMER1";
const GENERATION_LEN: usize = 16;
const HEADER_LEN: u64 = (JOURNAL_MAGIC.len() + GENERATION_LEN) as u64;
/// Largest sealed entry accepted (a record with its grants is well under 1 KiB).
const MAX_ENTRY_LEN: u32 = 256 * 1024;
/// Compaction runs when the journal holds more than twice its live entries plus this.
const COMPACT_SLACK: usize = 64;

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

/// The earlier format's document; also the in-memory index.
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

/// One journal entry. Externally tagged, so reading it never buffers Ke outside the
/// wiped plaintext.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Entry {
    /// A new record.
    Enrol {
        ke_id: String,
        record: StoredEnrolment,
    },
    /// The enrolee's records are revoked and it cannot enrol again.
    Revoke { enrolee_id: String },
    /// The records expired at `now` are gone.
    Expire { now: i64 },
}

/// What is sealed for one entry: the entry bound to its journal and its place in it, so
/// an entry cannot be moved to another position or another journal under the same key.
#[derive(Serialize, Deserialize)]
struct Framed<E> {
    generation: String,
    offset: u64,
    entry: E,
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

fn stamp_of(meta: &std::fs::Metadata) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    (meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec())
}

/// The live records, as the entries read so far leave them.
struct Index {
    enrolments: BTreeMap<String, StoredEnrolment>,
    revoked_enrolees: BTreeSet<String>,
    /// No record expires before this: expiry scans the records only from then on.
    next_expiry: i64,
}

/// What applying entries did.
#[derive(Default)]
struct Effects {
    revocation_count: usize,
    /// Keys in the key store of the records revoked or expired.
    keys: Vec<KeyName>,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            enrolments: BTreeMap::new(),
            revoked_enrolees: BTreeSet::new(),
            next_expiry: i64::MAX,
        }
    }
}

impl Index {
    fn from_legacy(file: StoredFile) -> Index {
        let mut index = Index {
            enrolments: file.enrolments,
            revoked_enrolees: file.revoked_enrolees,
            next_expiry: 0,
        };
        index.next_expiry = index.earliest_expiry();
        index
    }

    fn earliest_expiry(&self) -> i64 {
        self.enrolments
            .values()
            .map(|e| e.expires)
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Whether some record expired at `now`; O(1) until the earliest one does.
    fn any_expired(&self, now: i64) -> bool {
        now >= self.next_expiry && self.enrolments.values().any(|e| e.expires <= now)
    }

    fn apply(&mut self, entry: Entry, effects: &mut Effects) {
        match entry {
            Entry::Enrol { ke_id, record } => {
                self.next_expiry = self.next_expiry.min(record.expires);
                self.enrolments.insert(ke_id, record);
            }
            Entry::Revoke { enrolee_id } => {
                for e in self.enrolments.values_mut() {
                    if e.enrolee_id == enrolee_id && !e.revoked {
                        e.revoked = true;
                        effects.revocation_count += 1;
                        effects.keys.extend(e.key_name());
                    }
                }
                self.revoked_enrolees.insert(enrolee_id);
            }
            Entry::Expire { now } => {
                if now < self.next_expiry {
                    return;
                }
                self.enrolments.retain(|_, e| {
                    let live = e.expires > now;
                    if !live {
                        effects.keys.extend(e.key_name());
                    }
                    live
                });
                self.next_expiry = self.earliest_expiry();
            }
        }
    }

    /// Entries that rebuild this index in a fresh journal.
    fn live_entries(&self) -> impl Iterator<Item = EntryRef<'_>> {
        self.enrolments
            .iter()
            .map(|(ke_id, record)| EntryRef::Enrol { ke_id, record })
            .chain(
                self.revoked_enrolees
                    .iter()
                    .map(|enrolee_id| EntryRef::Revoke { enrolee_id }),
            )
    }

    fn live_count(&self) -> usize {
        self.enrolments.len() + self.revoked_enrolees.len()
    }
}

/// [`Entry`] borrowed, to write without copying Ke (same serialization).
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
enum EntryRef<'a> {
    Enrol {
        ke_id: &'a str,
        record: &'a StoredEnrolment,
    },
    Revoke {
        enrolee_id: &'a str,
    },
}

/// How far this handle has read the file.
struct Position {
    /// `None` for a file in the earlier format.
    generation: Option<[u8; GENERATION_LEN]>,
    /// End of the last complete entry read or written.
    offset: u64,
    /// Entries in the journal up to `offset`.
    entries: usize,
    stamp: FileStamp,
}

struct Loaded {
    index: Index,
    /// `None` before the first read, when the file is missing, or after a failed write
    /// (the next read starts over).
    at: Option<Position>,
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
    /// Opens the store at `path`, creating an empty one when it is missing and rewriting
    /// one in the earlier format as a journal.
    pub fn open(path: &Path, key: StoreKey, max: usize) -> Result<EnrolmentStore, StoreError> {
        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".lock");
        let store = EnrolmentStore {
            path: path.to_owned(),
            lock_path: PathBuf::from(lock_name),
            key,
            max,
            loaded: Mutex::new(Loaded {
                index: Index::default(),
                at: None,
            }),
        };
        store.locked(|_| Ok(((), Vec::new())))?;
        Ok(store)
    }

    /// Under the file lock, on the up-to-date index: `plan` says what to answer and which
    /// entries to append; they are appended durably, then applied to the index. Creates,
    /// converts or compacts the journal when due.
    fn locked<T>(
        &self,
        plan: impl FnOnce(&Index) -> Result<(T, Vec<Entry>), StoreError>,
    ) -> Result<(T, Effects), StoreError> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|source| self.lock_error(source))?;
        lock.lock().map_err(|source| self.lock_error(source))?;
        let mut loaded = self.loaded.lock();
        let loaded = &mut *loaded;
        self.refresh(loaded)?;
        let (out, entries) = plan(&loaded.index)?;
        let written = match &loaded.at {
            Some(at) if at.generation.is_some() => self.append(at, &entries),
            // Missing, or in the earlier format: written whole below.
            _ => Ok(None),
        };
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                // What reached the file is unknown: read it again from the start.
                loaded.at = None;
                return Err(e);
            }
        };
        let mut effects = Effects::default();
        for entry in entries {
            loaded.index.apply(entry, &mut effects);
        }
        match (written, &mut loaded.at) {
            (Some((offset, stamp, count)), Some(at)) => {
                at.offset = offset;
                at.stamp = stamp;
                at.entries += count;
                if at.entries > 2 * loaded.index.live_count() + COMPACT_SLACK {
                    // Should the rewrite fail, the next read starts over.
                    loaded.at = None;
                    loaded.at = Some(self.rewrite(&loaded.index)?);
                }
            }
            // A journal, and nothing to append.
            (None, Some(at)) if at.generation.is_some() => {}
            // No file yet, or one in the earlier format.
            _ => {
                loaded.at = None;
                loaded.at = Some(self.rewrite(&loaded.index)?);
            }
        }
        drop(lock);
        Ok((out, effects))
    }

    fn sealed(&self, e: SealError) -> StoreError {
        StoreError::Sealed(self.path.clone(), e)
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        self.sealed(SealError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt(self.path.clone(), reason.into())
    }

    fn lock_error(&self, source: std::io::Error) -> StoreError {
        StoreError::Lock {
            path: self.lock_path.clone(),
            source,
        }
    }

    /// `entry` sealed as the journal entry at `offset`: its length (4 bytes, big-endian)
    /// and the sealed frame.
    fn frame<E: Serialize>(
        &self,
        generation: &[u8; GENERATION_LEN],
        offset: u64,
        entry: E,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let framed = Framed {
            generation: bastion_keys::hex::encode(generation),
            offset,
            entry,
        };
        let plain =
            bastion_tls::secret::to_json(&framed).map_err(|e| self.corrupt(e.to_string()))?;
        let sealed = sealed::seal(&self.key, ENTRY_MAGIC, &plain).map_err(|e| self.sealed(e))?;
        let len = u32::try_from(sealed.len())
            .ok()
            .filter(|&len| len <= MAX_ENTRY_LEN)
            .ok_or_else(|| self.corrupt("entry too large"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&sealed);
        Ok(())
    }

    /// Appends `entries` after `at` and syncs them; a torn tail left by a crash (an
    /// incomplete entry after `at`, never acknowledged) is cut off first. Returns the new
    /// end, stamp and number of entries written, or `None` when there was nothing to write.
    fn append(
        &self,
        at: &Position,
        entries: &[Entry],
    ) -> Result<Option<(u64, FileStamp, usize)>, StoreError> {
        if entries.is_empty() {
            return Ok(None);
        }
        let Some(generation) = &at.generation else {
            return Ok(None);
        };
        let mut data = Vec::new();
        for entry in entries {
            let offset = at.offset + data.len() as u64;
            self.frame(generation, offset, entry, &mut data)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        let meta = file.metadata().map_err(|e| self.io(e))?;
        if stamp_of(&meta).0 != at.stamp.0 {
            return Err(self.corrupt("the journal was replaced while locked"));
        }
        if meta.len() < at.offset {
            return Err(self.corrupt("the journal shrank while locked"));
        }
        if meta.len() > at.offset {
            tracing::warn!(path = %self.path.display(), bytes = meta.len() - at.offset,
                "enrolment store: incomplete last entry (an interrupted write) removed");
            file.set_len(at.offset).map_err(|e| self.io(e))?;
        }
        file.seek(SeekFrom::Start(at.offset))
            .map_err(|e| self.io(e))?;
        file.write_all(&data).map_err(|e| self.io(e))?;
        file.sync_data().map_err(|e| self.io(e))?;
        let stamp = stamp_of(&file.metadata().map_err(|e| self.io(e))?);
        Ok(Some((at.offset + data.len() as u64, stamp, entries.len())))
    }

    /// Writes the live records as a fresh journal (new generation), atomically.
    fn rewrite(&self, index: &Index) -> Result<Position, StoreError> {
        let mut generation = [0u8; GENERATION_LEN];
        openssl::rand::rand_bytes(&mut generation)
            .map_err(|e| self.sealed(SealError::Crypto(e)))?;
        let mut data = Vec::new();
        data.extend_from_slice(JOURNAL_MAGIC);
        data.extend_from_slice(&generation);
        let mut entries = 0;
        for entry in index.live_entries() {
            let offset = data.len() as u64;
            self.frame(&generation, offset, entry, &mut data)?;
            entries += 1;
        }
        sealed::write_atomically(&self.path, &data).map_err(|e| self.sealed(e))?;
        let meta = std::fs::metadata(&self.path).map_err(|e| self.io(e))?;
        Ok(Position {
            generation: Some(generation),
            offset: data.len() as u64,
            entries,
            stamp: stamp_of(&meta),
        })
    }

    /// Reads what changed in the file since this handle last read or wrote it: nothing
    /// when its stamp is the same, the new entries when only entries were appended, all
    /// of it when it was replaced.
    fn refresh(&self, loaded: &mut Loaded) -> Result<(), StoreError> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Removed under the running MEF: the next change writes what it holds.
                loaded.at = None;
                return Ok(());
            }
            Err(e) => return Err(self.io(e)),
        };
        let stamp = stamp_of(&file.metadata().map_err(|e| self.io(e))?);
        if loaded.at.as_ref().is_some_and(|at| at.stamp == stamp) {
            return Ok(());
        }
        let mut magic = [0u8; 8];
        file.read_exact(&mut magic).map_err(|e| self.io(e))?;
        if &magic == LEGACY_MAGIC {
            let mut data = magic.to_vec();
            file.read_to_end(&mut data).map_err(|e| self.io(e))?;
            let plain =
                sealed::unseal(&self.key, LEGACY_MAGIC, &data).map_err(|e| self.sealed(e))?;
            let legacy: StoredFile =
                serde_json::from_slice(&plain).map_err(|e| self.corrupt(e.to_string()))?;
            if legacy.version != LEGACY_VERSION {
                return Err(self.corrupt(format!("unknown version {}", legacy.version)));
            }
            loaded.index = Index::from_legacy(legacy);
            loaded.at = Some(Position {
                generation: None,
                offset: data.len() as u64,
                entries: 0,
                stamp,
            });
            return Ok(());
        }
        if &magic != JOURNAL_MAGIC {
            return Err(self.sealed(SealError::NotSealed));
        }
        let mut generation = [0u8; GENERATION_LEN];
        file.read_exact(&mut generation).map_err(|e| self.io(e))?;
        let (mut offset, mut entries) = match &loaded.at {
            Some(at) if at.generation == Some(generation) && stamp.1 >= at.offset => {
                (at.offset, at.entries)
            }
            _ => {
                loaded.index = Index::default();
                (HEADER_LEN, 0)
            }
        };
        file.seek(SeekFrom::Start(offset)).map_err(|e| self.io(e))?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).map_err(|e| self.io(e))?;
        let mut rest = &tail[..];
        let mut effects = Effects::default();
        // An incomplete last entry is a write in progress or one a crash interrupted
        // (never acknowledged): not read, and cut off by the next append.
        while let Some(len) = rest.get(..4) {
            let len = u32::from_be_bytes(len.try_into().unwrap_or_default());
            if len > MAX_ENTRY_LEN {
                return Err(self.corrupt(format!("entry at {offset} too large")));
            }
            let Some(frame) = rest.get(4..4 + len as usize) else {
                break;
            };
            let plain =
                sealed::unseal(&self.key, ENTRY_MAGIC, frame).map_err(|e| self.sealed(e))?;
            let framed: Framed<Entry> =
                serde_json::from_slice(&plain).map_err(|e| self.corrupt(e.to_string()))?;
            if framed.offset != offset
                || framed.generation != bastion_keys::hex::encode(&generation)
            {
                return Err(self.corrupt(format!("entry at {offset} is out of place")));
            }
            loaded.index.apply(framed.entry, &mut effects);
            offset += 4 + u64::from(len);
            entries += 1;
            rest = &rest[4 + len as usize..];
        }
        loaded.at = Some(Position {
            generation: Some(generation),
            offset,
            entries,
            stamp,
        });
        Ok(())
    }

    /// Records `enrolment` durably at `now`. Refused when its enrolee is revoked, when its
    /// KeID is already recorded (a replay), or when the store is full of live records.
    /// Expired records are dropped first; returns the names of their keys in the key
    /// store, to delete.
    pub fn record(&self, enrolment: &Enrolment, now: i64) -> Result<Vec<KeyName>, MefError> {
        let max = self.max;
        let (refusal, effects) = self
            .locked(|index| {
                if index.revoked_enrolees.contains(&enrolment.enrolee_id) {
                    let refused = MefError::Revoked(enrolment.enrolee_id.clone());
                    return Ok((Some(refused), Vec::new()));
                }
                if index.enrolments.contains_key(&enrolment.ke_id) {
                    let refused = MefError::Replay("this KeID is already enrolled".into());
                    return Ok((Some(refused), Vec::new()));
                }
                let mut entries = Vec::new();
                let mut live = index.enrolments.len();
                if index.any_expired(now) {
                    live -= index
                        .enrolments
                        .values()
                        .filter(|e| e.expires <= now)
                        .count();
                    entries.push(Entry::Expire { now });
                }
                if live >= max {
                    let refused = MefError::Internal("the enrolment store is full".into());
                    return Ok((Some(refused), entries));
                }
                let (ke, ke_name) = match &enrolment.ke {
                    KeHeld::Sealed(bytes) => (
                        Some(bastion_keys::hex::encode_secret(bytes.as_slice())),
                        None,
                    ),
                    KeHeld::InStore(name) => (None, Some(name.as_str().to_owned())),
                };
                entries.push(Entry::Enrol {
                    ke_id: enrolment.ke_id.clone(),
                    record: StoredEnrolment {
                        ke,
                        ke_name,
                        enrolee_id: enrolment.enrolee_id.clone(),
                        credential: enrolment.credential.clone(),
                        created: enrolment.created,
                        expires: enrolment.expires,
                        grants: enrolment.grants.clone(),
                        revoked: false,
                    },
                });
                Ok((None, entries))
            })
            .map_err(|e| {
                tracing::error!(error = %e, "enrolment not recorded");
                MefError::Internal("the enrolment could not be recorded".into())
            })?;
        match refusal {
            Some(refused) => Err(refused),
            None => Ok(effects.keys),
        }
    }

    /// The enrolment recorded under `ke_id`.
    pub fn get(&self, ke_id: &str) -> Result<Option<Enrolment>, StoreError> {
        let mut loaded = self.loaded.lock();
        self.refresh(&mut loaded)?;
        let index = &loaded.index;
        let Some(stored) = index.enrolments.get(ke_id) else {
            return Ok(None);
        };
        let corrupt = || self.corrupt(format!("bad Ke for {ke_id}"));
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
            revoked: stored.revoked || index.revoked_enrolees.contains(&stored.enrolee_id),
        }))
    }

    /// Whether `enrolee_id` was revoked.
    pub fn is_revoked(&self, enrolee_id: &str) -> Result<bool, StoreError> {
        let mut loaded = self.loaded.lock();
        self.refresh(&mut loaded)?;
        Ok(loaded.index.revoked_enrolees.contains(enrolee_id))
    }

    /// Revokes `enrolee_id`: its enrolments stop releasing keys and it cannot enrol
    /// again. Returns how many enrolments were revoked and their keys in the key store.
    pub fn revoke(&self, enrolee_id: &str) -> Result<Revocation, StoreError> {
        let entry = Entry::Revoke {
            enrolee_id: enrolee_id.to_owned(),
        };
        let ((), effects) = self.locked(|_| Ok(((), vec![entry])))?;
        Ok(Revocation {
            count: effects.revocation_count,
            keys: effects.keys,
        })
    }

    /// Drops the records expired at `now`; returns the names of their keys in the key
    /// store, to delete. Writes only when something was dropped.
    pub fn expire(&self, now: i64) -> Result<Vec<KeyName>, StoreError> {
        let ((), effects) = self.locked(|index| {
            let entries = match index.any_expired(now) {
                true => vec![Entry::Expire { now }],
                false => Vec::new(),
            };
            Ok(((), entries))
        })?;
        Ok(effects.keys)
    }

    /// Every enrolment, without keys, by KeID.
    pub fn list(&self) -> Result<Vec<EnrolmentInfo>, StoreError> {
        let mut loaded = self.loaded.lock();
        self.refresh(&mut loaded)?;
        let index = &loaded.index;
        Ok(index
            .enrolments
            .iter()
            .map(|(id, e)| EnrolmentInfo {
                ke_id: id.clone(),
                enrolee_id: e.enrolee_id.clone(),
                credential: e.credential.clone(),
                expires: e.expires,
                revoked: e.revoked || index.revoked_enrolees.contains(&e.enrolee_id),
            })
            .collect())
    }

    /// The revoked enrolee IDs.
    pub fn revoked_enrolees(&self) -> Result<Vec<String>, StoreError> {
        let mut loaded = self.loaded.lock();
        self.refresh(&mut loaded)?;
        Ok(loaded.index.revoked_enrolees.iter().cloned().collect())
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

    fn journal_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn an_enrolment_appends_one_entry_and_the_handle_does_not_reread_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrolments.sealed");
        let key = StoreKey::generate().unwrap();
        let store = EnrolmentStore::open(&path, key.clone(), 100).unwrap();
        assert_eq!(journal_len(&path), HEADER_LEN);
        let header = std::fs::read(&path).unwrap();
        let mut sizes = vec![journal_len(&path)];
        for i in 0..20 {
            store
                .record(&enrolment(&format!("c{i:02}@m.example"), "Ca", 100), 0)
                .unwrap();
            sizes.push(journal_len(&path));
        }
        // Each enrolment adds one entry of about the same size (its offset is in it),
        // whatever the store holds.
        let steps: BTreeSet<u64> = sizes.windows(2).map(|w| w[1] - w[0]).collect();
        let (least, most) = (steps.first().unwrap(), steps.last().unwrap());
        assert!(most - least <= 4 && *most < 400, "{sizes:?}");
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(&raw[..HEADER_LEN as usize], &header[..], "header rewritten");
        assert!(!raw.windows(8).any(|w| w == b"09090909"), "Ke in clear");
        // The handle's own appends move its read mark: nothing left to read.
        {
            let loaded = store.loaded.lock();
            let at = loaded.at.as_ref().unwrap();
            assert_eq!((at.offset, at.entries), (journal_len(&path), 20));
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!(at.stamp, stamp_of(&meta));
        }
        let again = EnrolmentStore::open(&path, key, 100).unwrap();
        assert_eq!(again.list().unwrap().len(), 20);
        // Opening, a refusal or an expiry with nothing to drop write nothing.
        assert!(again.expire(50).unwrap().is_empty());
        assert!(again
            .record(&enrolment("c07@m.example", "Ca", 100), 0)
            .is_err());
        assert_eq!(journal_len(&path), *sizes.last().unwrap());
        assert_eq!(
            &std::fs::read(&path).unwrap()[..HEADER_LEN as usize],
            &header[..]
        );
        let e = again.get("c07@m.example").unwrap().unwrap();
        assert_eq!(e.ke, KeHeld::Sealed(Zeroizing::new([9u8; 32])));
    }

    #[test]
    fn an_incomplete_last_entry_is_ignored_and_cut_a_damaged_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrolments.sealed");
        let key = StoreKey::generate().unwrap();
        let store = EnrolmentStore::open(&path, key.clone(), 10).unwrap();
        store
            .record(&enrolment("d1@m.example", "Ca", 100), 0)
            .unwrap();
        let one = journal_len(&path);
        store
            .record(&enrolment("d2@m.example", "Ca", 100), 0)
            .unwrap();
        let good = journal_len(&path);
        let entry = good - one;
        // A crash during an append: a length and part of the entry.
        let mut torn = std::fs::read(&path).unwrap();
        let last = torn[(good - entry) as usize..].to_vec();
        torn.extend_from_slice(&last[..last.len() / 2]);
        std::fs::write(&path, &torn).unwrap();
        let after_crash = EnrolmentStore::open(&path, key.clone(), 10).unwrap();
        assert_eq!(after_crash.list().unwrap().len(), 2);
        // The next append replaces the torn tail.
        after_crash
            .record(&enrolment("d3@m.example", "Cb", 100), 0)
            .unwrap();
        let grown = journal_len(&path) - good;
        assert!(
            grown.abs_diff(entry) <= 2,
            "torn tail kept: {grown} for {entry}"
        );
        let again = EnrolmentStore::open(&path, key.clone(), 10).unwrap();
        assert_eq!(again.list().unwrap().len(), 3);
        // The old handle reads only the tail the other one wrote.
        assert!(store.get("d3@m.example").unwrap().is_some());

        // A complete entry that does not authenticate is refused, never skipped.
        let mut flipped = std::fs::read(&path).unwrap();
        let at = HEADER_LEN as usize + 40;
        flipped[at] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(
            EnrolmentStore::open(&path, key.clone(), 10),
            Err(StoreError::Sealed(_, SealError::Decrypt))
        ));
        // An entry moved to another place does not pass for one written there.
        let mut moved = std::fs::read(&path).unwrap();
        moved[at] ^= 1;
        let first = moved[HEADER_LEN as usize..one as usize].to_vec();
        moved.extend_from_slice(&first);
        std::fs::write(&path, &moved).unwrap();
        assert!(matches!(
            EnrolmentStore::open(&path, key, 10),
            Err(StoreError::Corrupt(..))
        ));
    }

    #[test]
    fn a_journal_of_mostly_dead_entries_is_compacted_and_other_handles_follow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrolments.sealed");
        let key = StoreKey::generate().unwrap();
        let store = EnrolmentStore::open(&path, key.clone(), 1000).unwrap();
        let operator = EnrolmentStore::open(&path, key.clone(), 1000).unwrap();
        store
            .record(&enrolment("keep@m.example", "Ckeep", 1_000), 0)
            .unwrap();
        for i in 0..80 {
            store
                .record(&enrolment(&format!("e{i}@m.example"), "Ce", 10), 0)
                .unwrap();
        }
        assert_eq!(operator.revoke("Cgone").unwrap().count, 0);
        let before = journal_len(&path);
        let ino = |p: &Path| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(p).unwrap().ino()
        };
        let old_ino = ino(&path);
        // 80 records expire: 83 entries for 2 live ones, over the threshold.
        assert_eq!(store.expire(20).unwrap().len(), 0);
        assert_ne!(ino(&path), old_ino, "not rewritten");
        assert!(journal_len(&path) < before / 10);
        assert_eq!(store.loaded.lock().at.as_ref().unwrap().entries, 2);
        // The other handle sees a new journal and reads it whole.
        let listed = operator.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].ke_id, "keep@m.example");
        assert_eq!(
            operator.revoked_enrolees().unwrap(),
            vec!["Cgone".to_owned()]
        );
        // And appends to it; the first handle reads that tail.
        assert_eq!(operator.revoke("Ckeep").unwrap().count, 1);
        assert!(store.get("keep@m.example").unwrap().unwrap().revoked);
        assert!(matches!(
            store.record(&enrolment("again@m.example", "Cgone", 100), 30),
            Err(MefError::Revoked(_))
        ));
        let reopened = EnrolmentStore::open(&path, key, 1000).unwrap();
        assert!(reopened.get("keep@m.example").unwrap().unwrap().revoked);
        assert!(reopened.get("e3@m.example").unwrap().is_none());
        assert_eq!(reopened.revoked_enrolees().unwrap().len(), 2);
    }

    #[test]
    fn a_store_in_the_earlier_format_loads_and_becomes_a_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrolments.sealed");
        let key = StoreKey::generate().unwrap();
        let mut legacy = StoredFile {
            version: LEGACY_VERSION,
            ..StoredFile::default()
        };
        legacy.enrolments.insert(
            "f1@m.example".into(),
            StoredEnrolment {
                ke: Some(bastion_keys::hex::encode_secret(&[7u8; 32])),
                ke_name: None,
                enrolee_id: "Cold".into(),
                credential: "kpm:old".into(),
                created: 0,
                expires: 500,
                grants: vec![],
                revoked: false,
            },
        );
        legacy.revoked_enrolees.insert("Cbanned".into());
        let plain = bastion_tls::secret::to_json(&legacy).unwrap();
        let data = sealed::seal(&key, LEGACY_MAGIC, &plain).unwrap();
        sealed::write_atomically(&path, &data).unwrap();

        let store = EnrolmentStore::open(&path, key.clone(), 10).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..8], JOURNAL_MAGIC);
        let e = store.get("f1@m.example").unwrap().unwrap();
        assert_eq!(e.ke, KeHeld::Sealed(Zeroizing::new([7u8; 32])));
        assert_eq!((e.enrolee_id.as_str(), e.expires), ("Cold", 500));
        assert!(store.is_revoked("Cbanned").unwrap());
        let again = EnrolmentStore::open(&path, key, 10).unwrap();
        assert_eq!(again.list().unwrap().len(), 1);
        assert!(matches!(
            again.record(&enrolment("f2@m.example", "Cbanned", 100), 0),
            Err(MefError::Revoked(_))
        ));
    }
}
