//! The M2M Authentication Function (TS-0003 8.8) and the MAF-based security association
//! (8.2.2.3): the MAF's records and rules, its durable encrypted store, its oneM2M-style
//! HTTP protocol (served by `bastion maf`), the client a device or a CSE uses, and the
//! CSE's key source that turns a `RelativeKeyID@MAF-FQDN` PSK identity into Kc.
//!
//! ```text
//!  device (Source MAF Client)            MAF (bastion maf)                 CSE (Target)
//!  ── MAF handshake (KmID/Km or cert) ──► TLS listener (bastion-http),
//!                                         session hook: binding + Kc/KcID export
//!  ── CREATE <fqdn>/clients (mcr) ──────► server.rs ─► Maf (lib.rs) ─► rules.rs
//!  ── CREATE <fqdn>/keys (kr, no kyv) ──►   Kc/KcID exported on both ends    │ store.rs
//!     Kc, KcID@fqdn                                                          ▼ sealed file
//!  ── TLS-PSK, identity KcID@fqdn ─────────────────────────────────────────► TlsServer
//!                                                          RemotePskSource: key_source.rs
//!                                         ◄── RETRIEVE <fqdn>/keys/<KcID> ── (own MAF
//!                                             (targetIDs checked)              session)
//!  ◄─────────────── handshake completes with psk = Kc; association bound to the source ──
//! ```
//!
//! The same client and key registration procedures are the MEF's symmetric key
//! provisioning (8.3.5): a [`Function`] ([`MAF`] or [`MEF`]) parameterises the rules, the
//! wire and the server, and `bastion-mef` mounts them on the MEF's listener with its
//! client commands as [`server::RegistrationChildren`].
//!
//! Wire format and decisions: docs/provisioning.md ("The M2M Authentication Function"),
//! docs/decisions.md.
#![forbid(unsafe_code)]

pub mod client;
pub mod function;
pub mod key_source;
pub mod rules;
pub mod server;
pub mod store;
pub mod wire;

use std::path::PathBuf;

use bastion_proto::{RequestError, Rsc};
use bastion_tls::{Binding, StoreKey};
use parking_lot::Mutex;

pub use client::{MafClient, MafClientError};
pub use function::{Function, MAF, MEF};
pub use key_source::{MafKeySource, SourceOptions};
pub use rules::{
    ClientRegistration, KeyRegistration, KeySource, Limits, MafState, RegisterClient, RegisterKey,
    Update,
};

/// Why a MAF procedure was refused; each maps to one response status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MafError {
    /// Malformed or inconsistent request: 4000.
    #[error("{0}")]
    BadRequest(String),
    /// No such (live) record, or another MAF's FQDN: 4004.
    #[error("{0}")]
    NotFound(String),
    /// The caller's authenticated identity may not act on the record: 4103.
    #[error("{0}")]
    NotYours(String),
    /// The identifier is taken: 4105.
    #[error("{0}")]
    Conflict(String),
    /// A per-client bound is reached: 5207.
    #[error("{0}")]
    LimitReached(String),
    /// The MAF failed (storage): 5000.
    #[error("{0}")]
    Internal(String),
}

impl MafError {
    /// The response status code.
    pub fn rsc(&self) -> Rsc {
        self.to_request_error().rsc()
    }

    /// As the oneM2M error it is answered with.
    pub fn to_request_error(&self) -> RequestError {
        match self {
            MafError::BadRequest(r) => RequestError::BadRequest(r.clone().into()),
            MafError::NotFound(r) => RequestError::NotFound(r.clone().into()),
            MafError::NotYours(r) => RequestError::NoPrivilege(r.clone().into()),
            MafError::Conflict(r) => RequestError::Conflict(r.clone().into()),
            MafError::LimitReached(r) => RequestError::NotAcceptable(r.clone().into()),
            MafError::Internal(r) => RequestError::Internal(r.clone().into()),
        }
    }
}

/// How a MAF (or the MEF's client procedures) is set up.
#[derive(Clone, Debug)]
pub struct MafConfig {
    /// Which function this is.
    pub function: Function,
    /// The MAF's FQDN: the suffix of its key identifiers, checked in every request path.
    pub fqdn: String,
    /// The SP-ID that SP-relative client identities belong to (targetIDs are absolute).
    pub sp_id: String,
    pub limits: Limits,
}

/// One MAF: its records behind one lock, persisted after every change.
pub struct Maf {
    config: MafConfig,
    state: Mutex<MafState>,
    store: store::MafStore,
    children: Option<std::sync::Arc<dyn server::RegistrationChildren>>,
}

impl std::fmt::Debug for Maf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maf")
            .field("fqdn", &self.config.fqdn)
            .finish_non_exhaustive()
    }
}

/// A fresh random identifier: 32 lower-case hex characters (16 bytes, KcID's shape).
fn fresh_id() -> String {
    bastion_keys::hex::encode(&rand::random::<[u8; 16]>())
}

impl Maf {
    /// Opens (or creates) the store at `path`, sealed under `key`.
    pub fn open(config: MafConfig, path: PathBuf, key: StoreKey) -> Result<Maf, store::StoreError> {
        let (store, state) = store::MafStore::open(config.function, path, key)?;
        Ok(Maf {
            config,
            state: Mutex::new(state),
            store,
            children: None,
        })
    }

    /// Serves `children` under each client registration (`<FQDN>/clients/<id>/<child>`).
    pub fn with_children(
        mut self,
        children: std::sync::Arc<dyn server::RegistrationChildren>,
    ) -> Maf {
        self.children = Some(children);
        self
    }

    /// What is served under client registrations, if anything.
    pub fn children(&self) -> Option<&dyn server::RegistrationChildren> {
        self.children.as_deref()
    }

    /// A live registration by its ID, whoever made it: the operator's view.
    pub fn registration(&self, id: &str, now: i64) -> Option<ClientRegistration> {
        self.state.lock().registration(id, now).cloned()
    }

    pub fn config(&self) -> &MafConfig {
        &self.config
    }

    /// Drops expired records and persists when any went.
    pub fn purge(&self, now: i64) {
        let mut state = self.state.lock();
        if state.purge(now) > 0 {
            if let Err(e) = self.store.save(&state) {
                tracing::error!(error = %e, "cannot persist the MAF's records");
            }
        }
    }

    /// Live client registrations and keys.
    pub fn counts(&self, now: i64) -> (usize, usize) {
        self.state.lock().counts(now)
    }

    /// Runs `change` on the records (expired ones dropped first) and persists the result;
    /// when persisting fails the records are left as they were.
    fn change<T>(
        &self,
        now: i64,
        change: impl FnOnce(&mut MafState, &MafConfig) -> Result<T, MafError>,
    ) -> Result<T, MafError> {
        let mut state = self.state.lock();
        state.purge(now);
        let before = state.clone();
        let out = change(&mut state, &self.config)?;
        if let Err(e) = self.store.save(&state) {
            *state = before;
            tracing::error!(error = %e, "cannot persist the MAF's records");
            return Err(MafError::Internal("the MAF cannot store the change".into()));
        }
        Ok(out)
    }

    pub fn register_client(
        &self,
        who: &Binding,
        request: RegisterClient,
        now: i64,
    ) -> Result<ClientRegistration, MafError> {
        self.change(now, |s, c| {
            s.register_client(&c.limits, who, fresh_id(), request, now)
        })
    }

    pub fn client_registration(
        &self,
        who: &Binding,
        id: &str,
        now: i64,
    ) -> Result<ClientRegistration, MafError> {
        self.state.lock().client_registration(who, id, now).cloned()
    }

    pub fn update_client(
        &self,
        who: &Binding,
        id: &str,
        update: Update,
        now: i64,
    ) -> Result<ClientRegistration, MafError> {
        self.change(now, |s, c| s.update_client(&c.limits, who, id, update, now))
    }

    pub fn deregister_client(&self, who: &Binding, id: &str, now: i64) -> Result<(), MafError> {
        self.change(now, |s, _| s.deregister_client(who, id, now))
    }

    /// Key registration: `sent` is the key value of the request, if any; otherwise
    /// `exported` (Kc/KcID of the caller's MAF session) is registered.
    pub fn register_key(
        &self,
        who: &Binding,
        request: RegisterKey,
        sent: Option<bastion_tls::PskKey>,
        exported: &bastion_keys::ExportedKey,
        now: i64,
    ) -> Result<KeyRegistration, MafError> {
        let source = match sent {
            Some(key) => KeySource::Sent {
                key,
                relative_key_id: fresh_id(),
            },
            None => KeySource::Exported(exported.clone()),
        };
        self.change(now, |s, c| {
            s.register_key(&c.limits, who, request, source, now)
                .cloned()
        })
    }

    pub fn retrieve_key(
        &self,
        who: &Binding,
        relative_key_id: &str,
        now: i64,
    ) -> Result<KeyRegistration, MafError> {
        self.state
            .lock()
            .retrieve_key(&self.config.sp_id, who, relative_key_id, now)
            .cloned()
    }

    pub fn update_key(
        &self,
        who: &Binding,
        relative_key_id: &str,
        update: Update,
        now: i64,
    ) -> Result<KeyRegistration, MafError> {
        self.change(now, |s, c| {
            s.update_key(&c.limits, who, relative_key_id, update, now)
                .cloned()
        })
    }

    pub fn deregister_key(
        &self,
        who: &Binding,
        relative_key_id: &str,
        now: i64,
    ) -> Result<(), MafError> {
        self.change(now, |s, _| s.deregister_key(who, relative_key_id, now))
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
