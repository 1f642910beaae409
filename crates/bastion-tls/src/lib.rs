//! Bastion's security associations (TS-0003 clause 8.2, 10.1, 10.2): TLS over TCP with the
//! Provisioned Symmetric Key and Certificate-based Security Association Establishment
//! Frameworks (SAEF), built on OpenSSL 3.6 (vendored, statically linked) through the
//! `openssl` crate.
//!
//! ```text
//!   CredentialRegistry (credentials.rs)          certs.rs: CA, AE/CSE certificates,
//!   encrypted file: KpsaID -> Kpsa + binding     CSR, CRL (PEM in, PEM out)
//!   pinned raw public keys -> binding                    │
//!        │ Arc, live: add / revoke / is_revoked           │ PEM / files
//!        ▼                                               ▼
//!   TlsServer (server.rs) ── accept(tcp) ──► (SslStream, PeerIdentity)  (identity.rs)
//!        ▲ PSK / certificate handshake                    │ originator(): AE-ID / CSE-ID
//!   TlsClient (client.rs) ── connect(tcp) ──► SslStream  │ the association is bound to
//!                                                         ▼
//!                                exporter.rs: RFC 5705 keys (TS-0003 10.3.1)
//! ```
//!
//! Entity A (the registree) is the TLS client and Entity B (the registrar CSE) the server
//! (TS-0003 8.2.1); a registrar CSE reaching a registree CSE is the client of that CSE's
//! listener, with the PSK the pair shares ([`CredentialRegistry::psk_for_peer`]). The
//! server hands back, with every accepted stream, the
//! [`PeerIdentity`] the association is bound to, kept with the server as an
//! [`Association`] ([`TlsServer::associate`]); every binding over TLS asks it for the
//! originator before each request and the core compares that with the request's `From`.
//! Revocation is live: [`Association::originator`] checks [`TlsServer::is_revoked`]
//! (credential revoked in the registry, or certificate on a CRL) on every request, which
//! also cuts kept-alive connections, and calls [`TlsServer::refresh_revocation`]
//! periodically to re-read the store and the CRLs. Secret files are read by
//! [`secret::read_secret`] only; key files at rest are [`sealed`] files (the credential
//! store's and `bastion-keystore`'s encrypted file).
//!
//! DTLS 1.2 over UDP ([`dtls`], for CoAP) makes its connections from the same
//! [`TlsServer`] contexts and gets the same [`Association`]s; see docs/security.md.

pub mod association;
pub mod certs;
pub mod client;
pub mod credentials;
pub mod dtls;
pub mod exporter;
pub mod identity;
pub mod peer_http;
pub mod remote_psk;
pub mod sealed;
pub mod secret;
pub mod server;
pub mod strength;

mod hexutil;

pub use association::{Association, Refusal};
pub use certs::CertError;
pub use client::{ClientConfigError, ClientOptions, TlsClient, TlsVersion};
pub use credentials::{
    CredentialError, CredentialInfo, CredentialKind, CredentialRegistry, PeerPsk, PskKey, StoreKey,
};
pub use dtls::{DtlsClient, DtlsConnection, DtlsError, DtlsLimits, DtlsServer, DtlsSession};
pub use exporter::{ExportError, ExportedKey};
pub use identity::{Binding, Framework, IdentityError, NiDigest, PeerIdentity};
pub use remote_psk::{RemotePsk, RemotePskSource, RemotePskSources};
pub use server::{
    CrlFreshness, HandshakeError, ServerCertificate, ServerSettings, TlsConfigError, TlsServer,
};
