//! Who the peer of a security association is: the framework that authenticated it, the
//! credential it used, and the AE-ID or CSE-ID the association is bound to (TS-0003
//! 8.2.2.1, 8.2.2.2). Owns the rules that turn a certificate into an originator (SAN URI,
//! exact match, no wildcards; 8.1.2.2) and RFC 6920 public-key identifiers (10.1.2).

use openssl::hash::{hash, MessageDigest};
use openssl::x509::X509Ref;
use serde::{Deserialize, Serialize};

use crate::hexutil;

/// The framework that authenticated the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framework {
    /// Provisioned Symmetric Key SAEF (8.2.2.1): TLS-PSK with KpsaID / Kpsa.
    Psk,
    /// Certificate-based SAEF with an X.509 chain to a trust anchor (8.2.2.2).
    Certificate,
    /// Certificate-based SAEF with a raw public key pinned by its RFC 6920 digest (10.1.2).
    RawPublicKey,
}

/// The identity a security association is bound to (8.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Binding {
    /// An AE-ID (stem, SP-relative or absolute).
    Ae(String),
    /// A CSE-ID (SP-relative or absolute).
    Cse(String),
    /// A Credential-ID (`<typeID>-<value>`, 10.4) the AE-ID / CSE-ID is resolved from
    /// later; for a KpsaID it is `12-<KpsaID>` (8.2.2.1).
    CredentialId(String),
}

impl Binding {
    /// An AE-ID binding, validated (see [`validate_ae_id`]).
    pub fn ae(id: &str) -> Result<Self, IdentityError> {
        validate_ae_id(id)?;
        Ok(Self::Ae(id.to_owned()))
    }

    /// A CSE-ID binding, validated (see [`validate_cse_id`]).
    pub fn cse(id: &str) -> Result<Self, IdentityError> {
        validate_cse_id(id)?;
        Ok(Self::Cse(id.to_owned()))
    }

    /// The Credential-ID of a KpsaID: typeID 12 (10.4, table "Credential-ID").
    pub fn credential_id_for_kpsa(kpsa_id: &str) -> Self {
        Self::CredentialId(format!("12-{kpsa_id}"))
    }

    /// The originator string the association is bound to.
    pub fn originator(&self) -> &str {
        match self {
            Self::Ae(id) | Self::Cse(id) | Self::CredentialId(id) => id,
        }
    }

    /// Whether the association is bound to a CSE.
    pub fn is_cse(&self) -> bool {
        matches!(self, Self::Cse(_))
    }

    /// Re-checks a binding read from storage.
    pub(crate) fn validate(&self) -> Result<(), IdentityError> {
        match self {
            Self::Ae(id) => validate_ae_id(id),
            Self::Cse(id) => validate_cse_id(id),
            Self::CredentialId(id) => validate_credential_id(id),
        }
    }
}

/// The authenticated peer of one security association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    framework: Framework,
    credential: String,
    binding: Binding,
    /// For a certificate chain: what a CRL would name each of its certificates by.
    revocation_keys: Vec<RevocationKey>,
    /// The PSK came from a key server ([`crate::RemotePskSource`]), which then decides
    /// whether the association is still current.
    remote_psk: bool,
}

/// How a CRL names a certificate: its issuer (DER-encoded name) and serial number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RevocationKey {
    issuer_der: Vec<u8>,
    serial: Vec<u8>,
}

impl RevocationKey {
    pub(crate) fn new(issuer_der: Vec<u8>, serial: Vec<u8>) -> Self {
        Self { issuer_der, serial }
    }
}

impl PeerIdentity {
    pub(crate) fn new(framework: Framework, credential: String, binding: Binding) -> Self {
        Self {
            framework,
            credential,
            binding,
            revocation_keys: Vec::new(),
            remote_psk: false,
        }
    }

    pub(crate) fn with_remote_psk(mut self) -> Self {
        self.remote_psk = true;
        self
    }

    /// Whether the PSK was fetched from a key server (MEF, MAF) rather than held in the
    /// credential registry.
    pub fn is_remote_psk(&self) -> bool {
        self.remote_psk
    }

    pub(crate) fn with_revocation_keys(mut self, keys: Vec<RevocationKey>) -> Self {
        self.revocation_keys = keys;
        self
    }

    /// The (issuer, serial) of every certificate of the peer's chain; empty for PSK and
    /// pinned raw keys (which are revoked in the credential registry).
    pub fn revocation_keys(&self) -> &[RevocationKey] {
        &self.revocation_keys
    }

    /// The framework that authenticated the peer.
    pub fn framework(&self) -> Framework {
        self.framework
    }

    /// The credential: the KpsaID, the certificate fingerprint (`sha-256:<hex>` of the
    /// DER certificate) or the `ni:///sha-256;...` identifier of a pinned raw key. This is
    /// the value to pass to [`crate::CredentialRegistry::is_revoked`].
    pub fn credential(&self) -> &str {
        &self.credential
    }

    /// The binding of the association.
    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    /// The AE-ID, CSE-ID or Credential-ID this association is bound to.
    pub fn originator(&self) -> &str {
        self.binding.originator()
    }

    /// Whether the peer is a CSE.
    pub fn is_cse(&self) -> bool {
        self.binding.is_cse()
    }
}

/// Why an identifier or a certificate yields no identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The peer's certificate has no subjectAltName URI of an absolute AE-ID or CSE-ID.
    #[error("the certificate names no AE-ID or CSE-ID in a subjectAltName URI")]
    NoOriginator,
    /// The certificate names several different AE-IDs / CSE-IDs.
    #[error("the certificate names more than one AE-ID or CSE-ID")]
    AmbiguousOriginator,
    /// An AE-ID given by configuration is malformed.
    #[error("invalid AE-ID {0:?}")]
    InvalidAeId(String),
    /// A CSE-ID given by configuration is malformed.
    #[error("invalid CSE-ID {0:?}")]
    InvalidCseId(String),
    /// A Credential-ID is malformed (10.4: `<typeID>-<value>`, value `[A-Za-z0-9._@-]`).
    #[error("invalid Credential-ID {0:?}")]
    InvalidCredentialId(String),
    /// A public-key identifier is not an RFC 6920 `ni` URI with a supported algorithm.
    #[error("invalid public-key identifier {0:?} (expected ni:///sha-256;..., sha-256-128 or sha-256-120)")]
    InvalidNi(String),
    /// OpenSSL failed while reading the certificate.
    #[error("cannot read the certificate: {0}")]
    Certificate(String),
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-')
}

fn is_segment(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_id_char)
}

fn is_fqdn(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Splits `//fqdn/seg/...` into the FQDN and the segments; `None` unless well formed.
fn split_absolute(id: &str) -> Option<(&str, Vec<&str>)> {
    let rest = id.strip_prefix("//")?;
    let (fqdn, path) = rest.split_once('/')?;
    if !is_fqdn(fqdn) {
        return None;
    }
    let segments: Vec<&str> = path.split('/').collect();
    segments
        .iter()
        .all(|s| is_segment(s))
        .then_some((fqdn, segments))
}

/// Whether the segments after the SP-ID form an AE-ID (`cse/C...` or `S...`).
fn ae_segments(segments: &[&str]) -> bool {
    match segments {
        [s] => s.starts_with('S'),
        [_, c] => c.starts_with('C'),
        _ => false,
    }
}

/// Accepts an AE-ID in any of its forms (TS-0001 7.2): stem (`Cabc`, `Sabc`),
/// SP-relative (`/cse/Cabc`, `/Sabc`) or absolute (`//sp.example/cse/Cabc`).
pub fn validate_ae_id(id: &str) -> Result<(), IdentityError> {
    let bad = || IdentityError::InvalidAeId(id.to_owned());
    let ok = if id.starts_with("//") {
        split_absolute(id).is_some_and(|(_, segs)| ae_segments(&segs))
    } else if let Some(rel) = id.strip_prefix('/') {
        let segs: Vec<&str> = rel.split('/').collect();
        segs.iter().all(|s| is_segment(s)) && ae_segments(&segs)
    } else {
        is_segment(id) && (id.starts_with('C') || id.starts_with('S'))
    };
    ok.then_some(()).ok_or_else(bad)
}

/// Accepts a CSE-ID, SP-relative (`/id-in`) or absolute (`//sp.example/id-in`).
pub fn validate_cse_id(id: &str) -> Result<(), IdentityError> {
    let ok = if id.starts_with("//") {
        split_absolute(id).is_some_and(|(_, segs)| segs.len() == 1)
    } else {
        id.strip_prefix('/').is_some_and(is_segment)
    };
    ok.then_some(())
        .ok_or_else(|| IdentityError::InvalidCseId(id.to_owned()))
}

/// Accepts a Credential-ID `<typeID>-<value>` (10.4).
pub fn validate_credential_id(id: &str) -> Result<(), IdentityError> {
    let ok = id.split_once('-').is_some_and(|(ty, value)| {
        ty.len() == 2
            && ty.chars().all(|c| c.is_ascii_digit())
            && !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
    });
    ok.then_some(())
        .ok_or_else(|| IdentityError::InvalidCredentialId(id.to_owned()))
}

/// The URI scheme of the identities Bastion writes in certificates: an AE-ID or CSE-ID
/// `//fqdn/...` is written `onem2m://fqdn/...` (docs/decisions.md, "Identities in
/// certificates"). RFC 5280 4.2.1.6 requires a SAN URI to be absolute, with a scheme, and
/// 10.1.1.5 constrains AE-ID certificates by the host part of that URI.
pub const ID_URI_SCHEME: &str = "onem2m";

/// The subjectAltName URI naming the absolute AE-ID or CSE-ID `id` (`//fqdn/...`).
pub fn san_uri(id: &str) -> String {
    format!("{ID_URI_SCHEME}:{id}")
}

/// Reads one subjectAltName URI as an identity (8.1.2.5, 10.1.1.5): the absolute AE-ID
/// (`fqdn/cse/C...`, `fqdn/S...`) or CSE-ID (`fqdn/stem`) written
/// `onem2m://fqdn/...` (scheme case-insensitive), or, as certificates issued before that
/// form was adopted wrote it, without the scheme (`//fqdn/...`). The binding carries the
/// oneM2M absolute form `//fqdn/...` either way. Anything else (another scheme, a
/// wildcard, a query, extra segments) is not an identity.
pub fn binding_from_san_uri(uri: &str) -> Option<Binding> {
    let absolute = match uri.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case(ID_URI_SCHEME) => &uri[scheme.len() + 1..],
        Some(_) => return None,
        None => uri,
    };
    let (_, segments) = split_absolute(absolute)?;
    if ae_segments(&segments) {
        Some(Binding::Ae(absolute.to_owned()))
    } else if segments.len() == 1 {
        Some(Binding::Cse(absolute.to_owned()))
    } else {
        None
    }
}

/// The identity a certificate names: exactly one distinct SAN URI that is an absolute
/// AE-ID or CSE-ID. No wildcards (10.1.1), no fallback to the subject CN.
pub fn binding_from_certificate(cert: &X509Ref) -> Result<Binding, IdentityError> {
    let mut found: Option<Binding> = None;
    for name in cert.subject_alt_names().into_iter().flatten() {
        let Some(binding) = name.uri().and_then(binding_from_san_uri) else {
            continue;
        };
        match &found {
            Some(previous) if *previous != binding => {
                return Err(IdentityError::AmbiguousOriginator)
            }
            _ => found = Some(binding),
        }
    }
    found.ok_or(IdentityError::NoOriginator)
}

/// `sha-256:<hex>` of the DER certificate: the credential of a certificate identity.
pub fn certificate_fingerprint(cert: &X509Ref) -> Result<String, IdentityError> {
    let der = cert
        .to_der()
        .map_err(|e| IdentityError::Certificate(e.to_string()))?;
    let digest = hash(MessageDigest::sha256(), &der)
        .map_err(|e| IdentityError::Certificate(e.to_string()))?;
    Ok(format!("sha-256:{}", hexutil::encode(&digest)))
}

/// The DER SubjectPublicKeyInfo of a certificate (what an RFC 7250 raw key carries).
pub fn spki_der(cert: &X509Ref) -> Result<Vec<u8>, IdentityError> {
    cert.public_key()
        .and_then(|k| k.public_key_to_der())
        .map_err(|e| IdentityError::Certificate(e.to_string()))
}

/// RFC 6920 digest algorithms allowed for public-key identifiers (10.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NiAlgorithm {
    /// `sha-256`, 32 bytes.
    Sha256,
    /// `sha-256-128`, the first 16 bytes.
    Sha256_128,
    /// `sha-256-120`, the first 15 bytes.
    Sha256_120,
}

impl NiAlgorithm {
    fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha-256",
            Self::Sha256_128 => "sha-256-128",
            Self::Sha256_120 => "sha-256-120",
        }
    }

    fn len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha256_128 => 16,
            Self::Sha256_120 => 15,
        }
    }
}

/// An RFC 6920 named-information identifier of a public key: `ni:///<alg>;<b64url>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NiDigest {
    algorithm: NiAlgorithm,
    value: Vec<u8>,
}

impl NiDigest {
    /// Parses `ni:///sha-256;...` (also `sha-256-128`, `sha-256-120`; an authority part
    /// is allowed and ignored, RFC 6920 §3).
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let bad = || IdentityError::InvalidNi(text.to_owned());
        let rest = text.strip_prefix("ni://").ok_or_else(bad)?;
        let (_authority, rest) = rest.split_once('/').ok_or_else(bad)?;
        let (alg, value) = rest.split_once(';').ok_or_else(bad)?;
        let algorithm = [
            NiAlgorithm::Sha256,
            NiAlgorithm::Sha256_128,
            NiAlgorithm::Sha256_120,
        ]
        .into_iter()
        .find(|a| a.name() == alg)
        .ok_or_else(bad)?;
        let value = hexutil::b64url_decode(value).ok_or_else(bad)?;
        if value.len() != algorithm.len() {
            return Err(bad());
        }
        Ok(Self { algorithm, value })
    }

    /// The `sha-256` identifier of a DER SubjectPublicKeyInfo.
    pub fn of_spki(spki_der: &[u8]) -> Result<Self, IdentityError> {
        let digest = hash(MessageDigest::sha256(), spki_der)
            .map_err(|e| IdentityError::Certificate(e.to_string()))?;
        Ok(Self {
            algorithm: NiAlgorithm::Sha256,
            value: digest.to_vec(),
        })
    }

    /// The algorithm named in the identifier.
    pub fn algorithm(&self) -> NiAlgorithm {
        self.algorithm
    }

    /// Recomputes the digest of `spki_der` with this identifier's algorithm and compares
    /// in constant time (10.1.2).
    pub fn matches(&self, spki_der: &[u8]) -> bool {
        match hash(MessageDigest::sha256(), spki_der) {
            Ok(digest) => openssl::memcmp::eq(&digest[..self.algorithm.len()], &self.value),
            Err(_) => false,
        }
    }
}

impl std::fmt::Display for NiDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ni:///{};{}",
            self.algorithm.name(),
            hexutil::b64url_encode(&self.value)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ae_id_forms() {
        for ok in [
            "Cabc",
            "S563423",
            "/id-mn/Cabc",
            "/S563423",
            "//acme.example.com/id-mn/Cabc",
            "//acme.example.com/Sx",
        ] {
            assert_eq!(validate_ae_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "abc",
            "/id-mn/abc",
            "//acme/id-mn/Cabc/x",
            "//*.acme.com/id-mn/Cabc",
            "C a",
            "/id-in",
            "//acme..com/Sx",
        ] {
            assert_eq!(
                validate_ae_id(bad),
                Err(IdentityError::InvalidAeId(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn cse_id_forms() {
        assert_eq!(validate_cse_id("/id-in"), Ok(()));
        assert_eq!(validate_cse_id("//acme.example.com/id-in"), Ok(()));
        for bad in [
            "id-in",
            "/",
            "/a/b",
            "//acme.example.com/a/b",
            "//acme.example.com",
        ] {
            assert_eq!(
                validate_cse_id(bad),
                Err(IdentityError::InvalidCseId(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn san_uri_forms() {
        assert_eq!(
            san_uri("//acme.example.com/id-mn/Cabc"),
            "onem2m://acme.example.com/id-mn/Cabc"
        );
        for written in [
            "onem2m://acme.example.com/id-mn/Cabc",
            "ONEM2M://acme.example.com/id-mn/Cabc",
        ] {
            assert_eq!(
                binding_from_san_uri(written),
                Some(Binding::Ae("//acme.example.com/id-mn/Cabc".into())),
                "{written}"
            );
        }
        assert_eq!(
            binding_from_san_uri("onem2m://acme.example.com/id-mn"),
            Some(Binding::Cse("//acme.example.com/id-mn".into()))
        );
        assert_eq!(
            binding_from_san_uri("//acme.example.com/id-mn/Cabc"),
            Some(Binding::Ae("//acme.example.com/id-mn/Cabc".into()))
        );
        assert_eq!(
            binding_from_san_uri("//acme.example.com/S1"),
            Some(Binding::Ae("//acme.example.com/S1".into()))
        );
        assert_eq!(
            binding_from_san_uri("//acme.example.com/id-mn"),
            Some(Binding::Cse("//acme.example.com/id-mn".into()))
        );
        for not in [
            "https://acme.example.com/id-mn/Cabc",
            "onem2m:/acme.example.com/id-mn/Cabc",
            "onem2m:acme.example.com/id-mn/Cabc",
            "onem2m:///id-mn/Cabc",
            "x-onem2m://acme.example.com/id-mn/Cabc",
            "//*.example.com/id-mn/Cabc",
            "//acme.example.com/id-mn/*",
            "//acme.example.com/id-mn/abc",
            "//acme.example.com/id-mn/Cabc?x=1",
            "/id-mn/Cabc",
        ] {
            assert_eq!(binding_from_san_uri(not), None, "{not}");
        }
    }

    #[test]
    fn credential_ids() {
        assert_eq!(
            Binding::credential_id_for_kpsa("test@onem2m.com"),
            Binding::CredentialId("12-test@onem2m.com".into())
        );
        assert_eq!(validate_credential_id("12-test@onem2m.com"), Ok(()));
        assert!(validate_credential_id("12-").is_err());
        assert!(validate_credential_id("1-x").is_err());
        assert!(validate_credential_id("12-a b").is_err());
    }

    #[test]
    fn ni_parse_and_match() {
        let spki = b"not really a key, only bytes to hash";
        let full = NiDigest::of_spki(spki).unwrap();
        let text = full.to_string();
        assert!(text.starts_with("ni:///sha-256;"));
        assert_eq!(NiDigest::parse(&text).unwrap(), full);
        assert!(full.matches(spki));
        assert!(!full.matches(b"other"));
        let digest = hash(MessageDigest::sha256(), spki).unwrap();
        let short = format!(
            "ni:///sha-256-128;{}",
            hexutil::b64url_encode(&digest[..16])
        );
        let short = NiDigest::parse(&short).unwrap();
        assert_eq!(short.algorithm(), NiAlgorithm::Sha256_128);
        assert!(short.matches(spki));
        let wrong_len = format!("ni:///sha-256;{}", hexutil::b64url_encode(&digest[..16]));
        assert!(NiDigest::parse(&wrong_len).is_err());
        assert!(NiDigest::parse("ni:///md5;AAAA").is_err());
        assert!(NiDigest::parse("sha-256;AAAA").is_err());
    }
}
