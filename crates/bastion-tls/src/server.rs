//! The TLS server side of a security association (Entity B, TS-0003 8.2.1): builds the
//! OpenSSL contexts for a listener from [`ServerSettings`] and runs handshakes, returning
//! each stream with the [`PeerIdentity`] it is bound to. It is the one home of the
//! context configuration (profile, PSK callback, client certificate verification, SNI,
//! CRLs) and of identity extraction, for TLS over TCP here and for DTLS over UDP
//! ([`crate::dtls`], which asks this server for its contexts and associations).
//!
//! Profile (10.2): TLS 1.2 with the PSK suites (TLS_PSK_WITH_AES_128_CBC_SHA256 mandatory,
//! GCM, CCM_8) and the ECDHE-ECDSA suites (TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
//! mandatory, GCM, CCM_8); TLS 1.3 beside it (default suites plus
//! TLS_AES_128_CCM_8_SHA256); TLS 1.1 and older refused; SNI selects the server
//! certificate. Session resumption is off so every association is authenticated afresh
//! by the callbacks below.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use openssl::asn1::Asn1Time;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{
    NameType, SniError, Ssl, SslAcceptor, SslContext, SslContextBuilder, SslFiletype, SslMethod,
    SslOptions, SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Crl, X509Ref, X509StoreContextRef, X509VerifyResult, X509};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;
use zeroize::Zeroizing;

use crate::association::Association;
use crate::credentials::CredentialRegistry;
use crate::dtls::cookie::PeerCookie;
use crate::identity::{self, Binding, Framework, IdentityError, PeerIdentity, RevocationKey};
use crate::remote_psk::RemotePskSource;
use crate::strength;

/// TLS 1.2 PSK suites (10.2; `PSK-AES128-CBC-SHA256` is the mandatory one), in the
/// server's order of preference: AES-GCM (an AEAD with a 128-bit tag, and the cheapest
/// per record), then the mandatory CBC-SHA256 for clients that have only it, then CCM_8
/// (64-bit tag; OpenSSL ranks it lowest too). The server's order decides
/// (`CIPHER_SERVER_PREFERENCE`), so a client offering several gets GCM.
pub const PSK_CIPHERS: &str = "PSK-AES128-GCM-SHA256:PSK-AES128-CBC-SHA256:PSK-AES128-CCM8";
/// TLS 1.2 certificate suites (10.2; `ECDHE-ECDSA-AES128-SHA256` is the mandatory one),
/// in the same order of preference as [`PSK_CIPHERS`].
pub const ECDSA_CIPHERS: &str =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-CCM8";
/// DTLS 1.2 PSK suites (10.2: same suites as TLS 1.2; `PSK-AES128-CCM8` is the mandatory
/// one over DTLS). The same list and order as [`PSK_CIPHERS`]: the server's preference
/// decides, and constrained clients offer only CCM_8 anyway.
pub const DTLS_PSK_CIPHERS: &str = PSK_CIPHERS;
/// DTLS 1.2 certificate suites (10.2; `ECDHE-ECDSA-AES128-CCM8` is the mandatory one
/// over DTLS), as [`ECDSA_CIPHERS`].
pub const DTLS_ECDSA_CIPHERS: &str = ECDSA_CIPHERS;
/// TLS 1.3 suites: OpenSSL's defaults plus CCM_8, which OpenSSL leaves out.
pub const TLS13_SUITES: &str = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_CCM_8_SHA256";

// X509_V_ERR_* codes a pinned raw public key may raise at depth 0 (self-signed, no
// issuer in the store, or outside its dates, which do not apply to a raw key).
const RAW_KEY_TOLERATED: [i32; 5] = [
    18, // DEPTH_ZERO_SELF_SIGNED_CERT
    20, // UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21, // UNABLE_TO_VERIFY_LEAF_SIGNATURE
    9,  // CERT_NOT_YET_VALID
    10, // CERT_HAS_EXPIRED
];

/// A server certificate chain and key, selected by SNI.
#[derive(Clone)]
pub struct ServerCertificate {
    /// Host names (SNI, RFC 6066 §3) this certificate answers; the first configured
    /// certificate also answers any other name and clients sending none.
    pub server_names: Vec<String>,
    /// The leaf certificate followed by intermediates, PEM.
    pub chain_pem: String,
    /// The private key (EC P-256), PEM; wiped on drop.
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("server_names", &self.server_names)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What one listener accepts.
#[derive(Debug, Clone, Default)]
pub struct ServerSettings {
    /// Provisioned Symmetric Key SAEF (PSK suites, keys from the registry).
    pub psk: bool,
    /// Certificate-based SAEF: client certificates validated against `trust_anchors`
    /// (or pinned raw keys from the registry) and ECDHE-ECDSA suites.
    pub certificate: bool,
    /// Fail a certificate handshake when the client sends no certificate.
    pub require_client_certificate: bool,
    /// Server certificates; required when `certificate` is set.
    pub server_certificates: Vec<ServerCertificate>,
    /// Trust anchors for client certificates, PEM (one or more certificates each).
    pub trust_anchors: Vec<String>,
    /// CRL files (PEM); when any is given every client chain is checked against them.
    pub crl_files: Vec<PathBuf>,
    /// Refuse TLS 1.3 (TLS 1.2 only). Default: TLS 1.3 enabled.
    pub disable_tls13: bool,
    /// Where PSK identities that the registry lacks are fetched (keys provisioned by a
    /// MEF, registered with a MAF, or bootstrapped by GBA). None: only the registry's keys
    /// are accepted.
    pub remote_psk: Option<Arc<dyn RemotePskSource>>,
    /// Accept, on the certificate framework, clients that present no certificate
    /// (server-authenticated TLS); each of their requests must then authenticate a peer
    /// CSE with HTTP credentials ([`crate::peer_http`]). Off by default: weaker assurance.
    pub peer_http_authentication: bool,
}

/// Failures building a server configuration (operator errors).
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// Neither PSK nor certificates are enabled.
    #[error("a TLS listener must accept PSK, certificates, or both")]
    NoFramework,
    /// Peer HTTP authentication needs the certificate framework without a mandatory
    /// client certificate (the server authenticates with its certificate).
    #[error("peer HTTP authentication needs the certificate framework and an optional client certificate")]
    PeerHttpWithoutServerOnlyTls,
    /// The certificate framework is enabled without a server certificate.
    #[error("the certificate framework needs a server certificate")]
    NoServerCertificate,
    /// A PEM input could not be read.
    #[error("cannot parse the {0}")]
    Pem(&'static str),
    /// A key is not an EC P-256 key (10.1.1).
    #[error("the server key is not an EC P-256 key")]
    NotP256,
    /// A CRL file could not be loaded.
    #[error("cannot load CRL file {path}: {reason}")]
    Crl {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// OpenSSL refused the configuration.
    #[error("openssl: {0}")]
    Openssl(#[from] ErrorStack),
}

/// Why a handshake produced no security association. Peer-caused unless stated.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The TLS handshake failed; `reason` is OpenSSL's reason for the first error (for
    /// example "tlsv1 alert unknown ca" when the peer sent that alert, or
    /// "certificate verify failed" when we rejected its certificate).
    #[error("TLS handshake failed: {reason}")]
    Tls {
        /// OpenSSL's reason string, or the I/O error.
        reason: String,
    },
    /// The handshake succeeded but named no identity (for instance a certificate
    /// presented to a listener that does not accept certificates).
    #[error("no authenticated peer identity")]
    NoPeerIdentity,
    /// The peer certificate names no usable AE-ID / CSE-ID.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The credential was revoked.
    #[error("credential {0:?} is revoked")]
    Revoked(String),
    /// The client's certificate did not name the expected server identity.
    #[error("the server certificate does not name {expected:?}")]
    ServerIdentityMismatch {
        /// What the client expected.
        expected: String,
    },
    /// Local setup failed (our side).
    #[error("TLS setup failed: {0}")]
    Setup(#[from] ErrorStack),
}

impl HandshakeError {
    pub(crate) fn from_ssl(err: &openssl::ssl::Error) -> Self {
        let reason = err
            .ssl_error()
            .and_then(|stack| stack.errors().first())
            .and_then(|e| e.reason().map(str::to_owned))
            .or_else(|| err.io_error().map(|e| e.to_string()))
            .unwrap_or_else(|| err.to_string());
        Self::Tls { reason }
    }
}

/// The PSK credential matched by the server callback for one connection (TLS 1.3 does
/// not report the identity afterwards, so it is recorded here).
#[derive(Debug, Clone)]
struct PskMatch {
    kpsa_id: String,
    binding: Binding,
    /// The key came from the [`RemotePskSource`], not the registry.
    remote: bool,
}

/// Asks `source`, when there is one, for an identity the registry lacks.
fn fetch_remote_psk(
    source: Option<&dyn RemotePskSource>,
    identity: &str,
) -> Option<crate::remote_psk::RemotePsk> {
    source?.fetch(identity)
}

/// The transport a context is built for (10.2): TLS over TCP or DTLS over UDP. Both get
/// the same callbacks, trust store and suites; only versions and datagram options differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// TLS 1.2 (and 1.3 unless disabled) over TCP.
    Tls,
    /// DTLS 1.2 over UDP, with the cookie exchange.
    Dtls,
}

impl Transport {
    fn server_method(self) -> SslMethod {
        match self {
            Self::Tls => SslMethod::tls_server(),
            Self::Dtls => SslMethod::dtls_server(),
        }
    }
}

/// The contexts of one configuration, swapped together when a CRL file changes.
struct Contexts {
    tls: SslContext,
    dtls: SslContext,
}

/// The per-connection ex-data slots the context callbacks read and write.
#[derive(Clone, Copy)]
struct Indexes {
    psk: Index<Ssl, PskMatch>,
    cookie: Index<Ssl, PeerCookie>,
}

/// A configured TLS (and DTLS) listener configuration.
pub struct TlsServer {
    /// Rebuilt, and swapped, when a CRL file changes ([`TlsServer::reload_crls_if_changed`]).
    contexts: RwLock<Contexts>,
    indexes: Indexes,
    registry: Arc<CredentialRegistry>,
    settings: ServerSettings,
    crls: Mutex<CrlWatch>,
    /// (issuer DER, serial) of every certificate the loaded CRLs revoke.
    revoked: RwLock<HashSet<RevocationKey>>,
    settings_psk: bool,
    settings_certificate: bool,
}

/// What was loaded from the CRL files, and what was last reported about their expiry.
#[derive(Default)]
struct CrlWatch {
    /// Modification time and length of each file when it was loaded.
    stamps: Vec<Option<(std::time::SystemTime, u64)>>,
    /// nextUpdate (Unix seconds) of each CRL loaded, by file.
    next_updates: Vec<(PathBuf, Option<i64>)>,
    /// Expiry state last logged, by file, so each state is reported once.
    reported: HashMap<PathBuf, CrlFreshness>,
}

/// How close a CRL is to its nextUpdate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlFreshness {
    /// More than [`CRL_EXPIRY_WARNING`] left (or no nextUpdate).
    Fresh,
    /// Expires within [`CRL_EXPIRY_WARNING`].
    ExpiresSoon,
    /// Past its nextUpdate: OpenSSL fails every certificate handshake checked against it.
    Expired,
}

/// How long before a CRL's nextUpdate the server starts warning that it must be renewed.
pub const CRL_EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("psk", &self.settings_psk)
            .field("certificate", &self.settings_certificate)
            .finish_non_exhaustive()
    }
}

fn apply_profile(
    b: &mut SslContextBuilder,
    settings: &ServerSettings,
    cert: Option<&ServerCertificate>,
    transport: Transport,
) -> Result<(), TlsConfigError> {
    let (min, max) = match transport {
        Transport::Tls if settings.disable_tls13 => (SslVersion::TLS1_2, SslVersion::TLS1_2),
        Transport::Tls => (SslVersion::TLS1_2, SslVersion::TLS1_3),
        Transport::Dtls => (SslVersion::DTLS1_2, SslVersion::DTLS1_2),
    };
    b.set_min_proto_version(Some(min))?;
    b.set_max_proto_version(Some(max))?;
    if transport == Transport::Dtls {
        // Cookies (RFC 6347 4.2.1) are checked by `dtls::cookie` before any state exists;
        // OpenSSL re-checks them through the callbacks of `build_context`. The MTU is set
        // per connection (`DtlsLimits::mtu`): there is no socket for OpenSSL to query.
        b.set_options(SslOptions::COOKIE_EXCHANGE | SslOptions::NO_QUERY_MTU);
    }
    let mut ciphers = Vec::new();
    if settings.psk {
        ciphers.push(PSK_CIPHERS);
    }
    if settings.certificate {
        ciphers.push(ECDSA_CIPHERS);
    }
    b.set_cipher_list(&ciphers.join(":"))?;
    b.set_ciphersuites(TLS13_SUITES)?;
    b.set_groups_list("P-256:X25519:P-384")?;
    // Level 0 for the CCM_8 suites; every other parameter is pinned here, and
    // certificate strength is checked in `verify_client` (strength.rs).
    b.set_security_level(0);
    b.set_sigalgs_list(strength::SIGALGS)?;
    b.set_options(SslOptions::NO_TICKET | SslOptions::CIPHER_SERVER_PREFERENCE);
    b.set_session_cache_mode(SslSessionCacheMode::OFF);
    b.set_num_tickets(0)?;
    // OpenSSL insists on a session ID context when client certificates are verified,
    // even with caching off (a TLS 1.3 PSK handshake fails with "session id context
    // uninitialized" otherwise).
    b.set_session_id_context(b"bastion-tls")?;
    // Read-ahead lets OpenSSL take a whole record (header and body) in one `recv`
    // instead of two; with tokio's readiness tracking a kept-alive request then costs one
    // `recv` instead of three (strace; docs/benchmarks.md, "TLS: handshakes and
    // kept-alive throughput").
    b.set_read_ahead(true);
    if let Some(cert) = cert {
        let mut chain = X509::stack_from_pem(cert.chain_pem.as_bytes())
            .map_err(|_| TlsConfigError::Pem("server certificate chain"))?
            .into_iter();
        let leaf = chain
            .next()
            .ok_or(TlsConfigError::Pem("server certificate chain"))?;
        let key = PKey::private_key_from_pem(cert.key_pem.as_bytes())
            .map_err(|_| TlsConfigError::Pem("server private key"))?;
        let p256 =
            key.ec_key().ok().and_then(|k| k.group().curve_name()) == Some(Nid::X9_62_PRIME256V1);
        if !p256 {
            return Err(TlsConfigError::NotP256);
        }
        b.set_certificate(&leaf)?;
        b.set_private_key(&key)?;
        for extra in chain {
            b.add_extra_chain_cert(extra)?;
        }
        b.check_private_key()?;
    }
    if settings.certificate {
        let mut store = X509StoreBuilder::new()?;
        for pem in &settings.trust_anchors {
            for anchor in X509::stack_from_pem(pem.as_bytes())
                .map_err(|_| TlsConfigError::Pem("trust anchor"))?
            {
                store.add_cert(anchor)?;
            }
        }
        if !settings.crl_files.is_empty() {
            let lookup = store.add_lookup(X509Lookup::file())?;
            for path in &settings.crl_files {
                let crl_err = |reason: &str| TlsConfigError::Crl {
                    path: path.clone(),
                    reason: reason.to_owned(),
                };
                // load_crl_file needs a UTF-8 path without NUL.
                let text = path.to_str().ok_or_else(|| crl_err("path is not UTF-8"))?;
                if text.contains('\0') {
                    return Err(crl_err("path contains NUL"));
                }
                let loaded = lookup
                    .load_crl_file(text, SslFiletype::PEM)
                    .map_err(|e| crl_err(&e.to_string()))?;
                if loaded < 1 {
                    return Err(crl_err("no CRL in file"));
                }
            }
            // 8.1.2.5: revocation checked for every certificate of the chain.
            store.set_flags(X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL)?;
        }
        b.set_cert_store(store.build());
    }
    Ok(())
}

impl TlsServer {
    /// Builds the acceptor. PSK identities and pinned raw public keys are looked up in
    /// `registry` at every handshake, so adds and revocations apply without restart.
    pub fn new(
        settings: &ServerSettings,
        registry: Arc<CredentialRegistry>,
    ) -> Result<Self, TlsConfigError> {
        if !settings.psk && !settings.certificate {
            return Err(TlsConfigError::NoFramework);
        }
        if settings.certificate && settings.server_certificates.is_empty() {
            return Err(TlsConfigError::NoServerCertificate);
        }
        if settings.peer_http_authentication
            && (!settings.certificate || settings.require_client_certificate)
        {
            return Err(TlsConfigError::PeerHttpWithoutServerOnlyTls);
        }
        let indexes = Indexes {
            psk: Ssl::new_ex_index::<PskMatch>()?,
            cookie: Ssl::new_ex_index::<PeerCookie>()?,
        };
        let contexts = build_contexts(settings, &registry, indexes)?;
        let (revoked, next_updates) = load_crls(&settings.crl_files)?;
        let server = Self {
            contexts: RwLock::new(contexts),
            indexes,
            registry,
            settings: settings.clone(),
            crls: Mutex::new(CrlWatch {
                stamps: crl_stamps(&settings.crl_files),
                next_updates,
                reported: HashMap::new(),
            }),
            revoked: RwLock::new(revoked),
            settings_psk: settings.psk,
            settings_certificate: settings.certificate,
        };
        server.report_crl_freshness(unix_now());
        Ok(server)
    }

    /// Reloads the CRL files when one of them changed (modification time or length):
    /// the next handshakes are checked against the new lists, and associations already
    /// open with a certificate they revoke fail [`TlsServer::is_revoked`] from now on.
    /// A file that cannot be read keeps the previous lists in force (the error is
    /// returned for the caller to log). Then reports, once per change of state, a CRL
    /// about to expire (warning) or expired (error). Returns whether anything was
    /// reloaded.
    pub fn reload_crls_if_changed(&self) -> Result<bool, TlsConfigError> {
        let stamps = crl_stamps(&self.settings.crl_files);
        let changed = lock(&self.crls).stamps != stamps;
        if changed {
            let contexts = build_contexts(&self.settings, &self.registry, self.indexes)?;
            let (revoked, next_updates) = load_crls(&self.settings.crl_files)?;
            *self.contexts.write().unwrap_or_else(|e| e.into_inner()) = contexts;
            *self.revoked.write().unwrap_or_else(|e| e.into_inner()) = revoked;
            let mut watch = lock(&self.crls);
            watch.stamps = stamps;
            watch.next_updates = next_updates;
            tracing::info!(files = self.settings.crl_files.len(), "CRLs reloaded");
        }
        self.report_crl_freshness(unix_now());
        Ok(changed)
    }

    /// Brings revocation up to date, for a listener to call periodically (every second
    /// in `bastion serve` and `bastion das`): re-reads the credential store and the CRL
    /// files when they changed and reports CRLs about to expire. Failures are logged and
    /// keep what was in force.
    pub fn refresh_revocation(&self) {
        match self.registry.reload_if_changed() {
            Ok(true) => tracing::info!("credential store reloaded"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "credential store not reloaded"),
        }
        if let Err(e) = self.reload_crls_if_changed() {
            tracing::warn!(error = %e, "CRLs not reloaded; the previous ones stay in force");
        }
    }

    /// The freshness of each CRL file at `now` (Unix seconds).
    pub fn crl_freshness(&self, now: i64) -> Vec<(PathBuf, CrlFreshness)> {
        lock(&self.crls)
            .next_updates
            .iter()
            .map(|(path, next)| (path.clone(), freshness(*next, now)))
            .collect()
    }

    fn report_crl_freshness(&self, now: i64) {
        let states = self.crl_freshness(now);
        let mut watch = lock(&self.crls);
        for (path, state) in states {
            if watch.reported.get(&path) == Some(&state) {
                continue;
            }
            let next_update = watch
                .next_updates
                .iter()
                .find(|(p, _)| *p == path)
                .and_then(|(_, n)| *n)
                .unwrap_or(0);
            match state {
                CrlFreshness::Fresh => {}
                CrlFreshness::ExpiresSoon => tracing::warn!(
                    crl = %path.display(), next_update,
                    "CRL expires soon: issue a new one, or every certificate handshake will \
                     fail once it has expired"
                ),
                CrlFreshness::Expired => tracing::error!(
                    crl = %path.display(), next_update,
                    "CRL has expired: every certificate handshake fails until it is replaced"
                ),
            }
            watch.reported.insert(path, state);
        }
    }

    /// Whether the association of `identity` may no longer be used: its credential was
    /// revoked in the registry, or its certificate (or one of its chain) is on a CRL
    /// loaded since the handshake. A server checks this before every request.
    pub fn is_revoked(&self, identity: &PeerIdentity) -> bool {
        if self.registry.is_revoked(identity.credential()) {
            return true;
        }
        if identity.framework() == Framework::Psk && identity.is_remote_psk() {
            return !self
                .settings
                .remote_psk
                .as_ref()
                .is_some_and(|source| source.is_current(identity.credential()));
        }
        let keys = identity.revocation_keys();
        if keys.is_empty() {
            return false;
        }
        let revoked = self.revoked.read().unwrap_or_else(|e| e.into_inner());
        keys.iter().any(|k| revoked.contains(k))
    }

    /// Runs the server handshake on `tcp` and returns the stream with the identity the
    /// association is bound to. The caller applies its own timeout.
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(SslStream<TcpStream>, PeerIdentity), HandshakeError> {
        let stream = self.handshake(tcp).await?;
        let identity = self.identity_of(stream.ssl())?;
        if self.registry.is_revoked(identity.credential()) {
            return Err(HandshakeError::Revoked(identity.credential().to_owned()));
        }
        Ok((stream, identity))
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<SslStream<TcpStream>, HandshakeError> {
        let context = self
            .contexts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .tls
            .clone();
        let ssl = Ssl::new(&context)?;
        let mut stream = SslStream::new(ssl, tcp)?;
        Pin::new(&mut stream)
            .accept()
            .await
            .map_err(|e| HandshakeError::from_ssl(&e))?;
        Ok(stream)
    }

    /// [`TlsServer::accept`], keeping the identity with this server as an
    /// [`Association`] that every request on the stream asks for its originator. With
    /// [`ServerSettings::peer_http_authentication`], a client that presented neither a
    /// PSK nor a certificate gets a server-authenticated association whose requests
    /// authenticate by HTTP credentials ([`Association::admit`]).
    pub async fn associate(
        self: &Arc<Self>,
        tcp: TcpStream,
    ) -> Result<(SslStream<TcpStream>, Association), HandshakeError> {
        let stream = self.handshake(tcp).await?;
        let association = self.association_of(stream.ssl())?;
        Ok((stream, association))
    }

    /// The association a completed server handshake on `ssl` (TLS or DTLS) established:
    /// the identity it is bound to, refused when its credential is revoked.
    pub(crate) fn association_of(
        self: &Arc<Self>,
        ssl: &openssl::ssl::SslRef,
    ) -> Result<Association, HandshakeError> {
        if self.settings.peer_http_authentication
            && ssl.ex_data(self.indexes.psk).is_none()
            && ssl.peer_certificate().is_none()
        {
            return Ok(Association::per_request_http(self.clone()));
        }
        let identity = self.identity_of(ssl)?;
        if self.registry.is_revoked(identity.credential()) {
            return Err(HandshakeError::Revoked(identity.credential().to_owned()));
        }
        Ok(Association::new(self.clone(), identity))
    }

    /// A new server connection on the current DTLS context, carrying the peer address its
    /// cookie callbacks check.
    pub(crate) fn dtls_ssl(&self, cookie: PeerCookie) -> Result<Ssl, ErrorStack> {
        let context = self
            .contexts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .dtls
            .clone();
        let mut ssl = Ssl::new(&context)?;
        ssl.set_ex_data(self.indexes.cookie, cookie);
        Ok(ssl)
    }

    /// The credential store this server looks credentials up in.
    pub(crate) fn registry(&self) -> &CredentialRegistry {
        &self.registry
    }

    fn identity_of(&self, ssl: &openssl::ssl::SslRef) -> Result<PeerIdentity, HandshakeError> {
        if let Some(m) = ssl.ex_data(self.indexes.psk) {
            let identity = PeerIdentity::new(Framework::Psk, m.kpsa_id.clone(), m.binding.clone());
            return Ok(if m.remote {
                identity.with_remote_psk()
            } else {
                identity
            });
        }
        if !self.settings_certificate {
            return Err(HandshakeError::NoPeerIdentity);
        }
        let cert = ssl
            .peer_certificate()
            .ok_or(HandshakeError::NoPeerIdentity)?;
        if ssl.verify_result() != X509VerifyResult::OK {
            return Err(HandshakeError::NoPeerIdentity);
        }
        let spki = identity::spki_der(&cert)?;
        if let Some((ni, binding)) = self.registry.lookup_raw_public_key(&spki) {
            return Ok(PeerIdentity::new(Framework::RawPublicKey, ni, binding));
        }
        let binding = identity::binding_from_certificate(&cert)?;
        let fingerprint = identity::certificate_fingerprint(&cert)?;
        Ok(
            PeerIdentity::new(Framework::Certificate, fingerprint, binding)
                .with_revocation_keys(revocation_keys(ssl, &cert)),
        )
    }
}

/// The TLS and DTLS contexts for `settings`; CRL files are read now.
fn build_contexts(
    settings: &ServerSettings,
    registry: &Arc<CredentialRegistry>,
    indexes: Indexes,
) -> Result<Contexts, TlsConfigError> {
    Ok(Contexts {
        tls: build_context(settings, registry, indexes, Transport::Tls)?,
        dtls: build_context(settings, registry, indexes, Transport::Dtls)?,
    })
}

/// The OpenSSL server context for `settings` over `transport`.
fn build_context(
    settings: &ServerSettings,
    registry: &Arc<CredentialRegistry>,
    indexes: Indexes,
    transport: Transport,
) -> Result<SslContext, TlsConfigError> {
    let psk_index = indexes.psk;
    let mut b = SslAcceptor::mozilla_intermediate_v5(transport.server_method())?;
    apply_profile(
        &mut b,
        settings,
        settings.server_certificates.first(),
        transport,
    )?;

    // SNI: one context per further certificate; every context carries the same
    // profile and trust store because OpenSSL verifies with the switched context.
    let mut by_name: HashMap<String, SslContext> = HashMap::new();
    for (i, cert) in settings.server_certificates.iter().enumerate() {
        let ctx = if i == 0 {
            None
        } else {
            let mut cb = SslContext::builder(transport.server_method())?;
            apply_profile(&mut cb, settings, Some(cert), transport)?;
            if transport == Transport::Dtls {
                crate::dtls::cookie::install_callbacks(&mut cb, indexes.cookie);
            }
            Some(cb.build())
        };
        for name in &cert.server_names {
            let name = name.to_ascii_lowercase();
            if let Some(ctx) = &ctx {
                by_name.entry(name).or_insert_with(|| ctx.clone());
            }
        }
    }
    if !by_name.is_empty() {
        b.set_servername_callback(move |ssl, _alert| {
            if let Some(ctx) = ssl
                .servername(NameType::HOST_NAME)
                .and_then(|n| by_name.get(&n.to_ascii_lowercase()))
            {
                ssl.set_ssl_context(ctx)
                    .map_err(|_| SniError::ALERT_FATAL)?;
            }
            Ok(())
        });
    }

    if settings.psk {
        let registry = registry.clone();
        let remote_psk = settings.remote_psk.clone();
        b.set_psk_server_callback(move |ssl, identity, psk| {
            // 8.2.2.1: psk_identity = KpsaID; the client adds a trailing NUL.
            let Some(raw) = identity else { return Ok(0) };
            let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
            let Ok(kpsa_id) = std::str::from_utf8(raw) else {
                return Ok(0);
            };
            let found = registry
                .lookup_psk(kpsa_id)
                .map(|(key, binding)| (key, binding, false))
                .or_else(|| {
                    fetch_remote_psk(remote_psk.as_deref(), kpsa_id)
                        .map(|r| (r.key, r.binding, true))
                });
            match found {
                Some((key, binding, remote)) if key.expose().len() <= psk.len() => {
                    let len = key.expose().len();
                    psk[..len].copy_from_slice(key.expose());
                    ssl.set_ex_data(
                        psk_index,
                        PskMatch {
                            kpsa_id: kpsa_id.to_owned(),
                            binding,
                            remote,
                        },
                    );
                    Ok(len)
                }
                _ => {
                    tracing::debug!(kpsa_id, "unknown or revoked PSK identity");
                    Ok(0)
                }
            }
        });
    }

    if settings.certificate {
        let mut mode = SslVerifyMode::PEER;
        if settings.require_client_certificate {
            mode |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
        }
        let registry = registry.clone();
        b.set_verify_callback(mode, move |preverify_ok, ctx| {
            verify_client(&registry, preverify_ok, ctx)
        });
    } else {
        b.set_verify(SslVerifyMode::NONE);
    }

    if transport == Transport::Dtls {
        crate::dtls::cookie::install_callbacks(&mut b, indexes.cookie);
    }
    Ok(b.build().into_context())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn freshness(next_update: Option<i64>, now: i64) -> CrlFreshness {
    let warn = i64::try_from(CRL_EXPIRY_WARNING.as_secs()).unwrap_or(i64::MAX);
    match next_update {
        Some(t) if t <= now => CrlFreshness::Expired,
        Some(t) if t - now <= warn => CrlFreshness::ExpiresSoon,
        _ => CrlFreshness::Fresh,
    }
}

/// Modification time and length of each file (`None` when unreadable).
fn crl_stamps(paths: &[PathBuf]) -> Vec<Option<(std::time::SystemTime, u64)>> {
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// The certificates the CRL files revoke, and the nextUpdate of each CRL.
#[allow(clippy::type_complexity)]
fn load_crls(
    paths: &[PathBuf],
) -> Result<(HashSet<RevocationKey>, Vec<(PathBuf, Option<i64>)>), TlsConfigError> {
    let mut revoked = HashSet::new();
    let mut next_updates = Vec::new();
    for path in paths {
        let crl_err = |reason: &str| TlsConfigError::Crl {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let pem = std::fs::read(path).map_err(|e| crl_err(&e.to_string()))?;
        for crl in crls_in(&pem).map_err(|_| crl_err("not a PEM CRL"))? {
            let issuer = crl
                .issuer_name()
                .to_der()
                .map_err(|e| crl_err(&e.to_string()))?;
            for entry in crl.get_revoked().into_iter().flatten() {
                let serial = entry
                    .serial_number()
                    .to_bn()
                    .map_err(|e| crl_err(&e.to_string()))?
                    .to_vec();
                revoked.insert(RevocationKey::new(issuer.clone(), serial));
            }
            next_updates.push((path.clone(), crl.next_update().and_then(unix_of)));
        }
    }
    Ok((revoked, next_updates))
}

/// Every `X509 CRL` PEM block of a file.
fn crls_in(pem: &[u8]) -> Result<Vec<X509Crl>, ErrorStack> {
    const BEGIN: &[u8] = b"-----BEGIN X509 CRL-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(at) = rest.windows(BEGIN.len()).position(|w| w == BEGIN) {
        let block = &rest[at..];
        out.push(X509Crl::from_pem(block)?);
        rest = &block[BEGIN.len()..];
    }
    Ok(out)
}

fn unix_of(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(t).ok()?;
    Some(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// The (issuer, serial) of every certificate of the peer's verified chain.
fn revocation_keys(ssl: &openssl::ssl::SslRef, leaf: &X509Ref) -> Vec<RevocationKey> {
    let key = |c: &X509Ref| {
        Some(RevocationKey::new(
            c.issuer_name().to_der().ok()?,
            c.serial_number().to_bn().ok()?.to_vec(),
        ))
    };
    match ssl.verified_chain() {
        Some(chain) => chain.iter().filter_map(key).collect(),
        None => key(leaf).into_iter().collect(),
    }
}

/// Client certificate check (8.1.2.2, 8.1.2.5): every certificate of the chain must be
/// strong enough (`strength.rs`); a pinned raw key is then accepted by its digest alone;
/// otherwise the chain must validate (OpenSSL, with CRLs when configured) and the leaf
/// must name exactly one AE-ID / CSE-ID, or the handshake is aborted.
fn verify_client(
    registry: &CredentialRegistry,
    preverify_ok: bool,
    ctx: &mut X509StoreContextRef,
) -> bool {
    let Some(cert) = ctx.current_cert() else {
        return false;
    };
    if !strength::acceptable(cert) {
        ctx.set_error(X509VerifyResult::APPLICATION_VERIFICATION);
        return false;
    }
    if ctx.error_depth() != 0 {
        return preverify_ok;
    }
    let pinned = identity::spki_der(cert)
        .ok()
        .and_then(|spki| registry.lookup_raw_public_key(&spki))
        .is_some();
    if pinned {
        if preverify_ok || RAW_KEY_TOLERATED.contains(&ctx.error().as_raw()) {
            ctx.set_error(X509VerifyResult::OK);
            return true;
        }
        return false;
    }
    if !preverify_ok {
        return false;
    }
    if identity::binding_from_certificate(cert).is_err() {
        ctx.set_error(X509VerifyResult::APPLICATION_VERIFICATION);
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_freshness_warns_a_day_ahead_and_errs_when_past() {
        let day = 86_400;
        assert_eq!(freshness(None, 1_000), CrlFreshness::Fresh);
        assert_eq!(freshness(Some(1_000 + day + 1), 1_000), CrlFreshness::Fresh);
        assert_eq!(
            freshness(Some(1_000 + day), 1_000),
            CrlFreshness::ExpiresSoon
        );
        assert_eq!(freshness(Some(1_001), 1_000), CrlFreshness::ExpiresSoon);
        assert_eq!(freshness(Some(1_000), 1_000), CrlFreshness::Expired);
        assert_eq!(freshness(Some(10), 1_000), CrlFreshness::Expired);
    }

    #[test]
    fn every_crl_of_a_file_is_read() {
        let ca = crate::certs::create_ca("CA", crate::certs::Validity::days(1)).unwrap();
        let one = crate::certs::create_crl(&ca, &[], 1, 2).unwrap();
        let two = crate::certs::create_crl(&ca, &[], 2, 3).unwrap();
        let both = format!("{one}{two}");
        assert_eq!(crls_in(both.as_bytes()).unwrap().len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.crl");
        std::fs::write(&file, both).unwrap();
        let (revoked, next) = load_crls(std::slice::from_ref(&file)).unwrap();
        assert!(revoked.is_empty());
        let now = unix_now();
        let days: Vec<i64> = next
            .iter()
            .map(|(_, t)| (t.unwrap() - now + 60) / 86_400)
            .collect();
        assert_eq!(days, vec![2, 3]);
    }
}
