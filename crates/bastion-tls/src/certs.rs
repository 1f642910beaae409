//! Certificate tooling behind `bastion cert ca|issue|csr|sign|crl` and the EST CA
//! (`bastion-est`): a P-256 CA, AE-ID and CSE-ID certificates carrying the identity in a
//! subjectAltName URI (TS-0003 10.1.1, 10.1.4), CSRs, CSR checks and signing, CRLs and
//! the checks on a fetched CRL, and self-signed certificates used as raw public keys
//! (10.1.2). PEM in, PEM out; private keys are returned in buffers wiped on drop.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{
    CrlNumber, X509Crl, X509CrlBuilder, X509Extension, X509Name, X509Req, X509ReqBuilder,
    X509RevokedBuilder, X509,
};
use zeroize::Zeroizing;

use crate::identity::{self, Binding, NiDigest};

/// Failures of certificate operations.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// OpenSSL rejected an input or an operation.
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    /// A PEM input could not be parsed.
    #[error("cannot parse the {0} PEM")]
    Pem(&'static str),
    /// The identity to put in the certificate is malformed.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// A key is not an EC P-256 key (10.1.1).
    #[error("the {0} key is not an EC P-256 key")]
    NotP256(&'static str),
    /// The CSR's signature does not verify.
    #[error("the CSR signature does not verify")]
    BadCsrSignature,
    /// A subjectAltName entry is empty or not ASCII.
    #[error("a subjectAltName entry must be non-empty ASCII")]
    NotAscii,
    /// The certificate to revoke was not issued by this CA.
    #[error("the certificate was not issued by this CA")]
    NotIssuedByCa,
    /// A fetched CRL is not signed by a trust anchor that is its issuer.
    #[error("the CRL is not signed by a trusted CA")]
    CrlNotSigned,
    /// A fetched CRL has no nextUpdate, or it has passed.
    #[error("the CRL has expired (or has no nextUpdate)")]
    CrlExpired,
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertAndKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM; wiped on drop.
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A CSR and its private key.
#[derive(Clone)]
pub struct CsrAndKey {
    /// The PKCS#10 request, PEM.
    pub csr_pem: String,
    /// The PKCS#8 private key, PEM; wiped on drop.
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for CsrAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsrAndKey")
            .field("csr_pem", &self.csr_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Validity window, as Unix timestamps (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: i64,
    /// notAfter.
    pub not_after: i64,
}

impl Validity {
    /// From one hour ago (clock skew) to `days` days from now.
    pub fn days(days: u32) -> Self {
        let now = now();
        Self {
            not_before: now - 3600,
            not_after: now + i64::from(days) * 86_400,
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What a leaf certificate names in its subjectAltName.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The identity: an absolute AE-ID (`//sp/cse/Cabc`) or CSE-ID (`//sp/id-in`),
    /// written as the SAN URI `onem2m://sp/...` ([`identity::san_uri`]); `None` for a
    /// certificate without oneM2M identity.
    pub id: Option<String>,
    /// Extra dNSName entries (e.g. the host a server answers on, for SNI).
    pub dns_names: Vec<String>,
    /// The subject CN (informative only; never used as identity).
    pub common_name: String,
}

impl Subject {
    /// A subject with a SAN URI `id`, checked to be an absolute AE-ID or CSE-ID, and
    /// common name `id`.
    pub fn onem2m(id: &str) -> Result<Self, CertError> {
        let binding = identity::binding_from_san_uri(id)
            .ok_or_else(|| identity::IdentityError::InvalidAeId(id.to_owned()))?;
        let id = binding.originator().to_owned();
        Ok(Self {
            id: Some(id.clone()),
            dns_names: Vec::new(),
            common_name: id,
        })
    }

    /// Adds a dNSName.
    pub fn with_dns(mut self, name: &str) -> Self {
        self.dns_names.push(name.to_owned());
        self
    }
}

fn new_p256_key() -> Result<PKey<Private>, CertError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
}

fn key_pem(key: &PKey<Private>) -> Result<Zeroizing<String>, CertError> {
    let pem = Zeroizing::new(key.private_key_to_pem_pkcs8()?);
    Ok(Zeroizing::new(
        String::from_utf8(pem.to_vec()).map_err(|_| CertError::Pem("private key"))?,
    ))
}

fn pem_string(bytes: Vec<u8>, what: &'static str) -> Result<String, CertError> {
    String::from_utf8(bytes).map_err(|_| CertError::Pem(what))
}

/// Parses a PEM private key and checks it is EC P-256.
pub fn parse_p256_key(pem: &str, what: &'static str) -> Result<PKey<Private>, CertError> {
    let key = PKey::private_key_from_pem(pem.as_bytes()).map_err(|_| CertError::Pem(what))?;
    ensure_p256(&key, what)?;
    Ok(key)
}

fn ensure_p256<T: openssl::pkey::HasPublic>(
    key: &openssl::pkey::PKeyRef<T>,
    what: &'static str,
) -> Result<(), CertError> {
    let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
    if curve == Some(Nid::X9_62_PRIME256V1) {
        Ok(())
    } else {
        Err(CertError::NotP256(what))
    }
}

fn random_serial() -> Result<Asn1Integer, CertError> {
    let mut bn = BigNum::new()?;
    bn.rand(127, MsbOption::MAYBE_ZERO, false)?;
    Ok(bn.to_asn1_integer()?)
}

fn name(cn: &str) -> Result<X509Name, CertError> {
    let mut b = X509Name::builder()?;
    b.append_entry_by_nid(Nid::COMMONNAME, cn)?;
    Ok(b.build())
}

/// Creates a self-signed P-256 CA certificate (ECDSA with SHA-256, 10.1.1) without name
/// constraints (see [`create_constrained_ca`]).
pub fn create_ca(common_name: &str, validity: Validity) -> Result<CertAndKey, CertError> {
    create_constrained_ca(common_name, &[], validity)
}

/// Creates a CA whose certificates may name identities of the given M2M SPs only
/// (TS-0003 8.1.2.2, 10.1.1.5): a critical nameConstraints extension permitting SAN URIs
/// whose host is one of `sp_fqdns` (RFC 5280 4.2.1.10). The identity URIs Bastion
/// issues (`onem2m://sp/...`) satisfy it; dNSNames (for SNI) are not constrained. With no
/// FQDN the CA is unconstrained.
pub fn create_constrained_ca(
    common_name: &str,
    sp_fqdns: &[&str],
    validity: Validity,
) -> Result<CertAndKey, CertError> {
    for fqdn in sp_fqdns {
        if identity::binding_from_san_uri(&format!("//{fqdn}/x")).is_none() {
            return Err(identity::IdentityError::InvalidCseId(format!("//{fqdn}")).into());
        }
    }
    let key = new_p256_key()?;
    let name = name(common_name)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    b.set_serial_number(&*random_serial()?)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    b.set_not_before(&*Asn1Time::from_unix(validity.not_before)?)?;
    b.set_not_after(&*Asn1Time::from_unix(validity.not_after)?)?;
    b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    if !sp_fqdns.is_empty() {
        b.append_extension(uri_name_constraints(sp_fqdns)?)?;
    }
    b.sign(&key, MessageDigest::sha256())?;
    Ok(CertAndKey {
        cert_pem: pem_string(b.build().to_pem()?, "certificate")?,
        key_pem: key_pem(&key)?,
    })
}

/// One DER element: `tag`, the definite length of `content` (short form below 128,
/// long form above), then `content`. The one DER writer of the workspace (also used by
/// `bastion-est` for the structures OpenSSL cannot build).
pub fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A critical nameConstraints extension permitting URIs with these hosts:
/// `SEQUENCE { [0] { SEQUENCE { [6] host } ... } }` in DER.
fn uri_name_constraints(hosts: &[&str]) -> Result<X509Extension, CertError> {
    let tlv = der_tlv;
    let subtrees: Vec<u8> = hosts
        .iter()
        .flat_map(|h| tlv(0x30, &tlv(0x86, h.as_bytes())))
        .collect();
    let der = tlv(0x30, &tlv(0xa0, &subtrees));
    let oid = openssl::asn1::Asn1Object::from_str("2.5.29.30")?;
    let value = openssl::asn1::Asn1OctetString::new_from_bytes(&der)?;
    Ok(X509Extension::new_from_der(&oid, true, &value)?)
}

fn parse_ca(ca: &CertAndKey) -> Result<(X509, PKey<Private>), CertError> {
    let cert =
        X509::from_pem(ca.cert_pem.as_bytes()).map_err(|_| CertError::Pem("CA certificate"))?;
    let key = parse_p256_key(&ca.key_pem, "CA")?;
    Ok((cert, key))
}

fn san_extension(
    subject: &Subject,
    ctx: &openssl::x509::X509v3Context<'_>,
) -> Result<Option<X509Extension>, CertError> {
    if subject.id.is_none() && subject.dns_names.is_empty() {
        return Ok(None);
    }
    let mut san = SubjectAlternativeName::new();
    if let Some(id) = &subject.id {
        // An absolute URI, as RFC 5280 4.2.1.6 requires of a SAN URI.
        san.uri(&identity::san_uri(id));
    }
    for dns in &subject.dns_names {
        san.dns(dns);
    }
    Ok(Some(san.build(ctx)?))
}

fn build_leaf(
    ca: Option<(&X509, &PKey<Private>)>,
    public: &openssl::pkey::PKeyRef<impl openssl::pkey::HasPublic>,
    self_key: Option<&PKey<Private>>,
    subject: &Subject,
    validity: Validity,
) -> Result<X509, CertError> {
    let subject_name = name(&subject.common_name)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    b.set_serial_number(&*random_serial()?)?;
    b.set_subject_name(&subject_name)?;
    match ca {
        Some((ca_cert, _)) => b.set_issuer_name(ca_cert.subject_name())?,
        None => b.set_issuer_name(&subject_name)?,
    }
    b.set_pubkey(public)?;
    b.set_not_before(&*Asn1Time::from_unix(validity.not_before)?)?;
    b.set_not_after(&*Asn1Time::from_unix(validity.not_after)?)?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    // 10.1.1: keyUsage present with at least digitalSignature.
    b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    b.append_extension(
        ExtendedKeyUsage::new()
            .server_auth()
            .client_auth()
            .build()?,
    )?;
    let ca_cert = ca.map(|(c, _)| c);
    let (ski, aki, san) = {
        let ctx = b.x509v3_context(ca_cert.map(|c| c.as_ref()), None);
        let ski = SubjectKeyIdentifier::new().build(&ctx)?;
        let aki = match ca_cert {
            Some(_) => Some(AuthorityKeyIdentifier::new().keyid(false).build(&ctx)?),
            None => None,
        };
        (ski, aki, san_extension(subject, &ctx)?)
    };
    b.append_extension(ski)?;
    if let Some(aki) = aki {
        b.append_extension(aki)?;
    }
    if let Some(san) = san {
        b.append_extension(san)?;
    }
    let signer = match (ca, self_key) {
        (Some((_, k)), _) => k,
        (None, Some(k)) => k,
        (None, None) => return Err(CertError::NotP256("signing")),
    };
    b.sign(signer, MessageDigest::sha256())?;
    Ok(b.build())
}

/// Issues a P-256 leaf certificate signed by `ca`, with a fresh key.
pub fn issue(
    ca: &CertAndKey,
    subject: &Subject,
    validity: Validity,
) -> Result<CertAndKey, CertError> {
    let (ca_cert, ca_key) = parse_ca(ca)?;
    let key = new_p256_key()?;
    let cert = build_leaf(Some((&ca_cert, &ca_key)), &key, None, subject, validity)?;
    Ok(CertAndKey {
        cert_pem: pem_string(cert.to_pem()?, "certificate")?,
        key_pem: key_pem(&key)?,
    })
}

/// Creates a CSR (10.1.4: subjectPublicKeyInfo + subjectAltName with the identity) and
/// its fresh P-256 key.
pub fn create_csr(subject: &Subject) -> Result<CsrAndKey, CertError> {
    let key = new_p256_key()?;
    let mut b = X509ReqBuilder::new()?;
    b.set_version(0)?;
    b.set_subject_name(&*name(&subject.common_name)?)?;
    b.set_pubkey(&key)?;
    let mut exts = Stack::new()?;
    if let Some(san) = san_extension(subject, &b.x509v3_context(None))? {
        exts.push(san)?;
    }
    b.add_extensions(&exts)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok(CsrAndKey {
        csr_pem: pem_string(b.build().to_pem()?, "CSR")?,
        key_pem: key_pem(&key)?,
    })
}

/// A PKCS#10 request whose key is held elsewhere (a key store, a PKCS#11 token): the
/// request is encoded here, its SHA-256 digest is signed by whoever holds the key, and
/// [`finish`](Self::finish) checks that signature before assembling the request. The
/// content is that of [`create_csr`] (10.1.4): subject CN, the P-256 public key, a
/// subjectAltName with the identity.
#[derive(Debug, Clone)]
pub struct CsrTemplate {
    /// DER of the CertificationRequestInfo (RFC 2986 4.1), the signed part.
    info: Vec<u8>,
}

/// OID 1.2.840.10045.4.3.2, ecdsa-with-SHA256 (RFC 5758 3.2), as DER.
const ECDSA_WITH_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
/// OID 1.2.840.113549.1.9.14, PKCS#9 extensionRequest, as DER.
const EXTENSION_REQUEST: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e,
];
/// OID 2.5.29.17, subjectAltName, as DER.
const SUBJECT_ALT_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x11];

impl CsrTemplate {
    /// The request for `subject` with the public key `spki_der` (a DER
    /// SubjectPublicKeyInfo, which must be EC P-256).
    pub fn new(subject: &Subject, spki_der: &[u8]) -> Result<Self, CertError> {
        let public = PKey::public_key_from_der(spki_der).map_err(|_| CertError::NotP256("CSR"))?;
        ensure_p256(&public, "CSR")?;
        let mut general_names = Vec::new();
        if let Some(id) = &subject.id {
            general_names.extend(der(0x86, ia5(&identity::san_uri(id))?));
        }
        for dns in &subject.dns_names {
            general_names.extend(der(0x82, ia5(dns)?));
        }
        let attributes = match general_names.is_empty() {
            true => Vec::new(),
            false => {
                let san = der(0x04, &der(0x30, &general_names));
                let extension = der(0x30, &[SUBJECT_ALT_NAME, &san].concat());
                let extensions = der(0x30, &extension);
                der(0x30, &[EXTENSION_REQUEST, &der(0x31, &extensions)].concat())
            }
        };
        let info = der(
            0x30,
            &[
                &[0x02, 0x01, 0x00][..], // version 0 (v1)
                &name(&subject.common_name)?.to_der()?,
                &public.public_key_to_der()?,
                &der(0xa0, &attributes),
            ]
            .concat(),
        );
        Ok(Self { info })
    }

    /// SHA-256 of the part to sign (ECDSA with SHA-256, 10.1.1).
    pub fn digest(&self) -> [u8; 32] {
        openssl::sha::sha256(&self.info)
    }

    /// The request, PEM, with `signature` (a DER ECDSA-Sig-Value over [`digest`](Self::digest)).
    /// A signature that does not verify with the request's own key is refused.
    pub fn finish(&self, signature: &[u8]) -> Result<String, CertError> {
        let mut bits = Vec::with_capacity(signature.len() + 1);
        bits.push(0); // no unused bits
        bits.extend_from_slice(signature);
        let request = der(
            0x30,
            &[
                &self.info[..],
                &der(0x30, ECDSA_WITH_SHA256),
                &der(0x03, &bits),
            ]
            .concat(),
        );
        let req = X509Req::from_der(&request).map_err(|_| CertError::BadCsrSignature)?;
        if !req.verify(&*req.public_key()?).unwrap_or(false) {
            return Err(CertError::BadCsrSignature);
        }
        pem_string(req.to_pem()?, "CSR")
    }
}

/// One DER element: `tag`, definite length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// An IA5String's content (URI and dNSName entries are ASCII, RFC 5280 4.2.1.6).
fn ia5(text: &str) -> Result<&[u8], CertError> {
    match text.is_ascii() && !text.is_empty() {
        true => Ok(text.as_bytes()),
        false => Err(CertError::NotAscii),
    }
}

/// Signs a CSR: checks its signature and P-256 key, and takes the identity from its
/// subjectAltName URI (a CSR naming no absolute AE-ID / CSE-ID, or a wildcard, is
/// refused). `dns_names` adds dNSNames chosen by the CA operator; the CSR's other
/// extensions are not copied.
pub fn sign_csr(
    ca: &CertAndKey,
    csr_pem: &str,
    dns_names: &[String],
    validity: Validity,
) -> Result<String, CertError> {
    let req = X509Req::from_pem(csr_pem.as_bytes()).map_err(|_| CertError::Pem("CSR"))?;
    let csr = VerifiedCsr::verify(req)?;
    let id = csr.identity()?;
    let subject = Subject {
        id: Some(id.originator().to_owned()),
        dns_names: dns_names.to_vec(),
        common_name: id.originator().to_owned(),
    };
    Ok(issue_for_csr(ca, &csr, &subject, validity)?.cert_pem)
}

/// A PKCS#10 request whose self-signature verifies and whose key is EC P-256 (10.1.1,
/// 10.1.4). What it asks to be certified as is [`VerifiedCsr::identity`]; a CA decides
/// the subject itself ([`issue_for_csr`]).
pub struct VerifiedCsr {
    req: X509Req,
    der: Vec<u8>,
}

impl VerifiedCsr {
    /// Parses a DER PKCS#10 request and checks its signature and key type.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let req = X509Req::from_der(der).map_err(|_| CertError::Pem("CSR"))?;
        Self::verify(req)
    }

    fn verify(req: X509Req) -> Result<Self, CertError> {
        let public = req.public_key()?;
        // The key type first: verifying with a key of an unexpected type may fail for
        // reasons that say nothing about the signature.
        ensure_p256(&public, "CSR")?;
        if !req.verify(&public)? {
            return Err(CertError::BadCsrSignature);
        }
        let der = req.to_der()?;
        Ok(Self { req, der })
    }

    /// The identity its subjectAltName URI names, by the rules for certificates.
    pub fn identity(&self) -> Result<Binding, CertError> {
        csr_identity(&self.req)
    }

    /// The request, DER (for reading its attributes).
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

impl std::fmt::Debug for VerifiedCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCsr").finish_non_exhaustive()
    }
}

/// A certificate issued by [`issue_for_csr`]: PEM, and the serial and fingerprint a
/// ledger of issued certificates keeps.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The serial number, big-endian bytes without sign padding.
    pub serial: Vec<u8>,
    /// `sha-256:<hex>` of the DER certificate, as [`crate::PeerIdentity::credential`]
    /// names a certificate association.
    pub fingerprint: String,
}

/// Certifies the key of `csr` as `subject` (chosen by the CA, not read from the CSR),
/// with the leaf profile of [`issue`] (keyUsage digitalSignature, both TLS extended key
/// usages, the identity as SAN URI).
pub fn issue_for_csr(
    ca: &CertAndKey,
    csr: &VerifiedCsr,
    subject: &Subject,
    validity: Validity,
) -> Result<IssuedCertificate, CertError> {
    let (ca_cert, ca_key) = parse_ca(ca)?;
    let public = csr.req.public_key()?;
    let cert = build_leaf(Some((&ca_cert, &ca_key)), &public, None, subject, validity)?;
    Ok(IssuedCertificate {
        cert_pem: pem_string(cert.to_pem()?, "certificate")?,
        cert_der: cert.to_der()?,
        serial: cert.serial_number().to_bn()?.to_vec(),
        fingerprint: identity::certificate_fingerprint(&cert)?,
    })
}

/// The identity in a CSR's subjectAltName, by the same rules as for certificates.
fn csr_identity(req: &X509Req) -> Result<Binding, CertError> {
    // A throwaway certificate carrying only the CSR's extensions lets the certificate
    // rules (identity::binding_from_certificate) apply unchanged.
    let mut b = X509::builder()?;
    for ext in req.extensions().into_iter().flatten() {
        b.append_extension2(&ext)?;
    }
    Ok(identity::binding_from_certificate(&b.build())?)
}

/// A CRL from `ca` revoking the certificates `revoked_pems` (each must be issued by it),
/// valid for `next_update_days`; `crl_number` must grow with each CRL issued.
pub fn create_crl(
    ca: &CertAndKey,
    revoked_pems: &[&str],
    crl_number: u32,
    next_update_days: u32,
) -> Result<String, CertError> {
    let (_, ca_key) = parse_ca(ca)?;
    let now = now();
    let mut revoked = Vec::with_capacity(revoked_pems.len());
    for pem in revoked_pems {
        let cert = X509::from_pem(pem.as_bytes()).map_err(|_| CertError::Pem("certificate"))?;
        if !cert.verify(&ca_key)? {
            return Err(CertError::NotIssuedByCa);
        }
        revoked.push(RevokedSerial {
            serial: cert.serial_number().to_bn()?.to_vec(),
            revoked_at: now - 60,
        });
    }
    create_crl_for_serials(
        ca,
        &revoked,
        u64::from(crl_number),
        now - 60,
        now + i64::from(next_update_days) * 86_400,
    )
}

/// One entry of a CRL: a serial number (big-endian bytes) and when it was revoked (Unix
/// seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSerial {
    /// The serial number, big-endian bytes without sign padding.
    pub serial: Vec<u8>,
    /// Revocation time, Unix seconds.
    pub revoked_at: i64,
}

/// A CRL signed by `ca` (ECDSA P-256 / SHA-256) listing `revoked` by serial, with
/// thisUpdate `this_update` and nextUpdate `next_update` (Unix seconds), the CRL number
/// `crl_number` (which must grow with each CRL issued) and the CA's key identifier.
pub fn create_crl_for_serials(
    ca: &CertAndKey,
    revoked: &[RevokedSerial],
    crl_number: u64,
    this_update: i64,
    next_update: i64,
) -> Result<String, CertError> {
    let (ca_cert, ca_key) = parse_ca(ca)?;
    let mut b = X509CrlBuilder::new()?;
    b.set_issuer_name(ca_cert.subject_name())?;
    b.set_last_update(&*Asn1Time::from_unix(this_update)?)?;
    b.set_next_update(&*Asn1Time::from_unix(next_update)?)?;
    let aki = {
        let ctx = X509::builder()?;
        let ctx = ctx.x509v3_context(Some(&ca_cert), None);
        AuthorityKeyIdentifier::new().keyid(true).build(&ctx)?
    };
    b.append_extension(aki)?;
    b.append_extension(CrlNumber::new(BigNum::from_slice(&crl_number.to_be_bytes())?)?.build()?)?;
    for entry in revoked {
        let mut r = X509RevokedBuilder::new()?;
        r.set_serial_number(&*BigNum::from_slice(&entry.serial)?.to_asn1_integer()?)?;
        r.set_revocation_date(&*Asn1Time::from_unix(entry.revoked_at)?)?;
        b.add_revoked(r.build())?;
    }
    b.sort()?;
    b.sign(&ca_key, MessageDigest::sha256())?;
    let crl: X509Crl = b.build()?;
    pem_string(crl.to_pem()?, "CRL")
}

/// What [`verify_crl`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCrl {
    /// The CRL, PEM.
    pub pem: String,
    /// Its CRL number (0 when it has none).
    pub number: u64,
    /// Its nextUpdate, Unix seconds.
    pub next_update: i64,
}

/// Checks a CRL (PEM or DER) fetched from a distribution point: signed by one of
/// `trust_anchors_pem` whose subject is its issuer, with a nextUpdate after `now`
/// (Unix seconds). A CRL failing any check must not replace the one in force.
pub fn verify_crl(
    crl: &[u8],
    trust_anchors_pem: &[String],
    now: i64,
) -> Result<VerifiedCrl, CertError> {
    let crl = X509Crl::from_der(crl)
        .or_else(|_| X509Crl::from_pem(crl))
        .map_err(|_| CertError::Pem("CRL"))?;
    let issuer = crl.issuer_name().to_der()?;
    let mut signed = false;
    for pem in trust_anchors_pem {
        let anchors =
            X509::stack_from_pem(pem.as_bytes()).map_err(|_| CertError::Pem("trust anchor"))?;
        for anchor in anchors {
            if anchor.subject_name().to_der()? == issuer && crl.verify(&*anchor.public_key()?)? {
                signed = true;
            }
        }
    }
    if !signed {
        return Err(CertError::CrlNotSigned);
    }
    let next_update = crl
        .next_update()
        .and_then(unix_of)
        .ok_or(CertError::CrlExpired)?;
    if next_update <= now {
        return Err(CertError::CrlExpired);
    }
    let number = match crl.extension::<CrlNumber>()? {
        Some((_, n)) => {
            let bytes = n.to_bn()?.to_vec();
            if bytes.len() > 8 {
                return Err(CertError::Pem("CRL"));
            }
            bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        }
        None => 0,
    };
    Ok(VerifiedCrl {
        pem: pem_string(crl.to_pem()?, "CRL")?,
        number,
        next_update,
    })
}

fn unix_of(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(t).ok()?;
    Some(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// A self-signed P-256 certificate standing in for an RFC 7250 raw public key, and its
/// `ni:///sha-256;...` identifier (digest of the SubjectPublicKeyInfo, 10.1.2).
pub fn create_raw_key(validity: Validity) -> Result<(CertAndKey, String), CertError> {
    let key = new_p256_key()?;
    let subject = Subject {
        id: None,
        dns_names: Vec::new(),
        common_name: "raw public key".to_owned(),
    };
    let cert = build_leaf(None, &key, Some(&key), &subject, validity)?;
    let ni = NiDigest::of_spki(&key.public_key_to_der()?)?.to_string();
    Ok((
        CertAndKey {
            cert_pem: pem_string(cert.to_pem()?, "certificate")?,
            key_pem: key_pem(&key)?,
        },
        ni,
    ))
}

/// The `ni:///sha-256;...` identifier of a certificate's public key.
pub fn public_key_ni(cert_pem: &str) -> Result<String, CertError> {
    let cert = X509::from_pem(cert_pem.as_bytes()).map_err(|_| CertError::Pem("certificate"))?;
    Ok(NiDigest::of_spki(&identity::spki_der(&cert)?)?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_signed_outside_becomes_a_csr_the_ca_accepts() {
        let key = new_p256_key().unwrap();
        let subject = Subject::onem2m("//acme.example.com/id-mn/Ckeystore")
            .unwrap()
            .with_dns("device.example.com");
        let template = CsrTemplate::new(&subject, &key.public_key_to_der().unwrap()).unwrap();
        let signature = openssl::ecdsa::EcdsaSig::sign(&template.digest(), &key.ec_key().unwrap())
            .unwrap()
            .to_der()
            .unwrap();
        let csr = template.finish(&signature).unwrap();
        let ca = create_ca("Test CA", Validity::days(1)).unwrap();
        let cert = sign_csr(&ca, &csr, &[], Validity::days(1)).unwrap();
        let cert = X509::from_pem(cert.as_bytes()).unwrap();
        assert_eq!(
            identity::binding_from_certificate(&cert).unwrap(),
            Binding::Ae("//acme.example.com/id-mn/Ckeystore".to_owned())
        );
        // A signature by another key, or over other bytes, is refused.
        let other = new_p256_key().unwrap();
        let foreign = openssl::ecdsa::EcdsaSig::sign(&template.digest(), &other.ec_key().unwrap())
            .unwrap()
            .to_der()
            .unwrap();
        assert!(matches!(
            template.finish(&foreign),
            Err(CertError::BadCsrSignature)
        ));
        assert!(matches!(
            template.finish(b"not a signature"),
            Err(CertError::BadCsrSignature)
        ));
        let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        assert!(matches!(
            CsrTemplate::new(&subject, &rsa.public_key_to_der().unwrap()),
            Err(CertError::NotP256("CSR"))
        ));
    }

    #[test]
    fn issued_certificate_carries_identity_and_verifies() {
        let ca = create_ca("Test CA", Validity::days(1)).unwrap();
        let leaf = issue(
            &ca,
            &Subject::onem2m("//acme.example.com/id-mn/Cabc").unwrap(),
            Validity::days(1),
        )
        .unwrap();
        let cert = X509::from_pem(leaf.cert_pem.as_bytes()).unwrap();
        let ca_cert = X509::from_pem(ca.cert_pem.as_bytes()).unwrap();
        assert!(cert.verify(&ca_cert.public_key().unwrap()).unwrap());
        assert_eq!(
            identity::binding_from_certificate(&cert).unwrap(),
            Binding::Ae("//acme.example.com/id-mn/Cabc".into())
        );
        assert!(!format!("{leaf:?}").contains("PRIVATE"));
    }

    #[test]
    fn csr_round_trip_keeps_identity_and_refuses_wildcards() {
        let ca = create_ca("Test CA", Validity::days(1)).unwrap();
        let csr = create_csr(&Subject::onem2m("//acme.example.com/id-mn").unwrap()).unwrap();
        let pem = sign_csr(
            &ca,
            &csr.csr_pem,
            &["mn.example.com".into()],
            Validity::days(1),
        )
        .unwrap();
        let cert = X509::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(
            identity::binding_from_certificate(&cert).unwrap(),
            Binding::Cse("//acme.example.com/id-mn".into())
        );
        let wildcard = Subject {
            id: Some("//*.example.com/id-mn".into()),
            dns_names: vec![],
            common_name: "x".into(),
        };
        let csr = create_csr(&wildcard).unwrap();
        assert!(matches!(
            sign_csr(&ca, &csr.csr_pem, &[], Validity::days(1)),
            Err(CertError::Identity(identity::IdentityError::NoOriginator))
        ));
    }

    #[test]
    fn crl_lists_the_revoked_serial() {
        let ca = create_ca("Test CA", Validity::days(1)).unwrap();
        let leaf = issue(
            &ca,
            &Subject::onem2m("//a.example/S1").unwrap(),
            Validity::days(1),
        )
        .unwrap();
        let crl = create_crl(&ca, &[&leaf.cert_pem], 1, 7).unwrap();
        let crl = X509Crl::from_pem(crl.as_bytes()).unwrap();
        let cert = X509::from_pem(leaf.cert_pem.as_bytes()).unwrap();
        let ca_cert = X509::from_pem(ca.cert_pem.as_bytes()).unwrap();
        assert!(crl.verify(&ca_cert.public_key().unwrap()).unwrap());
        let revoked = crl.get_revoked().unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(
            revoked.get(0).unwrap().serial_number().to_bn().unwrap(),
            cert.serial_number().to_bn().unwrap()
        );
        let other_ca = create_ca("Other", Validity::days(1)).unwrap();
        assert!(matches!(
            create_crl(&other_ca, &[&leaf.cert_pem], 1, 7),
            Err(CertError::NotIssuedByCa)
        ));
    }

    #[test]
    fn raw_key_identifier_matches_its_certificate() {
        let (raw, ni) = create_raw_key(Validity::days(1)).unwrap();
        assert!(ni.starts_with("ni:///sha-256;"));
        assert_eq!(public_key_ni(&raw.cert_pem).unwrap(), ni);
    }
}
