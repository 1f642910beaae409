//! The M2M Enrolment Function (TS-0003 8.3, the Remote Security Provisioning Frameworks
//! with a pre-provisioned symmetric key, 8.3.2.1, and with certificates, 8.3.2.2).
//!
//! This crate owns the MEF's state and rules: enrolee profiles and enrolment targets
//! ([`config`]), the enrolment exchange and who may fetch which key ([`rules`], pure),
//! the durable, encrypted enrolment records ([`store`]), where Ke is kept (sealed in the
//! record or in a key store, [`keys`]), the JSON bodies of the wire
//! ([`wire`], shared with the enrolee and the targets), and the HTTP interface over the
//! TLS listener ([`server`]). `bastion mef` runs it; `bastion enrol` is the enrolee;
//! the CSE's `MefKeySource` is a target. The MEF client and key registration procedures
//! (8.3.5) are `bastion-maf`'s, served with its [`bastion_maf::MEF`] function under
//! `/<MEF-FQDN>/clients` and `/<MEF-FQDN>/keys` on the same listener, and the MEF client
//! commands (8.3.9) hang under each registration ([`commands`]).
//!
//! ```text
//!   enrolee ──TLS-PSK (KpmID/Kpm) or certificates──► MEF listener
//!      │ export EXPORTER-oneM2M-Bootstrap ─► Ke, KeID      │ the same export
//!      │ POST /enrolment indications ─► instructions       │ rules::Conversation
//!      │ POST /enrolment final ─► 2001 {keid, eid, exp, tgs}│ store: Ke sealed, durable
//!      ▼ Kuc = HMAC(Ke, …‖SUID‖target ID)                   │
//!   target (CSE) ◄── TLS-PSK, identity KeID ── enrolee       │
//!      └── GET /fetchCredentials/<KeID>/<SUID> ──────────────► rules::release ─► Kuc
//! ```

pub mod commands;
pub mod config;
pub mod error;
pub mod keys;
pub mod rules;
pub mod server;
pub mod store;
pub mod wire;

pub use config::{ConfigError, MefConfig};
pub use error::MefError;
pub use keys::KeKeeper;
pub use server::Mef;
pub use store::{EnrolmentInfo, EnrolmentStore, Revocation, StoreError};
