//! The core's [`CredentialBindings`] port over the TLS listener's credential store: which
//! AE-IDs, CSE-IDs (and the admin's ID) hold a credential, so that the core refuses them
//! outside their security association (docs/security.md, "Identity binding").
//!
//! The bound identities are kept as a set rebuilt whenever the store's generation moves
//! (an add, a revocation, a reload of a change made by another process), so a request on
//! the plain listener costs one lock and a few lookups, not a walk over the store.

use bastion_core::CredentialBindings;
use bastion_tls::CredentialRegistry;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The identities bound to a credential of `registry`, revoked ones included: a revoked
/// credential's identity was reached securely and must not fall back to the plain
/// listener.
pub struct RegistryBindings {
    registry: Arc<CredentialRegistry>,
    /// The generation the set was built at, and the set.
    snapshot: Mutex<(Option<u64>, Arc<HashSet<String>>)>,
}

impl RegistryBindings {
    pub fn new(registry: Arc<CredentialRegistry>) -> RegistryBindings {
        RegistryBindings {
            registry,
            snapshot: Mutex::new((None, Arc::default())),
        }
    }

    fn bound(&self) -> Arc<HashSet<String>> {
        let generation = self.registry.generation();
        let mut snapshot = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if snapshot.0 != Some(generation) {
            let set = self
                .registry
                .list()
                .into_iter()
                .map(|c| c.binding.originator().to_owned())
                .collect();
            *snapshot = (Some(generation), Arc::new(set));
        }
        snapshot.1.clone()
    }
}

impl CredentialBindings for RegistryBindings {
    fn is_bound(&self, forms: &[&str]) -> bool {
        let bound = self.bound();
        forms.iter().any(|f| bound.contains(*f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bastion_tls::{Binding, PskKey, StoreKey};

    #[test]
    fn follows_adds_and_revocations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = CredentialRegistry::open(
            dir.path().join("credentials.store"),
            StoreKey::generate().expect("key"),
        )
        .expect("registry");
        let bindings = RegistryBindings::new(registry.clone());
        assert!(!bindings.is_bound(&["CAdmin"]));
        let key = PskKey::new(&[7u8; 16]).expect("psk");
        registry
            .add_psk(
                "admin@bastion.example",
                key,
                Some(Binding::ae("CAdmin").expect("binding")),
            )
            .expect("add");
        assert!(bindings.is_bound(&["//bastion.example/id-in/CAdmin", "CAdmin"]));
        assert!(!bindings.is_bound(&["Cother"]));
        registry.revoke("admin@bastion.example").expect("revoke");
        // A revoked credential still binds its identity.
        assert!(bindings.is_bound(&["CAdmin"]));
    }
}
