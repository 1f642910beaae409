//! The CSE as Target MAF Client (TS-0003 8.2.2.3): a [`RemotePskSource`] for the TLS
//! listener. A PSK identity `RelativeKeyID@<MAF-FQDN>` of the configured MAF is looked
//! up with a MAF Key Retrieval over the CSE's own MAF session; the key is used only for
//! the MAF-distributed SAEF usage (SUID 32), and the association is bound to the Source
//! MAF Client ID the MAF answered, so an AE claiming any other ID gets 4106 from the core.
//!
//! Bounded: each retrieval waits at most [`SourceOptions::wait`], at most
//! [`SourceOptions::max_in_flight`] run at once (more fail the handshake at once), and
//! at most [`SourceOptions::max_cached`] keys are kept. A key is kept until its
//! expiry; then [`RemotePskSource::is_current`] turns false (kept-alive associations get
//! 4107 and close) and a fresh handshake asks the MAF again, which no longer has it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bastion_keys::KeyIdentifier;
use bastion_tls::{Binding, PskKey, RemotePsk, RemotePskSource};
use parking_lot::Mutex;

use crate::client::{MafClient, MafClientError};
use crate::unix_now;

/// The SUID of a key a MAF distributes for a SAEF (8.8.1, TS-0004 m2m:suid).
const SAEF_MAF_KEY: u8 = 32;

/// Bounds of the key source.
#[derive(Clone, Copy, Debug)]
pub struct SourceOptions {
    /// Longest wait for the MAF's answer, inside the handshake.
    pub wait: Duration,
    /// Retrievals in flight at once.
    pub max_in_flight: usize,
    /// Keys kept.
    pub max_cached: usize,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            wait: Duration::from_secs(3),
            max_in_flight: 16,
            max_cached: 4096,
        }
    }
}

struct Cached {
    key: PskKey,
    binding: Binding,
    expires: i64,
}

/// Keys of one MAF, fetched on demand and kept until they expire.
pub struct MafKeySource {
    maf: MafClient,
    runtime: tokio::runtime::Handle,
    options: SourceOptions,
    in_flight: AtomicUsize,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for MafKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MafKeySource")
            .field("maf_fqdn", &self.maf.maf_fqdn())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Counts one retrieval in flight while alive.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl MafKeySource {
    /// Retrieves over `maf` (the CSE's MAF client), running the requests on `runtime`.
    pub fn new(maf: MafClient, runtime: tokio::runtime::Handle, options: SourceOptions) -> Self {
        MafKeySource {
            maf,
            runtime,
            options,
            in_flight: AtomicUsize::new(0),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The relative part of `identity` when it names a key of this MAF.
    fn relative_of(&self, identity: &str) -> Option<String> {
        let parsed = KeyIdentifier::parse(identity).ok()?;
        parsed
            .fqdn()
            .eq_ignore_ascii_case(self.maf.maf_fqdn())
            .then(|| parsed.relative().to_owned())
    }

    fn enter(&self) -> Option<InFlight<'_>> {
        let max = self.options.max_in_flight;
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlight(&self.in_flight))
    }

    /// Runs the retrieval to completion from the synchronous PSK callback.
    fn retrieve_blocking(
        &self,
        relative: &str,
    ) -> Option<Result<crate::client::MafKey, MafClientError>> {
        let wait = self.options.wait;
        let retrieval = async {
            tokio::time::timeout(wait, self.maf.retrieve_key(relative))
                .await
                .unwrap_or(Err(MafClientError::Unreachable(
                    bastion_client::ClientError::Timeout(wait),
                )))
        };
        match tokio::runtime::Handle::try_current() {
            Ok(current) => match current.runtime_flavor() {
                tokio::runtime::RuntimeFlavor::MultiThread => {
                    Some(tokio::task::block_in_place(|| {
                        self.runtime.block_on(retrieval)
                    }))
                }
                _ => {
                    tracing::warn!("MAF key retrieval needs a multi-threaded runtime: refused");
                    None
                }
            },
            Err(_) => Some(self.runtime.block_on(retrieval)),
        }
    }

    fn remember(&self, identity: &str, cached: Cached, now: i64) {
        let mut cache = self.cache.lock();
        if cache.len() >= self.options.max_cached {
            cache.retain(|_, c| c.expires > now);
        }
        if cache.len() >= self.options.max_cached {
            // Full of live keys: the one ending soonest makes room.
            if let Some(soonest) = cache
                .iter()
                .min_by_key(|(_, c)| c.expires)
                .map(|(k, _)| k.clone())
            {
                cache.remove(&soonest);
            }
        }
        cache.insert(identity.to_owned(), cached);
    }
}

impl RemotePskSource for MafKeySource {
    fn fetch(&self, identity: &str) -> Option<RemotePsk> {
        let relative = self.relative_of(identity)?;
        let now = unix_now();
        {
            let mut cache = self.cache.lock();
            match cache.get(identity) {
                Some(c) if c.expires > now => {
                    return Some(RemotePsk {
                        key: c.key.clone(),
                        binding: c.binding.clone(),
                    })
                }
                Some(_) => {
                    cache.remove(identity);
                }
                None => {}
            }
        }
        let Some(_slot) = self.enter() else {
            tracing::warn!(
                max = self.options.max_in_flight,
                "MAF key retrievals at their cap: handshake refused"
            );
            return None;
        };
        let got = match self.retrieve_blocking(&relative)? {
            Ok(got) => got,
            Err(e) => {
                tracing::info!(key_id = identity, error = %e, "MAF key retrieval failed");
                return None;
            }
        };
        if got.suid.code() != SAEF_MAF_KEY || got.expires <= now {
            tracing::info!(
                key_id = identity,
                suid = got.suid.code(),
                "MAF key is not a live SAEF key (SUID 32): refused"
            );
            return None;
        }
        tracing::info!(
            key_id = identity,
            source = got.source.originator(),
            expires = got.expires,
            "MAF key retrieved"
        );
        self.remember(
            identity,
            Cached {
                key: got.key.clone(),
                binding: got.source.clone(),
                expires: got.expires,
            },
            now,
        );
        Some(RemotePsk {
            key: got.key,
            binding: got.source,
        })
    }

    fn is_current(&self, identity: &str) -> bool {
        let now = unix_now();
        self.cache
            .lock()
            .get(identity)
            .is_some_and(|c| c.expires > now)
    }
}
