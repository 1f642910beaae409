//! Pre-shared keys a listener does not hold but a key server does (TS-0003 8.3.5, 8.8.2,
//! 8.3.2.3): a client that presents a PSK identity unknown to the
//! [`crate::CredentialRegistry`] may hold a key provisioned by an M2M Enrolment Function
//! (Kpsa, Kuc; identity `RelativeKeyID@FQDN`), registered with an M2M Authentication
//! Function (Kc; likewise) or bootstrapped by GBA (Ks_NAF; a B-TID). The listener then
//! asks the [`RemotePskSource`] configured in [`crate::ServerSettings::remote_psk`], which
//! fetches the key over its own security association with that server.
//!
//! The source is called from inside the OpenSSL PSK callback, which is synchronous: an
//! implementation blocks the calling thread until it has an answer, so it must bound its
//! own wait and the number of fetches in flight, and, when called on a Tokio worker,
//! hand the wait to `tokio::task::block_in_place`. Anything it cannot answer in time is
//! `None`: the handshake fails, it never grants.

use crate::credentials::PskKey;
use crate::identity::Binding;

/// A key fetched from a key server, with the identity the association is bound to.
pub struct RemotePsk {
    /// The pre-shared key (wiped on drop).
    pub key: PskKey,
    /// The AE-ID or CSE-ID the key server provisioned the key for.
    pub binding: Binding,
}

/// Where a listener looks up `RelativeKeyID@FQDN` identities its registry lacks.
pub trait RemotePskSource: Send + Sync + std::fmt::Debug {
    /// The key and binding for the PSK identity `identity` (as the client sent it, without
    /// the trailing NUL), or `None` when it is not a key server's identity, or the key
    /// server does not know it, refuses, is unreachable or is too slow. Blocking; see the
    /// module docs. An identity of another key server is `None` at once, without
    /// waiting ([`RemotePskSources`] asks each source in turn).
    fn fetch(&self, identity: &str) -> Option<RemotePsk>;

    /// Whether an association established with the fetched key `identity` may still be
    /// used (the key's lifetime has not ended and the key server has not revoked it).
    /// Asked before every request, so it must be cheap (a local lookup).
    fn is_current(&self, identity: &str) -> bool;
}

/// Several key servers behind one listener (a MEF, a MAF, a GBA bootstrapping server):
/// each identity is offered to them in turn. Every source answers `None` at once for an
/// identity that is not its own (another FQDN, no GBA prefix), so only the right one
/// waits on its server.
#[derive(Debug)]
pub struct RemotePskSources(Vec<std::sync::Arc<dyn RemotePskSource>>);

impl RemotePskSources {
    /// One source for `sources`: `None` without any, the source itself when alone.
    pub fn combine(
        mut sources: Vec<std::sync::Arc<dyn RemotePskSource>>,
    ) -> Option<std::sync::Arc<dyn RemotePskSource>> {
        match sources.len() {
            0 => None,
            1 => sources.pop(),
            _ => Some(std::sync::Arc::new(RemotePskSources(sources))),
        }
    }
}

impl RemotePskSource for RemotePskSources {
    fn fetch(&self, identity: &str) -> Option<RemotePsk> {
        self.0.iter().find_map(|source| source.fetch(identity))
    }

    fn is_current(&self, identity: &str) -> bool {
        self.0.iter().any(|source| source.is_current(identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A key server that knows identities ending in its suffix.
    #[derive(Debug)]
    struct Suffix(&'static str);

    impl RemotePskSource for Suffix {
        fn fetch(&self, identity: &str) -> Option<RemotePsk> {
            identity.ends_with(self.0).then(|| RemotePsk {
                key: PskKey::new(&[7; 16]).unwrap(),
                binding: Binding::ae("Cdevice").unwrap(),
            })
        }

        fn is_current(&self, identity: &str) -> bool {
            identity.ends_with(self.0)
        }
    }

    #[test]
    fn combined_sources_answer_each_for_its_own_identities() {
        assert!(RemotePskSources::combine(Vec::new()).is_none());
        let mef: Arc<dyn RemotePskSource> = Arc::new(Suffix("@mef.example.com"));
        let alone = RemotePskSources::combine(vec![mef.clone()]).unwrap();
        assert!(Arc::ptr_eq(&alone, &mef));
        let both =
            RemotePskSources::combine(vec![mef, Arc::new(Suffix("@maf.example.com"))]).unwrap();
        for identity in ["ab@mef.example.com", "cd@maf.example.com"] {
            assert!(both.fetch(identity).is_some(), "{identity}");
            assert!(both.is_current(identity), "{identity}");
        }
        assert!(both.fetch("ef@other.example.com").is_none());
        assert!(!both.is_current("ef@other.example.com"));
    }
}
