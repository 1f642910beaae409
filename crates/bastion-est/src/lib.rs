//! Certificate enrolment over EST (RFC 7030) for the M2M Enrolment Function acting as
//! registration authority (TS-0003 8.3.6), renewal, and revocation published to the CSEs
//! that trust the MEF's CA.
//!
//! ```text
//!  enrolee ── TLS (PSK or certificate; bastion_http::tls::serve_router_tls) ──┐
//!                                                       SaPeer (PeerIdentity) │
//!   http.rs: /.well-known/est/{cacerts,csrattrs,simpleenroll,simplereenroll}, /crl
//!        │ base64 PKCS#10 in, base64 certs-only PKCS#7 out (der.rs)
//!        ▼
//!   service.rs (Est) ── ra.rs: subject from the association / profile (profile.rs),
//!        │                     CSR identity, challengePassword, renewal rules
//!        │           ── bastion_tls::certs: CSR checks, issuing, CRL signing
//!        ▼
//!   ledger.rs: ledger.json + crl.pem, durable, locked (shared with `bastion est revoke`)
//!        │ GET /crl (DER)
//!        ▼
//!   crl_fetch.rs (in each CSE): verify, write the CRL file its TLS listener reloads
//! ```
//!
//! The crate owns the RA/CA rules and the EST wire format; it opens no listener itself:
//! the MEF (or `bastion est`) mounts [`http::router`] on its TLS listener.

pub mod crl_fetch;
pub mod der;
pub mod error;
pub mod http;
pub mod ledger;
pub mod profile;
pub mod ra;
pub mod service;

pub use error::EstError;
pub use http::{crl_router, router, MAX_BODY};
pub use ledger::{Issued, Ledger};
pub use profile::{Profile, ProfileKey, Profiles};
pub use service::{Est, EstSettings};
