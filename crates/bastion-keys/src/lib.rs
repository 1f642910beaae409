//! The key derivations of oneM2M remote security provisioning (TS-0003 10.3), as pure
//! functions: no I/O, no TLS, no clock. This crate owns
//!
//! * the split of the 48 bytes a TLS exporter yields into a key and its 16-byte identifier
//!   ([`ExportedKey`], 10.3.1); the export itself needs a live session and stays in
//!   `bastion-tls::exporter`;
//! * the HMAC-SHA-256 derivations from an enrolment key Ke: the Master Credential Km
//!   (10.3.2), the Provisioned Secure Connection Key Kpsa (10.3.3) and the
//!   usage-constrained key Kuc (10.3.7) ([`derive`]);
//! * key identifiers `RelativeKeyID@FQDN` (KeID 10.3.4, MAF key identifier 10.3.5, KpsaID
//!   10.5, KmID 10.6) ([`KeyIdentifier`]);
//! * the Security Usage Identifiers ([`Suid`], TS-0004 `m2m:suid`).
//!
//! Every secret is held in a buffer wiped on drop and is never shown by `Debug`.
//! The encodings the specification leaves open are chosen in docs/decisions.md
//! ("Issue 15 — key derivations") and pinned by the known-answer vectors in
//! `tests/data/kat.json`.

pub mod derive;
pub mod export;
pub mod hex;
pub mod identifier;
pub mod suid;

pub use derive::{
    derive_km, derive_kpsa, derive_kuc, DerivationInput, DerivedKey, EnrolmentKey, KeyError,
};
pub use export::{ExportedKey, EXPORT_LEN};
pub use identifier::{IdentifierError, KeyIdentifier};
pub use suid::{Suid, SuidError};
