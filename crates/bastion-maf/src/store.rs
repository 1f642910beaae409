//! The MAF's (or the MEF's client) records on disk: one JSON document sealed with
//! [`bastion_tls::sealed`] (AES-256-GCM under the store key, magic `BSTNMAF1`, or
//! `BSTNMEC1` for the MEF: [`crate::Function::store_magic`]; atomic replacement, mode 0600),
//! so registered key values are encrypted at rest with the same machinery as the
//! credential store. The whole document is rewritten after each change: the records
//! are bounded per client ([`crate::Limits`]).

use std::path::{Path, PathBuf};

use bastion_tls::sealed::{self, SealError};
use bastion_tls::StoreKey;
use serde::{Deserialize, Serialize};

use crate::rules::MafState;
use crate::Function;

const FORMAT_VERSION: u32 = 1;

/// Failures of the MAF's store; never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a Bastion MAF store", .0.display())]
    NotAStore(PathBuf),
    #[error("{}: cannot decrypt the MAF store (wrong key or tampered file)", .0.display())]
    Decrypt(PathBuf),
    #[error("{}: corrupt MAF store: {reason}", .path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// Sealing or writing failed (the file named inside).
    #[error(transparent)]
    Sealed(#[from] SealError),
}

#[derive(Serialize, Deserialize)]
struct StoredFile {
    version: u32,
    state: MafState,
}

/// Where the records are kept, and the key they are sealed under.
pub struct MafStore {
    path: PathBuf,
    key: StoreKey,
    function: Function,
}

impl MafStore {
    /// Opens the file at `path`, or creates an empty one.
    pub fn open(
        function: Function,
        path: PathBuf,
        key: StoreKey,
    ) -> Result<(MafStore, MafState), StoreError> {
        let store = MafStore {
            path,
            key,
            function,
        };
        if !store.path.exists() {
            let state = MafState::new(function);
            store.save(&state)?;
            return Ok((store, state));
        }
        let data = std::fs::read(&store.path).map_err(|source| StoreError::Io {
            path: store.path.clone(),
            source,
        })?;
        let plain =
            sealed::unseal(&store.key, function.store_magic, &data).map_err(|e| match e {
                SealError::NotSealed => StoreError::NotAStore(store.path.clone()),
                SealError::Decrypt => StoreError::Decrypt(store.path.clone()),
                other => StoreError::Sealed(other),
            })?;
        let corrupt = |reason: String| StoreError::Corrupt {
            path: store.path.clone(),
            reason,
        };
        let mut file: StoredFile =
            serde_json::from_slice(&plain).map_err(|e| corrupt(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(corrupt(format!("unknown version {}", file.version)));
        }
        file.state.set_function(function);
        Ok((store, file.state))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seals and atomically replaces the file.
    pub fn save(&self, state: &MafState) -> Result<(), StoreError> {
        let file = StoredFile {
            version: FORMAT_VERSION,
            state: state.clone(),
        };
        let plain = bastion_tls::secret::to_json(&file).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let sealed = sealed::seal(&self.key, self.function.store_magic, &plain)?;
        Ok(sealed::write_atomically(&self.path, &sealed)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{KeySource, Limits, RegisterClient, RegisterKey};
    use bastion_tls::{Binding, PskKey};

    #[test]
    fn records_survive_a_reopen_and_keys_are_not_in_the_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("maf.store");
        let key = StoreKey::generate().unwrap();
        let (store, mut state) = MafStore::open(crate::MAF, path.clone(), key.clone()).unwrap();
        let device = Binding::Ae("Cdevice".into());
        let limits = Limits::default();
        state
            .register_client(
                &limits,
                &device,
                "r1".into(),
                RegisterClient {
                    expires: 2_000,
                    labels: vec![],
                    admin_fqdn: "admin.example".into(),
                },
                1_000,
            )
            .unwrap();
        state
            .register_key(
                &limits,
                &device,
                RegisterKey {
                    expires: 2_000,
                    labels: vec![],
                    admin_fqdn: "admin.example".into(),
                    suid: bastion_keys::Suid::from_code(32).unwrap(),
                    target_ids: vec!["//sp.example/id-in".into()],
                },
                KeySource::Sent {
                    key: PskKey::new(&[0x5a; 32]).unwrap(),
                    relative_key_id: "k1".into(),
                },
                1_000,
            )
            .unwrap();
        store.save(&state).unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(8).any(|w| w == b"5a5a5a5a"));
        assert!(!raw.windows(7).any(|w| w == b"Cdevice"));
        let (_, reopened) = MafStore::open(crate::MAF, path.clone(), key).unwrap();
        let got = reopened
            .retrieve_key("sp.example", &Binding::Cse("/id-in".into()), "k1", 1_000)
            .unwrap();
        assert_eq!(got.key.expose(), &[0x5a; 32]);
        assert!(matches!(
            MafStore::open(crate::MAF, path, StoreKey::generate().unwrap()),
            Err(StoreError::Decrypt(_))
        ));
    }
}
