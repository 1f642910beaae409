//! Bastion's secure environment for long-term keys (TS-0003 6.2.3, 6.3): the place the
//! pre-provisioned and provisioned symmetric keys (Kpm, Ke, Km, Kpsa) and the EC P-256
//! private keys (TLS, CSR signing) live, and where they are used.
//!
//! ```text
//!   bastion_keys (labels, inputs)      bastion_tls::certs::CsrTemplate
//!        │ DerivationInput                   │ digest to sign
//!        ▼                                   ▼
//!   KeyStore::derive ── hmac_sha256 ──┐  KeyStore::create_csr ── sign_digest ──┐
//!                                     ▼                                        ▼
//!           FileKeyStore (file.rs)                    Pkcs11KeyStore (pkcs11.rs)
//!           level 1: sealed file, keys used           keys generated and used inside
//!           in this process                           the token (CKM_SHA256_HMAC,
//!                                                     CKM_ECDSA); sensitive ones never
//!                                                     leave it
//! ```
//!
//! This crate owns the [`KeyStore`] contract, its two stores, and where a store is named
//! ([`StoreSpec`]: `file:PATH`, `pkcs11:MODULE?token=LABEL`). It does not own the
//! derivations' labels and inputs (`bastion_keys`), the file encryption
//! (`bastion_tls::sealed`) or the encoding of a CSR (`bastion_tls::certs`).
//!
//! The contract: a key has a [`KeyName`] and is either a secret of 16 to 64 bytes or an
//! EC P-256 key pair. A secret is used by name for HMAC-SHA-256 inside the store, and
//! leaves it ([`KeyStore::export_secret`]) only when it was stored
//! [`ExportPolicy::Exportable`]: a TLS PSK has to reach OpenSSL, an enrolment key Ke
//! does not. A private key never leaves a store through this trait. Every store states
//! the TS-0003 protection level (table 6.3.1-1) of what it holds. Key material is wiped on
//! drop and never shown by `Debug` or in an error.

pub mod file;
pub mod pkcs11;
pub mod spec;

use std::fmt;

use bastion_keys::{DerivationInput, DerivedKey};
use bastion_tls::certs::{CertError, CsrTemplate, Subject};
use zeroize::Zeroizing;

pub use file::FileKeyStore;
pub use pkcs11::Pkcs11KeyStore;
pub use spec::{create, open, StoreSecrets, StoreSpec, PIN_ENV};

/// Smallest secret a store accepts, in bytes (a TLS PSK's lower bound in Bastion).
pub const MIN_SECRET_LEN: usize = 16;
/// Largest secret a store accepts, in bytes.
pub const MAX_SECRET_LEN: usize = 64;
/// Longest key name.
pub const MAX_NAME_LEN: usize = 64;

/// The protection levels of a secure environment, TS-0003 table 6.3.1-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProtectionLevel {
    /// Level 0: no protection.
    None,
    /// Level 1: software protection against passive observers (keys encrypted at rest,
    /// owner-only files), none against software running as the same user.
    Software,
    /// Level 2: an isolated execution environment protecting against remote and software
    /// attacks (a TEE, a hardware security module the host cannot read).
    Isolated,
    /// Level 3: tamper-resistant hardware protecting against physical attacks as well
    /// (UICC, embedded secure element).
    TamperResistant,
}

impl ProtectionLevel {
    /// The level's number in table 6.3.1-1.
    pub fn number(self) -> u8 {
        match self {
            ProtectionLevel::None => 0,
            ProtectionLevel::Software => 1,
            ProtectionLevel::Isolated => 2,
            ProtectionLevel::TamperResistant => 3,
        }
    }

    /// The level numbered `number`.
    pub fn from_number(number: u8) -> Option<ProtectionLevel> {
        match number {
            0 => Some(ProtectionLevel::None),
            1 => Some(ProtectionLevel::Software),
            2 => Some(ProtectionLevel::Isolated),
            3 => Some(ProtectionLevel::TamperResistant),
            _ => None,
        }
    }
}

impl fmt::Display for ProtectionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            ProtectionLevel::None => "none",
            ProtectionLevel::Software => "software",
            ProtectionLevel::Isolated => "isolated execution",
            ProtectionLevel::TamperResistant => "tamper-resistant",
        };
        write!(f, "level {} ({what})", self.number())
    }
}

/// The name of a key in a store: 1 to [`MAX_NAME_LEN`] characters of `[A-Za-z0-9._-]`
/// (a PKCS#11 label, a JSON key, a command-line word alike).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyName(String);

impl KeyName {
    /// Checks `name`.
    pub fn new(name: &str) -> Result<KeyName, KeyStoreError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        match ok {
            true => Ok(KeyName(name.to_owned())),
            false => Err(KeyStoreError::InvalidName(name.to_owned())),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A secret of `len` bytes, used for HMAC-SHA-256 (Kpm, Ke, Km, Kpsa, …).
    Secret {
        /// Its length in bytes.
        len: usize,
    },
    /// An EC P-256 key pair (TS-0003 10.1.1), used for ECDSA with SHA-256.
    EcP256,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Secret { len } => write!(f, "secret-{len}"),
            KeyKind::EcP256 => f.write_str("ec-p256"),
        }
    }
}

/// Whether a secret may leave the store. Private keys never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportPolicy {
    /// [`KeyStore::export_secret`] hands it out (a PSK OpenSSL must hold).
    Exportable,
    /// It is only used inside the store (a PKCS#11 key with CKA_SENSITIVE and not
    /// CKA_EXTRACTABLE).
    NonExportable,
}

impl fmt::Display for ExportPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportPolicy::Exportable => "exportable",
            ExportPolicy::NonExportable => "non-exportable",
        })
    }
}

/// What a store tells of a key: never its material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Its name.
    pub name: KeyName,
    /// Its kind.
    pub kind: KeyKind,
    /// Whether it may leave the store.
    pub export: ExportPolicy,
}

/// Secret key material in this process: wiped on drop, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Zeroizing<Vec<u8>>);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<{} bytes redacted>)", self.0.len())
    }
}

impl SecretKey {
    /// From [`MIN_SECRET_LEN`] to [`MAX_SECRET_LEN`] bytes.
    pub fn new(bytes: &[u8]) -> Result<SecretKey, KeyStoreError> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            return Err(KeyStoreError::InvalidSecretLength(bytes.len()));
        }
        Ok(SecretKey(Zeroizing::new(bytes.to_vec())))
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// An HMAC-SHA-256 output computed inside a store: wiped on drop, never shown by `Debug`
/// (a derived key is a secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Mac(Zeroizing<[u8; 32]>);

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mac(<redacted>)")
    }
}

impl Mac {
    /// From the 32 bytes a store computed; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Mac> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(Mac(Zeroizing::new(array)))
    }

    /// The MAC bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The public half of a P-256 key pair, as a DER SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    spki_der: Vec<u8>,
}

impl PublicKey {
    /// From a DER SubjectPublicKeyInfo, checked to be an EC P-256 key.
    pub fn from_spki_der(spki_der: &[u8]) -> Result<PublicKey, KeyStoreError> {
        let key = openssl::pkey::PKey::public_key_from_der(spki_der)?;
        let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
        match curve == Some(openssl::nid::Nid::X9_62_PRIME256V1) {
            true => Ok(PublicKey {
                spki_der: spki_der.to_vec(),
            }),
            false => Err(KeyStoreError::Corrupt(
                "the public key is not an EC P-256 key".to_owned(),
            )),
        }
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The SubjectPublicKeyInfo as PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> Result<String, KeyStoreError> {
        let key = openssl::pkey::PKey::public_key_from_der(&self.spki_der)?;
        String::from_utf8(key.public_key_to_pem()?)
            .map_err(|_| KeyStoreError::Corrupt("public key PEM".to_owned()))
    }
}

/// Why a key-store operation failed. Never carries key material or a PIN.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// A key name is not 1 to 64 characters of `[A-Za-z0-9._-]`.
    #[error("invalid key name {0:?}: expected 1 to 64 characters of [A-Za-z0-9._-]")]
    InvalidName(String),
    /// A secret is shorter than 16 or longer than 64 bytes.
    #[error("a secret key must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes, got {0}")]
    InvalidSecretLength(usize),
    /// A key of that name exists already.
    #[error("key {0:?} already exists")]
    AlreadyExists(String),
    /// No key of that name.
    #[error("no key {0:?}")]
    NotFound(String),
    /// The key is of another kind than the operation needs.
    #[error("key {name:?} is not {expected}")]
    WrongKind {
        /// The key.
        name: String,
        /// What the operation needs.
        expected: &'static str,
    },
    /// The key was stored non-exportable: it is used only inside the store.
    #[error("key {0:?} is non-exportable: it is used only inside the store")]
    NotExportable(String),
    /// The store's location is not `file:PATH` or `pkcs11:MODULE?token=LABEL`.
    #[error("invalid key store {0:?}: expected file:PATH or pkcs11:MODULE?token=LABEL[&level=N]")]
    InvalidSpec(String),
    /// A secret needed to open the store (store key, PIN) is missing or unreadable.
    #[error("{0}")]
    Unlock(String),
    /// Reading or writing the store file (or its lock file) failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file concerned.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `init` found a file where the store was to be created.
    #[error("{} exists already: a key store is never overwritten", .0.display())]
    StoreExists(std::path::PathBuf),
    /// The store file is of another kind or fails to decrypt.
    #[error("{}: {source}", .path.display())]
    File {
        /// The store file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: bastion_tls::sealed::SealError,
    },
    /// The store's content is inconsistent.
    #[error("corrupt key store: {0}")]
    Corrupt(String),
    /// No token with that label in any slot of the module.
    #[error("no PKCS#11 token labelled {0:?}")]
    TokenNotFound(String),
    /// A store was declared a protection level its device does not show.
    #[error("protection level {declared} cannot be claimed: {reason}")]
    LevelNotSupported {
        /// The declared level's number.
        declared: u8,
        /// Why not.
        reason: &'static str,
    },
    /// The PKCS#11 module refused or failed an operation.
    #[error("PKCS#11 {operation}: {source}")]
    Pkcs11 {
        /// What was being done.
        operation: &'static str,
        /// The module's answer.
        source: cryptoki::error::Error,
    },
    /// OpenSSL failed (key generation, signing, encoding).
    #[error("crypto failure: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    /// The CSR could not be built or its signature did not verify.
    #[error(transparent)]
    Csr(#[from] CertError),
    /// A derivation's input was refused.
    #[error(transparent)]
    Derivation(#[from] bastion_keys::KeyError),
}

impl KeyStoreError {
    /// Whether the error is the caller's (a bad name, length, store location, a refused
    /// export), as opposed to the store's or the device's: the CLI's exit status 2 vs 1.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            KeyStoreError::InvalidName(_)
                | KeyStoreError::InvalidSecretLength(_)
                | KeyStoreError::AlreadyExists(_)
                | KeyStoreError::NotFound(_)
                | KeyStoreError::WrongKind { .. }
                | KeyStoreError::NotExportable(_)
                | KeyStoreError::InvalidSpec(_)
                | KeyStoreError::StoreExists(_)
                | KeyStoreError::Unlock(_)
                | KeyStoreError::LevelNotSupported { .. }
                | KeyStoreError::Derivation(_)
        )
    }
}

/// A secure environment for long-term keys. Implementations are shared between threads
/// (`Send + Sync`) and serialise access to their device themselves.
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// The TS-0003 protection level (table 6.3.1-1) of the keys this store holds.
    fn protection_level(&self) -> ProtectionLevel;

    /// Stores `secret` under `name`.
    fn import_secret(
        &self,
        name: &KeyName,
        secret: &SecretKey,
        export: ExportPolicy,
    ) -> Result<KeyInfo, KeyStoreError>;

    /// Generates a random secret of `len` bytes under `name`, inside the store.
    fn generate_secret(
        &self,
        name: &KeyName,
        len: usize,
        export: ExportPolicy,
    ) -> Result<KeyInfo, KeyStoreError>;

    /// HMAC-SHA-256 of `input` under the secret `name`, computed inside the store.
    fn hmac_sha256(&self, name: &KeyName, input: &[u8]) -> Result<Mac, KeyStoreError>;

    /// The secret `name`, when it was stored [`ExportPolicy::Exportable`]; otherwise
    /// [`KeyStoreError::NotExportable`].
    fn export_secret(&self, name: &KeyName) -> Result<SecretKey, KeyStoreError>;

    /// Generates an EC P-256 key pair under `name` inside the store; the private key
    /// never leaves it. Returns the public key.
    fn generate_p256(&self, name: &KeyName) -> Result<PublicKey, KeyStoreError>;

    /// The public key of the P-256 key pair `name`.
    fn public_key(&self, name: &KeyName) -> Result<PublicKey, KeyStoreError>;

    /// ECDSA signature of a SHA-256 `digest` with the private key `name`, inside the
    /// store, as a DER ECDSA-Sig-Value (RFC 5480).
    fn sign_digest(&self, name: &KeyName, digest: &[u8; 32]) -> Result<Vec<u8>, KeyStoreError>;

    /// Deletes the key `name` (both halves of a key pair).
    fn delete(&self, name: &KeyName) -> Result<(), KeyStoreError>;

    /// Every key, ordered by name.
    fn list(&self) -> Result<Vec<KeyInfo>, KeyStoreError>;

    /// A key derived from the enrolment key stored as `ke` (Km, Kpsa, Kuc; TS-0003
    /// 10.3): `bastion_keys` gives the input, the store computes the HMAC, so Ke itself
    /// never leaves the store.
    fn derive(&self, ke: &KeyName, input: &DerivationInput) -> Result<DerivedKey, KeyStoreError> {
        let mac = self.hmac_sha256(ke, input.as_bytes())?;
        Ok(DerivedKey::from_mac(mac.as_bytes()))
    }

    /// A PKCS#10 request for `subject` (10.1.4) with the P-256 key pair `name`, signed
    /// inside the store. PEM.
    fn create_csr(&self, name: &KeyName, subject: &Subject) -> Result<String, KeyStoreError> {
        let template = CsrTemplate::new(subject, self.public_key(name)?.spki_der())?;
        let signature = self.sign_digest(name, &template.digest())?;
        Ok(template.finish(&signature)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_words() {
        assert!(KeyName::new("ke.mef-1_A").is_ok());
        for bad in ["", "a b", "a/b", "é", &"a".repeat(65)] {
            assert!(
                matches!(KeyName::new(bad), Err(KeyStoreError::InvalidName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn secrets_are_length_checked_and_redacted() {
        assert!(matches!(
            SecretKey::new(&[0; 15]),
            Err(KeyStoreError::InvalidSecretLength(15))
        ));
        assert!(matches!(
            SecretKey::new(&[0; 65]),
            Err(KeyStoreError::InvalidSecretLength(65))
        ));
        let secret = SecretKey::new(&[0xab; 32]).unwrap();
        assert_eq!(format!("{secret:?}"), "SecretKey(<32 bytes redacted>)");
        let mac = Mac::from_slice(&[0xcd; 32]).unwrap();
        assert_eq!(format!("{mac:?}"), "Mac(<redacted>)");
        assert!(Mac::from_slice(&[0; 31]).is_none());
    }

    #[test]
    fn levels_are_numbered_as_table_6_3_1_1() {
        for n in 0..=3 {
            assert_eq!(ProtectionLevel::from_number(n).unwrap().number(), n);
        }
        assert_eq!(ProtectionLevel::from_number(4), None);
        assert_eq!(ProtectionLevel::Software.to_string(), "level 1 (software)");
    }
}
