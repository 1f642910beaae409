//! The TLS client side of a security association (Entity A, TS-0003 8.2.1): a PSK client
//! (KpsaID + Kpsa, 8.2.2.1) or a certificate client (own chain and key, trust anchors for
//! the server, optional expected server CSE-ID, 8.1.2.2). Used by `bastion req`, the CSE's
//! registrar and peer-CSE clients, and tests. The connector configuration here also
//! serves the DTLS client ([`crate::dtls::DtlsClient`]).

use std::pin::Pin;

use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::credentials::{validate_kpsa_id, CredentialError, PskKey};
use crate::identity;
use crate::server::{
    HandshakeError, TlsConfigError, Transport, DTLS_ECDSA_CIPHERS, DTLS_PSK_CIPHERS, ECDSA_CIPHERS,
    PSK_CIPHERS, TLS13_SUITES,
};

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    fn ssl(self) -> SslVersion {
        match self {
            Self::Tls12 => SslVersion::TLS1_2,
            Self::Tls13 => SslVersion::TLS1_3,
        }
    }
}

/// Client knobs; the defaults offer everything the profile allows.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Lowest version offered (default TLS 1.2).
    pub min_version: Option<TlsVersion>,
    /// Highest version offered (default TLS 1.3).
    pub max_version: Option<TlsVersion>,
    /// TLS 1.2 cipher list (OpenSSL syntax) replacing the profile's.
    pub tls12_ciphers: Option<String>,
    /// TLS 1.3 suites (OpenSSL syntax) replacing the profile's.
    pub tls13_suites: Option<String>,
}

/// A configured client.
pub struct TlsClient {
    connector: SslConnector,
    expected_server: Option<String>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("expected_server", &self.expected_server)
            .finish_non_exhaustive()
    }
}

/// Client configuration failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    /// The KpsaID is malformed.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// Anything else about the TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
}

impl From<openssl::error::ErrorStack> for ClientConfigError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::Tls(TlsConfigError::Openssl(e))
    }
}

fn base(
    options: &ClientOptions,
    default_ciphers: &str,
    transport: Transport,
) -> Result<openssl::ssl::SslConnectorBuilder, ClientConfigError> {
    let mut b = match transport {
        Transport::Tls => {
            let mut b = SslConnector::builder(SslMethod::tls_client())?;
            let min = options.min_version.unwrap_or(TlsVersion::Tls12).ssl();
            b.set_min_proto_version(Some(min))?;
            let max = options.max_version.unwrap_or(TlsVersion::Tls13).ssl();
            b.set_max_proto_version(Some(max))?;
            b
        }
        Transport::Dtls => {
            let mut b = SslConnector::builder(SslMethod::dtls_client())?;
            b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
            b.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
            // No socket for OpenSSL to query: the MTU is set per connection.
            b.set_options(openssl::ssl::SslOptions::NO_QUERY_MTU);
            b
        }
    };
    b.set_cipher_list(options.tls12_ciphers.as_deref().unwrap_or(default_ciphers))?;
    b.set_ciphersuites(options.tls13_suites.as_deref().unwrap_or(TLS13_SUITES))?;
    b.set_groups_list("P-256:X25519:P-384")?;
    // As on the server: level 0 for CCM_8, everything else pinned (strength.rs).
    b.set_security_level(0);
    b.set_sigalgs_list(crate::strength::SIGALGS)?;
    // One `recv` per record instead of two, as on the server (`server.rs`).
    b.set_read_ahead(true);
    Ok(b)
}

impl TlsClient {
    /// A PSK client presenting `kpsa_id` with key `key`.
    pub fn psk(
        kpsa_id: &str,
        key: PskKey,
        options: &ClientOptions,
    ) -> Result<Self, ClientConfigError> {
        validate_kpsa_id(kpsa_id)?;
        Ok(Self::with(psk_connector(
            kpsa_id,
            key,
            options,
            Transport::Tls,
        )?))
    }

    /// A PSK client presenting an identity that is not a KpsaID: one that names a key
    /// held by a key server, such as a GBA identity `3GPP-bootstrapping.<B-TID>` (TS-0003
    /// 8.3.2.3, 3GPP TS 33.222) whose B-TID carries base64, or the name an MQTT broker
    /// knows the CSE by (`mqtts://`). The identity must be 1 to 128 bytes of printable
    /// ASCII.
    pub fn psk_with_identity(
        identity: &str,
        key: PskKey,
        options: &ClientOptions,
    ) -> Result<Self, ClientConfigError> {
        validate_key_server_identity(identity)?;
        Ok(Self::with(psk_connector(
            identity,
            key,
            options,
            Transport::Tls,
        )?))
    }

    fn with(connector: SslConnector) -> Self {
        Self {
            connector,
            expected_server: None,
        }
    }

    /// A certificate client: `chain_pem` (leaf first) and `key_pem` are its own,
    /// `trust_anchors_pem` validates the server. When `expected_server_id` is given the
    /// server certificate must name it in a SAN URI (8.1.2.2 step 2); the host name given
    /// to [`connect`](Self::connect) is always checked against the dNSNames.
    pub fn certificate(
        chain_pem: &str,
        key_pem: &str,
        trust_anchors_pem: &str,
        expected_server_id: Option<&str>,
        options: &ClientOptions,
    ) -> Result<Self, ClientConfigError> {
        let connector = certificate_connector(
            chain_pem,
            key_pem,
            trust_anchors_pem,
            options,
            Transport::Tls,
        )?;
        Ok(Self {
            connector,
            expected_server: expected_server_id.map(str::to_owned),
        })
    }

    /// Runs the client handshake; `server_name` goes into SNI (RFC 6066 §3, 10.2) and,
    /// for certificates, is verified against the server's dNSNames.
    pub async fn connect(
        &self,
        server_name: &str,
        tcp: TcpStream,
    ) -> Result<SslStream<TcpStream>, HandshakeError> {
        let ssl: Ssl = self.connector.configure()?.into_ssl(server_name)?;
        let mut stream = SslStream::new(ssl, tcp)?;
        Pin::new(&mut stream)
            .connect()
            .await
            .map_err(|e| HandshakeError::from_ssl(&e))?;
        check_server_identity(stream.ssl(), self.expected_server.as_deref())?;
        Ok(stream)
    }
}

/// A key-server PSK identity (GBA): 1 to 128 bytes of printable ASCII.
pub(crate) fn validate_key_server_identity(identity: &str) -> Result<(), CredentialError> {
    if identity.is_empty()
        || identity.len() > 128
        || !identity.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(CredentialError::InvalidPskIdentity(identity.to_owned()));
    }
    Ok(())
}

/// 8.1.2.2 step 2: the server certificate names `expected` (when given) in a SAN URI.
pub(crate) fn check_server_identity(
    ssl: &openssl::ssl::SslRef,
    expected: Option<&str>,
) -> Result<(), HandshakeError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let named = ssl
        .peer_certificate()
        .and_then(|c| identity::binding_from_certificate(&c).ok());
    if named.as_ref().map(|b| b.originator()) != Some(expected) {
        return Err(HandshakeError::ServerIdentityMismatch {
            expected: expected.to_owned(),
        });
    }
    Ok(())
}

/// The connector of a PSK client presenting `identity` with `key` over `transport`.
pub(crate) fn psk_connector(
    identity: &str,
    key: PskKey,
    options: &ClientOptions,
    transport: Transport,
) -> Result<SslConnector, ClientConfigError> {
    let default_ciphers = match transport {
        Transport::Tls => PSK_CIPHERS,
        Transport::Dtls => DTLS_PSK_CIPHERS,
    };
    let mut b = base(options, default_ciphers, transport)?;
    // No certificate is involved in a PSK handshake; TLS 1.3 falls back to
    // certificates only if the server ignores the PSK, which must then fail.
    b.set_verify(SslVerifyMode::PEER);
    let identity = identity.as_bytes().to_vec();
    b.set_psk_client_callback(move |_ssl, _hint, id_out, psk_out| {
        // OpenSSL reads the identity as a C string: NUL-terminate it.
        let key = key.expose();
        if identity.len() + 1 > id_out.len() || key.len() > psk_out.len() {
            return Ok(0);
        }
        id_out[..identity.len()].copy_from_slice(&identity);
        id_out[identity.len()] = 0;
        psk_out[..key.len()].copy_from_slice(key);
        Ok(key.len())
    });
    Ok(b.build())
}

/// The connector of a certificate client with its own chain and key, validating the
/// server against `trust_anchors_pem`, over `transport`.
pub(crate) fn certificate_connector(
    chain_pem: &str,
    key_pem: &str,
    trust_anchors_pem: &str,
    options: &ClientOptions,
    transport: Transport,
) -> Result<SslConnector, ClientConfigError> {
    let default_ciphers = match transport {
        Transport::Tls => ECDSA_CIPHERS,
        Transport::Dtls => DTLS_ECDSA_CIPHERS,
    };
    let mut b = base(options, default_ciphers, transport)?;
    let mut chain = X509::stack_from_pem(chain_pem.as_bytes())
        .map_err(|_| TlsConfigError::Pem("client certificate chain"))?
        .into_iter();
    let leaf = chain
        .next()
        .ok_or(TlsConfigError::Pem("client certificate chain"))?;
    let key = PKey::private_key_from_pem(key_pem.as_bytes())
        .map_err(|_| TlsConfigError::Pem("client private key"))?;
    b.set_certificate(&leaf)?;
    b.set_private_key(&key)?;
    for extra in chain {
        b.add_extra_chain_cert(extra)?;
    }
    b.check_private_key()?;
    let mut store = X509StoreBuilder::new()?;
    for anchor in X509::stack_from_pem(trust_anchors_pem.as_bytes())
        .map_err(|_| TlsConfigError::Pem("trust anchor"))?
    {
        store.add_cert(anchor)?;
    }
    b.set_cert_store(store.build());
    b.set_verify_callback(SslVerifyMode::PEER, |preverify_ok, ctx| {
        preverify_ok && ctx.current_cert().is_some_and(crate::strength::acceptable)
    });
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_server_identities_are_printable_ascii_up_to_128_bytes() {
        let key = || PskKey::new(&[1; 32]).unwrap();
        let options = ClientOptions::default();
        let gba = "3GPP-bootstrapping.+//7//v/+//7//v/+//7/w==@bsf.example.com";
        assert!(TlsClient::psk(gba, key(), &options).is_err());
        assert!(TlsClient::psk_with_identity(gba, key(), &options).is_ok());
        for bad in [String::new(), "a b".into(), "x".repeat(129)] {
            let err = TlsClient::psk_with_identity(&bad, key(), &options).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid PSK identity {bad:?}: expected 1 to 128 printable ASCII characters"
                )
            );
        }
    }
}
