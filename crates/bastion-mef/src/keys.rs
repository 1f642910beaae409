//! Where the MEF keeps each enrolment's Ke (TS-0003 6.2.3: long-term keys in a secure
//! environment): sealed in the enrolment record when no `key-store` is configured, or
//! imported non-exportable into a [`KeyStore`] under a name derived from the KeID, so the
//! record holds only that name and every key released to a target (Kuc, Km) is computed
//! inside the store. This module owns that choice, the naming, the derivation from
//! either place, and deleting a key whose enrolment ended (expiry, revocation).

use bastion_keys::{DerivationInput, DerivedKey, KeyIdentifier};
use bastion_keystore::{ExportPolicy, KeyName, KeyStore, KeyStoreError, SecretKey};
use zeroize::Zeroizing;

use crate::error::MefError;
use crate::rules::{self, KeHeld};

/// The prefix of the MEF's Ke names in a key store: `mef.ke.<RelativeKeID>`. The prefix
/// keeps them apart from an enrolee's own Ke on a token both use (a test token).
pub const KE_NAME_PREFIX: &str = "mef.ke.";

/// The MEF's keeper of enrolment keys.
#[derive(Debug)]
pub struct KeKeeper {
    store: Option<Box<dyn KeyStore>>,
}

impl KeKeeper {
    /// Ke sealed in the enrolment records.
    pub fn sealed() -> KeKeeper {
        KeKeeper { store: None }
    }

    /// Ke inside `store`.
    pub fn in_store(store: Box<dyn KeyStore>) -> KeKeeper {
        KeKeeper { store: Some(store) }
    }

    /// The key store, when one is configured.
    pub fn store(&self) -> Option<&dyn KeyStore> {
        self.store.as_deref()
    }

    /// The name of the Ke of `ke_id` in a key store.
    pub fn name_for(ke_id: &KeyIdentifier) -> Result<KeyName, MefError> {
        KeyName::new(&format!("{KE_NAME_PREFIX}{}", ke_id.relative()))
            .map_err(|e| MefError::Internal(format!("key name: {e}")))
    }

    /// Keeps `ke` for the enrolment `ke_id`: imported non-exportable into the store, or
    /// the bytes for the sealed record. A name already taken is a replayed KeID (4105),
    /// and the key there is left alone.
    pub fn keep(&self, ke_id: &KeyIdentifier, ke: &[u8; 32]) -> Result<KeHeld, MefError> {
        let Some(store) = &self.store else {
            return Ok(KeHeld::Sealed(Zeroizing::new(*ke)));
        };
        let name = KeKeeper::name_for(ke_id)?;
        let secret = SecretKey::new(ke).map_err(|e| MefError::Internal(e.to_string()))?;
        match store.import_secret(&name, &secret, ExportPolicy::NonExportable) {
            Ok(_) => Ok(KeHeld::InStore(name)),
            Err(KeyStoreError::AlreadyExists(_)) => {
                Err(MefError::Replay("this KeID is already enrolled".into()))
            }
            Err(e) => {
                tracing::error!(error = %e, key = %name, "enrolment key not stored");
                Err(MefError::Internal(
                    "the enrolment key could not be stored".into(),
                ))
            }
        }
    }

    /// The key `input` derives from `ke`: inside the store for a key held there.
    pub fn derive(&self, ke: &KeHeld, input: &DerivationInput) -> Result<DerivedKey, MefError> {
        match (ke, &self.store) {
            (KeHeld::InStore(name), Some(store)) => store.derive(name, input).map_err(|e| {
                tracing::error!(error = %e, key = %name, "derivation in the key store failed");
                MefError::Internal("the enrolment key could not be used".into())
            }),
            _ => rules::derive_sealed(ke, input),
        }
    }

    /// Deletes the keys named (their enrolments ended); one already gone is fine. Failures
    /// are logged: the records that named them release nothing any more.
    pub fn forget(&self, names: &[KeyName]) {
        let Some(store) = &self.store else { return };
        for name in names {
            match store.delete(name) {
                Ok(()) => tracing::info!(key = %name, "enrolment key deleted from the key store"),
                Err(KeyStoreError::NotFound(_)) => {}
                Err(e) => tracing::warn!(error = %e, key = %name,
                    "enrolment key not deleted from the key store"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bastion_keys::{EnrolmentKey, Suid};

    fn file_store(dir: &std::path::Path) -> Box<dyn KeyStore> {
        let key = bastion_tls::StoreKey::generate().unwrap();
        Box::new(bastion_keystore::FileKeyStore::create(dir.join("keys.store"), key).unwrap())
    }

    #[test]
    fn ke_in_a_store_derives_the_same_key_and_does_not_leave() {
        let dir = tempfile::tempdir().unwrap();
        let keeper = KeKeeper::in_store(file_store(dir.path()));
        let ke_id = KeyIdentifier::new("0a1b", "mef.example.com").unwrap();
        let ke = [7u8; 32];
        let held = keeper.keep(&ke_id, &ke).unwrap();
        let name = KeyName::new("mef.ke.0a1b").unwrap();
        assert_eq!(held, KeHeld::InStore(name.clone()));
        let store = keeper.store().unwrap();
        assert!(matches!(
            store.export_secret(&name),
            Err(KeyStoreError::NotExportable(_))
        ));
        let suid = Suid::from_code(22).unwrap();
        let input = rules::derivation_input(suid, "/id-in").unwrap();
        let expected =
            bastion_keys::derive_kuc(&EnrolmentKey::from_array(&ke), suid, "/id-in").unwrap();
        assert_eq!(keeper.derive(&held, &input).unwrap(), expected);
        // The sealed form derives the same bytes.
        let sealed = KeKeeper::sealed().keep(&ke_id, &ke).unwrap();
        assert_eq!(
            KeKeeper::sealed().derive(&sealed, &input).unwrap(),
            expected
        );

        assert!(matches!(keeper.keep(&ke_id, &ke), Err(MefError::Replay(_))));
        keeper.forget(std::slice::from_ref(&name));
        keeper.forget(std::slice::from_ref(&name));
        assert!(store.list().unwrap().is_empty());
        assert!(matches!(
            keeper.derive(&held, &input),
            Err(MefError::Internal(_))
        ));
    }
}
